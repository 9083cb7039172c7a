//! `/`: the overview of a date range — KPI cards with their change versus the previous period
//! and the same period last year, the revenue / expenses / net-profit chart, best and worst
//! clients by profit.

use std::fmt::Write as _;

use axum::extract::Query;
use axum::response::Response;
use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_db::queries::dashboard::{DailyTotals, PipelineSummary};
use zixly_domain::timezone::Tz;

use super::chart::{self, ChartSeries};
use super::html::{self, esc, layout, money, money_short, percent, Nav};
use super::{page, PageError, PageUser};
use crate::auth::Viewer;

/// The range of a page: a preset, or `custom` with `from`/`to`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeParams {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

pub const PRESETS: &[(&str, &str)] = &[
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("quarter", "This quarter"),
    ("ytd", "Year to date"),
    ("last_12_months", "Last 12 months"),
];

/// A resolved range: inclusive dates and the preset it came from (`custom` otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub preset: &'static str,
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1")
}

impl Range {
    /// Resolves `params` against `today` (in the tenant's time zone). Unknown presets and bad or
    /// reversed custom dates fall back to the default preset, last 12 months.
    pub fn resolve(params: &RangeParams, today: NaiveDate) -> Range {
        let preset = params.range.as_deref().unwrap_or("last_12_months");
        let this_month = month_start(today);
        match preset {
            "this_month" => Range {
                from: this_month,
                to: today,
                preset: "this_month",
            },
            "last_month" => {
                let from = this_month - Months::new(1);
                Range {
                    from,
                    to: this_month - Days::new(1),
                    preset: "last_month",
                }
            }
            "quarter" => {
                let q0 = (today.month0() / 3) * 3;
                let from = NaiveDate::from_ymd_opt(today.year(), q0 + 1, 1).expect("quarter start");
                Range {
                    from,
                    to: today,
                    preset: "quarter",
                }
            }
            "ytd" => Range {
                from: NaiveDate::from_ymd_opt(today.year(), 1, 1).expect("1 Jan"),
                to: today,
                preset: "ytd",
            },
            "custom" => {
                let parse =
                    |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<NaiveDate>().ok());
                match (parse(&params.from), parse(&params.to)) {
                    (Some(from), Some(to)) if from <= to && (to - from).num_days() <= 366 * 10 => {
                        Range {
                            from,
                            to,
                            preset: "custom",
                        }
                    }
                    _ => Range::resolve(&RangeParams::default(), today),
                }
            }
            _ => Range {
                from: this_month - Months::new(11),
                to: today,
                preset: "last_12_months",
            },
        }
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The period of equal length ending the day before.
    pub fn previous(&self) -> (NaiveDate, NaiveDate) {
        let to = self.from - Days::new(1);
        (to - Days::new(self.days() as u64 - 1), to)
    }

    /// The same dates one year earlier (29 February becomes the 28th).
    pub fn last_year(&self) -> (NaiveDate, NaiveDate) {
        (self.from - Months::new(12), self.to - Months::new(12))
    }

    /// The chart's bucket for this length: days up to two months, weeks up to ~7 months, else months.
    pub fn bucket(&self) -> &'static str {
        match self.days() {
            0..=62 => "day",
            63..=210 => "week",
            _ => "month",
        }
    }

    /// The query string that selects this range again.
    pub fn query(&self) -> String {
        if self.preset == "custom" {
            format!("range=custom&from={}&to={}", self.from, self.to)
        } else {
            format!("range={}", self.preset)
        }
    }
}

/// Today in the tenant's time zone (UTC if the zone is unknown).
pub fn today_in(time_zone: &str) -> NaiveDate {
    match time_zone.parse::<Tz>() {
        Ok(tz) => Utc::now().with_timezone(&tz).date_naive(),
        Err(_) => Utc::now().date_naive(),
    }
}

