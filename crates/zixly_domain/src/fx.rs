//! Currency conversion through dated reference rates: the rule the reports apply in Rust. The
//! loader applies the same rule in SQL (`zixly_fx_rate`, migrations/0003_ingest.sql);
//! `zixly_db/tests/it/fx_agreement.rs` proves the two agree on a generated table of cases.
//!
//! A rate row says "1 `base` = `rate` `quote` on `date`" (the ECB layout: base EUR). A conversion
//! from X to B on day D uses, in this order, a direct rate X→B, the inverse of B→X, or the cross
//! rate through EUR, `rate(EUR→B) / rate(EUR→X)`. Each rate is the one of day D or, failing that,
//! the latest one before D within [`FX_LOOKBACK_DAYS`] days. A missing rate is `None`, never 1.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

/// How far back a missing day's rate may be taken from.
pub const FX_LOOKBACK_DAYS: u64 = 7;

/// Dated rates for a set of currencies, loaded once per report.
#[derive(Debug, Default, Clone)]
pub struct FxTable {
    /// (base, quote) → date → rate.
    rates: HashMap<(String, String), BTreeMap<NaiveDate, Decimal>>,
}

/// The only pivot of cross rates (the ECB reference base), as in the loader.
pub const PIVOT: &str = "EUR";

impl FxTable {
    /// Builds a table from `(date, base, quote, rate)` rows (tests build one by hand).
    pub fn from_rows(rows: impl IntoIterator<Item = (NaiveDate, String, String, Decimal)>) -> Self {
        let mut t = FxTable::default();
        for (date, base, quote, rate) in rows {
            t.rates.entry((base, quote)).or_default().insert(date, rate);
        }
        t
    }

    fn rate(&self, base: &str, quote: &str, date: NaiveDate) -> Option<Decimal> {
        let series = self.rates.get(&(base.to_string(), quote.to_string()))?;
        let earliest = date - Days::new(FX_LOOKBACK_DAYS);
        series.range(earliest..=date).next_back().map(|(_, r)| *r)
    }

    /// The factor that converts 1 unit of `from` into `to` on `date`, if the rates allow it.
    pub fn factor(&self, from: &str, to: &str, date: NaiveDate) -> Option<Decimal> {
        if from == to {
            return Some(Decimal::ONE);
        }
        if let Some(r) = self.rate(from, to, date) {
            return Some(r);
        }
        if let Some(r) = self.rate(to, from, date) {
            return Decimal::ONE.checked_div(r);
        }
        let to_rate = if to == PIVOT {
            Decimal::ONE
        } else {
            self.rate(PIVOT, to, date)?
        };
        let from_rate = if from == PIVOT {
            Decimal::ONE
        } else {
            self.rate(PIVOT, from, date)?
        };
        to_rate.checked_div(from_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn ecb() -> FxTable {
        FxTable::from_rows([
            (d("2025-01-03"), "EUR".into(), "USD".into(), dec("1.0000")),
            (d("2025-01-03"), "EUR".into(), "AUD".into(), dec("1.6000")),
            (d("2025-01-06"), "EUR".into(), "USD".into(), dec("1.2500")),
            (d("2025-01-06"), "EUR".into(), "AUD".into(), dec("1.5000")),
        ])
    }

    #[test]
    fn cross_rates_go_through_eur_and_fall_back_to_the_last_published_day() {
        let fx = ecb();
        // Friday: 1 USD = 1.6 / 1.0 AUD.
        assert_eq!(fx.factor("USD", "AUD", d("2025-01-03")), Some(dec("1.6")));
        // Sunday: Friday's rates.
        assert_eq!(fx.factor("USD", "AUD", d("2025-01-05")), Some(dec("1.6")));
        // Monday: 1.5 / 1.25.
        assert_eq!(fx.factor("USD", "AUD", d("2025-01-06")), Some(dec("1.2")));
        // Direct and inverse legs.
        assert_eq!(fx.factor("EUR", "AUD", d("2025-01-06")), Some(dec("1.5")));
        assert_eq!(
            fx.factor("AUD", "EUR", d("2025-01-06"))
                .map(|f| f.round_dp(6)),
            Some(dec("0.666667"))
        );
        assert_eq!(fx.factor("AUD", "AUD", d("1999-01-01")), Some(Decimal::ONE));
    }

    #[test]
    fn missing_rates_are_missing_not_one() {
        let fx = ecb();
        assert_eq!(
            fx.factor("USD", "AUD", d("2025-01-02")),
            None,
            "before the first rate"
        );
        assert_eq!(
            fx.factor("USD", "AUD", d("2025-01-14")),
            None,
            "beyond the look-back"
        );
        assert_eq!(
            fx.factor("GBP", "AUD", d("2025-01-06")),
            None,
            "unknown currency"
        );
        // Cross rates go through EUR only, as the loader's `zixly_fx_rate`.
        let usd_based = FxTable::from_rows([
            (d("2025-01-06"), "USD".into(), "GBP".into(), dec("0.8")),
            (d("2025-01-06"), "USD".into(), "AUD".into(), dec("1.6")),
        ]);
        assert_eq!(usd_based.factor("GBP", "AUD", d("2025-01-06")), None);
        assert_eq!(
            usd_based.factor("USD", "AUD", d("2025-01-06")),
            Some(dec("1.6"))
        );
    }
}
