//! Charts that tell the truth (issue #12 item 1): the bucket grid of a date range, flow sums per
//! bucket, the uPlot chart spec embedded in the page, and the SVG sparklines of the clients list.
//!
//! The server decides what a chart shows; `assets/app.js` only draws it. Every bucket of the range
//! is in the data (`x`, its first day), `partial` says which buckets are not whole (cut by the
//! range, or not over yet), and a bucket without records is `null`, a gap, never a line drawn
//! across it.

use std::fmt::Write as _;

use chrono::{Days, NaiveDate};
use maud::{html, Markup, PreEscaped};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::json;
use zixly_db::queries::dashboard::DailyTotals;
use zixly_domain::period::Bucket;

/// A decimal for drawing only (positions on a chart); figures shown as text stay exact.
pub fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// One bucket of a chart's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The bucket's first day inside the range (the range's first day when the range starts
    /// inside the bucket).
    pub start: NaiveDate,
    /// The bucket's last day inside the range.
    pub end: NaiveDate,
    /// Not a whole bucket: the range cuts it, or it is not over yet (it holds today or later), so
    /// its sum is not comparable with its neighbours'.
    pub partial: bool,
}

/// Every bucket of `[from, to]`, in order. Weeks start on Monday (as `Bucket::start_of`).
pub fn slots(from: NaiveDate, to: NaiveDate, bucket: Bucket, today: NaiveDate) -> Vec<Slot> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let next = bucket.next_start(start);
        let whole_end = next - Days::new(1);
        out.push(Slot {
            start,
            end: whole_end.min(to),
            partial: bucket.start_of(start) < start || whole_end > to || whole_end >= today,
        });
        start = next;
    }
    out
}

/// The chart bucket a range's length asks for (`Range::bucket`'s name).
pub fn bucket_named(name: &str) -> Bucket {
    name.parse().unwrap_or(Bucket::Month)
}

/// Sums of the flows of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowSums {
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
}

impl FlowSums {
    pub fn net_profit(&self) -> Decimal {
        self.revenue - self.expenses
    }
}

/// Sums `days` into `slots`. A slot with no financial record at all is `None`: the ledger only
/// has rows for days with transactions, so a day without a row inside a bucket that has rows is a
/// true zero, but a whole bucket without a single row means nothing was imported for it (or the
/// client did not exist yet) — drawing it as $0 would show a collapse that never happened.
pub fn bucketize(days: &[DailyTotals], slots: &[Slot]) -> Vec<Option<FlowSums>> {
    let mut out: Vec<Option<FlowSums>> = vec![None; slots.len()];
    for day in days {
        // The last slot starting on or before the day.
        let i = slots.partition_point(|s| s.start <= day.date);
        let Some(k) = i.checked_sub(1) else { continue };
        if day.date > slots[k].end {
            continue;
        }
        let sums = out[k].get_or_insert_with(FlowSums::default);
        sums.revenue += day.revenue;
        sums.expenses += day.expenses;
        sums.cash_flow += day.cash_flow;
    }
    out
}

/// The revenue / expenses / net-profit series of bucketed sums, as the overview and a client's
/// page chart them (same labels and colours on both).
pub fn financial_series(sums: &[Option<FlowSums>]) -> [ChartSeries<'static>; 3] {
    let values = |f: fn(&FlowSums) -> Decimal| sums.iter().map(|b| b.as_ref().map(f)).collect();
    [
        ChartSeries {
            label: "Revenue",
            color: "#2546c4",
            values: values(|b| b.revenue),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Expenses",
            color: "#d0572a",
            values: values(|b| b.expenses),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Net profit",
            color: "#16874a",
            values: values(FlowSums::net_profit),
            money: true,
            unit: None,
        },
    ]
}

/// One series of a chart: exact values as strings (the tooltip shows them unrounded), one per
/// slot, `None` for a gap.
pub struct ChartSeries<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub values: Vec<Option<Decimal>>,
    pub money: bool,
    pub unit: Option<&'a str>,
}

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Grouped bars, one group per bucket: for sums of flows (revenue, expenses, profit, cash).
    /// Databox and Fathom users read a bucketed flow fastest as bars — each bar is one period's
    /// total, compared by height — while a line invites reading the slope between two months as
    /// something that happened in between.
    Bars,
    /// Lines through bucket centres: for levels and averages (stock-like series).
    Lines,
}

