//! An access token that expires in the middle of a run (a long first sync outlives one): the
//! provider's 401 refreshes it and the runner starts again from the checkpoint as stored after
//! the pages that attempt committed — never from the one the attempt began with — so no
//! committed page is read twice, and the run stays one `sync_runs` row. Each test first runs the
//! same data uninterrupted to find the request that is page N, then expires the tokens just
//! before it. (Pipedrive: `pipedrive_resume`, whose fake counts its own requests.)

use zixly_queue::JobState;
use zixly_testkit::fakes::record::RecordedRequest;

use crate::resume_kit::{api_requests_before, assert_one_settled_run, served_twice};

/// `requests` has exactly one 401, on a request `is_page` selects.
fn one_refused_page(requests: &[(String, u16)], is_page: impl Fn(&str) -> bool) {
    let refused: Vec<_> = requests.iter().filter(|r| r.1 == 401).collect();
    assert_eq!(refused.len(), 1, "{requests:#?}");
    assert!(is_page(&refused[0].0), "the 401 is on a page: {refused:?}");
}

#[tokio::test]
async fn hubspot_token_expiring_mid_read_reads_no_committed_page_again() {
    use crate::hubspot_resume::{deal_requests, expected_totals, seeded, totals, DEALS};
    let live_page = |r: &RecordedRequest| {
        r.method == "GET"
            && r.path == "/crm/v3/objects/deals"
            && r.query_values("archived") == ["false"]
    };
    let n = {
        let (fake, env) = seeded().await;
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
        api_requests_before(&fake.url, 3, live_page)
    };
    let (fake, env) = seeded().await;
    fake.oauth.expire_tokens_after(n);
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(fake.oauth.refreshes(), 1);
    let all = deal_requests(&fake);
    one_refused_page(&all, |r| {
        r.starts_with("GET /crm/v3/objects/deals ") && r.contains(r#"("archived", "false")"#)
    });
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(totals(&env).await, expected_totals());
    assert_one_settled_run(&env, DEALS as i64).await;
}

#[tokio::test]
async fn asana_token_expiring_mid_read_reads_no_committed_page_again() {
    use crate::asana_resume::{expected, metrics, seeded, task_requests, ACME_PAGES};
    let acme_page = |r: &RecordedRequest| r.path == ACME_PAGES;
    let n = {
        let (fake, env) = seeded().await;
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
        api_requests_before(&fake.url, 2, acme_page)
    };
    let (fake, env) = seeded().await;
    fake.oauth.expire_tokens_after(n);
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(fake.oauth.refreshes(), 1);
    let all = task_requests(&fake);
    one_refused_page(&all, |r| r.starts_with(&format!("GET {ACME_PAGES} ")));
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(metrics(&env).await, expected());
    assert_one_settled_run(&env, expected().len() as i64).await;
}

#[tokio::test]
async fn xero_token_expiring_mid_read_reads_no_committed_page_again() {
    use crate::xero_resume::{document_requests, expected_totals, repeated, seeded, totals};
    let invoice_page =
        |r: &RecordedRequest| r.path.ends_with("/Invoices") && r.query_values("IDs").is_empty();
    let n = {
        let (fake, env) = seeded().await;
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
        api_requests_before(&fake.url, 3, invoice_page)
    };
    let (fake, env) = seeded().await;
    fake.oauth.expire_tokens_after(n);
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(fake.oauth.refreshes(), 1);
    let all = document_requests(&fake);
    let refused: Vec<_> = all.iter().filter(|r| r.3 == 401).collect();
    assert_eq!(refused.len(), 1, "{all:#?}");
    assert_eq!(refused[0].0, "Invoices", "{all:#?}");
    assert_eq!(repeated(&all), vec![], "no page read twice: {all:#?}");
    let (revenue, cash) = expected_totals();
    let (got_revenue, got_cash, days) = totals(&env).await;
    assert_eq!((got_revenue, got_cash), (revenue, cash));
    assert_one_settled_run(&env, days).await;
}

#[tokio::test]
async fn myob_token_expiring_mid_read_reads_no_committed_page_again() {
    use crate::myob::{assert_bulk_read_once, myob_with_bulk_invoices};
    let invoice_page = |r: &RecordedRequest| r.path.ends_with("/Sale/Invoice");
    let n = {
        let (fake, env) = myob_with_bulk_invoices().await;
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
        api_requests_before(&fake.url, 2, invoice_page)
    };
    let (fake, env) = myob_with_bulk_invoices().await;
    fake.oauth.expire_tokens_after(n);
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(fake.oauth.refreshes(), 1);
    assert_bulk_read_once(&fake, &env).await;
    let days = env.financials_of("myob").await.len() as i64;
    assert_one_settled_run(&env, days).await;
}
