//! The MYOB runner end to end through the job queue against the fake MYOB AccountRight.

use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::myob::{FakeMyob, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::recorded;

use crate::sync::{config, connect, f, Env};

const REDIRECT: &str = "http://zixly.test/api/v1/integrations/callback";

pub(crate) const CF: &str = "cf-1";

pub(crate) async fn myob() -> (FakeMyob, Env) {
    let fake = FakeMyob::start().await;
    let cfg = config(
        Provider::Myob,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    fake.upsert(
        CF,
        "Contact/Customer",
        json!({"UID": "c1", "CompanyName": "Acme Pty Ltd", "IsIndividual": false}),
    );
    fake.upsert(
        CF,
        "Contact/Customer",
        json!({"UID": "c2", "FirstName": "Jo", "LastName": "Bloggs", "IsIndividual": true}),
    );
    fake.upsert(
        CF,
        "GeneralLedger/Job",
        json!({"UID": "j1", "Number": "100", "Name": "Website", "LinkedCustomer": {"UID": "c1", "Name": "Acme Pty Ltd"}}),
    );
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i1", "Date": "2024-01-10T00:00:00",
        "Customer": {"UID": "c1"}, "TotalAmount": 110, "TotalTax": 10}),
    );
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i2", "Date": "2024-01-11T00:00:00",
        "Customer": {"UID": "c2"}, "TotalAmount": 55, "TotalTax": 5}),
    );
    fake.upsert(
        CF,
        "Purchase/Bill",
        json!({"UID": "b1", "Date": "2024-01-10T00:00:00",
        "IsTaxInclusive": false, "TotalAmount": 33, "TotalTax": 3,
        "Lines": [{"Total": 30, "Job": {"UID": "j1"}}, {"Total": 5, "Job": null}]}),
    );
    fake.upsert(
        CF,
        "Sale/CustomerPayment",
        json!({"UID": "p1", "Date": "2024-01-12T00:00:00",
        "Customer": {"UID": "c1"}, "AmountReceived": 110}),
    );
    fake.upsert(
        CF,
        "Banking/SpendMoneyTxn",
        json!({"UID": "s1", "Date": "2024-01-11T00:00:00",
        "Contact": {"UID": "c2", "Name": "Jo Bloggs"}, "AmountPaid": 20}),
    );
    let env = connect(cfg, json!({"myob_business_id": CF})).await;
    (fake, env)
}

async fn names(env: &Env) -> Vec<(String, String)> {
    env.db
        .superuser()
        .await
        .query(
            "select client_id, client_name from client_kpis order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn myob_full_incremental_deletions_on_complete_reads_and_expiry() {
    let (fake, env) = myob().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let full = vec![
        f("c1", "2024-01-10", "100.00", "30.00", "0.00"),
        f("c1", "2024-01-12", "0.00", "0.00", "110.00"),
        f("c2", "2024-01-11", "50.00", "0.00", "-20.00"),
    ];
    assert_eq!(env.financials_of("myob").await, full);
    assert_eq!(env.last_run().await, ("succeeded".into(), 3, 0, true));
    assert_eq!(
        names(&env).await,
        vec![
            ("c1".into(), "Acme Pty Ltd".into()),
            ("c2".into(), "Jo Bloggs".into())
        ]
    );

    // No change: nothing written.
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 0, true));
    assert_eq!(env.financials_of("myob").await, full);

    // Incremental ($filter on LastModified) with the token expiring mid-read.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i2", "Date": "2024-01-11T00:00:00",
        "Customer": {"UID": "c2"}, "TotalAmount": 66, "TotalTax": 6}),
    );
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i3", "Date": "2024-01-12T00:00:00",
        "Customer": {"UID": "c1"}, "TotalAmount": 11, "TotalTax": 1}),
    );
    fake.expire_tokens_after(4);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        fake.oauth.refreshes(),
        1,
        "refreshed once (rotating refresh token)"
    );
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 2, true));
    assert_eq!(
        env.financials_of("myob").await,
        vec![
            f("c1", "2024-01-10", "100.00", "30.00", "0.00"),
            f("c1", "2024-01-12", "10.00", "0.00", "110.00"),
            f("c2", "2024-01-11", "60.00", "0.00", "-20.00"),
        ]
    );

    // MYOB lists no deletions: an increment still counts deleted documents...
    fake.tick(chrono::Duration::hours(1));
    fake.delete(CF, "Sale/CustomerPayment", "p1");
    fake.delete(CF, "Sale/Invoice", "i3");
    fake.delete(CF, "Banking/SpendMoneyTxn", "s1");
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.financials_of("myob").await.len(), 3);
    // ...and the periodic complete read (here: every run) removes them, emptied days included.
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials_of("myob").await,
        vec![
            f("c1", "2024-01-10", "100.00", "30.00", "0.00"),
            f("c2", "2024-01-11", "60.00", "0.00", "0.00"),
        ]
    );
    // A complete read without changes writes nothing either.
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 0, true));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