impl Style {
    /// How a custom metric is drawn by its definition: a summed metric is a flow (bars, like
    /// revenue); any other aggregate is a level (a line).
    pub fn for_aggregation(a: zixly_domain::metrics::Aggregation) -> Style {
        if a == zixly_domain::metrics::Aggregation::Sum {
            Style::Bars
        } else {
            Style::Lines
        }
    }
}

/// The word a chart heading uses for a bucket's aggregate ("total per week").
pub fn aggregate_word(a: zixly_domain::metrics::Aggregation) -> &'static str {
    use zixly_domain::metrics::Aggregation;
    match a {
        Aggregation::Sum => "total",
        Aggregation::Average => "average",
        Aggregation::Last => "last value",
        Aggregation::Min => "lowest",
        Aggregation::Max => "highest",
    }
}

/// A chart to render: a `<figure>` the script draws into plus its data as JSON.
pub struct Chart<'a> {
    /// Unique in the page (the JSON element's id).
    pub id: &'a str,
    /// The accessible description of the figure.
    pub caption: &'a str,
    pub bucket: Bucket,
    pub slots: &'a [Slot],
    pub series: &'a [ChartSeries<'a>],
    /// The currency symbol money values are shown with.
    pub symbol: &'a str,
    pub style: Style,
    pub small: bool,
}

fn unix(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
}

