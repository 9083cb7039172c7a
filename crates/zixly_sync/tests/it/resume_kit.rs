//! The harness the resumable-run tests share (`*_resume.rs`, `runs.rs`): what a fake was asked
//! (its request recording), which answers a run got twice, the stored checkpoint, and the
//! integration's `sync_runs` rows — all read independently of the code under test.

use serde_json::Value;
use zixly_testkit::fakes::record::{recorded, RecordedRequest};

use crate::sync::Env;

/// The requests recorded at `url` that `keep` selects, in order, as (what was asked: method,
/// path, sorted query and the JSON body when there is one; status).
pub(crate) fn answered(url: &str, keep: impl Fn(&RecordedRequest) -> bool) -> Vec<(String, u16)> {
    recorded(url)
        .iter()
        .filter(|r| keep(r))
        .map(|r| {
            let mut query = r.query.clone();
            query.sort();
            let mut asked = format!("{} {} {query:?}", r.method, r.path);
            if let Some(body) = &r.json_body {
                asked.push(' ');
                asked.push_str(&body.to_string());
            }
            (asked, r.status)
        })
        .collect()
}

/// Requests answered 200 more than once: pages a run read twice.
pub(crate) fn served_twice(requests: &[(String, u16)]) -> Vec<String> {
    let ok: Vec<&String> = requests
        .iter()
        .filter(|r| r.1 == 200)
        .map(|r| &r.0)
        .collect();
    let mut twice: Vec<String> = ok
        .iter()
        .enumerate()
        .filter(|(i, r)| ok[..*i].contains(r))
        .map(|(_, r)| (*r).clone())
        .collect();
    twice.dedup();
    twice
}

/// (stream, pages read, items read, items total, state) of the stored checkpoint.
pub(crate) async fn checkpoint(
    env: &Env,
) -> Option<(Option<String>, i64, i64, Option<i64>, Value)> {
    env.db
        .superuser()
        .await
        .query_opt(
            "select stream, pages_read, items_read, items_total, state from sync_checkpoints
              where tenant_id = $1 and integration_id = $2",
            &[&env.tenant, &env.integration],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

/// One `sync_runs` row of the integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRow {
    pub status: String,
    pub rows_read: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub has_cursor: bool,
    pub finished: bool,
    /// The reasons of its first errors.
    pub errors: Vec<String>,
}

/// The integration's `sync_runs` rows, oldest first.
pub(crate) async fn run_rows(env: &Env) -> Vec<RunRow> {
    env.db
        .superuser()
        .await
        .query(
            "select status::text, rows_read, rows_inserted, rows_updated, rows_unchanged,
                    rows_rejected, cursor is not null, finished_at is not null, errors
               from sync_runs where tenant_id = $1 and integration_id = $2
              order by started_at, id",
            &[&env.tenant, &env.integration],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| RunRow {
            status: r.get(0),
            rows_read: r.get(1),
            inserted: r.get(2),
            updated: r.get(3),
            unchanged: r.get(4),
            rejected: r.get(5),
            has_cursor: r.get(6),
            finished: r.get(7),
            errors: r
                .get::<_, Value>(8)
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["reason"].as_str().map(String::from))
                .collect(),
        })
        .collect()
}

/// The one run row a settled first run leaves: succeeded, with its cursor, `inserted` rows
/// inserted (every page's, not the last one's) and nothing else.
pub(crate) async fn assert_one_settled_run(env: &Env, inserted: i64) -> RunRow {
    let rows = run_rows(env).await;
    assert_eq!(rows.len(), 1, "one row for the whole run: {rows:#?}");
    let run = rows[0].clone();
    assert_eq!(
        (run.status.as_str(), run.has_cursor, run.finished),
        ("succeeded", true, true),
        "{run:?}"
    );
    assert_eq!(run.inserted, inserted, "the sum of the pages: {run:?}");
    run
}

/// An interrupted run waiting to resume: its one row is open (`running`, no cursor) with the
/// committed pages' `inserted` rows, and the orphan sweep of a worker start — which finds no
/// session holding it — leaves it alone, because the integration has a checkpoint.
pub(crate) async fn assert_open_run_survives_the_sweep(env: &Env, inserted: i64) {
    let rows = run_rows(env).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            rows[0].status.as_str(),
            rows[0].finished,
            rows[0].has_cursor
        ),
        ("running", false, false),
        "{rows:#?}"
    );
    assert_eq!(
        rows[0].inserted, inserted,
        "the committed pages': {rows:#?}"
    );
    let marked = env.db.system.interrupt_orphaned_sync_runs().await.unwrap();
    assert_eq!(marked, vec![], "a resumable run is not an orphan");
    assert_eq!(run_rows(env).await, rows);
}

/// How many API requests (those with a bearer token) the fake at `url` answered before the
/// `nth` (1-based) one that `is_page` selects, in an uninterrupted run's recording: for
/// `FakeOAuth::expire_tokens_after`, so that exactly that page is answered 401.
pub(crate) fn api_requests_before(
    url: &str,
    nth: usize,
    is_page: impl Fn(&RecordedRequest) -> bool,
) -> u64 {
    let api: Vec<RecordedRequest> = recorded(url)
        .into_iter()
        .filter(|r| {
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer "))
        })
        .collect();
    api.iter()
        .enumerate()
        .filter(|(_, r)| is_page(r))
        .nth(nth - 1)
        .map(|(i, _)| i as u64)
        .unwrap_or_else(|| panic!("fewer than {nth} pages in {api:#?}"))
}
