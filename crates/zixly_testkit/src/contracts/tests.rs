//! The contract checks judged by known-good and deliberately wrong requests and responses.

use super::*;
use serde_json::json;

/// `contracts/` is byte-identical to `../shared/contracts` (relative to the workspace root)
/// when that directory exists, so the copy a fresh clone tests with is the one the team keeps.
#[test]
fn contracts_match_shared_copy() {
    let ours = contracts_dir();
    let shared = ours.join("../../shared/contracts");
    if !shared.is_dir() {
        println!("note: {} absent; not compared", shared.display());
        return;
    }
    let names = |dir: &PathBuf| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&ours), names(&shared), "file lists differ");
    for name in names(&shared) {
        let a = std::fs::read(ours.join(&name)).unwrap();
        let b = std::fs::read(shared.join(&name)).unwrap();
        assert!(
            a == b,
            "contracts/{name} differs from {}",
            shared.join(&name).display()
        );
    }
}

#[test]
fn every_contract_loads_with_endpoints_and_scopes() {
    for p in PROVIDERS {
        let c = load(p);
        assert!(!c.endpoints().is_empty(), "{p}: no endpoints");
        assert!(!c.oauth_scopes().is_empty(), "{p}: no scopes");
        assert!(
            c.required_headers().contains(&"Authorization".to_string()),
            "{p}"
        );
        assert!(!c.oauth_paths().is_empty(), "{p}: no OAuth URLs");
    }
}

#[test]
fn path_templates_match() {
    assert!(path_matches(
        "/crm/v4/objects/deals/{dealId}/associations/companies",
        "/crm/v4/objects/deals/7/associations/companies"
    ));
    assert!(!path_matches(
        "/crm/v3/objects/deals/{id}",
        "/crm/v3/objects/deals"
    ));
    assert!(path_matches("/a/{X|Y}", "/a/y"));
    assert!(!path_matches("/a/{X|Y}", "/a/z"));
    let myob = load("myob");
    assert_eq!(
        myob.endpoint("debit_settlements_refunds").path_templates(),
        [
            "/accountright/{businessId}/Purchase/DebitSettlement",
            "/accountright/{businessId}/Purchase/DebitRefund"
        ]
    );
}

fn request(method: &str, path: &str, query: &[(&str, &str)]) -> RecordedRequest {
    RecordedRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: vec![("authorization".into(), "Bearer at-1".into())],
        status: 200,
        ..Default::default()
    }
}

/// The checks bite: an undocumented query parameter, a documented one out of range or off its
/// enum, a missing required header, an undocumented path and an undocumented scope are each
/// reported; a documented request is not.
#[test]
fn request_checks_report_each_kind_of_violation() {
    let c = load("pipedrive");
    let good = request(
        "GET",
        "/api/v2/deals",
        &[("limit", "500"), ("updated_since", "2024-01-01T00:00:00Z")],
    );
    assert_no_violations("documented request", &check_requests(&c, &[good]));

    let v = check_requests(
        &c,
        &[request("GET", "/api/v2/deals", &[("page_size", "100")])],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "query parameter page_size");
    assert!(
        v[0].to_string()
            .starts_with("pipedrive deals: query parameter page_size: expected one of "),
        "{}",
        v[0]
    );

    let v = check_requests(&c, &[request("GET", "/api/v2/deals", &[("limit", "501")])]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].expected, "at most 500");

    let v = check_requests(
        &c,
        &[request("GET", "/api/v2/deals", &[("sort_direction", "up")])],
    );
    assert_eq!(v.len(), 1, "{v:?}");

    let mut no_auth = request("GET", "/api/v2/stages", &[]);
    no_auth.headers.clear();
    let v = check_requests(&c, &[no_auth]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "header Authorization");

    let v = check_requests(&c, &[request("GET", "/api/v2/leads", &[])]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "endpoint");

    let h = load("hubspot");
    let mut auth = request(
        "GET",
        "/oauth/authorize",
        &[("scope", "crm.objects.deals.read crm.objects.contacts.write")],
    );
    auth.headers.clear();
    let v = check_requests(&h, &[auth]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "scope crm.objects.contacts.write");
    assert!(
        v[0].to_string()
            .contains("found crm.objects.contacts.write"),
        "{}",
        v[0]
    );
}

/// An endpoint's own `headers` list is what it requires; the contract's `headers.required`
/// applies to the others. Xero's `/connections` (no tenant yet) needs no `xero-tenant-id`, while
/// an accounting endpoint does.
#[test]
fn an_endpoints_own_header_list_wins_over_the_contracts() {
    let x = load("xero");
    assert_no_violations(
        "connections without a tenant header",
        &check_requests(&x, &[request("GET", "/connections", &[])]),
    );
    let v = check_requests(&x, &[request("GET", "/api.xro/2.0/Organisation", &[])]);
    let subjects: Vec<&str> = v.iter().map(|v| v.subject.as_str()).collect();
    assert!(subjects.contains(&"header xero-tenant-id"), "{v:?}");
}

