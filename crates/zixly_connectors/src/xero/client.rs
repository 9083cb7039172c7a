//! The HTTP side of Xero: `/connections` and the organisation choice, a paced client for one
//! organisation, and the keyset page reader of the document streams.

use chrono::{DateTime, Utc};
use zixly_crypto::SecretString;

use super::model::*;
use crate::http::{classify, send_raw};
use crate::pace::{header_u64, Pacer};
use crate::{ConnectorError, ConnectorResult};

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

#[cfg(test)]
mod tests {
    use super::*;

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
