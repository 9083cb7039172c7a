//! `/`: the overview of a date range — KPI cards with their change versus the previous period
//! and the same period last year, the revenue / expenses / net-profit chart, best and worst
//! clients by profit.
//!
//! A change is shown only when the comparison period has data for all its days: against a
//! period the data does not cover (the tenant's records start later) the card says which days
//! have no data instead of a meaningless +417 %.

use axum::extract::Query;
use axum::response::Response;
use chrono::{Days, NaiveDate};
use maud::{html, Markup};
use rust_decimal::Decimal;
use zixly_db::queries::dashboard::{ClientSummary, DailyTotals, DataSpans, PipelineSummary};
use zixly_db::{DbError, TenantTx};
use zixly_domain::figures;
use zixly_domain::period::{uncovered, DateRange};

use super::chart;
use super::html::{self, flash_box, money, money_short, page_layout, percent, Nav};
use super::range::{range_picker, span_text, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::auth::Viewer;

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    revenue: Decimal,
    expenses: Decimal,
    cash_flow: Decimal,
    days: usize,
    /// The first and last day of the period with a record.
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

impl Sums {
    fn of(days: &[DailyTotals], period: DateRange) -> Sums {
        days.iter()
            .filter(|d| d.date >= period.from() && d.date <= period.to())
            .fold(Sums::default(), |mut s, d| {
                s.revenue += d.revenue;
                s.expenses += d.expenses;
                s.cash_flow += d.cash_flow;
                s.days += 1;
                s.first = Some(s.first.map_or(d.date, |f| f.min(d.date)));
                s.last = Some(s.last.map_or(d.date, |l| l.max(d.date)));
                s
            })
    }

    /// The part of `period` the records cover, as far as a comparison can tell: from its first
    /// to its last day with a record, stretched to the period's edges when they are at most
    /// [`QUIET_DAYS`] away (a weekend or a holiday without transactions is not missing data),
    /// and within `overall`, the tenant's first to last day of data. So a comparison period
    /// that falls into a gap of the history (data from 2020, then again from 2024) is reported as
    /// uncovered rather than compared as if it were complete.
    fn covered(&self, period: DateRange, overall: Option<DateRange>) -> Option<DateRange> {
        let (first, last) = (self.first?, self.last?);
        let quiet = Days::new(QUIET_DAYS);
        let from = if first <= period.from() + quiet {
            period.from()
        } else {
            first
        };
        let to = if last + quiet >= period.to() {
            period.to()
        } else {
            last
        };
        let local = DateRange::new(from, to).ok()?;
        match overall {
            Some(o) => DateRange::new(local.from().max(o.from()), local.to().min(o.to())).ok(),
            None => Some(local),
        }
    }
    fn profit(&self) -> Decimal {
        self.revenue - self.expenses
    }
    fn margin(&self) -> Option<Decimal> {
        figures::margin(self.profit(), self.revenue)
    }
}

/// How many days at a comparison period's edges may pass without a record before they count as
/// missing data (see [`Sums::covered`]).
const QUIET_DAYS: u64 = 7;

/// A KPI's figure in a comparison period, or the days of that period without data.
enum Before {
    Figure(Option<Decimal>),
    NoData(Vec<DateRange>),
}

impl Before {
    /// `figure` of `period`, unless the series' data (first to last day with a record) leaves
    /// part of the period uncovered or the period has no record at all.
    fn of(
        period: DateRange,
        data: Option<DateRange>,
        has_records: bool,
        figure: Option<Decimal>,
    ) -> Before {
        let missing = uncovered(period, data);
        if !missing.is_empty() {
            Before::NoData(missing)
        } else if !has_records {
            Before::NoData(vec![period])
        } else {
            Before::Figure(figure)
        }
    }
}

/// How a KPI is compared: ratios (margin, win rate) in percentage points, amounts relatively;
/// `higher_is_better` picks the colour (expenses going up is bad news).
#[derive(Clone, Copy)]
struct Scale {
    higher_is_better: bool,
    points: bool,
}

const AMOUNT: Scale = Scale {
    higher_is_better: true,
    points: false,
};
const COST: Scale = Scale {
    higher_is_better: false,
    points: false,
};
const RATIO: Scale = Scale {
    higher_is_better: true,
    points: true,
};

struct Kpi {
    id: &'static str,
    label: &'static str,
    value: String,
    current: Option<Decimal>,
    previous: Before,
    last_year: Before,
    scale: Scale,
}

fn kpi_card(k: &Kpi) -> Markup {
    html! {
        section class="kpi" aria-labelledby={ "kpi-" (k.id) } data-kpi=(k.id) {
            div class="label" id={ "kpi-" (k.id) } { (k.label) }
            div class="value" { (k.value) }
            div class="changes" {
                (change(k.current, &k.previous, k.scale, "previous", "vs previous period"))
                (change(k.current, &k.last_year, k.scale, "last-year", "vs last year"))
            }
        }
    }
}

/// The change of `current` versus `before` as a small coloured label, or which days of the
/// comparison period have no data.
fn change(
    current: Option<Decimal>,
    before: &Before,
    scale: Scale,
    key: &str,
    label: &str,
) -> Markup {
    let before = match before {
        Before::NoData(missing) => {
            let spans: Vec<String> = missing.iter().copied().map(span_text).collect();
            return html! {
                span data-compare=(key) data-no-data title="A change against days without records would mislead" {
                    (label) ": " span class="no-data" { "no data for " (spans.join(" and ")) }
                }
            };
        }
        Before::Figure(b) => *b,
    };
    let (Some(c), Some(b)) = (current, before) else {
        return html! { span data-compare=(key) { span class="delta flat" { "–" } " " (label) } };
    };
    // Ratios are already rounded to 0.1 %, so their difference in points is exact; a relative
    // change is a ratio itself, rounded once.
    let change = if scale.points {
        Some(((c - b) * Decimal::ONE_HUNDRED).round_dp(1))
    } else {
        figures::relative_change(c, b).map(|r| (r * Decimal::ONE_HUNDRED).round_dp(1))
    };
    let Some(mut change) = change else {
        return html! { span data-compare=(key) { span class="delta flat" { "new" } " " (label) } };
    };
    change.rescale(1);
    let (class, arrow) = if change.is_zero() {
        ("flat", "→")
    } else {
        let arrow = if change.is_sign_positive() {
            "▲"
        } else {
            "▼"
        };
        let good = change.is_sign_positive() == scale.higher_is_better;
        (if good { "up" } else { "down" }, arrow)
    };
    let sign = if change.is_zero() {
        ""
    } else if change.is_sign_positive() {
        "+"
    } else {
        "−"
    };
    let unit = if scale.points { " pts" } else { "%" };
    html! {
        span data-compare=(key) {
            span class={ "delta " (class) } {
                span aria-hidden="true" { (arrow) } " " (sign) (change.abs()) (unit)
            }
            " " (label)
        }
    }
}

/// Best or worst clients by net profit.
fn client_list(items: &[&ClientSummary], r: &Range, sym: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p class="empty" { "No client has figures in this period." }
        } @else {
            ol class="rank" {
                @for c in items {
                    li {
                        a href={ "/clients/" (c.id) "?" (r.query()) } { (c.client_name) }
                        span class={ "num " (if c.net_profit.is_sign_negative() { "neg" } else { "pos" }) }
                            title=(money(c.net_profit, sym)) { (money_short(c.net_profit, sym)) }
                    }
                }
            }
        }
    }
}