/// The preset links and the custom-range form (a GET form: it changes nothing).
pub fn range_picker(path: &str, r: &Range) -> String {
    let mut out = String::from(r#"<nav class="presets" aria-label="Date range">"#);
    for (key, label) in PRESETS {
        let current = if r.preset == *key {
            r#" aria-current="true""#
        } else {
            ""
        };
        let _ = write!(out, r#"<a href="{path}?range={key}"{current}>{label}</a>"#);
    }
    let open = if r.preset == "custom" { " open" } else { "" };
    let _ = write!(
        out,
        r#"<details class="custom"{open}><summary{cur}>Custom…</summary><form class="custom-form" method="get" action="{path}">
<input type="hidden" name="range" value="custom">
<div class="field"><label for="from">From</label><input type="date" id="from" name="from" value="{from}" required></div>
<div class="field"><label for="to">To</label><input type="date" id="to" name="to" value="{to}" required></div>
<button type="submit">Apply</button></form></details></nav>"#,
        cur = if r.preset == "custom" {
            r#" aria-current="true""#
        } else {
            ""
        },
        from = r.from,
        to = r.to,
    );
    out
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    revenue: Decimal,
    expenses: Decimal,
    cash_flow: Decimal,
    days: usize,
}

impl Sums {
    fn of(days: &[DailyTotals], from: NaiveDate, to: NaiveDate) -> Sums {
        days.iter()
            .filter(|d| d.date >= from && d.date <= to)
            .fold(Sums::default(), |mut s, d| {
                s.revenue += d.revenue;
                s.expenses += d.expenses;
                s.cash_flow += d.cash_flow;
                s.days += 1;
                s
            })
    }
    fn profit(&self) -> Decimal {
        self.revenue - self.expenses
    }
    fn margin(&self) -> Option<Decimal> {
        zixly_domain::figures::margin(self.profit(), self.revenue)
    }
    /// `None` when the period has no data at all (a change against nothing means nothing).
    fn present(&self) -> Option<Sums> {
        (self.days > 0).then_some(*self)
    }
}

fn kpi_card(label: &str, value: &str, changes: &str, id: &str) -> String {
    format!(
        r#"<section class="kpi" aria-labelledby="kpi-{id}" data-kpi="{id}"><div class="label" id="kpi-{id}">{label}</div><div class="value">{value}</div><div class="changes">{changes}</div></section>"#
    )
}

fn changes(
    cur: Option<f64>,
    prev: Option<f64>,
    ly: Option<f64>,
    higher_is_better: bool,
    points: bool,
) -> String {
    format!(
        "{}{}",
        html::delta(cur, prev, higher_is_better, points, "vs previous period"),
        html::delta(cur, ly, higher_is_better, points, "vs last year"),
    )
}

pub async fn page_handler(
    user: PageUser<Viewer>,
    Query(params): Query<RangeParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let today = today_in(&tenant.time_zone);
    let r = Range::resolve(&params, today);
    let (prev_from, prev_to) = r.previous();
    let (ly_from, ly_to) = r.last_year();
    // Sent together: the connection pipelines the three statements (one round trip).
    let periods = [(r.from, r.to), (prev_from, prev_to), (ly_from, ly_to)];
    let ((days, unconverted), pipelines, clients) = tokio::try_join!(
        tx.daily_totals(prev_from.min(ly_from), r.to, None),
        tx.pipeline_summaries(&periods, None),
        tx.client_summaries(r.from, r.to, None),
    )?;
    tx.commit().await?;
    let pipe = |i: usize| pipelines.get(i).cloned().unwrap_or_default();
    let (pipe_now, pipe_prev, pipe_ly) = (pipe(0), pipe(1), pipe(2));

    let sym = html::currency_symbol(&tenant.base_currency);
    let cur = Sums::of(&days, r.from, r.to);
    let prev = Sums::of(&days, prev_from, prev_to).present();
    let ly = Sums::of(&days, ly_from, ly_to).present();
    let f = html::to_f64;
    let pf = |s: &Option<Sums>, g: fn(&Sums) -> Decimal| s.as_ref().map(|s| f(g(s)));
    let win = |p: &PipelineSummary| p.win_rate();

    let mut body = html::page_head(
        "Overview",
        &format!(
            "{} · {} – {} · amounts in {}",
            esc(&tenant.name),
            html::date(r.from),
            html::date(r.to),
            esc(&tenant.base_currency)
        ),
        &range_picker("/", &r),
    );
    if unconverted > 0 {
        body.push_str(&html::flash(
            "info",
            &format!("{unconverted} financial rows in other currencies have no exchange rate yet and are not included."),
        ));
    }
    body.push_str(r#"<div class="grid kpis">"#);
    body.push_str(&kpi_card(
        "Revenue",
        &money_short(cur.revenue, &sym),
        &changes(
            Some(f(cur.revenue)),
            pf(&prev, |s| s.revenue),
            pf(&ly, |s| s.revenue),
            true,
            false,
        ),
        "revenue",
    ));
    body.push_str(&kpi_card(
        "Expenses",
        &money_short(cur.expenses, &sym),
        &changes(
            Some(f(cur.expenses)),
            pf(&prev, |s| s.expenses),
            pf(&ly, |s| s.expenses),
            false,
            false,
        ),
        "expenses",
    ));
    body.push_str(&kpi_card(
        "Net profit",
        &money_short(cur.profit(), &sym),
        &changes(
            Some(f(cur.profit())),
            pf(&prev, Sums::profit),
            pf(&ly, Sums::profit),
            true,
            false,
        ),
        "net-profit",
    ));
    body.push_str(&kpi_card(
        "Margin",
        &cur.margin().map(percent).unwrap_or_else(|| "–".into()),
        &changes(
            cur.margin().map(f),
            prev.and_then(|s| s.margin()).map(f),
            ly.and_then(|s| s.margin()).map(f),
            true,
            true,
        ),
        "margin",
    ));
    body.push_str(&kpi_card(
        "Cash flow",
        &money_short(cur.cash_flow, &sym),
        &changes(
            Some(f(cur.cash_flow)),
            pf(&prev, |s| s.cash_flow),
            pf(&ly, |s| s.cash_flow),
            true,
            false,
        ),
        "cash-flow",
    ));
    body.push_str(&kpi_card(
        "Open pipeline",
        &money_short(pipe_now.open_value, &sym),
        &changes(
            Some(f(pipe_now.open_value)),
            Some(f(pipe_prev.open_value)),
            Some(f(pipe_ly.open_value)),
            true,
            false,
        ),
        "pipeline",
    ));
    body.push_str(&kpi_card(
        "Win rate",
        &win(&pipe_now).map(percent).unwrap_or_else(|| "–".into()),
        &changes(
            win(&pipe_now).map(f),
            win(&pipe_prev).map(f),
            win(&pipe_ly).map(f),
            true,
            true,
        ),
        "win-rate",
    ));
    body.push_str("</div>");

    // The chart.
    let bucket = r.bucket();
    let slots = chart::slots(r.from, r.to, chart::bucket_named(bucket), today);
    let sums = chart::bucketize(&days, &slots);
    let series = [
        ChartSeries {
            label: "Revenue",
            color: "#2546c4",
            values: sums.iter().map(|b| b.map(|b| b.revenue)).collect(),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Expenses",
            color: "#d0572a",
            values: sums.iter().map(|b| b.map(|b| b.expenses)).collect(),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Net profit",
            color: "#16874a",
            values: sums.iter().map(|b| b.map(|b| b.net_profit())).collect(),
            money: true,
            unit: None,
        },
    ];
    let chart = chart::Chart {
        id: "overview-chart",
        caption: "Revenue, expenses and net profit over time",
        bucket: chart::bucket_named(bucket),
        slots: &slots,
        series: &series,
        symbol: &sym,
        style: chart::Style::Bars,
        small: false,
    };
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="chart-title"><div class="card-head"><h2 id="chart-title">Revenue, expenses and net profit</h2><span class="muted small">per {bucket}</span></div>{}</section>"#,
        chart.render().into_string()
    );

    // Best and worst clients.
    let mut ranked: Vec<_> = clients
        .iter()
        .filter(|c| !c.monthly_revenue.is_empty())
        .collect();
    ranked.sort_by_key(|c| std::cmp::Reverse(c.net_profit));
    let list = |items: Vec<&&zixly_db::queries::dashboard::ClientSummary>| {
        if items.is_empty() {
            return r#"<p class="empty">No client has figures in this period.</p>"#.to_string();
        }
        let mut s = String::from(r#"<ol class="rank">"#);
        for c in items {
            let class = if c.net_profit.is_sign_negative() {
                "neg"
            } else {
                "pos"
            };
            let _ = write!(
                s,
                r#"<li><a href="/clients/{id}?{q}">{name}</a><span class="num {class}" title="{exact}">{short}</span></li>"#,
                id = c.id,
                q = r.query(),
                name = esc(&c.client_name),
                exact = money(c.net_profit, &sym),
                short = money_short(c.net_profit, &sym),
            );
        }
        s.push_str("</ol>");
        s
    };
    // Up to five each, never the same client in both lists.
    let n_best = ranked.len().div_ceil(2).min(5);
    let n_worst = (ranked.len() - n_best).min(5);
    let best: Vec<_> = ranked.iter().take(n_best).collect();
    let worst: Vec<_> = ranked.iter().rev().take(n_worst).collect();
    let _ = write!(
        body,
        r#"<div class="grid two"><section class="card" aria-labelledby="best-title" data-list="best"><h2 id="best-title">Most profitable clients</h2>{}</section><section class="card" aria-labelledby="worst-title" data-list="worst"><h2 id="worst-title">Least profitable clients</h2>{}</section></div>"#,
        list(best),
        if worst.is_empty() && !ranked.is_empty() {
            r#"<p class="empty">Not enough clients to rank separately.</p>"#.to_string()
        } else {
            list(worst)
        }
    );
    Ok(page(layout(
        "Overview",
        Nav::Overview,
        Some(&user.who(&tenant)),
        &body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn preset(p: &str) -> RangeParams {
        RangeParams {
            range: Some(p.into()),
            ..Default::default()
        }
    }

    #[test]
    fn presets_resolve_against_today() {
        let today = d("2025-05-14");
        let r = |p| {
            let r = Range::resolve(&preset(p), today);
            (r.from, r.to)
        };
        assert_eq!(r("this_month"), (d("2025-05-01"), today));
        assert_eq!(r("last_month"), (d("2025-04-01"), d("2025-04-30")));
        assert_eq!(r("quarter"), (d("2025-04-01"), today));
        assert_eq!(r("ytd"), (d("2025-01-01"), today));
        assert_eq!(r("last_12_months"), (d("2024-06-01"), today));
        assert_eq!(r("nonsense"), r("last_12_months"));
        let custom = RangeParams {
            range: Some("custom".into()),
            from: Some("2025-02-01".into()),
            to: Some("2025-02-10".into()),
        };
        let c = Range::resolve(&custom, today);
        assert_eq!(
            (c.from, c.to, c.preset),
            (d("2025-02-01"), d("2025-02-10"), "custom")
        );
        assert_eq!(c.previous(), (d("2025-01-22"), d("2025-01-31")));
        assert_eq!(c.last_year(), (d("2024-02-01"), d("2024-02-10")));
        let reversed = RangeParams {
            range: Some("custom".into()),
            from: Some("2025-02-10".into()),
            to: Some("2025-02-01".into()),
        };
        assert_eq!(Range::resolve(&reversed, today).preset, "last_12_months");
    }

    #[test]
    fn buckets_follow_the_range_length() {
        assert_eq!(
            Range {
                from: d("2025-01-01"),
                to: d("2025-01-31"),
                preset: "custom"
            }
            .bucket(),
            "day"
        );
        assert_eq!(
            Range {
                from: d("2025-01-01"),
                to: d("2025-06-30"),
                preset: "custom"
            }
            .bucket(),
            "week"
        );
        assert_eq!(
            Range {
                from: d("2025-01-01"),
                to: d("2025-12-31"),
                preset: "custom"
            }
            .bucket(),
            "month"
        );
    }
}
