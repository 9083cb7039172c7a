//! Clients, series reads and reports, through `zixly_app` and RLS.
//!
//! Fixtures are inserted as the superuser (they are not what is under test); every read under test
//! goes through a `TenantTx`. Expected figures are computed here, in Rust, from the fixture rows —
//! never by running the report's SQL again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;
use zixly_db::queries::clients::{ClientChanges, ClientQuery, ClientSort, NewClient};
use zixly_db::queries::reports::{FunnelQuery, MissingRate, PeriodFigures, ProfitabilityQuery};
use zixly_db::queries::series::{
    bucket_window, Bucket, DateRange, FinancialCursor, InstantCursor, SeriesQuery,
};
use zixly_db::DbError;
use zixly_domain::CurrencyCode;
use zixly_testkit::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}
fn ts(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A deterministic pseudo-random generator (the fixtures must not change between runs).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// An amount in cents between 0.00 and max_units.99.
    fn money(&mut self, max_units: u64) -> Decimal {
        Decimal::new((self.next() % (max_units * 100)) as i64, 2)
    }
}

async fn exec(db: &TestDb, sql: &str) {
    db.superuser()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("fixture failed: {e:?}\n{sql}"));
}

async fn insert_client(db: &TestDb, tenant: Uuid, client_id: &str, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    exec(db, &format!("insert into client_kpis (tenant_id, id, client_id, client_name) values ('{tenant}', '{id}', '{client_id}', '{name}')")).await;
    id
}

#[derive(Clone)]
struct Fin {
    client: Uuid,
    date: NaiveDate,
    revenue: Decimal,
    expenses: Decimal,
    cash_flow: Decimal,
    currency: &'static str,
    source: &'static str,
}

async fn insert_financials(db: &TestDb, tenant: Uuid, rows: &[Fin]) {
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|f| {
                format!(
                    "('{tenant}', '{}', '{}', {}, {}, {}, {}, '{}', '{}')",
                    f.client,
                    f.date,
                    f.revenue,
                    f.expenses,
                    f.revenue - f.expenses,
                    f.cash_flow,
                    f.currency,
                    f.source
                )
            })
            .collect();
        exec(
            db,
            &format!(
                "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency, source_system) values {}",
                values.join(",")
            ),
        )
        .await;
    }
}

/// ECB-style rates (base EUR) on weekdays, except the listed holidays.
struct Rates {
    eur_to: HashMap<(String, NaiveDate), Decimal>,
}

impl Rates {
    fn generate(
        from: NaiveDate,
        to: NaiveDate,
        currencies: &[&'static str],
        holidays: &[NaiveDate],
        rng: &mut Lcg,
    ) -> Self {
        let mut eur_to = HashMap::new();
        let mut day = from;
        while day <= to {
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            if !weekend && !holidays.contains(&day) {
                for c in currencies {
                    // 1.0000 .. 1.9999
                    eur_to.insert(
                        (c.to_string(), day),
                        Decimal::new(10_000 + (rng.next() % 10_000) as i64, 4),
                    );
                }
            }
            day = day + Days::new(1);
        }
        Rates { eur_to }
    }

    async fn insert(&self, db: &TestDb) {
        let values: Vec<String> = self
            .eur_to
            .iter()
            .map(|((c, day), r)| format!("('{day}', 'EUR', '{c}', {r})"))
            .collect();
        for chunk in values.chunks(1000) {
            exec(db, &format!("insert into fx_rates (rate_date, base_currency, quote_currency, rate) values {}", chunk.join(","))).await;
        }
    }

    /// The rate of `day`, else of the closest earlier day at most 7 days back.
    fn eur_rate(&self, currency: &str, day: NaiveDate) -> Option<Decimal> {
        if currency == "EUR" {
            return Some(Decimal::ONE);
        }
        (0..=7).find_map(|back| {
            self.eur_to
                .get(&(currency.to_string(), day - Days::new(back)))
                .copied()
        })
    }

    /// `amount` (in `currency`) in AUD on `day`: amount / EUR→currency × EUR→AUD.
    fn to_aud(&self, amount: Decimal, currency: &str, day: NaiveDate) -> Option<Decimal> {
        if currency == "AUD" {
            return Some(amount);
        }
        Some(amount / self.eur_rate(currency, day)? * self.eur_rate("AUD", day)?)
    }
}

fn round2(x: Decimal) -> Decimal {
    let mut r = x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

fn expected_figures(rates: &Rates, rows: &[&Fin]) -> PeriodFigures {
    let (mut rev, mut exp, mut cf) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for f in rows {
        rev += rates
            .to_aud(f.revenue, f.currency, f.date)
            .expect("fixture rate");
        exp += rates
            .to_aud(f.expenses, f.currency, f.date)
            .expect("fixture rate");
        cf += rates
            .to_aud(f.cash_flow, f.currency, f.date)
            .expect("fixture rate");
    }
    let (revenue, expenses) = (round2(rev), round2(exp));
    let net_profit = revenue - expenses;
    PeriodFigures {
        records: rows.len() as i64,
        revenue,
        expenses,
        net_profit,
        margin: if revenue.is_zero() {
            None
        } else {
            Some(
                (net_profit / revenue)
                    .round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero),
            )
        },
        cash_flow: round2(cf),
    }
}

#[tokio::test]
async fn profitability_matches_independent_sums_across_currencies() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let other = db.tenant("Other").await;
    let mut rng = Lcg(42);

