//! MYOB AccountRight connector against the fake MYOB.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;
use zixly_connectors::myob::{self, MyobClient, MyobRead};
use zixly_connectors::{http_client, ConnectorError, Provider, ProviderConfig, TokenSet};
use zixly_testkit::fakes::myob::{FakeMyob, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::oauth::Fault;

use super::{config, connect, REDIRECT};

async fn setup() -> (FakeMyob, ProviderConfig, TokenSet) {
    let fake = FakeMyob::start().await;
    let cfg = config(
        Provider::Myob,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    let tokens = connect(&cfg).await;
    (fake, cfg, tokens)
}

fn seed(fake: &FakeMyob) {
    fake.upsert("cf-1", "Contact/Customer", json!({"UID": "c1", "CompanyName": "Acme Pty Ltd", "IsIndividual": false, "DisplayID": "CUS001", "IsActive": true}));
    fake.upsert("cf-1", "Contact/Customer", json!({"UID": "c2", "CompanyName": "Globex", "IsIndividual": false, "DisplayID": "CUS002", "IsActive": true}));
    fake.upsert("cf-1", "GeneralLedger/Job", json!({"UID": "j1", "Number": "100", "Name": "Acme website", "LinkedCustomer": {"UID": "c1", "Name": "Acme Pty Ltd"}}));
    fake.upsert(
        "cf-1",
        "GeneralLedger/Job",
        json!({"UID": "j2", "Number": "200", "Name": "Globex", "LinkedCustomer": null}),
    );
    // 1500 invoices: 110 incl. 10 tax each, on 2024-03-01 (c1) and 2024-03-02 (c2).
    for i in 0..1500 {
        let (c, day) = if i % 2 == 0 {
            ("c1", "01")
        } else {
            ("c2", "02")
        };
        fake.upsert("cf-1", "Sale/Invoice", json!({"UID": format!("inv-{i}"), "Number": format!("{i:08}"),
            "Date": format!("2024-03-{day}T00:00:00"), "Customer": {"UID": c, "Name": c}, "Status": "Open",
            "IsTaxInclusive": false, "Subtotal": 100.0, "TotalTax": 10.0, "TotalAmount": 110.0, "BalanceDueAmount": 110.0}));
    }
    fake.upsert("cf-1", "Purchase/Bill", json!({"UID": "b1", "Date": "2024-03-03T00:00:00", "Supplier": {"UID": "s1", "Name": "Supplies"},
        "Status": "Open", "IsTaxInclusive": false, "Subtotal": 300, "TotalTax": 30, "TotalAmount": 330,
        "Lines": [{"Type": "Transaction", "Total": 200, "Job": {"UID": "j1", "Number": "100", "Name": "Acme website"}},
                  {"Type": "Transaction", "Total": 100, "Job": {"UID": "j2", "Number": "200", "Name": "Globex"}}]}));
    fake.upsert(
        "cf-1",
        "Sale/CustomerPayment",
        json!({"UID": "p1", "Date": "2024-03-04T00:00:00",
        "Customer": {"UID": "c1", "Name": "Acme Pty Ltd"}, "AmountReceived": 110.0}),
    );
    fake.upsert(
        "cf-1",
        "Banking/ReceiveMoneyTxn",
        json!({"UID": "r1", "Date": "2024-03-04T00:00:00",
        "Contact": {"UID": "c2", "Name": "Globex"}, "AmountReceived": 20.0}),
    );
    fake.tick(chrono::Duration::minutes(5));
}

/// Sums per (client, day) as the caller would store them.
fn per_day(read: &MyobRead) -> HashMap<(String, String), (Decimal, Decimal, Decimal)> {
    let mut m: HashMap<(String, String), (Decimal, Decimal, Decimal)> = HashMap::new();
    for c in &read.contributions {
        let e = m
            .entry((c.client_id.clone(), c.date.to_string()))
            .or_default();
        e.0 += c.revenue;
        e.1 += c.expenses;
        e.2 += c.cash_flow;
    }
    m
}

fn key(c: &str, d: &str) -> (String, String) {
    (c.to_string(), d.to_string())
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn myob_company_file_full_incremental_and_deletions() {
    let (fake, cfg, tokens) = setup().await;

    // The authorize redirect names the company file.
    let url = cfg.authorize_url("s", REDIRECT, None);
    let response = http_client().get(&url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("businessId=cf-1"), "{location}");

    fake.data
        .lock()
        .unwrap()
        .company_files
        .push(("cf-2".into(), "Second".into()));
    let http = http_client();
    let list = || myob::company_files(&http, &cfg.api_url, &cfg.client_id, &tokens.access_token);
    // A key issued since March 2025 sees no company file in the list...
    assert!(list().await.unwrap().is_empty());
    // ...but reaches the redirect's businessId through the file's own endpoint.
    let info = myob::company_file(
        &http_client(),
        &cfg.api_url,
        &cfg.client_id,
        &tokens.access_token,
        "cf-1",
    )
    .await
    .unwrap();
    assert_eq!(info.company_file.id, "cf-1");
    assert!(info
        .resources
        .iter()
        .any(|r| r.ends_with("/Purchase/Bill/Service")));
    let unknown = myob::company_file(
        &http_client(),
        &cfg.api_url,
        &cfg.client_id,
        &tokens.access_token,
        "cf-9",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&unknown, ConnectorError::Permanent(m) if m.contains("cf-9") && m.contains("reconnect MYOB")),
        "{unknown:?}"
    );
    // Legacy keys still list their files.
    fake.data.lock().unwrap().legacy_key = true;
    let files = list().await.unwrap();
    assert!(matches!(
        myob::choose_company_file(&files, None),
        Err(ConnectorError::Permanent(_))
    ));
    let cf = myob::choose_company_file(&files, Some("cf-1")).unwrap();

    // Without MYOB's headers the API refuses.
    let bare = http_client()
        .get(format!("{}/cf-1/Sale/Invoice", cfg.api_url))
        .bearer_auth(tokens.access_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 403);

    seed(&fake);
    let client = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        tokens.access_token.clone(),
        &cf.id,
    );
    // The generic bill list carries no lines (only the layout endpoints do).
    let generic = http_client()
        .get(format!("{}/cf-1/Purchase/Bill", cfg.api_url))
        .bearer_auth(tokens.access_token.expose())
        .header("x-myobapi-key", CLIENT_ID)
        .header("x-myobapi-version", "v2")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(generic["Items"][0]["BillType"], "Service");
    assert!(generic["Items"][0].get("Lines").is_none());
    let full = client.read(None, fake.now()).await.unwrap();
    // customers 1 + jobs 1 + invoices 1000/500 + their lines (Service 1000/500, 3 other layouts)
    // + bills 4 layouts + payments 1 + receive 1 + spend 1
    assert_eq!(client.calls.load(Ordering::Relaxed), 16);
    assert!(full.complete);
    assert_eq!(full.clients.len(), 2);
    assert_eq!(full.clients[0].name.as_deref(), Some("Acme Pty Ltd"));
    let days = per_day(&full);
    assert_eq!(
        days[&key("c1", "2024-03-01")].0,
        dec("75000"),
        "750 x 100 ex tax"
    );
    assert_eq!(days[&key("c2", "2024-03-02")].0, dec("75000"));
    assert_eq!(days[&key("c1", "2024-03-03")].1, dec("200"));
    assert_eq!(
        days[&key("c2", "2024-03-03")].1,
        dec("100"),
        "job matched by name"
    );
    assert_eq!(days[&key("c1", "2024-03-04")].2, dec("110"));
    assert_eq!(days[&key("c2", "2024-03-04")].2, dec("20"));
    let cursor = full.cursor.unwrap();

    // Later: one invoice changes, one is deleted, money is spent for Globex.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert("cf-1", "Sale/Invoice", json!({"UID": "inv-0", "Number": "00000000", "Date": "2024-03-01T00:00:00",
        "Customer": {"UID": "c1"}, "Status": "Open", "Subtotal": 200.0, "TotalTax": 20.0, "TotalAmount": 220.0}));
    fake.delete("cf-1", "Sale/Invoice", "inv-2");
    fake.upsert(
        "cf-1",
        "Banking/SpendMoneyTxn",
        json!({"UID": "sp1", "Date": "2024-03-06T00:00:00",
        "Contact": {"UID": "c2", "Name": "Globex"}, "AmountPaid": 12.5}),
    );
    fake.tick(chrono::Duration::minutes(5));

    let before = client.calls.load(Ordering::Relaxed);
    let inc = client.read(Some(cursor), fake.now()).await.unwrap();
    assert_eq!(
        client.calls.load(Ordering::Relaxed) - before,
        14,
        "one page each: 10 lists and the 4 invoice layouts"
    );
    assert!(!inc.complete);
    let docs: Vec<&str> = inc
        .contributions
        .iter()
        .map(|c| c.document_id.as_str())
        .collect();
    assert_eq!(docs, ["inv-0", "sp1"]);
    assert_eq!(inc.contributions[0].revenue, dec("200"));
    assert_eq!(inc.contributions[1].cash_flow, dec("-12.5"));
    assert!(inc.cursor.unwrap() > cursor);

    // The deleted invoice is absent from the next full read (the complete set).
    let again = client.read(None, fake.now()).await.unwrap();
    assert!(again.contributions.iter().all(|c| c.document_id != "inv-2"));
    assert_eq!(
        per_day(&again)[&key("c1", "2024-03-01")].0,
        dec("75000") + dec("100") - dec("100"),
        "inv-0 doubled, inv-2 gone"
    );
}

