//! Hand-written JSON for the hot list responses: pages of raw series rows (financials, lead
//! events, metric values), the API's most requested reads.
//!
//! Why not `serde_json` with the derived `Serialize`: on the API benchmark a 90-day page spent
//! about a fifth of the server's own CPU in serde plumbing — every key passed through the string
//! escaper, every `Decimal` went through `rust_decimal`'s general formatter (u96 division loops).
//! Here keys are written as constants, values we format ourselves (UUIDs, dates, decimals,
//! integers) are written without escaping because they are ASCII digits and separators, and
//! only free text (names, ids from providers, metadata) goes through `serde_json`'s escaper.
//!
//! The derived `Serialize` stays the reference: the OpenAPI schema comes from the same structs,
//! and the tests check byte-for-byte equality with `serde_json::to_vec` on rows with quotes,
//! control characters, non-ASCII text, nulls, nested metadata and decimals of every sign and scale.
//! Each `write_json` destructures its view without `..` and hands every binding to
//! `write_object!`: a new field fails to compile (missing in the pattern) or to pass clippy
//! (bound but unused) until it is written.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::json_time;
use super::series::{FinancialView, LeadEventView, MetricView};
use super::Page;

/// A view that writes its own JSON object, identical to its derived `Serialize` output.
pub(crate) trait WriteJson {
    /// A guess of one object's size, to size the response buffer once.
    const TYPICAL_LEN: usize;
    fn write_json(&self, out: &mut JsonOut);
}

/// An output buffer with the few writers the views need. Callers write `{`, keys, values, `,`
/// and `}` in order; nothing here checks the structure (the equality tests do).
pub(crate) struct JsonOut {
    buf: Vec<u8>,
}

impl JsonOut {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        JsonOut {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Punctuation and key text: `raw(b"{\"id\":")`. Only for constants that need no escaping.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A JSON string from free text, escaped exactly as `serde_json` escapes it.
    pub(crate) fn str(&mut self, s: &str) {
        serde_json::to_writer(&mut self.buf, s).expect("writing a str into a Vec cannot fail");
    }

    pub(crate) fn opt_str(&mut self, s: &Option<String>) {
        match s {
            Some(s) => self.str(s),
            None => self.raw(b"null"),
        }
    }

    /// Text known to need no escaping (digits, hex, `-`, `:`, `.`), quoted.
    fn quoted_ascii(&mut self, s: &str) {
        debug_assert!(s
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    pub(crate) fn uuid(&mut self, id: &Uuid) {
        self.quoted_ascii(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    }

    pub(crate) fn date(&mut self, d: &NaiveDate) {
        match json_time::format_date(*d, &mut [0u8; 10]) {
            Some(text) => self.quoted_ascii(text),
            None => self.serde(d),
        }
    }

    pub(crate) fn utc(&mut self, t: &DateTime<Utc>) {
        match json_time::format_utc(t, &mut [0u8; 30]) {
            Some(text) => self.quoted_ascii(text),
            None => self.serde(t),
        }
    }

    /// A decimal as its exact text in quotes, as `rust_decimal` prints it (`"-0.50"`).
    pub(crate) fn decimal(&mut self, d: &Decimal) {
        // mantissa × 10^-scale; the digits of |mantissa| with a point `scale` digits from the end.
        let mantissa = d.mantissa();
        let scale = d.scale() as usize;
        let mut itoa = itoa::Buffer::new();
        let digits = itoa.format(mantissa.unsigned_abs()).as_bytes();
        self.buf.push(b'"');
        // The sign flag, not `mantissa < 0`: rust_decimal prints a negative zero as `-0.00`.
        if d.is_sign_negative() {
            self.buf.push(b'-');
        }
        if scale == 0 {
            self.buf.extend_from_slice(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            self.buf.extend_from_slice(int);
            self.buf.push(b'.');
            self.buf.extend_from_slice(frac);
        } else {
            self.buf.extend_from_slice(b"0.");
            self.buf
                .extend(std::iter::repeat_n(b'0', scale - digits.len()));
            self.buf.extend_from_slice(digits);
        }
        self.buf.push(b'"');
    }

    pub(crate) fn opt_decimal(&mut self, d: &Option<Decimal>) {
        match d {
            Some(d) => self.decimal(d),
            None => self.raw(b"null"),
        }
    }

    pub(crate) fn opt_json(&mut self, v: &Option<serde_json::Value>) {
        match v {
            Some(v) => self.serde(v),
            None => self.raw(b"null"),
        }
    }

    fn serde<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut self.buf, v)
            .expect("these values always serialize (string keys, finite numbers)");
    }
}

/// `{"data":[...],"next_cursor":...}` as an `application/json` response: the same bytes `Json(page)`
/// would send.
pub(crate) fn page_response<T: WriteJson>(page: &Page<T>) -> Response {
    let mut out = JsonOut::with_capacity(64 + page.data.len() * T::TYPICAL_LEN);
    write_page(page, &mut out);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out.into_bytes(),
    )
        .into_response()
}

fn write_page<T: WriteJson>(page: &Page<T>, out: &mut JsonOut) {
    out.raw(b"{\"data\":[");
    for (i, item) in page.data.iter().enumerate() {
        if i > 0 {
            out.raw(b",");
        }
        item.write_json(out);
    }
    out.raw(b"],\"next_cursor\":");
    out.opt_str(&page.next_cursor);
    out.raw(b"}");
}

/// Writes `{"a":…,"b":…}` from the bindings `a`, `b`, … with the named `JsonOut` writers, keys
/// spelled as the bindings (= the struct's field names, since serde renames nothing here).
macro_rules! write_object {
    ($out:ident; $first:ident: $first_writer:ident $(, $field:ident: $writer:ident)* $(,)?) => {{
        $out.raw(concat!("{\"", stringify!($first), "\":").as_bytes());
        $out.$first_writer($first);
        $(
            $out.raw(concat!(",\"", stringify!($field), "\":").as_bytes());
            $out.$writer($field);
        )*
        $out.raw(b"}");
    }};
}

impl WriteJson for FinancialView {
    const TYPICAL_LEN: usize = 240;

