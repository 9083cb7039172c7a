//! MYOB AccountRight (MYOB Business API): company files, customers, jobs, sale invoices, bills,
//! customer payments and banking transactions with OData `$top`/`$skip` paging (following
//! `NextPageLink`) and `$filter` on `LastModified`; normalized into the same per-document
//! contributions to a client's day as Xero ([`crate::xero::Contribution`]).
//!
//! Every call carries `Authorization: Bearer`, `x-myobapi-key: <client id>` and
//! `x-myobapi-version: v2`. The company file is the `businessId` of the OAuth redirect (kept in the
//! integration's settings as `myob_business_id`) and is checked through its own endpoint
//! ([`company_file`], `GET {api}/{businessId}/`): API keys issued since March 2025 get an EMPTY
//! company-file list (`GET {api}/`, contracts/myob.json `new_keys_no_file_list`), which is only
//! the fallback of legacy keys connected without a `businessId` ([`choose_company_file`]).
//!
//! Mapping (issue 5, as Xero): `client_id` = customer UID. Revenue = sale invoices' `TotalAmount -
//! TotalTax` (tax-exclusive whether the invoice is tax-inclusive or not; credits are negative),
//! read from the generic `Sale/Invoice` list (every layout in one call), then again from the
//! layout endpoints that carry `Lines` ([`INVOICE_LAYOUTS`], issue 10): a line on a job linked to
//! another client counts for that client, the rest of the invoice for its customer, and the
//! layout read replaces the generic one's contribution of the same invoice. Expenses = bill LINES allocated to the client through their Job: the job's
//! `LinkedCustomer`, else the customer whose name equals the job's name; tax-inclusive bills are
//! scaled to ex-tax amounts. The generic `Purchase/Bill` list carries no `Lines`
//! (`bill_lines_only_on_layouts`), so bills are read from the layout endpoints
//! [`BILL_LAYOUTS`]. Cash flow = customer payments and Receive Money whose contact is a known
//! customer minus Spend Money whose contact is a known customer (the banking `Contact` is a
//! CardLink without a `Type`, `banking_contact_type`). Dates are calendar dates without offset
//! (`2014-03-01T00:00:00`): never shifted.
//!
//! Currency: the plain amount fields (`TotalAmount`, `TotalTax`, line `Total`, `AmountReceived`,
//! `AmountPaid`) are already in the company file's local currency; the `*Foreign` twins hold the
//! foreign amounts (`local_vs_foreign`). So foreign documents are used as they are, never divided
//! by `CurrencyExchangeRate` again (that converted twice).
//!
//! MYOB lists no deletions (no void status, no deleted list, no webhooks): a deleted document just
//! disappears. [`MyobRead::complete`] is true for full reads, whose documents are then the complete
//! set (the caller removes what it holds from this source and no longer sees); increments
//! (`$filter=LastModified ge datetime'…'`) return changed and new documents only, so a periodic
//! full read is what removes deletions.
//!
//! Rate limits: MYOB answers 403 `{"Name":"RateLimitError", ...}` rather than 429; the per-second
//! limit is retried after a second, the daily one after an hour (unless `Retry-After` says).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_crypto::SecretString;

use crate::http::{classify, send_raw};
use crate::pipedrive::de_opt_dec;
use crate::xero::Contribution;
use crate::{ClientRecord, ConnectorError, ConnectorResult};

/// Largest page MYOB serves.
pub const PAGE_SIZE: usize = 1000;

/// The bill layouts whose endpoints (`Purchase/Bill/{layout}`) carry `Lines` (and their `Job`).
pub const BILL_LAYOUTS: [&str; 4] = ["Service", "Item", "Professional", "Miscellaneous"];

/// The invoice layouts whose endpoints (`Sale/Invoice/{layout}`) are read for their `Lines`
/// under the `sme-sales` scope. `Item` is left out: contracts/myob.json lists it under no scope
/// we ask for (`unverified_item_scope`: it may need `sme-inventory`), so item invoices keep the
/// generic list's attribution to their customer.
pub const INVOICE_LAYOUTS: [&str; 4] = ["Service", "Professional", "TimeBilling", "Miscellaneous"];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompanyFile {
    pub id: String,
    pub name: Option<String>,
    pub uri: Option<String>,
    pub country: Option<String>,
}

