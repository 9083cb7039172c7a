//! How figures read for a person: grouped numbers, money with its symbol, ratios as percentages,
//! periods in words. One implementation for every surface that writes numbers into prose — the
//! web pages, the alert reasons stored with an alert, and the notifications (in-app, e-mail,
//! Slack) — so "$1,250.00" on the Alerts page is "$1,250.00" in the mail about it.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::alerts::{ChangeMode, RuleKind};
use crate::metrics::builtin;
use crate::period::Bucket;

/// The symbol shown before amounts of `currency` (the code itself when it has no common symbol).
pub fn currency_symbol(currency: &str) -> String {
    match currency {
        "AUD" | "USD" | "CAD" | "NZD" | "SGD" | "HKD" | "MXN" => "$".into(),
        "EUR" => "€".into(),
        "GBP" => "£".into(),
        "JPY" | "CNY" => "¥".into(),
        "INR" => "₹".into(),
        "KRW" => "₩".into(),
        "CHF" => "CHF ".into(),
        other => format!("{other} "),
    }
}

fn group_thousands(int_part: &str) -> String {
    let digits: Vec<char> = int_part.chars().collect();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*c);
    }
    out
}

/// A true minus sign for negative, non-zero values.
fn minus(negative: bool) -> &'static str {
    if negative {
        "−"
    } else {
        ""
    }
}

/// A whole number with thousands grouped: `12,345`.
pub fn count(n: i64) -> String {
    format!(
        "{}{}",
        minus(n < 0),
        group_thousands(&n.unsigned_abs().to_string())
    )
}

/// A measured value as it was recorded, thousands grouped and without trailing zeros:
/// `12,345.5`, `−0.25`, `7`.
pub fn number(d: Decimal) -> String {
    let s = d.normalize().abs().to_string();
    let (int_part, frac) = match s.split_once('.') {
        Some((i, f)) => (i, format!(".{f}")),
        None => (s.as_str(), String::new()),
    };
    let sign = minus(d.is_sign_negative() && !d.is_zero());
    format!("{sign}{}{frac}", group_thousands(int_part))
}