    fn write_json(&self, out: &mut JsonOut) {
        let FinancialView {
            id,
            record_date,
            revenue,
            expenses,
            net_profit,
            cash_flow,
            currency,
            source_system,
            external_id,
            metadata,
        } = self;
        write_object!(out; id: uuid, record_date: date, revenue: decimal, expenses: decimal,
            net_profit: decimal, cash_flow: decimal, currency: str, source_system: str,
            external_id: opt_str, metadata: opt_json);
    }
}

impl WriteJson for LeadEventView {
    const TYPICAL_LEN: usize = 260;

    fn write_json(&self, out: &mut JsonOut) {
        let LeadEventView {
            id,
            event_date,
            lead_id,
            stage,
            value,
            currency,
            status,
            source_system,
            external_id,
            metadata,
        } = self;
        write_object!(out; id: uuid, event_date: utc, lead_id: str, stage: str,
            value: opt_decimal, currency: str, status: str, source_system: str,
            external_id: opt_str, metadata: opt_json);
    }
}

impl WriteJson for MetricView {
    const TYPICAL_LEN: usize = 200;

    fn write_json(&self, out: &mut JsonOut) {
        let MetricView {
            id,
            metric_name,
            metric_value,
            unit,
            record_date,
            source_system,
            metadata,
        } = self;
        write_object!(out; id: uuid, metric_name: str, metric_value: decimal, unit: opt_str,
            record_date: utc, source_system: str, metadata: opt_json);
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{Duration, TimeZone};
    use serde::Serialize;

    use super::*;

    /// Free text that exercises every escaping rule.
    const TEXTS: [&str; 8] = [
        "AUD",
        "",
        "quote \" backslash \\ slash /",
        "control \u{0001}\u{001f} tab\t newline\n cr\r",
        "non-ASCII: café, 東京, 🚀",
        "\u{2028}\u{2029} separators",
        "<script>alert(1)</script>",
        "del \u{007f}",
    ];

    fn decimals() -> Vec<Decimal> {
        let mut out: Vec<Decimal> = [
            "0",
            "0.00",
            "-0.00",
            "1",
            "-1",
            "0.5",
            "-0.05",
            "0.0001",
            "15000.00",
            "-15000.00",
            "123456789.1234",
            "0.0000000000000000000000000001",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "100",
            "1e3",
            "10.10",
        ]
        .iter()
        .map(|s| {
            Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .unwrap()
        })
        .collect();
        // Negative zero, as a database `-0.00` can decode.
        let mut negative_zero = Decimal::new(0, 2);
        negative_zero.set_sign_negative(true);
        out.push(negative_zero);
        // A deterministic walk over mantissas and scales.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mantissa = i128::from(x as i64) * i128::from((x >> 40) as u16);
            out.push(Decimal::from_i128_with_scale(mantissa, (x % 29) as u32));
        }
        out
    }

