//! The dashboard's reads (`queries::dashboard`) with mixed currencies: the same rate policy as the
//! loader's `zixly_fx_rate` and the profitability report (direct, inverse or EUR cross rate, at
//! most 7 days old), so the overview and the reports agree. Fixtures as superuser, reads through
//! a `TenantTx`.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_db::queries::reports::ProfitabilityQuery;
use zixly_db::queries::series::DateRange;
use zixly_testkit::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn exec(db: &TestDb, sql: &str) {
    db.superuser()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("fixture failed: {e:?}\n{sql}"));
}

/// Tenant (base AUD, Australia/Sydney) with client A, whose rows all convert (AUD, USD through
/// EUR, NZD by a direct rate, JPY by the inverse of AUD→JPY), and client B, one of whose rows is
/// in GBP with only a rate 17 days older (too old: not converted).
async fn fixture(db: &TestDb) -> (Uuid, Uuid, Uuid) {
    let tenant = db.tenant("Mixed").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    exec(
        db,
        &format!(
            "insert into client_kpis (tenant_id, id, client_id, client_name) values
                 ('{tenant}', '{a}', 'A', 'Alpha'), ('{tenant}', '{b}', 'B', 'Beta');
             insert into fx_rates (rate_date, base_currency, quote_currency, rate) values
                 ('2025-03-03', 'EUR', 'AUD', 1.6), ('2025-03-03', 'EUR', 'USD', 1.0),
                 ('2025-03-03', 'EUR', 'GBP', 0.8), ('2025-03-18', 'EUR', 'AUD', 1.6),
                 ('2025-03-05', 'NZD', 'AUD', 0.9), ('2025-03-06', 'AUD', 'JPY', 100);
             insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency) values
                 ('{tenant}', '{a}', '2025-03-03', 100.00, 40.00, 60.00, 50.00, 'AUD'),
                 ('{tenant}', '{a}', '2025-03-04', 10.00, 2.00, 8.00, 5.00, 'USD'),
                 ('{tenant}', '{a}', '2025-03-05', 10.00, 5.00, 5.00, 0.00, 'NZD'),
                 ('{tenant}', '{a}', '2025-03-06', 1000.00, 500.00, 500.00, 0.00, 'JPY'),
                 ('{tenant}', '{b}', '2025-03-06', 30.00, 10.00, 20.00, 0.00, 'AUD'),
                 ('{tenant}', '{b}', '2025-03-20', 80.00, 0.00, 80.00, 0.00, 'GBP');
             insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status) values
                 ('{tenant}', '{a}', '2025-03-04 02:00Z', 'L1', 'proposal', 100.00, 'USD', 'active'),
                 ('{tenant}', '{a}', '2025-03-10 02:00Z', 'L1', 'closed', 100.00, 'USD', 'won'),
                 ('{tenant}', '{b}', '2025-03-20 02:00Z', 'L2', 'lead', 50.00, 'GBP', 'active'),
                 ('{tenant}', '{b}', '2025-02-10 02:00Z', 'L3', 'closed', 70.00, 'AUD', 'lost');"
        ),
    )
    .await;
    (tenant, a, b)
}

#[tokio::test]
async fn overview_figures_use_the_loaders_rates_and_agree_with_the_report() {
    let db = TestDb::new().await;
    let (tenant, a, b) = fixture(&db).await;
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let (from, to) = (d("2025-03-01"), d("2025-03-31"));

    let (days, unconverted) = tx.daily_totals(from, to, None).await.unwrap();
    let revenue: Vec<(NaiveDate, Decimal)> = days.iter().map(|x| (x.date, x.revenue)).collect();
    assert_eq!(
        revenue,
        vec![
            (d("2025-03-03"), dec("100.00")),
            (d("2025-03-04"), dec("16.00")), // USD through EUR: 10 × 1.6 / 1.0
            (d("2025-03-05"), dec("9.00")),  // NZD→AUD direct
            (d("2025-03-06"), dec("40.00")), // 1000 JPY / 100 (inverse) + 30 AUD
            (d("2025-03-20"), dec("0")),     // GBP rate of 3 March is too old
        ]
    );
    assert_eq!(unconverted, 1, "the GBP row is left out and counted");
    let (one, _) = tx.daily_totals(from, to, Some(a)).await.unwrap();
    assert_eq!(one.len(), 4);
    assert_eq!(one[1].expenses, dec("3.20"));
    assert_eq!(one[1].cash_flow, dec("8.00"));

    let clients = tx.client_summaries(from, to, None).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range: DateRange::new(from, to).unwrap(),
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    let alpha = clients.iter().find(|c| c.id == a).unwrap();
    assert_eq!(
        (alpha.revenue, alpha.expenses),
        (dec("135.00"), dec("52.70"))
    );
    let alpha_report = report.rows.iter().find(|r| r.client_kpi_id == a).unwrap();
    let current = alpha_report.current.as_ref().expect("every rate is known");
    assert_eq!(
        (current.revenue, current.expenses, current.net_profit),
        (alpha.revenue, alpha.expenses, alpha.net_profit),
        "the overview's client figures are the report's"
    );
    let beta = clients.iter().find(|c| c.id == b).unwrap();
    assert_eq!(beta.revenue, dec("30.00"), "the GBP row is left out");
    let beta_report = report.rows.iter().find(|r| r.client_kpi_id == b).unwrap();
    assert!(beta_report.current.is_none());
    assert_eq!(beta_report.missing_rates.len(), 1);
    assert_eq!(beta_report.missing_rates[0].currency, "GBP");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn pipeline_summaries_of_several_periods_match_one_at_a_time() {
    let db = TestDb::new().await;
    let (tenant, a, _) = fixture(&db).await;
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let periods = [
        (d("2025-03-01"), d("2025-03-05")),
        (d("2025-03-01"), d("2025-03-31")),
        (d("2025-02-01"), d("2025-02-28")),
    ];
    let all = tx.pipeline_summaries(&periods, None).await.unwrap();
    assert_eq!(all.len(), 3);
    // 1–5 March: L1 open at 100 USD = 160 AUD.
    assert_eq!(
        (
            all[0].open_value,
            all[0].open_leads,
            all[0].won,
            all[0].lost
        ),
        (dec("160.00"), 1, 0, 0)
    );
    // March: L1 won; L2 open but its GBP value has no recent rate.
    assert_eq!(
        (
            all[1].open_value,
            all[1].open_leads,
            all[1].won,
            all[1].unconverted
        ),
        (dec("0"), 1, 1, 1)
    );
    // February: L3 lost.
    assert_eq!((all[2].open_leads, all[2].won, all[2].lost), (0, 0, 1));
    for (i, (from, to)) in periods.iter().enumerate() {
        assert_eq!(tx.pipeline_summary(*from, *to, None).await.unwrap(), all[i]);
    }
    let only_a = tx.pipeline_summaries(&periods, Some(a)).await.unwrap();
    assert_eq!((only_a[1].open_leads, only_a[1].won), (0, 1));
    assert_eq!(only_a[2].lost, 0);
    tx.commit().await.unwrap();
}
