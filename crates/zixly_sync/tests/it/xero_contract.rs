//! Xero judged by its contract (`contracts/xero.json`): a full and an incremental sync against
//! the fake, then every request the connector sent (OAuth included) must be a documented
//! endpoint with documented parameters, required headers and scopes, and every answer the fake
//! served must have the documented item shape. A wrong field name in the fake or an undocumented
//! parameter in a request makes the same checks fail (shown below).

use serde_json::{json, Value};
use zixly_connectors::oauth::{XERO_GRANULAR_SCOPES, XERO_LEGACY_SCOPES};
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::contracts::{self, assert_no_violations};
use zixly_testkit::fakes::xero::{self, FakeXero};
use zixly_testkit::fakes::{recorded, RecordedRequest};

use crate::sync::{config, connect};

const ORG: &str = "0b6f1a36-8f0e-4d53-9d3e-6f0f4b1e2a11";
const ACME: &str = "6a1c7c4e-2f7b-4d1e-9b1f-0c5b1e7a0001";
const BETA: &str = "6a1c7c4e-2f7b-4d1e-9b1f-0c5b1e7a0002";
const SUPPLIER: &str = "6a1c7c4e-2f7b-4d1e-9b1f-0c5b1e7a0003";
const JAN10: &str = "/Date(1704844800000+0000)/";
const JAN11: &str = "/Date(1704931200000+0000)/";

fn id(n: u32) -> String {
    format!("9d2f0c1e-3a4b-4c5d-8e6f-{n:012}")
}

/// Documents of every kind the connector reads, in the shapes the contract documents.
fn seed(fake: &FakeXero) {
    fake.data.lock().unwrap().organisations = vec![(ORG.into(), "Demo Org".into())];
    for (c, name) in [
        (ACME, "Acme Pty"),
        (BETA, "Beta Ltd"),
        (SUPPLIER, "Supplies Co"),
    ] {
        fake.upsert(
            "Contacts",
            "ContactID",
            json!({"ContactID": c, "Name": name, "ContactStatus": "ACTIVE", "IsCustomer": true}),
        );
    }
    let tracked = |amount: f64, tax: f64| {
        json!([{"Description": "work", "LineAmount": amount, "TaxAmount": tax,
                "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}])
    };
    fake.upsert("Invoices", "InvoiceID", json!({"InvoiceID": id(1), "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": ACME, "Name": "Acme Pty"}, "Date": JAN10, "LineAmountTypes": "Exclusive",
        "SubTotal": 100.0, "TotalTax": 10.0, "Total": 110.0, "CurrencyCode": "AUD", "CurrencyRate": 1.0}));
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": id(2), "Type": "ACCPAY", "Status": "AUTHORISED",
        "Contact": {"ContactID": SUPPLIER}, "Date": JAN10, "LineAmountTypes": "Exclusive",
        "LineItems": tracked(40.0, 4.0), "SubTotal": 40.0, "TotalTax": 4.0, "Total": 44.0}),
    );
    fake.upsert("CreditNotes", "CreditNoteID", json!({"CreditNoteID": id(3), "Type": "ACCRECCREDIT",
        "Status": "AUTHORISED", "Contact": {"ContactID": ACME}, "Date": JAN11, "LineAmountTypes": "Exclusive",
        "SubTotal": 20.0, "TotalTax": 2.0, "Total": 22.0, "RemainingCredit": 0.0}));
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": id(4), "Status": "AUTHORISED",
        "PaymentType": "ACCRECPAYMENT", "Date": JAN11, "Amount": 110.0,
        "Invoice": {"InvoiceID": id(1), "Type": "ACCREC", "Contact": {"ContactID": ACME}}}),
    );
    fake.upsert("Payments", "PaymentID", json!({"PaymentID": id(5), "Status": "AUTHORISED",
        "PaymentType": "ARCREDITPAYMENT", "Date": JAN11, "Amount": 22.0,
        "CreditNote": {"CreditNoteID": id(3), "Type": "ACCRECCREDIT", "Contact": {"ContactID": ACME}}}));
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": id(6),
        "Type": "RECEIVE-PREPAYMENT", "Status": "AUTHORISED", "Contact": {"ContactID": BETA},
        "BankAccount": {"AccountID": id(7)}, "Date": JAN11, "LineAmountTypes": "NoTax",
        "LineItems": [{"LineAmount": 50.0}], "Total": 50.0, "PrepaymentID": id(8)}),
    );
}

