//! Goals: a target on one catalogue KPI per period, and how far the current period is along.
//!
//! Pure values (no IO). The database side reads the KPI's actual values (`zixly_db`'s
//! `TenantTx::kpi_actuals`) and hands them to [`evaluate`], which decides:
//!
//! - **the period** ([`GoalPeriod::period_of`]): calendar months, quarters and years of business
//!   dates (the caller gives "today" in the tenant's time zone), or one fixed range;
//! - **the target** ([`target_for`]): a per-period override (`goal_targets`), else the constant;
//! - **expected to date**: for a KPI that accumulates over the period (a sum: revenue, expenses,
//!   net profit, cash flow, a custom metric aggregated by `sum`) the target times the share of
//!   the period "done" by today. That share is **seasonal** when the same KPI has data for the
//!   same period last year with a positive total: last year's cumulative value on the same
//!   elapsed day over last year's total (clamped to 0..1; a period that ends today is done).
//!   Otherwise it is **linear** (elapsed days over days). A KPI that does not accumulate (the
//!   ratios margin and win rate, the level open pipeline, custom metrics aggregated by average,
//!   last, min or max) is compared **to date**: its value so far must already meet the target,
//!   so expected-to-date is the target itself;
//! - **projected** end-of-period value: a sum divided by its share (last year's shape, or linear);
//!   when last year had nothing by this day (share 0, e.g. billing at month end) the value so far
//!   plus last year's whole period. For a to-date KPI, its value so far;
//! - **status** ([`GoalStatus`]), direction-aware through the goal's kind: `reach` and
//!   `stay_above` want the value at or above the target, `stay_below` at or under it (a cost
//!   kept under budget is good). After the period: `achieved` or `missed` on the final value.
//!   During it: `reach` on a sum is `achieved` as soon as the target is reached; `stay_below` on
//!   a sum is `off_track` as soon as the value so far exceeds the target; otherwise the projected
//!   value is compared with the target: on the good side `on_track`; on the wrong side by at most
//!   [`AT_RISK_BAND`] of the target `at_risk`; further `off_track`.
//!
//! The at-risk band is 10 % of the target's magnitude. Why 10 %: monthly business figures of one
//! client move by a few percent between months for ordinary reasons (a late invoice, a long
//! month), so a band much narrower would flag noise, and one much wider would call a goal that
//! is a fifth short merely "at risk". Since `projected / target = actual / expected` for a sum,
//! the same band reads either way: "at most 10 % behind the expected pace".
//!
//! A period without any record of the KPI has no value, hence no status (`None`): "no data yet"
//! is not the same as "missed".

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate};
use rust_decimal::Decimal;

use crate::metrics::{Aggregation, UnknownVariant};
use crate::period::DateRange;

/// The status band: a projected value short of the target by at most this share of the target
/// is `at_risk` rather than `off_track` (see the module docs for why 10 %).
pub const AT_RISK_BAND: Decimal = Decimal::from_parts(10, 0, 0, false, 2);

/// How a goal's periods repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoalPeriod {
    Month,
    Quarter,
    Year,
    /// One period, both ends included.
    Fixed(DateRange),
}

/// What the goal asks of the KPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalKind {
    /// Get to the target by the end of the period (a sales target).
    Reach,
    /// Be at or above the target at the end of the period (a margin floor).
    StayAbove,
    /// Be at or under the target at the end of the period (a cost budget).
    StayBelow,
}

/// A goal's status in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    OnTrack,
    AtRisk,
    OffTrack,
    Achieved,
    Missed,
}

/// How expected-to-date was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// Last year's shape of the same KPI over the same period.
    Seasonal,
    /// Elapsed days over the period's days.
    Linear,
    /// The KPI does not accumulate: its value so far is compared with the target itself.
    ToDate,
}

