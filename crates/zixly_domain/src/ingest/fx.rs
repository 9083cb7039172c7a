//! Exchange-rate files for `zixly fx import`. Two layouts, told apart by the header:
//!
//! - **ECB reference rates** (`eurofxref-hist.csv`): `Date,USD,JPY,...` with one row per day and
//!   one column per currency; a cell is the number of units of that currency per 1 EUR. `N/A` and
//!   empty cells are skipped, and so are columns of currencies that are no longer ISO 4217 codes
//!   (the history has e.g. `CYP`, `HRK`), reported in [`FxFile::skipped_columns`].
//! - **Simple**: `date,currency,rate` (any order, plus an optional `base` column): `rate` units of
//!   `currency` per 1 `base`, and `base` defaults to **EUR**, as in the ECB layout, so both kinds
//!   of file mean the same thing and any pair converts through EUR cross rates.
//!
//! Rates are positive plain decimals with at most 10 places (`numeric(20,10)`). Files are small
//! (the whole ECB history is ~7,000 rows), so they are read whole.

use std::io::Read;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::value::parse_date;
use super::RowError;
use crate::CurrencyCode;

/// One rate: 1 `base` = `rate` `quote` on `date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FxRate {
    date: NaiveDate,
    base: CurrencyCode,
    quote: CurrencyCode,
    rate: Decimal,
}