/// Picks the company file: `wanted` (the redirect's `businessId`, kept in the settings), or the only
/// one.
pub fn choose_company_file(
    files: &[CompanyFile],
    wanted: Option<&str>,
) -> ConnectorResult<CompanyFile> {
    match (wanted, files) {
        (Some(w), _) => files
            .iter()
            .find(|f| f.id.eq_ignore_ascii_case(w))
            .cloned()
            .ok_or_else(|| ConnectorError::Permanent(format!("MYOB company file {w} is not reachable"))),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(ConnectorError::Permanent("no MYOB company file is reachable".into())),
        (None, many) => Err(ConnectorError::Permanent(format!(
            "{} MYOB company files are reachable; choose one in the integration's settings (myob_business_id)",
            many.len()
        ))),
    }
}

/// The answer of `GET {api}/{businessId}/`: the file's record and its resource URIs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompanyFileInfo {
    pub company_file: CompanyFile,
    #[serde(default)]
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ref {
    #[serde(rename = "UID")]
    pub uid: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Customer {
    #[serde(rename = "UID")]
    pub uid: String,
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default)]
    pub is_individual: bool,
}

impl Customer {
    pub fn name(&self) -> Option<String> {
        if !self.is_individual {
            if let Some(c) = self
                .company_name
                .as_deref()
                .filter(|c| !c.trim().is_empty())
            {
                return Some(c.trim().to_string());
            }
        }
        let full = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!full.is_empty()).then_some(full)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    #[serde(rename = "UID")]
    pub uid: String,
    pub number: Option<String>,
    pub name: Option<String>,
    pub linked_customer: Option<Ref>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(rename = "UID")]
    pub uid: String,
    pub date: String,
    pub customer: Ref,
    #[serde(default)]
    pub is_tax_inclusive: bool,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub total_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub total_tax: Option<Decimal>,
    /// Only on the layout endpoints ([`INVOICE_LAYOUTS`]); the generic list has none.
    #[serde(default)]
    pub lines: Vec<BillLine>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillLine {
    /// `Transaction`, `Header` or `SubTotal`: only transaction lines carry amounts.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub total: Option<Decimal>,
    pub job: Option<Ref>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bill {
    #[serde(rename = "UID")]
    pub uid: String,
    pub date: String,
    #[serde(default)]
    pub is_tax_inclusive: bool,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub total_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub total_tax: Option<Decimal>,
    #[serde(default)]
    pub lines: Vec<BillLine>,
}

/// Customer payments, Receive Money and Spend Money (amount in `AmountReceived` or `AmountPaid`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Money {
    #[serde(rename = "UID")]
    pub uid: String,
    pub date: String,
    /// Customer payments.
    pub customer: Option<Ref>,
    /// Banking transactions.
    pub contact: Option<Ref>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub amount_received: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub amount_paid: Option<Decimal>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Page<T> {
    items: Vec<T>,
    next_page_link: Option<String>,
}

/// `2014-03-01T00:00:00` (no offset) -> the calendar date.
pub fn calendar_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// The OData filter for changes since `since` (inclusive).
pub fn last_modified_filter(since: DateTime<Utc>) -> String {
    format!(
        "LastModified ge datetime'{}'",
        since.format("%Y-%m-%dT%H:%M:%S")
    )
}

/// Checks that the token reaches company file `business_id` (the redirect's `businessId`) through
/// the file's own endpoint, `GET {api}/{businessId}/`.
pub async fn company_file(
    http: &reqwest::Client,
    api_url: &str,
    client_id: &str,
    token: &SecretString,
    business_id: &str,
) -> ConnectorResult<CompanyFileInfo> {
    let request = http.get(format!(
        "{}/{}/",
        api_url.trim_end_matches('/'),
        business_id.trim()
    ));
    let (status, headers, body) = send_raw(with_headers(request, client_id, token)).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ConnectorError::Permanent(format!(
            "MYOB company file {business_id} (the businessId of the connection) is not reachable: reconnect MYOB and choose the file"
        )));
    }
    if !status.is_success() {
        return Err(classify_myob(status, &headers, &body));
    }
    serde_json::from_str(&body).map_err(|e| {
        ConnectorError::Permanent(format!("unexpected MYOB company file response: {e}"))
    })
}

