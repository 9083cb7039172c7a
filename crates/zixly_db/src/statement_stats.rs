//! Query visibility for operators (issue 14 item 5): `pg_stat_statements`, the slowest statements
//! by total time (`zixly db top`).
//!
//! The embedded cluster preloads the module (`zixly_pgembed` passes `shared_preload_libraries`
//! when the server has it); [`enable`] then creates the extension in Zixly's database, which
//! needs a superuser — the embedded cluster's, or an external `DATABASE_URL` that is one. On a
//! server without the module loaded, [`enable`] says so instead of failing the start, and
//! [`top`] answers a [`DbError::Config`] that tells the operator what to set.

use crate::bootstrap::connect_one;
use crate::error::{Ctx, DbError, DbResult};

/// One normalised statement and its totals since the statistics were last reset.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementStat {
    /// The statement with its constants replaced by `$n` (as PostgreSQL normalises it).
    pub query: String,
    pub role: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub rows: i64,
    /// Share of the reads served from shared buffers, 0..=1 (`None`: the statement read nothing).
    pub hit_ratio: Option<f64>,
}

/// Whether the server has `pg_stat_statements` in `shared_preload_libraries` (needed before
/// the extension can count anything).
async fn loaded(client: &tokio_postgres::Client) -> DbResult<bool> {
    let row = client
        .query_one(
            "select coalesce('pg_stat_statements' = any(string_to_array(
                    replace(current_setting('shared_preload_libraries'), ' ', ''), ',')), false)",
            &[],
        )
        .await
        .ctx("reading shared_preload_libraries")?;
    Ok(row.get(0))
}

/// Creates the extension in the database of `superuser_url` when the module is loaded; returns
/// whether statement statistics are on.
pub async fn enable(superuser_url: &str) -> DbResult<bool> {
    let client = connect_one(superuser_url, "connecting to enable pg_stat_statements").await?;
    if !loaded(&client).await? {
        return Ok(false);
    }
    // The extension grants its view to PUBLIC: BI logins and the app would see every role's
    // call counts and timings (not their texts). Operators read it as the superuser.
    client
        .batch_execute(
            // A second start meets "already exists, skipping": not news for the log.
            "set client_min_messages = warning;
             create extension if not exists pg_stat_statements;
             revoke all on pg_stat_statements, pg_stat_statements_info from public;
             revoke all on function pg_stat_statements(boolean), pg_stat_statements_info() from public",
        )
        .await
        .ctx("creating the pg_stat_statements extension")?;
    Ok(true)
}

/// The `limit` statements of this database with the largest total execution time.
pub async fn top(superuser_url: &str, limit: i64) -> DbResult<Vec<StatementStat>> {
    let client = connect_one(superuser_url, "connecting to read pg_stat_statements").await?;
    let installed: bool = client
        .query_one(
            "select exists (select 1 from pg_extension where extname = 'pg_stat_statements')",
            &[],
        )
        .await
        .ctx("looking for pg_stat_statements")?
        .get(0);
    if !loaded(&client).await? || !installed {
        return Err(DbError::Config(
            "statement statistics are off: add pg_stat_statements to shared_preload_libraries in \
             postgresql.conf, restart PostgreSQL, and run `create extension pg_stat_statements` as \
             a superuser in Zixly's database (the embedded cluster does this by itself)"
                .into(),
        ));
    }
    let rows = client
        .query(
            "select s.query, r.rolname::text, s.calls, s.total_exec_time, s.mean_exec_time,
                    s.max_exec_time, s.rows,
                    case when s.shared_blks_hit + s.shared_blks_read > 0
                         then s.shared_blks_hit::float8 / (s.shared_blks_hit + s.shared_blks_read) end
               from pg_stat_statements s
               join pg_roles r on r.oid = s.userid
              where s.dbid = (select oid from pg_database where datname = current_database())
              order by s.total_exec_time desc
              limit $1",
            &[&limit],
        )
        .await
        .ctx("reading pg_stat_statements")?;
    Ok(rows
        .iter()
        .map(|r| StatementStat {
            query: r.get(0),
            role: r.get(1),
            calls: r.get(2),
            total_ms: r.get(3),
            mean_ms: r.get(4),
            max_ms: r.get(5),
            rows: r.get(6),
            hit_ratio: r.get(7),
        })
        .collect())
}

/// Starts the counts afresh (this database's statements only).
pub async fn reset(superuser_url: &str) -> DbResult<()> {
    let client = connect_one(superuser_url, "connecting to reset pg_stat_statements").await?;
    client
        .batch_execute(
            "select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)",
        )
        .await
        .ctx("resetting pg_stat_statements")?;
    Ok(())
}