impl FxRate {
    pub fn date(&self) -> NaiveDate {
        self.date
    }
    pub fn base(&self) -> CurrencyCode {
        self.base
    }
    pub fn quote(&self) -> CurrencyCode {
        self.quote
    }
    pub fn rate(&self) -> Decimal {
        self.rate
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FxLayout {
    Ecb,
    Simple,
}

#[derive(Debug, Clone)]
pub struct FxFile {
    pub layout: FxLayout,
    pub rates: Vec<FxRate>,
    /// ECB columns ignored because their code is not an active ISO 4217 currency.
    pub skipped_columns: Vec<String>,
}

fn parse_rate(s: &str) -> Result<Decimal, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(s.contains('.') && frac.is_empty());
    if !ok {
        return Err(format!(
            "{} is not a positive decimal rate like 1.0876",
            super::shown(s)
        ));
    }
    if frac.len() > 10 || int.trim_start_matches('0').len() > 10 {
        return Err(format!(
            "{} does not fit numeric(20,10) (at most 10 digits on each side of the point)",
            super::shown(s)
        ));
    }
    let d: Decimal = s
        .parse()
        .map_err(|_| format!("{} is not a decimal rate", super::shown(s)))?;
    if d.is_zero() {
        return Err("a rate must be greater than zero".into());
    }
    Ok(d)
}

/// Parses an exchange-rate file; every error names its line (header = line 1).
pub fn parse_fx_csv(input: impl Read) -> Result<FxFile, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        None => {
            return Err(vec![RowError::new(
                1,
                None,
                "the input is empty: expected a header line",
            )])
        }
        Some(Err(e)) => {
            return Err(vec![RowError::new(
                1,
                None,
                format!("cannot read the header: {e}"),
            )])
        }
        Some(Ok(h)) => h
            .iter()
            .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
            .collect(),
    };
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut errors = Vec::new();
    let mut rates = Vec::new();
    let mut rate_lines: Vec<u64> = Vec::new();
    let mut skipped_columns = Vec::new();
    let layout;
    if let (Some(date_col), Some(cur_col), Some(rate_col)) =
        (find("date"), find("currency"), find("rate"))
    {
        layout = FxLayout::Simple;
        let base_col = find("base");
        let unknown: Vec<&str> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                ![Some(date_col), Some(cur_col), Some(rate_col), base_col].contains(&Some(*i))
            })
            .map(|(_, h)| h.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(vec![RowError::new(
                1,
                None,
                format!(
                    "unknown columns {} (accepted: date, currency, rate, base)",
                    unknown.join(", ")
                ),
            )]);
        }
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    errors.push(RowError::new(line, None, format!("cannot read: {e}")));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let cell = |i: usize| record.get(i).unwrap_or("").trim();
            let date = parse_date(cell(date_col)).map_err(|e| RowError::new(line, Some("date"), e));
            let quote = cell(cur_col)
                .parse::<CurrencyCode>()
                .map_err(|e| RowError::new(line, Some("currency"), e.to_string()));
            let base = match base_col.map(cell).filter(|s| !s.is_empty()) {
                None => Ok(CurrencyCode::EUR),
                Some(s) => s
                    .parse::<CurrencyCode>()
                    .map_err(|e| RowError::new(line, Some("base"), e.to_string())),
            };
            let rate = parse_rate(cell(rate_col)).map_err(|e| RowError::new(line, Some("rate"), e));
            match (date, quote, base, rate) {
                (Ok(date), Ok(quote), Ok(base), Ok(rate)) if quote != base => {
                    rates.push(FxRate {
                        date,
                        base,
                        quote,
                        rate,
                    });
                    rate_lines.push(line);
                }
                (Ok(_), Ok(_), Ok(_), Ok(_)) => errors.push(RowError::new(
                    line,
                    Some("currency"),
                    "currency and base are the same",
                )),
                (d, q, b, r) => {
                    errors.extend([d.err(), q.err(), b.err(), r.err()].into_iter().flatten())
                }
            }
        }
    } else if header
        .first()
        .is_some_and(|h| h.eq_ignore_ascii_case("date"))
        && header.len() > 1
    {
        layout = FxLayout::Ecb;
        let mut currencies = Vec::with_capacity(header.len());
        for name in &header[1..] {
            match name.parse::<CurrencyCode>() {
                Ok(c) if c != CurrencyCode::EUR => currencies.push(Some(c)),
                _ => {
                    if !name.is_empty() {
                        skipped_columns.push(name.clone());
                    }
                    currencies.push(None)
                }
            }
        }
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    errors.push(RowError::new(line, None, format!("cannot read: {e}")));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let date = match parse_date(record.get(0).unwrap_or("").trim()) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(RowError::new(line, Some(&header[0]), e));
                    continue;
                }
            };
            for (i, cell) in record.iter().enumerate().skip(1) {
                let cell = cell.trim();
                let Some(Some(quote)) = currencies.get(i - 1) else {
                    continue;
                };
                if cell.is_empty() || cell.eq_ignore_ascii_case("N/A") {
                    continue;
                }
                match parse_rate(cell) {
                    Ok(rate) => {
                        rates.push(FxRate {
                            date,
                            base: CurrencyCode::EUR,
                            quote: *quote,
                            rate,
                        });
                        rate_lines.push(line);
                    }
                    Err(e) => errors.push(RowError::new(line, Some(&header[i]), e)),
                }
            }
        }
    } else {
        return Err(vec![RowError::new(
            1,
            None,
            "unrecognised header: expected the ECB layout (Date,USD,JPY,...) or date,currency,rate",
        )]);
    }
    // A (date, base, quote) given twice is ambiguous: reject the repeats rather than pick one.
    let mut seen = std::collections::HashMap::new();
    for (i, r) in rates.iter().enumerate() {
        if let Some(first) = seen.insert((r.date, r.base, r.quote), i) {
            errors.push(RowError::new(
                rate_lines[i],
                None,
                format!(
                    "{} {}->{} is also on line {}",
                    r.date, r.base, r.quote, rate_lines[first]
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(FxFile {
            layout,
            rates,
            skipped_columns,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ecb_layout_skipping_na_and_retired_currencies() {
        let input =
            "Date,USD,JPY,CYP,HRK,\n2024-03-01,1.0830,162.51,N/A,N/A,\n2024-02-29,1.0813,N/A,,,\n";
        let file = parse_fx_csv(input.as_bytes()).unwrap();
        assert_eq!(file.layout, FxLayout::Ecb);
        assert_eq!(file.skipped_columns, ["CYP", "HRK"]);
        let got: Vec<String> = file
            .rates
            .iter()
            .map(|r| format!("{} {}->{} {}", r.date(), r.base(), r.quote(), r.rate()))
            .collect();
        assert_eq!(
            got,
            [
                "2024-03-01 EUR->USD 1.0830",
                "2024-03-01 EUR->JPY 162.51",
                "2024-02-29 EUR->USD 1.0813"
            ]
        );
    }

    #[test]
    fn reads_the_simple_layout_with_eur_as_default_base() {
        let input = "currency,date,rate\nUSD,2024-03-01,1.083\nAUD,2024-03-01,1.6612\n";
        let file = parse_fx_csv(input.as_bytes()).unwrap();
        assert_eq!(file.layout, FxLayout::Simple);
        assert!(file.rates.iter().all(|r| r.base() == CurrencyCode::EUR));
        let file =
            parse_fx_csv("date,base,currency,rate\n2024-03-01,AUD,USD,0.65\n".as_bytes()).unwrap();
        assert_eq!(file.rates[0].base(), CurrencyCode::AUD);
    }

    #[test]
    fn errors_name_line_and_column() {
        let input = "date,currency,rate\n2024-03-01,USD,0\n2024-02-30,usd,1.2\n2024-03-01,EUR,1\n2024-03-01,USD,1.00000000001\n";
        let errs = parse_fx_csv(input.as_bytes()).unwrap_err();
        let got: Vec<_> = errs
            .iter()
            .map(|e| (e.line, e.column.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                (2, "rate"),
                (3, "date"),
                (3, "currency"),
                (4, "currency"),
                (5, "rate")
            ]
        );
        let errs =
            parse_fx_csv("Date,USD\n2024-03-01,1,08\n2024-03-02,abc\n".as_bytes()).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), [3]);
        let errs =
            parse_fx_csv("date,currency,rate\n2024-03-01,USD,1\n2024-03-01,USD,1\n".as_bytes())
                .unwrap_err();
        assert_eq!(
            (errs[0].line, errs[0].reason.as_str()),
            (3, "2024-03-01 EUR->USD is also on line 2")
        );
        assert!(parse_fx_csv("when,what\n".as_bytes()).unwrap_err()[0]
            .reason
            .contains("unrecognised header"));
        assert!(
            parse_fx_csv("date,currency,rate,note\n".as_bytes()).unwrap_err()[0]
                .reason
                .contains("unknown columns note")
        );
    }
}
