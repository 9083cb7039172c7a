//! Fake Pipedrive: authorize, `/oauth/token` with HTTP Basic client auth whose answer carries
//! `api_domain` (this server), and API v2 `/api/v2/{organizations,deals,deals/archived,stages}`
//! with the `{success, data, additional_data:{next_cursor}}` envelope (`next_cursor`: a marker of
//! the next page's first item, `null` on the last page), `updated_since` (RFC 3339, inclusive), `status=open,won,lost,deleted` (no status:
//! non-deleted deals; `deleted`: deals deleted in the last 30 days), archived deals only on
//! `/deals/archived`, `limit` up to 500, `x-ratelimit-*` headers on every answer, 429 without
//! `Retry-After` (the wait is in `x-ratelimit-reset`), and the exact 401 body. Tests inject a
//! failure at the n-th request of an endpoint (`fail_requests`), spend the daily budget
//! (`daily_requests_left`: 429 with room left in the burst window) and make pages small
//! (`page_size_cap`).
//!
//! As in the real API (tap-pipedrive #60), deleting a deal does NOT bump its `update_time`.

#![allow(clippy::result_large_err)] // handlers answer `Err(Response)`, like the other fakes

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::oauth::{self, ClientAuth, FakeOAuth, OAuthSettings};

pub const CLIENT_ID: &str = "pipedrive-client";
pub const CLIENT_SECRET: &str = "pipedrive-secret";
/// The burst budget the fake reports in `x-ratelimit-limit`.
pub const BURST_LIMIT: u32 = 80;

pub struct PipedriveData {
    /// The fake's clock for `update_time` (advance with [`FakePipedrive::tick`]).
    pub now: DateTime<Utc>,
    pub organizations: Vec<Value>,
    pub deals: Vec<Value>,
    pub stages: Vec<Value>,
    /// deal id -> when it was deleted (deleted deals are listed for 30 days).
    pub deleted_at: std::collections::HashMap<i64, DateTime<Utc>>,
    /// What the token endpoint answers as `api_domain`.
    pub api_domain: String,
    /// Access tokens expire after this many more API requests (a token expiring mid-read).
    pub expire_after_calls: Option<u32>,
    /// The burst limit (contracts/pipedrive.json `rate_limits`: a rolling 2-second window; tests
    /// set a time-scaled one). While set, `x-ratelimit-limit`/`-remaining`/`-reset` report it and a
    /// request above it is answered 429 with `x-ratelimit-remaining: 0`.
    pub window: super::RequestWindow,
    /// Injected failures: the n-th request (1-based, counting every request with a valid token)
    /// whose log entry is `request` (e.g. `"GET /api/v2/deals"`) is answered `status` instead:
    /// (request, n, status). A 429 is a spent burst window (`x-ratelimit-remaining: 0`,
    /// `x-ratelimit-reset: 1`); any other status an empty error body.
    pub fail_requests: Vec<(String, usize, u16)>,
    /// Requests with a valid token per log entry so far (for `fail_requests` and tests).
    pub requests_by_entry: std::collections::HashMap<String, usize>,
    /// The company's daily token budget, in requests left today (`None`: unlimited). When it
    /// is spent, every request is answered 429 while `x-ratelimit-remaining` still shows room in
    /// the 2-second window (contracts/pipedrive.json edge case `daily_budget_429`: waiting for
    /// `x-ratelimit-reset` does not help).
    pub daily_requests_left: Option<u64>,
    /// Serves at most this many items a page whatever `limit` asks (tests make pages small; the
    /// real API serves `limit`, up to 500). `next_cursor` follows what was served.
    pub page_size_cap: Option<usize>,
}

#[derive(Clone)]
pub struct FakePipedrive {
    pub oauth: FakeOAuth,
    pub data: Arc<Mutex<PipedriveData>>,
    pub url: String,
}