impl GoalKind {
    pub const ALL: [GoalKind; 3] = [GoalKind::Reach, GoalKind::StayAbove, GoalKind::StayBelow];
    pub fn as_str(self) -> &'static str {
        match self {
            GoalKind::Reach => "reach",
            GoalKind::StayAbove => "stay_above",
            GoalKind::StayBelow => "stay_below",
        }
    }
    /// Whether a higher value is better for this goal.
    fn wants_high(self) -> bool {
        !matches!(self, GoalKind::StayBelow)
    }
}

impl GoalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::OnTrack => "on_track",
            GoalStatus::AtRisk => "at_risk",
            GoalStatus::OffTrack => "off_track",
            GoalStatus::Achieved => "achieved",
            GoalStatus::Missed => "missed",
        }
    }
}

impl Pacing {
    pub fn as_str(self) -> &'static str {
        match self {
            Pacing::Seasonal => "seasonal",
            Pacing::Linear => "linear",
            Pacing::ToDate => "to_date",
        }
    }
}

impl FromStr for GoalKind {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoalKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                what: "kind",
                value: s.to_owned(),
                expected: "reach, stay_above or stay_below",
            })
    }
}

impl fmt::Display for GoalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GoalPeriod {
    /// The recurring period's name (`month`, `quarter`, `year`) or `fixed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GoalPeriod::Month => "month",
            GoalPeriod::Quarter => "quarter",
            GoalPeriod::Year => "year",
            GoalPeriod::Fixed(_) => "fixed",
        }
    }

    /// Parses a recurring period name; `fixed` needs its dates, so it is built directly.
    pub fn parse_recurring(s: &str) -> Result<GoalPeriod, UnknownVariant> {
        match s {
            "month" => Ok(GoalPeriod::Month),
            "quarter" => Ok(GoalPeriod::Quarter),
            "year" => Ok(GoalPeriod::Year),
            _ => Err(UnknownVariant {
                what: "period",
                value: s.to_owned(),
                expected: "month, quarter or year",
            }),
        }
    }

    /// The period holding `day` (for a fixed goal, its one period whatever the day).
    pub fn period_of(&self, day: NaiveDate) -> DateRange {
        let (start, months) = match self {
            GoalPeriod::Fixed(r) => return *r,
            GoalPeriod::Month => (day.with_day(1).expect("day 1 exists"), 1),
            GoalPeriod::Quarter => {
                let m0 = (day.month0() / 3) * 3;
                (
                    NaiveDate::from_ymd_opt(day.year(), m0 + 1, 1).expect("quarter start exists"),
                    3,
                )
            }
            GoalPeriod::Year => (
                NaiveDate::from_ymd_opt(day.year(), 1, 1).expect("1 January exists"),
                12,
            ),
        };
        let end = start + Months::new(months) - Days::new(1);
        DateRange::new(start, end).expect("a period starts before it ends")
    }

    /// The `count` whole periods before the one holding `day`, oldest first (none for a fixed
    /// goal, whose one period is the current one).
    pub fn previous_periods(&self, day: NaiveDate, count: usize) -> Vec<DateRange> {
        if matches!(self, GoalPeriod::Fixed(_)) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(count);
        let mut current = self.period_of(day);
        for _ in 0..count {
            current = self.period_of(current.from() - Days::new(1));
            out.push(current);
        }
        out.reverse();
        out
    }
}

/// The same period one year earlier: the same calendar dates (29 February becomes 28 February).
pub fn same_period_last_year(period: DateRange) -> DateRange {
    let back = |d: NaiveDate| d - Months::new(12);
    let from = back(period.from());
    // The end of a month-aligned period stays the end of its month (Feb 29 → Feb 28, and a
    // period ending Feb 28 of a year after a leap year ends Feb 29).
    let to_next = back(period.to() + Days::new(1));
    DateRange::new(from, to_next - Days::new(1)).expect("shifting keeps the order")
}

/// The target of the period starting `period_start`: its override, else the constant.
pub fn target_for(
    constant: Decimal,
    overrides: &[(NaiveDate, Decimal)],
    period_start: NaiveDate,
) -> Decimal {
    overrides
        .iter()
        .find(|(start, _)| *start == period_start)
        .map_or(constant, |(_, t)| *t)
}