async fn synced() -> (FakeXero, Vec<RecordedRequest>) {
    let fake = FakeXero::start().await;
    seed(&fake);
    let cfg = config(
        Provider::Xero,
        xero::CLIENT_ID,
        xero::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let env = connect(cfg, json!({})).await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // Incremental runs (If-Modified-Since); the second reads a bill payment without its bill,
    // which is looked up by id.
    for n in [9, 10] {
        fake.tick(chrono::Duration::hours(1));
        fake.upsert(
            "Payments",
            "PaymentID",
            json!({"PaymentID": id(n), "Status": "AUTHORISED",
            "PaymentType": "ACCPAYPAYMENT", "Date": JAN11, "Amount": 22.0,
            "Invoice": {"InvoiceID": id(2), "Type": "ACCPAY", "Contact": {"ContactID": SUPPLIER}}}),
        );
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    }
    let rec = recorded(&fake.url);
    (fake, rec)
}

#[tokio::test]
async fn xero_requests_and_answers_follow_the_contract() {
    let contract = contracts::load("xero");
    let (_fake, rec) = synced().await;
    let paths: Vec<&str> = rec.iter().map(|r| r.path.as_str()).collect();
    for p in [
        "/identity/connect/authorize",
        "/connect/token",
        "/connections",
        "/api.xro/2.0/Organisation",
        "/api.xro/2.0/Contacts",
        "/api.xro/2.0/Invoices",
        "/api.xro/2.0/CreditNotes",
        "/api.xro/2.0/Payments",
        "/api.xro/2.0/BankTransactions",
    ] {
        assert!(paths.contains(&p), "{p} was not requested: {paths:?}");
    }
    assert!(
        rec.iter().any(|r| r.query_values("IDs").len() == 1),
        "the incremental run looked a bill up by id"
    );
    assert!(rec.iter().any(|r| r.header("if-modified-since").is_some()));
    assert_no_violations("Xero requests", &contracts::check_requests(&contract, &rec));
    assert_no_violations("Xero answers", &contracts::check_responses(&contract, &rec));
    // Every 2xx answer was kept and judged (the body budget was not exhausted).
    assert!(rec
        .iter()
        .filter(|r| r.path.starts_with("/api.xro"))
        .all(|r| r.response.is_some()));
}

/// The checks are not vacuous: a misspelt field in a served item, an undocumented query
/// parameter or a missing tenant header in a request, and an undocumented scope are found.
#[tokio::test]
async fn a_wrong_field_an_undocumented_parameter_or_scope_fails_the_contract() {
    let contract = contracts::load("xero");
    let (_fake, rec) = synced().await;
    let invoices = rec
        .iter()
        .find(|r| r.path == "/api.xro/2.0/Invoices" && r.response.is_some())
        .unwrap();
    let mut served = invoices.clone();
    let body = served.response.as_mut().unwrap();
    let item = &mut body["Invoices"][0];
    let sub_total = item["SubTotal"].take();
    item.as_object_mut().unwrap().remove("SubTotal");
    item["Subtotal"] = sub_total;
    let found = contracts::check_responses(&contract, std::slice::from_ref(&served));
    assert!(
        found.iter().any(|v| v.subject.ends_with(".Subtotal")),
        "{found:?}"
    );

    let mut sent = invoices.clone();
    sent.response = None;
    sent.query
        .push(("modifiedAfter".into(), "2024-01-01".into()));
    sent.headers.retain(|(k, _)| k != "xero-tenant-id");
    let found: Vec<String> = contracts::check_requests(&contract, &[sent])
        .iter()
        .map(|v| v.subject.clone())
        .collect();
    assert!(
        found.contains(&"query parameter modifiedAfter".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"header xero-tenant-id".to_string()),
        "{found:?}"
    );

    let mut authorize = rec
        .iter()
        .find(|r| r.path == "/identity/connect/authorize")
        .unwrap()
        .clone();
    for (k, v) in authorize.query.iter_mut() {
        if k == "scope" {
            *v = format!("{v} accounting.everything.read");
        }
    }
    let found = contracts::check_requests(&contract, &[authorize]);
    assert!(
        found
            .iter()
            .any(|v| v.subject == "scope accounting.everything.read"),
        "{found:?}"
    );
}

/// The default scopes are exactly the contract's granular set, the documented alternative for
/// older apps is its legacy set, and both are documented names.
#[test]
fn default_and_legacy_scopes_are_the_contracts() {
    let contract = contracts::load("xero");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let scopes = &contract.json["oauth"]["scopes"];
    assert_eq!(names(&scopes["granular"]["needed"]), XERO_GRANULAR_SCOPES);
    assert_eq!(names(&scopes["legacy"]["needed"]), XERO_LEGACY_SCOPES);
    let documented = contract.oauth_scopes();
    for s in XERO_GRANULAR_SCOPES.iter().chain(XERO_LEGACY_SCOPES) {
        assert!(documented.contains(*s), "{s} is not documented");
    }
    let deprecated = names(&scopes["granular"]["deprecated_broad"]);
    assert!(
        !XERO_GRANULAR_SCOPES
            .iter()
            .any(|s| deprecated.iter().any(|d| d == s)),
        "a new app may not ask for the broad scopes"
    );
}
