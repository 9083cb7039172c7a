//! Connectors against the fake provider servers of the test kit.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use zixly_connectors::oauth::Pkce;
use zixly_connectors::{
    http_client, hubspot, xero, ConnectorError, Provider, ProviderConfig, TokenSet,
};
use zixly_crypto::SecretString;
use zixly_testkit::fakes::oauth::Fault;
use zixly_testkit::fakes::{hubspot::FakeHubspot, xero::FakeXero};

mod asana;
mod hubspot_search;
mod myob;
mod pipedrive;
mod xero_limits;

const REDIRECT: &str = "http://zixly.test/api/v1/integrations/callback";

fn config(
    provider: Provider,
    id: &str,
    secret: &str,
    auth: String,
    token: String,
    api: &str,
) -> ProviderConfig {
    let p = provider.as_str();
    let vars: HashMap<String, String> = [
        (format!("ZIXLY_{p}_CLIENT_ID"), id.to_string()),
        (format!("ZIXLY_{p}_CLIENT_SECRET"), secret.to_string()),
        (format!("ZIXLY_{p}_AUTH_URL"), auth),
        (format!("ZIXLY_{p}_TOKEN_URL"), token),
        (format!("ZIXLY_{p}_API_URL"), api.to_string()),
    ]
    .into();
    ProviderConfig::from_vars(provider, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap()
}

/// Follows the authorize URL like a browser whose user approves; returns (code, state).
async fn approve(authorize_url: &str) -> (String, String) {
    let response = http_client().get(authorize_url).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "authorize answered {}",
        response.status()
    );
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    (q["code"].clone(), q["state"].clone())
}

async fn connect(config: &ProviderConfig) -> TokenSet {
    let pkce = config.pkce.then(Pkce::generate);
    let (code, state) = approve(&config.authorize_url("st+te/1", REDIRECT, pkce.as_ref())).await;
    assert_eq!(state, "st+te/1", "state comes back unchanged");
    config
        .exchange_code(
            &http_client(),
            &code,
            REDIRECT,
            pkce.as_ref().map(|p| &p.verifier),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn xero_oauth_with_pkce_rotation_grace_and_invalid_grant() {
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
    assert!(tokens.expires_at.is_some());
    let rt1 = tokens.refresh_token.clone().unwrap();

    // A wrong verifier is refused.
    let pkce = Pkce::generate();
    let (code, _) = approve(&cfg.authorize_url("s", REDIRECT, Some(&pkce))).await;
    let wrong = SecretString::new("not-the-verifier-not-the-verifier-0123456789");
    let err = cfg
        .exchange_code(&http_client(), &code, REDIRECT, Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectorError::Permanent("token endpoint refused: invalid_grant".into())
    );

    // Rotation: a refresh returns a new refresh token; the old one works once more (grace), then not.
    let t2 = cfg.refresh(&http_client(), &rt1).await.unwrap();
    assert_ne!(t2.refresh_token.as_ref().unwrap().expose(), rt1.expose());
    cfg.refresh(&http_client(), &rt1).await.unwrap();
    let err = cfg.refresh(&http_client(), &rt1).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Permanent(ref m) if m.contains("invalid_grant")),
        "{err:?}"
    );
    assert!(
        !format!("{err}").contains(rt1.expose()),
        "no token in errors"
    );

    // Wrong client secret: Basic auth refused.
    let bad = config(
        Provider::Xero,
        xero_client(),
        "nope",
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let err = bad
        .refresh(&http_client(), t2.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectorError::Permanent("token endpoint refused: invalid_client".into())
    );
}

fn xero_client() -> &'static str {
    zixly_testkit::fakes::xero::CLIENT_ID
}
fn xero_secret() -> &'static str {
    zixly_testkit::fakes::xero::CLIENT_SECRET
}

#[tokio::test]
async fn xero_pages_incremental_changes_and_classified_failures() {
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
    fake.data
        .lock()
        .unwrap()
        .organisations
        .push(("org-2".into(), "Second".into()));
    let conns = xero::connections(&http_client(), &cfg.api_url, &tokens.access_token)
        .await
        .unwrap();
    assert!(matches!(
        xero::choose_organisation(&conns, None),
        Err(ConnectorError::Permanent(_))
    ));
    let org = xero::choose_organisation(&conns, Some("org-2")).unwrap();

    for i in 0..2500 {
        fake.upsert("Invoices", "InvoiceID", json!({"InvoiceID": format!("inv-{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
            "Contact": {"ContactID": format!("c-{}", i % 7)}, "Date": "/Date(1704067200000+0000)/", "SubTotal": 10.5}));
    }
    let start = fake.data.lock().unwrap().now;
    let client = xero::XeroClient::new(
        http_client(),
        &cfg.api_url,
        tokens.access_token.clone(),
        org.tenant_id.clone(),
    );
    let all = client.invoices(None).await.unwrap();
    assert_eq!(all.len(), 2500);
    assert_eq!(
        client.calls.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "the minimum pages of 1000"
    );

    // An hour later one invoice is voided: an incremental read sees only it, as VOIDED.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "inv-3", "Type": "ACCREC", "Status": "VOIDED",
        "Contact": {"ContactID": "c-3"}, "Date": "/Date(1704067200000+0000)/", "SubTotal": 10.5}),
    );
    let changed = client
        .invoices(Some(start + chrono::Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    let c = xero::contributions(&changed, &[], &HashMap::new(), "Client");
    assert!(c[0].removed && c[0].document_id == "inv-3");

    fake.oauth.inject(Fault::RateLimited { retry_after: 17 });
    assert_eq!(
        client.invoices(None).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(17)
        }
    );
    fake.oauth.inject(Fault::Status(503));
    assert!(matches!(
        client.invoices(None).await.unwrap_err(),
        ConnectorError::Transient(_)
    ));

    // Expiry mid-sync: Xero's TokenExpired 401 is Unauthorized; a refreshed token works again.
    fake.oauth.expire_access_tokens();
    let err = client.contacts(None).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unauthorized(ref m) if m.contains("TokenExpired")),
        "{err:?}"
    );
    let fresh = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let client = xero::XeroClient::new(
        http_client(),
        &cfg.api_url,
        fresh.access_token,
        org.tenant_id,
    );
    assert_eq!(client.invoices(None).await.unwrap().len(), 2500);

    // An organisation that is not connected is refused.
    let other = xero::XeroClient::new(
        http_client(),
        &cfg.api_url,
        tokens.access_token,
        "org-x".into(),
    );
    assert!(matches!(
        other.invoices(None).await,
        Err(ConnectorError::Unauthorized(_) | ConnectorError::Permanent(_))
    ));
}

