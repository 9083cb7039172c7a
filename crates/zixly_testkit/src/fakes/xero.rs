//! Fake Xero: identity (authorize refusing undocumented scopes and, for apps created from March
//! 2026, the broad ones; token with HTTP Basic and rotating refresh tokens with a grace
//! period), `/connections` with several organisations, `/api.xro/2.0/Organisation` (its
//! `BaseCurrency`), and `/api.xro/2.0/{Contacts,Invoices,CreditNotes,Payments,BankTransactions,Prepayments,Overpayments}` with `page`/`pageSize`, `If-Modified-Since`, `IDs` on invoices, `/Date()/` values, the `xero-tenant-id`
//! header, the 401 `TokenExpired` body and 429 with `Retry-After` + `X-Rate-Limit-Problem`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::oauth::{self, ClientAuth, FakeOAuth, OAuthSettings};

pub const CLIENT_ID: &str = "xero-client";
pub const CLIENT_SECRET: &str = "xero-secret";

#[derive(Default)]
pub struct XeroData {
    /// (xero tenant id, name)
    pub organisations: Vec<(String, String)>,
    /// resource name -> (updated at, document) in insertion order
    pub records: std::collections::HashMap<&'static str, Vec<(DateTime<Utc>, Value)>>,
    /// The fake's clock for `UpdatedDateUTC` (advance with [`FakeXero::tick`]).
    pub now: DateTime<Utc>,
    /// `BaseCurrency` of every organisation's `/Organisation` (AUD unless set).
    pub base_currency: String,
    /// `X-Rate-Limit-Problem` of the 429s (`minute` when `None`; Xero also sends `day`).
    pub rate_limit_problem: Option<String>,
    /// The app was created before 2026-03-02 and may still ask for the broad
    /// `accounting.transactions*` scopes; a newer app (the default) is refused them.
    pub legacy_app: bool,
    /// Serve at most this many items a page whatever `pageSize` asks (the documented maximum
    /// of 1000 is unverified): `pagination.pageCount` stays truthful.
    pub page_size_cap: Option<usize>,
    /// Xero's per-organisation minute limit, in fixed windows of the given length (time-scaled
    /// in benchmarks): every answer carries `X-MinLimit-Remaining`; an excess is a 429 `minute`
    /// with `Retry-After` (the window's rest, whole seconds, at least 1).
    pub minute_limit: Option<(u32, std::time::Duration)>,
    /// Xero's day limit: calls left today, sent as `X-DayLimit-Remaining`; at 0, a 429 `day` with
    /// `Retry-After` [`XeroData::day_retry_after`].
    pub day_remaining: Option<u32>,
    pub day_retry_after: u64,
    /// 429s (`minute`, this `Retry-After`) for the n-th request (1-based, counting every request
    /// of the resource this fake answered or refused): (resource, n, retry after).
    pub rate_limit_requests: Vec<(String, usize, u64)>,
    /// Requests per resource so far (for `rate_limit_requests`).
    pub requests_by_resource: std::collections::HashMap<String, usize>,
    /// 429s the limits above answered.
    pub rate_limited: u64,
    minute_window: Option<(std::time::Instant, u32)>,
}

