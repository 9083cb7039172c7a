//! Xero's documents as the Accounting API serves them (the fields the contract in
//! `contracts/xero.json` documents and the mapping reads), and their dates.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

/// Largest page Xero serves.
pub const PAGE_SIZE: usize = 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub tenant_id: String,
    pub tenant_type: String,
    pub tenant_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contact {
    #[serde(rename = "ContactID")]
    pub contact_id: String,
    pub name: Option<String>,
    pub contact_status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactRef {
    #[serde(rename = "ContactID")]
    pub contact_id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tracking {
    pub name: String,
    pub option: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LineItem {
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub line_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub tax_amount: Option<Decimal>,
    #[serde(default)]
    pub tracking: Vec<Tracking>,
}

/// An `/Invoices` item (Type ACCREC|ACCPAY), or a `/CreditNotes` item (Type
/// ACCRECCREDIT|ACCPAYCREDIT, `CreditNoteID` read into `invoice_id`): both carry the same
/// fields the mapping needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(rename = "InvoiceID", alias = "CreditNoteID")]
    pub invoice_id: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub status: String,
    pub contact: ContactRef,
    pub date: Option<String>,
    pub date_string: Option<String>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub sub_total: Option<Decimal>,
    pub currency_code: Option<String>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub currency_rate: Option<Decimal>,
    #[serde(default)]
    pub line_amount_types: Option<String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(rename = "UpdatedDateUTC")]
    pub updated_date_utc: Option<String>,
}

/// A `/BankTransactions` item (Type RECEIVE|SPEND|…-OVERPAYMENT|-PREPAYMENT|-TRANSFER; Status
/// AUTHORISED|DELETED|VOIDED).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BankTransaction {
    #[serde(rename = "BankTransactionID")]
    pub bank_transaction_id: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub contact: Option<ContactRef>,
    pub date: Option<String>,
    pub date_string: Option<String>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub currency_rate: Option<Decimal>,
    #[serde(default)]
    pub line_amount_types: Option<String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(rename = "UpdatedDateUTC")]
    pub updated_date_utc: Option<String>,
}

/// The organisation (`GET /Organisation`): what the mapping needs of its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Organisation {
    pub name: Option<String>,
    /// ISO 4217 code; every amount converted with a document's `CurrencyRate` is in it.
    pub base_currency: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OrganisationEnvelope {
    #[serde(default)]
    pub(crate) organisations: Vec<Organisation>,
}

/// Prefix of a bank transaction's document id in contributions (`bt:<BankTransactionID>`).
pub const BANK_TRANSACTION_PREFIX: &str = "bt:";

/// Prefix of a credit note's document id in contributions (`cn:<CreditNoteID>`).
pub const CREDIT_NOTE_PREFIX: &str = "cn:";

impl Invoice {
    /// A credit note (`ACCRECCREDIT`/`ACCPAYCREDIT`), not an invoice or bill.
    pub fn is_credit_note(&self) -> bool {
        self.kind.ends_with("CREDIT")
    }

    /// The id its contributions are stored under (credit notes prefixed, see
    /// [`CREDIT_NOTE_PREFIX`]).
    pub fn document_id(&self) -> String {
        if self.is_credit_note() {
            format!("{CREDIT_NOTE_PREFIX}{}", self.invoice_id)
        } else {
            self.invoice_id.clone()
        }
    }

    /// `UpdatedDateUTC`, parsed.
    pub fn updated(&self) -> Option<DateTime<Utc>> {
        self.updated_date_utc.as_deref().and_then(parse_ms_date)
    }
}

impl BankTransaction {
    /// The id its contributions are stored under.
    pub fn document_id(&self) -> String {
        format!("{BANK_TRANSACTION_PREFIX}{}", self.bank_transaction_id)
    }
}

/// What a payment settles: its `Invoice`, `CreditNote`, `Prepayment` or `Overpayment`. Every
/// field is optional in the spec (the ARCREDITPAYMENT example carries the credit note under
/// `Invoice` with Type ACCRECCREDIT).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentTarget {
    #[serde(
        default,
        rename = "InvoiceID",
        alias = "CreditNoteID",
        alias = "PrepaymentID",
        alias = "OverpaymentID"
    )]
    pub id: Option<String>,
    #[serde(default, rename = "Type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub contact: Option<ContactRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Payment {
    #[serde(rename = "PaymentID")]
    pub payment_id: String,
    pub status: String,
    pub date: Option<String>,
    #[serde(deserialize_with = "de_dec")]
    pub amount: Decimal,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub currency_rate: Option<Decimal>,
    /// ACCRECPAYMENT, ACCPAYPAYMENT, ARCREDITPAYMENT, APCREDITPAYMENT, AR/AP PREPAYMENT- and
    /// OVERPAYMENTPAYMENT.
    #[serde(default)]
    pub payment_type: Option<String>,
    #[serde(default)]
    pub invoice: Option<PaymentTarget>,
    #[serde(default)]
    pub credit_note: Option<PaymentTarget>,
    #[serde(default)]
    pub prepayment: Option<PaymentTarget>,
    #[serde(default)]
    pub overpayment: Option<PaymentTarget>,
    #[serde(rename = "UpdatedDateUTC")]
    pub updated_date_utc: Option<String>,
}

/// What a payment does to cash, from its target and `PaymentType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    /// A customer paid a sales invoice (cash in).
    Receipt,
    /// We paid a bill (cash out, to the bill's tracked clients).
    BillPayment,
    /// We refunded a customer: a sales credit note, prepayment or overpayment paid out.
    CustomerRefund,
    /// Not counted (supplier refunds on bill credit notes / supplier prepayments).
    Other,
}