#[tokio::test]
async fn xero_bank_transactions_page_incrementally_and_map_to_client_days() {
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
    for i in 0..1500 {
        fake.upsert("BankTransactions", "BankTransactionID", json!({"BankTransactionID": format!("bt-{i}"),
            "Type": "SPEND", "Status": "AUTHORISED", "Date": "/Date(1704067200000+0000)/",
            "LineItems": [{"LineAmount": 1, "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}));
    }
    let start = fake.data.lock().unwrap().now;
    let client = xero::XeroClient::new(
        http_client(),
        &cfg.api_url,
        tokens.access_token.clone(),
        "org-1".into(),
    );
    assert_eq!(client.bank_transactions(None).await.unwrap().len(), 1500);
    assert_eq!(
        client.calls.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "pages of 1000"
    );

    // Later one is voided: the incremental read returns only it, and it maps to a removal.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": "bt-7",
        "Type": "SPEND", "Status": "VOIDED", "Date": "/Date(1704067200000+0000)/",
        "LineItems": [{"LineAmount": 1, "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}),
    );
    let changed = client
        .bank_transactions(Some(start + chrono::Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
    let c = xero::bank_transaction_contributions(&changed, &names, "Client");
    assert_eq!(c.len(), 1);
    assert_eq!(
        (
            c[0].document_id.as_str(),
            c[0].client_id.as_str(),
            c[0].removed
        ),
        ("bt:bt-7", "c1", true)
    );
    let all = client.bank_transactions(None).await.unwrap();
    let c = xero::bank_transaction_contributions(&all, &names, "Client");
    assert_eq!(c.iter().filter(|c| !c.removed).count(), 1499);
    assert_eq!(
        c.iter().map(|c| c.expenses).sum::<rust_decimal::Decimal>(),
        rust_decimal::Decimal::from(1499)
    );
}

#[tokio::test]
async fn hubspot_body_auth_after_cursor_history_and_expiry() {
    let fake = FakeHubspot::start().await;
    let cfg = config(
        Provider::Hubspot,
        zixly_testkit::fakes::hubspot::CLIENT_ID,
        zixly_testkit::fakes::hubspot::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    assert!(!cfg.pkce);
    let tokens = connect(&cfg).await;
    assert_eq!(tokens.extra["hub_id"], 4242);
    fake.data.lock().unwrap().pipelines = vec![
        json!({"id": "default", "label": "Sales", "displayOrder": 0, "archived": false,
        "stages": [{"id": "s1", "label": "Qualified", "displayOrder": 0, "metadata": {"probability": "0.2", "isClosed": "false"}},
                   {"id": "won", "label": "Closed won", "displayOrder": 1, "metadata": {"probability": "1.0", "isClosed": "true"}}]}),
    ];
    for i in 0..120 {
        fake.add("deals", json!({"id": i.to_string(), "archived": i >= 115,
            "properties": {"amount": "100.25", "dealstage": "won", "pipeline": "default", "hs_is_closed": "true", "hs_is_closed_won": "true",
                           "hs_lastmodifieddate": "2024-01-02T00:00:00.000Z"},
            "propertiesWithHistory": {"dealstage": [{"value": "s1", "timestamp": "2024-01-01T00:00:00.000Z", "sourceType": "CRM_UI"},
                                                    {"value": "won", "timestamp": "2024-01-02T00:00:00.000Z", "sourceType": "CRM_UI"}]},
            "associations": {"companies": {"results": [{"id": "co-1", "type": "deal_to_company"}]}},
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z"}));
    }
    let client =
        hubspot::HubspotClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());
    let deals = client.deals(false).await.unwrap();
    assert_eq!(deals.len(), 115);
    assert_eq!(
        client.calls.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "50 + 50 + 15, stopping when paging disappears"
    );
    let archived = client.deals(true).await.unwrap();
    assert_eq!(archived.len(), 5);
    let pipelines = client.pipelines().await.unwrap();
    let (events, skipped) =
        hubspot::lead_events(&deals, &pipelines, &HashMap::new(), chrono::Utc::now());
    assert_eq!((events.len(), skipped), (230, 0));
    assert_eq!(
        (events[1].stage.as_str(), events[1].status),
        ("Closed won", "won")
    );

    fake.oauth.inject(Fault::RateLimited { retry_after: 1 });
    assert_eq!(
        client.companies().await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(1)
        }
    );
    fake.oauth.expire_access_tokens();
    let err = client.companies().await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unauthorized(ref m) if m.contains("EXPIRED_AUTHENTICATION")),
        "{err:?}"
    );
    // HubSpot keeps the refresh token.
    let fresh = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        fresh.refresh_token.unwrap().expose(),
        tokens.refresh_token.unwrap().expose()
    );
}
