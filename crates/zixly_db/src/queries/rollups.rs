//! Which part of a date range the monthly rollups answer (migrations/0015_rollups.sql).
//!
//! A report over `[from, to]` reads the calendar months that lie wholly inside the range from
//! `financial_months`, and raw `financials` rows only for the days outside those months: at most
//! two partial months per range, so its cost no longer grows with the range's length. The split
//! is pure date arithmetic; the SQL that uses it lives with each report.

use chrono::{Datelike, Months, NaiveDate};

/// A set of date ranges, each split into its whole calendar months and the days outside them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthSplit {
    /// First days of the months that lie wholly inside one of the ranges, ascending.
    pub months: Vec<NaiveDate>,
    /// Inclusive day ranges not covered by `months`, ascending.
    pub edges_from: Vec<NaiveDate>,
    pub edges_to: Vec<NaiveDate>,
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

/// Splits each inclusive range `[from, to]` separately (a month that straddles two ranges is whole
/// in neither, so a per-range figure never takes a day of its neighbour). Empty ranges
/// (`from > to`) contribute nothing.
pub fn split_months(ranges: &[(NaiveDate, NaiveDate)]) -> MonthSplit {
    let mut out = MonthSplit::default();
    for &(from, to) in ranges {
        if from > to {
            continue;
        }
        // The first month that starts on or after `from`, and the first that ends after `to`.
        let first_whole = if from.day() == 1 {
            from
        } else {
            first_of_month(from) + Months::new(1)
        };
        let after_last_whole = match to.succ_opt() {
            Some(next) if next.day() == 1 => next,
            _ => first_of_month(to),
        };
        if first_whole >= after_last_whole {
            out.edges_from.push(from);
            out.edges_to.push(to);
            continue;
        }
        if from < first_whole {
            out.edges_from.push(from);
            out.edges_to
                .push(first_whole.pred_opt().expect("after from"));
        }
        let mut m = first_whole;
        while m < after_last_whole {
            out.months.push(m);
            m = m + Months::new(1);
        }
        if after_last_whole <= to {
            out.edges_from.push(after_last_whole);
            out.edges_to.push(to);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Every day of every range is covered exactly once, by a whole month or an edge, and nothing
    /// outside the ranges is.
    fn covered_days(s: &MonthSplit) -> Vec<NaiveDate> {
        let mut days = Vec::new();
        for &m in &s.months {
            let mut x = m;
            while x < m + Months::new(1) {
                days.push(x);
                x = x.succ_opt().unwrap();
            }
        }
        for (&a, &b) in s.edges_from.iter().zip(&s.edges_to) {
            let mut x = a;
            while x <= b {
                days.push(x);
                x = x.succ_opt().unwrap();
            }
        }
        days.sort();
        days
    }

    #[test]
    fn a_quarter_is_three_whole_months() {
        let s = split_months(&[(d("2026-04-01"), d("2026-06-30"))]);
        assert_eq!(
            s.months,
            vec![d("2026-04-01"), d("2026-05-01"), d("2026-06-01")]
        );
        assert!(s.edges_from.is_empty());
    }

    #[test]
    fn partial_months_at_both_edges_are_raw_days() {
        let s = split_months(&[(d("2026-01-15"), d("2026-04-10"))]);
        assert_eq!(s.months, vec![d("2026-02-01"), d("2026-03-01")]);
        assert_eq!(s.edges_from, vec![d("2026-01-15"), d("2026-04-01")]);
        assert_eq!(s.edges_to, vec![d("2026-01-31"), d("2026-04-10")]);
    }

    #[test]
    fn a_range_inside_one_month_is_all_edge() {
        let s = split_months(&[(d("2026-02-03"), d("2026-02-27"))]);
        assert!(s.months.is_empty());
        assert_eq!(
            (s.edges_from, s.edges_to),
            (vec![d("2026-02-03")], vec![d("2026-02-27")])
        );
        let whole_feb = split_months(&[(d("2024-02-01"), d("2024-02-29"))]);
        assert_eq!(whole_feb.months, vec![d("2024-02-01")]);
    }

    #[test]
    fn a_month_straddling_two_ranges_is_whole_in_neither() {
        let s = split_months(&[
            (d("2025-12-16"), d("2026-01-15")),
            (d("2026-01-16"), d("2026-03-31")),
        ]);
        assert_eq!(s.months, vec![d("2026-02-01"), d("2026-03-01")]);
        let days = covered_days(&s);
        assert_eq!(days.first(), Some(&d("2025-12-16")));
        assert_eq!(days.last(), Some(&d("2026-03-31")));
        assert_eq!(days.len(), 106);
        assert!(days.windows(2).all(|w| w[0] < w[1]), "each day once");
    }

    #[test]
    fn every_day_is_covered_once_for_many_ranges() {
        let start = d("2023-11-20");
        for len in [0u64, 1, 10, 27, 28, 31, 59, 60, 89, 365, 400] {
            for offset in [0u64, 1, 11, 12, 40, 70] {
                let from = start + chrono::Days::new(offset);
                let to = from + chrono::Days::new(len);
                let s = split_months(&[(from, to)]);
                let days = covered_days(&s);
                assert_eq!(days.len() as u64, len + 1, "{from}..{to}");
                assert_eq!((days[0], *days.last().unwrap()), (from, to));
                assert!(
                    days.windows(2).all(|w| w[0] < w[1]),
                    "{from}..{to}: each day once"
                );
            }
        }
        assert_eq!(
            split_months(&[(d("2026-02-02"), d("2026-02-01"))]),
            MonthSplit::default()
        );
    }
}
