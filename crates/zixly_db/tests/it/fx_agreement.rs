//! The FX rule exists twice: in SQL (`zixly_fx_rate`, migrations/0003_ingest.sql — the loader's
//! check that a row can be converted) and in Rust (`zixly_domain::fx::FxTable::factor` — the
//! reports' conversion). A row the loader accepts must convert in a report, so the two must agree.
//! This test runs both on one generated table of cases against a real database: every ordered
//! pair of a set of currencies (the base EUR, currencies with rates every publishing day, one
//! whose rates start late, one that stops being published, one with direct and inverse rates
//! against a non-EUR currency, one with no rate at all) on every day of a range that holds
//! weekends, the Easter holidays (four days without rates) and days before any rate.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use rust_decimal::Decimal;
use zixly_testkit::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Deterministic pseudo-random rates (the cases must not change between runs).
struct Lcg(u64);
impl Lcg {
    fn rate(&mut self) -> Decimal {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // 0.5000 .. 2.4999, four places as the ECB publishes.
        Decimal::new(5_000 + ((self.0 >> 33) % 20_000) as i64, 4)
    }
}

/// ECB publishing days: no weekends, no Good Friday / Easter Monday 2025.
fn published(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
        && day != d("2025-04-18")
        && day != d("2025-04-21")
}

/// `(date, base, quote, rate)` rows of the fixture.
fn rate_rows() -> Vec<(NaiveDate, String, String, Decimal)> {
    let mut rng = Lcg(0x5eed_f00d);
    let mut rows = Vec::new();
    let (first, last) = (d("2025-03-10"), d("2025-05-09"));
    let mut day = first;
    while day <= last {
        if published(day) {
            for quote in ["USD", "AUD", "JPY"] {
                rows.push((day, "EUR".into(), quote.into(), rng.rate()));
            }
            // Starts late: no rate at all before 2025-04-01.
            if day >= d("2025-04-01") {
                rows.push((day, "EUR".into(), "NZD".into(), rng.rate()));
            }
            // Stops being published after 2025-04-09: stale beyond the look-back.
            if day <= d("2025-04-09") {
                rows.push((day, "EUR".into(), "GBP".into(), rng.rate()));
            }
            // A direct non-EUR pair (preferred over the cross rate; its inverse serves SGD→USD),
            // on Tuesdays and Thursdays only, so other days fall back to an older direct rate.
            if matches!(day.weekday(), Weekday::Tue | Weekday::Thu) {
                rows.push((day, "USD".into(), "SGD".into(), rng.rate()));
            }
        }
        day = day + Days::new(1);
    }
    rows
}

/// Equal, or equal but for the last digits of a division (PostgreSQL's `numeric` division keeps
/// at least 16 significant digits, `rust_decimal` 28).
fn agree(sql: Option<Decimal>, rust: Option<Decimal>) -> bool {
    match (sql, rust) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let tolerance = Decimal::new(1, 15) * a.abs().max(Decimal::ONE);
            (a - b).abs() <= tolerance
        }
        _ => false,
    }
}