impl Chart<'_> {
    /// The chart data as JSON: `x` (each bucket's first day, Unix seconds at UTC midnight),
    /// `partial` beside it, the range `from` and `to` (exclusive: the day after the last one).
    pub fn spec(&self) -> serde_json::Value {
        let (from, to) = match (self.slots.first(), self.slots.last()) {
            (Some(f), Some(l)) => (unix(f.start), unix(l.end + Days::new(1))),
            _ => (0, 0),
        };
        json!({
            "x": self.slots.iter().map(|s| unix(s.start)).collect::<Vec<_>>(),
            "partial": self.slots.iter().map(|s| s.partial).collect::<Vec<_>>(),
            "from": from,
            "to": to,
            "bucket": self.bucket.as_str(),
            "bars": self.style == Style::Bars,
            "symbol": self.symbol,
            "series": self.series.iter().map(|s| {
                debug_assert_eq!(s.values.len(), self.slots.len(), "one value per slot");
                json!({
                    "label": s.label,
                    "color": s.color,
                    "money": s.money,
                    "unit": s.unit,
                    "values": s.values.iter().map(|v| v.map(|d| d.normalize().to_string())).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
        })
    }

    pub fn render(&self) -> Markup {
        // Inside `<script>` nothing is decoded, so the JSON cannot be HTML-escaped; instead no
        // `<` may appear at all (a name like `</script>` would end the element): `\u003c` is the
        // same character to JSON.parse.
        let data = self.spec().to_string().replace('<', "\\u003c");
        let empty = self
            .series
            .iter()
            .all(|s| s.values.iter().all(Option::is_none));
        let any_partial = self.slots.iter().any(|s| s.partial);
        html! {
            div class="chart-legend" aria-hidden="true" {
                @for s in self.series {
                    span style={ "--c:" (s.color) } { (s.label) }
                }
                @if any_partial && !empty {
                    span class="partial-key" { "incomplete period" }
                }
            }
            figure.chart.small[self.small] data-chart=(self.id)
                data-empty[empty] role="img" aria-label=(self.caption) style="margin:0" {
                @if empty { p class="empty" { "No data in this period." } }
            }
            script type="application/json" id=(self.id) { (PreEscaped(data)) }
        }
    }
}

/// One point of a sparkline: the value (`None`: no records in that bucket) and whether the
/// bucket is partial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparkPoint {
    pub value: Option<f64>,
    pub partial: bool,
}

/// An inline SVG sparkline (no script needed) with an accessible summary. Gaps break the line; a
/// segment into or out of a partial bucket is dashed and its point hollow, so a month one day old
/// does not read as a collapse.
pub fn sparkline(points: &[SparkPoint], label: &str) -> Markup {
    let (w, h) = (120.0, 32.0);
    let known: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    if known.len() < 2 {
        return html! { span class="muted small" aria-label=(label) { "–" } };
    }
    // The scale comes from whole buckets (when there are two): a month one day old would
    // otherwise squash the whole trend into the top of the box. Its point is clamped into the
    // box, dashed and hollow.
    let whole: Vec<f64> = points
        .iter()
        .filter(|p| !p.partial)
        .filter_map(|p| p.value)
        .collect();
    let scaled = if whole.len() >= 2 { &whole } else { &known };
    let min = scaled.iter().copied().fold(f64::INFINITY, f64::min);
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if (max - min).abs() < f64::EPSILON {
        1.0
    } else {
        max - min
    };
    let step = w / (points.len().max(2) - 1) as f64;
    let at = |i: usize, v: f64| {
        let y = 2.0 + (h - 4.0) * (1.0 - (v - min) / span);
        (i as f64 * step, y.clamp(2.5, h - 2.5))
    };
    // Runs of consecutive known points; each pair is solid unless either end is partial.
    let mut solid = Vec::<String>::new();
    let mut dashed = Vec::<String>::new();
    for (i, pair) in points.windows(2).enumerate() {
        let (Some(a), Some(b)) = (pair[0].value, pair[1].value) else {
            continue;
        };
        let ((x0, y0), (x1, y1)) = (at(i, a), at(i + 1, b));
        let mut seg = String::new();
        let _ = write!(seg, "M{x0:.1},{y0:.1}L{x1:.1},{y1:.1}");
        if pair[0].partial || pair[1].partial {
            dashed.push(seg);
        } else {
            solid.push(seg);
        }
    }
    let hollow: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.partial)
        .filter_map(|(i, p)| p.value.map(|v| at(i, v)))
        .collect();
    // Trend colour from whole buckets only: a partial last month is not a fall.
    let up = match (whole.first(), whole.last()) {
        (Some(a), Some(b)) => b >= a,
        _ => true,
    };
    let color = if up { "#16874a" } else { "#b4232a" };
    html! {
        svg class="spark" width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label)
            data-partial=(points.iter().map(|p| if p.partial { '1' } else { '0' }).collect::<String>()) {
            @if !solid.is_empty() {
                path fill="none" stroke=(color) stroke-width="1.75" stroke-linejoin="round" d=(solid.concat()) {}
            }
            @if !dashed.is_empty() {
                path class="partial" fill="none" stroke=(color) stroke-width="1.5" stroke-dasharray="3 2" d=(dashed.concat()) {}
            }
            @for (x, y) in &hollow {
                circle class="partial" cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" fill="#fff" stroke=(color) stroke-width="1.25" {}
            }
        }
    }
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

    fn day(date: &str, revenue: &str, expenses: &str) -> DailyTotals {
        DailyTotals {
            date: d(date),
            revenue: dec(revenue),
            expenses: dec(expenses),
            net_profit: Decimal::ZERO,
            cash_flow: Decimal::ZERO,
        }
    }

    fn starts(s: &[Slot]) -> Vec<NaiveDate> {
        s.iter().map(|s| s.start).collect()
    }

    fn partials(s: &[Slot]) -> Vec<bool> {
        s.iter().map(|s| s.partial).collect()
    }

    #[test]
    fn this_month_has_one_bucket_per_day_and_today_is_partial() {
        let today = d("2026-12-02");
        let s = slots(d("2026-12-01"), today, Bucket::Day, today);
        assert_eq!(starts(&s), vec![d("2026-12-01"), d("2026-12-02")]);
        assert_eq!(partials(&s), vec![false, true]);
        // A one-day month so far is one bucket (not an axis auto-ranged around a single point).
        let s = slots(
            d("2026-12-01"),
            d("2026-12-01"),
            Bucket::Day,
            d("2026-12-01"),
        );
        assert_eq!(partials(&s), vec![true]);
    }

    #[test]
    fn last_12_months_is_twelve_month_buckets_ending_in_a_partial_one() {
        let today = d("2026-12-02");
        let s = slots(d("2026-01-01"), today, Bucket::Month, today);
        assert_eq!(s.len(), 12);
        assert_eq!(s[0].start, d("2026-01-01"));
        assert_eq!(s[10].start, d("2026-11-01"), "1 Nov is its own bucket");
        assert_eq!(s[10].end, d("2026-11-30"));
        assert_eq!(
            s[11],
            Slot {
                start: d("2026-12-01"),
                end: today,
                partial: true
            }
        );
        assert!(s[..11].iter().all(|s| !s.partial));
        // Even on the last day of a month that month is not over until tomorrow.
        let s = slots(
            d("2026-01-01"),
            d("2026-11-30"),
            Bucket::Month,
            d("2026-11-30"),
        );
        assert_eq!(partials(&s).iter().filter(|p| **p).count(), 1);
        assert!(s[10].partial);
    }

    #[test]
    fn a_past_range_cut_mid_week_has_partial_first_and_last_weeks() {
        // Wed 8 Jan 2025 to Wed 16 Apr 2025: weeks start on Mondays.
        let s = slots(
            d("2025-01-08"),
            d("2025-04-16"),
            Bucket::Week,
            d("2026-12-02"),
        );
        assert_eq!(
            s[0],
            Slot {
                start: d("2025-01-08"),
                end: d("2025-01-12"),
                partial: true
            }
        );
        assert_eq!(s[1].start, d("2025-01-13"));
        assert_eq!(s.last().unwrap().start, d("2025-04-14"));
        assert_eq!(s.last().unwrap().end, d("2025-04-16"));
        let p = partials(&s);
        assert!(p[0] && p[p.len() - 1]);
        assert!(p[1..p.len() - 1].iter().all(|p| !p), "{p:?}");
        assert_eq!(s.len(), 15);
        // Whole weeks are not partial.
        let s = slots(
            d("2025-01-06"),
            d("2025-01-19"),
            Bucket::Week,
            d("2026-12-02"),
        );
        assert_eq!(partials(&s), vec![false, false]);
    }

    #[test]
    fn months_without_records_are_gaps_and_sums_are_exact() {
        let today = d("2026-12-02");
        let s = slots(d("2025-01-01"), d("2025-06-30"), Bucket::Month, today);
        let days = [
            day("2025-01-30", "1.10", "0.10"),
            day("2025-01-31", "2.20", "0"),
            day("2025-02-01", "5", "1"),
            day("2025-04-15", "0", "0"),
            day("2025-06-30", "7", "2"),
            day("2025-07-01", "100", "0"),
            day("2024-12-31", "100", "0"),
        ];
        let b = bucketize(&days, &s);
        assert_eq!(b.len(), 6, "every month of the range is present");
        assert_eq!(b[0].unwrap().revenue, dec("3.30"));
        assert_eq!(b[0].unwrap().net_profit(), dec("3.20"));
        assert_eq!(b[1].unwrap().expenses, dec("1"));
        assert_eq!(b[2], None, "March has no records: a gap, not $0");
        assert_eq!(
            b[3],
            Some(FlowSums::default()),
            "a recorded zero is a true zero"
        );
        assert_eq!(b[4], None);
        assert_eq!(
            b[5].unwrap().revenue,
            dec("7"),
            "days outside the range are left out"
        );
    }

    #[test]
    fn chart_data_cannot_close_its_script_element() {
        let s = slots(
            d("2025-01-01"),
            d("2025-01-02"),
            Bucket::Day,
            d("2026-01-01"),
        );
        let html = Chart {
            id: "c",
            caption: "t",
            bucket: Bucket::Day,
            slots: &s,
            series: &[ChartSeries {
                label: "</script><b>",
                color: "#000",
                values: vec![Some(dec("1.50")), None],
                money: true,
                unit: None,
            }],
            symbol: "$",
            style: Style::Bars,
            small: false,
        }
        .render()
        .into_string();
        assert!(!html.contains("</script><b>"));
        assert!(html.contains(r#""values":["1.5",null]"#), "{html}");
        assert!(html.contains(r#""partial":[false,false]"#), "{html}");
        assert!(html.contains(r#""from":1735689600"#), "{html}");
        assert!(html.contains(r#""to":1735862400"#), "{html}");
        assert!(html.contains(r#""bars":true"#), "{html}");
    }

    #[test]
    fn sparklines_break_at_gaps_and_dash_partial_buckets() {
        let p = |v: Option<f64>, partial: bool| SparkPoint { value: v, partial };
        assert!(sparkline(&[p(Some(1.0), false)], "x")
            .into_string()
            .contains("–"));
        let svg = sparkline(
            &[
                p(Some(1.0), false),
                p(Some(3.0), false),
                p(None, false),
                p(Some(2.0), false),
                p(Some(0.1), true),
            ],
            "x",
        )
        .into_string();
        assert_eq!(
            svg.matches('M').count(),
            2,
            "one solid and one dashed segment: {svg}"
        );
        assert!(svg.contains(r#"class="partial""#));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("<circle"));
        assert!(svg.contains(r#"data-partial="00001""#));
        assert!(
            svg.contains("#16874a"),
            "1 → 2 over whole months is a rise; the partial 0.1 does not count: {svg}"
        );
    }
}