/// What the overview of a range reads: per-day totals over the range, its previous period and
/// the same period last year; the pipeline at each period's end; per-client summaries; the data's
/// spans. Public so that `zixly bench api` measures the page's reads without the page
/// (its `overview_12m` pattern).
pub struct OverviewReads {
    pub days: Vec<DailyTotals>,
    pub unconverted: i64,
    pub pipelines: Vec<PipelineSummary>,
    pub clients: Vec<ClientSummary>,
    pub spans: DataSpans,
}

/// The overview's reads for the range `params` resolves to on `today` (the tenant's today).
pub async fn overview_reads(
    tx: &TenantTx,
    params: &RangeParams,
    today: NaiveDate,
) -> Result<(Range, OverviewReads), DbError> {
    let r = Range::resolve(params, today);
    let (prev_from, prev_to) = r.previous();
    let (ly_from, ly_to) = r.last_year();
    // Sent together: the connection pipelines the four statements (one round trip).
    let periods = [(r.from, r.to), (prev_from, prev_to), (ly_from, ly_to)];
    let ((days, unconverted), pipelines, clients, spans) = tokio::try_join!(
        tx.daily_totals(prev_from.min(ly_from), r.to, None),
        tx.pipeline_summaries(&periods, None),
        tx.client_summaries(r.from, r.to, None),
        tx.data_spans(),
    )?;
    let reads = OverviewReads {
        days,
        unconverted,
        pipelines,
        clients,
        spans,
    };
    Ok((r, reads))
}

