//! Xero Accounting API: `/connections`, contacts, invoices (ACCREC sales, ACCPAY bills), credit notes,
//! payments and bank transactions, with `page` paging and `If-Modified-Since`; normalized into per-document
//! contributions to a client's day.
//!
//! Mapping (issue 5): `client_id` = ContactID. Revenue = sales invoices (ACCREC, AUTHORISED or
//! PAID) SubTotal. Expenses = bill lines (ACCPAY, AUTHORISED or PAID) tracked to the client through
//! the tracking category named in the settings (default `Client`; the option is the contact's name).
//! Cash flow = payments received (ACCREC, for the invoice's contact) minus payments made (ACCPAY,
//! for the clients the bill's lines are tracked to, pro rata by line amount).
//! Bank transactions (`/BankTransactions`, AUTHORISED): SPEND lines tracked to a client are that
//! client's expenses (ex-tax, like bill lines) and negative cash flow (the gross line: what left
//! the bank); RECEIVE lines are positive cash flow of the client they are tracked to, else of the
//! transaction's contact. RECEIVE-/SPEND-PREPAYMENT and -OVERPAYMENT move cash the same way
//! (cash when received or paid, never an expense); transfers count nothing. Their
//! document ids carry the [`BANK_TRANSACTION_PREFIX`] so they cannot collide with invoices or
//! payments in the contribution store.
//! Credit notes (`/CreditNotes`, ids `cn:<CreditNoteID>`): ACCRECCREDIT is negative revenue of its
//! contact, ACCPAYCREDIT negative expenses of its tracked lines' clients. Payments may settle a
//! credit note, prepayment or overpayment instead of an invoice (`Invoice` is optional): a refund
//! to a customer (ARCREDITPAYMENT, AR prepayment/overpayment payments) is negative cash flow of
//! the customer; supplier refunds are not attributed.
//! VOIDED/DELETED documents contribute nothing: their earlier contribution must be removed.
//! Foreign-currency amounts are converted with the document's own `CurrencyRate`
//! (base = amount / rate) into the organisation's base currency ([`XeroClient::organisation`]).
//! `Date` is a calendar date in the organisation's zone: never shifted.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_crypto::SecretString;

use crate::http::{classify, send_raw};
use crate::pace::{header_u64, Pacer};
use crate::{ConnectorError, ConnectorResult};

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
struct OrganisationEnvelope {
    #[serde(default)]
    organisations: Vec<Organisation>,
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

    fn contact_id(&self) -> Option<&str> {
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

/// Wait after a 429 for the daily limit when Xero sends no `Retry-After`.
pub const DAY_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A failed Xero answer. A 429 names the exhausted limit in `X-Rate-Limit-Problem`
/// (`minute`, `appminute`, `day`): `Retry-After` (seconds) is honoured for every one; without it
/// a daily limit waits [`DAY_LIMIT_WAIT`] instead of the generic default, since retrying within
/// the minute only burns the next attempts.
pub fn error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ConnectorError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS
        && !headers.contains_key(reqwest::header::RETRY_AFTER)
        && headers
            .get("x-rate-limit-problem")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("day"))
    {
        return ConnectorError::RateLimited {
            retry_after: DAY_LIMIT_WAIT,
        };
    }
    classify(status, headers, body)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    page_count: Option<usize>,
    item_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    #[serde(default, rename = "pagination")]
    pagination: Option<Pagination>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    invoices: Vec<Invoice>,
    #[serde(default)]
    credit_notes: Vec<Invoice>,
    #[serde(default)]
    payments: Vec<Payment>,
    #[serde(default)]
    bank_transactions: Vec<BankTransaction>,
}

/// A client for one organisation.
pub struct XeroClient {
    http: reqwest::Client,
    api_url: String,
    access_token: SecretString,
    xero_tenant_id: String,
    /// Requests made (for benchmarks and tests).
    pub calls: std::sync::atomic::AtomicU64,
    /// The connection's pacer (shared with every other client of the same connection).
    pacer: std::sync::Arc<Pacer>,
}

/// Lists the organisations the token can reach.
pub async fn connections(
    http: &reqwest::Client,
    api_url: &str,
    token: &SecretString,
) -> ConnectorResult<Vec<Connection>> {
    let (status, headers, body) = send_raw(
        http.get(format!("{api_url}/connections"))
            .bearer_auth(token.expose())
            .header("Accept", "application/json"),
    )
    .await?;
    if !status.is_success() {
        return Err(error(status, &headers, &body));
    }
    serde_json::from_str(&body)
        .map_err(|e| ConnectorError::Permanent(format!("unexpected Xero response: {e}")))
}

/// The organisations among the connections (`tenantType` `ORGANISATION`; practices are not
/// synced), in Xero's order.
pub fn organisations(connections: &[Connection]) -> Vec<&Connection> {
    connections
        .iter()
        .filter(|c| c.tenant_type == "ORGANISATION")
        .collect()
}

impl Connection {
    /// `tenantName`, or the id when Xero sends no name.
    pub fn display_name(&self) -> &str {
        self.tenant_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.tenant_id)
    }
}