/// Whether goals on a KPI of this aggregation are paced (a sum accumulates over the period) or
/// compared to date. `None` is a built-in ratio (margin, win rate).
pub fn accumulates(aggregation: Option<Aggregation>) -> bool {
    aggregation == Some(Aggregation::Sum)
}

/// Last year's shape of the same period: its total and its cumulative value on the same elapsed
/// day as today (`None` when last year's period has no record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastYear {
    pub to_same_day: Decimal,
    pub total: Decimal,
}

/// The day of last year's period that corresponds to `today` in `period`: the same elapsed day,
/// clamped to last year's end, and last year's end when `today` ends the period (a shorter or
/// longer February is done on its last day either way).
pub fn same_elapsed_day(period: DateRange, today: NaiveDate) -> NaiveDate {
    let last_year = same_period_last_year(period);
    if today >= period.to() {
        return last_year.to();
    }
    let elapsed = (today - period.from()).num_days().max(0) as u64;
    (last_year.from() + Days::new(elapsed)).min(last_year.to())
}

/// What [`evaluate`] needs to know.
#[derive(Debug, Clone, Copy)]
pub struct GoalInput {
    pub kind: GoalKind,
    /// Whether the KPI accumulates ([`accumulates`]).
    pub accumulates: bool,
    pub period: DateRange,
    pub target: Decimal,
    /// Today in the tenant's time zone.
    pub today: NaiveDate,
    /// The KPI over `period.from ..= min(today, period.to)`; `None` without any record.
    pub actual: Option<Decimal>,
    /// Last year's shape (for accumulating KPIs; ignored otherwise).
    pub last_year: Option<LastYear>,
}

/// A goal's state in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub period: DateRange,
    pub target: Decimal,
    pub actual: Option<Decimal>,
    pub expected_to_date: Option<Decimal>,
    pub projected: Option<Decimal>,
    pub status: Option<GoalStatus>,
    pub pacing: Pacing,
    /// Days of the period up to today (0 before it starts, all of them after it).
    pub elapsed_days: u64,
    pub total_days: u64,
}

/// Decimals kept of expected and projected values (the precision of stored targets).
const DP: u32 = 4;

fn round(d: Decimal) -> Decimal {
    d.round_dp(DP).normalize()
}

/// Whether `value` satisfies the goal (at or above the target, or at or under it).
fn meets(kind: GoalKind, value: Decimal, target: Decimal) -> bool {
    if kind.wants_high() {
        value >= target
    } else {
        value <= target
    }
}

/// The in-period status of a projected (or to-date) value against the target.
fn pace_status(kind: GoalKind, projected: Decimal, target: Decimal) -> GoalStatus {
    let shortfall = if kind.wants_high() {
        target - projected
    } else {
        projected - target
    };
    if shortfall <= Decimal::ZERO {
        GoalStatus::OnTrack
    } else if shortfall <= target.abs() * AT_RISK_BAND {
        GoalStatus::AtRisk
    } else {
        GoalStatus::OffTrack
    }
}