/// Lists the company files the token can reach (`GET {api}/`). Legacy keys only: keys issued
/// since March 2025 get an empty list and must use the redirect's `businessId`.
pub async fn company_files(
    http: &reqwest::Client,
    api_url: &str,
    client_id: &str,
    token: &SecretString,
) -> ConnectorResult<Vec<CompanyFile>> {
    let request = http.get(format!("{}/", api_url.trim_end_matches('/')));
    let (status, headers, body) = send_raw(with_headers(request, client_id, token)).await?;
    if !status.is_success() {
        return Err(classify_myob(status, &headers, &body));
    }
    serde_json::from_str(&body)
        .map_err(|e| ConnectorError::Permanent(format!("unexpected MYOB response: {e}")))
}

fn with_headers(
    request: reqwest::RequestBuilder,
    client_id: &str,
    token: &SecretString,
) -> reqwest::RequestBuilder {
    request
        .bearer_auth(token.expose())
        .header("x-myobapi-key", client_id)
        .header("x-myobapi-version", "v2")
        .header("Accept", "application/json")
}

/// [`classify`], with MYOB's 403 `RateLimitError` waits: a second for the per-second limit, an
/// hour for the daily one, unless `Retry-After` says otherwise.
pub fn classify_myob(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ConnectorError {
    let e = classify(status, headers, body);
    if matches!(e, ConnectorError::RateLimited { .. })
        && headers.get(reqwest::header::RETRY_AFTER).is_none()
    {
        let retry_after = if body.to_ascii_lowercase().contains("daily") {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(1)
        };
        return ConnectorError::RateLimited { retry_after };
    }
    e
}

pub struct MyobClient {
    http: reqwest::Client,
    /// `{api}/{businessId}`
    base: String,
    origin: String,
    client_id: String,
    access_token: SecretString,
    pub calls: AtomicU64,
    first_answer: Mutex<Option<DateTime<Utc>>>,
    /// The connection's pacer (8 calls/s per API key, contracts/myob.json `rate_limits`).
    pacer: std::sync::Arc<crate::pace::Pacer>,
}

/// One page of a list and where the next one is (`NextPageLink`, already checked to point to
/// the API's own origin).
#[derive(Debug, Clone)]
pub struct MyobPage<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
    /// MYOB's clock (`Date`) when the page was answered.
    pub answered_at: Option<DateTime<Utc>>,
}

/// One read.
#[derive(Debug, Clone)]
pub struct MyobRead {
    pub clients: Vec<ClientRecord>,
    pub contributions: Vec<Contribution>,
    /// A full read: the documents are the complete set (anything else from this source is gone).
    pub complete: bool,
    /// The next `since`: the provider's clock at the first answer, less
    /// [`crate::http::CURSOR_SAFETY`].
    pub cursor: Option<DateTime<Utc>>,
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

impl MyobClient {
    /// `api_url`: `https://api.myob.com/accountright`; `client_id`: the API key.
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        client_id: &str,
        access_token: SecretString,
        business_id: &str,
    ) -> MyobClient {
        let base = format!("{}/{business_id}", api_url.trim_end_matches('/'));
        MyobClient {
            origin: origin_of(&base),
            http,
            base,
            client_id: client_id.into(),
            access_token,
            calls: 0.into(),
            first_answer: Mutex::new(None),
            pacer: std::sync::Arc::new(crate::pace::Pacer::unlimited()),
        }
    }

    /// Paces every request of this client with `pacer` (the connection's, shared by workers).
    pub fn with_pacer(mut self, pacer: std::sync::Arc<crate::pace::Pacer>) -> MyobClient {
        self.pacer = pacer;
        self
    }

