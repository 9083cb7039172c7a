//! Xero amounts are in the organisation's base currency (read from `/Organisation`), which need
//! not be the tenant's: they are stored in that currency, a day without an exchange rate fails the
//! run without writing anything, and reports convert through `fx_rates`.

use chrono::NaiveDate;
use serde_json::json;
use zixly_connectors::Provider;
use zixly_db::queries::reports::ProfitabilityQuery;
use zixly_db::queries::series::DateRange;
use zixly_testkit::fakes::xero::{self, FakeXero};

use crate::sync::{config, connect};

const JAN10: &str = "/Date(1704844800000+0000)/"; // 2024-01-10

#[tokio::test]
async fn amounts_are_stored_in_the_organisations_base_currency_and_reports_convert_them() {
    let fake = FakeXero::start().await;
    fake.data.lock().unwrap().base_currency = "NZD".into();
    fake.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "c1", "Name": "Kiwi Ltd", "ContactStatus": "ACTIVE"}),
    );
    // A USD invoice at 0.5 USD per NZD: 100 USD = 200 NZD, the organisation's base currency.
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "AUTHORISED",
               "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 100,
               "CurrencyCode": "USD", "CurrencyRate": 0.5}),
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
    let su = env.db.superuser().await;

    // The tenant's base currency is AUD and there is no NZD rate: the run fails, naming what is
    // missing, and stores no financials.
    let err = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NZD"), "{err}");
    assert!(err.contains("2024-01-10"), "{err}");
    let stored: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);

    // With rates (ECB layout: 1 EUR = 1.80 NZD = 1.62 AUD, so 1 NZD = 0.90 AUD) the run loads the
    // day in NZD, unconverted.
    su.execute(
        "insert into fx_rates (rate_date, base_currency, quote_currency, rate)
         values ('2024-01-10', 'EUR', 'NZD', 1.80), ('2024-01-10', 'EUR', 'AUD', 1.62)",
        &[],
    )
    .await
    .unwrap();
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = su
        .query(
            "select record_date::text, currency::text, revenue::text from financials",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![("2024-01-10".into(), "NZD".into(), "200.00".into())]
    );

    // The profitability report works in the tenant's AUD: 200 NZD × 0.90 = 180 AUD.
    let day = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
    let tx = env.db.app.begin_tenant(env.tenant).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range: DateRange::new(day, day).unwrap(),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.base_currency, "AUD");
    let current = report.rows[0].current.as_ref().expect("converted figures");
    assert_eq!(current.revenue.round_dp(2).to_string(), "180.00");

    // A second run with no change writes nothing (the currency is stable across runs).
    let again = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!((again.inserted, again.updated), (0, 0));
}
