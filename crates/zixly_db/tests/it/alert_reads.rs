//! The alert evaluation's batched read (`TenantTx::client_financial_buckets`) against the one
//! KPI reader it stands in for (`TenantTx::kpi_series`): the same figures to the cent, for every
//! financial KPI, bucket and client — including days whose rows are in several currencies (each
//! day is converted and rounded on its own), a row without a usable rate, a client without rows
//! and a bucket without data.

use chrono::NaiveDate;
use uuid::Uuid;
use zixly_domain::period::Bucket;
use zixly_testkit::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_batched_read_equals_kpi_series_per_client() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Batched").await;
    let (a, b, idle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut rows = Vec::new();
    // Client A: three months of days alternating AUD, USD and NZD (USD → AUD is 1.6 / 1.1, a
    // repeating decimal, so per-day rounding is visible in the sums); two rows on some days.
    let mut day = d("2025-01-01");
    let mut i = 0u32;
    while day <= d("2025-03-31") {
        let cur = ["AUD", "USD", "NZD"][(i % 3) as usize];
        let (r, e) = (
            format!("{}.{:02}", 100 + i % 17, (i * 37) % 100),
            format!("{}.{:02}", 40 + i % 11, (i * 53) % 100),
        );
        rows.push(format!(
            "('{tenant}', '{a}', '{day}', {r}, {e}, {r} - {e}, {}.33, '{cur}', 'csv')",
            i % 7
        ));
        if i.is_multiple_of(4) {
            rows.push(format!(
                "('{tenant}', '{a}', '{day}', 33.33, 11.11, 22.22, 0, 'USD', 'xero')"
            ));
        }
        day = day.succ_opt().unwrap();
        i += 1;
    }
    // Client B: a few days only, one of them in GBP with no rate near it (not converted).
    for (day, cur) in [
        ("2025-01-06", "AUD"),
        ("2025-02-14", "USD"),
        ("2025-02-20", "GBP"),
    ] {
        rows.push(format!(
            "('{tenant}', '{b}', '{day}', 80.10, 20.20, 59.90, -5.00, '{cur}', 'csv')"
        ));
    }
    db.superuser()
        .await
        .batch_execute(&format!(
            "insert into client_kpis (tenant_id, id, client_id, client_name) values
                 ('{tenant}', '{a}', 'A', 'Alpha'), ('{tenant}', '{b}', 'B', 'Beta'),
                 ('{tenant}', '{idle}', 'I', 'Idle');
             insert into fx_rates (rate_date, base_currency, quote_currency, rate) values
                 ('2024-12-31', 'EUR', 'AUD', 1.6), ('2024-12-31', 'EUR', 'USD', 1.1),
                 ('2024-12-31', 'NZD', 'AUD', 0.9137), ('2025-01-20', 'EUR', 'AUD', 1.6),
                 ('2025-01-20', 'EUR', 'USD', 1.1), ('2025-02-10', 'EUR', 'AUD', 1.61),
                 ('2025-02-10', 'EUR', 'USD', 1.09), ('2025-02-10', 'NZD', 'AUD', 0.92),
                 ('2025-03-01', 'EUR', 'AUD', 1.62), ('2025-03-01', 'EUR', 'USD', 1.08),
                 ('2025-03-01', 'NZD', 'AUD', 0.93), ('2025-03-20', 'EUR', 'AUD', 1.62),
                 ('2025-03-20', 'EUR', 'USD', 1.08), ('2025-03-20', 'NZD', 'AUD', 0.93),
                 ('2024-06-01', 'EUR', 'GBP', 0.8);
             insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses,
                                     net_profit, cash_flow, currency, source_system)
             values {};",
            rows.join(",\n")
        ))
        .await
        .unwrap();

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let mut compared = 0;
    for (bucket, from, to) in [
        (Bucket::Month, d("2024-12-01"), d("2025-04-30")),
        (Bucket::Week, d("2024-12-30"), d("2025-04-06")),
        (Bucket::Day, d("2025-01-28"), d("2025-03-05")),
    ] {
        let batch = tx.client_financial_buckets(bucket, from, to).await.unwrap();
        for kpi in ["revenue", "expenses", "net_profit", "margin", "cash_flow"] {
            for client in [a, b, idle] {
                let expected = tx
                    .kpi_series(kpi, Some(client), bucket, from, to)
                    .await
                    .unwrap();
                let got = batch
                    .series(kpi, client, bucket, from, to)
                    .expect("inside the window");
                assert_eq!(got, expected, "{kpi} of {client} per {bucket:?}");
                compared += got.len();
            }
        }
        // A part of the window is the same part of kpi_series.
        let part_to = bucket.next_start(from).pred_opt().unwrap();
        let part = batch.series("revenue", a, bucket, from, part_to).unwrap();
        let expected = tx
            .kpi_series("revenue", Some(a), bucket, from, part_to)
            .await
            .unwrap();
        assert_eq!(part, expected);
        // Outside the window, another KPI or another bucket: not answered (read otherwise).
        assert!(batch
            .series("revenue", a, bucket, from - chrono::Days::new(40), to)
            .is_none());
        assert!(batch.series("win_rate", a, bucket, from, to).is_none());
        let other = if bucket == Bucket::Day {
            Bucket::Month
        } else {
            Bucket::Day
        };
        assert!(batch.series("revenue", a, other, from, to).is_none());
    }
    tx.commit().await.unwrap();
    assert!(compared > 500, "the comparison covered {compared} buckets");

    // Per-day rounding matters here: a month's revenue of client A is not a whole cent sum of
    // unrounded conversions, so agreeing above is not a coincidence of round numbers.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let feb = tx
        .kpi_series(
            "revenue",
            Some(a),
            Bucket::Month,
            d("2025-02-01"),
            d("2025-02-28"),
        )
        .await
        .unwrap();
    assert!(feb[0].1.is_some());
    tx.commit().await.unwrap();
}