#[tokio::test]
async fn myob_failures_rotation_and_rate_limits() {
    let (fake, cfg, tokens) = setup().await;
    seed(&fake);
    let client = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        tokens.access_token.clone(),
        "cf-1",
    );
    // Expiry after three answers: between the two pages of invoices.
    fake.expire_tokens_after(3);
    let err = client.read(None, fake.now()).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unauthorized(ref m) if m.contains("OAuthTokenIsInvalid")),
        "{err:?}"
    );
    assert_eq!(client.calls.load(Ordering::Relaxed), 4);
    assert!(!format!("{err}").contains(tokens.access_token.expose()));

    // Every refresh rotates the refresh token; the old one is refused afterwards.
    let rt = tokens.refresh_token.clone().unwrap();
    let fresh = cfg.refresh(&http_client(), &rt).await.unwrap();
    assert_ne!(fresh.refresh_token.as_ref().unwrap().expose(), rt.expose());
    let refused = cfg.refresh(&http_client(), &rt).await.unwrap_err();
    assert!(
        matches!(&refused, ConnectorError::Permanent(m)
            if m.starts_with("reconnect MYOB (consent expired)") && m.contains("invalid_grant")),
        "{refused:?}"
    );
    let client = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        fresh.access_token.clone(),
        "cf-1",
    );
    assert_eq!(
        client
            .list::<serde_json::Value>("Sale/Invoice", None)
            .await
            .unwrap()
            .len(),
        1500
    );

    // MYOB's 403 RateLimitError, per second and daily.
    fake.oauth.inject(Fault::RateLimited { retry_after: 0 });
    assert_eq!(
        client.read(None, fake.now()).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(1)
        }
    );
    fake.data.lock().unwrap().daily_limit_reached = true;
    assert_eq!(
        client.read(None, fake.now()).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(3600)
        }
    );
    fake.data.lock().unwrap().daily_limit_reached = false;
    for code in [500, 504] {
        fake.oauth.inject(Fault::Status(code));
        assert!(
            matches!(
                client.read(None, fake.now()).await.unwrap_err(),
                ConnectorError::Transient(_)
            ),
            "{code}"
        );
    }
    // A company file the token cannot reach is a permanent error.
    let other = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        fresh.access_token,
        "cf-x",
    );
    assert!(matches!(
        other.read(None, fake.now()).await.unwrap_err(),
        ConnectorError::Permanent(_)
    ));
}

