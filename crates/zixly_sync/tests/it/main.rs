//! Token storage and refresh against the fakes and a real database (here and `refresh`, every
//! provider); the sync engine with Xero (`sync`, `xero_currency`) and its HubSpot, Pipedrive, Asana
//! and MYOB runners (`hubspot`, `pipedrive`, `asana`, `myob`); the sync benchmark (`bench`).

mod asana;
mod asana_resume;
mod bench;
mod contract_asana;
mod contract_hubspot;
mod contract_pipedrive;
mod contracts;
mod hubspot;
mod hubspot_resume;
mod myob;
mod pipedrive;
mod pipedrive_resume;
mod refresh;
mod resume_kit;
mod sync;
mod token_mid_run;
mod xero_contract;
mod xero_credit;
mod xero_currency;
mod xero_resume;

use std::collections::HashMap;

use zixly_connectors::oauth::Pkce;
use zixly_connectors::{http_client, Provider, ProviderConfig};
use zixly_crypto::{generate_key, Keyring};
use zixly_sync::tokens::{access_token, store_new_tokens};
use zixly_testkit::fakes::xero::{FakeXero, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::TestDb;

const REDIRECT: &str = "http://zixly.test/cb";

fn xero_config(fake: &FakeXero) -> ProviderConfig {
    let vars: HashMap<&str, String> = HashMap::from([
        ("ZIXLY_XERO_CLIENT_ID", CLIENT_ID.to_string()),
        ("ZIXLY_XERO_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("ZIXLY_XERO_AUTH_URL", fake.auth_url()),
        ("ZIXLY_XERO_TOKEN_URL", fake.token_url()),
        ("ZIXLY_XERO_API_URL", fake.url.clone()),
    ]);
    ProviderConfig::from_vars(Provider::Xero, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap()
}

/// Connects through the authorize redirect and stores the tokens; returns the integration id.
async fn connected(
    db: &TestDb,
    tenant: uuid::Uuid,
    cfg: &ProviderConfig,
    keyring: &Keyring,
) -> uuid::Uuid {
    let pkce = Pkce::generate();
    let resp = http_client()
        .get(cfg.authorize_url("s", REDIRECT, Some(&pkce)))
        .send()
        .await
        .unwrap();
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = cfg
        .exchange_code(&http_client(), &code, REDIRECT, Some(&pkce.verifier))
        .await
        .unwrap();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let integration = tx.ensure_integration("XERO").await.unwrap();
    store_new_tokens(&tx, keyring, integration.id, &tokens)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    integration.id
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest_and_the_integration_becomes_active() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let fake = FakeXero::start().await;
    let cfg = xero_config(&fake);
    let keyring = Keyring::new(&generate_key(), &[]);
    let id = connected(&db, tenant, &cfg, &keyring).await;
    let token = access_token(&db.app, &keyring, &http_client(), &cfg, tenant, id, None)
        .await
        .unwrap();
    let row = db
        .superuser()
        .await
        .query_one(
            "select access_token, status::text from integrations where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert_eq!(row.get::<_, String>(1), "ACTIVE");
    assert!(
        !stored
            .windows(token.expose().len())
            .any(|w| w == token.expose().as_bytes()),
        "plaintext token in the database"
    );
    assert_eq!(stored[0], 1, "zixly_crypto v1 ciphertext");
    assert_eq!(fake.oauth.refreshes(), 0, "a fresh token is not refreshed");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_integration_make_one_token_call() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let fake = FakeXero::start().await;
    let cfg = xero_config(&fake);
    let keyring = Keyring::new(&generate_key(), &[]);
    let id = connected(&db, tenant, &cfg, &keyring).await;
    let old = access_token(&db.app, &keyring, &http_client(), &cfg, tenant, id, None)
        .await
        .unwrap();
    fake.oauth.expire_access_tokens();
    // Eight workers saw the same 401 at once and all ask for a refresh.
    let results = futures_util::future::join_all((0..8).map(|_| {
        let (app, cfg, keyring, old) = (db.app.clone(), cfg.clone(), &keyring, old.clone());
        async move {
            access_token(&app, keyring, &http_client(), &cfg, tenant, id, Some(&old))
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(fake.oauth.refreshes(), 1, "exactly one refresh");
    assert_eq!(fake.oauth.rejected_refreshes(), 0, "no invalid_grant race");
    assert!(results.iter().all(|t| t == &results[0] && t != &old));
    // The rotated refresh token was persisted: a later refresh works.
    fake.oauth.expire_access_tokens();
    access_token(
        &db.app,
        &keyring,
        &http_client(),
        &cfg,
        tenant,
        id,
        Some(&results[0]),
    )
    .await
    .unwrap();
    assert_eq!(fake.oauth.refreshes(), 2);
}

#[tokio::test]
async fn a_revoked_refresh_token_puts_the_integration_in_error() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let fake = FakeXero::start().await;
    let cfg = xero_config(&fake);
    let keyring = Keyring::new(&generate_key(), &[]);
    let id = connected(&db, tenant, &cfg, &keyring).await;
    let old = access_token(&db.app, &keyring, &http_client(), &cfg, tenant, id, None)
        .await
        .unwrap();
    fake.oauth.revoke_refresh_tokens();
    let err = access_token(
        &db.app,
        &keyring,
        &http_client(),
        &cfg,
        tenant,
        id,
        Some(&old),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let i = tx.integration(id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(i.status, "ERROR");
    assert!(i.last_error.unwrap().contains("re-authorisation needed"));
}
