//! Asana against `contracts/asana.json`.

use zixly_queue::JobState;

use crate::asana::asana;
use crate::contracts::assert_conforms;

#[tokio::test]
async fn asana_requests_and_answers_follow_the_contract() {
    let (fake, env) = asana().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task("t6", &["p1"], None, Some("2024-01-11"));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_conforms("asana", &fake.url);
}