/// Picks the organisation: the one chosen by the ADMIN (`settings.xero_tenant_id`, set on the
/// Integrations page or through the API), or the only one.
pub fn choose_organisation(
    connections: &[Connection],
    wanted: Option<&str>,
) -> ConnectorResult<Connection> {
    let orgs = organisations(connections);
    match (wanted, orgs.as_slice()) {
        (Some(w), _) => orgs
            .iter()
            .find(|c| c.tenant_id == w)
            .map(|c| (*c).clone())
            .ok_or_else(|| ConnectorError::Permanent(format!(
                "the chosen Xero organisation ({w}) is no longer connected; an ADMIN must pick one of the connected organisations on the Integrations page (or connect Xero again)"
            ))),
        (None, [one]) => Ok((*one).clone()),
        (None, []) => Err(ConnectorError::Permanent(
            "no Xero organisation is connected; connect Xero again and allow access to an organisation".into(),
        )),
        (None, many) => Err(ConnectorError::Permanent(format!(
            "{} Xero organisations are connected and none is chosen; an ADMIN must pick one on the Integrations page",
            many.len()
        ))),
    }
}

impl XeroClient {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        access_token: SecretString,
        xero_tenant_id: String,
    ) -> XeroClient {
        XeroClient {
            http,
            api_url: api_url.trim_end_matches('/').into(),
            access_token,
            xero_tenant_id,
            calls: 0.into(),
            pacer: std::sync::Arc::new(Pacer::unlimited()),
        }
    }

    /// Paces every request of this client with `pacer` (the connection's, shared).
    pub fn with_pacer(mut self, pacer: std::sync::Arc<Pacer>) -> XeroClient {
        self.pacer = pacer;
        self
    }

    /// Sends a request under the connection's pacer, and tells the pacer what Xero's rate-limit
    /// headers say (`X-MinLimit-Remaining`, `X-DayLimit-Remaining`, on every answer).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> ConnectorResult<(reqwest::StatusCode, reqwest::header::HeaderMap, String)> {
        self.pacer.acquire().await;
        let answer = send_raw(request).await?;
        let headers = &answer.1;
        self.pacer.observe_remaining(
            header_u64(headers, "x-minlimit-remaining"),
            std::time::Duration::from_secs(60),
        );
        self.pacer
            .observe_day_remaining(header_u64(headers, "x-daylimit-remaining"));
        Ok(answer)
    }

    /// A GET of `/api.xro/2.0/{resource}` with the token and organisation headers, counted.
    fn get(&self, resource: &str) -> reqwest::RequestBuilder {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.http
            .get(format!("{}/api.xro/2.0/{resource}", self.api_url))
            .bearer_auth(self.access_token.expose())
            .header("xero-tenant-id", &self.xero_tenant_id)
            .header("Accept", "application/json")
    }

    /// The organisation's settings (one call per sync: its base currency is the currency of every
    /// converted amount).
    pub async fn organisation(&self) -> ConnectorResult<Organisation> {
        let (status, headers, body) = self.send(self.get("Organisation")).await?;
        if !status.is_success() {
            return Err(error(status, &headers, &body));
        }
        let envelope: OrganisationEnvelope = serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected Xero response: {e}")))?;
        envelope.organisations.into_iter().next().ok_or_else(|| {
            ConnectorError::Permanent("Xero answered /Organisation without an organisation".into())
        })
    }

    async fn page(
        &self,
        resource: &str,
        query: &[(&str, String)],
        page: usize,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Envelope> {
        Ok(self.dated_page(resource, query, page, since).await?.0)
    }

    /// [`Self::page`] and the answer's `Date` (Xero's clock when it answered).
    async fn dated_page(
        &self,
        resource: &str,
        query: &[(&str, String)],
        page: usize,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<(Envelope, Option<DateTime<Utc>>)> {
        let mut request = self.get(resource).query(query).query(&[
            ("page", page.to_string()),
            ("pageSize", PAGE_SIZE.to_string()),
        ]);
        if let Some(s) = since {
            request = request.header("If-Modified-Since", if_modified_since(s));
        }
        let (status, headers, body) = self.send(request).await?;
        let date = crate::http::server_date(&headers);
        if status.as_u16() == 304 {
            let empty = Envelope {
                pagination: None,
                contacts: vec![],
                invoices: vec![],
                credit_notes: vec![],
                payments: vec![],
                bank_transactions: vec![],
            };
            return Ok((empty, date));
        }
        if !status.is_success() {
            return Err(error(status, &headers, &body));
        }
        let envelope = serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected Xero response: {e}")))?;
        Ok((envelope, date))
    }

    /// Every page of `resource`, by the contract's last-page rule: up to
    /// `pagination.pageCount` when the answer has it, else until an empty page. Never "a page
    /// shorter than asked": Xero's 1000-item maximum is not documented, so a server serving
    /// fewer per page would otherwise end the read after page 1.
    async fn all<T>(
        &self,
        resource: &str,
        query: &[(&str, String)],
        since: Option<DateTime<Utc>>,
        pick: impl Fn(Envelope) -> Vec<T>,
    ) -> ConnectorResult<Vec<T>> {
        let mut out = Vec::new();
        for page in 1.. {
            let envelope = self.page(resource, query, page, since).await?;
            let page_count = envelope.pagination.as_ref().and_then(|p| p.page_count);
            let items = pick(envelope);
            let n = items.len();
            out.extend(items);
            let last = match page_count {
                Some(c) => page >= c,
                None => n == 0,
            };
            if last {
                break;
            }
        }
        Ok(out)
    }

    pub async fn contacts(&self, since: Option<DateTime<Utc>>) -> ConnectorResult<Vec<Contact>> {
        self.all(
            "Contacts",
            &[("includeArchived", "true".into())],
            since,
            |e| e.contacts,
        )
        .await
    }

    /// Invoices of both types and every status: incremental syncs must see VOIDED and DELETED
    /// documents to remove what they contributed.
    pub async fn invoices(&self, since: Option<DateTime<Utc>>) -> ConnectorResult<Vec<Invoice>> {
        self.all("Invoices", &[], since, |e| e.invoices).await
    }

    /// The bills/invoices with these InvoiceIDs (`IDs=` filter, 50 per request), whatever their
    /// modification time: the bills of payments whose bill an incremental read did not return.
    pub async fn invoices_by_id(&self, ids: &[String]) -> ConnectorResult<Vec<Invoice>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(50) {
            out.extend(
                self.all("Invoices", &[("IDs", chunk.join(","))], None, |e| {
                    e.invoices
                })
                .await?,
            );
        }
        Ok(out)
    }

    /// Credit notes of both types and every status (VOIDED/DELETED ones remove what they
    /// contributed).
    pub async fn credit_notes(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<Invoice>> {
        self.all("CreditNotes", &[], since, |e| e.credit_notes)
            .await
    }

    pub async fn payments(&self, since: Option<DateTime<Utc>>) -> ConnectorResult<Vec<Payment>> {
        self.all("Payments", &[], since, |e| e.payments).await
    }

    /// Bank transactions of every type and status (DELETED/VOIDED ones remove what they
    /// contributed).
    pub async fn bank_transactions(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<BankTransaction>> {
        self.all("BankTransactions", &[], since, |e| e.bank_transactions)
            .await
    }

    /// One page of a document stream, read by keyset: documents modified since `at.since`
    /// (`If-Modified-Since`, whole seconds, rounded down) in `UpdatedDateUTC` order, page
    /// `at.page` of that answer. The next position starts at the newest document's second (page
    /// 1), so a document modified while the read goes on moves behind the read position and is
    /// read again rather than shifting an unread one onto a page already read (plain page
    /// numbers would skip it). When the whole page shares its newest second (bulk-created
    /// documents), restarting there would read the same page again: the page number advances
    /// instead. No request is ever sent twice; documents of a boundary second may be read twice
    /// (harmless: contributions are replaced, not added).
    pub async fn document_page(
        &self,
        stream: DocumentStream,
        at: &StreamPosition,
    ) -> ConnectorResult<DocumentPage> {
        let (envelope, answered_at) = self
            .dated_page(
                stream.resource(),
                &[("order", "UpdatedDateUTC ASC".into())],
                at.page,
                at.since,
            )
            .await?;
        let pagination = envelope.pagination.as_ref();
        let page_count = pagination.and_then(|p| p.page_count);
        let item_count = pagination.and_then(|p| p.item_count);
        let mut out = DocumentPage {
            documents: Vec::new(),
            payments: Vec::new(),
            bank_transactions: Vec::new(),
            next: None,
            remaining: item_count.map(|n| n.saturating_sub((at.page - 1) * PAGE_SIZE)),
            newest: None,
            answered_at,
        };
        let stamps: Vec<Option<DateTime<Utc>>> = match stream {
            DocumentStream::Invoices => {
                out.documents = envelope.invoices;
                out.documents.iter().map(|d| d.updated()).collect()
            }
            DocumentStream::CreditNotes => {
                out.documents = envelope.credit_notes;
                out.documents.iter().map(|d| d.updated()).collect()
            }
            DocumentStream::Payments => {
                out.payments = envelope.payments;
                out.payments
                    .iter()
                    .map(|p| p.updated_date_utc.as_deref().and_then(parse_ms_date))
                    .collect()
            }
            DocumentStream::BankTransactions => {
                out.bank_transactions = envelope.bank_transactions;
                out.bank_transactions
                    .iter()
                    .map(|b| b.updated_date_utc.as_deref().and_then(parse_ms_date))
                    .collect()
            }
        };
        let n = stamps.len();
        out.newest = stamps.iter().flatten().max().copied();
        let last = match page_count {
            Some(c) => at.page >= c,
            None => n == 0,
        };
        if !last {
            let second = |t: DateTime<Utc>| {
                DateTime::<Utc>::from_timestamp(t.timestamp(), 0).expect("in range")
            };
            // Restarting at the newest second re-reads the page's documents of that second:
            // worth it unless that is the whole page (bulk-created documents share a second).
            let newest = out.newest.map(second);
            let in_newest_second = stamps.iter().filter(|t| t.map(second) == newest).count();
            out.next = Some(match newest {
                Some(newest)
                    if at.since.is_none_or(|s| newest > second(s)) && in_newest_second < n =>
                {
                    StreamPosition {
                        since: Some(newest),
                        page: 1,
                    }
                }
                _ => StreamPosition {
                    since: at.since,
                    page: at.page + 1,
                },
            });
        }
        Ok(out)
    }
}

/// A document stream a sync reads page by page, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStream {
    Invoices,
    CreditNotes,
    Payments,
    BankTransactions,
}

impl DocumentStream {
    pub const ALL: [DocumentStream; 4] = [
        DocumentStream::Invoices,
        DocumentStream::CreditNotes,
        DocumentStream::Payments,
        DocumentStream::BankTransactions,
    ];

    pub fn resource(self) -> &'static str {
        match self {
            DocumentStream::Invoices => "Invoices",
            DocumentStream::CreditNotes => "CreditNotes",
            DocumentStream::Payments => "Payments",
            DocumentStream::BankTransactions => "BankTransactions",
        }
    }

    /// Lower-case name for progress and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            DocumentStream::Invoices => "invoices",
            DocumentStream::CreditNotes => "credit notes",
            DocumentStream::Payments => "payments",
            DocumentStream::BankTransactions => "bank transactions",
        }
    }
}

