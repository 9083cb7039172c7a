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
