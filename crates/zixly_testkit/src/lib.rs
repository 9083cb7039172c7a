//! Test harness shared by every crate's integration tests.
//!
//! - One embedded PostgreSQL cluster per checkout (socket under `/tmp/zixly-test-<hash>`), started
//!   by the first test process that needs it and reused by the others (nextest runs each test in its
//!   own process). Set `ZIXLY_TEST_DATABASE_URL` to a superuser URL to use another server instead.
//! - A template database per migration fingerprint, migrated once; each [`TestDb`] is
//!   `CREATE DATABASE t_... TEMPLATE ... STRATEGY FILE_COPY` (tens of milliseconds) and is dropped
//!   `WITH (FORCE)` when the value is dropped.
//! - Tenant queries go through `zixly_app` (never a superuser: RLS tests as a superuser test nothing).

pub mod app;

pub mod contracts;

pub mod fakes;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::OnceCell;
use uuid::Uuid;
use zixly_db::bootstrap::{self, RolePasswords};
use zixly_db::connect::{with_credentials, with_database};
use zixly_db::{roles, AppDb, SystemDb};
use zixly_domain::CurrencyCode;

/// Fixed role passwords for the throwaway test cluster.
pub fn test_role_passwords() -> RolePasswords {
    RolePasswords {
        owner: "owner-test-pw".into(),
        app: "app-test-pw".into(),
        readonly: "readonly-test-pw".into(),
    }
}

/// Where the shared test cluster lives: short (Unix socket paths are limited to ~100 bytes) and
/// unique per checkout. `.ci/run` computes the same path (FNV-1a) to stop it: change both.
pub fn test_cluster_dir() -> PathBuf {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in manifest.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    PathBuf::from(format!("/tmp/zixly-test-{:08x}", h as u32))
}

struct Cluster {
    /// Superuser URL to the `postgres` maintenance database.
    admin_url: String,
    template: String,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let admin_url = match std::env::var("ZIXLY_TEST_DATABASE_URL") {
                Ok(url) => url,
                Err(_) => {
                    let cluster =
                        zixly_pgembed::EmbeddedCluster::new(zixly_pgembed::ClusterOptions {
                            data_dir: test_cluster_dir(),
                            tcp_port: None,
                            for_tests: true,
                        });
                    let running = cluster
                        .start()
                        .await
                        .expect("starting the shared test cluster");
                    // The cluster outlives this test process on purpose: the next test reuses it.
                    std::mem::forget(running);
                    cluster.superuser_url("postgres").expect("superuser URL")
                }
            };
            bootstrap::ensure_roles(&admin_url, Some(&test_role_passwords()))
                .await
                .expect("creating roles");
            let template = format!("zixly_tmpl_{}", zixly_db::migrate::fingerprint());
            ensure_template(&admin_url, &template).await;
            Cluster {
                admin_url,
                template,
            }
        })
        .await
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test cluster");
    tokio::spawn(connection);
    client
}

async fn ensure_template(admin_url: &str, template: &str) {
    let client = admin_client(admin_url).await;
    client
        .execute(
            "select pg_advisory_lock(hashtext('zixly_test_template'))",
            &[],
        )
        .await
        .unwrap();
    let exists = client
        .query_opt(
            "select 1 from pg_database where datname = $1 and datistemplate",
            &[&template],
        )
        .await
        .unwrap()
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("drop database if exists {template} with (force)"))
            .await
            .unwrap();
        bootstrap::ensure_database(admin_url, template)
            .await
            .expect("creating template database");
        let url = with_database(admin_url, template).unwrap();
        zixly_db::migrate::run(&url)
            .await
            .expect("migrating the template database");
        client
            .batch_execute(&format!("alter database {template} is_template true"))
            .await
            .unwrap();
    }
    client
        .execute(
            "select pg_advisory_unlock(hashtext('zixly_test_template'))",
            &[],
        )
        .await
        .unwrap();
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub name: String,
    /// Superuser URL to this database (for fixtures that must bypass RLS; never for tenant queries).
    pub superuser_url: String,
    /// `zixly_app` URL to this database.
    pub app_url: String,
    /// `zixly_readonly` URL to this database.
    pub readonly_url: String,
    /// `zixly_owner` URL to this database.
    pub owner_url: String,
    pub app: AppDb,
    pub system: SystemDb,
    cluster_admin_url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let cluster = cluster().await;
        let name = format!("t_{}", Uuid::now_v7().simple());
        let client = admin_client(&cluster.admin_url).await;
        // The template may be briefly "in use" by a closing connection: retry a few times.
        let mut attempt = 0;
        loop {
            let sql = format!(
                "create database {name} template {} owner {} strategy file_copy",
                cluster.template,
                roles::OWNER
            );
            match client.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e)
                    if attempt < 50
                        && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("creating test database: {e:?}"),
            }
        }
        TestDb::open(cluster, name).await
    }

    /// A fresh database migrated up to `version` only (not from the template), to test a later
    /// migration on a database populated before it: fill it, then `zixly_db::migrate::run` on
    /// [`TestDb::owner_url`]. The pools are connected already (no query of theirs depends on
    /// the schema until used).
    pub async fn at_version(version: i32) -> TestDb {
        let cluster = cluster().await;
        let name = format!("t_{}", Uuid::now_v7().simple());
        bootstrap::ensure_database(&cluster.admin_url, &name)
            .await
            .expect("creating the test database");
        let url = with_database(&cluster.admin_url, &name).unwrap();
        zixly_db::migrate::run_to(&url, version)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database to {version}: {e}"));
        TestDb::open(cluster, name).await
    }

    async fn open(cluster: &Cluster, name: String) -> TestDb {
        let pw = test_role_passwords();
        let superuser_url = with_database(&cluster.admin_url, &name).unwrap();
        let app_url = with_credentials(&superuser_url, roles::APP, &pw.app).unwrap();
        let readonly_url = with_credentials(&superuser_url, roles::READONLY, &pw.readonly).unwrap();
        let owner_url = with_credentials(&superuser_url, roles::OWNER, &pw.owner).unwrap();
        let app = AppDb::connect(&app_url, 8)
            .await
            .expect("connecting as zixly_app");
        let system = SystemDb::connect(&owner_url, 2).expect("connecting as zixly_owner");
        TestDb {
            name,
            superuser_url,
            app_url,
            readonly_url,
            owner_url,
            app,
            system,
            cluster_admin_url: cluster.admin_url.clone(),
        }
    }

    /// Creates a tenant through the system path.
    pub async fn tenant(&self, name: &str) -> Uuid {
        self.system
            .create_tenant(name, CurrencyCode::AUD, "Australia/Sydney")
            .await
            .expect("creating tenant")
    }

    /// A connection as superuser to this database (bypasses RLS: fixtures and catalog checks only).
    pub async fn superuser(&self) -> tokio_postgres::Client {
        admin_client(&self.superuser_url).await
    }

    /// A direct connection with any URL (e.g. `app_url`) for tests of connection-level behaviour.
    pub async fn connect(url: &str) -> tokio_postgres::Client {
        admin_client(url).await
    }

    /// Like [`TestDb::connect`], for tests that expect the connection to be refused.
    pub async fn try_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.cluster_admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a separate thread and runtime to block on it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("drop database if exists {name} with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}