/// Where the read of a stream stands (see [`XeroClient::document_page`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamPosition {
    /// `If-Modified-Since` of the next request (`None`: everything).
    pub since: Option<DateTime<Utc>>,
    /// 1-based page of that answer.
    pub page: usize,
}

/// One page of a document stream.
#[derive(Debug, Clone)]
pub struct DocumentPage {
    /// Invoices or credit notes.
    pub documents: Vec<Invoice>,
    pub payments: Vec<Payment>,
    pub bank_transactions: Vec<BankTransaction>,
    /// Where the stream continues; `None`: this was its last page.
    pub next: Option<StreamPosition>,
    /// Documents of the stream from this page on, when Xero says (`pagination.itemCount`).
    pub remaining: Option<usize>,
    /// The newest `UpdatedDateUTC` on the page.
    pub newest: Option<DateTime<Utc>>,
    /// Xero's clock when it answered (`Date`): every change after it has a later stamp.
    pub answered_at: Option<DateTime<Utc>>,
}

impl DocumentPage {
    pub fn len(&self) -> usize {
        self.documents.len() + self.payments.len() + self.bank_transactions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one document adds to one client's day, in base currency. `removed`: the document is
/// VOIDED/DELETED (or no longer counts) and whatever it contributed before must be subtracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub document_id: String,
    pub client_id: String,
    pub date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
    pub removed: bool,
}

fn to_base(amount: Decimal, rate: Option<Decimal>) -> Decimal {
    match rate {
        Some(r) if !r.is_zero() && r != Decimal::ONE => (amount / r).round_dp(2),
        _ => amount,
    }
}

fn counts(status: &str) -> bool {
    matches!(status, "AUTHORISED" | "PAID")
}

/// The client a line is allocated to through `tracking_category` (its option is the client's
/// name).
fn tracked_client<'a>(
    line: &LineItem,
    contact_by_name: &'a HashMap<String, String>,
    tracking_category: &str,
) -> Option<&'a String> {
    line.tracking
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(tracking_category))
        .and_then(|t| contact_by_name.get(&t.option.trim().to_lowercase()))
}

