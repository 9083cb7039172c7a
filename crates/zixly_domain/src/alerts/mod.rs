//! Alert rules without IO: the vocabulary of a rule (`kind`, `condition`, change modes), the
//! check of one observation against a rule ([`Verdict`]), the anomaly score ([`anomaly`]) and the
//! state machine of one alert ([`state`]).
//!
//! The evaluation job (`zixly_alerts::evaluate`) reads the figures and the stored state, asks this
//! module what they mean, and writes the answer; nothing here knows where a number came from, so
//! every decision is unit-tested on plain values.

pub mod anomaly;
pub mod state;

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::display::Figures;
use crate::metrics::UnknownVariant;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, $expected:literal, { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(UnknownVariant { what: $what, value: s.to_owned(), expected: $expected }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a rule watches (`alert_rules.kind`).
    RuleKind, "kind", "threshold, change, anomaly, goal or stale", {
    /// The KPI of the latest complete bucket above/below a value.
    Threshold => "threshold",
    /// The change of the KPI against the previous bucket or the same bucket last year.
    Change => "change",
    /// The KPI outside the band its history predicts.
    Anomaly => "anomaly",
    /// A goal's status changed (stored; evaluated by the goals work).
    Goal => "goal",
    /// No new data for N days, or a connection in error.
    Stale => "stale",
});

text_enum!(
    /// Which side of the value crosses (`alert_rules.condition`).
    Condition, "condition", "above or below", {
    Above => "above",
    Below => "below",
});

text_enum!(
    /// How a change rule measures the change (`alert_rules.change_mode`).
    ChangeMode, "change_mode", "percent or absolute", {
    Percent => "percent",
    Absolute => "absolute",
});

text_enum!(
    /// What a change rule compares with (`alert_rules.compare_to`).
    CompareTo, "compare_to", "previous or last_year", {
    Previous => "previous",
    LastYear => "last_year",
});

text_enum!(
    /// Where a rule looks (`alert_rules.scope`).
    Scope, "scope", "tenant, clients or each_client", {
    /// The tenant's total.
    Tenant => "tenant",
    /// Each listed client separately.
    Clients => "clients",
    /// Every client of the tenant separately.
    EachClient => "each_client",
});

/// What one evaluation of a rule found for one subject and bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `None`: the figures needed are missing (no data in the bucket, not enough history).
    pub crossed: Option<bool>,
    /// The figure compared (the KPI, or the change for change rules).
    pub value: Option<Decimal>,
    /// The value it was compared with.
    pub threshold: Option<Decimal>,
    /// Anomaly rules: the band the history predicts.
    pub expected_low: Option<Decimal>,
    pub expected_high: Option<Decimal>,
    /// Human-readable, for the notification and the page: what was compared and what came out.
    pub reason: String,
}

impl Verdict {
    pub fn no_data(reason: impl Into<String>) -> Verdict {
        Verdict {
            crossed: None,
            value: None,
            threshold: None,
            expected_low: None,
            expected_high: None,
            reason: reason.into(),
        }
    }
}

/// How a reason names a rule's KPI and writes its values: "Revenue $1,250.00 is above
/// $1,000.00", in the tenant's currency and the KPI's unit, as the pages and notifications do.
#[derive(Debug, Clone, Copy)]
pub struct KpiWords<'a> {
    pub figures: &'a Figures,
    /// The KPI key (`revenue`, a custom metric's name).
    pub kpi: Option<&'a str>,
}

impl KpiWords<'_> {
    /// The KPI's display name.
    pub fn name(&self) -> String {
        self.figures.kpi_name(self.kpi)
    }

    /// A value of the KPI in its unit.
    pub fn show(&self, d: Decimal) -> String {
        self.figures.kpi(self.kpi, d)
    }
}

fn crosses(value: Decimal, condition: Condition, threshold: Decimal) -> bool {
    match condition {
        Condition::Above => value > threshold,
        Condition::Below => value < threshold,
    }
}