    /// One page of `resource`: the first (`next` = None, `$top` and the `since` filter) or the
    /// one a previous page's `NextPageLink` named. A run resumes from a stored `next`, so the
    /// pages before it are never read again.
    pub async fn page<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        since: Option<DateTime<Utc>>,
        next: Option<&str>,
    ) -> ConnectorResult<MyobPage<T>> {
        let request = match next {
            Some(link) => {
                // The bearer token goes to the API's own host only.
                if origin_of(link) != self.origin {
                    return Err(ConnectorError::Permanent(
                        "MYOB's NextPageLink points to another host".into(),
                    ));
                }
                self.http.get(link)
            }
            None => {
                let mut q = vec![("$top", PAGE_SIZE.to_string())];
                if let Some(s) = since {
                    q.push(("$filter", last_modified_filter(s)));
                }
                self.http.get(format!("{}/{resource}", self.base)).query(&q)
            }
        };
        *self.first_answer.lock().unwrap() = None;
        let mut page: Page<T> = self.get_page(request).await?;
        let answered_at = *self.first_answer.lock().unwrap();
        Ok(MyobPage {
            items: std::mem::take(&mut page.items),
            next: page.next_page_link.take().filter(|l| !l.is_empty()),
            answered_at,
        })
    }

    async fn get_page<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> ConnectorResult<Page<T>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.pacer.acquire().await;
        let (status, headers, body) =
            send_raw(with_headers(request, &self.client_id, &self.access_token)).await?;
        if let Some(date) = crate::http::server_date(&headers) {
            self.first_answer.lock().unwrap().get_or_insert(date);
        }
        if !status.is_success() {
            let e = classify_myob(status, &headers, &body);
            // Every worker of the connection waits, not only this one (the limit is per key).
            // Not the daily limit's hour: that run stops and is rescheduled, and a client kept
            // for other calls must not block for an hour.
            if let ConnectorError::RateLimited { retry_after } = &e {
                if *retry_after <= Duration::from_secs(60) {
                    self.pacer.hold_for(*retry_after);
                }
            }
            return Err(e);
        }
        serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected MYOB response: {e}")))
    }

    /// Every page of `resource`, following `NextPageLink` (only to the API's own origin: the
    /// bearer token goes nowhere else).
    pub async fn list<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<T>> {
        let mut q = vec![("$top", PAGE_SIZE.to_string())];
        if let Some(s) = since {
            q.push(("$filter", last_modified_filter(s)));
        }
        let mut page: Page<T> = self
            .get_page(self.http.get(format!("{}/{resource}", self.base)).query(&q))
            .await?;
        let mut out = std::mem::take(&mut page.items);
        while let Some(next) = page.next_page_link.take().filter(|l| !l.is_empty()) {
            if origin_of(&next) != self.origin {
                return Err(ConnectorError::Permanent(
                    "MYOB's NextPageLink points to another host".into(),
                ));
            }
            page = self.get_page(self.http.get(next)).await?;
            out.append(&mut page.items);
        }
        Ok(out)
    }

    /// A full read (`since` = None) or the documents changed since the previous cursor. Customers
    /// and jobs (small lists the mapping needs whole) are always read in full.
    pub async fn read(
        &self,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> ConnectorResult<MyobRead> {
        *self.first_answer.lock().unwrap() = None;
        let customers: Vec<Customer> = self.list("Contact/Customer", None).await?;
        let jobs: Vec<Job> = self.list("GeneralLedger/Job", None).await?;
        let mut invoices: Vec<Invoice> = self.list("Sale/Invoice", since).await?;
        // The layout reads come second and replace the generic read's invoice of the same id.
        let mut with_lines: HashMap<String, Invoice> = HashMap::new();
        for layout in INVOICE_LAYOUTS {
            for inv in self
                .list::<Invoice>(&format!("Sale/Invoice/{layout}"), since)
                .await?
            {
                with_lines.insert(inv.uid.clone(), inv);
            }
        }
        for inv in &mut invoices {
            if let Some(lined) = with_lines.remove(&inv.uid) {
                *inv = lined;
            }
        }
        invoices.extend(with_lines.into_values());
        let mut bills: Vec<Bill> = Vec::new();
        for layout in BILL_LAYOUTS {
            bills.append(&mut self.list(&format!("Purchase/Bill/{layout}"), since).await?);
        }
        let payments: Vec<Money> = self.list("Sale/CustomerPayment", since).await?;
        let received: Vec<Money> = self.list("Banking/ReceiveMoneyTxn", since).await?;
        let spent: Vec<Money> = self.list("Banking/SpendMoneyTxn", since).await?;
        let contributions = contributions(
            &customers, &jobs, &invoices, &bills, &payments, &received, &spent,
        );
        let started = self.first_answer.lock().unwrap().unwrap_or(now);
        Ok(MyobRead {
            clients: customers
                .iter()
                .map(|c| ClientRecord {
                    client_id: c.uid.clone(),
                    name: c.name(),
                })
                .collect(),
            contributions,
            complete: since.is_none(),
            cursor: Some(crate::http::next_cursor(started, since)),
        })
    }
}

