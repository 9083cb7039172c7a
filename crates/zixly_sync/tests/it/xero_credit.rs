//! Xero credit notes, refunds, prepayments, overpayments, transfers and payments that settle no
//! invoice, end to end against the fake: what each adds to a client's day, to the cent; what a
//! voided or deleted credit note takes back on the next incremental sync; and the periodic
//! complete read repairing an edit Xero did not re-stamp.

use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::xero::{self, FakeXero};

use crate::sync::{config, connect, f, Env};

const JAN10: &str = "/Date(1704844800000+0000)/"; // 2024-01-10
const JAN11: &str = "/Date(1704931200000+0000)/"; // 2024-01-11
const JAN12: &str = "/Date(1705017600000+0000)/"; // 2024-01-12
const JAN13: &str = "/Date(1705104000000+0000)/"; // 2024-01-13

fn sales_credit(status: &str) -> serde_json::Value {
    json!({"CreditNoteID": "n1", "Type": "ACCRECCREDIT", "Status": status,
           "Contact": {"ContactID": "c1"}, "Date": JAN11, "LineAmountTypes": "Exclusive",
           "SubTotal": 45.50, "TotalTax": 4.55, "Total": 50.05})
}

fn credit_refund(status: &str) -> serde_json::Value {
    json!({"PaymentID": "p2", "Status": status, "PaymentType": "ARCREDITPAYMENT", "Date": JAN12,
           "Amount": 15.10, "CreditNote": {"CreditNoteID": "n1", "Type": "ACCRECCREDIT",
           "Contact": {"ContactID": "c1"}}})
}

async fn setup() -> (FakeXero, Env) {
    let fake = FakeXero::start().await;
    for (id, name) in [("c1", "Acme Pty"), ("c2", "Beta Ltd")] {
        fake.upsert(
            "Contacts",
            "ContactID",
            json!({"ContactID": id, "Name": name, "ContactStatus": "ACTIVE"}),
        );
    }
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 200.00}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "b1", "Type": "ACCPAY", "Status": "AUTHORISED",
               "Contact": {"ContactID": "supplier"}, "Date": JAN10, "LineAmountTypes": "Exclusive",
               "LineItems": [{"LineAmount": 80, "TaxAmount": 8,
                              "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}),
    );
    fake.upsert("CreditNotes", "CreditNoteID", sales_credit("AUTHORISED"));
    // A supplier's credit note on the bill's work for Acme: 11 incl. 1 tax = 10 less expense.
    fake.upsert(
        "CreditNotes",
        "CreditNoteID",
        json!({"CreditNoteID": "n2", "Type": "ACCPAYCREDIT", "Status": "AUTHORISED",
               "Contact": {"ContactID": "supplier"}, "Date": JAN11, "LineAmountTypes": "Inclusive",
               "LineItems": [{"LineAmount": 11, "TaxAmount": 1,
                              "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}),
    );
    // One page of payments: a normal receipt, the credit note's refund, a prepayment's refund
    // (no Invoice) and a supplier's refund of a bill credit note (no Invoice, not counted).
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p1", "Status": "AUTHORISED", "PaymentType": "ACCRECPAYMENT",
               "Date": JAN12, "Amount": 120.25,
               "Invoice": {"InvoiceID": "i1", "Type": "ACCREC", "Contact": {"ContactID": "c1"}}}),
    );
    fake.upsert("Payments", "PaymentID", credit_refund("AUTHORISED"));
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p3", "Status": "AUTHORISED", "PaymentType": "ARPREPAYMENTPAYMENT",
               "Date": JAN13, "Amount": 5.35,
               "Prepayment": {"PrepaymentID": "pp1", "Contact": {"ContactID": "c2"}}}),
    );
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p4", "Status": "AUTHORISED", "PaymentType": "APCREDITPAYMENT",
               "Date": JAN13, "Amount": 3,
               "CreditNote": {"CreditNoteID": "n2", "Type": "ACCPAYCREDIT",
                              "Contact": {"ContactID": "supplier"}}}),
    );
    // Beta pays 300 in advance: cash when received.
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": "pp1", "Type": "RECEIVE-PREPAYMENT", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c2"}, "Date": JAN13, "LineAmountTypes": "NoTax",
               "LineItems": [{"LineAmount": 300.00}], "PrepaymentID": "pp1"}),
    );
    let cfg = config(
        Provider::Xero,
        xero::CLIENT_ID,
        xero::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let env = connect(cfg, json!({})).await;
    (fake, env)
}