/// The limits of [`XeroData`] for one API request of `resource`: the rate-limit headers to
/// send, or the 429 to answer.
#[allow(clippy::result_large_err)]
fn spend(d: &mut XeroData, resource: &str) -> Result<HeaderMap, Response> {
    let n = {
        let n = d
            .requests_by_resource
            .entry(resource.to_string())
            .or_default();
        *n += 1;
        *n
    };
    if let Some(i) = d
        .rate_limit_requests
        .iter()
        .position(|(r, at, _)| r == resource && *at == n)
    {
        let (_, _, wait) = d.rate_limit_requests.remove(i);
        d.rate_limited += 1;
        return Err(rate_limited(wait, "minute"));
    }
    let mut headers = HeaderMap::new();
    // The fake's clock is Xero's clock: `Date` says what time it is there.
    headers.insert(
        "date",
        d.now
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
            .parse()
            .expect("a header value"),
    );
    if let Some(left) = d.day_remaining {
        if left == 0 {
            d.rate_limited += 1;
            return Err(rate_limited(d.day_retry_after, "day"));
        }
        d.day_remaining = Some(left - 1);
        headers.insert("x-daylimit-remaining", (left - 1).into());
    }
    if let Some((limit, per)) = d.minute_limit {
        let now = std::time::Instant::now();
        let (start, used) = match d.minute_window {
            Some((start, used)) if now - start < per => (start, used),
            _ => (now, 0),
        };
        if used >= limit {
            d.rate_limited += 1;
            let rest = per.saturating_sub(now - start).as_secs().max(1);
            return Err(rate_limited(rest, "minute"));
        }
        d.minute_window = Some((start, used + 1));
        headers.insert("x-minlimit-remaining", (limit - used - 1).into());
    }
    Ok(headers)
}

/// Scopes the fake's identity server accepts (contracts/xero.json `oauth.scopes`, plus OpenID).
pub const GRANULAR_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.invoices.read",
    "accounting.payments.read",
    "accounting.banktransactions.read",
    "accounting.contacts.read",
    "accounting.settings.read",
    "accounting.reports.profitandloss.read",
];

/// The broad scopes only apps created before 2026-03-02 may request.
pub const BROAD_SCOPES: &[&str] = &[
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.reports.read",
];

#[derive(Clone)]
pub struct FakeXero {
    pub oauth: FakeOAuth,
    pub data: Arc<Mutex<XeroData>>,
    pub url: String,
}

pub fn ms_date(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

/// The milliseconds of a `/Date(ms+0000)/` value.
fn parse_ms(s: &str) -> Option<i64> {
    s.strip_prefix("/Date(")?
        .split(['+', '-', ')'])
        .next()?
        .parse()
        .ok()
}

impl FakeXero {
    pub async fn start() -> FakeXero {
        let oauth = FakeOAuth::new(OAuthSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Basic,
            expires_in: 1800,
            rotate_refresh_tokens: true,
            grace_uses: 1,
            extra: json!({"scope": "offline_access accounting.invoices.read accounting.payments.read accounting.banktransactions.read accounting.contacts.read accounting.settings.read"}),
        });
        let data = Arc::new(Mutex::new(XeroData {
            organisations: vec![("org-1".into(), "Demo Org".into())],
            now: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            base_currency: "AUD".into(),
            ..Default::default()
        }));
        let state = (oauth.clone(), data.clone());
        let router = Router::new()
            .route("/identity/connect/authorize", get(authorize))
            .route(
                "/connect/token",
                post(oauth::token).with_state(oauth.clone()),
            )
            .route(
                "/connect/revocation",
                post(oauth::revoke_form).with_state(oauth.clone()),
            )
            .route("/connections", get(connections))
            .route("/api.xro/2.0/Organisation", get(organisation))
            .route("/api.xro/2.0/{resource}", get(list))
            .with_state(state);
        let (url, _handle) = super::serve(router).await;
        FakeXero { oauth, data, url }
    }

    pub fn auth_url(&self) -> String {
        format!("{}/identity/connect/authorize", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.url)
    }

    /// The organisations the grant reaches (`GET /connections`, in this order), as (tenantId,
    /// tenantName); tenantIds should be UUIDs, as the contract documents.
    pub fn set_organisations(&self, orgs: &[(&str, &str)]) {
        self.data.lock().unwrap().organisations = orgs
            .iter()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect();
    }

    /// Advances the fake clock.
    pub fn tick(&self, by: chrono::Duration) {
        self.data.lock().unwrap().now += by;
    }

    /// Replaces (by `id_field`) a stored document of `resource` without re-stamping it: its
    /// `UpdatedDateUTC`, and the time `If-Modified-Since` is judged by, stay as they were — an edit
    /// Xero does not re-stamp (the contract's `ims_gaps` edge case), which only a complete read
    /// sees. Panics when there is no such document.
    pub fn replace_unstamped(&self, resource: &'static str, id_field: &str, mut doc: Value) {
        let mut d = self.data.lock().unwrap();
        let list = d.records.entry(resource).or_default();
        let id = doc[id_field].clone();
        let slot = list
            .iter_mut()
            .find(|(_, v)| v[id_field] == id)
            .unwrap_or_else(|| panic!("no {resource} document {id} to replace"));
        doc["UpdatedDateUTC"] = slot.1["UpdatedDateUTC"].clone();
        slot.1 = doc;
    }

    /// Adds or replaces (by `id_field`) a document of `resource`, stamped with the fake clock.
    pub fn upsert(&self, resource: &'static str, id_field: &str, mut doc: Value) {
        let mut d = self.data.lock().unwrap();
        let now = d.now;
        doc["UpdatedDateUTC"] = json!(ms_date(now));
        let list = d.records.entry(resource).or_default();
        let id = doc[id_field].clone();
        list.retain(|(_, v)| v[id_field] != id);
        list.push((now, doc));
    }
}