fn contribution(document_id: &str, client_id: &str, date: NaiveDate) -> Contribution {
    Contribution {
        document_id: document_id.to_string(),
        client_id: client_id.to_string(),
        date,
        revenue: Decimal::ZERO,
        expenses: Decimal::ZERO,
        cash_flow: Decimal::ZERO,
        removed: false,
    }
}

/// A document's transaction lines on a job that belongs to a client, summed per client, ex tax
/// (a tax-inclusive document's lines scaled by its ex-tax share).
fn job_lines(
    job_client: &HashMap<&str, String>,
    lines: &[BillLine],
    tax_inclusive: bool,
    ex_tax: Decimal,
    total: Option<Decimal>,
) -> Vec<(String, Decimal)> {
    let total = total.unwrap_or_default();
    let scale = if tax_inclusive && !total.is_zero() {
        ex_tax / total
    } else {
        Decimal::ONE
    };
    let mut per_client: Vec<(String, Decimal)> = Vec::new();
    for line in lines {
        if line.kind.as_deref().is_some_and(|k| k != "Transaction") {
            continue;
        }
        let Some(client) = line
            .job
            .as_ref()
            .and_then(|j| job_client.get(j.uid.as_str()))
        else {
            continue;
        };
        let amount = line.total.unwrap_or_default() * scale;
        match per_client.iter_mut().find(|(c, _)| c == client) {
            Some((_, a)) => *a += amount,
            None => per_client.push((client.clone(), amount)),
        }
    }
    per_client
}

