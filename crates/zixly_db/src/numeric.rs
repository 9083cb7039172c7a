//! Decoding PostgreSQL `numeric` values into `Decimal` quickly.
//!
//! `rust_decimal`'s own `FromSql` builds the value one base-10000 group at a time with `Decimal`
//! multiplications and, for each fractional group, a `Decimal` division, after copying the groups
//! into two vectors. On the API benchmark that was about a seventh of the server's CPU for a page
//! of financial rows (four amounts per row). Money columns here are `numeric(p, 2)` or
//! `numeric(p, 4)`: their groups fit an integer mantissa directly, so [`Numeric`] accumulates
//! them into a `u128` and builds the `Decimal` once. Anything outside that fast path (more than
//! 28 decimal places, a mantissa beyond 96 bits, NaN or infinities) is handed to `rust_decimal`,
//! so the result — or the error — is always the one `rust_decimal` gives. The tests compare both
//! on values decoded by a real server.

use postgres_types::{FromSql, Type};
use rust_decimal::Decimal;
use tokio_postgres::Row;

/// A `numeric` column read through the fast path; `.0` is the value. Public so that the
/// integration tests can compare it with `rust_decimal`'s decoding on a real server.
pub struct Numeric(pub Decimal);

/// Largest mantissa a `Decimal` holds: 2^96 − 1.
const MAX_MANTISSA: u128 = (1 << 96) - 1;

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match fast_decode(raw) {
            Some(d) => Ok(Numeric(d)),
            None => Decimal::from_sql(ty, raw).map(Numeric),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

/// The binary `numeric` format: `ndigits`, `weight`, `sign`, `dscale` (all 16-bit, big-endian),
/// then `ndigits` base-10000 groups; the value is Σ group[i] × 10000^(weight − i), printed with
/// `dscale` decimal places. `None` hands the value to `rust_decimal`.
fn fast_decode(raw: &[u8]) -> Option<Decimal> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*raw.get(2 * i)?, *raw.get(2 * i + 1)?]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = word(3)?;
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None, // NaN, ±Infinity
    };
    if u32::from(dscale) > Decimal::MAX_SCALE || raw.len() != 8 + 2 * ndigits {
        return None;
    }
    // mantissa = value × 10^dscale, an integer for a well-formed numeric.
    let mut mantissa: u128 = 0;
    for i in 0..ndigits {
        let group = u128::from(word(4 + i)?);
        if group > 9999 {
            return None;
        }
        let exponent = 4 * (weight - i as i32) + i32::from(dscale);
        if exponent >= 0 {
            let scaled = group.checked_mul(10u128.checked_pow(exponent as u32)?)?;
            mantissa = mantissa.checked_add(scaled)?;
        } else if exponent > -4 {
            // The last group holds digits past dscale; PostgreSQL sends them as zeros.
            let divisor = 10u128.pow((-exponent) as u32);
            if group % divisor != 0 {
                return None;
            }
            mantissa = mantissa.checked_add(group / divisor)?;
        } else if group != 0 {
            return None;
        }
    }
    if mantissa > MAX_MANTISSA {
        return None;
    }
    let mut d = Decimal::from_i128_with_scale(mantissa as i128, u32::from(dscale));
    d.set_sign_negative(negative);
    Some(d)
}

/// Column `idx` of `row`, a `numeric`, as a `Decimal`.
pub(crate) fn numeric(row: &Row, idx: usize) -> Decimal {
    row.get::<_, Numeric>(idx).0
}

/// Column `idx` of `row`, a nullable `numeric`.
pub(crate) fn opt_numeric(row: &Row, idx: usize) -> Option<Decimal> {
    row.get::<_, Option<Numeric>>(idx).map(|n| n.0)
}