#[tokio::test]
async fn credit_notes_refunds_and_prepayments_to_the_cent_and_a_void_is_taken_back() {
    let (fake, env) = setup().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials().await,
        vec![
            f("c1", "2024-01-10", "200.00", "80.00", "0.00"),
            // ACCRECCREDIT 45.50 off Acme's revenue, ACCPAYCREDIT 10 off its expenses, on the
            // credit notes' date.
            f("c1", "2024-01-11", "-45.50", "-10.00", "0.00"),
            // 120.25 received, 15.10 refunded on the credit note.
            f("c1", "2024-01-12", "0.00", "0.00", "105.15"),
            // 300 prepaid, 5.35 of it refunded; the supplier's refund p4 belongs to no client.
            f("c2", "2024-01-13", "0.00", "0.00", "294.65"),
        ]
    );

    // The refund is deleted and the credit note voided: the next incremental sync takes back
    // exactly what they contributed, nothing else.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert("Payments", "PaymentID", credit_refund("DELETED"));
    fake.upsert("CreditNotes", "CreditNoteID", sales_credit("VOIDED"));
    zixly_testkit::fakes::clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials().await,
        vec![
            f("c1", "2024-01-10", "200.00", "80.00", "0.00"),
            f("c1", "2024-01-11", "0.00", "-10.00", "0.00"),
            f("c1", "2024-01-12", "0.00", "0.00", "120.25"),
            f("c2", "2024-01-13", "0.00", "0.00", "294.65"),
        ]
    );
    // It was an incremental read: /CreditNotes asked with If-Modified-Since.
    let credit_reads: Vec<_> = zixly_testkit::fakes::recorded(&fake.url)
        .into_iter()
        .filter(|r| r.path.ends_with("/CreditNotes"))
        .collect();
    assert_eq!(credit_reads.len(), 1);
    assert!(credit_reads[0].header("if-modified-since").is_some());
    assert_eq!(env.last_run().await.0, "succeeded");
}

