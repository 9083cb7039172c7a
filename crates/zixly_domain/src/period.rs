//! Periods of business dates and their aggregation buckets: what a series read, a report or a
//! page asks for. Pure values (no IO); the database's `date_trunc` agrees with [`Bucket`]
//! (weeks start on Monday). [`PickedRange`] is the range a person picks on a page, with the
//! periods it is compared with.

use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate};

mod picked;
pub use picked::{
    parse_iso_date, uncovered, PickedRange, Preset, RangeError, RangeField, MAX_CUSTOM_DAYS,
};

/// An inclusive range of business dates, `from` ≤ `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`from` ({from}) is after `to` ({to})")]
pub struct InvalidRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, InvalidRange> {
        if from > to {
            return Err(InvalidRange { from, to });
        }
        Ok(DateRange { from, to })
    }
    pub fn from(&self) -> NaiveDate {
        self.from
    }
    pub fn to(&self) -> NaiveDate {
        self.to
    }
    /// Number of days, both ends included.
    pub fn days(&self) -> u64 {
        (self.to - self.from).num_days() as u64 + 1
    }
    /// The period "previous" compares with, ending the day before this one: as many whole
    /// calendar months when this range is whole months (a quarter's is the quarter before, not the
    /// 90 days before, which would begin two days into it), else the same number of days.
    pub fn previous(&self) -> DateRange {
        let to = self.from - Days::new(1);
        if let Some(months) = self.whole_months() {
            return DateRange {
                from: self.from - Months::new(months),
                to,
            };
        }
        DateRange {
            from: to - Days::new(self.days() - 1),
            to,
        }
    }

    /// How many calendar months the range is, when it starts on a first and ends on a last day.
    pub fn whole_months(&self) -> Option<u32> {
        let after = self.to + Days::new(1);
        if self.from.day() != 1 || after.day() != 1 {
            return None;
        }
        let months = (after.year() - self.from.year()) * 12 + after.month() as i32
            - self.from.month() as i32;
        u32::try_from(months).ok().filter(|m| *m > 0)
    }
}

/// Aggregation bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bucket `{0}`: expected day, week or month")]
pub struct UnknownBucket(pub String);

impl FromStr for Bucket {
    type Err = UnknownBucket;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            "month" => Ok(Bucket::Month),
            _ => Err(UnknownBucket(s.to_string())),
        }
    }
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// The first day of the bucket holding `d` (weeks start on Monday, as `date_trunc('week')`).
    pub fn start_of(self, d: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        match self {
            Bucket::Day => d,
            Bucket::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
            Bucket::Month => d.with_day(1).expect("day 1 exists"),
        }
    }

    /// The first day of the bucket after the one holding `d`.
    pub fn next_start(self, d: NaiveDate) -> NaiveDate {
        let s = self.start_of(d);
        match self {
            Bucket::Day => s + Days::new(1),
            Bucket::Week => s + Days::new(7),
            Bucket::Month => s + Months::new(1),
        }
    }
}

/// One page window of a bucketed read: `[from, to]` covers at most `max_buckets` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketWindow {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// First day of the next window, when the range goes on.
    pub next: Option<NaiveDate>,
}

/// Cuts `range` into the window starting at `after` (a cursor: the first day of a bucket inside
/// the range; `None` for the first page). `None` when `after` lies outside the range.
pub fn bucket_window(
    range: DateRange,
    bucket: Bucket,
    after: Option<NaiveDate>,
    max_buckets: u32,
) -> Option<BucketWindow> {
    let from = match after {
        Some(a) if a < range.from || a > range.to => return None,
        Some(a) => a,
        None => range.from,
    };
    let mut end_exclusive = from;
    for _ in 0..max_buckets.max(1) {
        end_exclusive = bucket.next_start(end_exclusive);
        if end_exclusive > range.to {
            break;
        }
    }
    if end_exclusive > range.to {
        Some(BucketWindow {
            from,
            to: range.to,
            next: None,
        })
    } else {
        Some(BucketWindow {
            from,
            to: end_exclusive - Days::new(1),
            next: Some(end_exclusive),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn previous_period_has_equal_length_and_ends_the_day_before() {
        let r = DateRange::new(d("2025-01-05"), d("2025-04-04")).unwrap();
        assert_eq!(r.days(), 90);
        let p = r.previous();
        assert_eq!((p.from(), p.to()), (d("2024-10-07"), d("2025-01-04")));
        assert_eq!(p.days(), 90);
        assert!(DateRange::new(d("2025-01-02"), d("2025-01-01")).is_err());
    }

    #[test]
    fn whole_months_compare_with_as_many_whole_months() {
        let q1 = DateRange::new(d("2025-01-01"), d("2025-03-31")).unwrap();
        assert_eq!(q1.whole_months(), Some(3));
        let p = q1.previous();
        assert_eq!((p.from(), p.to()), (d("2024-10-01"), d("2024-12-31")));
        let march = DateRange::new(d("2024-03-01"), d("2024-03-31")).unwrap();
        let p = march.previous();
        assert_eq!((p.from(), p.to()), (d("2024-02-01"), d("2024-02-29")));
        let year = DateRange::new(d("2024-01-01"), d("2024-12-31")).unwrap();
        assert_eq!(year.whole_months(), Some(12));
        assert_eq!(year.previous().from(), d("2023-01-01"));
        assert_eq!(
            DateRange::new(d("2024-03-01"), d("2024-03-30"))
                .unwrap()
                .whole_months(),
            None
        );
    }

    #[test]
    fn buckets_start_on_day_monday_and_first_of_month() {
        assert_eq!(Bucket::Week.start_of(d("2025-01-01")), d("2024-12-30"));
        assert_eq!(Bucket::Week.next_start(d("2025-01-05")), d("2025-01-06"));
        assert_eq!(Bucket::Month.next_start(d("2025-01-31")), d("2025-02-01"));
        assert_eq!(Bucket::Day.next_start(d("2024-02-28")), d("2024-02-29"));
        assert_eq!("month".parse::<Bucket>().unwrap(), Bucket::Month);
        assert!("year".parse::<Bucket>().is_err());
    }

    #[test]
    fn bucket_windows_tile_the_range_without_gaps() {
        let r = DateRange::new(d("2025-01-15"), d("2025-06-10")).unwrap();
        let w1 = bucket_window(r, Bucket::Month, None, 2).unwrap();
        assert_eq!(
            (w1.from, w1.to, w1.next),
            (d("2025-01-15"), d("2025-02-28"), Some(d("2025-03-01")))
        );
        let w2 = bucket_window(r, Bucket::Month, w1.next, 2).unwrap();
        assert_eq!(
            (w2.from, w2.to, w2.next),
            (d("2025-03-01"), d("2025-04-30"), Some(d("2025-05-01")))
        );
        let w3 = bucket_window(r, Bucket::Month, w2.next, 2).unwrap();
        assert_eq!(
            (w3.from, w3.to, w3.next),
            (d("2025-05-01"), d("2025-06-10"), None)
        );
        assert!(bucket_window(r, Bucket::Month, Some(d("2025-07-01")), 2).is_none());
        let exact = DateRange::new(d("2025-01-01"), d("2025-01-31")).unwrap();
        assert_eq!(
            bucket_window(exact, Bucket::Month, None, 1).unwrap().next,
            None
        );
    }
}
