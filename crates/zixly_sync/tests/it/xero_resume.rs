//! Resumable, paced Xero runs (issue 10): a 429 in the middle of page N resumes at page N, a day
//! limit pauses the integration with a readable resume time, and a run that keeps making no
//! progress ends in ERROR — each checked against what the fake was asked (its request recording)
//! and what the database holds.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::record::{recorded, RecordedRequest};
use zixly_testkit::fakes::xero::{ms_date, FakeXero, CLIENT_ID, CLIENT_SECRET};

use crate::resume_kit::{assert_one_settled_run, assert_open_run_survives_the_sweep, run_rows};
use crate::sync::{config, connect, Env};

/// Documents a page in these tests (the fake's cap), so that a few hundred documents are pages.
const PAGE: usize = 50;
const INVOICES: usize = 230;
const PAYMENTS: usize = 120; // 3 pages (all stamped in one second)
/// Invoice pages a run asks for: 230 invoices over 6 seconds, 50 a page; the keyset restarts at
/// each page's newest second, so each page re-reads that second's documents (5 full pages and
/// one of 31: 281 documents read for 230).
const INVOICE_REQUESTS: usize = 6;

/// Contacts, invoices stamped over several seconds (so the keyset moves), payments on some.
pub(crate) async fn seeded() -> (FakeXero, Env) {
    let fake = FakeXero::start().await;
    fake.data.lock().unwrap().page_size_cap = Some(PAGE);
    for c in 0..10 {
        fake.upsert(
            "Contacts",
            "ContactID",
            json!({"ContactID": format!("c{c}"), "Name": format!("Client {c}"), "ContactStatus": "ACTIVE"}),
        );
    }
    let day0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    for i in 0..INVOICES {
        if i % 40 == 39 {
            // Several documents a second, several seconds: pages start mid-second.
            fake.tick(Duration::seconds(1));
        }
        fake.upsert(
            "Invoices",
            "InvoiceID",
            json!({"InvoiceID": format!("i{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
                   "Contact": {"ContactID": format!("c{}", i % 10)},
                   "Date": ms_date(day0 + Duration::days((i % 30) as i64)), "SubTotal": 10 + i}),
        );
    }
    for p in 0..PAYMENTS {
        fake.upsert(
            "Payments",
            "PaymentID",
            json!({"PaymentID": format!("p{p}"), "Status": "AUTHORISED",
                   "Date": ms_date(day0 + Duration::days((p % 30) as i64)), "Amount": 5,
                   "Invoice": {"InvoiceID": format!("i{p}"), "Type": "ACCREC",
                               "Contact": {"ContactID": format!("c{}", p % 10)}}}),
        );
    }
    let cfg = config(
        Provider::Xero,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let env = connect(cfg, json!({})).await;
    (fake, env)
}

/// The document-list requests the fake answered: (resource, If-Modified-Since, page, status).
pub(crate) fn document_requests(fake: &FakeXero) -> Vec<(String, String, String, u16)> {
    recorded(&fake.url)
        .iter()
        .filter(|r| {
            ["Invoices", "CreditNotes", "Payments", "BankTransactions"]
                .iter()
                .any(|d| r.path.ends_with(&format!("/{d}")))
        })
        .filter(|r| r.query_values("IDs").is_empty())
        .map(|r: &RecordedRequest| {
            (
                r.path.rsplit('/').next().unwrap().to_string(),
                r.header("if-modified-since").unwrap_or("").to_string(),
                r.query_values("page").first().unwrap_or(&"").to_string(),
                r.status,
            )
        })
        .collect()
}

/// Successful requests sent more than once.
pub(crate) fn repeated(
    requests: &[(String, String, String, u16)],
) -> Vec<(String, String, String, u16)> {
    let ok: Vec<_> = requests.iter().filter(|r| r.3 == 200).collect();
    let mut twice: Vec<_> = ok
        .iter()
        .filter(|r| ok.iter().filter(|o| o == r).count() > 1)
        .map(|r| (*r).clone())
        .collect();
    twice.dedup();
    twice
}

/// (revenue, cash flow) summed over the tenant's Xero rows, and the row count.
pub(crate) async fn totals(env: &Env) -> (String, String, i64) {
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select coalesce(sum(revenue), 0)::text, coalesce(sum(cash_flow), 0)::text, count(*)
               from financials where tenant_id = $1 and source_system = 'xero'",
            &[&env.tenant],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

pub(crate) fn expected_totals() -> (String, String) {
    let revenue: usize = (0..INVOICES).map(|i| 10 + i).sum();
    (format!("{revenue}.00"), format!("{}.00", PAYMENTS * 5))
}

/// (stream, pages read, items read, stalled attempts) of the stored checkpoint.
async fn checkpoint(env: &Env) -> Option<(Option<String>, i64, i64, i32)> {
    env.db
        .superuser()
        .await
        .query_opt(
            "select stream, pages_read, items_read, stalled_attempts from sync_checkpoints
              where tenant_id = $1 and integration_id = $2",
            &[&env.tenant, &env.integration],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

async fn make_jobs_due(env: &Env) {
    env.db
        .superuser()
        .await
        .execute(
            "update jobs set scheduled_at = now() where state in ('available', 'retryable')",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_uninterrupted_run_reads_every_page_once_and_settles() {
    let (fake, env) = seeded().await;
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    let (revenue, cash) = expected_totals();
    let (got_revenue, got_cash, days) = totals(&env).await;
    assert_eq!((got_revenue, got_cash), (revenue, cash));
    assert_one_settled_run(&env, days).await;
    let requests = document_requests(&fake);
    assert_eq!(repeated(&requests), vec![], "{requests:#?}");
    // Pages: 5 of invoices, 3 of payments, 1 each of the empty streams, whatever the keyset did.
    let per = |res: &str| requests.iter().filter(|r| r.0 == res).count();
    assert_eq!(
        (
            per("Invoices"),
            per("CreditNotes"),
            per("Payments"),
            per("BankTransactions")
        ),
        (INVOICE_REQUESTS, 1, 3, 1),
        "{requests:#?}"
    );
    assert_eq!(
        checkpoint(&env).await,
        None,
        "a settled run leaves no checkpoint"
    );
    // The keyset moved on: some page after the first was asked with If-Modified-Since.
    assert!(
        requests
            .iter()
            .any(|r| r.0 == "Invoices" && !r.1.is_empty()),
        "{requests:#?}"
    );
}

#[tokio::test]
async fn a_429_in_the_middle_of_page_n_resumes_at_page_n() {
    let (fake, env) = seeded().await;
    // The third invoices request is refused.
    fake.data
        .lock()
        .unwrap()
        .rate_limit_requests
        .push(("Invoices".into(), 3, 3));
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable, "snoozed for Retry-After");
    let (stream, pages_read, items_read, _) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(stream.as_deref(), Some("invoices"));
    assert_eq!(pages_read, 2, "the pages before the 429 are committed");
    assert_eq!(items_read, 2 * PAGE as i64);
    let before = document_requests(&fake);
    let refused: Vec<_> = before.iter().filter(|r| r.3 == 429).cloned().collect();
    assert_eq!(refused.len(), 1, "{before:#?}");
    assert_eq!(
        totals(&env).await.2,
        0,
        "nothing loaded before the run settles"
    );
    assert_open_run_survives_the_sweep(&env, 0).await;

    run_due(&env).await;
    let all = document_requests(&fake);
    let resumed = &all[before.len()..];
    let refused = &refused[0];
    assert_eq!(
        (&resumed[0].0, &resumed[0].1, &resumed[0].2, resumed[0].3),
        (&refused.0, &refused.1, &refused.2, 200),
        "the resumed attempt starts with the page that was refused: {all:#?}"
    );
    assert_eq!(repeated(&all), vec![], "no page read twice: {all:#?}");
    let invoices = all
        .iter()
        .filter(|r| r.0 == "Invoices" && r.3 == 200)
        .count();
    assert_eq!(invoices, INVOICE_REQUESTS, "{all:#?}");
    let (revenue, cash) = expected_totals();
    let (got_revenue, got_cash, days) = totals(&env).await;
    assert_eq!((got_revenue, got_cash), (revenue, cash));
    assert_eq!(checkpoint(&env).await, None);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    // One run row across both attempts: the settle loads every client-day once.
    assert_one_settled_run(&env, days).await;
}

async fn run_due(env: &Env) {
    make_jobs_due(env).await;
    let mut worker =
        zixly_queue::Worker::new(env.db.system.clone(), zixly_queue::WorkerConfig::default());
    env.engine.register(&mut worker, env.db.system.clone());
    worker.run_until_idle().await.unwrap();
}

async fn job_state(env: &Env) -> String {
    env.db
        .superuser()
        .await
        .query_one(
            "select state::text from jobs order by created_at desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_spent_day_limit_pauses_the_integration_until_the_resume_time_then_continues() {
    let (fake, env) = seeded().await;
    // Connections do not count; organisation, contacts and three document pages do.
    {
        let mut d = fake.data.lock().unwrap();
        d.day_remaining = Some(5);
        d.day_retry_after = 40_000;
    }
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable);
    let (paused_until, reason): (Option<chrono::DateTime<Utc>>, Option<String>) = env
        .db
        .superuser()
        .await
        .query_one(
            "select paused_until, pause_reason from integrations where id = $1",
            &[&env.integration],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    let until = paused_until.expect("paused");
    let wait = (until - Utc::now()).num_seconds();
    assert!(
        (39_000..=40_000).contains(&wait),
        "resumes in ~40000 s, not {wait}"
    );
    let reason = reason.unwrap();
    assert!(
        reason.contains("request budget is used up")
            && reason.contains("11 h 6 min")
            && reason.contains(&until.format("%Y-%m-%d %H:%M UTC").to_string()),
        "{reason}"
    );
    // Still ACTIVE (not an error), the job waits for the resume time, the checkpoint is kept.
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    let (stream, pages_read, _, _) = checkpoint(&env).await.unwrap();
    assert_eq!((stream.as_deref(), pages_read), (Some("invoices"), 3));
    let due_in: f64 = env
        .db
        .superuser()
        .await
        .query_one(
            "select extract(epoch from scheduled_at - now())::float8 from jobs",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        due_in > 39_000.0,
        "the job is snoozed to the resume time: {due_in}"
    );

    // The next day: the budget is back; the run continues from page 4 and pauses no more.
    fake.data.lock().unwrap().day_remaining = None;
    let before = document_requests(&fake).len();
    run_due(&env).await;
    let all = document_requests(&fake);
    assert_eq!(repeated(&all), vec![], "{all:#?}");
    assert_eq!(
        all[before..].iter().filter(|r| r.0 == "Invoices").count(),
        INVOICE_REQUESTS - 3,
        "the invoices pages after the third: {all:#?}"
    );
    let (revenue, cash) = expected_totals();
    let (got_revenue, got_cash, _) = totals(&env).await;
    assert_eq!((got_revenue, got_cash), (revenue, cash));
    let paused: Option<chrono::DateTime<Utc>> = env
        .db
        .superuser()
        .await
        .query_one(
            "select paused_until from integrations where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(paused, None, "the pause is cleared when the run resumes");
}

#[tokio::test]
async fn a_run_that_makes_no_progress_over_several_attempts_ends_in_error() {
    let (fake, env) = seeded().await;
    // Two pages, then every request for the third is refused.
    fake.data.lock().unwrap().rate_limit_requests =
        (3..40).map(|n| ("Invoices".to_string(), n, 1)).collect();
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable);
    for _ in 0..10 {
        if job_state(&env).await != "retryable" {
            break;
        }
        run_due(&env).await;
    }
    assert_eq!(
        job_state(&env).await,
        "discarded",
        "{:?}",
        env.integration_row().await
    );
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    let error = error.unwrap();
    assert!(
        error.contains("made no progress in 5 attempts in a row")
            && error.contains("stuck at invoices after 2 page(s)"),
        "{error}"
    );
    // 1 attempt that read 2 pages and was refused the third, then 5 that were refused it again;
    // the 7th attempt stops before asking.
    let refused = document_requests(&fake)
        .iter()
        .filter(|r| r.3 == 429)
        .count();
    assert_eq!(refused, 6);
    // The engine gave up: the run's open row is settled `failed`, the reason first.
    let rows = run_rows(&env).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            rows[0].status.as_str(),
            rows[0].finished,
            rows[0].has_cursor
        ),
        ("failed", true, false)
    );
    assert!(rows[0].errors[0].contains("made no progress"), "{rows:#?}");
    // The checkpoint stays: an admin's retry resumes from it.
    assert!(checkpoint(&env).await.is_some());
    fake.data.lock().unwrap().rate_limit_requests.clear();
    let before = document_requests(&fake).len();
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(
        state,
        JobState::Completed,
        "an admin's retry resumes: {errors}"
    );
    let all = document_requests(&fake);
    assert_eq!(repeated(&all), vec![], "{all:#?}");
    assert_eq!(
        all[before..].iter().filter(|r| r.0 == "Invoices").count(),
        INVOICE_REQUESTS - 2,
        "from the third invoices page: {all:#?}"
    );
    let (revenue, cash) = expected_totals();
    let (got_revenue, got_cash, _) = totals(&env).await;
    assert_eq!((got_revenue, got_cash), (revenue, cash));
    assert_eq!(env.integration_row().await.0, "ACTIVE");
    // The resumed reading is a run of its own: the failed row stays as it was.
    let after = run_rows(&env).await;
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(after[0], rows[0]);
    assert_eq!(
        (after[1].status.as_str(), after[1].has_cursor),
        ("succeeded", true)
    );
}
