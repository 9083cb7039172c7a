//! Field-level parsers: money, metric values, dates, timestamps. Each returns the reason text of a
//! [`super::RowError`] on failure; the caller adds line and column.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::shown;
use crate::timezone::Tz;

/// An amount of money as stored in `numeric(12,2)`: at most 2 decimal places and 10 integer
/// digits. Always held at scale 2 (`12.5` is `12.50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

/// A custom-metric value as stored in `numeric(12,4)`: at most 4 decimal places and 8 integer
/// digits. Always held at scale 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricValue(Decimal);

impl Money {
    pub const SCALE: u32 = 2;
    pub const INTEGER_DIGITS: usize = 10;

    /// Parses a plain decimal (`-1234.56`); see the module rules. No rounding, ever.
    pub fn parse(s: &str) -> Result<Money, String> {
        parse_plain_decimal(s, Self::SCALE, Self::INTEGER_DIGITS, "numeric(12,2)").map(Money)
    }

    /// From a decimal that already fits (connectors holding a `Decimal`); same rules as `parse`.
    pub fn from_decimal(d: Decimal) -> Result<Money, String> {
        Self::parse(&d.to_string())
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// `self - other` when the result still fits `numeric(12,2)`.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        let d = self.0.checked_sub(other.0)?;
        fits(d, Self::INTEGER_DIGITS).then_some(Money(d))
    }
}

impl MetricValue {
    pub const SCALE: u32 = 4;
    pub const INTEGER_DIGITS: usize = 8;

    pub fn parse(s: &str) -> Result<MetricValue, String> {
        parse_plain_decimal(s, Self::SCALE, Self::INTEGER_DIGITS, "numeric(12,4)").map(MetricValue)
    }

    pub fn from_decimal(d: Decimal) -> Result<MetricValue, String> {
        Self::parse(&d.to_string())
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for MetricValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn fits(d: Decimal, integer_digits: usize) -> bool {
    let limit = Decimal::from_i128_with_scale(10i128.pow(integer_digits as u32), 0);
    d.abs() < limit
}

/// `-?DIGITS(.DIGITS)?`, at most `scale` places, at most `integer_digits` significant integer
/// digits. Returns the value rescaled to exactly `scale` places (exact: only zeros are added).
fn parse_plain_decimal(
    s: &str,
    scale: u32,
    integer_digits: usize,
    sql_type: &str,
) -> Result<Decimal, String> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let well_formed = all_digits(int_part) && frac_part.is_none_or(all_digits);
    if !well_formed {
        let hint = if s.contains(',') {
            " (no thousands separators; use `.` as the decimal point)"
        } else if s.contains(['e', 'E']) {
            " (no exponent notation)"
        } else if s.starts_with('+') {
            " (no leading `+`)"
        } else if s.contains(|c: char| !c.is_ascii_digit() && c != '.' && c != '-') {
            " (digits only: no currency symbols, spaces or letters)"
        } else {
            ""
        };
        return Err(format!(
            "{} is not a plain decimal number like 1234.56{hint}",
            shown(s)
        ));
    }
    let places = frac_part.map_or(0, str::len);
    if places > scale as usize {
        return Err(format!("{} has {places} decimal places; at most {scale} are allowed (values are never rounded)", shown(s)));
    }
    let significant = int_part.trim_start_matches('0').len();
    if significant > integer_digits {
        return Err(format!("{} is out of range: at most {integer_digits} digits before the decimal point ({sql_type})", shown(s)));
    }
    let mut d: Decimal = s
        .parse()
        .map_err(|_| format!("{} is not a plain decimal number like 1234.56", shown(s)))?;
    d.rescale(scale);
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    Ok(d)
}

/// ISO `YYYY-MM-DD`, a real calendar date.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(format!("{} is not an ISO date (YYYY-MM-DD)", shown(s)));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{} is not a real date", shown(s)))
}

/// RFC 3339 with an offset, or a naive date-time / bare date read in `tz`. Returns the instant in
/// UTC and the local calendar date in `tz` (the date that FX conversion uses).
pub fn parse_timestamp(s: &str, tz: Tz) -> Result<(DateTime<Utc>, NaiveDate), String> {
    const EXAMPLE: &str = "RFC 3339 like 2024-03-01T09:30:00+11:00, or a local 2024-03-01 09:30:00";
    if s.len() >= 10 && s.is_char_boundary(10) {
        // A well-shaped but impossible date deserves a precise message.
        let date_part = &s[..10];
        if let Err(e) = parse_date(date_part) {
            if e.ends_with("not a real date") {
                return Err(format!("`{date_part}` is not a real date"));
            }
        }
    }
    if s.len() == 10 {
        let date =
            parse_date(s).map_err(|_| format!("{} is not a timestamp ({EXAMPLE})", shown(s)))?;
        return local_to_utc(s, date.and_hms_opt(0, 0, 0).expect("midnight"), tz);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        let utc = dt.with_timezone(&Utc);
        return Ok((utc, utc.with_timezone(&tz).date_naive()));
    }
    const NAIVE: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for format in NAIVE {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return local_to_utc(s, naive, tz);
        }
    }
    Err(format!("{} is not a timestamp ({EXAMPLE})", shown(s)))
}