#[tokio::test]
async fn sql_zixly_fx_rate_and_rust_fx_table_agree_on_every_generated_case() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let rows = rate_rows();
    let values: Vec<String> = rows
        .iter()
        .map(|(day, base, quote, rate)| format!("('{day}', '{base}', '{quote}', {rate})"))
        .collect();
    let su = db.superuser().await;
    for chunk in values.chunks(500) {
        su.batch_execute(&format!(
            "insert into fx_rates (rate_date, base_currency, quote_currency, rate) values {}",
            chunk.join(",")
        ))
        .await
        .unwrap();
    }

    // CHF has no rate at all; EUR is the base of the reference rates.
    let currencies = ["EUR", "USD", "AUD", "JPY", "NZD", "GBP", "SGD", "CHF"];
    let (from, to) = (d("2025-03-01"), d("2025-05-20"));
    let mut cases: Vec<(String, String, NaiveDate)> = Vec::new();
    let mut day = from;
    while day <= to {
        for a in currencies {
            for b in currencies {
                cases.push((a.into(), b.into(), day));
            }
        }
        day = day + Days::new(1);
    }

    // SQL: the loader's function, as the application role sees it (zixly_app, under RLS).
    let (fs, ts, ds): (Vec<String>, Vec<String>, Vec<NaiveDate>) = cases.iter().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut fs, mut ts, mut ds), (f, t, day)| {
            fs.push(f.clone());
            ts.push(t.clone());
            ds.push(*day);
            (fs, ts, ds)
        },
    );
    let sql_factors = TestDb::connect(&db.app_url)
        .await
        .query(
            "select zixly_fx_rate(f::bpchar, t::bpchar, d)::text
               from unnest($1::text[], $2::text[], $3::date[]) with ordinality as c(f, t, d, n)
              order by n",
            &[&fs, &ts, &ds],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.get::<_, Option<String>>(0).map(|v| {
                Decimal::from_str(&v)
                    .or_else(|_| Decimal::from_scientific(&v))
                    .unwrap()
            })
        })
        .collect::<Vec<_>>();
    assert_eq!(sql_factors.len(), cases.len());

    // Rust: the reports' table, loaded through the reports' own query.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let wanted: BTreeSet<String> = currencies.iter().map(|c| c.to_string()).collect();
    let table = tx.fx_table(&wanted, from, to).await.unwrap();
    tx.commit().await.unwrap();

    let mut disagreements = Vec::new();
    let (mut some, mut none) = (0, 0);
    for ((f, t, day), sql) in cases.iter().zip(&sql_factors) {
        let rust = table.factor(f, t, *day);
        if !agree(*sql, rust) {
            disagreements.push(format!("{f}->{t} on {day}: SQL {sql:?}, Rust {rust:?}"));
        }
        match rust {
            Some(_) => some += 1,
            None => none += 1,
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree, e.g.:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements[..disagreements.len().min(20)].join("\n")
    );

    // The table exercises every branch of the rule, not only misses (or only hits).
    let f = |a: &str, b: &str, day: &str| table.factor(a, b, d(day));
    let eur = |q: &str, day: &str| {
        rows.iter()
            .find(|(rd, b, rq, _)| *rd == d(day) && b == "EUR" && rq == q)
            .map(|r| r.3)
            .unwrap()
    };
    let usd_sgd = |day: &str| {
        rows.iter()
            .find(|(rd, b, q, _)| *rd == d(day) && b == "USD" && q == "SGD")
            .map(|r| r.3)
            .unwrap()
    };
    assert_eq!(
        f("CHF", "CHF", "2025-03-01"),
        Some(Decimal::ONE),
        "same currency"
    );
    assert_eq!(
        f("EUR", "AUD", "2025-04-16"),
        Some(eur("AUD", "2025-04-16")),
        "direct"
    );
    assert_eq!(
        f("AUD", "EUR", "2025-04-22").map(|x| x.round_dp(12)),
        Decimal::ONE
            .checked_div(eur("AUD", "2025-04-22"))
            .map(|x| x.round_dp(12)),
        "inverse"
    );
    assert_eq!(
        f("USD", "AUD", "2025-04-20"),
        eur("AUD", "2025-04-17").checked_div(eur("USD", "2025-04-17")),
        "cross rate over the Easter gap: Thursday's rates"
    );
    assert_eq!(
        f("USD", "SGD", "2025-04-14"),
        Some(usd_sgd("2025-04-10")),
        "direct non-EUR, older day"
    );
    assert!(f("SGD", "USD", "2025-04-15").is_some(), "inverse non-EUR");
    assert_eq!(
        f("EUR", "SGD", "2025-04-15"),
        None,
        "no cross rate except through EUR"
    );
    assert_eq!(f("NZD", "AUD", "2025-03-31"), None, "before the first rate");
    assert!(f("NZD", "AUD", "2025-04-01").is_some());
    assert!(
        f("GBP", "AUD", "2025-04-16").is_some(),
        "7 days after the last rate"
    );
    assert_eq!(f("GBP", "AUD", "2025-04-17"), None, "beyond the look-back");
    assert_eq!(f("CHF", "EUR", "2025-04-16"), None, "no rate at all");
    assert!(some > 1000 && none > 1000, "{some} hits, {none} misses");
}
