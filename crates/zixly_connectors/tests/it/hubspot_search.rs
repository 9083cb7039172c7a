//! HubSpot search on `hs_lastmodifieddate` against the fake HubSpot: paging, the 10,000-result
//! cap split by restarting the window, and single-deal reads.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use zixly_connectors::hubspot::HubspotClient;
use zixly_connectors::{http_client, Provider};
use zixly_testkit::fakes::hubspot::{FakeHubspot, CLIENT_ID, CLIENT_SECRET};

use super::{config, connect};

const SEARCH: &str = "POST /crm/v3/objects/deals/search";

async fn setup() -> (FakeHubspot, HubspotClient) {
    let fake = FakeHubspot::start().await;
    let cfg = config(
        Provider::Hubspot,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let tokens = connect(&cfg).await;
    let client = HubspotClient::new(http_client(), &cfg.api_url, tokens.access_token);
    (fake, client)
}

fn deal(id: usize, modified: DateTime<Utc>) -> Value {
    json!({"id": id.to_string(), "archived": false,
        "properties": {"dealstage": "s1", "hs_lastmodifieddate":
            modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)},
        "associations": {"companies": {"results": [{"id": "co-1", "type": "deal_to_company"}]}}})
}

/// Seeds `n` deals; deal `i` modified at `at(i)`.
fn seed(fake: &FakeHubspot, n: usize, at: impl Fn(usize) -> DateTime<Utc>) {
    let mut d = fake.data.lock().unwrap();
    let list = d.objects.entry("deals".into()).or_default();
    list.extend((0..n).map(|i| deal(i, at(i))));
}

#[tokio::test]
async fn search_past_the_10k_cap_splits_the_window_and_reads_each_deal_once() {
    let (fake, client) = setup().await;
    let t0: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    // 10,150 modified at or after t0 (two per millisecond), 30 before it.
    seed(&fake, 10_180, |i| {
        t0 + Duration::milliseconds(i as i64 / 2 - 15)
    });
    let ids = client.modified_deal_ids(t0).await.unwrap().unwrap();
    let mut expected: Vec<String> = (30..10_180).map(|i| i.to_string()).collect();
    let mut got = ids.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every modified deal once, none older");
    // 50 pages of 200 reach the cap; the restarted window needs one more page.
    assert_eq!(fake.requests(SEARCH), 51);
}

#[tokio::test]
async fn a_window_that_cannot_be_split_asks_for_the_full_listing() {
    let (fake, client) = setup().await;
    let t0: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    seed(&fake, 10_001, |_| t0);
    assert_eq!(client.modified_deal_ids(t0).await.unwrap(), None);
}

#[tokio::test]
async fn a_small_increment_is_one_search_page_and_deals_are_read_with_history() {
    let (fake, client) = setup().await;
    let t0: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    seed(&fake, 5, |i| t0 + Duration::hours(i as i64 - 2));
    let ids = client.modified_deal_ids(t0).await.unwrap().unwrap();
    assert_eq!(ids, vec!["2", "3", "4"], "ascending by hs_lastmodifieddate");
    assert_eq!(fake.requests(SEARCH), 1);
    let d = client.deal("3").await.unwrap().unwrap();
    assert_eq!(d.associations["companies"].results[0].id, "co-1");
    fake.data.lock().unwrap().objects.get_mut("deals").unwrap()[3]["archived"] = json!(true);
    assert!(client.deal("3").await.unwrap().is_none(), "archived: 404");
}
