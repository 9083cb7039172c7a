//! Forward-only migrations, embedded in the binary from `/migrations`.
//!
//! Each migration runs in its own transaction as `zixly_owner` (so the owner owns every object),
//! under an advisory lock (concurrent starts wait rather than race), and is recorded with a
//! SHA-256 checksum: editing an applied migration is an error, not a silent drift.

use sha2::{Digest, Sha256};

use crate::bootstrap::connect_one;
use crate::error::{Ctx, DbError, DbResult};

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema_v1",
        sql: include_str!("../../../migrations/0001_schema_v1.sql"),
    },
    Migration {
        version: 2,
        name: "auth",
        sql: include_str!("../../../migrations/0002_auth.sql"),
    },
    Migration {
        version: 3,
        name: "ingest",
        sql: include_str!("../../../migrations/0003_ingest.sql"),
    },
    Migration {
        version: 4,
        name: "jobs",
        sql: include_str!("../../../migrations/0004_jobs.sql"),
    },
    Migration {
        version: 5,
        name: "sync",
        sql: include_str!("../../../migrations/0005_sync.sql"),
    },
    Migration {
        version: 6,
        name: "loader_stats",
        sql: include_str!("../../../migrations/0006_loader_stats.sql"),
    },
    Migration {
        version: 7,
        name: "jobs_claim_index",
        sql: include_str!("../../../migrations/0007_jobs_claim_index.sql"),
    },
    Migration {
        version: 8,
        name: "bi_logins",
        sql: include_str!("../../../migrations/0008_bi_logins.sql"),
    },
    Migration {
        version: 9,
        name: "sync_run_interrupted",
        sql: include_str!("../../../migrations/0009_sync_run_interrupted.sql"),
    },
    Migration {
        version: 10,
        name: "password_reset_invalidation",
        sql: include_str!("../../../migrations/0010_password_reset_invalidation.sql"),
    },
    Migration {
        version: 11,
        name: "sync_checkpoints",
        sql: include_str!("../../../migrations/0011_sync_checkpoints.sql"),
    },
];

pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A stable fingerprint of all migrations (the test harness names its template database by it).
pub fn fingerprint() -> String {
    let mut hasher = Sha256::new();
    for m in MIGRATIONS {
        hasher.update(m.version.to_be_bytes());
        hasher.update(m.sql.as_bytes());
    }
    hex::encode(&hasher.finalize()[..6])
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies pending migrations. `url` connects as `zixly_owner` or as a superuser (which then
/// `SET ROLE zixly_owner`). Returns the versions applied.
pub async fn run(url: &str) -> DbResult<Vec<i32>> {
    let client = connect_one(url, "connecting to migrate").await?;
    let is_owner: bool = client
        .query_one("select current_user = $1", &[&crate::roles::OWNER])
        .await
        .ctx("checking the migration role")?
        .get(0);
    if !is_owner {
        client
            .batch_execute(&format!("set role {}", crate::roles::OWNER))
            .await
            .ctx(
                "switching to zixly_owner for migrations (is the role missing? run the bootstrap)",
            )?;
    }
    client
        .batch_execute(
            "select pg_advisory_lock(hashtext('zixly_migrate'));
             create table if not exists schema_migrations (
                 version    integer     not null primary key,
                 name       text        not null,
                 checksum   text        not null,
                 applied_at timestamptz not null default now()
             );
             grant select on schema_migrations to zixly_app, zixly_readonly;",
        )
        .await
        .ctx("preparing schema_migrations")?;

    let applied: Vec<(i32, String)> = client
        .query(
            "select version, checksum from schema_migrations order by version",
            &[],
        )
        .await
        .ctx("reading applied migrations")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    let mut newly_applied = Vec::new();
    for m in MIGRATIONS {
        if let Some((_, sum)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *sum != checksum(m.sql) {
                return Err(DbError::Migration {
                    version: m.version,
                    name: m.name.into(),
                    message: "already applied with different contents; migrations are forward-only, add a new one".into(),
                });
            }
            continue;
        }
        let result = async {
            client.batch_execute("begin").await?;
            client.batch_execute(m.sql).await?;
            client
                .execute(
                    "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)",
                    &[&m.version, &m.name, &checksum(m.sql)],
                )
                .await?;
            client.batch_execute("commit").await
        }
        .await;
        if let Err(e) = result {
            let _ = client.batch_execute("rollback").await;
            let message = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            return Err(DbError::Migration {
                version: m.version,
                name: m.name.into(),
                message,
            });
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
        newly_applied.push(m.version);
    }
    if let Some(max) = applied.iter().map(|(v, _)| *v).max() {
        if max > latest_version() {
            return Err(DbError::Migration {
                version: max,
                name: "unknown".into(),
                message: format!(
                    "the database is at version {max}, newer than this binary ({}); upgrade zixly",
                    latest_version()
                ),
            });
        }
    }
    client
        .batch_execute("select pg_advisory_unlock(hashtext('zixly_migrate'))")
        .await
        .ctx("unlocking migrations")?;
    Ok(newly_applied)
}