/// Normalizes documents (see the module docs).
pub fn contributions(
    customers: &[Customer],
    jobs: &[Job],
    invoices: &[Invoice],
    bills: &[Bill],
    payments: &[Money],
    received: &[Money],
    spent: &[Money],
) -> Vec<Contribution> {
    let by_name: HashMap<String, &str> = customers
        .iter()
        .filter_map(|c| Some((c.name()?.to_lowercase(), c.uid.as_str())))
        .collect();
    let job_client: HashMap<&str, String> = jobs
        .iter()
        .filter_map(|j| {
            let client = j
                .linked_customer
                .as_ref()
                .map(|c| c.uid.clone())
                .or_else(|| {
                    by_name
                        .get(&j.name.as_deref()?.trim().to_lowercase())
                        .map(|u| u.to_string())
                })?;
            Some((j.uid.as_str(), client))
        })
        .collect();
    let mut out = Vec::new();
    for inv in invoices {
        let Some(date) = calendar_date(&inv.date) else {
            continue;
        };
        // Local currency already (the `*Foreign` twins are the foreign amounts).
        let ex_tax = inv.total_amount.unwrap_or_default() - inv.total_tax.unwrap_or_default();
        // Lines on a job of another client count for that client; the rest of the invoice
        // (lines without such a job, freight) stays with the invoice's customer, so the
        // invoice's clients always add up to its ex-tax total.
        let mut per_client = job_lines(
            &job_client,
            &inv.lines,
            inv.is_tax_inclusive,
            ex_tax,
            inv.total_amount,
        );
        let on_jobs: Decimal = per_client.iter().map(|(_, a)| a.round_dp(2)).sum();
        let rest = ex_tax.round_dp(2) - on_jobs;
        let no_job_lines = per_client.is_empty();
        match per_client.iter_mut().find(|(c, _)| *c == inv.customer.uid) {
            Some((_, a)) => *a = a.round_dp(2) + rest,
            None if !rest.is_zero() || no_job_lines => {
                per_client.push((inv.customer.uid.clone(), rest))
            }
            None => {}
        }
        for (client, amount) in per_client {
            let mut c = contribution(&inv.uid, &client, date);
            c.revenue = amount.round_dp(2);
            out.push(c);
        }
    }
    for bill in bills {
        let Some(date) = calendar_date(&bill.date) else {
            continue;
        };
        let ex_tax = bill.total_amount.unwrap_or_default() - bill.total_tax.unwrap_or_default();
        let per_client = job_lines(
            &job_client,
            &bill.lines,
            bill.is_tax_inclusive,
            ex_tax,
            bill.total_amount,
        );
        for (client, amount) in per_client {
            let mut c = contribution(&bill.uid, &client, date);
            c.expenses = amount.round_dp(2);
            out.push(c);
        }
    }
    // The banking Contact is a CardLink (UID, Name, DisplayID, URI) with no Type: it is a
    // customer when its UID is one of the customers read.
    let customer_uids: std::collections::HashSet<&str> =
        customers.iter().map(|c| c.uid.as_str()).collect();
    let customer_contact = |m: &Money| {
        m.contact
            .as_ref()
            .filter(|c| customer_uids.contains(c.uid.as_str()))
            .map(|c| c.uid.clone())
    };
    let mut cash = |m: &Money, client: Option<String>, amount: Option<Decimal>, sign: Decimal| {
        if let (Some(client), Some(date)) = (client, calendar_date(&m.date)) {
            let mut c = contribution(&m.uid, &client, date);
            c.cash_flow = sign * amount.unwrap_or_default().round_dp(2);
            out.push(c);
        }
    };
    for p in payments {
        cash(
            p,
            p.customer.as_ref().map(|c| c.uid.clone()),
            p.amount_received,
            Decimal::ONE,
        );
    }
    for r in received {
        cash(r, customer_contact(r), r.amount_received, Decimal::ONE);
    }
    for s in spent {
        cash(s, customer_contact(s), s.amount_paid, Decimal::NEGATIVE_ONE);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let customers: Vec<Customer> = serde_json::from_value(serde_json::json!([
            {"UID": "c1", "CompanyName": "Acme Pty Ltd", "IsIndividual": false},
            {"UID": "c2", "FirstName": "Jo", "LastName": "Bloggs", "IsIndividual": true}
        ]))
        .unwrap();
        assert_eq!(customers[1].name().as_deref(), Some("Jo Bloggs"));
        let jobs: Vec<Job> = serde_json::from_value(serde_json::json!([
            {"UID": "j1", "Number": "100", "Name": "Website", "LinkedCustomer": {"UID": "c1", "Name": "Acme Pty Ltd"}},
            {"UID": "j2", "Number": "200", "Name": "jo bloggs", "LinkedCustomer": null}
        ]))
        .unwrap();
        let invoices: Vec<Invoice> = serde_json::from_value(serde_json::json!([
            {"UID": "i1", "Date": "2024-03-01T00:00:00", "Customer": {"UID": "c1"}, "TotalAmount": 110.0, "TotalTax": 10.0},
            {"UID": "i2", "Date": "2024-03-02T00:00:00", "Customer": {"UID": "c2"}, "TotalAmount": 80, "TotalTax": 0,
             "ForeignCurrency": {"Code": "USD"}, "CurrencyExchangeRate": 0.8}
        ]))
        .unwrap();
        let bills: Vec<Bill> = serde_json::from_value(serde_json::json!([
            {"UID": "b1", "Date": "2024-03-03T00:00:00", "IsTaxInclusive": true, "TotalAmount": 220, "TotalTax": 20,
             "Lines": [{"Type": "Transaction", "Total": 110, "Job": {"UID": "j1"}}, {"Total": 55, "Job": {"UID": "j2"}}, {"Total": 55, "Job": null},
                       {"Type": "SubTotal", "Total": 220, "Job": {"UID": "j1"}}]}
        ]))
        .unwrap();
        let money = |v: serde_json::Value| -> Vec<Money> { serde_json::from_value(v).unwrap() };
        let payments = money(
            serde_json::json!([{"UID": "p1", "Date": "2024-03-04T00:00:00", "Customer": {"UID": "c1"}, "AmountReceived": 50}]),
        );
        let received = money(serde_json::json!([
            {"UID": "r1", "Date": "2024-03-04T00:00:00", "Contact": {"UID": "c2", "Name": "Jo Bloggs"}, "AmountReceived": 5},
            {"UID": "r2", "Date": "2024-03-04T00:00:00", "Contact": {"UID": "s1", "Name": "Supplies"}, "AmountReceived": 9}
        ]));
        let spent = money(
            serde_json::json!([{"UID": "s1", "Date": "2024-03-05T00:00:00", "Contact": {"UID": "c1"}, "AmountPaid": 7.5}]),
        );
        let c = contributions(
            &customers, &jobs, &invoices, &bills, &payments, &received, &spent,
        );
        let find = |id: &str, client: &str| {
            c.iter()
                .find(|x| x.document_id == id && x.client_id == client)
                .unwrap()
                .clone()
        };
        assert_eq!(find("i1", "c1").revenue, d("100"));
        assert_eq!(
            find("i2", "c2").revenue,
            d("80"),
            "local amounts as they are: never divided by the rate again"
        );
        assert_eq!(find("i2", "c2").date.to_string(), "2024-03-02");
        assert_eq!(
            find("b1", "c1").expenses,
            d("100"),
            "110 inclusive of 10/110 tax"
        );
        assert_eq!(
            find("b1", "c2").expenses,
            d("50"),
            "job matched by the customer's name"
        );
        assert_eq!(find("p1", "c1").cash_flow, d("50"));
        assert_eq!(find("r1", "c2").cash_flow, d("5"));
        assert_eq!(find("s1", "c1").cash_flow, d("-7.5"));
        assert_eq!(
            c.len(),
            7,
            "the supplier receipt and the job-less line count for no client"
        );
    }

    #[test]
    fn invoice_lines_on_a_job_split_the_invoice_and_keep_its_total() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let jobs: Vec<Job> = serde_json::from_value(serde_json::json!([
            {"UID": "j1", "Name": "Website", "LinkedCustomer": {"UID": "c1"}}
        ]))
        .unwrap();
        // 100.01 ex tax over three lines of 33.337 (a third each): rounding never loses a cent.
        let invoices: Vec<Invoice> = serde_json::from_value(serde_json::json!([
            {"UID": "i1", "Date": "2024-03-01T00:00:00", "Customer": {"UID": "c2"}, "TotalAmount": 100.01, "TotalTax": 0,
             "Lines": [{"Type": "Transaction", "Total": 33.337, "Job": {"UID": "j1"}},
                       {"Type": "Transaction", "Total": 33.337, "Job": {"UID": "j1"}},
                       {"Type": "Transaction", "Total": 33.336, "Job": {"UID": "unknown"}}]},
            {"UID": "i2", "Date": "2024-03-01T00:00:00", "Customer": {"UID": "c1"}, "TotalAmount": 50, "TotalTax": 0,
             "Lines": [{"Type": "Transaction", "Total": 50, "Job": {"UID": "j1"}}]}
        ]))
        .unwrap();
        let c = contributions(&[], &jobs, &invoices, &[], &[], &[], &[]);
        let revenue = |id: &str, client: &str| {
            c.iter()
                .find(|x| x.document_id == id && x.client_id == client)
                .map(|x| x.revenue)
        };
        assert_eq!(revenue("i1", "c1"), Some(d("66.67")));
        assert_eq!(
            revenue("i1", "c2"),
            Some(d("33.34")),
            "the rest, to the cent"
        );
        assert_eq!(
            revenue("i2", "c1"),
            Some(d("50")),
            "its own job: one contribution"
        );
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn filters_and_rate_limits() {
        let t: DateTime<Utc> = "2024-01-02T03:04:05.9Z".parse().unwrap();
        assert_eq!(
            last_modified_filter(t),
            "LastModified ge datetime'2024-01-02T03:04:05'"
        );
        let h = reqwest::header::HeaderMap::new();
        let daily =
            r#"{"Name":"RateLimitError","Message":"API key has exceeded the daily rate limit"}"#;
        assert_eq!(
            classify_myob(reqwest::StatusCode::FORBIDDEN, &h, daily),
            ConnectorError::RateLimited {
                retry_after: Duration::from_secs(3600)
            }
        );
        assert!(matches!(
            classify_myob(reqwest::StatusCode::FORBIDDEN, &h, r#"{"Errors":[]}"#),
            ConnectorError::Permanent(_)
        ));
    }
}
