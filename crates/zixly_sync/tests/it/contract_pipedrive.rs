//! Pipedrive against `contracts/pipedrive.json`.

use serde_json::json;
use zixly_queue::JobState;

use crate::contracts::assert_conforms;
use crate::pipedrive::pipedrive;

#[tokio::test]
async fn pipedrive_requests_and_answers_follow_the_contract() {
    let (fake, env) = pipedrive().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_deal(json!({"id": 5, "org_id": 2, "pipeline_id": 1, "stage_id": 1, "status": "open", "value": 7}));
    fake.delete_deal(1);
    fake.archive_deal(2);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_conforms("pipedrive", &fake.url);
}