/// A line's (ex-tax, gross) amounts under the document's `LineAmountTypes`
/// (`Exclusive` default, `Inclusive`, `NoTax`).
fn line_amounts(line: &LineItem, line_amount_types: Option<&str>) -> (Decimal, Decimal) {
    let amount = line.line_amount.unwrap_or_default();
    let tax = line.tax_amount.unwrap_or_default();
    match line_amount_types {
        Some("Inclusive") => (amount - tax, amount),
        Some("NoTax") => (amount, amount),
        _ => (amount, amount + tax),
    }
}

/// Normalizes bank transactions into contributions (see the module docs): per client, SPEND →
/// expenses (ex-tax) and negative cash flow (gross) of its tracked lines; RECEIVE → positive cash
/// flow (gross) of each line's tracked client, else of the contact. Non-AUTHORISED transactions
/// come back `removed`.
pub fn bank_transaction_contributions(
    transactions: &[BankTransaction],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    let mut out = Vec::new();
    for bt in transactions {
        let Some(date) = document_date(bt.date.as_deref(), bt.date_string.as_deref()) else {
            continue;
        };
        let live = bt.status == "AUTHORISED";
        // Prepayments and overpayments are cash when received or paid, like spend/receive
        // money, but not yet an expense: what they later settle is counted by that document.
        // Transfers move money between own accounts: nothing.
        let (spend, expense) = match bt.kind.as_str() {
            "SPEND" => (true, true),
            "SPEND-PREPAYMENT" | "SPEND-OVERPAYMENT" => (true, false),
            "RECEIVE" | "RECEIVE-PREPAYMENT" | "RECEIVE-OVERPAYMENT" => (false, false),
            _ => continue,
        };
        // client -> (ex-tax, gross), in the order first seen (stable output).
        let mut per_client: Vec<(String, Decimal, Decimal)> = Vec::new();
        for line in &bt.line_items {
            let client = match tracked_client(line, contact_by_name, tracking_category) {
                Some(c) => c.clone(),
                None if !spend => match &bt.contact {
                    Some(c) => c.contact_id.clone(),
                    None => continue,
                },
                None => continue,
            };
            let (net, gross) = line_amounts(line, bt.line_amount_types.as_deref());
            match per_client.iter_mut().find(|(c, _, _)| *c == client) {
                Some(e) => {
                    e.1 += net;
                    e.2 += gross;
                }
                None => per_client.push((client, net, gross)),
            }
        }
        for (client_id, net, gross) in per_client {
            let (expenses, cash_flow) = match (live, spend) {
                (false, _) => (Decimal::ZERO, Decimal::ZERO),
                (true, true) => (
                    if expense {
                        to_base(net, bt.currency_rate)
                    } else {
                        Decimal::ZERO
                    },
                    -to_base(gross, bt.currency_rate),
                ),
                (true, false) => (Decimal::ZERO, to_base(gross, bt.currency_rate)),
            };
            out.push(Contribution {
                document_id: bt.document_id(),
                client_id,
                date,
                revenue: Decimal::ZERO,
                expenses,
                cash_flow,
                removed: !live,
            });
        }
    }
    out
}