type S = (FakeOAuth, Arc<Mutex<XeroData>>);

/// A stable UUID for `what` of `key` (ids Xero serves are UUIDs; the contract checks the format).
fn uuid_of(what: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{what}:{key}"));
    uuid::Builder::from_random_bytes(h[..16].try_into().expect("16 bytes"))
        .into_uuid()
        .to_string()
}

/// Xero's authorize page refuses a scope it does not know, and the broad
/// `accounting.transactions*` scopes for an app created on or after 2026-03-02
/// (`invalid_scope`), before asking the user anything.
async fn authorize(
    State((oauth, data)): State<S>,
    Query(q): Query<oauth::AuthorizeQuery>,
) -> Response {
    let legacy = data.lock().unwrap().legacy_app;
    let requested = q.scope.clone().unwrap_or_default();
    if let Some(bad) = requested
        .split_whitespace()
        .find(|s| !(GRANULAR_SCOPES.contains(s) || (legacy && BROAD_SCOPES.contains(s))))
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("invalid_scope: {bad} is not available to this app"),
        )
            .into_response();
    }
    oauth::authorize(State(oauth), Query(q)).await
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"Type": null, "Title": "Unauthorized", "Status": 401,
                    "Detail": "TokenExpired: token expired at 01/01/2024 00:30:00", "Instance": "fake", "Extensions": {}})),
    )
        .into_response()
}

fn rate_limited(retry_after: u64, problem: &str) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, "").into_response();
    r.headers_mut()
        .insert("retry-after", retry_after.to_string().parse().unwrap());
    r.headers_mut()
        .insert("x-rate-limit-problem", problem.parse().unwrap());
    r
}

/// Checks the token and injected faults; 429s carry the configured `X-Rate-Limit-Problem`.
#[allow(clippy::result_large_err)]
fn check(oauth: &FakeOAuth, data: &Mutex<XeroData>, headers: &HeaderMap) -> Result<(), Response> {
    let problem = data
        .lock()
        .unwrap()
        .rate_limit_problem
        .clone()
        .unwrap_or_else(|| "minute".into());
    oauth.check_api(headers, unauthorized, |s| rate_limited(s, &problem))
}

async fn connections(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let d = data.lock().unwrap();
    Json(
        d.organisations
            .iter()
            .map(|(id, name)| json!({"id": uuid_of("connection", id), "authEventId": uuid_of("auth-event", id), "tenantId": id, "tenantType": "ORGANISATION",
                                     "tenantName": name, "createdDateUtc": "2024-01-01T00:00:00", "updatedDateUtc": "2024-01-01T00:00:00"}))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// The connected organisation named by the `xero-tenant-id` header, or Xero's 403.
#[allow(clippy::result_large_err)]
fn organisation_of<'a>(
    d: &'a XeroData,
    headers: &HeaderMap,
) -> Result<&'a (String, String), Response> {
    let org = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    d.organisations.iter().find(|(id, _)| id == org).ok_or_else(|| {
        (StatusCode::FORBIDDEN, Json(json!({"Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"})))
            .into_response()
    })
}