/// `$12,345.60`, `−$3.00`: exact, two decimals, thousands grouped, a real minus sign.
pub fn money(d: Decimal, symbol: &str) -> String {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    let s = r.abs().to_string();
    let (int_part, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let sign = minus(r.is_sign_negative() && !r.is_zero());
    format!("{sign}{symbol}{}.{frac}", group_thousands(int_part))
}

/// Like [`money`] without cents, for dense tables and cards: `$12,346`.
pub fn money_short(d: Decimal, symbol: &str) -> String {
    let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    let s = r.abs().trunc().to_string();
    let sign = minus(r.is_sign_negative() && !r.is_zero());
    format!("{sign}{symbol}{}", group_thousands(&s))
}

/// `1 Mar 2026`.
pub fn date(d: NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

/// The bucket starting at `start` in words: `Mar 2026`, `week of 2 Mar 2026`, `2 Mar 2026`.
pub fn bucket_label(bucket: Bucket, start: NaiveDate) -> String {
    match bucket {
        Bucket::Month => start.format("%b %Y").to_string(),
        Bucket::Week => format!("week of {}", date(start)),
        Bucket::Day => date(start),
    }
}

/// A custom metric as the figures need it: its name in words and its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMetricWords {
    pub name: String,
    pub display_name: String,
    pub unit: Option<String>,
}

/// How the KPIs of one tenant read: amounts in its base currency, ratios as percentages, custom
/// metrics as numbers with their unit, each KPI under its display name.
#[derive(Debug, Clone)]
pub struct Figures {
    symbol: String,
    custom: Vec<CustomMetricWords>,
}

impl Figures {
    pub fn new(base_currency: &str, custom: Vec<CustomMetricWords>) -> Figures {
        Figures {
            symbol: currency_symbol(base_currency),
            custom,
        }
    }

    /// The symbol amounts are written with.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// The KPI's display name (`Revenue`, a custom metric's own), its key when it is unknown
    /// (a custom metric deleted since), `data` for rules without a KPI.
    pub fn kpi_name(&self, kpi: Option<&str>) -> String {
        match kpi {
            None => "data".into(),
            Some(k) => builtin(k)
                .map(|b| b.display_name.to_owned())
                .or_else(|| {
                    self.custom
                        .iter()
                        .find(|c| c.name == k)
                        .map(|c| c.display_name.clone())
                })
                .unwrap_or_else(|| k.to_owned()),
        }
    }

    /// A value of the KPI: money for amounts, a percentage for ratios, a number (with its unit)
    /// for custom metrics.
    pub fn kpi(&self, kpi: Option<&str>, d: Decimal) -> String {
        match kpi.and_then(builtin) {
            Some(k) if k.aggregation.is_none() => crate::figures::percent_text(d),
            Some(_) => money(d, &self.symbol),
            None => {
                let unit = kpi
                    .and_then(|k| self.custom.iter().find(|c| c.name == k))
                    .and_then(|c| c.unit.as_deref())
                    .filter(|u| !u.trim().is_empty());
                match unit {
                    Some(u) => format!("{} {u}", number(d)),
                    None => number(d),
                }
            }
        }
    }

    /// A change of the KPI with its sign: `+$250.00`, `−12.5 %` (a percent change is in percent
    /// already, as change rules measure it).
    pub fn change(&self, kpi: Option<&str>, mode: ChangeMode, d: Decimal) -> String {
        let plus = if d > Decimal::ZERO { "+" } else { "" };
        match mode {
            ChangeMode::Percent => format!("{plus}{} %", number(d)),
            ChangeMode::Absolute => format!("{plus}{}", self.kpi(kpi, d)),
        }
    }

    /// The figure an alert of `kind` judged: a change rule's is the change, a stale rule's the
    /// days since the latest data, every other's the KPI.
    pub fn judged(
        &self,
        kind: RuleKind,
        kpi: Option<&str>,
        mode: Option<ChangeMode>,
        d: Decimal,
    ) -> String {
        match kind {
            RuleKind::Stale => days(d),
            RuleKind::Change => self.change(kpi, mode.unwrap_or(ChangeMode::Percent), d),
            _ => self.kpi(kpi, d),
        }
    }
}

/// `1 day`, `12 days`.
pub fn days(d: Decimal) -> String {
    if d == Decimal::ONE {
        "1 day".into()
    } else {
        format!("{} days", number(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn numbers_are_grouped_and_keep_their_decimals() {
        assert_eq!(number(d("1234567.5000")), "1,234,567.5");
        assert_eq!(number(d("-1234")), "−1,234");
        assert_eq!(number(d("0.0400")), "0.04");
        assert_eq!(number(d("-0.000")), "0");
        assert_eq!(number(d("999")), "999");
        assert_eq!(count(-1234567), "−1,234,567");
    }

    #[test]
    fn money_is_exact_grouped_and_signed() {
        assert_eq!(money(d("1234567.5"), "$"), "$1,234,567.50");
        assert_eq!(money(d("-0.004"), "$"), "$0.00");
        assert_eq!(money(d("-1200"), "€"), "−€1,200.00");
        assert_eq!(money(d("999.995"), "$"), "$1,000.00");
        assert_eq!(money_short(d("-12345.5"), "$"), "−$12,346");
        assert_eq!(currency_symbol("NOK"), "NOK ");
    }

    #[test]
    fn each_kpi_reads_in_its_own_unit() {
        let f = Figures::new(
            "GBP",
            vec![CustomMetricWords {
                name: "billable_hours".into(),
                display_name: "Billable hours".into(),
                unit: Some("h".into()),
            }],
        );
        assert_eq!(f.kpi(Some("revenue"), d("1250.0000")), "£1,250.00");
        assert_eq!(f.kpi(Some("margin"), d("0.309")), "30.9%");
        assert_eq!(f.kpi(Some("billable_hours"), d("37.50")), "37.5 h");
        assert_eq!(f.kpi(Some("gone_metric"), d("3")), "3");
        assert_eq!(f.kpi_name(Some("net_profit")), "Net profit");
        assert_eq!(f.kpi_name(Some("billable_hours")), "Billable hours");
        assert_eq!(f.kpi_name(None), "data");
        assert_eq!(
            f.change(Some("revenue"), ChangeMode::Absolute, d("250")),
            "+£250.00"
        );
        assert_eq!(
            f.change(Some("revenue"), ChangeMode::Percent, d("-12.5")),
            "−12.5 %"
        );
        assert_eq!(
            f.judged(RuleKind::Stale, None, None, d("1")),
            "1 day",
            "days are counted in words"
        );
        assert_eq!(
            bucket_label(Bucket::Week, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()),
            "week of 2 Mar 2026"
        );
    }
}