/// A threshold rule: `kpi` of the bucket (`None`: no data) strictly above/below `threshold`.
pub fn check_threshold(
    kpi: KpiWords<'_>,
    value: Option<Decimal>,
    condition: Condition,
    threshold: Decimal,
) -> Verdict {
    let Some(value) = value else {
        return Verdict {
            threshold: Some(threshold),
            ..Verdict::no_data(format!("no {} in the bucket", kpi.name()))
        };
    };
    let crossed = crosses(value, condition, threshold);
    let reason = format!(
        "{} {} is {} {}",
        kpi.name(),
        kpi.show(value),
        match (crossed, condition) {
            (true, Condition::Above) => "above",
            (true, Condition::Below) => "below",
            (false, Condition::Above) => "not above",
            (false, Condition::Below) => "not below",
        },
        kpi.show(threshold)
    );
    Verdict {
        crossed: Some(crossed),
        value: Some(value),
        threshold: Some(threshold),
        expected_low: None,
        expected_high: None,
        reason,
    }
}

/// A change rule. The change is `current - before` (absolute) or that relative to `|before|` in
/// percent (rounded to 0.1, as shown). `above v` fires when the KPI **rose** by more than `v`,
/// `below v` when it **fell** by more than `v` (`v` is a magnitude: "fell by more than 20 %"
/// reads `below 20`, not `below -20`). A percentage from zero is undefined: no data.
pub fn check_change(
    kpi: KpiWords<'_>,
    current: Option<Decimal>,
    before: Option<Decimal>,
    mode: ChangeMode,
    condition: Condition,
    magnitude: Decimal,
    compared_with: &str,
) -> Verdict {
    let name = kpi.name();
    let (Some(current), Some(before)) = (current, before) else {
        return Verdict::no_data(format!("no {name} in the bucket or in {compared_with}"));
    };
    let change = match mode {
        ChangeMode::Absolute => current - before,
        ChangeMode::Percent => match crate::figures::relative_change(current, before) {
            Some(f) => (f * Decimal::ONE_HUNDRED).round_dp(1),
            None => {
                return Verdict::no_data(format!(
                    "{name} was 0 in {compared_with}: no percentage change"
                ))
            }
        },
    };
    let magnitude = magnitude.abs();
    let crossed = match condition {
        Condition::Above => change > magnitude,
        Condition::Below => change < -magnitude,
    };
    let size = match mode {
        ChangeMode::Percent => format!("{} %", crate::display::number(magnitude)),
        ChangeMode::Absolute => kpi.show(magnitude),
    };
    let reason =
        format!(
        "{name} changed by {} against {compared_with} ({} → {}); the rule fires on a {} of more \
         than {size}",
        kpi.figures.change(kpi.kpi, mode, change),
        kpi.show(before),
        kpi.show(current),
        if condition == Condition::Above { "rise" } else { "fall" }
    );
    Verdict {
        crossed: Some(crossed),
        value: Some(change),
        threshold: Some(if condition == Condition::Above {
            magnitude
        } else {
            -magnitude
        }),
        expected_low: None,
        expected_high: None,
        reason,
    }
}

/// A stale rule: the days since the latest new data (`None`: never any) and whether a connection
/// is in error.
pub fn check_stale(days_since_data: Option<i64>, stale_days: i64, errors: &[String]) -> Verdict {
    let mut reasons = Vec::new();
    let old = match days_since_data {
        None => {
            reasons.push("no data yet".to_string());
            true
        }
        Some(d) if d >= stale_days => {
            reasons.push(format!(
                "no new data for {} (limit {})",
                crate::display::days(d.into()),
                crate::display::days(stale_days.into())
            ));
            true
        }
        Some(d) => {
            reasons.push(format!(
                "new data {} ago (limit {})",
                crate::display::days(d.into()),
                crate::display::days(stale_days.into())
            ));
            false
        }
    };
    for e in errors {
        reasons.push(format!("{e} is in error"));
    }
    Verdict {
        crossed: Some(old || !errors.is_empty()),
        value: days_since_data.map(Decimal::from),
        threshold: Some(Decimal::from(stale_days)),
        expected_low: None,
        expected_high: None,
        reason: reasons.join("; "),
    }
}

