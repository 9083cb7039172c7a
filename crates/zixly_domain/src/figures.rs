//! The one computation and rounding of the ratios people read: margins, win rates, conversion
//! and funnel shares. A ratio is rounded **once**, here, to the precision it is displayed at
//! (0.1 %, i.e. three decimals of the fraction), half away from zero; the API, the CSV exports
//! and every page show that same value, so a margin reads 30.9 % everywhere rather than 30.9 % on
//! one page and 31.0 % on another (rounding 0.30949 to 0.3095 first and then to 31.0 % was the
//! cause). Deltas in percentage points are differences of these rounded values, so they add up
//! with what is displayed.

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimals of a ratio's fraction (`0.309` = 30.9 %).
pub const RATIO_DP: u32 = 3;

/// `part / whole`, rounded to [`RATIO_DP`] decimals and always written with them (`"0.300"`);
/// `None` when `whole` is zero (a margin without revenue is undefined, not 0 %).
pub fn ratio(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole.is_zero() {
        return None;
    }
    part.checked_div(whole).map(|r| {
        let mut r = r.round_dp_with_strategy(RATIO_DP, RoundingStrategy::MidpointAwayFromZero);
        r.rescale(RATIO_DP);
        r
    })
}

/// Net profit over revenue.
pub fn margin(net_profit: Decimal, revenue: Decimal) -> Option<Decimal> {
    ratio(net_profit, revenue)
}

/// Won over closed (won + lost) leads.
pub fn win_rate(won: i64, lost: i64) -> Option<Decimal> {
    ratio(Decimal::from(won), Decimal::from(won + lost))
}

/// How much `current` changed relative to `before`, as a fraction rounded like every ratio
/// (`0.104` = +10.4 %); `None` when `before` is zero (a change from nothing has no percentage).
/// Relative to `|before|`, so a loss that shrinks reads as a rise.
pub fn relative_change(current: Decimal, before: Decimal) -> Option<Decimal> {
    ratio(current - before, before.abs())
}

/// A ratio (a fraction, as [`ratio`] returns it) as people read it: `0.309` → `30.9%`, with a
/// true minus sign (`−4.0%`). Exact: the fraction is not rounded again.
pub fn percent_text(fraction: Decimal) -> String {
    let mut p = (fraction * Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(RATIO_DP - 2, RoundingStrategy::MidpointAwayFromZero);
    p.rescale(RATIO_DP - 2);
    let text = format!("{}%", p.abs());
    if p.is_sign_negative() && !p.is_zero() {
        format!("−{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn a_ratio_is_rounded_once_to_what_is_displayed() {
        // 0.309494…: rounding to four places first (0.3095) and then to 0.1 % showed 31.0 %.
        let m = margin(d("3094.94"), d("10000")).unwrap();
        assert_eq!(m.to_string(), "0.309");
        assert_eq!(percent_text(m), "30.9%");
        assert_eq!(
            margin(d("3095"), d("10000")).unwrap().to_string(),
            "0.310",
            "half away from zero"
        );
        assert_eq!(
            margin(d("3"), d("10")).unwrap().to_string(),
            "0.300",
            "always three places"
        );
        assert_eq!(margin(d("5"), Decimal::ZERO), None);
    }

    #[test]
    fn percent_text_is_exact_and_signed() {
        assert_eq!(percent_text(d("0.309")), "30.9%");
        assert_eq!(percent_text(d("-0.040")), "−4.0%");
        assert_eq!(percent_text(d("1.000")), "100.0%");
        assert_eq!(percent_text(d("-0.0004")), "0.0%", "no minus on a zero");
        assert_eq!(percent_text(Decimal::ZERO), "0.0%");
    }

    #[test]
    fn relative_change_is_a_rounded_ratio_of_the_size_before() {
        assert_eq!(
            relative_change(d("110"), d("100")).unwrap().to_string(),
            "0.100"
        );
        assert_eq!(
            relative_change(d("-50"), d("-100")).unwrap().to_string(),
            "0.500"
        );
        assert_eq!(relative_change(d("1"), Decimal::ZERO), None);
    }

    #[test]
    fn win_rate_of_closed_leads() {
        assert_eq!(win_rate(2, 1).unwrap().to_string(), "0.667");
        assert_eq!(win_rate(0, 0), None);
    }
}
