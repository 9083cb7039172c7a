//! `BENCHMARKS.md` "Sync (connectors)": a full Xero sync of a large fake dataset, measured, not
//! asserted on time. Run:
//!
//! ```text
//! ZIXLY_BENCH_INVOICES=100000 cargo nextest run --release -p zixly_sync --run-ignored only \
//!     -E 'test(bench_)' --no-capture
//! ```

use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use zixly_connectors::Provider;
use zixly_testkit::fakes::xero::{FakeXero, CLIENT_ID, CLIENT_SECRET};

use crate::sync::{config, connect};

const CONTACTS: usize = 1000;

#[tokio::test]
#[ignore = "benchmark: run explicitly (see the module docs)"]
async fn bench_xero_full_sync() {
    let invoices: usize = std::env::var("ZIXLY_BENCH_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fake = FakeXero::start().await;
    let cfg = config(
        Provider::Xero,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    {
        // Straight into the fake's store (its `upsert` is O(n) per document).
        let mut d = fake.data.lock().unwrap();
        let at = d.now;
        let ms = |t: chrono::DateTime<Utc>| format!("/Date({}+0000)/", t.timestamp_millis());
        let contacts: Vec<_> = (0..CONTACTS)
            .map(|c| {
                (
                    at,
                    json!({"ContactID": format!("c{c}"), "Name": format!("Client {c}"),
                            "ContactStatus": "ACTIVE", "UpdatedDateUTC": ms(at)}),
                )
            })
            .collect();
        d.records.insert("Contacts", contacts);
        let day0 = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        let docs: Vec<_> = (0..invoices)
            .map(|i| {
                // Every invoice its own client-day: one financials row each.
                let date = day0 + Duration::days((i / CONTACTS) as i64 % 365);
                let t = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap());
                (
                    at,
                    json!({"InvoiceID": format!("i{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
                            "Contact": {"ContactID": format!("c{}", i % CONTACTS)},
                            "Date": ms(t), "SubTotal": 100 + (i % 97), "UpdatedDateUTC": ms(at)}),
                )
            })
            .collect();
        d.records.insert("Invoices", docs);
    }
    let env = connect(cfg, json!({})).await;
    let calls0 = fake.oauth.api_calls();
    let t = Instant::now();
    let full = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let full_time = t.elapsed();
    let full_calls = fake.oauth.api_calls() - calls0;
    let calls1 = fake.oauth.api_calls();
    let t = Instant::now();
    let again = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let again_time = t.elapsed();
    let again_calls = fake.oauth.api_calls() - calls1;
    // Pages the provider's paging needs at least (pageSize 1000, pageCount known from the first
    // page): connections + organisation + contacts + invoices + payments and bank transactions
    // (one empty page each).
    let minimum = 1 + 1 + CONTACTS.div_ceil(1000) + invoices.div_ceil(1000) + 1 + 1;
    eprintln!(
        "BENCH xero full: {invoices} invoices -> {} financials rows in {:.2} s = {:.0} invoices/s; {full_calls} API calls (minimum {minimum})",
        full.inserted,
        full_time.as_secs_f64(),
        invoices as f64 / full_time.as_secs_f64(),
    );
    eprintln!(
        "BENCH xero no-change rerun: {} rows read, {} inserted, {} updated, {} unchanged in {:.2} s; {again_calls} API calls",
        again.rows_read,
        again.inserted,
        again.updated,
        again.unchanged,
        again_time.as_secs_f64(),
    );
    assert_eq!(full.inserted as usize, invoices, "one row per client-day");
    assert_eq!((again.inserted, again.updated), (0, 0));
}