/// A goal rule: judged on the status of the goal's current period. It fires when the goal is
/// `off_track` (projected to miss at the current pace) or `missed`; `at_risk` and the good
/// states do not, because pacing a sparse monthly series early in a period swings between
/// "at risk" and "on track" from one day to the next, and a notification per swing is noise.
/// No status (no data yet): no data.
pub fn check_goal(eval: &crate::goals::Evaluation, kpi: KpiWords<'_>) -> Verdict {
    use crate::goals::GoalStatus;
    let Some(status) = eval.status else {
        return Verdict {
            threshold: Some(eval.target),
            ..Verdict::no_data("no figures for the goal's period yet")
        };
    };
    let crossed = matches!(status, GoalStatus::OffTrack | GoalStatus::Missed);
    let mut reason = format!(
        "the goal on {} is {}",
        kpi.name(),
        status.as_str().replace('_', " ")
    );
    if let Some(a) = eval.actual {
        reason.push_str(&format!(": {} so far", kpi.show(a)));
    }
    if let Some(e) = eval.expected_to_date {
        reason.push_str(&format!(", {} expected to date", kpi.show(e)));
    }
    if let Some(p) = eval.projected {
        reason.push_str(&format!(", {} projected", kpi.show(p)));
    }
    reason.push_str(&format!(" (target {})", kpi.show(eval.target)));
    Verdict {
        crossed: Some(crossed),
        value: eval.actual,
        threshold: Some(eval.target),
        expected_low: None,
        expected_high: None,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros_free::d;

    fn figures() -> Figures {
        Figures::new("AUD", Vec::new())
    }

    fn revenue(f: &Figures) -> KpiWords<'_> {
        KpiWords {
            figures: f,
            kpi: Some("revenue"),
        }
    }

    mod rust_decimal_macros_free {
        pub fn d(s: &str) -> rust_decimal::Decimal {
            s.parse().unwrap()
        }
    }

    #[test]
    fn names_round_trip() {
        for k in RuleKind::ALL {
            assert_eq!(k.as_str().parse::<RuleKind>(), Ok(*k));
        }
        for c in Condition::ALL {
            assert_eq!(c.as_str().parse::<Condition>(), Ok(*c));
        }
        for m in ChangeMode::ALL {
            assert_eq!(m.as_str().parse::<ChangeMode>(), Ok(*m));
        }
        for c in CompareTo::ALL {
            assert_eq!(c.as_str().parse::<CompareTo>(), Ok(*c));
        }
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(*s));
        }
        let e = "sideways".parse::<Condition>().unwrap_err();
        assert_eq!(e.what, "condition");
    }

    #[test]
    fn threshold_is_strict_and_knows_missing_data() {
        let f = figures();
        let v = check_threshold(revenue(&f), Some(d("1000")), Condition::Above, d("1000"));
        assert_eq!(v.crossed, Some(false));
        let v = check_threshold(revenue(&f), Some(d("1000.01")), Condition::Above, d("1000"));
        assert_eq!(v.crossed, Some(true));
        assert_eq!(v.reason, "Revenue $1,000.01 is above $1,000.00");
        let v = check_threshold(revenue(&f), Some(d("5")), Condition::Below, d("10"));
        assert_eq!(v.crossed, Some(true));
        let v = check_threshold(revenue(&f), Some(d("50")), Condition::Below, d("10"));
        assert_eq!(v.crossed, Some(false));
        let v = check_threshold(revenue(&f), None, Condition::Below, d("10"));
        assert_eq!(v.crossed, None);
        assert_eq!(v.threshold, Some(d("10")));
    }

    #[test]
    fn change_in_percent_and_absolute() {
        let f = figures();
        let v = check_change(
            revenue(&f),
            Some(d("70")),
            Some(d("100")),
            ChangeMode::Percent,
            Condition::Below,
            d("20"),
            "the previous month",
        );
        assert_eq!((v.crossed, v.value), (Some(true), Some(d("-30.0"))));
        assert_eq!(v.threshold, Some(d("-20")));
        assert_eq!(
            v.reason,
            "Revenue changed by −30 % against the previous month ($100.00 → $70.00); the rule \
             fires on a fall of more than 20 %"
        );
        let v = check_change(
            revenue(&f),
            Some(d("90")),
            Some(d("100")),
            ChangeMode::Percent,
            Condition::Below,
            d("20"),
            "p",
        );
        assert_eq!(v.crossed, Some(false));
        // A rise never fires a "fell by" rule, however large.
        let v = check_change(
            revenue(&f),
            Some(d("900")),
            Some(d("100")),
            ChangeMode::Percent,
            Condition::Below,
            d("20"),
            "p",
        );
        assert_eq!(v.crossed, Some(false));
        let v = check_change(
            revenue(&f),
            Some(d("160")),
            Some(d("100")),
            ChangeMode::Absolute,
            Condition::Above,
            d("50"),
            "p",
        );
        assert_eq!((v.crossed, v.value), (Some(true), Some(d("60"))));
        assert!(
            v.reason.contains("changed by +$60.00") && v.reason.ends_with("more than $50.00"),
            "{}",
            v.reason
        );
        let v = check_change(
            revenue(&f),
            Some(d("160")),
            Some(d("0")),
            ChangeMode::Percent,
            Condition::Above,
            d("50"),
            "p",
        );
        assert_eq!(v.crossed, None);
        let v = check_change(
            revenue(&f),
            None,
            Some(d("1")),
            ChangeMode::Absolute,
            Condition::Above,
            d("1"),
            "p",
        );
        assert_eq!(v.crossed, None);
    }

    #[test]
    fn stale_by_age_or_error() {
        assert_eq!(check_stale(Some(2), 3, &[]).crossed, Some(false));
        assert_eq!(check_stale(Some(3), 3, &[]).crossed, Some(true));
        assert_eq!(check_stale(None, 3, &[]).crossed, Some(true));
        let v = check_stale(Some(0), 3, &["Xero".into()]);
        assert_eq!(v.crossed, Some(true));
        assert!(v.reason.contains("Xero is in error"), "{}", v.reason);
        assert_eq!(
            check_stale(Some(1), 3, &[]).reason,
            "new data 1 day ago (limit 3 days)"
        );
    }

    #[test]
    fn a_goal_rule_fires_off_track_and_missed_only() {
        let f = figures();
        use crate::goals::{Evaluation, GoalStatus, Pacing};
        use crate::period::DateRange;
        let period = DateRange::new(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        )
        .unwrap();
        let eval = |status| Evaluation {
            period,
            target: d("1000"),
            actual: Some(d("200")),
            expected_to_date: Some(d("500")),
            projected: Some(d("400")),
            status,
            pacing: Pacing::Linear,
            elapsed_days: 15,
            total_days: 30,
        };
        for (status, fires) in [
            (GoalStatus::OnTrack, false),
            (GoalStatus::AtRisk, false),
            (GoalStatus::Achieved, false),
            (GoalStatus::OffTrack, true),
            (GoalStatus::Missed, true),
        ] {
            let v = check_goal(&eval(Some(status)), revenue(&f));
            assert_eq!(v.crossed, Some(fires), "{status:?}");
            assert_eq!(v.value, Some(d("200")));
            assert_eq!(v.threshold, Some(d("1000")));
        }
        let v = check_goal(&eval(Some(GoalStatus::OffTrack)), revenue(&f));
        assert_eq!(
            v.reason,
            "the goal on Revenue is off track: $200.00 so far, $500.00 expected to date, $400.00 \
             projected (target $1,000.00)"
        );
        assert_eq!(check_goal(&eval(None), revenue(&f)).crossed, None);
    }
}
