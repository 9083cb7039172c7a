//! Concurrent refreshes of one integration, for every provider's fake (each with its own token
//! endpoint style: Basic or form client auth, rotating refresh tokens or not, Xero's grace use,
//! Asana's refresh answer without a refresh token).
//!
//! Eight "processes" (each its own connection pool and HTTP client, as separate workers would
//! have) ask for a token of the same integration at once after its access token expired at the
//! provider: half of them were just answered 401 with the old token (`rejected`), half saw the
//! stored expiry pass. The only coordination between them is the integration row lock of
//! `tokens::access_token`. To make them truly concurrent, the test holds that row lock itself
//! until all eight are waiting on it (observed in `pg_stat_activity`, not guessed with a sleep),
//! then releases it.

use std::time::{Duration, Instant};

use serde_json::json;
use zixly_connectors::{http_client, Provider, ProviderConfig};
use zixly_crypto::SecretString;
use zixly_db::AppDb;
use zixly_sync::tokens::access_token;
use zixly_testkit::fakes::oauth::FakeOAuth;
use zixly_testkit::fakes::{asana, hubspot, myob, pipedrive, xero};

use crate::sync::{config, connect, Env};

const CALLERS: usize = 8;

/// One provider's fake, its configuration, and an API request that needs a valid access token.
struct Fake {
    oauth: FakeOAuth,
    cfg: ProviderConfig,
    probe_url: String,
    probe_headers: Vec<(&'static str, &'static str)>,
}

async fn fake(provider: Provider) -> Fake {
    let cfg = |id, secret, auth, token, api: &str| config(provider, id, secret, auth, token, api);
    match provider {
        Provider::Xero => {
            let f = xero::FakeXero::start().await;
            Fake {
                cfg: cfg(
                    xero::CLIENT_ID,
                    xero::CLIENT_SECRET,
                    f.auth_url(),
                    f.token_url(),
                    &f.url,
                ),
                probe_url: format!("{}/connections", f.url),
                probe_headers: vec![],
                oauth: f.oauth,
            }
        }
        Provider::Myob => {
            let f = myob::FakeMyob::start().await;
            Fake {
                cfg: cfg(
                    myob::CLIENT_ID,
                    myob::CLIENT_SECRET,
                    f.auth_url(),
                    f.token_url(),
                    &f.api_url(),
                ),
                probe_url: format!("{}/", f.api_url()),
                probe_headers: vec![
                    ("x-myobapi-key", myob::CLIENT_ID),
                    ("x-myobapi-version", "v2"),
                ],
                oauth: f.oauth,
            }
        }
        Provider::Hubspot => {
            let f = hubspot::FakeHubspot::start().await;
            Fake {
                cfg: cfg(
                    hubspot::CLIENT_ID,
                    hubspot::CLIENT_SECRET,
                    f.auth_url(),
                    f.token_url(),
                    &f.url,
                ),
                probe_url: format!("{}/crm/v3/pipelines/deals", f.url),
                probe_headers: vec![],
                oauth: f.oauth,
            }
        }
        Provider::Pipedrive => {
            let f = pipedrive::FakePipedrive::start().await;
            Fake {
                cfg: cfg(
                    pipedrive::CLIENT_ID,
                    pipedrive::CLIENT_SECRET,
                    f.auth_url(),
                    f.token_url(),
                    &f.url,
                ),
                probe_url: format!("{}/api/v2/stages", f.url),
                probe_headers: vec![],
                oauth: f.oauth,
            }
        }
        Provider::Asana => {
            let f = asana::FakeAsana::start().await;
            Fake {
                cfg: cfg(
                    asana::CLIENT_ID,
                    asana::CLIENT_SECRET,
                    f.auth_url(),
                    f.token_url(),
                    &f.api_url(),
                ),
                probe_url: format!("{}/workspaces", f.api_url()),
                probe_headers: vec![],
                oauth: f.oauth,
            }
        }
        #[allow(unreachable_patterns)]
        other => panic!("no fake for {other:?}"),
    }
}

