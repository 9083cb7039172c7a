//! Xero Accounting API: `/connections`, contacts, invoices (ACCREC sales, ACCPAY bills) and
//! payments, with `page` paging and `If-Modified-Since`; normalized into per-document
//! contributions to a client's day.
//!
//! Mapping (issue 5): `client_id` = ContactID. Revenue = sales invoices (ACCREC, AUTHORISED or
//! PAID) SubTotal. Expenses = bill lines (ACCPAY, AUTHORISED or PAID) tracked to the client through
//! the tracking category named in the settings (default `Client`; the option is the contact's name).
//! Cash flow = payments received (ACCREC) minus payments made (ACCPAY) for the contact.
//! VOIDED/DELETED documents contribute nothing: their earlier contribution must be removed.
//! Foreign-currency amounts are converted with the document's own `CurrencyRate`
//! (base = amount / rate). `Date` is a calendar date in the organisation's zone: never shifted.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_crypto::SecretString;

use crate::http::{classify, send_raw};
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(rename = "InvoiceID")]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentInvoice {
    #[serde(rename = "InvoiceID")]
    pub invoice_id: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub contact: ContactRef,
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
    pub invoice: PaymentInvoice,
    #[serde(rename = "UpdatedDateUTC")]
    pub updated_date_utc: Option<String>,
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

/// `If-Modified-Since` value: UTC, whole seconds, rounded up.
pub fn if_modified_since(since: DateTime<Utc>) -> String {
    let secs = since.timestamp() + i64::from(since.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(secs, 0)
        .expect("valid")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
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
    payments: Vec<Payment>,
}

/// A client for one organisation.
pub struct XeroClient {
    http: reqwest::Client,
    api_url: String,
    access_token: SecretString,
    xero_tenant_id: String,
    /// Requests made (for benchmarks and tests).
    pub calls: std::sync::atomic::AtomicU64,
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

/// Picks the organisation: the one named in the settings (`xero_tenant_id`), or the only one.
pub fn choose_organisation(
    connections: &[Connection],
    wanted: Option<&str>,
) -> ConnectorResult<Connection> {
    let orgs: Vec<&Connection> = connections
        .iter()
        .filter(|c| c.tenant_type == "ORGANISATION")
        .collect();
    match (wanted, orgs.as_slice()) {
        (Some(w), _) => orgs
            .iter()
            .find(|c| c.tenant_id == w)
            .map(|c| (*c).clone())
            .ok_or_else(|| ConnectorError::Permanent(format!("organisation {w} is no longer connected"))),
        (None, [one]) => Ok((*one).clone()),
        (None, []) => Err(ConnectorError::Permanent("no Xero organisation is connected".into())),
        (None, many) => Err(ConnectorError::Permanent(format!(
            "{} Xero organisations are connected; choose one in the integration's settings (xero_tenant_id)",
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
        }
    }

    async fn page(
        &self,
        resource: &str,
        query: &[(&str, String)],
        page: usize,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Envelope> {
        let mut request = self
            .http
            .get(format!("{}/api.xro/2.0/{resource}", self.api_url))
            .bearer_auth(self.access_token.expose())
            .header("xero-tenant-id", &self.xero_tenant_id)
            .header("Accept", "application/json")
            .query(query)
            .query(&[
                ("page", page.to_string()),
                ("pageSize", PAGE_SIZE.to_string()),
            ]);
        if let Some(s) = since {
            request = request.header("If-Modified-Since", if_modified_since(s));
        }
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (status, headers, body) = send_raw(request).await?;
        if status.as_u16() == 304 {
            return Ok(Envelope {
                pagination: None,
                contacts: vec![],
                invoices: vec![],
                payments: vec![],
            });
        }
        if !status.is_success() {
            return Err(error(status, &headers, &body));
        }
        serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected Xero response: {e}")))
    }

    /// Every page of `resource`: up to `pagination.pageCount` when the answer has it (no empty
    /// page after an exactly full last page), else until a short page.
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
            if n < PAGE_SIZE || page_count.is_some_and(|c| page >= c) {
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

    pub async fn payments(&self, since: Option<DateTime<Utc>>) -> ConnectorResult<Vec<Payment>> {
        self.all("Payments", &[], since, |e| e.payments).await
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

/// Normalizes documents into contributions. `contact_by_name` maps a lower-cased contact name to
/// its ContactID (for tracking options); `tracking_category` is the settings' category name.
pub fn contributions(
    invoices: &[Invoice],
    payments: &[Payment],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    let mut out = Vec::new();
    for inv in invoices {
        let Some(date) = document_date(inv.date.as_deref(), inv.date_string.as_deref()) else {
            continue;
        };
        let live = counts(&inv.status);
        match inv.kind.as_str() {
            "ACCREC" => out.push(Contribution {
                document_id: inv.invoice_id.clone(),
                client_id: inv.contact.contact_id.clone(),
                date,
                revenue: if live {
                    to_base(inv.sub_total.unwrap_or_default(), inv.currency_rate)
                } else {
                    Decimal::ZERO
                },
                expenses: Decimal::ZERO,
                cash_flow: Decimal::ZERO,
                removed: !live,
            }),
            "ACCPAY" => {
                let inclusive = inv.line_amount_types.as_deref() == Some("Inclusive");
                let mut per_client: HashMap<String, Decimal> = HashMap::new();
                for line in &inv.line_items {
                    let Some(client) = line
                        .tracking
                        .iter()
                        .find(|t| t.name.eq_ignore_ascii_case(tracking_category))
                        .and_then(|t| contact_by_name.get(&t.option.trim().to_lowercase()))
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
                        document_id: inv.invoice_id.clone(),
                        client_id,
                        date,
                        revenue: Decimal::ZERO,
                        expenses: if live {
                            to_base(amount, inv.currency_rate)
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
    for p in payments {
        let Some(date) = document_date(p.date.as_deref(), None) else {
            continue;
        };
        let live = p.status == "AUTHORISED";
        let sign = match p.invoice.kind.as_str() {
            "ACCREC" => Decimal::ONE,
            "ACCPAY" => Decimal::NEGATIVE_ONE,
            _ => continue,
        };
        out.push(Contribution {
            document_id: p.payment_id.clone(),
            client_id: p.invoice.contact.contact_id.clone(),
            date,
            revenue: Decimal::ZERO,
            expenses: Decimal::ZERO,
            cash_flow: if live {
                sign * to_base(p.amount, p.currency_rate)
            } else {
                Decimal::ZERO
            },
            removed: !live,
        });
    }
    out
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
    fn if_modified_since_rounds_up_to_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2009-11-12T00:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(if_modified_since(t), "2009-11-12T00:00:01");
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
        let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
        let c = contributions(&[sale, voided, draft, bill], &[pay], &names, "Client");
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
        assert_eq!(c[4].cash_flow, d("-40"));
        assert_eq!(c.len(), 5);
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
            Err(ConnectorError::Permanent(_))
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