/// `GET /Organisation` of the organisation named by `xero-tenant-id` (403 for another).
async fn organisation(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let mut d = data.lock().unwrap();
    let (id, name) = match organisation_of(&d, &headers) {
        Ok(org) => org.clone(),
        Err(r) => return r,
    };
    let limits = match spend(&mut d, "Organisation") {
        Ok(h) => h,
        Err(r) => return r,
    };
    let mut r = Json(json!({"Id": "fake", "Status": "OK", "ProviderName": "Zixly", "DateTimeUTC": ms_date(d.now),
                "Organisations": [{"OrganisationID": id, "Name": name, "BaseCurrency": d.base_currency,
                                   "CountryCode": "AU", "Timezone": "AUSEASTERNSTANDARDTIME",
                                   "Version": "AU", "OrganisationStatus": "ACTIVE"}]}))
    .into_response();
    r.headers_mut().extend(limits);
    r
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    page: Option<usize>,
    page_size: Option<usize>,
    /// `IDs=a,b` on `/Invoices`: only these InvoiceIDs.
    #[serde(rename = "IDs")]
    ids: Option<String>,
    /// `order=UpdatedDateUTC ASC` (the only order the fake knows; others are refused).
    order: Option<String>,
}

async fn list(
    State((oauth, data)): State<S>,
    Path(resource): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let mut d = data.lock().unwrap();
    if let Err(r) = organisation_of(&d, &headers) {
        return r;
    }
    let limits = match spend(&mut d, &resource) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let since = headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").ok())
        .map(|n| n.and_utc());
    let key: &'static str = match resource.as_str() {
        "Contacts" => "Contacts",
        "Invoices" => "Invoices",
        "Payments" => "Payments",
        "BankTransactions" => "BankTransactions",
        "CreditNotes" => "CreditNotes",
        "Prepayments" => "Prepayments",
        "Overpayments" => "Overpayments",
        _ => return (StatusCode::NOT_FOUND, "").into_response(),
    };
    let items: Vec<&Value> = d
        .records
        .get(key)
        .map(|v| {
            v.iter()
                .filter(|(at, _)| since.is_none_or(|s| *at >= s))
                .filter(|(_, doc)| {
                    q.ids.as_deref().is_none_or(|ids| {
                        key == "Invoices"
                            && doc["InvoiceID"]
                                .as_str()
                                .is_some_and(|id| ids.split(',').any(|w| w == id))
                    })
                })
                .map(|(_, doc)| doc)
                .collect()
        })
        .unwrap_or_default();
    let mut items = items;
    match q.order.as_deref().map(str::trim) {
        None => {}
        Some(o) if o.eq_ignore_ascii_case("UpdatedDateUTC ASC") => {
            // Records are kept in update order; a stable sort keeps equal stamps in it.
            items.sort_by_key(|doc| doc["UpdatedDateUTC"].as_str().and_then(parse_ms));
        }
        Some(o) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"Type": "ValidationException", "Message": format!("the fake cannot order by {o}")})),
            )
                .into_response()
        }
    }
    let size = q
        .page_size
        .unwrap_or(100)
        .min(1000)
        .min(d.page_size_cap.unwrap_or(usize::MAX))
        .max(1);
    let page = q.page.unwrap_or(1).max(1);
    let item_count = items.len();
    let slice: Vec<&Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut r = Json(json!({
        "Id": "fake", "Status": "OK", "ProviderName": "zixly-test", "DateTimeUTC": ms_date(d.now),
        "pagination": {"page": page, "pageSize": size, "pageCount": item_count.div_ceil(size), "itemCount": item_count},
        key: slice,
    }))
    .into_response();
    r.headers_mut().extend(limits);
    r
}
