//! Pipedrive connector against the fake Pipedrive.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use zixly_connectors::pipedrive::{self, PipedriveClient};
use zixly_connectors::{http_client, ConnectorError, Provider, ProviderConfig, TokenSet};
use zixly_testkit::fakes::oauth::Fault;
use zixly_testkit::fakes::pipedrive::{FakePipedrive, CLIENT_ID, CLIENT_SECRET};

use super::{config, connect};

async fn setup() -> (FakePipedrive, ProviderConfig, TokenSet, PipedriveClient) {
    let fake = FakePipedrive::start().await;
    // The configured API root is deliberately wrong: calls must go to the token's api_domain.
    let cfg = config(
        Provider::Pipedrive,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        "http://127.0.0.1:9",
    );
    let tokens = connect(&cfg).await;
    let base = pipedrive::api_base(&tokens.extra, &cfg.api_url);
    assert_eq!(base, fake.url, "api_domain from the token answer");
    let client = PipedriveClient::new(http_client(), &base, tokens.access_token.clone());
    (fake, cfg, tokens, client)
}

fn seed(fake: &FakePipedrive, deals: i64) {
    fake.data.lock().unwrap().stages = vec![
        json!({"id": 1, "order_nr": 1, "name": "Qualified", "is_deleted": false, "deal_probability": 20,
               "pipeline_id": 1, "is_deal_rot_enabled": true, "days_to_rotten": 14}),
        json!({"id": 2, "order_nr": 2, "name": "Negotiation", "is_deleted": false, "deal_probability": 80,
               "pipeline_id": 1, "is_deal_rot_enabled": false, "days_to_rotten": null}),
    ];
    for o in 1..=3 {
        fake.upsert_organization(json!({"id": o, "name": format!("Org {o}"), "owner_id": 1}));
    }
    // One deal every two minutes: only the last one is within the cursor's safety margin.
    for i in 1..=deals {
        fake.tick(chrono::Duration::minutes(2));
        fake.upsert_deal(json!({"id": i, "title": format!("Deal {i}"), "owner_id": 1, "org_id": 1 + i % 3,
            "pipeline_id": 1, "stage_id": 1 + i % 2, "value": 250.75, "currency": "EUR", "status": "open",
            "probability": null, "lost_reason": null, "expected_close_date": "2024-06-30",
            "custom_fields": {"0123456789abcdef0123456789abcdef01234567": null}}));
    }
}

fn ids<'a>(it: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    it.map(str::to_string).collect()
}