/// Normalizes documents into contributions. `contact_by_name` maps a lower-cased contact name to
/// its ContactID (for tracking options); `tracking_category` is the settings' category name.
/// Payments on bills are attributed through the bill's lines (see
/// [`contributions_with_bills`]); a bill must be among `invoices`.
pub fn contributions(
    invoices: &[Invoice],
    payments: &[Payment],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    contributions_with_bills(invoices, payments, &[], contact_by_name, tracking_category)
}

/// [`contributions`], with `payment_bills`: bills (ACCPAY) that are not among `invoices` but are
/// paid by `payments` (looked up only, contributing nothing themselves). A live payment on a bill
/// is negative cash flow of the clients the bill's lines are tracked to, pro rata by the lines'
/// gross amounts — not of the bill's contact, a supplier; the untracked lines' share and payments
/// on bills not found belong to no client.
pub fn contributions_with_bills(
    invoices: &[Invoice],
    payments: &[Payment],
    payment_bills: &[Invoice],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    let mut out = Vec::new();
    for inv in invoices {
        let Some(date) = document_date(inv.date.as_deref(), inv.date_string.as_deref()) else {
            continue;
        };
        let live = counts(&inv.status);
        // A credit note is its invoice kind's opposite: ACCRECCREDIT reduces the customer's
        // revenue, ACCPAYCREDIT the tracked clients' expenses, on the credit note's date.
        let sign = if inv.is_credit_note() {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        match inv.kind.as_str() {
            "ACCREC" | "ACCRECCREDIT" => out.push(Contribution {
                document_id: inv.document_id(),
                client_id: inv.contact.contact_id.clone(),
                date,
                revenue: if live {
                    sign * to_base(inv.sub_total.unwrap_or_default(), inv.currency_rate)
                } else {
                    Decimal::ZERO
                },
                expenses: Decimal::ZERO,
                cash_flow: Decimal::ZERO,
                removed: !live,
            }),
            "ACCPAY" | "ACCPAYCREDIT" => {
                let inclusive = inv.line_amount_types.as_deref() == Some("Inclusive");
                let mut per_client: HashMap<String, Decimal> = HashMap::new();
                for line in &inv.line_items {
                    let Some(client) = tracked_client(line, contact_by_name, tracking_category)
                    else {
                        continue;
                    };
                    let mut amount = line.line_amount.unwrap_or_default();
                    if inclusive {
                        amount -= line.tax_amount.unwrap_or_default();
                    }
                    *per_client.entry(client.clone()).or_default() += amount;
                }
                for (client_id, amount) in per_client {
                    out.push(Contribution {
                        document_id: inv.document_id(),
                        client_id,
                        date,
                        revenue: Decimal::ZERO,
                        expenses: if live {
                            sign * to_base(amount, inv.currency_rate)
                        } else {
                            Decimal::ZERO
                        },
                        cash_flow: Decimal::ZERO,
                        removed: !live,
                    });
                }
            }
            _ => {}
        }
    }
    let mut bills: HashMap<&str, &Invoice> = HashMap::new();
    for inv in invoices.iter().chain(payment_bills) {
        if inv.kind == "ACCPAY" {
            bills.entry(inv.invoice_id.as_str()).or_insert(inv);
        }
    }
    for p in payments {
        let Some(date) = document_date(p.date.as_deref(), None) else {
            continue;
        };
        let live = p.status == "AUTHORISED";
        let payment = |client_id: String, cash_flow: Decimal, removed: bool| Contribution {
            document_id: p.payment_id.clone(),
            client_id,
            date,
            revenue: Decimal::ZERO,
            expenses: Decimal::ZERO,
            cash_flow,
            removed,
        };
        match (p.kind(), live) {
            (_, false) => {
                // Its document id is among the fetched ones: whatever it added is replaced
                // by nothing. The row only records the removal.
                if let Some(contact) = p.contact_id() {
                    out.push(payment(contact.to_string(), Decimal::ZERO, true));
                }
            }
            (PaymentKind::Receipt, true) => {
                if let Some(contact) = p.contact_id() {
                    out.push(payment(
                        contact.to_string(),
                        to_base(p.amount, p.currency_rate),
                        false,
                    ));
                }
            }
            // A refund of a credit note, prepayment or overpayment: cash paid back out to
            // the customer.
            (PaymentKind::CustomerRefund, true) => {
                if let Some(contact) = p.contact_id() {
                    out.push(payment(
                        contact.to_string(),
                        -to_base(p.amount, p.currency_rate),
                        false,
                    ));
                }
            }
            (PaymentKind::BillPayment, true) => {
                let Some(bill) = p.bill_id().and_then(|id| bills.get(id)) else {
                    continue;
                };
                let amount = to_base(p.amount, p.currency_rate);
                for (client_id, share) in
                    bill_client_shares(bill, contact_by_name, tracking_category)
                {
                    out.push(payment(client_id, -(amount * share).round_dp(2), false));
                }
            }
            (PaymentKind::Other, true) => {}
        }
    }
    out
}

/// The clients a bill's lines are tracked to, each with its share of the bill (its lines' gross
/// amounts over all lines' gross amounts), in the order first seen. Untracked lines' share
/// belongs to no client.
fn bill_client_shares(
    bill: &Invoice,
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<(String, Decimal)> {
    let mut total = Decimal::ZERO;
    let mut per_client: Vec<(String, Decimal)> = Vec::new();
    for line in &bill.line_items {
        let (_, gross) = line_amounts(line, bill.line_amount_types.as_deref());
        total += gross;
        if let Some(client) = tracked_client(line, contact_by_name, tracking_category) {
            match per_client.iter_mut().find(|(c, _)| c == client) {
                Some(e) => e.1 += gross,
                None => per_client.push((client.clone(), gross)),
            }
        }
    }
    if total.is_zero() {
        return Vec::new();
    }
    per_client
        .into_iter()
        .map(|(c, gross)| (c, gross / total))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

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

    #[test]
    fn payments_without_invoice_parse_and_refunds_are_cash_out() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let page: Envelope = serde_json::from_value(serde_json::json!({"Payments": [
            {"PaymentID":"p1","Status":"AUTHORISED","PaymentType":"ACCRECPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":10,"Invoice":{"InvoiceID":"i1","Type":"ACCREC","Contact":{"ContactID":"c1"}}},
            {"PaymentID":"p2","Status":"AUTHORISED","PaymentType":"ARCREDITPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":4,"CreditNote":{"CreditNoteID":"cn1","Type":"ACCRECCREDIT","Contact":{"ContactID":"c1"}}},
            {"PaymentID":"p3","Status":"AUTHORISED","PaymentType":"AROVERPAYMENTPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":3,"Overpayment":{"OverpaymentID":"o1","Contact":{"ContactID":"c2"}}},
            {"PaymentID":"p4","Status":"AUTHORISED","Date":"/Date(1539993600000+0000)/","Amount":2}
        ]}))
        .expect("a page with payments that settle no invoice parses");
        let c = contributions(&[], &page.payments, &HashMap::new(), "Client");
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.document_id.as_str(), c.client_id.as_str(), c.cash_flow))
            .collect();
        assert_eq!(
            got,
            vec![
                ("p1", "c1", d("10")),
                ("p2", "c1", d("-4")),
                ("p3", "c2", d("-3"))
            ]
        );
    }

    #[test]
    fn credit_notes_are_negative_revenue_and_expenses() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let page: Envelope = serde_json::from_value(serde_json::json!({"CreditNotes": [
            {"CreditNoteID":"n1","Type":"ACCRECCREDIT","Status":"AUTHORISED","Contact":{"ContactID":"c1"},
             "Date":"/Date(1539993600000+0000)/","SubTotal":30.5,"CurrencyRate":0.5},
            {"CreditNoteID":"n2","Type":"ACCPAYCREDIT","Status":"PAID","Contact":{"ContactID":"s"},
             "Date":"/Date(1539993600000+0000)/","LineAmountTypes":"Inclusive","LineItems":[
                {"LineAmount":11,"TaxAmount":1,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]},
            {"CreditNoteID":"n3","Type":"ACCRECCREDIT","Status":"VOIDED","Contact":{"ContactID":"c1"},
             "Date":"/Date(1539993600000+0000)/","SubTotal":7}
        ]}))
        .unwrap();
        let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
        let c = contributions(&page.credit_notes, &[], &names, "Client");
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.document_id.as_str(), c.revenue, c.expenses, c.removed))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cn:n1", d("-61.00"), d("0"), false),
                ("cn:n2", d("0"), d("-10"), false),
                ("cn:n3", d("0"), d("0"), true),
            ]
        );
    }

    fn inv(json: serde_json::Value) -> Invoice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mapping_rules() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let sale = inv(
            serde_json::json!({"InvoiceID":"i1","Type":"ACCREC","Status":"PAID","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":100.0,"CurrencyCode":"USD","CurrencyRate":0.8}),
        );
        let voided = inv(
            serde_json::json!({"InvoiceID":"i2","Type":"ACCREC","Status":"VOIDED","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":50}),
        );
        let draft = inv(
            serde_json::json!({"InvoiceID":"i4","Type":"ACCREC","Status":"DRAFT","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":50}),
        );
        let bill = inv(
            serde_json::json!({"InvoiceID":"i3","Type":"ACCPAY","Status":"AUTHORISED","Contact":{"ContactID":"supplier"},
            "DateString":"2018-10-21T00:00:00","LineAmountTypes":"Inclusive","LineItems":[
                {"LineAmount":110,"TaxAmount":10,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":5,"Tracking":[{"Name":"Region","Option":"Acme Pty"}]}]}),
        );
        let pay: Payment = serde_json::from_value(serde_json::json!({"PaymentID":"p1","Status":"AUTHORISED","Date":"/Date(1539993600000+0000)/",
            "Amount":40,"Invoice":{"InvoiceID":"i3","Type":"ACCPAY","Contact":{"ContactID":"c1"}}})).unwrap();
        let unknown_bill: Payment = serde_json::from_value(serde_json::json!({"PaymentID":"p2","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/","Amount":9,"Invoice":{"InvoiceID":"gone","Type":"ACCPAY","Contact":{"ContactID":"c1"}}})).unwrap();
        let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
        let c = contributions(
            &[sale, voided, draft, bill],
            &[pay, unknown_bill],
            &names,
            "Client",
        );
        assert_eq!(c[0].revenue, d("125.00"), "USD 100 at rate 0.8 is 125 base");
        assert!(!c[0].removed);
        assert!(c[1].removed && c[1].revenue.is_zero());
        assert!(c[2].removed, "drafts do not count");
        assert_eq!(
            (
                c[3].client_id.as_str(),
                c[3].expenses,
                c[3].date.to_string().as_str()
            ),
            ("c1", d("100"), "2018-10-21")
        );
        // The bill's payment goes to the tracked client (not the supplier), pro rata by the
        // lines' gross amounts: 40 x 110/115.
        assert_eq!(
            (c[4].client_id.as_str(), c[4].cash_flow),
            ("c1", d("-38.26"))
        );
        assert_eq!(
            c.len(),
            5,
            "a payment on a bill not at hand belongs to no client"
        );
    }

    #[test]
    fn bank_transactions_mapping() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let bt =
            |json: serde_json::Value| -> BankTransaction { serde_json::from_value(json).unwrap() };
        let names = HashMap::from([
            ("acme pty".to_string(), "c1".to_string()),
            ("beta ltd".to_string(), "c2".to_string()),
        ]);
        let spend = bt(
            serde_json::json!({"BankTransactionID":"b1","Type":"SPEND","Status":"AUTHORISED",
            "Contact":{"ContactID":"supplier"},"DateString":"2018-10-21T00:00:00","LineAmountTypes":"Exclusive",
            "LineItems":[
                {"LineAmount":100,"TaxAmount":10,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":20,"TaxAmount":0,"Tracking":[{"Name":"client","Option":" beta ltd "}]},
                {"LineAmount":7,"Tracking":[{"Name":"Region","Option":"Acme Pty"}]},
                {"LineAmount":3}]}),
        );
        let inclusive_fx = bt(
            serde_json::json!({"BankTransactionID":"b2","Type":"SPEND","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/","LineAmountTypes":"Inclusive","CurrencyRate":0.5,
            "LineItems":[{"LineAmount":11,"TaxAmount":1,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let receive = bt(
            serde_json::json!({"BankTransactionID":"b3","Type":"RECEIVE","Status":"AUTHORISED",
            "Contact":{"ContactID":"c2"},"Date":"/Date(1539993600000+0000)/","LineAmountTypes":"NoTax",
            "LineItems":[{"LineAmount":40},{"LineAmount":5,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let voided = bt(
            serde_json::json!({"BankTransactionID":"b4","Type":"SPEND","Status":"VOIDED",
            "Date":"/Date(1539993600000+0000)/",
            "LineItems":[{"LineAmount":9,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let transfer = bt(
            serde_json::json!({"BankTransactionID":"b5","Type":"SPEND-TRANSFER","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/",
            "LineItems":[{"LineAmount":9,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let c = bank_transaction_contributions(
            &[spend, inclusive_fx, receive, voided, transfer],
            &names,
            "Client",
        );
        let got: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.document_id.as_str(),
                    c.client_id.as_str(),
                    c.date.to_string(),
                    c.expenses,
                    c.cash_flow,
                    c.removed,
                )
            })
            .collect();
        let day = |s: &str| s.to_string();
        assert_eq!(
            got,
            vec![
                // Ex-tax expenses, gross cash out; untracked and other-category lines count nothing.
                ("bt:b1", "c1", day("2018-10-21"), d("100"), d("-110"), false),
                ("bt:b1", "c2", day("2018-10-21"), d("20"), d("-20"), false),
                // Inclusive: 11 incl. 1 tax; rate 0.5 → base 20 expenses, 22 cash.
                (
                    "bt:b2",
                    "c1",
                    day("2018-10-20"),
                    d("20.00"),
                    d("-22.00"),
                    false
                ),
                // RECEIVE: untracked lines to the contact, tracked lines to their client.
                ("bt:b3", "c2", day("2018-10-20"), d("0"), d("40"), false),
                ("bt:b3", "c1", day("2018-10-20"), d("0"), d("5"), false),
                ("bt:b4", "c1", day("2018-10-20"), d("0"), d("0"), true),
            ]
        );
    }

    #[test]
    fn bill_payments_split_over_tracked_clients_with_the_payment_rate() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let bill = inv(
            serde_json::json!({"InvoiceID":"b1","Type":"ACCPAY","Status":"PAID","Contact":{"ContactID":"supplier"},
            "DateString":"2018-10-21T00:00:00","LineAmountTypes":"Exclusive","LineItems":[
                {"LineAmount":60,"TaxAmount":6,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":30,"TaxAmount":3,"Tracking":[{"Name":"Client","Option":"Beta Ltd"}]},
                {"LineAmount":10,"TaxAmount":1}]}),
        );
        let pay = |id: &str, status: &str| -> Payment {
            serde_json::from_value(serde_json::json!({"PaymentID":id,"Status":status,"Date":"/Date(1539993600000+0000)/",
                "Amount":55,"CurrencyRate":0.5,"Invoice":{"InvoiceID":"b1","Type":"ACCPAY","Contact":{"ContactID":"supplier"}}}))
            .unwrap()
        };
        let names = HashMap::from([
            ("acme pty".to_string(), "c1".to_string()),
            ("beta ltd".to_string(), "c2".to_string()),
        ]);
        // The bill is only looked up (not re-contributed): an incremental read may return the
        // payment without its bill.
        let c = contributions_with_bills(
            &[],
            &[pay("p1", "AUTHORISED"), pay("p2", "DELETED")],
            std::slice::from_ref(&bill),
            &names,
            "Client",
        );
        let got: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.document_id.as_str(),
                    c.client_id.as_str(),
                    c.cash_flow,
                    c.removed,
                )
            })
            .collect();
        // 55 at rate 0.5 = 110 base; gross lines 66/33/11 of 110: 60% and 30%, 10% untracked.
        assert_eq!(
            got,
            vec![
                ("p1", "c1", d("-66.00"), false),
                ("p1", "c2", d("-33.00"), false),
                ("p2", "supplier", d("0"), true),
            ]
        );
    }

    #[test]
    fn organisation_choice() {
        let c = |id: &str| Connection {
            id: "x".into(),
            tenant_id: id.into(),
            tenant_type: "ORGANISATION".into(),
            tenant_name: None,
        };
        assert_eq!(choose_organisation(&[c("a")], None).unwrap().tenant_id, "a");
        assert!(matches!(
            choose_organisation(&[c("a"), c("b")], None),
            Err(ConnectorError::Permanent(m)) if m.contains("pick one on the Integrations page")
        ));
        assert!(matches!(
            choose_organisation(&[c("a"), c("b")], Some("z")),
            Err(ConnectorError::Permanent(m)) if m.contains("no longer connected")
        ));
        assert_eq!(
            choose_organisation(&[c("a"), c("b")], Some("b"))
                .unwrap()
                .tenant_id,
            "b"
        );
    }

    #[test]
    fn rate_limit_problem_day_waits_long_without_retry_after() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let mut day = HeaderMap::new();
        day.insert("x-rate-limit-problem", HeaderValue::from_static("day"));
        let too_many = reqwest::StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            error(too_many, &day, ""),
            ConnectorError::RateLimited {
                retry_after: DAY_LIMIT_WAIT
            }
        );
        day.insert(RETRY_AFTER, HeaderValue::from_static("40000"));
        assert_eq!(
            error(too_many, &day, ""),
            ConnectorError::RateLimited {
                retry_after: std::time::Duration::from_secs(40000)
            },
            "Retry-After is when the day's quota frees up"
        );
        let mut minute = HeaderMap::new();
        minute.insert("x-rate-limit-problem", HeaderValue::from_static("minute"));
        assert_eq!(
            error(too_many, &minute, ""),
            ConnectorError::RateLimited {
                retry_after: crate::http::DEFAULT_RETRY_AFTER
            }
        );
        assert!(DAY_LIMIT_WAIT > crate::http::DEFAULT_RETRY_AFTER);
    }
}