    let period = DateRange::new(d("2025-01-01"), d("2025-03-31")).unwrap();
    let previous = period.previous();
    // A quarter compares with the quarter before (whole months: read from the rollups).
    assert_eq!(previous.from(), d("2024-10-01"));

    // Ordered by name in the report: "Alpha" (AUD), "Bravo" (USD, every day incl. weekends),
    // "Charlie" (EUR and AUD mixed), "Delta" (no data at all).
    let alpha = insert_client(&db, tenant, "A-1", "Alpha").await;
    let bravo = insert_client(&db, tenant, "B-2", "bravo").await;
    let charlie = insert_client(&db, tenant, "C-3", "Charlie").await;
    let delta = insert_client(&db, tenant, "D-4", "Delta").await;
    // The other tenant's client shares an external id and has data in the same periods.
    let intruder = insert_client(&db, other, "A-1", "Alpha elsewhere").await;

    let mut rows = Vec::new();
    let mut day = previous.from() - Days::new(5); // some rows before the previous period: excluded
    while day <= period.to() + Days::new(5) {
        let n = day.ordinal();
        if !n.is_multiple_of(5) {
            rows.push(Fin {
                client: alpha,
                date: day,
                revenue: rng.money(5000),
                expenses: rng.money(4000),
                cash_flow: rng.money(3000),
                currency: "AUD",
                source: "xero",
            });
        }
        if n.is_multiple_of(10) {
            rows.push(Fin {
                client: alpha,
                date: day,
                revenue: rng.money(100),
                expenses: rng.money(100),
                cash_flow: rng.money(100),
                currency: "AUD",
                source: "manual",
            });
        }
        rows.push(Fin {
            client: bravo,
            date: day,
            revenue: rng.money(9000),
            expenses: rng.money(9500),
            cash_flow: rng.money(2000),
            currency: "USD",
            source: "manual",
        });
        if n.is_multiple_of(3) {
            rows.push(Fin {
                client: charlie,
                date: day,
                revenue: rng.money(700),
                expenses: rng.money(300),
                cash_flow: rng.money(100),
                currency: if n.is_multiple_of(2) { "EUR" } else { "AUD" },
                source: "csv",
            });
        }
        day = day + Days::new(1);
    }
    insert_financials(&db, tenant, &rows).await;
    let intruder_rows: Vec<Fin> = rows
        .iter()
        .filter(|f| f.client == alpha)
        .map(|f| Fin {
            client: intruder,
            ..f.clone()
        })
        .collect();
    insert_financials(&db, other, &intruder_rows).await;

