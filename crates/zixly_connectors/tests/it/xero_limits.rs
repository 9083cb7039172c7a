//! Xero paging by `pagination.pageCount` and 429s naming their limit in `X-Rate-Limit-Problem`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use zixly_connectors::{http_client, xero, ConnectorError, Provider};
use zixly_testkit::fakes::oauth::Fault;
use zixly_testkit::fakes::xero::FakeXero;

use super::{config, connect, xero_client, xero_secret};

async fn setup() -> (FakeXero, xero::XeroClient, zixly_crypto::SecretString) {
    let fake = FakeXero::start().await;
    let cfg = config(
        Provider::Xero,
        xero_client(),
        xero_secret(),
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let tokens = connect(&cfg).await;
    let client = xero::XeroClient::new(
        http_client(),
        &cfg.api_url,
        tokens.access_token.clone(),
        "org-1".into(),
    );
    (fake, client, tokens.access_token)
}

fn seed(fake: &FakeXero, n: usize) {
    for i in 0..n {
        fake.upsert("Invoices", "InvoiceID", json!({"InvoiceID": format!("inv-{i}"), "Type": "ACCREC",
            "Status": "AUTHORISED", "Contact": {"ContactID": "c-1"}, "Date": "/Date(1704067200000+0000)/", "SubTotal": 1}));
    }
}

#[tokio::test]
async fn exactly_full_last_page_needs_no_extra_empty_page() {
    let (fake, client, _) = setup().await;
    seed(&fake, 2 * xero::PAGE_SIZE);
    let calls0 = fake.oauth.api_calls();
    assert_eq!(client.invoices(None).await.unwrap().len(), 2000);
    assert_eq!(
        client.calls.load(Ordering::Relaxed),
        2,
        "pageCount 2: two pages"
    );
    assert_eq!(fake.oauth.api_calls() - calls0, 2);
    // An empty resource: one page (pageCount 0).
    assert!(client.payments(None).await.unwrap().is_empty());
    assert_eq!(client.calls.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn rate_limits_carry_the_problem_and_its_wait() {
    let (fake, client, token) = setup().await;
    seed(&fake, 3);
    fake.oauth.inject(Fault::RateLimited { retry_after: 7 });
    assert_eq!(
        client.invoices(None).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );
    // The fake's 429 names the exhausted limit.
    fake.data.lock().unwrap().rate_limit_problem = Some("day".into());
    fake.oauth.inject(Fault::RateLimited {
        retry_after: 40_000,
    });
    let raw = http_client()
        .get(format!("{}/api.xro/2.0/Invoices", fake.url))
        .bearer_auth(token.expose())
        .header("xero-tenant-id", "org-1")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    assert_eq!(raw.headers()["x-rate-limit-problem"], "day");
    assert_eq!(raw.headers()["retry-after"], "40000");
    fake.oauth.inject(Fault::RateLimited {
        retry_after: 40_000,
    });
    assert_eq!(
        client.invoices(None).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(40_000)
        },
        "a day limit waits until the day's quota frees up"
    );
    assert_eq!(client.invoices(None).await.unwrap().len(), 3, "then reads");
}

/// Xero's 1000-item page maximum is not documented: a server that serves fewer per page than
/// asked must not end the read after the first (short) page; `pageCount` says how many there are.
#[tokio::test]
async fn short_pages_do_not_end_the_read_before_page_count() {
    let (fake, client, _) = setup().await;
    seed(&fake, 250);
    fake.data.lock().unwrap().page_size_cap = Some(100);
    assert_eq!(client.invoices(None).await.unwrap().len(), 250);
    assert_eq!(
        client.calls.load(Ordering::Relaxed),
        3,
        "pageCount 3: three pages"
    );
}

/// The identity server refuses what Xero would: an undocumented scope always, the broad
/// `accounting.transactions.read` for an app created from March 2026. The defaults pass; the
/// legacy set (ZIXLY_XERO_SCOPES) passes for an older app.
#[tokio::test]
async fn authorize_refuses_undocumented_and_broad_scopes_for_new_apps() {
    let fake = FakeXero::start().await;
    let with_scopes = |scopes: Option<&str>| {
        let mut vars: std::collections::HashMap<String, String> = [
            ("ZIXLY_XERO_CLIENT_ID", xero_client().to_string()),
            ("ZIXLY_XERO_CLIENT_SECRET", xero_secret().to_string()),
            ("ZIXLY_XERO_AUTH_URL", fake.auth_url()),
            ("ZIXLY_XERO_TOKEN_URL", fake.token_url()),
            ("ZIXLY_XERO_API_URL", fake.url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(s) = scopes {
            vars.insert("ZIXLY_XERO_SCOPES".into(), s.into());
        }
        zixly_connectors::ProviderConfig::from_vars(Provider::Xero, |k| vars.get(k).cloned())
            .unwrap()
            .unwrap()
    };
    let status = |cfg: zixly_connectors::ProviderConfig| async move {
        http_client()
            .get(cfg.authorize_url("s", super::REDIRECT, None))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let legacy = zixly_connectors::oauth::XERO_LEGACY_SCOPES.join(" ");
    assert_eq!(
        status(with_scopes(None)).await,
        303,
        "granular defaults are accepted"
    );
    assert_eq!(
        status(with_scopes(Some(&legacy))).await,
        400,
        "new app: broad scope refused"
    );
    assert_eq!(
        status(with_scopes(Some("offline_access accounting.everything"))).await,
        400,
        "undocumented scope refused"
    );
    fake.data.lock().unwrap().legacy_app = true;
    assert_eq!(
        status(with_scopes(Some(&legacy))).await,
        303,
        "older app: legacy set accepted"
    );
}
