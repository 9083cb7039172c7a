//! `zixly sync PROVIDER --tenant ID --wait` as a real process against an external database and the
//! fake Xero: exit 0 with data loaded, non-zero with the reason when the provider refuses.

use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use zixly_connectors::oauth::Pkce;
use zixly_connectors::{http_client, Provider, ProviderConfig};
use zixly_crypto::{encode_key, generate_key, Keyring};
use zixly_sync::tokens::store_new_tokens;
use zixly_testkit::fakes::xero::{self, FakeXero};
use zixly_testkit::TestDb;

const REDIRECT: &str = "http://zixly.test/api/v1/integrations/callback";

pub(crate) fn xero_env(fake: &FakeXero) -> Vec<(String, String)> {
    vec![
        ("ZIXLY_XERO_CLIENT_ID".into(), xero::CLIENT_ID.into()),
        (
            "ZIXLY_XERO_CLIENT_SECRET".into(),
            xero::CLIENT_SECRET.into(),
        ),
        ("ZIXLY_XERO_AUTH_URL".into(), fake.auth_url()),
        ("ZIXLY_XERO_TOKEN_URL".into(), fake.token_url()),
        ("ZIXLY_XERO_API_URL".into(), fake.url.clone()),
    ]
}

/// A `zixly` command against `db` and `fake`, tokens under `key` (log level info).
pub(crate) fn zixly(db: &TestDb, fake: &FakeXero, key: &[u8; 32]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zixly"));
    cmd.env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_ENCRYPTION_KEY", encode_key(key))
        .env("ZIXLY_LOG", "info")
        .envs(xero_env(fake));
    cmd
}

/// Connects Xero for a new tenant named `name` through the fake's authorize redirect and code
/// exchange, with tokens encrypted under `key`; returns (tenant, integration).
pub(crate) async fn connected(
    db: &TestDb,
    fake: &FakeXero,
    key: &[u8; 32],
    name: &str,
) -> (Uuid, Uuid) {
    let vars: std::collections::HashMap<String, String> = xero_env(fake).into_iter().collect();
    let cfg = ProviderConfig::from_vars(Provider::Xero, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap();
    let pkce = cfg.pkce.then(Pkce::generate);
    let resp = http_client()
        .get(cfg.authorize_url("st", REDIRECT, pkce.as_ref()))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = cfg
        .exchange_code(
            &http_client(),
            &code,
            REDIRECT,
            pkce.as_ref().map(|p| &p.verifier),
        )
        .await
        .unwrap();
    let tenant = db.tenant(name).await;
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let integration = tx.ensure_integration("XERO").await.unwrap();
    store_new_tokens(
        &tx,
        &Arc::new(Keyring::new(key, &[])),
        integration.id,
        &tokens,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (tenant, integration.id)
}

/// A fake Xero with one customer and one invoice of `subtotal` on 2024-01-10.
async fn one_invoice(subtotal: f64) -> FakeXero {
    let fake = FakeXero::start().await;
    fake.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "c1", "Name": "Acme Pty", "ContactStatus": "ACTIVE"}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c1"}, "Date": "/Date(1704844800000+0000)/", "SubTotal": subtotal}),
    );
    fake
}

async fn zixly_sync_wait(db: &TestDb, fake: &FakeXero, key: &[u8; 32], tenant: Uuid) -> Output {
    let mut cmd = zixly(db, fake, key);
    cmd.env("ZIXLY_LOG", "warn")
        .args(["sync", "xero", "--tenant", &tenant.to_string(), "--wait"]);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Without a terminal (here: a pipe) `--wait` reports progress as `progress:` lines on stderr,
/// naming the stream and the pages read, instead of drawing a bar. The fake answers slowly, so
/// the command's 250 ms poll sees the run between pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_wait_prints_progress_lines_when_stderr_is_not_a_terminal() {
    let db = TestDb::new().await;
    let fake = one_invoice(10.0).await;
    let key = generate_key();
    let (tenant, _) = connected(&db, &fake, &key, "Sync progress").await;
    fake.oauth
        .set_api_delay(std::time::Duration::from_millis(400));

    let out = zixly_sync_wait(&db, &fake, &key, tenant).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!lines.is_empty(), "no progress lines in: {stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" items read (") && l.contains("page")),
        "{lines:?}"
    );
    assert!(
        !stderr.contains('\r'),
        "no bar redraws without a terminal: {stderr}"
    );
}

#[tokio::test]
async fn sync_wait_loads_the_data_and_fails_loudly_when_the_grant_is_revoked() {
    let db = TestDb::new().await;
    let fake = one_invoice(1234.5).await;
    let key = generate_key();
    let (tenant, _) = connected(&db, &fake, &key, "Sync CLI").await;

    let out = zixly_sync_wait(&db, &fake, &key, tenant).await;
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let su = db.superuser().await;
    let revenue: Vec<String> = su
        .query(
            "select revenue::text from financials where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(revenue, vec!["1234.50".to_string()]);

    // The provider refuses the grant: the command exits non-zero and says why, without secrets.
    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    let out = zixly_sync_wait(&db, &fake, &key, tenant).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused sync must fail: {stderr}");
    assert!(stderr.contains("invalid_grant"), "{stderr}");
    assert!(
        !stderr.contains("rt-") && !stderr.contains("at-"),
        "no token in: {stderr}"
    );
    let status: String = su
        .query_one(
            "select status::text from integrations where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "ERROR");

    // A tenant without the integration: a clear refusal.
    let other = db.tenant("No integrations").await;
    let out = zixly_sync_wait(&db, &fake, &key, other).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("integration; connect it first"), "{stderr}");
}