/// v2 timestamps: RFC 3339 in UTC, whole seconds.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl FakePipedrive {
    pub async fn start() -> FakePipedrive {
        let oauth = FakeOAuth::new(OAuthSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Basic,
            expires_in: 3599,
            rotate_refresh_tokens: false,
            grace_uses: 0,
            extra: json!({"token_type": "Bearer", "scope": "deals:read,contacts:read"}),
        });
        let data = Arc::new(Mutex::new(PipedriveData {
            now: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            organizations: vec![],
            deals: vec![],
            stages: vec![],
            deleted_at: Default::default(),
            api_domain: String::new(),
            expire_after_calls: None,
            window: Default::default(),
            fail_requests: vec![],
            requests_by_entry: Default::default(),
            daily_requests_left: None,
            page_size_cap: None,
        }));
        let (url, _handle) = super::serve(router(&oauth, &data)).await;
        data.lock().unwrap().api_domain = url.clone();
        FakePipedrive { oauth, data, url }
    }

    /// The company's domain moves: the same account is also served at a new address, which the
    /// token endpoint answers as `api_domain` from now on (code exchanges and refreshes). The old
    /// address keeps answering, as Pipedrive's would for a while. Returns the new address.
    pub async fn move_api_domain(&self) -> String {
        let (url, _handle) = super::serve(router(&self.oauth, &self.data)).await;
        self.data.lock().unwrap().api_domain = url.clone();
        url
    }

    pub fn auth_url(&self) -> String {
        format!("{}/oauth/authorize", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.url)
    }

    pub fn tick(&self, by: chrono::Duration) {
        self.data.lock().unwrap().now += by;
    }

    /// The access tokens expire after `n` more API requests have been answered.
    pub fn expire_tokens_after(&self, n: u32) {
        self.data.lock().unwrap().expire_after_calls = Some(n);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.data.lock().unwrap().now
    }

    /// Requests with a valid token whose log entry is `entry` (`"GET /api/v2/deals"`) so far,
    /// answered or refused.
    pub fn requests(&self, entry: &str) -> usize {
        let d = self.data.lock().unwrap();
        d.requests_by_entry.get(entry).copied().unwrap_or(0)
    }

    /// Adds or replaces an organization (by `id`), stamping `update_time`.
    pub fn upsert_organization(&self, mut org: Value) {
        let mut d = self.data.lock().unwrap();
        org["update_time"] = json!(ts(d.now));
        if org.get("add_time").is_none() {
            org["add_time"] = json!(ts(d.now));
        }
        org["is_deleted"] = json!(false);
        let id = org["id"].clone();
        d.organizations.retain(|o| o["id"] != id);
        d.organizations.push(org);
    }

    /// Adds or replaces a deal (by `id`), stamping `update_time` (and `add_time`,
    /// `stage_change_time` when absent).
    pub fn upsert_deal(&self, mut deal: Value) {
        let mut d = self.data.lock().unwrap();
        let now = ts(d.now);
        deal["update_time"] = json!(now);
        for k in ["add_time", "stage_change_time"] {
            if deal.get(k).is_none() {
                deal[k] = json!(now);
            }
        }
        for k in ["is_deleted", "is_archived"] {
            if deal.get(k).is_none() {
                deal[k] = json!(false);
            }
        }
        let id = deal["id"].clone();
        d.deals.retain(|o| o["id"] != id);
        d.deals.push(deal);
    }

    /// Deletes a deal the way Pipedrive does: flagged, `update_time` untouched.
    pub fn delete_deal(&self, id: i64) {
        let mut d = self.data.lock().unwrap();
        let now = d.now;
        if let Some(deal) = d.deals.iter_mut().find(|x| x["id"] == json!(id)) {
            deal["is_deleted"] = json!(true);
            d.deleted_at.insert(id, now);
        }
    }

    /// Archives a deal (it leaves `/deals` and appears on `/deals/archived`); bumps `update_time`.
    pub fn archive_deal(&self, id: i64) {
        let mut d = self.data.lock().unwrap();
        let now = ts(d.now);
        if let Some(deal) = d.deals.iter_mut().find(|x| x["id"] == json!(id)) {
            deal["is_archived"] = json!(true);
            deal["update_time"] = json!(now);
        }
    }
}

type S = (FakeOAuth, Arc<Mutex<PipedriveData>>);

/// What the rate-limit headers of an answer report: (limit, remaining, reset seconds).
type Budget = (u32, u32, u64);

/// Expires tokens when the countdown runs out, then checks the token and injected faults (the
/// OAuth fake's, then `fail_requests` for `entry`), then the daily budget, then the burst limit
/// (when set). Returns the budget the answer's headers report, if a limit is set.
fn check(
    oauth: &FakeOAuth,
    data: &Mutex<PipedriveData>,
    headers: &HeaderMap,
    entry: &str,
) -> Result<Option<Budget>, Response> {
    {
        let mut d = data.lock().unwrap();
        match d.expire_after_calls {
            Some(0) => {
                d.expire_after_calls = None;
                oauth.expire_access_tokens();
            }
            Some(n) => d.expire_after_calls = Some(n - 1),
            None => {}
        }
    }
    oauth.check_api(headers, unauthorized, rate_limited)?;
    let mut d = data.lock().unwrap();
    let n = {
        let n = d.requests_by_entry.entry(entry.to_string()).or_default();
        *n += 1;
        *n
    };
    if let Some(i) = d
        .fail_requests
        .iter()
        .position(|(r, at, _)| r == entry && *at == n)
    {
        let (_, _, status) = d.fail_requests.remove(i);
        return Err(if status == 429 {
            rate_limited(1)
        } else {
            (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"success": false, "error": "injected failure", "errorCode": status})),
            )
                .into_response()
        });
    }
    match d.daily_requests_left {
        Some(0) => {
            // The burst window has room: only the day's budget is spent.
            let r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"success": false, "error": "Too many requests", "errorCode": 429})),
            )
                .into_response();
            return Err(with_rate_headers(r, BURST_LIMIT, BURST_LIMIT - 1, 2));
        }
        Some(left) => d.daily_requests_left = Some(left - 1),
        None => {}
    }
    let Some((calls, per)) = d.window.limit else {
        d.window.times.push(std::time::Instant::now());
        return Ok(None);
    };
    let limit = calls as u32;
    match d.window.admit() {
        Ok(remaining) => Ok(Some((
            limit,
            remaining.unwrap_or_default() as u32,
            super::ceil_secs(per),
        ))),
        Err(wait) => {
            let r = rate_limited(super::ceil_secs(wait));
            Err(with_rate_headers(r, limit, 0, super::ceil_secs(wait)))
        }
    }
}