    fn same<T: WriteJson + Serialize>(value: &T) {
        let mut out = JsonOut::with_capacity(0);
        value.write_json(&mut out);
        let fast = String::from_utf8(out.into_bytes()).unwrap();
        let serde = serde_json::to_string(value).unwrap();
        assert_eq!(fast, serde);
    }

    fn metadata(i: usize) -> Option<serde_json::Value> {
        match i % 3 {
            0 => None,
            1 => Some(serde_json::json!({"k": TEXTS[i % TEXTS.len()], "n": [1, 2.5, null, true]})),
            _ => Some(serde_json::json!("just a string")),
        }
    }

    #[test]
    fn decimals_are_written_as_rust_decimal_prints_them() {
        for d in decimals() {
            let mut out = JsonOut::with_capacity(0);
            out.decimal(&d);
            assert_eq!(
                String::from_utf8(out.into_bytes()).unwrap(),
                serde_json::to_string(&d).unwrap(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn every_view_writes_what_serde_writes() {
        let base = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
        let ds = decimals();
        for i in 0..ds.len() {
            let text = |k: usize| TEXTS[(i + k) % TEXTS.len()].to_string();
            let when = base + Duration::milliseconds(i as i64 * 7_919_113);
            same(&FinancialView {
                id: Uuid::from_u128(i as u128 * 0x9e37_79b9_7f4a_7c15),
                record_date: when.date_naive(),
                revenue: ds[i],
                expenses: ds[(i + 1) % ds.len()],
                net_profit: ds[(i + 2) % ds.len()],
                cash_flow: ds[(i + 3) % ds.len()],
                currency: text(0),
                source_system: text(1),
                external_id: (i % 2 == 0).then(|| text(2)),
                metadata: metadata(i),
            });
            same(&LeadEventView {
                id: Uuid::from_u128(i as u128),
                event_date: when,
                lead_id: text(3),
                stage: text(4),
                value: (i % 4 != 0).then_some(ds[i]),
                currency: text(5),
                status: text(6),
                source_system: text(7),
                external_id: (i % 3 == 0).then(|| text(1)),
                metadata: metadata(i + 1),
            });
            same(&MetricView {
                id: Uuid::from_u128(u128::MAX - i as u128),
                metric_name: text(2),
                metric_value: ds[i],
                unit: (i % 2 == 1).then(|| text(3)),
                record_date: when,
                source_system: text(4),
                metadata: metadata(i + 2),
            });
        }
        // Dates and instants chrono formats itself (years beyond 9999) go through serde.
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        same(&MetricView {
            id: Uuid::nil(),
            metric_name: "m".into(),
            metric_value: Decimal::ONE,
            unit: None,
            record_date: far,
            source_system: "csv".into(),
            metadata: None,
        });
    }

    #[test]
    fn a_page_is_written_as_serde_writes_it() {
        let row = |n: i64| MetricView {
            id: Uuid::from_u128(n as u128),
            metric_name: "delivery \"days\"".into(),
            metric_value: Decimal::new(n, 2),
            unit: Some("days".into()),
            record_date: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            source_system: "csv".into(),
            metadata: None,
        };
        for page in [
            Page {
                data: vec![],
                next_cursor: None,
            },
            Page {
                data: vec![row(1)],
                next_cursor: Some("eyJhIjoxfQ".into()),
            },
            Page {
                data: (0..5).map(row).collect(),
                next_cursor: None,
            },
        ] {
            let mut out = JsonOut::with_capacity(0);
            write_page(&page, &mut out);
            assert_eq!(
                String::from_utf8(out.into_bytes()).unwrap(),
                serde_json::to_string(&page).unwrap()
            );
        }
    }
}
