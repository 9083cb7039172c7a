//! The range a person picks on a page (a preset such as "This month", or custom dates) and the
//! two periods its figures are compared with. Pages, the reports page and its CSV resolve ranges
//! here, so "Last 12 months" means the same dates everywhere.
//!
//! ## Like with like
//! A comparison is only honest when both periods cover the same kind of days:
//! - a period *to date* (this month, this quarter, year to date) is compared with the same number
//!   of elapsed days from the start of the earlier period — on the 5th, "This month" compares
//!   1–5 of last month and 1–5 of the same month last year, never a whole month;
//! - a whole calendar period (last month, a custom range of whole months) is compared with the
//!   whole calendar period before it and the same one a year earlier;
//! - anything else (last 12 months, other custom ranges) with the dates one year earlier and,
//!   for "previous", the range of equal length just before (12 months for last 12 months).
//!
//! Whether the earlier period has data at all is the caller's question ([`uncovered`]).

use chrono::{Datelike, Days, Months, NaiveDate};

use super::{DateRange, InvalidRange};

/// How a page range was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    ThisMonth,
    LastMonth,
    Quarter,
    YearToDate,
    Last12Months,
    Custom,
}

impl Preset {
    /// The presets a range picker offers, in order (custom ranges are picked by their dates).
    pub const PICKABLE: [Preset; 5] = [
        Preset::ThisMonth,
        Preset::LastMonth,
        Preset::Quarter,
        Preset::YearToDate,
        Preset::Last12Months,
    ];

    /// What a page shows when no range is asked for.
    pub const DEFAULT: Preset = Preset::Last12Months;

    /// The value of the `range` query parameter.
    pub fn key(self) -> &'static str {
        match self {
            Preset::ThisMonth => "this_month",
            Preset::LastMonth => "last_month",
            Preset::Quarter => "quarter",
            Preset::YearToDate => "ytd",
            Preset::Last12Months => "last_12_months",
            Preset::Custom => "custom",
        }
    }

    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            Preset::ThisMonth => "This month",
            Preset::LastMonth => "Last month",
            Preset::Quarter => "This quarter",
            Preset::YearToDate => "Year to date",
            Preset::Last12Months => "Last 12 months",
            Preset::Custom => "Custom",
        }
    }

    pub fn from_key(key: &str) -> Option<Preset> {
        Preset::PICKABLE
            .into_iter()
            .chain([Preset::Custom])
            .find(|p| p.key() == key)
    }

    /// The dates of this preset as of `today` (`None` for [`Preset::Custom`]).
    pub fn dates(self, today: NaiveDate) -> Option<DateRange> {
        let this_month = month_start(today);
        let (from, to) = match self {
            Preset::ThisMonth => (this_month, today),
            Preset::LastMonth => (this_month - Months::new(1), this_month - Days::new(1)),
            Preset::Quarter => (quarter_start(today), today),
            Preset::YearToDate => (year_start(today), today),
            // The 12 months ending today: 3 Dec 2025 – 2 Dec 2026. (Counting 11 months back
            // from the first of this month made it 1 Jan – 2 Dec in December: year to date.)
            Preset::Last12Months => (today - Months::new(12) + Days::new(1), today),
            Preset::Custom => return None,
        };
        Some(DateRange { from, to })
    }

    /// The length of the calendar period a to-date preset runs through (`None` otherwise).
    fn to_date_months(self) -> Option<u32> {
        match self {
            Preset::ThisMonth => Some(1),
            Preset::Quarter => Some(3),
            Preset::YearToDate => Some(12),
            _ => None,
        }
    }
}

/// The longest custom range a page shows: ten years (charts bucket it by month).
pub const MAX_CUSTOM_DAYS: u64 = 3660;

/// The query parameter a [`RangeError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeField {
    Range,
    From,
    To,
}

impl RangeField {
    /// The query parameter's name.
    pub fn name(self) -> &'static str {
        match self {
            RangeField::Range => "range",
            RangeField::From => "from",
            RangeField::To => "to",
        }
    }
}

/// Why a requested range cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("unknown range `{0}`: expected this_month, last_month, quarter, ytd, last_12_months or custom")]
    UnknownPreset(String),
    #[error("`{}` is missing: a custom range needs both `from` and `to`", .0.name())]
    Missing(RangeField),
    #[error("`{}` ({value}) is not a date YYYY-MM-DD", field.name())]
    NotADate { field: RangeField, value: String },
    #[error(transparent)]
    Reversed(#[from] InvalidRange),
    #[error("the range {from} to {to} spans {days} days; at most {MAX_CUSTOM_DAYS} can be shown")]
    TooLong {
        from: NaiveDate,
        to: NaiveDate,
        days: u64,
    },
}