fn with_rate_headers(mut r: Response, limit: u32, remaining: u32, reset: u64) -> Response {
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", limit.into());
    h.insert("x-ratelimit-remaining", remaining.into());
    h.insert("x-ratelimit-reset", reset.into());
    r
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"success": false, "error": "unauthorized access", "errorCode": 401,
                    "error_info": "Please check developers.pipedrive.com"}),
        ),
    )
        .into_response()
}

fn rate_limited(reset: u64) -> Response {
    let r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"success": false, "error": "Too many requests", "errorCode": 429})),
    )
        .into_response();
    with_rate_headers(r, BURST_LIMIT, 0, reset)
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"success": false, "error": message, "errorCode": 400})),
    )
        .into_response()
}

/// `POST /oauth/token`: the shared token endpoint, with `api_domain` added to the answer.
async fn token(
    State((oauth, data)): State<S>,
    headers: HeaderMap,
    form: Form<std::collections::HashMap<String, String>>,
) -> Response {
    let response = oauth::token(State(oauth), headers, form).await;
    if !response.status().is_success() {
        return response;
    }
    let api_domain = data.lock().unwrap().api_domain.clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap();
    body["api_domain"] = json!(api_domain);
    Json(body).into_response()
}

fn router(oauth: &FakeOAuth, data: &Arc<Mutex<PipedriveData>>) -> Router {
    let state = (oauth.clone(), data.clone());
    Router::new()
        .route(
            "/oauth/authorize",
            get(oauth::authorize).with_state(oauth.clone()),
        )
        .route("/oauth/token", post(token))
        .route("/api/v2/deals", get(deals))
        .route("/api/v2/deals/archived", get(archived_deals))
        .route("/api/v2/{resource}", get(list))
        .with_state(state)
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    updated_since: Option<String>,
    status: Option<String>,
    sort_by: Option<String>,
    sort_direction: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    pipeline_id: Option<i64>,
}

/// An HTTP `Date` on the fake clock.
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// An item's place in a listing's order: (`update_time` when sorted by it, id).
type SortKey = (Option<DateTime<Utc>>, Option<i64>);

fn sort_key(v: &Value, by_update_time: bool) -> SortKey {
    (
        by_update_time.then(|| time_of(v, "update_time")).flatten(),
        v["id"].as_i64(),
    )
}

/// The contract's cursor: "opaque marker of the first item of the next page" — that item's sort
/// key, not its offset, so an item that moves in the order meanwhile (updated, hence last when
/// sorted by `update_time`) shifts no other item past the marker.
fn encode_cursor(key: &SortKey) -> String {
    let v = json!({"t": key.0.map(ts), "id": key.1});
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn decode_cursor(c: &str) -> Option<SortKey> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let t = match &v["t"] {
        Value::Null => None,
        t => Some(t.as_str()?.parse().ok()?),
    };
    Some((t, Some(v["id"].as_i64()?)))
}

fn time_of(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v[key].as_str().and_then(|s| s.parse().ok())
}