/// The goal's expected-to-date, projection and status (see the module docs for every rule).
pub fn evaluate(input: &GoalInput) -> Evaluation {
    let period = input.period;
    let total_days = period.days();
    let elapsed_days = if input.today < period.from() {
        0
    } else {
        (input.today.min(period.to()) - period.from()).num_days() as u64 + 1
    };
    let ended = input.today > period.to();
    let mut out = Evaluation {
        period,
        target: input.target,
        actual: input.actual,
        expected_to_date: None,
        projected: None,
        status: None,
        pacing: if input.accumulates {
            Pacing::Linear
        } else {
            Pacing::ToDate
        },
        elapsed_days,
        total_days,
    };
    if !input.accumulates {
        out.expected_to_date = Some(input.target);
        out.projected = input.actual;
        out.status = input
            .actual
            .map(|v| match (ended, meets(input.kind, v, input.target)) {
                (true, true) => GoalStatus::Achieved,
                (true, false) => GoalStatus::Missed,
                (false, _) => pace_status(input.kind, v, input.target),
            });
        return out;
    }
    // The share of the period done by today, and how a value so far projects to its end.
    let linear = Decimal::from(elapsed_days) / Decimal::from(total_days);
    let seasonal = input
        .last_year
        .filter(|ly| ly.total > Decimal::ZERO)
        .map(|ly| {
            let share = if ended || input.today >= period.to() {
                Decimal::ONE
            } else {
                (ly.to_same_day / ly.total).clamp(Decimal::ZERO, Decimal::ONE)
            };
            (share, ly.total)
        });
    let share = match seasonal {
        Some((share, _)) => {
            out.pacing = Pacing::Seasonal;
            share
        }
        None => linear,
    };
    out.expected_to_date = Some(round(input.target * share));
    if elapsed_days == 0 {
        // Not started: nothing is expected yet and nothing can be projected.
        return out;
    }
    let Some(actual) = input.actual else {
        return out;
    };
    let projected = if share > Decimal::ZERO {
        actual / share
    } else {
        // Last year had nothing by this day: the rest of the period as last year had it.
        actual + seasonal.map_or(Decimal::ZERO, |(_, total)| total)
    };
    out.projected = Some(round(projected));
    out.status = Some(if ended {
        if meets(input.kind, actual, input.target) {
            GoalStatus::Achieved
        } else {
            GoalStatus::Missed
        }
    } else {
        match input.kind {
            GoalKind::Reach if actual >= input.target => GoalStatus::Achieved,
            GoalKind::StayBelow if actual > input.target => GoalStatus::OffTrack,
            kind => pace_status(kind, projected, input.target),
        }
    });
    out
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
    fn range(a: &str, b: &str) -> DateRange {
        DateRange::new(d(a), d(b)).unwrap()
    }

    fn input(kind: GoalKind, period: DateRange, today: &str, actual: Option<&str>) -> GoalInput {
        GoalInput {
            kind,
            accumulates: true,
            period,
            target: dec("1000"),
            today: d(today),
            actual: actual.map(dec),
            last_year: None,
        }
    }

    #[test]
    fn periods_are_calendar_months_quarters_and_years() {
        assert_eq!(
            GoalPeriod::Month.period_of(d("2024-02-10")),
            range("2024-02-01", "2024-02-29")
        );
        assert_eq!(
            GoalPeriod::Month.period_of(d("2025-02-28")),
            range("2025-02-01", "2025-02-28")
        );
        // Quarter boundaries: the last day of a quarter and the first of the next.
        assert_eq!(
            GoalPeriod::Quarter.period_of(d("2025-03-31")),
            range("2025-01-01", "2025-03-31")
        );
        assert_eq!(
            GoalPeriod::Quarter.period_of(d("2025-04-01")),
            range("2025-04-01", "2025-06-30")
        );
        assert_eq!(
            GoalPeriod::Quarter.period_of(d("2025-12-31")),
            range("2025-10-01", "2025-12-31")
        );
        assert_eq!(
            GoalPeriod::Year.period_of(d("2024-07-01")),
            range("2024-01-01", "2024-12-31")
        );
        let fixed = range("2025-03-15", "2025-05-14");
        assert_eq!(GoalPeriod::Fixed(fixed).period_of(d("2030-01-01")), fixed);
    }

    #[test]
    fn previous_periods_tile_backwards_oldest_first() {
        assert_eq!(
            GoalPeriod::Quarter.previous_periods(d("2025-02-10"), 2),
            vec![
                range("2024-07-01", "2024-09-30"),
                range("2024-10-01", "2024-12-31")
            ]
        );
        assert_eq!(
            GoalPeriod::Month.previous_periods(d("2024-03-31"), 1),
            vec![range("2024-02-01", "2024-02-29")]
        );
        assert!(GoalPeriod::Fixed(range("2025-01-01", "2025-01-02"))
            .previous_periods(d("2025-06-01"), 3)
            .is_empty());
    }

    #[test]
    fn last_year_keeps_month_ends_across_leap_years() {
        assert_eq!(
            same_period_last_year(range("2024-02-01", "2024-02-29")),
            range("2023-02-01", "2023-02-28")
        );
        assert_eq!(
            same_period_last_year(range("2025-02-01", "2025-02-28")),
            range("2024-02-01", "2024-02-29")
        );
        assert_eq!(
            same_period_last_year(range("2025-01-01", "2025-03-31")),
            range("2024-01-01", "2024-03-31")
        );
        // Day 29 of a leap February maps to last year's last day; the last day of a short
        // February maps to the leap year's 29th (the period is done either way).
        let feb24 = range("2024-02-01", "2024-02-29");
        assert_eq!(same_elapsed_day(feb24, d("2024-02-29")), d("2023-02-28"));
        assert_eq!(same_elapsed_day(feb24, d("2024-02-10")), d("2023-02-10"));
        let feb25 = range("2025-02-01", "2025-02-28");
        assert_eq!(same_elapsed_day(feb25, d("2025-02-28")), d("2024-02-29"));
        assert_eq!(same_elapsed_day(feb25, d("2025-02-27")), d("2024-02-27"));
    }

    #[test]
    fn targets_are_overridden_per_period() {
        let overrides = [(d("2025-02-01"), dec("500")), (d("2025-03-01"), dec("700"))];
        assert_eq!(
            target_for(dec("100"), &overrides, d("2025-02-01")),
            dec("500")
        );
        assert_eq!(
            target_for(dec("100"), &overrides, d("2025-04-01")),
            dec("100")
        );
    }

    #[test]
    fn linear_pacing_without_last_year() {
        // 15 of 30 days of June: half the target is expected.
        let june = range("2025-06-01", "2025-06-30");
        let e = evaluate(&input(GoalKind::Reach, june, "2025-06-15", Some("500")));
        assert_eq!(e.pacing, Pacing::Linear);
        assert_eq!((e.elapsed_days, e.total_days), (15, 30));
        assert_eq!(e.expected_to_date, Some(dec("500")));
        assert_eq!(e.projected, Some(dec("1000")));
        assert_eq!(e.status, Some(GoalStatus::OnTrack));
        // 460 of an expected 500: projected 920, 8 % short → at risk; 400 → 800 → off track.
        let e = evaluate(&input(GoalKind::Reach, june, "2025-06-15", Some("460")));
        assert_eq!(
            (e.projected, e.status),
            (Some(dec("920")), Some(GoalStatus::AtRisk))
        );
        let e = evaluate(&input(GoalKind::Reach, june, "2025-06-15", Some("400")));
        assert_eq!(e.status, Some(GoalStatus::OffTrack));
    }

    #[test]
    fn the_at_risk_band_is_ten_percent_of_the_target_inclusive() {
        let june = range("2025-06-01", "2025-06-30");
        let at = evaluate(&input(GoalKind::StayAbove, june, "2025-06-15", Some("450")));
        assert_eq!(
            (at.projected, at.status),
            (Some(dec("900")), Some(GoalStatus::AtRisk))
        );
        let past = evaluate(&input(
            GoalKind::StayAbove,
            june,
            "2025-06-15",
            Some("449.5"),
        ));
        assert_eq!(past.status, Some(GoalStatus::OffTrack));
    }

    #[test]
    fn seasonal_shape_changes_what_is_expected() {
        // December: last year 80 % of the month's revenue came by the 15th (a pre-holiday rush).
        let dec_ = range("2025-12-01", "2025-12-31");
        let mut i = input(GoalKind::Reach, dec_, "2025-12-15", Some("600"));
        i.last_year = Some(LastYear {
            to_same_day: dec("8000"),
            total: dec("10000"),
        });
        let seasonal = evaluate(&i);
        assert_eq!(seasonal.pacing, Pacing::Seasonal);
        assert_eq!(seasonal.expected_to_date, Some(dec("800")));
        assert_eq!(seasonal.projected, Some(dec("750")));
        assert_eq!(seasonal.status, Some(GoalStatus::OffTrack));
        // The same 600 paced linearly (15/31 of the month) looks ahead of target.
        i.last_year = None;
        let linear = evaluate(&i);
        assert_eq!(linear.pacing, Pacing::Linear);
        assert_eq!(linear.expected_to_date, Some(dec("483.871")));
        assert_eq!(linear.status, Some(GoalStatus::OnTrack));
    }

    #[test]
    fn last_year_without_a_positive_total_falls_back_to_linear() {
        let june = range("2025-06-01", "2025-06-30");
        let mut i = input(GoalKind::Reach, june, "2025-06-15", Some("500"));
        i.last_year = Some(LastYear {
            to_same_day: dec("-5"),
            total: dec("-10"),
        });
        assert_eq!(evaluate(&i).pacing, Pacing::Linear);
    }

    #[test]
    fn nothing_by_this_day_last_year_projects_last_years_remainder() {
        let june = range("2025-06-01", "2025-06-30");
        let mut i = input(GoalKind::Reach, june, "2025-06-10", Some("0"));
        i.last_year = Some(LastYear {
            to_same_day: dec("0"),
            total: dec("1200"),
        });
        let e = evaluate(&i);
        assert_eq!(e.expected_to_date, Some(dec("0")));
        assert_eq!(e.projected, Some(dec("1200")));
        assert_eq!(e.status, Some(GoalStatus::OnTrack));
    }

    #[test]
    fn reach_is_achieved_as_soon_as_the_target_is_reached() {
        let june = range("2025-06-01", "2025-06-30");
        let e = evaluate(&input(GoalKind::Reach, june, "2025-06-05", Some("1000")));
        assert_eq!(e.status, Some(GoalStatus::Achieved));
        // stay_above waits for the period's end.
        let e = evaluate(&input(
            GoalKind::StayAbove,
            june,
            "2025-06-05",
            Some("1000"),
        ));
        assert_eq!(e.status, Some(GoalStatus::OnTrack));
    }

    #[test]
    fn a_cost_under_its_budget_is_good() {
        let june = range("2025-06-01", "2025-06-30");
        // Half the month, 400 spent of 1000: projected 800, under budget.
        let e = evaluate(&input(GoalKind::StayBelow, june, "2025-06-15", Some("400")));
        assert_eq!(
            (e.projected, e.status),
            (Some(dec("800")), Some(GoalStatus::OnTrack))
        );
        // 540 → 1080: 8 % over → at risk; 600 → 1200 → off track.
        let e = evaluate(&input(GoalKind::StayBelow, june, "2025-06-15", Some("540")));
        assert_eq!(e.status, Some(GoalStatus::AtRisk));
        let e = evaluate(&input(GoalKind::StayBelow, june, "2025-06-15", Some("600")));
        assert_eq!(e.status, Some(GoalStatus::OffTrack));
        // Already over budget mid-period: off track whatever the projection says.
        let e = evaluate(&input(
            GoalKind::StayBelow,
            june,
            "2025-06-29",
            Some("1001"),
        ));
        assert_eq!(e.status, Some(GoalStatus::OffTrack));
    }

    #[test]
    fn at_the_period_end_a_goal_is_achieved_or_missed() {
        let june = range("2025-06-01", "2025-06-30");
        for (kind, actual, status) in [
            (GoalKind::Reach, "1000", GoalStatus::Achieved),
            (GoalKind::Reach, "999.99", GoalStatus::Missed),
            (GoalKind::StayAbove, "1200", GoalStatus::Achieved),
            (GoalKind::StayBelow, "1000", GoalStatus::Achieved),
            (GoalKind::StayBelow, "1000.01", GoalStatus::Missed),
        ] {
            let e = evaluate(&input(kind, june, "2025-07-03", Some(actual)));
            assert_eq!(e.status, Some(status), "{kind} {actual}");
            assert_eq!(e.elapsed_days, 30);
            assert_eq!(e.expected_to_date, Some(dec("1000")));
        }
        // On the last day the period is done: the whole target is expected, also seasonally.
        let mut i = input(GoalKind::StayAbove, june, "2025-06-30", Some("990"));
        i.last_year = Some(LastYear {
            to_same_day: dec("900"),
            total: dec("1000"),
        });
        let e = evaluate(&i);
        assert_eq!(e.expected_to_date, Some(dec("1000")));
        assert_eq!(e.status, Some(GoalStatus::AtRisk));
    }

    #[test]
    fn ratios_and_levels_compare_the_value_to_date() {
        let q = range("2025-04-01", "2025-06-30");
        let mut i = input(GoalKind::StayAbove, q, "2025-04-10", Some("0.310"));
        i.accumulates = false;
        i.target = dec("0.300");
        let e = evaluate(&i);
        assert_eq!(e.pacing, Pacing::ToDate);
        assert_eq!(e.expected_to_date, Some(dec("0.300")));
        assert_eq!(e.projected, Some(dec("0.310")));
        assert_eq!(e.status, Some(GoalStatus::OnTrack));
        // A reach goal on a ratio is not achieved early: the ratio can fall again.
        i.kind = GoalKind::Reach;
        assert_eq!(evaluate(&i).status, Some(GoalStatus::OnTrack));
        i.actual = Some(dec("0.280"));
        assert_eq!(evaluate(&i).status, Some(GoalStatus::AtRisk));
        i.actual = Some(dec("0.200"));
        assert_eq!(evaluate(&i).status, Some(GoalStatus::OffTrack));
        i.today = d("2025-07-01");
        assert_eq!(evaluate(&i).status, Some(GoalStatus::Missed));
        // A level kept under a ceiling.
        i.kind = GoalKind::StayBelow;
        assert_eq!(evaluate(&i).status, Some(GoalStatus::Achieved));
    }

    #[test]
    fn no_data_means_no_status() {
        let june = range("2025-06-01", "2025-06-30");
        let e = evaluate(&input(GoalKind::Reach, june, "2025-06-15", None));
        assert_eq!(e.status, None);
        assert_eq!(e.projected, None);
        assert_eq!(e.expected_to_date, Some(dec("500")));
        let mut i = input(GoalKind::StayAbove, june, "2025-06-15", None);
        i.accumulates = false;
        assert_eq!(evaluate(&i).status, None);
    }

    #[test]
    fn a_fixed_period_not_started_expects_nothing() {
        let later = range("2026-01-01", "2026-03-31");
        let e = evaluate(&input(GoalKind::Reach, later, "2025-12-01", Some("0")));
        assert_eq!(e.elapsed_days, 0);
        assert_eq!(e.expected_to_date, Some(dec("0")));
        assert_eq!((e.projected, e.status), (None, None));
    }

    #[test]
    fn leap_day_counts_in_the_pace() {
        let feb = range("2024-02-01", "2024-02-29");
        let e = evaluate(&input(GoalKind::Reach, feb, "2024-02-29", Some("1000")));
        assert_eq!((e.elapsed_days, e.total_days), (29, 29));
        let year = range("2024-01-01", "2024-12-31");
        let e = evaluate(&input(GoalKind::Reach, year, "2024-03-01", Some("100")));
        // 31 + 29 + 1 = 61 of 366 days.
        assert_eq!((e.elapsed_days, e.total_days), (61, 366));
    }

    #[test]
    fn names_round_trip() {
        for k in GoalKind::ALL {
            assert_eq!(k.as_str().parse::<GoalKind>(), Ok(k));
        }
        assert!("above".parse::<GoalKind>().is_err());
        assert_eq!(
            GoalPeriod::parse_recurring("quarter"),
            Ok(GoalPeriod::Quarter)
        );
        assert!(GoalPeriod::parse_recurring("fixed").is_err());
        assert!(accumulates(Some(Aggregation::Sum)));
        assert!(!accumulates(Some(Aggregation::Last)));
        assert!(!accumulates(None));
    }
}