/// A fake MYOB whose company file has a GUID id, seeded with documents shaped as
/// contracts/myob.json documents them (GUID UIDs, only documented fields); returns the fake, the
/// config, the file id and the redirect's query pairs.
async fn contract_setup() -> (FakeMyob, ProviderConfig, String, HashMap<String, String>) {
    let fake = FakeMyob::start().await;
    let cf = "6ec7a1d3-5a6c-4b44-9b3c-2f1e5d9a0c11".to_string();
    fake.data.lock().unwrap().company_files = vec![(cf.clone(), "Clearwater Pty Ltd".into())];
    let cfg = config(
        Provider::Myob,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    let response = http_client()
        .get(cfg.authorize_url("st", REDIRECT, None))
        .send()
        .await
        .unwrap();
    let redirect: HashMap<String, String> =
        url::Url::parse(response.headers()["location"].to_str().unwrap())
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    (fake, cfg, cf, redirect)
}

const C1: &str = "0b4a6f0e-1c1d-4e3e-8f21-111111111111";
const C2: &str = "0b4a6f0e-1c1d-4e3e-8f21-222222222222";
const J1: &str = "9d1f2e3c-4b5a-4697-a8b9-333333333333";
const S1: &str = "7a8b9c0d-1e2f-4a3b-9c4d-444444444444";

fn uid(i: u32) -> String {
    format!("5f0c2d3e-4a5b-4c6d-8e7f-{i:012}")
}

fn contract_seed(fake: &FakeMyob, cf: &str) {
    let card = |u: &str, name: &str| json!({"UID": u, "Name": name, "DisplayID": "CUS001"});
    fake.upsert(
        cf,
        "Contact/Customer",
        json!({"UID": C1, "CompanyName": "Acme Pty Ltd", "IsIndividual": false,
        "DisplayID": "CUS001", "IsActive": true, "CurrentBalance": 0.0}),
    );
    fake.upsert(
        cf,
        "Contact/Customer",
        json!({"UID": C2, "FirstName": "Jo", "LastName": "Bloggs", "IsIndividual": true,
        "DisplayID": "CUS002", "IsActive": true, "CurrentBalance": 12.5, "ForeignCurrency": null}),
    );
    fake.upsert(cf, "GeneralLedger/Job", json!({"UID": J1, "Number": "100", "IsHeader": false, "Name": "Website",
        "Description": "", "ParentJob": null, "LinkedCustomer": {"UID": C1, "Name": "Acme Pty Ltd", "DisplayID": "CUS001"},
        "PercentComplete": 0.0, "StartDate": null, "FinishDate": null, "IsActive": true, "TrackReimbursables": false}));
    // 1001 invoices: two pages through NextPageLink.
    for i in 0..1001 {
        let (c, layout) = if i % 2 == 0 {
            (C1, "Service")
        } else {
            (C2, "Professional")
        };
        fake.upsert(cf, "Sale/Invoice", json!({"UID": uid(i), "Number": format!("{i:08}"), "Date": "2024-03-01T00:00:00",
            "Customer": card(c, "x"), "Status": "Open", "InvoiceType": layout, "IsTaxInclusive": false,
            "Subtotal": 100.0, "Freight": 0.0, "TotalTax": 10.0, "TotalAmount": 110.0, "BalanceDueAmount": 110.0,
            "LastPaymentDate": null, "ForeignCurrency": null, "CurrencyExchangeRate": null, "JournalMemo": "Sale"}));
    }
    fake.upsert(cf, "Sale/Invoice", json!({"UID": uid(5000), "Number": "USD1", "Date": "2024-03-02T00:00:00",
        "Customer": card(C2, "Jo Bloggs"), "Status": "Open", "InvoiceType": "Item", "IsTaxInclusive": false,
        "Subtotal": 139.86, "SubtotalForeign": 90.91, "Freight": 0.0, "TotalTax": 13.99, "TotalTaxForeign": 9.09,
        "TotalAmount": 153.85, "TotalAmountForeign": 100.0, "BalanceDueAmount": 153.85, "BalanceDueAmountForeign": 100.0,
        "ForeignCurrency": {"UID": uid(9000), "Code": "USD", "Name": "US Dollar"}, "CurrencyExchangeRate": 0.65}));
    let line = |total: f64, job: Option<&str>| {
        json!({"RowID": 1, "Type": "Transaction", "Description": "work",
        "Total": total, "Job": job.map(|j| json!({"UID": j, "Number": "100", "Name": "Website"})),
        "TaxCode": {"UID": uid(9001), "Code": "GST"}, "Account": {"UID": uid(9002), "Name": "Costs", "DisplayID": "6-1000"}})
    };
    fake.upsert(cf, "Purchase/Bill/Service", json!({"UID": uid(6000), "Number": "B1", "Date": "2024-03-03T00:00:00",
        "Supplier": card(S1, "Supplies"), "Status": "Open", "IsTaxInclusive": false, "Subtotal": 300.0, "Freight": 0.0,
        "TotalTax": 30.0, "TotalAmount": 330.0, "AppliedToDate": 0.0, "BalanceDueAmount": 330.0,
        "Lines": [line(200.0, Some(J1)), line(100.0, None),
                  {"RowID": 3, "Type": "Header", "Description": "Other"}]}));
    fake.upsert(cf, "Purchase/Bill/Miscellaneous", json!({"UID": uid(6001), "Number": "B2", "Date": "2024-03-03T00:00:00",
        "Supplier": card(S1, "Supplies"), "Status": "Open", "IsTaxInclusive": true, "Subtotal": 20.0,
        "TotalTax": 2.0, "TotalAmount": 22.0, "AppliedToDate": 0.0, "BalanceDueAmount": 22.0,
        "Lines": [line(22.0, Some(J1))]}));
    fake.upsert(cf, "Sale/CustomerPayment", json!({"UID": uid(7000), "DepositTo": "Account",
        "Account": {"UID": uid(9003), "Name": "Bank", "DisplayID": "1-1110"}, "Customer": card(C1, "Acme Pty Ltd"),
        "ReceiptNumber": "R1", "Date": "2024-03-04T00:00:00", "AmountReceived": 110.0, "PaymentMethod": "EFT", "Memo": "",
        "Invoices": [{"RowID": 1, "Number": "00000000", "UID": uid(0), "AmountApplied": 110.0, "Type": "Invoice"}]}));
    fake.upsert(cf, "Banking/ReceiveMoneyTxn", json!({"UID": uid(7001), "DepositTo": "Account",
        "Account": {"UID": uid(9003), "Name": "Bank"}, "Contact": card(C2, "Jo Bloggs"), "ReceiptNumber": "CR1",
        "Date": "2024-03-04T00:00:00", "AmountReceived": 20.0, "IsTaxInclusive": true, "TotalTax": 0.0, "Memo": "",
        "Lines": [{"RowID": 1, "Account": {"UID": uid(9004)}, "Job": null, "TaxCode": null, "Amount": 20.0}]}));
    fake.upsert(cf, "Banking/SpendMoneyTxn", json!({"UID": uid(7002), "PayFrom": "Account",
        "Account": {"UID": uid(9003), "Name": "Bank"}, "Contact": card(C1, "Acme Pty Ltd"), "PaymentNumber": "CD1",
        "Date": "2024-03-05T00:00:00", "AmountPaid": 7.5, "IsTaxInclusive": true, "TotalTax": 0.0, "Memo": "",
        "Lines": [{"RowID": 1, "Account": {"UID": uid(9004)}, "Job": null, "TaxCode": null, "Amount": 7.5}]}));
}

#[tokio::test]
async fn myob_requests_and_fake_responses_follow_the_contract() {
    use zixly_testkit::contracts::{self, assert_no_violations};
    use zixly_testkit::fakes::recorded;
    let contract = contracts::load("myob");
    let (fake, cfg, cf, redirect) = contract_setup().await;
    assert_eq!(redirect["businessId"], cf, "businessId on the redirect");
    let tokens = cfg
        .exchange_code(&http_client(), &redirect["code"], REDIRECT, None)
        .await
        .unwrap();
    let tokens = cfg
        .refresh(&http_client(), tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    contract_seed(&fake, &cf);

    // What the product does: validate the file, a full read (two pages of invoices), an
    // increment; plus the legacy company-file list.
    myob::company_file(
        &http_client(),
        &cfg.api_url,
        &cfg.client_id,
        &tokens.access_token,
        &cf,
    )
    .await
    .unwrap();
    fake.data.lock().unwrap().legacy_key = true;
    let files = myob::company_files(
        &http_client(),
        &cfg.api_url,
        &cfg.client_id,
        &tokens.access_token,
    )
    .await
    .unwrap();
    assert_eq!(files[0].id, cf);
    let client = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        tokens.access_token.clone(),
        &cf,
    );
    let full = client.read(None, fake.now()).await.unwrap();
    let days = per_day(&full);
    assert_eq!(
        days[&key(C2, "2024-03-02")].0,
        dec("139.86"),
        "converted once"
    );
    assert_eq!(
        days[&key(C1, "2024-03-03")].1,
        dec("220"),
        "200 + 22 incl. 2 tax"
    );
    assert_eq!(
        days[&key(C2, "2024-03-04")].2,
        dec("20"),
        "customer contact by UID"
    );
    assert_eq!(days[&key(C1, "2024-03-05")].2, dec("-7.5"));
    fake.tick(chrono::Duration::hours(1));
    client.read(full.cursor, fake.now()).await.unwrap();

    let requests = recorded(&fake.url);
    assert_no_violations(
        "MYOB requests",
        &contracts::check_requests(&contract, &requests),
    );
    assert_no_violations(
        "fake MYOB responses",
        &contracts::check_responses(&contract, &requests),
    );

    // Every endpoint the product reads was exercised (so the checks above saw it), and the
    // authorization asked for every scope those endpoints need, with prompt=consent.
    let endpoints = contract.endpoints();
    let used: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| endpoints.iter().find(|e| e.matches(&r.method, &r.path)))
        .map(|e| e.id())
        .collect();
    for id in [
        "company_file_info",
        "company_files",
        "customers",
        "jobs",
        "sale_invoices",
        "bills_with_lines",
        "customer_payments",
        "receive_money",
        "spend_money",
    ] {
        assert!(used.contains(id), "{id} exercised: {used:?}");
    }
    assert!(
        !used.contains("bills"),
        "bills come from the layout endpoints, not the lineless list"
    );
    let authorize = requests
        .iter()
        .find(|r| r.path == "/oauth2/account/authorize")
        .unwrap();
    assert_eq!(authorize.query_values("prompt"), ["consent"]);
    let asked = authorize.scopes().unwrap();
    for id in &used {
        for scope in contract.endpoint(id).json["scopes"]["required"]
            .as_array()
            .unwrap()
        {
            let scope = scope.as_str().unwrap();
            assert!(
                asked.iter().any(|s| s == scope),
                "{id} needs {scope}; asked {asked:?}"
            );
        }
    }
    // The paging followed NextPageLink with documented parameters only.
    assert!(requests.iter().any(|r| r.query_values("$skip") == ["1000"]));
}