/// The documented edge cases not in the test above, end to end: transfers between the
/// organisation's own accounts count for nobody; an overpayment received is cash on its day and
/// its refund cash out; a DELETED credit note (not only a VOIDED one) takes back what it
/// contributed at the next incremental sync.
#[tokio::test]
async fn transfers_count_for_nobody_overpayments_are_cash_and_a_deleted_credit_note_is_taken_back()
{
    let (fake, env) = setup().await;
    for (id, kind) in [("t1", "RECEIVE-TRANSFER"), ("t2", "SPEND-TRANSFER")] {
        fake.upsert(
            "BankTransactions",
            "BankTransactionID",
            json!({"BankTransactionID": id, "Type": kind, "Status": "AUTHORISED",
                   "Contact": {"ContactID": "c1"}, "Date": JAN13, "LineAmountTypes": "NoTax",
                   "LineItems": [{"LineAmount": 999.00}]}),
        );
    }
    // Acme pays 60 too much on the 13th; 20.40 of it is refunded the same day.
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": "o1", "Type": "RECEIVE-OVERPAYMENT", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c1"}, "Date": JAN13, "LineAmountTypes": "NoTax",
               "LineItems": [{"LineAmount": 60.00}], "OverpaymentID": "o1"}),
    );
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p5", "Status": "AUTHORISED", "PaymentType": "AROVERPAYMENTPAYMENT",
               "Date": JAN13, "Amount": 20.40,
               "Overpayment": {"OverpaymentID": "o1", "Contact": {"ContactID": "c1"}}}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let before = env.financials().await;
    assert_eq!(
        before,
        vec![
            f("c1", "2024-01-10", "200.00", "80.00", "0.00"),
            f("c1", "2024-01-11", "-45.50", "-10.00", "0.00"),
            f("c1", "2024-01-12", "0.00", "0.00", "105.15"),
            // 60 overpaid, 20.40 refunded; the two transfers of 999 are not there.
            f("c1", "2024-01-13", "0.00", "0.00", "39.60"),
            f("c2", "2024-01-13", "0.00", "0.00", "294.65"),
        ]
    );

    // The supplier's credit note n2 is deleted: Acme's 10 of less expense goes away, and only it.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "CreditNotes",
        "CreditNoteID",
        json!({"CreditNoteID": "n2", "Type": "ACCPAYCREDIT", "Status": "DELETED",
               "Contact": {"ContactID": "supplier"}, "Date": JAN11, "LineAmountTypes": "Inclusive",
               "LineItems": [{"LineAmount": 11, "TaxAmount": 1,
                              "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let after = env.financials().await;
    let mut expected = before.clone();
    expected[1] = f("c1", "2024-01-11", "-45.50", "0.00", "0.00");
    assert_eq!(after, expected);
}

/// Xero does not re-stamp every edit (the contract's `ims_gaps`): an increment cannot see such a
/// change, and the periodic complete read (`settings.full_sync_hours`) repairs it.
#[tokio::test]
async fn the_periodic_complete_read_repairs_an_edit_xero_did_not_re_stamp() {
    let (fake, env) = setup().await;
    // The documents were stamped an hour before the first read, so the next increment's cursor
    // (that read's time less its overlap) is after their stamp.
    fake.tick(chrono::Duration::hours(1));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let invoice = |subtotal: f64| {
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": subtotal})
    };
    assert_eq!(
        jan10(&env).await,
        f("c1", "2024-01-10", "200.00", "80.00", "0.00")
    );
    // A sync that changed figures queued the tenant's alert evaluation (issue 13: rules are
    // judged after every sync that touches their data).
    assert_eq!(evaluations_queued(&env).await, 1);
    clear_evaluations(&env).await;

    fake.replace_unstamped("Invoices", "InvoiceID", invoice(250.0));
    fake.tick(chrono::Duration::hours(1));
    zixly_testkit::fakes::clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // The increment asked for changes since its cursor and was not told of this one.
    let reads = zixly_testkit::fakes::recorded(&fake.url);
    assert!(reads
        .iter()
        .filter(|r| r.path.ends_with("/Invoices"))
        .all(|r| r.header("if-modified-since").is_some()));
    assert_eq!(
        jan10(&env).await,
        f("c1", "2024-01-10", "200.00", "80.00", "0.00")
    );
    // Nothing changed: nothing to judge again.
    assert_eq!(evaluations_queued(&env).await, 0);

    // The complete read is due (here at once): it reads every invoice and repairs the day.
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}' where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap();
    zixly_testkit::fakes::clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let reads = zixly_testkit::fakes::recorded(&fake.url);
    assert!(reads
        .iter()
        .any(|r| r.path.ends_with("/Invoices") && r.header("if-modified-since").is_none()));
    assert_eq!(
        jan10(&env).await,
        f("c1", "2024-01-10", "250.00", "80.00", "0.00")
    );
    assert_eq!(evaluations_queued(&env).await, 1);
}

/// The tenant's `alert_evaluate` jobs waiting in the queue (this test's worker runs syncs only).
async fn evaluations_queued(env: &Env) -> i64 {
    env.db
        .superuser()
        .await
        .query_one(
            "select count(*) from jobs where tenant_id = $1 and kind = 'alert_evaluate'",
            &[&env.tenant],
        )
        .await
        .unwrap()
        .get(0)
}

async fn clear_evaluations(env: &Env) {
    env.db
        .superuser()
        .await
        .execute(
            "delete from jobs where tenant_id = $1 and kind = 'alert_evaluate'",
            &[&env.tenant],
        )
        .await
        .unwrap();
}

/// Acme's row of 2024-01-10.
async fn jan10(env: &Env) -> (String, String, String, String, String) {
    env.financials()
        .await
        .into_iter()
        .find(|r| r.1 == "2024-01-10")
        .expect("Acme's 10th")
}