impl Fake {
    /// The HTTP status of the probe request with `token`.
    async fn probe(&self, token: &str) -> u16 {
        let mut req = http_client().get(&self.probe_url).bearer_auth(token);
        for (k, v) in &self.probe_headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

/// The issue number in a fake token (`at-<n>-<random>`, `rt-<n>-<random>`): an access token and
/// the refresh token issued with it share it.
fn serial(token: &str) -> &str {
    token
        .split('-')
        .nth(1)
        .unwrap_or_else(|| panic!("not a fake token: {token}"))
}

/// Blocks until `n` backends of this test's database are waiting for a lock.
async fn until_waiting_for_locks(env: &Env, n: i64) {
    let su = env.db.superuser().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = su
            .query_one(
                "select count(*) from pg_stat_activity
                  where datname = current_database() and wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == n {
            return;
        }
        assert!(waiting < n, "{waiting} waiting for a lock, expected {n}");
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {n} callers reached the row lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn concurrent_refreshes_make_one_token_call(provider: Provider) {
    let fake = fake(provider).await;
    let rotating = fake.oauth.settings.rotate_refresh_tokens;
    let env = connect(fake.cfg.clone(), json!({})).await;
    let (old, first_refresh) = env.stored_tokens().await;
    assert_eq!(fake.probe(&old).await, 200);

    // Expired at the provider, and (for the callers that look at the stored expiry) in the row.
    fake.oauth.expire_access_tokens();
    assert_eq!(fake.probe(&old).await, 401, "expired at the fake");
    let su = env.db.superuser().await;
    su.execute(
        "update integrations set expires_at = now() - interval '1 minute' where id = $1",
        &[&env.integration],
    )
    .await
    .unwrap();

    // One pool and one HTTP client per caller, as separate worker processes would have.
    let mut pools = Vec::new();
    for _ in 0..CALLERS {
        pools.push(AppDb::connect(&env.db.app_url, 1).await.unwrap());
    }
    let old_secret = SecretString::from(old.clone());
    su.batch_execute("begin").await.unwrap();
    su.execute(
        "select 1 from integrations where id = $1 for update",
        &[&env.integration],
    )
    .await
    .unwrap();
    let callers = futures_util::future::join_all(pools.iter().enumerate().map(|(i, app)| {
        let (keyring, cfg) = (env.engine.keyring(), &fake.cfg);
        let rejected = (i % 2 == 0).then_some(&old_secret);
        async move {
            access_token(
                app,
                keyring,
                &http_client(),
                cfg,
                env.tenant,
                env.integration,
                rejected,
            )
            .await
        }
    }));
    let release = async {
        until_waiting_for_locks(&env, CALLERS as i64).await;
        assert_eq!(
            fake.oauth.refreshes(),
            0,
            "nobody refreshed without the lock"
        );
        su.batch_execute("commit").await.unwrap();
    };
    let (results, ()) = tokio::join!(callers, release);

    let tokens: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().expose().to_string())
        .collect();
    assert_eq!(
        fake.oauth.refreshes(),
        1,
        "{provider:?}: exactly one refresh call"
    );
    assert_eq!(
        fake.oauth.rejected_refreshes(),
        0,
        "{provider:?}: no refresh with a used refresh token"
    );
    let new = tokens[0].clone();
    assert_ne!(new, old);
    assert!(
        tokens.iter().all(|t| *t == new),
        "{provider:?}: every caller got the refreshed token"
    );
    assert_eq!(fake.probe(&new).await, 200, "{provider:?}: it works");
    let (stored_access, refresh) = env.stored_tokens().await;
    assert_eq!(stored_access, new);
    if rotating {
        assert_ne!(refresh, first_refresh, "{provider:?}: rotated");
        assert_eq!(
            serial(&refresh),
            serial(&new),
            "{provider:?}: the stored refresh token is the one issued with the new access token"
        );
    } else {
        assert_eq!(refresh, first_refresh, "{provider:?}: kept");
    }

    // The stored refresh token is usable: the next expiry refreshes once more, without a refusal.
    fake.oauth.expire_access_tokens();
    let next = access_token(
        &env.db.app,
        env.engine.keyring(),
        &http_client(),
        &fake.cfg,
        env.tenant,
        env.integration,
        Some(&SecretString::from(new.clone())),
    )
    .await
    .unwrap();
    assert_eq!(fake.oauth.refreshes(), 2);
    assert_eq!(fake.oauth.rejected_refreshes(), 0);
    assert_eq!(fake.probe(next.expose()).await, 200);
    let (_, refresh) = env.stored_tokens().await;
    if rotating {
        assert_eq!(serial(&refresh), serial(next.expose()));
    } else {
        assert_eq!(refresh, first_refresh);
    }
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

#[tokio::test]
async fn concurrent_xero_refreshes_make_one_token_call() {
    concurrent_refreshes_make_one_token_call(Provider::Xero).await;
}

#[tokio::test]
async fn concurrent_myob_refreshes_make_one_token_call() {
    concurrent_refreshes_make_one_token_call(Provider::Myob).await;
}

#[tokio::test]
async fn concurrent_hubspot_refreshes_make_one_token_call() {
    concurrent_refreshes_make_one_token_call(Provider::Hubspot).await;
}

#[tokio::test]
async fn concurrent_pipedrive_refreshes_make_one_token_call() {
    concurrent_refreshes_make_one_token_call(Provider::Pipedrive).await;
}

#[tokio::test]
async fn concurrent_asana_refreshes_make_one_token_call() {
    concurrent_refreshes_make_one_token_call(Provider::Asana).await;
}