#[tokio::test]
async fn pipedrive_full_then_incremental_with_deleted_and_archived_deals() {
    let (fake, cfg, tokens, client) = setup().await;
    seed(&fake, 1200);
    let now = fake.now();

    let full = client.read(None, now).await.unwrap();
    assert_eq!(full.clients.len(), 3);
    assert_eq!(full.clients[0].name.as_deref(), Some("Org 1"));
    assert_eq!(full.events.len(), 1200);
    assert!(full.removed_leads.is_empty());
    // organizations 1 + stages 1 + deals 500/500/200 + archived 1 + deleted 1
    assert_eq!(client.calls.load(Ordering::Relaxed), 7);
    let e = full.events.iter().find(|e| e.lead_id == "2").unwrap();
    assert_eq!(
        (e.client_id.as_str(), e.stage.as_str(), e.status),
        ("3", "Qualified", "active")
    );
    assert_eq!(e.value, Some("250.75".parse().unwrap()));
    assert_eq!(e.currency.as_deref(), Some("EUR"));
    let cursor = full.cursor.expect("a cursor");
    assert_eq!(
        cursor,
        now - chrono::Duration::from_std(zixly_connectors::http::CURSOR_SAFETY).unwrap(),
        "the provider's clock at the start of the read, less the safety margin"
    );

    // An hour later: deal 5 is won, 6 deleted, 7 archived, a new organization appears.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_deal(
        json!({"id": 5, "org_id": 3, "pipeline_id": 1, "stage_id": 2, "value": 900,
        "currency": "USD", "status": "won", "add_time": "2024-01-01T00:05:00Z"}),
    );
    fake.delete_deal(6);
    fake.archive_deal(7);
    fake.upsert_organization(json!({"id": 4, "name": "Org 4"}));

    // The pitfall the fake emulates: a deleted deal is not among the deals updated since.
    let changed = client.deals(Some(cursor)).await.unwrap();
    assert!(changed.iter().all(|d| d.id != 6));

    let inc = client.read(Some(cursor), fake.now()).await.unwrap();
    assert_eq!(
        ids(inc.clients.iter().map(|c| c.client_id.as_str())),
        ids(["4"].into_iter())
    );
    assert_eq!(
        ids(inc.events.iter().map(|e| e.lead_id.as_str())),
        ids(["5", "7", "1200"].into_iter()),
        "changed deals, the archived one, and the last deal within the safety margin"
    );
    assert_eq!(inc.removed_leads, vec!["6".to_string()]);
    let won = inc.events.iter().find(|e| e.lead_id == "5").unwrap();
    assert_eq!(
        (won.status, won.stage.as_str(), won.currency.as_deref()),
        ("won", "Negotiation", Some("USD"))
    );
    assert!(inc.cursor.unwrap() > cursor);

    // Nothing changed: only the safety margin is re-read and the cursor stays.
    let again = client.read(inc.cursor, fake.now()).await.unwrap();
    assert_eq!(
        ids(again.clients.iter().map(|c| c.client_id.as_str())),
        ids(["4"].into_iter())
    );
    assert_eq!(
        ids(again.events.iter().map(|e| e.lead_id.as_str())),
        ids(["5", "7"].into_iter())
    );
    assert_eq!(again.cursor, inc.cursor);

    // A full read 15 days later: open deals in the rotting stage without updates are stale.
    fake.tick(chrono::Duration::days(15));
    let later = client.read(None, fake.now()).await.unwrap();
    let status = |id: &str| {
        later
            .events
            .iter()
            .find(|e| e.lead_id == id)
            .unwrap()
            .status
    };
    assert_eq!(status("1"), "active", "stage 2 does not rot");
    assert_eq!(status("2"), "stale", "stage 1 rots after 14 days");
    assert_eq!(status("5"), "won");
    assert_eq!(
        later.events.len(),
        1199,
        "the deleted deal is gone, the archived one kept"
    );

    // The refresh answer carries api_domain again.
    let fresh = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(pipedrive::api_base(&fresh.extra, &cfg.api_url), fake.url);
}

#[tokio::test]
async fn pipedrive_failures_are_classified() {
    let (fake, cfg, tokens, client) = setup().await;
    seed(&fake, 1100);

    // The token expires after two pages of a three-page read.
    fake.expire_tokens_after(2);
    let before = client.calls.load(Ordering::Relaxed);
    let err = client.deals(None).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unauthorized(ref m) if m.contains("unauthorized access")),
        "{err:?}"
    );
    assert_eq!(client.calls.load(Ordering::Relaxed) - before, 3);
    assert!(!format!("{err}").contains(tokens.access_token.expose()));

    let fresh = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let client = PipedriveClient::new(
        http_client(),
        &pipedrive::api_base(&fresh.extra, &cfg.api_url),
        fresh.access_token.clone(),
    );
    assert_eq!(client.deals(None).await.unwrap().len(), 1100);
    let rl = client.rate_limit();
    assert_eq!(
        rl.limit,
        Some(u64::from(zixly_testkit::fakes::pipedrive::BURST_LIMIT))
    );
    assert!(rl.remaining.is_some() && rl.reset.is_some(), "{rl:?}");

    // 429 without Retry-After: the wait comes from x-ratelimit-reset.
    fake.oauth.inject(Fault::RateLimited { retry_after: 30 });
    assert_eq!(
        client.organizations(None).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(30)
        }
    );
    // Until the window resets the client does not call again: it reports the wait.
    let served = fake.oauth.api_calls();
    assert!(matches!(
        client.stages().await.unwrap_err(),
        ConnectorError::RateLimited { .. }
    ));
    assert_eq!(fake.oauth.api_calls(), served);

    let client = PipedriveClient::new(http_client(), &fake.url, fresh.access_token.clone());
    for code in [500, 503, 504] {
        fake.oauth.inject(Fault::Status(code));
        assert!(
            matches!(
                client.stages().await.unwrap_err(),
                ConnectorError::Transient(_)
            ),
            "{code}"
        );
    }
    // A rejected refresh token is permanent.
    fake.oauth.revoke_refresh_tokens();
    let err = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectorError::Permanent("token endpoint refused: invalid_grant".into())
    );
}