/// The checks bite on responses: a misspelt field name, a wrong type, an off-enum value, a bad
/// format and a missing required field are each reported; a documented item is not.
#[test]
fn response_checks_report_each_kind_of_violation() {
    let c = load("hubspot");
    let e = c.endpoint("deals_list");
    let item = json!({"id": "1", "archived": false,
        "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-05T00:00:00.000Z",
        "properties": {"amount": "1500.50", "dealstage": "won", "hs_is_closed": "true", "closedate": null, "deal_currency_code": "AUD"},
        "associations": {"companies": {"results": [{"id": "9", "type": "deal_to_company"}]}}});
    assert_no_violations(
        "documented item",
        &check_response_items(&e, &json!({"results": [item.clone()]})),
    );

    let mut bad = item.clone();
    bad["properties"]["ammount"] = json!("10");
    let v = check_response_items(&e, &json!({"results": [bad]}));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "$.results[0].properties.ammount");
    assert_eq!(v[0].to_string(), "hubspot deals_list: $.results[0].properties.ammount: expected a documented field, found undocumented field ammount");

    let mut bad = item.clone();
    bad["properties"]["amount"] = json!(1500.5);
    bad["properties"]["hs_is_closed"] = json!("yes");
    bad["createdAt"] = json!("2024-01-01");
    bad.as_object_mut().unwrap().remove("updatedAt");
    let v = check_response_items(&e, &json!({"results": [bad]}));
    let subjects: BTreeSet<&str> = v.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "$.results[0].properties.amount",
            "$.results[0].properties.hs_is_closed",
            "$.results[0].createdAt",
            "$.results[0].updatedAt"
        ]),
        "{v:?}"
    );
    let v = check_response_items(&e, &json!({"items": []}));
    assert_eq!(v.len(), 1, "{v:?}");
}

/// Asana's events feed: a documented event and envelope pass; a misspelt event field, an
/// off-enum action, a missing or mistyped envelope key, an undocumented one, and a 412 body
/// without its fresh `sync` are each reported, through `check_responses` as a test sees them.
#[test]
fn events_items_envelope_and_412_body_are_checked() {
    let c = load("asana");
    let event = json!({"user": {"gid": "1", "resource_type": "user", "name": "U"},
        "resource": {"gid": "t1", "resource_type": "task", "name": "T"}, "type": "task",
        "action": "removed", "parent": {"gid": "p1", "resource_type": "project", "name": "P"},
        "created_at": "2024-01-20T00:00:00.000Z"});
    let answer = |status: u16, body: Value| RecordedRequest {
        response: Some(body),
        status,
        ..request(
            "GET",
            "/api/1.0/events",
            &[("resource", "p1"), ("sync", "x")],
        )
    };
    let ok = json!({"data": [event.clone()], "sync": "s2", "has_more": false});
    assert_no_violations(
        "documented events",
        &check_responses(&c, &[answer(200, ok.clone())]),
    );
    assert_no_violations(
        "documented request",
        &check_requests(&c, &[answer(200, ok)]),
    );

    let mut bad = event.clone();
    let action = bad["action"].take();
    bad.as_object_mut().unwrap().remove("action");
    bad["acton"] = action;
    let v = check_responses(
        &c,
        &[answer(
            200,
            json!({"data": [bad], "sync": "s", "has_more": false}),
        )],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].to_string(),
        "asana events: $.data[0].acton: expected a documented field, found undocumented field acton"
    );

    let mut bad = event.clone();
    bad["action"] = json!("moved");
    let v = check_responses(
        &c,
        &[answer(
            200,
            json!({"data": [bad], "sync": "s", "has_more": false}),
        )],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].subject, "$.data[0].action");

    let v = check_responses(
        &c,
        &[answer(200, json!({"data": [], "sync": 7, "more": true}))],
    );
    let subjects: BTreeSet<&str> = v.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["$.sync", "$.has_more", "$.more"]),
        "{v:?}"
    );

    let fresh = json!({"errors": [{"message": "Sync token invalid or too old."}], "sync": "s3"});
    assert_no_violations(
        "documented 412",
        &check_responses(&c, &[answer(412, fresh)]),
    );
    let v = check_responses(
        &c,
        &[answer(
            412,
            json!({"errors": [{"message": "too old", "code": 1}]}),
        )],
    );
    let subjects: BTreeSet<&str> = v.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["$.sync", "$.errors[0].code"]),
        "{v:?}"
    );
    assert_eq!(v[0].endpoint, "events (HTTP 412)");
}

#[test]
fn formats() {
    assert!(check_format(
        "ISO 8601 UTC date-time with milliseconds, e.g. 2012-02-22T02:06:58.147Z",
        "2012-02-22T02:06:58.147Z"
    )
    .is_ok());
    assert!(check_format(
        "ISO 8601 UTC date-time with milliseconds, e.g. 2012-02-22T02:06:58.147Z",
        "2012-02-22T02:06:58Z"
    )
    .is_err());
    assert!(check_format(
        "RFC 3339 UTC, e.g. 2025-01-01T10:20:00Z",
        "2025-01-01T10:20:00+10:00"
    )
    .is_err());
    assert!(check_format("YYYY-MM-DD", "2025-01-31").is_ok());
    assert!(check_format("YYYY-MM-DD", "2025-01-31T00:00:00Z").is_err());
    assert!(check_format("decimal as string", "-12.50").is_ok());
    assert!(check_format("decimal as string", "12,50").is_err());
    assert!(check_format("uuid", "not-a-uuid").is_err());
    assert!(check_format("msdate", "/Date(1518685950940+0000)/").is_ok());
    assert!(check_format("date-time without zone", "2019-12-07T18:46:19.5165400").is_ok());
    assert!(check_format("date-time without zone", "2019-12-07T18:46:19Z").is_err());
}