#[tokio::test]
async fn myob_daily_rate_limit_snoozes_an_hour_and_a_revoked_grant_is_an_error() {
    let (fake, env) = myob().await;
    fake.data.lock().unwrap().daily_limit_reached = true;
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select attempt, scheduled_at > now() + interval '50 minutes' from jobs where kind = 'sync'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i32>(0), r.get::<_, bool>(1)),
        (0, true),
        "403 RateLimitError (daily): not counted, waits an hour"
    );
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    fake.data.lock().unwrap().daily_limit_reached = false;
    env.run_due_jobs().await;
    assert_eq!(env.financials_of("myob").await.len(), 3);

    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    assert_eq!(env.sync_via_queue().await.0, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    assert!(error.unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn myob_runs_killed_at_any_point_then_restarted_converge() {
    let (fake, env) = myob().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    // Complete reads (every run), so that deletions are part of what must converge.
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}'",
            &[],
        )
        .await
        .unwrap();
    fake.tick(chrono::Duration::hours(1));
    fake.delete(CF, "Sale/CustomerPayment", "p1");
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i1", "Date": "2024-01-11T00:00:00",
        "Customer": {"UID": "c1"}, "TotalAmount": 220, "TotalTax": 20}),
    );
    let expected = vec![
        f("c1", "2024-01-10", "0.00", "30.00", "0.00"),
        f("c1", "2024-01-11", "200.00", "0.00", "0.00"),
        f("c2", "2024-01-11", "50.00", "0.00", "-20.00"),
    ];
    // A complete run takes ~50-70 polls here: every other point of it.
    for polls in (1usize..=80).step_by(2) {
        env.run_killed_then_complete(polls).await;
        assert_eq!(
            env.financials_of("myob").await,
            expected,
            "killed after {polls} polls"
        );
    }
}

/// The redirect's query pairs for `authorize_url`.
async fn redirect_of(authorize_url: &str) -> std::collections::HashMap<String, String> {
    let resp = zixly_connectors::http_client()
        .get(authorize_url)
        .send()
        .await
        .unwrap();
    url::Url::parse(resp.headers()["location"].to_str().unwrap())
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn myob_connects_with_only_the_redirects_business_id_and_no_company_file_list() {
    let (fake, _env) = myob().await;
    let cfg = config(
        Provider::Myob,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    // The authorize request asks for consent and for every scope the read needs.
    let url = cfg.authorize_url("st", REDIRECT, None);
    let q: std::collections::HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["prompt"], "consent");
    for scope in [
        "sme-company-file",
        "sme-sales",
        "sme-purchases",
        "sme-banking",
        "sme-contacts-customer",
        "sme-general-ledger",
    ] {
        assert!(
            q["scope"].split(' ').any(|s| s == scope),
            "{scope} requested"
        );
    }
    // The redirect carries the file (businessId) with prompt=consent only.
    let redirect = redirect_of(&url).await;
    assert_eq!(redirect["businessId"], CF);
    assert_eq!(redirect["businessName"], "Clearwater Pty Ltd");
    let without = redirect_of(&url.replace("&prompt=consent", "")).await;
    assert!(without.contains_key("code") && !without.contains_key("businessId"));
    // An undocumented scope is refused.
    let bad = redirect_of(&url.replace("sme-banking", "sme-banking%20sme-everything")).await;
    assert_eq!(bad["error"], "invalid_scope");

    // A key issued since March 2025: the company-file list is empty; the sync still works,
    // through the file's own endpoint only.
    let env = connect(cfg, json!({"myob_business_id": redirect["businessId"]})).await;
    zixly_testkit::fakes::clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.financials_of("myob").await.len(), 3);
    let paths: Vec<String> = recorded(&fake.url).into_iter().map(|r| r.path).collect();
    assert!(
        !paths
            .iter()
            .any(|p| p == "/accountright/" || p == "/accountright"),
        "the company-file list is not called: {paths:?}"
    );
    assert_eq!(paths[0], format!("/accountright/{CF}/"), "validated first");

    // A businessId the token cannot reach is a readable permanent error.
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"myob_business_id\": \"cf-gone\"}'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(env.sync_via_queue().await.0, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    assert!(error.unwrap().contains("company file cf-gone"));
}

