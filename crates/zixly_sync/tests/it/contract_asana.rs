//! Asana against `contracts/asana.json`.

use serde_json::json;
use zixly_queue::JobState;
use zixly_testkit::contracts::{check_requests, check_responses, load};
use zixly_testkit::fakes::recorded;

use crate::asana::asana;
use crate::contracts::assert_conforms;

#[tokio::test]
async fn asana_requests_and_answers_follow_the_contract() {
    let (fake, env) = asana().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task("t6", &["p1"], None, Some("2024-01-11"));
    fake.delete_task("t5");
    fake.move_task("t3", &["p1"]);
    fake.upsert_task("t4", &["p3"], None, Some("2024-02-01"));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // An expired token: 412 with a fresh one, then a complete read.
    fake.expire_sync_tokens();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let rec = assert_conforms("asana", &fake.url);
    // The events feed was among what was judged: 412s and pages with every kind of event.
    let feed: Vec<_> = rec.iter().filter(|r| r.path == "/api/1.0/events").collect();
    assert!(
        feed.iter()
            .any(|r| r.status == 412 && r.response.as_ref().is_some_and(|b| b["sync"].is_string())),
        "a 412 with its fresh token was recorded"
    );
    let actions: std::collections::BTreeSet<&str> = feed
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.response.as_ref()?["data"].as_array())
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["added", "changed", "deleted", "removed"].into(),
        "events answered"
    );
}

/// The recorded checks bite on the events feed end to end: an event with a misspelt field
/// (`acton`) and one with an undocumented action, really served by the fake to the runner, are
/// each reported; the rest of the traffic is clean. (The runner refuses an event without its
/// `action`: the run fails rather than guess what the event meant.)
#[tokio::test]
async fn a_wrong_event_served_by_the_fake_is_reported() {
    let (fake, env) = asana().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    {
        let mut d = fake.data.lock().unwrap();
        let event = |action: &str| {
            json!({"user": null, "resource": {"gid": "t4", "resource_type": "task", "name": "Task t4"},
                   "type": "task", "parent": null, "created_at": "2024-01-20T01:00:00.000Z",
                   "action": action})
        };
        let mut misspelt = event("changed");
        misspelt["acton"] = misspelt["action"].take();
        misspelt.as_object_mut().unwrap().remove("action");
        d.push_event("p3", misspelt);
        d.push_event("p3", event("moved"));
    }
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Discarded);
    assert!(
        errors.to_string().contains("missing field `action`"),
        "{errors}"
    );
    let c = load("asana");
    let rec = recorded(&fake.url);
    let found: Vec<String> = check_responses(&c, &rec)
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        found,
        vec![
            "asana events: $.data[0].acton: expected a documented field, found undocumented field acton",
            "asana events: $.data[1].action: expected one of changed, added, removed, deleted, undeleted, found moved",
        ],
    );
    assert!(check_requests(&c, &rec).is_empty());
}