/// Filters by `updated_since`, sorts, pages; answers the v2 envelope with rate-limit headers.
fn page(
    oauth: &FakeOAuth,
    budget: Option<Budget>,
    (now, cap): (DateTime<Utc>, Option<usize>),
    items: Vec<Value>,
    q: &ListQuery,
) -> Response {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return bad_request("limit must be between 1 and 500");
    }
    let limit = cap.map_or(limit, |c| limit.min(c));
    let since = match q.updated_since.as_deref() {
        None => None,
        Some(s) => match s.parse::<DateTime<Utc>>() {
            Ok(t) => Some(t),
            Err(_) => return bad_request("updated_since must be an RFC 3339 date-time"),
        },
    };
    let marker = match q.cursor.as_deref() {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(k) => Some(k),
            None => return bad_request("invalid cursor"),
        },
    };
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|v| since.is_none_or(|s| time_of(v, "update_time").is_some_and(|t| t >= s)))
        .collect();
    let by_update_time = match q.sort_by.as_deref().unwrap_or("id") {
        "update_time" => true,
        "id" => false,
        _ => return bad_request("invalid sort_by"),
    };
    items.sort_by_key(|v| sort_key(v, by_update_time));
    let desc = q.sort_direction.as_deref() == Some("desc");
    if desc {
        items.reverse();
    }
    // From the marked item on (or, if it moved, the first after its old place).
    let offset = marker.map_or(0, |m| {
        items
            .iter()
            .position(|v| {
                let k = sort_key(v, by_update_time);
                if desc {
                    k <= m
                } else {
                    k >= m
                }
            })
            .unwrap_or(items.len())
    });
    let total = items.len();
    let next = (offset + limit < total)
        .then(|| encode_cursor(&sort_key(&items[offset + limit], by_update_time)));
    let data: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    // Without a limit set, a made-up countdown that never reaches 0 (nothing is refused).
    let (limit, remaining, reset) = budget.unwrap_or_else(|| {
        let calls = oauth.api_calls() as u32;
        (
            BURST_LIMIT,
            BURST_LIMIT.saturating_sub(calls % BURST_LIMIT),
            2,
        )
    });
    let mut r = with_rate_headers(
        Json(json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}))
            .into_response(),
        limit,
        remaining,
        reset,
    );
    r.headers_mut()
        .insert("date", http_date(now).parse().unwrap());
    r
}

fn deal_list(d: &PipedriveData, q: &ListQuery, archived: bool) -> Result<Vec<Value>, Response> {
    let statuses: Vec<String> = match q.status.as_deref() {
        None => vec!["open".into(), "won".into(), "lost".into()],
        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
    };
    if let Some(bad) = statuses
        .iter()
        .find(|s| !["open", "won", "lost", "deleted"].contains(&s.as_str()))
    {
        return Err(bad_request(&format!("invalid status {bad}")));
    }
    let want_deleted = statuses.iter().any(|s| s == "deleted");
    Ok(d.deals
        .iter()
        .filter(|deal| deal["is_archived"].as_bool().unwrap_or(false) == archived)
        .filter(|deal| {
            q.pipeline_id
                .is_none_or(|p| deal["pipeline_id"] == json!(p))
        })
        .filter(|deal| {
            if deal["is_deleted"].as_bool().unwrap_or(false) {
                let id = deal["id"].as_i64().unwrap_or_default();
                want_deleted
                    && d.deleted_at
                        .get(&id)
                        .is_some_and(|at| d.now - *at <= chrono::Duration::days(30))
            } else {
                statuses
                    .iter()
                    .any(|s| deal["status"].as_str() == Some(s.as_str()))
            }
        })
        .cloned()
        .collect())
}

async fn deals(
    State((oauth, data)): State<S>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let budget = match check(&oauth, &data, &headers, "GET /api/v2/deals") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (now, items) = {
        let d = data.lock().unwrap();
        ((d.now, d.page_size_cap), deal_list(&d, &q, false))
    };
    match items {
        Ok(items) => page(&oauth, budget, now, items, &q),
        Err(r) => r,
    }
}

async fn archived_deals(
    State((oauth, data)): State<S>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let budget = match check(&oauth, &data, &headers, "GET /api/v2/deals/archived") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (now, items) = {
        let d = data.lock().unwrap();
        ((d.now, d.page_size_cap), deal_list(&d, &q, true))
    };
    match items {
        Ok(items) => page(&oauth, budget, now, items, &q),
        Err(r) => r,
    }
}

async fn list(
    State((oauth, data)): State<S>,
    Path(resource): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let budget = match check(&oauth, &data, &headers, &format!("GET /api/v2/{resource}")) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (now, items) = {
        let d = data.lock().unwrap();
        let items =
            match resource.as_str() {
                "organizations" => d
                    .organizations
                    .iter()
                    .filter(|o| !o["is_deleted"].as_bool().unwrap_or(false))
                    .cloned()
                    .collect(),
                "stages" => d
                    .stages
                    .iter()
                    .filter(|s| q.pipeline_id.is_none_or(|p| s["pipeline_id"] == json!(p)))
                    .cloned()
                    .collect(),
                _ => return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"success": false, "error": "Unknown method .", "errorCode": 404})),
                )
                    .into_response(),
            };
        ((d.now, d.page_size_cap), items)
    };
    let q = if resource == "stages" {
        // Stages have no update filter.
        ListQuery {
            updated_since: None,
            ..q
        }
    } else {
        q
    };
    page(&oauth, budget, now, items, &q)
}
