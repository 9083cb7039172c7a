//! The date range of a page: the query parameters, their resolution (the dates and comparisons
//! themselves are `zixly_domain::period::PickedRange`, shared with reports), the range picker,
//! and date spans as a person reads them ("Jan–Oct 2025").
//!
//! An invalid custom range is never silently replaced: the page shows the default range with a
//! notice under the picker that names the field to correct.

use chrono::{Datelike, Days, NaiveDate, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use zixly_domain::period::{DateRange, PickedRange, Preset, RangeError, RangeField};
use zixly_domain::timezone::Tz;

use super::html;

/// The range of a page: a preset, or `custom` (or no `range` at all) with `from`/`to`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeParams {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A resolved range: inclusive dates and the preset key it came from (`custom` otherwise), and
/// the problem with what was asked for when that could not be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub preset: &'static str,
    picked: PickedRange,
    problem: Option<RangeError>,
}

impl Range {
    /// Resolves `params` against `today` (in the tenant's time zone). What cannot be shown
    /// resolves to the default preset, with [`Range::problem`] saying why.
    pub fn resolve(params: &RangeParams, today: NaiveDate) -> Range {
        let asked = PickedRange::parse(
            params.range.as_deref(),
            params.from.as_deref(),
            params.to.as_deref(),
            today,
        );
        let (picked, problem) = match asked {
            Ok(p) => (p, None),
            Err(e) => (PickedRange::default_as_of(today), Some(e)),
        };
        Range {
            from: picked.from(),
            to: picked.to(),
            preset: picked.preset().key(),
            picked,
            problem,
        }
    }

    /// Why the requested range is not the one shown.
    pub fn problem(&self) -> Option<&RangeError> {
        self.problem.as_ref()
    }