    // Holidays: no rates on 2025-01-01 (falls back to 2024-12-31) nor 2024-12-25/26.
    let rates = Rates::generate(
        previous.from() - Days::new(20),
        period.to() + Days::new(20),
        &["USD", "AUD", "GBP"],
        &[d("2025-01-01"), d("2024-12-25"), d("2024-12-26")],
        &mut rng,
    );
    rates.insert(&db).await;

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range: period,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(report.base_currency, "AUD");
    assert_eq!(report.previous_period, previous);
    assert!(
        report.missing_rates.is_empty(),
        "{:?}",
        report.missing_rates
    );
    assert!(report.next.is_none());
    let names: Vec<&str> = report.rows.iter().map(|r| r.client_name.as_str()).collect();
    assert_eq!(
        names,
        ["Alpha", "bravo", "Charlie", "Delta"],
        "sorted case-insensitively, other tenant absent"
    );

    for (client, external) in [
        (alpha, "A-1"),
        (bravo, "B-2"),
        (charlie, "C-3"),
        (delta, "D-4"),
    ] {
        let row = report
            .rows
            .iter()
            .find(|r| r.client_kpi_id == client)
            .unwrap();
        assert_eq!(row.client_id, external);
        let in_range = |r: &DateRange| -> Vec<&Fin> {
            rows.iter()
                .filter(|f| f.client == client && f.date >= r.from() && f.date <= r.to())
                .collect()
        };
        assert_eq!(
            row.current.as_ref().unwrap(),
            &expected_figures(&rates, &in_range(&period)),
            "current period of {external}"
        );
        assert_eq!(
            row.previous.as_ref().unwrap(),
            &expected_figures(&rates, &in_range(&previous)),
            "previous period of {external}"
        );
    }
    let delta_row = report
        .rows
        .iter()
        .find(|r| r.client_kpi_id == delta)
        .unwrap();
    let current = delta_row.current.as_ref().unwrap();
    assert_eq!(
        (current.records, current.revenue.to_string(), current.margin),
        (0, "0.00".to_string(), None)
    );
    // Converted sums are rounded to cents.
    let bravo_row = report
        .rows
        .iter()
        .find(|r| r.client_kpi_id == bravo)
        .unwrap();
    assert_eq!(bravo_row.current.as_ref().unwrap().revenue.scale(), 2);

    // Paging by client: two pages of two, same rows.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let p1 = tx
        .profitability(&ProfitabilityQuery {
            range: period,
            after: None,
            limit: 2,
        })
        .await
        .unwrap();
    let p2 = tx
        .profitability(&ProfitabilityQuery {
            range: period,
            after: p1.next.clone(),
            limit: 2,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(p2.next.is_none());
    let paged: Vec<_> = p1.rows.iter().chain(&p2.rows).cloned().collect();
    assert_eq!(paged, report.rows);
}

#[tokio::test]
async fn profitability_reports_missing_rates_instead_of_assuming_one() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let client = insert_client(&db, tenant, "G-1", "Gamma").await;
    let period = DateRange::new(d("2025-02-01"), d("2025-02-28")).unwrap();
    let rows = [
        Fin {
            client,
            date: d("2025-02-03"),
            revenue: dec("100.00"),
            expenses: dec("50.00"),
            cash_flow: dec("0.00"),
            currency: "GBP",
            source: "manual",
        },
        Fin {
            client,
            date: d("2025-02-04"),
            revenue: dec("10.00"),
            expenses: dec("5.00"),
            cash_flow: dec("1.00"),
            currency: "AUD",
            source: "manual",
        },
        // Previous period, AUD only: convertible.
        Fin {
            client,
            date: d("2025-01-20"),
            revenue: dec("80.00"),
            expenses: dec("20.00"),
            cash_flow: dec("3.00"),
            currency: "AUD",
            source: "manual",
        },
    ];
    insert_financials(&db, tenant, &rows).await;
    // A USD rate exists, a GBP one does not; nor does a rate older than the look-back count.
    exec(&db, "insert into fx_rates (rate_date, base_currency, quote_currency, rate) values
               ('2025-02-03', 'EUR', 'USD', 1.05), ('2025-02-03', 'EUR', 'AUD', 1.65), ('2025-01-20', 'EUR', 'GBP', 0.84)").await;

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range: period,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = &report.rows[0];
    assert_eq!(
        row.current, None,
        "a GBP amount without a rate must not be added as if 1 GBP = 1 AUD"
    );
    let missing = vec![MissingRate {
        currency: "GBP".into(),
        date: d("2025-02-03"),
    }];
    assert_eq!(row.missing_rates, missing);
    assert_eq!(report.missing_rates, missing);
    let prev = row.previous.as_ref().unwrap();
    assert_eq!(
        (prev.revenue, prev.expenses, prev.net_profit, prev.cash_flow),
        (dec("80.00"), dec("20.00"), dec("60.00"), dec("3.00"))
    );
    assert_eq!(prev.margin, Some(dec("0.75")));
}

#[tokio::test]
async fn a_period_without_data_lists_every_client_with_zeros() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let client = insert_client(&db, tenant, "Z-1", "Zed").await;
    insert_financials(
        &db,
        tenant,
        &[Fin {
            client,
            date: d("2020-06-01"),
            revenue: dec("1.00"),
            expenses: dec("1.00"),
            cash_flow: dec("1.00"),
            currency: "USD",
            source: "manual",
        }],
    )
    .await;

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let range = DateRange::new(d("2030-01-01"), d("2030-03-31")).unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 1);
    for figures in [&report.rows[0].current, &report.rows[0].previous] {
        let f = figures.as_ref().unwrap();
        assert_eq!(f.records, 0);
        assert_eq!(
            [f.revenue, f.expenses, f.net_profit, f.cash_flow].map(|x| x.to_string()),
            ["0.00", "0.00", "0.00", "0.00"]
        );
        assert_eq!(f.margin, None);
    }
    // The same range on a tenant without any client: an empty report, not an error.
    tx.commit().await.unwrap();
    let empty = db.tenant("Empty").await;
    let tx = db.app.begin_tenant(empty).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(report.rows.is_empty());
    tx.commit().await.unwrap();
}