#[tokio::test]
async fn myob_bill_lines_from_layout_endpoints_reach_expenses_and_foreign_invoices_convert_once() {
    let (fake, env) = myob().await;
    // Bills of other layouts (their lines only come from Purchase/Bill/{layout}), with a
    // header line that carries no amount.
    fake.upsert(
        CF,
        "Purchase/Bill/Item",
        json!({"UID": "b2", "Date": "2024-01-10T00:00:00", "IsTaxInclusive": true,
        "TotalAmount": 22, "TotalTax": 2, "Lines": [
            {"Type": "Header", "Description": "Parts"},
            {"Type": "Transaction", "Total": 22, "Job": {"UID": "j1"}}]}),
    );
    fake.upsert(
        CF,
        "Purchase/Bill/Professional",
        json!({"UID": "b3", "Date": "2024-01-10T00:00:00", "IsTaxInclusive": false,
        "TotalAmount": 7.7, "TotalTax": 0.7, "Lines": [{"Type": "Transaction", "Total": 7, "Job": {"UID": "j1"}}]}),
    );
    // A USD invoice: the plain fields are already in the file's currency (AUD), the *Foreign
    // twins hold the USD amounts.
    fake.upsert(
        CF,
        "Sale/Invoice",
        json!({"UID": "i9", "Date": "2024-01-13T00:00:00", "Customer": {"UID": "c2"},
        "TotalAmount": 153.85, "TotalTax": 13.99, "TotalAmountForeign": 100.00, "TotalTaxForeign": 9.09,
        "ForeignCurrency": {"UID": "5b0ef1ab-1111-4c55-9a77-0a1b2c3d4e5f", "Code": "USD"},
        "CurrencyExchangeRate": 0.65}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials_of("myob").await,
        vec![
            // 30 (Service) + 20 (Item, 22 incl. 2 tax) + 7 (Professional)
            f("c1", "2024-01-10", "100.00", "57.00", "0.00"),
            f("c1", "2024-01-12", "0.00", "0.00", "110.00"),
            f("c2", "2024-01-11", "50.00", "0.00", "-20.00"),
            // 153.85 - 13.99 AUD, not divided by 0.65 again (215.17)
            f("c2", "2024-01-13", "139.86", "0.00", "0.00"),
        ]
    );
}

#[tokio::test]
async fn myob_invoice_lines_on_another_clients_job_count_for_that_client() {
    let (fake, env) = myob().await;
    // Jo Bloggs (c2) is invoiced 220 incl. 20 tax: 110 of it on Acme's (c1) website job, the
    // rest (a job-less line and freight) is Jo's own. Only the layout endpoint has the lines.
    fake.upsert(
        CF,
        "Sale/Invoice/Service",
        json!({"UID": "i7", "Date": "2024-01-14T00:00:00", "Customer": {"UID": "c2"},
        "IsTaxInclusive": true, "TotalAmount": 220, "TotalTax": 20, "Freight": 22, "Lines": [
            {"Type": "Header", "Description": "Work"},
            {"Type": "Transaction", "Total": 110, "Job": {"UID": "j1"}},
            {"Type": "Transaction", "Total": 88, "Job": null}]}),
    );
    // An item invoice: its layout is not read (its scope is unverified), so the generic list's
    // header attributes it to its customer whatever its lines say.
    fake.upsert(
        CF,
        "Sale/Invoice/Item",
        json!({"UID": "i8", "Date": "2024-01-14T00:00:00", "Customer": {"UID": "c2"},
        "TotalAmount": 11, "TotalTax": 1, "Lines": [{"Type": "Transaction", "Total": 10, "Job": {"UID": "j1"}}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let rows = env.financials_of("myob").await;
    assert!(
        rows.contains(&f("c1", "2024-01-14", "100.00", "0.00", "0.00")),
        "110 incl. tax on c1's job = 100 ex tax for c1: {rows:?}"
    );
    assert!(
        rows.contains(&f("c2", "2024-01-14", "110.00", "0.00", "0.00")),
        "the rest of the 200 ex tax (and the item invoice's 10) stays with c2: {rows:?}"
    );
    let requested: Vec<String> = recorded(&fake.url).iter().map(|r| r.path.clone()).collect();
    assert!(requested
        .iter()
        .any(|p| p.ends_with("/Sale/Invoice/Service")));
    assert!(!requested.iter().any(|p| p.ends_with("/Sale/Invoice/Item")));
}

/// Item-layout invoices (contracts/myob.json `sale_invoices_with_lines`: the Item layout's scope
/// is unverified, it may need `sme-inventory`, which we do not ask for): their lines are never
/// read, and their revenue does not vanish — it counts from the generic list's header amounts
/// (`TotalAmount − TotalTax`) for their customer, in full and in an increment.
#[tokio::test]
async fn myob_item_layout_invoices_count_from_their_header_for_their_customer() {
    let (fake, env) = myob().await;
    fake.upsert(
        CF,
        "Sale/Invoice/Item",
        json!({"UID": "i9", "Date": "2024-01-20T00:00:00", "Customer": {"UID": "c2"},
        "TotalAmount": 55, "TotalTax": 5,
        "Lines": [{"Type": "Transaction", "Total": 50, "Job": {"UID": "j1"}}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let day = |rows: Vec<(String, String, String, String, String)>| -> Vec<_> {
        rows.into_iter().filter(|f| f.1 == "2024-01-20").collect()
    };
    assert_eq!(
        day(env.financials_of("myob").await),
        vec![f("c2", "2024-01-20", "50.00", "0.00", "0.00")],
        "the header's 50 ex tax, for the customer (the line's job is not seen)"
    );
    // Changed at MYOB: the increment reads it from the generic list again.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        CF,
        "Sale/Invoice/Item",
        json!({"UID": "i9", "Date": "2024-01-20T00:00:00", "Customer": {"UID": "c2"},
        "TotalAmount": 77, "TotalTax": 7,
        "Lines": [{"Type": "Transaction", "Total": 70, "Job": {"UID": "j1"}}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        day(env.financials_of("myob").await),
        vec![f("c2", "2024-01-20", "70.00", "0.00", "0.00")]
    );
    let requested: Vec<String> = recorded(&fake.url).iter().map(|r| r.path.clone()).collect();
    assert!(!requested.iter().any(|p| p.ends_with("/Sale/Invoice/Item")));
}

#[tokio::test]
async fn myob_yearly_reconsent_refusal_is_a_readable_reconnect_error() {
    let (fake, env) = myob().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.expire_consent();
    let refusals = fake.oauth.rejected_refreshes();
    assert_eq!(env.sync_via_queue().await.0, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    let error = error.unwrap();
    assert!(
        error.contains("reconnect MYOB (consent expired)"),
        "readable: {error}"
    );
    assert_eq!(
        fake.oauth.rejected_refreshes(),
        refusals + 1,
        "refused once, no retry loop"
    );
    // The scheduler leaves an ERROR integration alone (no silent loop) until reconnected.
    let calls = fake.oauth.api_calls();
    env.run_due_jobs().await;
    assert_eq!(fake.oauth.api_calls(), calls);
    assert_eq!(fake.oauth.rejected_refreshes(), refusals + 1);
}

/// [`myob`] with 2,100 more invoices of Acme (10.00 ex tax each) on 2024-02-01: three pages of
/// 1000.
pub(crate) async fn myob_with_bulk_invoices() -> (FakeMyob, Env) {
    let (fake, env) = myob().await;
    for n in 0..2100 {
        fake.upsert(
            CF,
            "Sale/Invoice",
            json!({"UID": format!("bulk{n}"), "Date": "2024-02-01T00:00:00",
            "Customer": {"UID": "c1"}, "TotalAmount": 11, "TotalTax": 1}),
        );
    }
    (fake, env)
}

/// [`myob_with_bulk_invoices`]' pages were each served once, and its day holds 2,100 × 10.00.
pub(crate) async fn assert_bulk_read_once(fake: &FakeMyob, env: &Env) {
    let served = fake.data.lock().unwrap().pages_served.clone();
    let invoices: Vec<usize> = served
        .iter()
        .filter(|(r, _)| r == "Sale/Invoice")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(invoices, vec![0, 1000, 2000], "no page twice: {served:?}");
    let feb: Vec<_> = env
        .financials_of("myob")
        .await
        .into_iter()
        .filter(|f| f.1 == "2024-02-01")
        .collect();
    // Each invoice counted once.
    assert_eq!(feb, vec![f("c1", "2024-02-01", "21000.00", "0.00", "0.00")]);
}

#[tokio::test]
async fn myob_rate_limit_on_page_n_resumes_at_page_n_reading_no_page_twice() {
    let (fake, env) = myob_with_bulk_invoices().await;
    fake.data.lock().unwrap().rate_limit_page = Some(("Sale/Invoice".into(), 1000));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    // The first page of invoices is committed with the checkpoint.
    let r = env
        .db
        .superuser()
        .await
        .query_one("select pages_read, items_read from sync_checkpoints", &[])
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (1, 1000));
    assert!(
        env.financials_of("myob").await.is_empty(),
        "settled only at the end"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    env.run_due_jobs().await;
    // Resumed at page 2.
    assert_bulk_read_once(&fake, &env).await;
}

#[tokio::test]
async fn myob_complete_read_interrupted_removes_unlisted_documents_only_when_finished() {
    let (fake, env) = myob().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    fake.delete(CF, "Sale/Invoice", "i2");
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}'",
            &[],
        )
        .await
        .unwrap();
    // The complete read stops after the invoices, at the first page of customer payments.
    fake.data.lock().unwrap().rate_limit_page = Some(("Sale/CustomerPayment".into(), 0));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    // Not removed mid-read: the read is not complete yet.
    assert_eq!(held(&env, "i2").await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    env.run_due_jobs().await;
    assert_eq!(
        held(&env, "i2").await,
        0,
        "removed once every stream is read"
    );
    // Documents the resumed attempt did not re-read (the invoices of the first attempt) stay.
    let c2: Vec<_> = env
        .financials_of("myob")
        .await
        .into_iter()
        .filter(|f| f.0 == "c2")
        .collect();
    assert_eq!(
        c2,
        vec![(
            "c2".into(),
            "2024-01-11".into(),
            "0.00".into(),
            "0.00".into(),
            "-20.00".into()
        )]
    );
    assert!(env
        .financials_of("myob")
        .await
        .iter()
        .any(|f| f.0 == "c1" && f.1 == "2024-01-10" && f.2 == "100.00"));
}

async fn held(env: &Env, document: &str) -> i64 {
    env.db
        .superuser()
        .await
        .query_one(
            "select count(*) from sync_contributions where document_id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
}
