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

impl MonthSplit {
    /// The split as a tenant with a retention cutoff reads it (migrations/0022): before
    /// `raw_from` (the first day of a month) only whole months are kept, so an edge's days before
    /// the cutoff are replaced by the months that start on one of them (a month counts whole in
    /// the range that holds its first day, as in `TenantTx::daily_totals`), and only its days from
    /// the cutoff on stay raw. `None` (raw rows kept forever) changes nothing.
    pub fn with_raw_data_from(self, raw_from: Option<NaiveDate>) -> MonthSplit {
        let Some(cutoff) = raw_from else {
            return self;
        };
        let mut out = MonthSplit {
            months: self.months,
            ..MonthSplit::default()
        };
        for (&from, &to) in self.edges_from.iter().zip(&self.edges_to) {
            if from < cutoff {
                let before_end = to.min(cutoff.pred_opt().expect("a day before the cutoff"));
                let mut m = if from.day() == 1 {
                    from
                } else {
                    first_of_month(from) + Months::new(1)
                };
                while m <= before_end {
                    out.months.push(m);
                    m = m + Months::new(1);
                }
            }
            let raw_start = from.max(cutoff);
            if raw_start <= to {
                out.edges_from.push(raw_start);
                out.edges_to.push(to);
            }
        }
        out.months.sort_unstable();
        out.months.dedup();
        out
    }
}

/// How to read the edges of a [`MonthSplit`] with the fewest raw days: an edge that covers more
/// than half of its month and touches one of its ends is read as the month's rollup less the
/// month's other days (its complement); every other edge is read as it is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EdgeReads {
    /// Edges read raw as they are.
    pub direct_from: Vec<NaiveDate>,
    pub direct_to: Vec<NaiveDate>,
    /// Per complemented edge: its month's first day, the edge itself, and the complement (the
    /// month's days outside the edge; never empty, since the edge is a partial month).
    pub months: Vec<NaiveDate>,
    pub edge_from: Vec<NaiveDate>,
    pub edge_to: Vec<NaiveDate>,
    pub complement_from: Vec<NaiveDate>,
    pub complement_to: Vec<NaiveDate>,
}

fn last_of_month(d: NaiveDate) -> NaiveDate {
    (first_of_month(d) + Months::new(1))
        .pred_opt()
        .expect("a month has a last day")
}

/// Plans the edges of `split` (see [`EdgeReads`]).
pub fn shorter_edges(split: &MonthSplit) -> EdgeReads {
    let mut out = EdgeReads::default();
    for (&from, &to) in split.edges_from.iter().zip(&split.edges_to) {
        let (first, last) = (first_of_month(from), last_of_month(from));
        let edge_days = (to - from).num_days() + 1;
        let month_days = (last - first).num_days() + 1;
        let complement = if 2 * edge_days <= month_days || first_of_month(to) != first {
            None
        } else if from == first {
            to.succ_opt().map(|a| (a, last))
        } else if to == last {
            from.pred_opt().map(|b| (first, b))
        } else {
            None // inside the month, touching neither end: two pieces; read as it is
        };
        match complement {
            Some((a, b)) => {
                out.months.push(first);
                out.edge_from.push(from);
                out.edge_to.push(to);
                out.complement_from.push(a);
                out.complement_to.push(b);
            }
            None => {
                out.direct_from.push(from);
                out.direct_to.push(to);
            }
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

    #[test]
    fn long_edges_are_read_as_their_months_complement_and_short_ones_as_they_are() {
        // The 12-month overview's range: 27 days of December (complement: its first 4), then
        // 4 days of the last December (read as they are).
        let split = split_months(&[(d("2025-12-05"), d("2026-12-04"))]);
        let plan = shorter_edges(&split);
        assert_eq!(plan.direct_from, vec![d("2026-12-01")]);
        assert_eq!(plan.direct_to, vec![d("2026-12-04")]);
        assert_eq!(plan.months, vec![d("2025-12-01")]);
        assert_eq!(
            (plan.edge_from[0], plan.edge_to[0]),
            (d("2025-12-05"), d("2025-12-31"))
        );
        assert_eq!(
            (plan.complement_from[0], plan.complement_to[0]),
            (d("2025-12-01"), d("2025-12-04"))
        );
        // A long edge at a month's start: the complement is the month's end.
        let plan = shorter_edges(&split_months(&[(d("2024-01-01"), d("2024-02-20"))]));
        assert_eq!(
            (plan.complement_from[0], plan.complement_to[0]),
            (d("2024-02-21"), d("2024-02-29"))
        );
        // Exactly half is read as it is; a range inside one month touching neither end too.
        let plan = shorter_edges(&split_months(&[(d("2023-04-16"), d("2023-05-31"))]));
        assert_eq!((plan.direct_from.len(), plan.months.len()), (1, 0));
        let plan = shorter_edges(&split_months(&[(d("2023-04-02"), d("2023-04-29"))]));
        assert_eq!((plan.direct_from.len(), plan.months.len()), (1, 0));
        // A range inside one month from its first day: the rest of the month is the complement.
        let plan = shorter_edges(&split_months(&[(d("2023-04-01"), d("2023-04-29"))]));
        assert_eq!(
            (plan.complement_from[0], plan.complement_to[0]),
            (d("2023-04-30"), d("2023-04-30"))
        );
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
    fn before_a_retention_cutoff_an_edge_becomes_the_months_starting_in_it() {
        let s = split_months(&[
            (d("2023-10-15"), d("2024-01-10")),
            (d("2024-02-05"), d("2024-03-20")),
        ]);
        // No cutoff: nothing changes.
        assert_eq!(s.clone().with_raw_data_from(None), s);
        let r = s.with_raw_data_from(Some(d("2024-03-01")));
        // The first range's edges are before the cutoff: October 15.. gives no month (October
        // starts outside the range), January 1-10 gives January whole; February 5.. gives
        // nothing; March 1-20 is after the cutoff and stays raw.
        assert_eq!(
            r.months,
            vec![d("2023-11-01"), d("2023-12-01"), d("2024-01-01")]
        );
        assert_eq!(r.edges_from, vec![d("2024-03-01")]);
        assert_eq!(r.edges_to, vec![d("2024-03-20")]);
        // An edge across the cutoff (a range inside two months) keeps its days from the cutoff.
        let r = split_months(&[(d("2024-02-01"), d("2024-03-10"))])
            .with_raw_data_from(Some(d("2024-03-01")));
        assert_eq!(r.months, vec![d("2024-02-01")]);
        assert_eq!(
            (r.edges_from, r.edges_to),
            (vec![d("2024-03-01")], vec![d("2024-03-10")])
        );
        // A cutoff before every range changes nothing.
        let s = split_months(&[(d("2024-02-05"), d("2024-03-20"))]);
        assert_eq!(s.clone().with_raw_data_from(Some(d("2020-01-01"))), s);
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