pub async fn page_handler(
    user: PageUser<Viewer>,
    Query(params): Query<RangeParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let today = today_in(&tenant.time_zone);
    let (
        r,
        OverviewReads {
            days,
            unconverted,
            pipelines,
            clients,
            spans,
        },
    ) = overview_reads(&tx, &params, today).await?;
    tx.commit().await?;
    let (prev_from, prev_to) = r.previous();
    let (ly_from, ly_to) = r.last_year();
    let span = |from, to| DateRange::new(from, to).expect("a comparison period is ordered");
    let (prev, ly) = (span(prev_from, prev_to), span(ly_from, ly_to));
    let pipe = |i: usize| pipelines.get(i).cloned().unwrap_or_default();
    let (pipe_now, pipe_prev, pipe_ly) = (pipe(0), pipe(1), pipe(2));

    let sym = html::currency_symbol(&tenant.base_currency);
    let cur = Sums::of(&days, r.dates());
    let (sums_prev, sums_ly) = (Sums::of(&days, prev), Sums::of(&days, ly));
    let financial = |g: fn(&Sums) -> Option<Decimal>| {
        let before = |period, s: &Sums| {
            Before::of(
                period,
                s.covered(period, spans.financials),
                s.days > 0,
                g(s),
            )
        };
        (g(&cur), before(prev, &sums_prev), before(ly, &sums_ly))
    };
    // The pipeline is a stock as of each period's end: covered when the lead events are.
    let pipeline = |g: fn(&PipelineSummary) -> Option<Decimal>| {
        let before =
            |period, p: &PipelineSummary| Before::of(period, spans.lead_events, true, g(p));
        (g(&pipe_now), before(prev, &pipe_prev), before(ly, &pipe_ly))
    };
    let kpi = |id, label, value: String, (current, previous, last_year), scale| Kpi {
        id,
        label,
        value,
        current,
        previous,
        last_year,
        scale,
    };
    let dash = || "–".to_string();
    let kpis = [
        kpi(
            "revenue",
            "Revenue",
            money_short(cur.revenue, &sym),
            financial(|s| Some(s.revenue)),
            AMOUNT,
        ),
        kpi(
            "expenses",
            "Expenses",
            money_short(cur.expenses, &sym),
            financial(|s| Some(s.expenses)),
            COST,
        ),
        kpi(
            "net-profit",
            "Net profit",
            money_short(cur.profit(), &sym),
            financial(|s| Some(s.profit())),
            AMOUNT,
        ),
        kpi(
            "margin",
            "Margin",
            cur.margin().map(percent).unwrap_or_else(dash),
            financial(Sums::margin),
            RATIO,
        ),
        kpi(
            "cash-flow",
            "Cash flow",
            money_short(cur.cash_flow, &sym),
            financial(|s| Some(s.cash_flow)),
            AMOUNT,
        ),
        kpi(
            "pipeline",
            "Open pipeline",
            money_short(pipe_now.open_value, &sym),
            pipeline(|p| Some(p.open_value)),
            AMOUNT,
        ),
        kpi(
            "win-rate",
            "Win rate",
            pipe_now.win_rate().map(percent).unwrap_or_else(dash),
            pipeline(PipelineSummary::win_rate),
            RATIO,
        ),
    ];

    // The chart.
    let bucket = r.bucket();
    let slots = chart::slots(r.from, r.to, chart::bucket_named(bucket), today);
    // Before a retention cutoff a month's figures sit on its first day (`daily_totals`): right
    // in month bars, a false spike in day or week bars, where those months are left blank.
    let charted = super::settings::chartable_days(&days, tenant.raw_data_from, bucket);
    let sums = chart::bucketize(&charted, &slots);
    let series = chart::financial_series(&sums);
    let chart = chart::Chart {
        id: "overview-chart",
        caption: "Revenue, expenses and net profit over time",
        bucket: chart::bucket_named(bucket),
        slots: &slots,
        series: &series,
        symbol: &sym,
        style: chart::Style::Bars,
        small: false,
    }
    .render();

    // Best and worst clients: up to five each, never the same client in both lists.
    let mut ranked: Vec<&ClientSummary> = clients
        .iter()
        .filter(|c| !c.monthly_revenue.is_empty())
        .collect();
    ranked.sort_by_key(|c| std::cmp::Reverse(c.net_profit));
    let n_best = ranked.len().div_ceil(2).min(5);
    let n_worst = (ranked.len() - n_best).min(5);
    let best: Vec<&ClientSummary> = ranked.iter().take(n_best).copied().collect();
    let worst: Vec<&ClientSummary> = ranked.iter().rev().take(n_worst).copied().collect();

    // The tenant-wide goals, as of today whatever range the page shows; client goals are on
    // their client's page and all of them on /goals.
    let goals: Vec<_> = crate::actions::goals::list(&user.auth, None, Some(0))
        .await?
        .into_iter()
        .filter(|g| g.goal.client_id.is_none())
        .collect();
    let subtitle = format!(
        "{} · {} – {} · amounts in {}",
        tenant.name,
        html::date(r.from),
        html::date(r.to),
        tenant.base_currency
    );
    let body = html! {
        (html::head("Overview", &subtitle, range_picker("/", &r)))
        (super::settings::retention_notice(tenant.raw_data_from, prev_from.min(ly_from)))
        @if unconverted > 0 {
            (flash_box("info", &format!("{unconverted} financial rows in other currencies have no exchange rate yet and are not included.")))
        }
        div class="grid kpis" {
            @for k in &kpis { (kpi_card(k)) }
        }
        @if !goals.is_empty() { (super::goals::compact(&goals, &tenant.base_currency)) }
        section class="card" aria-labelledby="chart-title" {
            div class="card-head" {
                h2 id="chart-title" { "Revenue, expenses and net profit" }
                span class="muted small" { "per " (bucket) }
            }
            // Still a string component (pages/html.rs `chart`).
            (chart)
        }
        div class="grid two" {
            section class="card" aria-labelledby="best-title" data-list="best" {
                h2 id="best-title" { "Most profitable clients" }
                (client_list(&best, &r, &sym))
            }
            section class="card" aria-labelledby="worst-title" data-list="worst" {
                h2 id="worst-title" { "Least profitable clients" }
                @if worst.is_empty() && !ranked.is_empty() {
                    p class="empty" { "Not enough clients to rank separately." }
                } @else {
                    (client_list(&worst, &r, &sym))
                }
            }
        }
    };
    Ok(page(page_layout(
        "Overview",
        Nav::Overview,
        Some(&user.who(&tenant)),
        body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn changes_are_coloured_by_what_is_good_and_exact() {
        let text = |c: &str, b: &str, scale| {
            change(
                Some(dec(c)),
                &Before::Figure(Some(dec(b))),
                scale,
                "k",
                "vs x",
            )
            .into_string()
        };
        assert!(text("110", "100", AMOUNT).contains(r#"class="delta up""#));
        assert!(text("110", "100", COST).contains(r#"class="delta down""#));
        assert!(text("110", "100", AMOUNT).contains("+10.0%"));
        assert!(text("90", "100", AMOUNT).contains("−10.0%"));
        assert!(text("100", "100", AMOUNT).contains(r#"class="delta flat""#));
        assert!(text("0.300", "0.250", RATIO).contains("+5.0 pts"));
        assert!(text("1", "0", AMOUNT).contains("new"));
        let none = change(None, &Before::Figure(Some(dec("1"))), AMOUNT, "k", "vs x");
        assert!(none.into_string().contains("–"));
    }

    #[test]
    fn a_period_without_data_is_named_instead_of_a_change() {
        let span = |f: &str, t: &str| DateRange::new(d(f), d(t)).unwrap();
        let period = span("2024-11-01", "2025-10-31");
        let before = Before::of(
            period,
            Some(span("2025-01-01", "2026-01-01")),
            true,
            Some(dec("5")),
        );
        let html = change(
            Some(dec("100")),
            &before,
            AMOUNT,
            "last-year",
            "vs last year",
        )
        .into_string();
        assert!(
            html.contains("vs last year: <span class=\"no-data\">no data for Nov–Dec 2024</span>"),
            "{html}"
        );
        assert!(!html.contains('%'));
        let empty = Before::of(
            period,
            Some(span("2020-01-01", "2026-01-01")),
            false,
            Some(dec("0")),
        );
        assert!(matches!(empty, Before::NoData(ref m) if m == &vec![period]));
        let covered = Before::of(
            period,
            Some(span("2020-01-01", "2026-01-01")),
            true,
            Some(dec("5")),
        );
        assert!(matches!(covered, Before::Figure(Some(_))));
    }

    #[test]
    fn a_comparison_period_in_a_gap_of_the_history_is_not_covered() {
        let day = |s: &str| DailyTotals {
            date: s.parse().unwrap(),
            revenue: Decimal::ONE,
            expenses: Decimal::ZERO,
            net_profit: Decimal::ONE,
            cash_flow: Decimal::ZERO,
        };
        let range =
            |a: &str, b: &str| DateRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap();
        let period = range("2024-10-01", "2024-10-21");
        // The tenant's data starts in 2020: the overall span alone would call October covered.
        let overall = Some(range("2020-01-10", "2026-12-01"));
        let late = [day("2024-10-10"), day("2024-10-15"), day("2024-10-21")];
        let covered = Sums::of(&late, period).covered(period, overall);
        assert_eq!(
            uncovered(period, covered),
            vec![range("2024-10-01", "2024-10-09")]
        );
        // A quiet weekend at the edges is not missing data.
        let quiet = [day("2024-10-03"), day("2024-10-18")];
        let covered = Sums::of(&quiet, period).covered(period, overall);
        assert!(uncovered(period, covered).is_empty());
        // No record at all: nothing is covered.
        assert_eq!(Sums::of(&[], period).covered(period, overall), None);
    }
}