#[tokio::test]
async fn myob_contract_checks_catch_a_wrong_field_an_undocumented_parameter_and_a_missing_header() {
    use zixly_testkit::contracts::{self, check_requests, check_responses};
    use zixly_testkit::fakes::{clear_recorded, recorded};
    let contract = contracts::load("myob");
    let (fake, cfg, cf, redirect) = contract_setup().await;
    let tokens = cfg
        .exchange_code(&http_client(), &redirect["code"], REDIRECT, None)
        .await
        .unwrap();
    // A misspelt field in a fake's answer.
    fake.upsert(
        &cf,
        "Contact/Customer",
        json!({"UID": C1, "CompanyName": "Acme", "IsIndividual": false, "CurentBalance": 1.0}),
    );
    clear_recorded(&fake.url);
    let client = MyobClient::new(
        http_client(),
        &cfg.api_url,
        &cfg.client_id,
        tokens.access_token.clone(),
        &cf,
    );
    let _: Vec<myob::Customer> = client.list("Contact/Customer", None).await.unwrap();
    let found = check_responses(&contract, &recorded(&fake.url));
    assert!(
        found
            .iter()
            .any(|v| v.to_string().contains("CurentBalance")),
        "{found:?}"
    );

    // An undocumented query parameter, and a request without x-myobapi-version.
    clear_recorded(&fake.url);
    let base = format!("{}/{cf}/Contact/Customer", cfg.api_url);
    http_client()
        .get(format!("{base}?$expand=Lines"))
        .bearer_auth(tokens.access_token.expose())
        .header("x-myobapi-key", CLIENT_ID)
        .header("x-myobapi-version", "v2")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    http_client()
        .get(&base)
        .bearer_auth(tokens.access_token.expose())
        .header("x-myobapi-key", CLIENT_ID)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let found: Vec<String> = check_requests(&contract, &recorded(&fake.url))
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(found.iter().any(|v| v.contains("$expand")), "{found:?}");
    assert!(
        found.iter().any(|v| v.contains("x-myobapi-version")),
        "{found:?}"
    );

    // An undocumented scope: the fake refuses it and the check names it.
    clear_recorded(&fake.url);
    let url = cfg
        .authorize_url("st", REDIRECT, None)
        .replace("sme-sales", "sme-sales%20sme-reports");
    let r = http_client().get(url).send().await.unwrap();
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=invalid_scope"));
    let found: Vec<String> = check_requests(&contract, &recorded(&fake.url))
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(found.iter().any(|v| v.contains("sme-reports")), "{found:?}");
}