impl RangeError {
    /// The parameter to correct.
    pub fn field(&self) -> RangeField {
        match self {
            RangeError::UnknownPreset(_) => RangeField::Range,
            RangeError::Missing(f) | RangeError::NotADate { field: f, .. } => *f,
            RangeError::Reversed(_) => RangeField::From,
            RangeError::TooLong { .. } => RangeField::To,
        }
    }
}

/// `YYYY-MM-DD` (surrounding spaces ignored), the one date format of query strings.
pub fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// A range picked on a page: its dates and the preset they came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickedRange {
    dates: DateRange,
    preset: Preset,
}

impl PickedRange {
    /// Resolves the query parameters `range`, `from` and `to` against `today` (in the tenant's
    /// time zone). `from`/`to` without `range` mean a custom range; a preset ignores them; no
    /// parameter at all is [`Preset::DEFAULT`]. Empty values count as absent (an emptied form
    /// field).
    pub fn parse(
        range: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<PickedRange, RangeError> {
        fn present(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let (range, from, to) = (present(range), present(from), present(to));
        let preset = match range {
            Some(key) => {
                Preset::from_key(key).ok_or_else(|| RangeError::UnknownPreset(key.into()))?
            }
            None if from.is_some() || to.is_some() => Preset::Custom,
            None => Preset::DEFAULT,
        };
        if let Some(dates) = preset.dates(today) {
            return Ok(PickedRange { dates, preset });
        }
        let date = |field: RangeField, v: Option<&str>| {
            let v = v.ok_or(RangeError::Missing(field))?;
            parse_iso_date(v).ok_or_else(|| RangeError::NotADate {
                field,
                value: v.to_string(),
            })
        };
        let (from, to) = (date(RangeField::From, from)?, date(RangeField::To, to)?);
        PickedRange::custom(DateRange::new(from, to)?)
    }

    /// A custom range of `dates`, if it is not longer than [`MAX_CUSTOM_DAYS`].
    pub fn custom(dates: DateRange) -> Result<PickedRange, RangeError> {
        if dates.days() > MAX_CUSTOM_DAYS {
            return Err(RangeError::TooLong {
                from: dates.from,
                to: dates.to,
                days: dates.days(),
            });
        }
        Ok(PickedRange {
            dates,
            preset: Preset::Custom,
        })
    }

    /// [`Preset::DEFAULT`] as of `today`.
    pub fn default_as_of(today: NaiveDate) -> PickedRange {
        PickedRange {
            dates: Preset::DEFAULT.dates(today).expect("a preset has dates"),
            preset: Preset::DEFAULT,
        }
    }

    pub fn dates(&self) -> DateRange {
        self.dates
    }
    pub fn from(&self) -> NaiveDate {
        self.dates.from
    }
    pub fn to(&self) -> NaiveDate {
        self.dates.to
    }
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The period "vs previous period" compares with (see the module documentation).
    pub fn previous(&self) -> DateRange {
        let DateRange { from, to } = self.dates;
        if let Some(months) = self.preset.to_date_months() {
            return elapsed_days_from(
                from - Months::new(months),
                self.dates.days(),
                from - Days::new(1),
            );
        }
        if let Some(months) = self.whole_months() {
            return DateRange {
                from: from - Months::new(months),
                to: from - Days::new(1),
            };
        }
        match self.preset {
            Preset::Last12Months => DateRange {
                from: from - Months::new(12),
                to: to - Months::new(12),
            },
            _ => self.dates.previous(),
        }
    }

    /// The period "vs last year" compares with (see the module documentation).
    pub fn last_year(&self) -> DateRange {
        let DateRange { from, to } = self.dates;
        let year_before = from - Months::new(12);
        if let Some(months) = self.preset.to_date_months() {
            let period_end = year_before + Months::new(months) - Days::new(1);
            return elapsed_days_from(year_before, self.dates.days(), period_end);
        }
        if let Some(months) = self.whole_months() {
            return DateRange {
                from: year_before,
                to: year_before + Months::new(months) - Days::new(1),
            };
        }
        DateRange {
            from: year_before,
            to: to - Months::new(12),
        }
    }

    /// The number of calendar months when the range is exactly whole months (last month, or a
    /// custom 1 Jan – 31 Mar).
    fn whole_months(&self) -> Option<u32> {
        self.dates.whole_months()
    }
}

/// The parts of `period` that data spanning `data` (first and last day with a record; `None`
/// when there is none) does not cover: none, the whole period, or a head and/or a tail.
pub fn uncovered(period: DateRange, data: Option<DateRange>) -> Vec<DateRange> {
    let Some(data) = data.filter(|d| d.from <= period.to && d.to >= period.from) else {
        return vec![period];
    };
    let mut missing = Vec::new();
    if data.from > period.from {
        missing.push(DateRange {
            from: period.from,
            to: data.from - Days::new(1),
        });
    }
    if data.to < period.to {
        missing.push(DateRange {
            from: data.to + Days::new(1),
            to: period.to,
        });
    }
    missing
}

/// `elapsed` days from `start`, cut at `period_end` (1–31 March against February ends on the
/// 28th).
fn elapsed_days_from(start: NaiveDate, elapsed: u64, period_end: NaiveDate) -> DateRange {
    let to = (start + Days::new(elapsed.saturating_sub(1))).min(period_end);
    DateRange { from: start, to }
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

fn quarter_start(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1)
        .expect("a quarter starts on the 1st")
}

fn year_start(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("1 January exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn range(from: &str, to: &str) -> DateRange {
        DateRange::new(d(from), d(to)).unwrap()
    }

    fn preset(key: &str, today: &str) -> PickedRange {
        PickedRange::parse(Some(key), None, None, d(today)).unwrap()
    }

    fn custom(from: &str, to: &str) -> Result<PickedRange, RangeError> {
        PickedRange::parse(Some("custom"), Some(from), Some(to), d("2025-05-14"))
    }

    #[test]
    fn presets_resolve_against_today() {
        let dates = |key| preset(key, "2025-05-14").dates();
        assert_eq!(dates("this_month"), range("2025-05-01", "2025-05-14"));
        assert_eq!(dates("last_month"), range("2025-04-01", "2025-04-30"));
        assert_eq!(dates("quarter"), range("2025-04-01", "2025-05-14"));
        assert_eq!(dates("ytd"), range("2025-01-01", "2025-05-14"));
        assert_eq!(dates("last_12_months"), range("2024-05-15", "2025-05-14"));
        let none = PickedRange::parse(None, None, None, d("2025-05-14")).unwrap();
        assert_eq!(none.preset(), Preset::Last12Months);
        for p in Preset::PICKABLE.into_iter().chain([Preset::Custom]) {
            assert_eq!(Preset::from_key(p.key()), Some(p));
        }
    }

    #[test]
    fn last_12_months_is_not_year_to_date_in_december() {
        // Counting 11 months back from 1 December gave 1 January: year to date again.
        let r = preset("last_12_months", "2026-12-02");
        assert_eq!(r.dates(), range("2025-12-03", "2026-12-02"));
        assert_ne!(r.dates(), preset("ytd", "2026-12-02").dates());
        assert_eq!(r.dates().days(), 365);
        assert_eq!(r.previous(), range("2024-12-03", "2025-12-02"));
        assert_eq!(r.last_year(), range("2024-12-03", "2025-12-02"));
        // 29 February: the 12 months ending then start on 1 March.
        assert_eq!(
            preset("last_12_months", "2024-02-29").dates(),
            range("2023-03-01", "2024-02-29")
        );
    }

    #[test]
    fn this_month_compares_the_same_elapsed_days() {
        let r = preset("this_month", "2025-11-05");
        assert_eq!(r.previous(), range("2025-10-01", "2025-10-05"));
        assert_eq!(r.last_year(), range("2024-11-01", "2024-11-05"));
        // On the 31st, the previous month ends sooner: 1–31 March vs 1–28 February.
        let r = preset("this_month", "2025-03-31");
        assert_eq!(r.previous(), range("2025-02-01", "2025-02-28"));
        assert_eq!(r.last_year(), range("2024-03-01", "2024-03-31"));
        // The first day of the month compares one day.
        let r = preset("this_month", "2025-06-01");
        assert_eq!(r.previous(), range("2025-05-01", "2025-05-01"));
    }

    #[test]
    fn quarter_and_year_to_date_compare_the_same_elapsed_days() {
        let q = preset("quarter", "2025-05-14");
        assert_eq!(q.dates().days(), 44);
        assert_eq!(q.previous(), range("2025-01-01", "2025-02-13"));
        assert_eq!(q.previous().days(), 44);
        assert_eq!(q.last_year(), range("2024-04-01", "2024-05-14"));
        let y = preset("ytd", "2025-03-10");
        // 69 days: 2024 is a leap year, so its 69th day is 9 March.
        assert_eq!(y.previous(), range("2024-01-01", "2024-03-09"));
        assert_eq!(y.previous().days(), y.dates().days());
        assert_eq!(y.last_year(), y.previous());
        // A leap year's 60th day is 29 February; the year before it is 1 March.
        let leap = preset("ytd", "2024-02-29");
        assert_eq!(leap.last_year(), range("2023-01-01", "2023-03-01"));
    }

    #[test]
    fn whole_months_compare_whole_months() {
        let r = preset("last_month", "2025-03-14");
        assert_eq!(r.dates(), range("2025-02-01", "2025-02-28"));
        assert_eq!(r.previous(), range("2025-01-01", "2025-01-31"));
        assert_eq!(r.last_year(), range("2024-02-01", "2024-02-29"));
        let q1 = custom("2025-01-01", "2025-03-31").unwrap();
        assert_eq!(q1.previous(), range("2024-10-01", "2024-12-31"));
        assert_eq!(q1.last_year(), range("2024-01-01", "2024-03-31"));
    }

    #[test]
    fn other_custom_ranges_compare_equal_length_and_a_year_back() {
        let c = custom("2025-02-01", "2025-02-10").unwrap();
        assert_eq!(c.preset(), Preset::Custom);
        assert_eq!(c.previous(), range("2025-01-22", "2025-01-31"));
        assert_eq!(c.last_year(), range("2024-02-01", "2024-02-10"));
    }

    #[test]
    fn from_and_to_without_range_mean_custom() {
        let r = PickedRange::parse(
            None,
            Some("2025-02-01"),
            Some("2025-02-10"),
            d("2025-05-14"),
        )
        .unwrap();
        assert_eq!(
            (r.preset(), r.dates()),
            (Preset::Custom, range("2025-02-01", "2025-02-10"))
        );
        // A preset ignores stray dates; empty values are absent.
        let p = PickedRange::parse(Some("ytd"), Some("x"), None, d("2025-05-14")).unwrap();
        assert_eq!(p.preset(), Preset::YearToDate);
        let e = PickedRange::parse(Some(""), Some(""), Some(" "), d("2025-05-14")).unwrap();
        assert_eq!(e.preset(), Preset::DEFAULT);
    }

    #[test]
    fn invalid_custom_ranges_name_the_field() {
        let reversed = custom("2025-02-10", "2025-02-01").unwrap_err();
        assert!(matches!(reversed, RangeError::Reversed(_)));
        assert_eq!(reversed.field(), RangeField::From);
        let bad = custom("2025-13-01", "2025-02-01").unwrap_err();
        assert_eq!(
            bad,
            RangeError::NotADate {
                field: RangeField::From,
                value: "2025-13-01".into()
            }
        );
        assert_eq!(
            custom("2025-01-01", "soon").unwrap_err().field(),
            RangeField::To
        );
        let missing =
            PickedRange::parse(None, Some("2025-01-01"), None, d("2025-05-14")).unwrap_err();
        assert_eq!(missing, RangeError::Missing(RangeField::To));
        let long = custom("2000-01-01", "2025-01-01").unwrap_err();
        assert!(
            matches!(long, RangeError::TooLong { days: 9133, .. }),
            "{long:?}"
        );
        assert_eq!(long.field(), RangeField::To);
        assert!(custom("2015-01-01", "2024-12-31").is_ok(), "ten years fit");
        let unknown =
            PickedRange::parse(Some("nonsense"), None, None, d("2025-05-14")).unwrap_err();
        assert_eq!(unknown.field(), RangeField::Range);
        assert!(unknown.to_string().contains("nonsense"));
    }

    #[test]
    fn uncovered_finds_the_days_without_data() {
        let period = range("2024-11-01", "2025-10-31");
        assert_eq!(uncovered(period, None), vec![period]);
        assert_eq!(
            uncovered(period, Some(range("2025-11-01", "2026-01-01"))),
            vec![period]
        );
        assert_eq!(
            uncovered(period, Some(range("2020-01-01", "2024-10-31"))),
            vec![period]
        );
        assert_eq!(
            uncovered(period, Some(range("2024-01-01", "2026-01-01"))),
            vec![]
        );
        assert_eq!(
            uncovered(period, Some(range("2025-02-10", "2026-01-01"))),
            vec![range("2024-11-01", "2025-02-09")]
        );
        assert_eq!(
            uncovered(period, Some(range("2025-02-10", "2025-09-30"))),
            vec![
                range("2024-11-01", "2025-02-09"),
                range("2025-10-01", "2025-10-31")
            ]
        );
    }
}