    pub fn dates(&self) -> DateRange {
        self.picked.dates()
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The period "vs previous period" compares with: the same elapsed days of the period before
    /// for a period to date, else the calendar period or equal length before.
    pub fn previous(&self) -> (NaiveDate, NaiveDate) {
        let p = self.picked.previous();
        (p.from(), p.to())
    }

    /// The period "vs last year" compares with (the same elapsed days a year earlier).
    pub fn last_year(&self) -> (NaiveDate, NaiveDate) {
        let p = self.picked.last_year();
        (p.from(), p.to())
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

/// The preset links and the custom-range form (a GET form: it changes nothing), and — when the
/// requested range could not be shown — a notice naming the field to correct (placed on its own
/// line of the page head, under the picker).
pub fn range_picker(path: &str, r: &Range) -> Markup {
    let custom = r.preset == "custom";
    let bad = |field: RangeField| r.problem().is_some_and(|p| p.field() == field);
    // A reversed range is shown back as asked, so it can be corrected in place.
    let (from, to) = match r.problem() {
        Some(RangeError::Reversed(e)) => (e.from, e.to),
        _ => (r.from, r.to),
    };
    let current = |yes: bool| yes.then_some("true");
    html! {
        nav class="presets" aria-label="Date range" {
            @for p in Preset::PICKABLE {
                a href={ (path) "?range=" (p.key()) } aria-current=[current(r.preset == p.key())] { (p.label()) }
            }
            // Open only when a requested range needs correcting: a custom range that is shown
            // is named in the page's subtitle, and an open form would cover the KPI cards.
            details class="custom" open[r.problem().is_some()] {
                summary aria-current=[current(custom)] { "Custom…" }
                form class="custom-form" method="get" action=(path) {
                    input type="hidden" name="range" value="custom";
                    div class="field" {
                        label for="from" { "From" }
                        input type="date" id="from" name="from" value=(from) required
                            aria-invalid=[current(bad(RangeField::From))];
                    }
                    div class="field" {
                        label for="to" { "To" }
                        input type="date" id="to" name="to" value=(to) required
                            aria-invalid=[current(bad(RangeField::To))];
                    }
                    button type="submit" { "Apply" }
                }
            }
        }
        @if let Some(problem) = r.problem() {
            p class="flash err range-notice" role="alert" data-range-error=(problem.field().name()) {
                (problem_text(problem)) " Showing " (Preset::DEFAULT.label().to_lowercase()) " instead."
            }
        }
    }
}

/// What is wrong with a requested range, naming the field as the picker labels it.
pub fn problem_text(problem: &RangeError) -> String {
    // A pasted value can be anything: show enough of it to recognise.
    let shown = |v: &str| {
        let mut s: String = v.chars().take(40).collect();
        if v.chars().count() > 40 {
            s.push('…');
        }
        s
    };
    let label = |f: RangeField| match f {
        RangeField::Range => "Range",
        RangeField::From => "From",
        RangeField::To => "To",
    };
    match problem {
        RangeError::UnknownPreset(v) => {
            format!("Range: “{}” is not a range this page knows.", shown(v))
        }
        RangeError::Missing(f) => format!(
            "{}: a custom range needs both a From and a To date.",
            label(*f)
        ),
        RangeError::NotADate { field, value } => format!(
            "{}: “{}” is not a date (use YYYY-MM-DD).",
            label(*field),
            shown(value)
        ),
        RangeError::Reversed(e) => format!(
            "From: {} is after the To date, {}.",
            html::date(e.from),
            html::date(e.to)
        ),
        RangeError::TooLong { from, to, .. } => format!(
            "To: {} – {} is longer than the 10 years a custom range may span.",
            html::date(*from),
            html::date(*to)
        ),
    }
}

/// A span of days as a person reads it, in whole months where it is whole months:
/// `Oct 2025`, `Jan–Oct 2025`, `Dec 2024–Oct 2025`, `5 Nov 2025`, `1–5 Nov 2025`,
/// `28 Oct–5 Nov 2025`, `3 Dec 2024–13 Nov 2025`.
pub fn span_text(span: DateRange) -> String {
    let (from, to) = (span.from(), span.to());
    let whole_months = from.day() == 1 && (to + Days::new(1)).day() == 1;
    if whole_months {
        let same_month = (from.year(), from.month()) == (to.year(), to.month());
        return if same_month {
            from.format("%b %Y").to_string()
        } else if from.year() == to.year() {
            format!("{}–{}", from.format("%b"), to.format("%b %Y"))
        } else {
            format!("{}–{}", from.format("%b %Y"), to.format("%b %Y"))
        };
    }
    if from == to {
        from.format("%-d %b %Y").to_string()
    } else if (from.year(), from.month()) == (to.year(), to.month()) {
        format!("{}–{}", from.format("%-d"), to.format("%-d %b %Y"))
    } else if from.year() == to.year() {
        format!("{}–{}", from.format("%-d %b"), to.format("%-d %b %Y"))
    } else {
        format!("{}–{}", from.format("%-d %b %Y"), to.format("%-d %b %Y"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn span(from: &str, to: &str) -> DateRange {
        DateRange::new(d(from), d(to)).unwrap()
    }

    fn params(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> RangeParams {
        RangeParams {
            range: range.map(Into::into),
            from: from.map(Into::into),
            to: to.map(Into::into),
        }
    }

    #[test]
    fn spans_read_in_months_when_whole() {
        assert_eq!(span_text(span("2025-10-01", "2025-10-31")), "Oct 2025");
        assert_eq!(span_text(span("2025-01-01", "2025-10-31")), "Jan–Oct 2025");
        assert_eq!(
            span_text(span("2024-12-01", "2025-10-31")),
            "Dec 2024–Oct 2025"
        );
        assert_eq!(span_text(span("2025-11-05", "2025-11-05")), "5 Nov 2025");
        assert_eq!(span_text(span("2025-11-01", "2025-11-05")), "1–5 Nov 2025");
        assert_eq!(
            span_text(span("2025-10-28", "2025-11-05")),
            "28 Oct–5 Nov 2025"
        );
        assert_eq!(
            span_text(span("2024-12-03", "2025-11-13")),
            "3 Dec 2024–13 Nov 2025"
        );
    }

    #[test]
    fn an_invalid_range_is_shown_as_the_default_with_its_problem() {
        let today = d("2025-05-14");
        let r = Range::resolve(
            &params(Some("custom"), Some("2025-02-10"), Some("2025-02-01")),
            today,
        );
        assert_eq!((r.preset, r.from), ("last_12_months", d("2024-05-15")));
        assert_eq!(r.problem().map(RangeError::field), Some(RangeField::From));
        let html = range_picker("/", &r).into_string();
        assert!(html.contains(r#"data-range-error="from""#), "{html}");
        assert!(
            html.contains("From: 10 Feb 2025 is after the To date, 1 Feb 2025."),
            "{html}"
        );
        assert!(
            html.contains(r#"value="2025-02-10""#),
            "the asked dates are shown back: {html}"
        );
        let pasted = "<b>".repeat(30);
        let r = Range::resolve(&params(None, Some("2025-01-01"), Some(&pasted)), today);
        let html = range_picker("/", &r).into_string();
        assert!(html.contains(r#"data-range-error="to""#));
        assert!(!html.contains("<b>"), "the pasted value is escaped: {html}");
        assert!(html.contains("…"), "and shortened");
        let ok = Range::resolve(&params(None, Some("2025-01-01"), Some("2025-01-31")), today);
        assert_eq!((ok.preset, ok.problem()), ("custom", None));
        assert!(!range_picker("/", &ok)
            .into_string()
            .contains("range-notice"));
    }

    #[test]
    fn buckets_follow_the_range_length() {
        let custom =
            |from, to| Range::resolve(&params(None, Some(from), Some(to)), d("2026-01-01"));
        assert_eq!(custom("2025-01-01", "2025-01-31").bucket(), "day");
        assert_eq!(custom("2025-01-01", "2025-06-30").bucket(), "week");
        assert_eq!(custom("2025-01-01", "2025-12-31").bucket(), "month");
    }

    #[test]
    fn the_query_selects_the_range_again() {
        let today = d("2025-05-14");
        let r = Range::resolve(&params(None, Some("2025-01-01"), Some("2025-01-31")), today);
        assert_eq!(r.query(), "range=custom&from=2025-01-01&to=2025-01-31");
        assert_eq!(
            Range::resolve(&params(Some("ytd"), None, None), today).query(),
            "range=ytd"
        );
    }
}