impl Payment {
    /// The settled document (the first of `Invoice`, `CreditNote`, `Prepayment`, `Overpayment`).
    pub fn target(&self) -> Option<&PaymentTarget> {
        [
            &self.invoice,
            &self.credit_note,
            &self.prepayment,
            &self.overpayment,
        ]
        .into_iter()
        .find_map(|t| t.as_ref())
    }

    pub fn kind(&self) -> PaymentKind {
        let target_kind = self.target().and_then(|t| t.kind.as_deref());
        match (self.payment_type.as_deref(), target_kind) {
            (Some("ACCRECPAYMENT"), _) | (None, Some("ACCREC")) => PaymentKind::Receipt,
            (Some("ACCPAYPAYMENT"), _) | (None, Some("ACCPAY")) => PaymentKind::BillPayment,
            (Some("ARCREDITPAYMENT" | "ARPREPAYMENTPAYMENT" | "AROVERPAYMENTPAYMENT"), _)
            | (
                None,
                Some(
                    "ACCRECCREDIT"
                    | "RECEIVE-PREPAYMENT"
                    | "RECEIVE-OVERPAYMENT"
                    | "ARPREPAYMENT"
                    | "AROVERPAYMENT",
                ),
            ) => PaymentKind::CustomerRefund,
            _ => PaymentKind::Other,
        }
    }

    /// The InvoiceID of the bill a bill payment pays.
    pub fn bill_id(&self) -> Option<&str> {
        (self.kind() == PaymentKind::BillPayment)
            .then(|| self.invoice.as_ref()?.id.as_deref())
            .flatten()
    }

    pub(crate) fn contact_id(&self) -> Option<&str> {
        self.target()?
            .contact
            .as_ref()
            .map(|c| c.contact_id.as_str())
    }
}

/// Xero amounts are JSON numbers. Parse them from their shortest decimal text (serde_json prints
/// an f64 as the shortest string that round-trips, so `0.8` stays `0.8`); strings are accepted too.
fn de_opt_dec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Decimal::from_str_exact(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(D::Error::custom),
        Some(serde_json::Value::String(s)) => s.trim().parse().map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

fn de_dec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    de_opt_dec(d)?.ok_or_else(|| serde::de::Error::custom("missing amount"))
}

/// Parses `/Date(1539993600000+0000)/` (milliseconds may be negative; offset optional) as an
/// instant.
pub fn parse_ms_date(s: &str) -> Option<DateTime<Utc>> {
    let inner = s.trim().strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner[1..].find(['+', '-']).map_or(inner.len(), |i| i + 1);
    let ms: i64 = inner[..end].parse().ok()?;
    DateTime::from_timestamp_millis(ms)
}

/// The calendar date of a document: `DateString` when present (`2018-10-20T00:00:00`), else the
/// `/Date()/` value read as a date (it encodes midnight of the calendar date; the offset is not a
/// zone conversion to apply).
pub fn document_date(date: Option<&str>, date_string: Option<&str>) -> Option<NaiveDate> {
    if let Some(ds) = date_string {
        if let Ok(d) = NaiveDate::parse_from_str(ds.get(..10)?, "%Y-%m-%d") {
            return Some(d);
        }
    }
    parse_ms_date(date?).map(|dt| dt.date_naive())
}

/// `If-Modified-Since` value: UTC, whole seconds, rounded DOWN (contracts/xero.json
/// `incremental.rounding`): Xero compares to the second, so rounding up would skip a change made
/// later within the cursor's own second; rounding down re-reads that second, which the
/// per-document contributions make harmless.
pub fn if_modified_since(since: DateTime<Utc>) -> String {
    since.format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pagination {
    pub(crate) page_count: Option<usize>,
    pub(crate) item_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Envelope {
    #[serde(default, rename = "pagination")]
    pub(crate) pagination: Option<Pagination>,
    #[serde(default)]
    pub(crate) contacts: Vec<Contact>,
    #[serde(default)]
    pub(crate) invoices: Vec<Invoice>,
    #[serde(default)]
    pub(crate) credit_notes: Vec<Invoice>,
    #[serde(default)]
    pub(crate) payments: Vec<Payment>,
    #[serde(default)]
    pub(crate) bank_transactions: Vec<BankTransaction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_dates() {
        assert_eq!(
            parse_ms_date("/Date(1539993600000+0000)/")
                .unwrap()
                .to_rfc3339(),
            "2018-10-20T00:00:00+00:00"
        );
        assert_eq!(
            parse_ms_date("/Date(1552326816230)/")
                .unwrap()
                .timestamp_millis(),
            1552326816230
        );
        assert_eq!(
            parse_ms_date("/Date(-86400000)/")
                .unwrap()
                .date_naive()
                .to_string(),
            "1969-12-31"
        );
        assert!(parse_ms_date("2018-10-20").is_none());
        assert_eq!(
            document_date(Some("/Date(1539993600000+1300)/"), None)
                .unwrap()
                .to_string(),
            "2018-10-20"
        );
        assert_eq!(
            document_date(Some("/Date(0)/"), Some("2018-10-21T00:00:00"))
                .unwrap()
                .to_string(),
            "2018-10-21"
        );
    }

    #[test]
    fn if_modified_since_rounds_down_to_whole_seconds() {
        // Rounding up would skip a document changed at 00:00:00.900, after the cursor.
        let t = DateTime::parse_from_rfc3339("2009-11-12T00:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(if_modified_since(t), "2009-11-12T00:00:00");
    }
}