fn local_to_utc(
    s: &str,
    naive: NaiveDateTime,
    tz: Tz,
) -> Result<(DateTime<Utc>, NaiveDate), String> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Ok((dt.with_timezone(&Utc), naive.date())),
        LocalResult::Ambiguous(a, b) => Err(format!(
            "{} is ambiguous in {tz} (it happens twice, at {} and {}, when clocks go back); add an offset",
            shown(s),
            a.format("%:z"),
            b.format("%:z")
        )),
        LocalResult::None => {
            Err(format!("{} does not exist in {tz} (clocks skip it when they go forward); add an offset", shown(s)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn money_accepts_plain_decimals_and_normalizes_scale() {
        assert_eq!(Money::parse("12.5").unwrap().decimal().to_string(), "12.50");
        assert_eq!(Money::parse("-0.01").unwrap().decimal(), dec("-0.01"));
        assert_eq!(Money::parse("0").unwrap().decimal().to_string(), "0.00");
        assert_eq!(Money::parse("-0").unwrap().decimal().to_string(), "0.00");
        assert_eq!(
            Money::parse("9999999999.99").unwrap().decimal(),
            dec("9999999999.99")
        );
        assert_eq!(
            Money::parse("0009999999999").unwrap().decimal(),
            dec("9999999999")
        );
    }

    #[test]
    fn money_rejects_rounding_separators_and_overflow() {
        let e = Money::parse("12.345").unwrap_err();
        assert!(e.contains("3 decimal places; at most 2"), "{e}");
        assert!(Money::parse("1,234.00")
            .unwrap_err()
            .contains("no thousands separators"));
        assert!(Money::parse("1e5").unwrap_err().contains("no exponent"));
        assert!(Money::parse("+5").unwrap_err().contains("no leading `+`"));
        assert!(Money::parse("$5")
            .unwrap_err()
            .contains("no currency symbols"));
        assert!(Money::parse("10000000000")
            .unwrap_err()
            .contains("out of range"));
        for bad in ["", ".5", "5.", "-", "1.2.3", "--1", "١٢"] {
            assert!(Money::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn metric_values_allow_four_places_within_numeric_12_4() {
        assert_eq!(
            MetricValue::parse("1.2345").unwrap().decimal(),
            dec("1.2345")
        );
        assert_eq!(
            MetricValue::parse("99999999.9999").unwrap().decimal(),
            dec("99999999.9999")
        );
        assert!(MetricValue::parse("1.23456")
            .unwrap_err()
            .contains("5 decimal places; at most 4"));
        assert!(MetricValue::parse("100000000")
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn money_subtraction_checks_range() {
        let max = Money::parse("9999999999.99").unwrap();
        let neg = Money::parse("-1").unwrap();
        assert!(max.checked_sub(neg).is_none());
        assert_eq!(max.checked_sub(max).unwrap().decimal(), Decimal::ZERO);
    }

    #[test]
    fn dates_must_be_iso_and_real() {
        assert_eq!(
            parse_date("2024-02-29").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        assert!(parse_date("2023-02-29")
            .unwrap_err()
            .contains("not a real date"));
        assert!(parse_date("2024-02-30")
            .unwrap_err()
            .contains("not a real date"));
        for bad in [
            "2024-2-01",
            "01/02/2024",
            "2024-02-01T00:00:00",
            "20240201",
            "",
        ] {
            assert!(
                parse_date(bad).unwrap_err().contains("not an ISO date"),
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamps_with_offsets_are_converted_to_utc() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        let (utc, local) = parse_timestamp("2024-03-01T09:30:00+11:00", tz).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-02-29T22:30:00+00:00");
        assert_eq!(local, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        let (utc, _) = parse_timestamp("2024-03-01T00:00:00Z", tz).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-03-01T00:00:00+00:00");
    }

    #[test]
    fn naive_timestamps_are_read_in_the_tenant_zone() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        // AEDT (+11) in March.
        let (utc, _) = parse_timestamp("2024-03-01 09:30", tz).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-02-29T22:30:00+00:00");
        let (utc, _) = parse_timestamp("2024-07-01T09:30:00.250", tz).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-06-30T23:30:00.250+00:00");
        // A bare date is local midnight.
        let (utc, local) = parse_timestamp("2024-07-01", tz).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-06-30T14:00:00+00:00");
        assert_eq!(local, NaiveDate::from_ymd_opt(2024, 7, 1).unwrap());
    }

    #[test]
    fn dst_gaps_and_overlaps_are_errors() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        // 2024-10-06 02:00 -> 03:00 (gap); 2024-04-07 03:00 -> 02:00 (overlap).
        assert!(parse_timestamp("2024-10-06 02:30:00", tz)
            .unwrap_err()
            .contains("does not exist"));
        assert!(parse_timestamp("2024-04-07 02:30:00", tz)
            .unwrap_err()
            .contains("ambiguous"));
        assert!(parse_timestamp("2024-04-07T02:30:00+10:00", tz).is_ok());
    }

    #[test]
    fn malformed_timestamps_are_errors() {
        let tz: Tz = "UTC".parse().unwrap();
        assert!(parse_timestamp("2024-02-30T10:00:00Z", tz)
            .unwrap_err()
            .contains("not a real date"));
        assert!(parse_timestamp("yesterday", tz)
            .unwrap_err()
            .contains("not a timestamp"));
        assert!(parse_timestamp("2024-03-01T25:00:00Z", tz)
            .unwrap_err()
            .contains("not a timestamp"));
        assert!(parse_timestamp("1709285400", tz)
            .unwrap_err()
            .contains("not a timestamp"));
    }
}
