//! HubSpot against `contracts/hubspot.json`, and the contract's number-affecting edge cases end
//! to end.

use serde_json::json;
use zixly_queue::JobState;

use crate::contracts::assert_conforms;
use crate::hubspot::{change, deal, events, hubspot};

#[tokio::test]
async fn hubspot_requests_and_answers_follow_the_contract() {
    let (fake, env) = hubspot().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    change(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_conforms("hubspot", &fake.url);
}

/// Edge case `primary_company`: a deal associated with two companies belongs to its primary one
/// (marked only in the v4 associations), whatever order the v3 list gives; both the full
/// listing and an increment (one deal read by id) resolve it, with documented requests.
#[tokio::test]
async fn a_multi_company_deal_goes_to_its_primary_company() {
    let (fake, env) = hubspot().await;
    // Deal 7: primary company co-1 (stored as `deal_to_company`), also associated with co-2;
    // the fake lists co-2 first.
    let mut d7 = deal(
        "7",
        Some("co-1"),
        "700",
        &[("s1", "2024-01-04T09:00:00.000Z")],
    );
    d7["associations"]["companies"]["results"] = json!([
        {"id": "co-2", "type": "deal_to_company_unlabeled"},
        {"id": "co-1", "type": "deal_to_company"}
    ]);
    fake.add("deals", d7.clone());
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let of_7 = |ev: Vec<crate::hubspot::Event>| -> Vec<(String, String)> {
        ev.into_iter()
            .filter(|e| e.0 == "7")
            .map(|e| (e.1, e.5))
            .collect()
    };
    assert_eq!(
        of_7(events(&env).await),
        vec![("co-1".to_string(), "700.00".to_string())],
        "full read: the primary company, once"
    );
    assert_eq!(
        fake.requests("GET /crm/v4/objects/deals/7/associations/companies"),
        1,
        "only the multi-company deal needs the v4 read"
    );

    // The primary company changes to co-2 (an increment reads deal 7 by id).
    d7["associations"]["companies"]["results"] = json!([
        {"id": "co-2", "type": "deal_to_company"},
        {"id": "co-1", "type": "deal_to_company_unlabeled"}
    ]);
    fake.modify("deals", d7);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        of_7(events(&env).await),
        vec![("co-2".to_string(), "700.00".to_string())],
        "increment: moved to the new primary company"
    );
    assert_conforms("hubspot", &fake.url);
}

/// Edge case `home_currency`: a deal without `deal_currency_code` is in the portal's company
/// currency (`/account-info/v3/details`), not the tenant's (AUD here); a deal with its own
/// currency keeps it.
#[tokio::test]
async fn an_amount_without_deal_currency_is_in_the_portals_company_currency() {
    let (fake, env) = hubspot().await;
    fake.data.lock().unwrap().account = Some(json!({"portalId": 4242, "companyCurrency": "USD",
        "additionalCurrencies": ["AUD"], "timeZone": "America/New_York"}));
    let mut d8 = deal(
        "8",
        Some("co-2"),
        "80",
        &[("s1", "2024-01-01T09:00:00.000Z")],
    );
    d8["properties"]["deal_currency_code"] = json!("AUD");
    fake.add("deals", d8);
    let su = env.db.superuser().await;
    su.execute(
        "insert into fx_rates (rate_date, base_currency, quote_currency, rate)
         select d, 'EUR', q, r from generate_series('2023-12-25'::date, '2024-01-10', '1 day') d,
                (values ('USD', 1.10), ('AUD', 1.65)) v(q, r)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let rows: Vec<(String, String, String)> = su
        .query(
            "select lead_id, currency::text, value::text from lead_events
              where source_system = 'hubspot' and lead_id in ('1', '8') order by lead_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1".into(), "USD".into(), "100.00".into()),
            ("8".into(), "AUD".into(), "80.00".into()),
        ]
    );
    assert_conforms("hubspot", &fake.url);
}

/// The recorded checks bite end to end: a fake answer with a misspelt property (`ammount`) and a
/// request with an undocumented parameter, both really served by the fake, are each reported.
#[tokio::test]
async fn recorded_traffic_with_a_wrong_field_or_parameter_is_reported() {
    use zixly_testkit::contracts::{check_requests, check_responses, load};
    use zixly_testkit::fakes::recorded;

    let (fake, env) = hubspot().await;
    let mut bad = deal(
        "9",
        Some("co-1"),
        "90",
        &[("s1", "2024-01-04T09:00:00.000Z")],
    );
    bad["properties"]["ammount"] = json!("90");
    fake.add("deals", bad);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let c = load("hubspot");
    let answers = check_responses(&c, &recorded(&fake.url));
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        answers[0].to_string(),
        "hubspot deals_list: $.results[5].properties.ammount: expected a documented field, found undocumented field ammount"
    );
    assert!(check_requests(&c, &recorded(&fake.url)).is_empty());

    // An undocumented query parameter sent to the fake (as a wrong connector would).
    zixly_testkit::fakes::clear_recorded(&fake.url);
    let _ = zixly_connectors::http_client()
        .get(format!("{}/crm/v3/pipelines/deals?page_size=5", fake.url))
        .bearer_auth("at-unknown")
        .send()
        .await
        .unwrap();
    let requests = check_requests(&c, &recorded(&fake.url));
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].subject, "query parameter page_size");
}