#[derive(Clone)]
struct Ev {
    lead: String,
    stage: &'static str,
    status: &'static str,
    at: DateTime<Utc>,
    value: Option<Decimal>,
    currency: &'static str,
}

#[tokio::test]
async fn funnel_counts_values_and_conversions_match_the_fixture() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let client = insert_client(&db, tenant, "F-1", "Funnel Co").await;
    let other_client = insert_client(&db, tenant, "F-2", "Elsewhere").await;
    let mut rng = Lcg(7);
    let stages = ["lead", "qualified", "proposal", "negotiation"];
    let statuses = ["won", "lost", "stale", "active"];
    let mut events = Vec::new();
    for i in 0..40u64 {
        // Lead i reaches a prefix of the funnel; every 7th skips "qualified".
        let depth = 1 + (rng.next() % 4) as usize;
        let start = ts("2025-01-06T01:00:00Z") + chrono::Duration::hours((i * 13) as i64);
        for (k, stage) in stages.iter().take(depth).enumerate() {
            if i % 7 == 0 && *stage == "qualified" {
                continue;
            }
            let last = k + 1 == depth;
            events.push(Ev {
                lead: format!("L{i}"),
                stage,
                status: if last {
                    statuses[(rng.next() % 4) as usize]
                } else {
                    "active"
                },
                at: start + chrono::Duration::days(k as i64 * 3),
                value: if rng.next().is_multiple_of(5) {
                    None
                } else {
                    Some(rng.money(20_000))
                },
                currency: if i % 6 == 0 { "USD" } else { "AUD" },
            });
        }
    }
    // Outside the range (before it) and another client's: both excluded.
    let mut excluded = vec![Ev {
        lead: "L0".into(),
        stage: "won_stage",
        status: "won",
        at: ts("2024-12-01T00:00:00Z"),
        value: Some(dec("5.00")),
        currency: "AUD",
    }];
    excluded.push(Ev {
        lead: "X".into(),
        stage: "lead",
        status: "active",
        at: ts("2025-01-10T00:00:00Z"),
        value: Some(dec("1.00")),
        currency: "AUD",
    });
    let insert = |client: Uuid, evs: Vec<Ev>| {
        let values: Vec<String> = evs
            .iter()
            .map(|e| {
                format!(
                    "('{tenant}', '{client}', '{}', '{}', '{}', {}, '{}', '{}')",
                    e.at.to_rfc3339(),
                    e.lead,
                    e.stage,
                    e.value.map_or("null".to_string(), |v| v.to_string()),
                    e.currency,
                    e.status
                )
            })
            .collect();
        format!("insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status) values {}", values.join(","))
    };
    exec(&db, &insert(client, events.clone())).await;
    exec(&db, &insert(client, excluded[..1].to_vec())).await;
    exec(&db, &insert(other_client, excluded[1..].to_vec())).await;
    let mut rates_rng = Lcg(99);
    let rates = Rates::generate(
        d("2024-12-01"),
        d("2025-04-30"),
        &["USD", "AUD"],
        &[],
        &mut rates_rng,
    );
    rates.insert(&db).await;

    let range = DateRange::new(d("2025-01-01"), d("2025-03-31")).unwrap();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let report = tx
        .funnel(
            Some(client),
            &FunnelQuery {
                range: Some(range),
                stages: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert!(report.missing_rates.is_empty());
    let order: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    let present: Vec<&str> = stages
        .iter()
        .copied()
        .filter(|s| events.iter().any(|e| e.stage == *s))
        .collect();
    assert_eq!(order, present, "natural order follows the leads' histories");

    // Sydney is UTC+11 in January-March 2025; every fixture instant is a daytime hour.
    let local_day = |at: DateTime<Utc>| (at + chrono::Duration::hours(11)).date_naive();
    let leads_at = |stage: &str| -> BTreeSet<&str> {
        events
            .iter()
            .filter(|e| e.stage == stage)
            .map(|e| e.lead.as_str())
            .collect()
    };
    for (i, s) in report.stages.iter().enumerate() {
        let stage_events: Vec<&Ev> = events.iter().filter(|e| e.stage == s.stage).collect();
        assert_eq!(s.position as usize, i + 1);
        assert_eq!(s.events, stage_events.len() as i64);
        assert_eq!(s.leads, leads_at(&s.stage).len() as i64);
        let mut by_status: BTreeMap<&str, (i64, Decimal)> = BTreeMap::new();
        for e in &stage_events {
            let cell = by_status.entry(e.status).or_default();
            cell.0 += 1;
            if let Some(v) = e.value {
                cell.1 += rates.to_aud(v, e.currency, local_day(e.at)).unwrap();
            }
        }
        let got: BTreeMap<&str, (i64, Decimal)> = s
            .statuses
            .iter()
            .map(|st| (st.status.as_str(), (st.events, st.value.unwrap())))
            .collect();
        let want: BTreeMap<&str, (i64, Decimal)> = by_status
            .iter()
            .map(|(k, (n, v))| (*k, (*n, round2(*v))))
            .collect();
        assert_eq!(got, want, "stage {}", s.stage);
        let total: Decimal = by_status.values().map(|(_, v)| *v).sum();
        assert_eq!(s.value, Some(round2(total)));
        if i == 0 {
            assert_eq!(s.conversion_from_previous, None);
        } else {
            let prev = leads_at(&report.stages[i - 1].stage);
            let both = prev.intersection(&leads_at(&s.stage)).count();
            let want = (Decimal::from(both) / Decimal::from(prev.len()))
                .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
            assert_eq!(
                s.conversion_from_previous,
                Some(want),
                "conversion into {}",
                s.stage
            );
        }
    }
    // "qualified" is skipped by some leads, so conversion into "proposal" is not simply a ratio of counts.
    assert!(report.stages.iter().any(|s| s.stage == "proposal"));

    // An explicit order is honoured; an unknown client (or another tenant's) is NotFound.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let custom = tx
        .funnel(
            Some(client),
            &FunnelQuery {
                range: Some(range),
                stages: Some(vec!["negotiation".into(), "lead".into()]),
            },
        )
        .await
        .unwrap();
    assert_eq!(custom.stages[0].stage, "negotiation");
    assert_eq!(custom.stages[1].stage, "lead");
    assert!(matches!(
        tx.funnel(Some(Uuid::now_v7()), &FunnelQuery::default())
            .await,
        Err(DbError::NotFound("client"))
    ));
    // All time: the excluded December event of this client now counts.
    let all = tx
        .funnel(Some(client), &FunnelQuery::default())
        .await
        .unwrap();
    assert!(all.stages.iter().any(|s| s.stage == "won_stage"));
    tx.commit().await.unwrap();
    let stranger = db.tenant("Stranger").await;
    let tx = db.app.begin_tenant(stranger).await.unwrap();
    assert!(matches!(
        tx.funnel(Some(client), &FunnelQuery::default()).await,
        Err(DbError::NotFound("client"))
    ));
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn series_pages_and_buckets_match_the_fixture() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let client = insert_client(&db, tenant, "S-1", "Series").await;
    let mut rng = Lcg(3);
    let mut rows = Vec::new();
    let mut day = d("2024-12-20");
    while day <= d("2025-02-10") {
        rows.push(Fin {
            client,
            date: day,
            revenue: rng.money(1000),
            expenses: rng.money(900),
            cash_flow: rng.money(50),
            currency: "AUD",
            source: "xero",
        });
        if day.day().is_multiple_of(4) {
            rows.push(Fin {
                client,
                date: day,
                revenue: rng.money(1000),
                expenses: rng.money(900),
                cash_flow: rng.money(50),
                currency: "USD",
                source: "manual",
            });
        }
        day = day + Days::new(1);
    }
    insert_financials(&db, tenant, &rows).await;
    let range = DateRange::new(d("2025-01-01"), d("2025-01-31")).unwrap();
    let mut want: Vec<&Fin> = rows
        .iter()
        .filter(|f| f.date >= range.from() && f.date <= range.to())
        .collect();
    want.sort_by_key(|f| (f.date, f.source));

    // Raw rows, 7 per page, through the cursor.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let mut got = Vec::new();
    let mut after: Option<FinancialCursor> = None;
    loop {
        let page = tx
            .financials(
                client,
                &SeriesQuery {
                    range,
                    after: after.clone(),
                    limit: 7,
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 7);
        got.extend(page.items);
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let got_keys: Vec<(NaiveDate, String, Decimal)> = got
        .iter()
        .map(|r| (r.record_date, r.source_system.clone(), r.revenue))
        .collect();
    let want_keys: Vec<(NaiveDate, String, Decimal)> = want
        .iter()
        .map(|f| (f.date, f.source.to_string(), f.revenue))
        .collect();
    assert_eq!(got_keys, want_keys);

    // Weekly buckets per currency, the first one clipped to the range (2024-12-30 week from Jan 1).
    let window = bucket_window(range, Bucket::Week, None, 100).unwrap();
    let buckets = tx
        .financial_buckets(client, Bucket::Week, &window)
        .await
        .unwrap();
    let mut expect: BTreeMap<(NaiveDate, String), (i64, Decimal, Decimal)> = BTreeMap::new();
    for f in &want {
        let monday = f.date - Days::new(u64::from(f.date.weekday().num_days_from_monday()));
        let e = expect.entry((monday, f.currency.to_string())).or_default();
        e.0 += 1;
        e.1 += f.revenue;
        e.2 += f.revenue - f.expenses;
    }
    let got: BTreeMap<(NaiveDate, String), (i64, Decimal, Decimal)> = buckets
        .iter()
        .map(|b| {
            (
                (b.bucket_start, b.currency.clone()),
                (b.rows, b.revenue, b.net_profit),
            )
        })
        .collect();
    assert_eq!(got, expect);
    assert_eq!(buckets[0].bucket_start, d("2024-12-30"));

    // A client of another tenant (or none) is NotFound, an empty range of a real client is empty.
    let empty = DateRange::new(d("2030-01-01"), d("2030-01-02")).unwrap();
    assert!(tx
        .financials(
            client,
            &SeriesQuery {
                range: empty,
                after: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .items
        .is_empty());
    tx.commit().await.unwrap();
    let other = db.tenant("Other").await;
    let tx = db.app.begin_tenant(other).await.unwrap();
    let err = tx
        .financials(
            client,
            &SeriesQuery {
                range,
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::NotFound("client")), "{err}");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn metrics_and_lead_events_use_the_tenant_time_zone() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await; // Australia/Sydney: UTC+11 until 2025-04-06
    let c1 = insert_client(&db, tenant, "M-1", "One").await;
    let c2 = insert_client(&db, tenant, "M-2", "Two").await;
    // (client, instant, value). 2024-12-31T14:00Z is 1 Jan in Sydney; 2025-03-31T22:00Z is 1 Apr.
    let points = [
        (c1, "2024-12-31T14:00:00Z", "10.5000"),
        (c1, "2025-01-15T02:00:00Z", "20.2500"),
        (c2, "2025-01-20T02:00:00Z", "7.0000"),
        (c2, "2025-02-03T02:00:00Z", "3.3333"),
        (c1, "2025-02-28T02:00:00Z", "1.0000"),
        (c1, "2025-03-31T22:00:00Z", "99.0000"),
        (c1, "2024-12-31T12:00:00Z", "50.0000"),
    ];
    let values: Vec<String> = points
        .iter()
        .map(|(c, at, v)| format!("('{tenant}', '{c}', 'nps', {v}, 'score', '{at}')"))
        .collect();
    exec(&db, &format!("insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date) values {}, ('{tenant}', '{c1}', 'other', 1, null, '2025-01-15T02:00:00Z')", values.join(","))).await;
    exec(&db, &format!("insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, status) values
        ('{tenant}', '{c1}', '2024-12-31T14:00:00Z', 'L1', 'lead', 10.00, 'active'),
        ('{tenant}', '{c1}', '2024-12-31T12:00:00Z', 'L0', 'lead', 10.00, 'active')")).await;

    let range = DateRange::new(d("2025-01-01"), d("2025-03-31")).unwrap();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let window = bucket_window(range, Bucket::Month, None, 12).unwrap();
    let report = tx
        .metric_report("nps", Bucket::Month, &window)
        .await
        .unwrap();
    let got: Vec<(NaiveDate, i64, i64, Decimal, Decimal, Decimal, Decimal)> = report
        .iter()
        .map(|r| {
            (
                r.bucket_start,
                r.clients,
                r.count,
                r.sum,
                r.avg,
                r.min,
                r.max,
            )
        })
        .collect();
    // January: 10.5 + 20.25 (c1) + 7 (c2); February: 3.3333 (c2) + 1 (c1); nothing in March.
    assert_eq!(
        got,
        vec![
            (
                d("2025-01-01"),
                2,
                3,
                dec("37.75"),
                dec("12.5833"),
                dec("7"),
                dec("20.25")
            ),
            (
                d("2025-02-01"),
                2,
                2,
                dec("4.3333"),
                dec("2.1667"),
                dec("1"),
                dec("3.3333")
            ),
        ]
    );
    assert_eq!(report[0].unit.as_deref(), Some("score"));

    // Raw values of one client and metric, 2 per page.
    let q = SeriesQuery {
        range,
        after: None::<InstantCursor>,
        limit: 2,
    };
    let p1 = tx.custom_metrics(c1, Some("nps"), &q).await.unwrap();
    let p2 = tx
        .custom_metrics(
            c1,
            Some("nps"),
            &SeriesQuery {
                after: p1.next.clone(),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    let values: Vec<String> = p1
        .items
        .iter()
        .chain(&p2.items)
        .map(|m| m.metric_value.to_string())
        .collect();
    assert_eq!(values, ["10.5000", "20.2500", "1.0000"]);
    assert!(p2.next.is_none());
    let all = tx
        .custom_metrics(
            c1,
            None,
            &SeriesQuery {
                limit: 100,
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4, "with the other metric");
    let buckets = tx
        .custom_metric_buckets(c1, Some("nps"), Bucket::Month, &window)
        .await
        .unwrap();
    assert_eq!(
        buckets
            .iter()
            .map(|b| (b.bucket_start, b.count))
            .collect::<Vec<_>>(),
        [(d("2025-01-01"), 2), (d("2025-02-01"), 1)]
    );

    let events = tx
        .lead_events(
            c1,
            &SeriesQuery {
                range,
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        events
            .items
            .iter()
            .map(|e| e.lead_id.as_str())
            .collect::<Vec<_>>(),
        ["L1"]
    );
    let eb = tx
        .lead_event_buckets(
            c1,
            Bucket::Day,
            &bucket_window(range, Bucket::Day, None, 400).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        eb.iter()
            .map(|b| (b.bucket_start, b.events, b.value))
            .collect::<Vec<_>>(),
        [(d("2025-01-01"), 1, dec("10.00"))]
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn clients_page_search_update_and_delete_with_cascade() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let other = db.tenant("Other").await;
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let names = [
        "delta",
        "Alpha",
        "100% Pure",
        "charlie",
        "Bravo",
        "Acme_1",
        "acme 2",
    ];
    let mut ids = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        let c = tx
            .create_client(&NewClient {
                client_id: format!("ext-{i}"),
                client_name: n.to_string(),
                industry: None,
                currency: Some(CurrencyCode::AUD),
            })
            .await
            .unwrap();
        assert_eq!(c.currency.as_deref(), Some("AUD"));
        ids.insert(*n, c.id);
    }
    tx.commit().await.unwrap();
    // A taken external id is a named unique violation (it aborts its transaction).
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let dup = tx
        .create_client(&NewClient {
            client_id: "ext-0".into(),
            client_name: "Dup".into(),
            industry: None,
            currency: None,
        })
        .await;
    assert!(
        matches!(dup, Err(DbError::UniqueViolation { ref constraint, .. }) if constraint == "client_kpis_client_id_key"),
        "{dup:?}"
    );
    tx.rollback().await.unwrap();

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    // Pages of 3 by name cover every client once, in case-insensitive order.
    let mut seen = Vec::new();
    let mut q = ClientQuery {
        limit: 3,
        ..Default::default()
    };
    loop {
        let page = tx.list_clients(&q).await.unwrap();
        seen.extend(page.items.iter().map(|c| c.client_name.clone()));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort_by_key(|s| s.to_lowercase());
    assert_eq!(seen, want);
    // By creation.
    let created = tx
        .list_clients(&ClientQuery {
            sort: ClientSort::Created,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.items.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(created.items.len(), names.len());
    // Search: wildcards are literal, matching is case-insensitive.
    let search = |s: &str| ClientQuery {
        search: Some(s.into()),
        limit: 100,
        ..Default::default()
    };
    let found: Vec<String> = tx
        .list_clients(&search("%"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.client_name)
        .collect();
    assert_eq!(found, ["100% Pure"]);
    let found: Vec<String> = tx
        .list_clients(&search("ACME_"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.client_name)
        .collect();
    assert_eq!(found, ["Acme_1"]);
    let found = tx.list_clients(&search("acme")).await.unwrap().items.len();
    assert_eq!(found, 2);

    // Update: before and after; clearing a nullable field.
    let alpha = ids["Alpha"];
    let (before, after) = tx
        .update_client(
            alpha,
            &ClientChanges {
                client_name: Some("Alpha Pty".into()),
                currency: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (before.client_name.as_str(), before.currency.as_deref()),
        ("Alpha", Some("AUD"))
    );
    assert_eq!(
        (
            after.client_name.as_str(),
            after.currency.as_deref(),
            after.client_id.as_str()
        ),
        ("Alpha Pty", None, before.client_id.as_str())
    );
    tx.raw_batch(&format!(
        "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
           values (zixly_current_tenant(), '{alpha}', '2025-01-01', 1, 1, 0, 0), (zixly_current_tenant(), '{alpha}', '2025-01-02', 1, 1, 0, 0);
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status)
           values (zixly_current_tenant(), '{alpha}', now(), 'L', 'lead', 'active');"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Another tenant sees none of it and can change none of it.
    let tx = db.app.begin_tenant(other).await.unwrap();
    assert!(tx.get_client(alpha).await.unwrap().is_none());
    assert!(tx
        .update_client(
            alpha,
            &ClientChanges {
                client_name: Some("x".into()),
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_none());
    assert!(tx.delete_client(alpha).await.unwrap().is_none());
    assert!(tx
        .list_clients(&ClientQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .is_empty());
    tx.commit().await.unwrap();

    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let deleted = tx.delete_client(alpha).await.unwrap().unwrap();
    assert_eq!(
        (
            deleted.financials,
            deleted.lead_events,
            deleted.custom_metrics
        ),
        (2, 1, 0)
    );
    assert!(tx.get_client(alpha).await.unwrap().is_none());
    let left = tx
        .raw_strings(&format!(
            "select count(*)::text from financials where client_kpi_id = '{alpha}'"
        ))
        .await
        .unwrap();
    assert_eq!(left, [Some("0".to_string())]);
    assert!(
        tx.delete_client(alpha).await.unwrap().is_none(),
        "second delete finds nothing"
    );
    tx.commit().await.unwrap();
}
