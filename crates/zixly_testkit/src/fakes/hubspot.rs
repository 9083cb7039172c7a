//! Fake HubSpot: authorize, `/oauth/v3/token` with client credentials in the form body,
//! `/crm/v3/pipelines/deals`, `/crm/v3/objects/{companies,deals}` with the `after` cursor that
//! disappears on the last page, string property values, `archived=true` listing, one object by id
//! (404 `OBJECT_NOT_FOUND` when archived or absent), `POST /crm/v3/objects/{kind}/search` (filters
//! `GTE`/`GT`/`LT`/`LTE` on `hs_lastmodifieddate`, ascending by it, `limit` <= 200, `after`
//! paging, `total`, no history or associations in the results, 400 past 10,000 results), the 401
//! `EXPIRED_AUTHENTICATION` body and the 429 `RATE_LIMIT` body. Every API request is logged as
//! `"METHOD path"` in [`HubspotData::requests`].

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::oauth::{self, ClientAuth, FakeOAuth, OAuthSettings};

pub const CLIENT_ID: &str = "hubspot-client";
pub const CLIENT_SECRET: &str = "hubspot-secret";

#[derive(Default)]
pub struct HubspotData {
    pub pipelines: Vec<Value>,
    /// object type -> objects (each with `archived`)
    pub objects: std::collections::HashMap<String, Vec<Value>>,
    /// What `/account-info/v3/details` answers (`None`: a STANDARD AUD portal).
    pub account: Option<Value>,
    /// `"GET /crm/v3/objects/deals"`, `"POST /crm/v3/objects/deals/search"`, ... in order.
    pub requests: Vec<String>,
    /// HubSpot's CRM search limit (contracts/hubspot.json `rate_limits.search`: per second per
    /// token): a search above it within one second is answered 429 (`Retry-After: 1`). `None`:
    /// unlimited. Benches set their own (time-scaled) figure.
    pub search_per_second: Option<usize>,
    /// When the searches this fake answered (not refused) arrived, for the limit above and for
    /// [`HubspotData::max_searches_per_second`].
    pub search_times: Vec<std::time::Instant>,
    /// 429s (this `Retry-After`) for the n-th request (1-based, counting answered and refused
    /// requests) whose log entry is `request` (e.g. `"POST /crm/v3/objects/deals/search"`):
    /// (request, n, retry after).
    pub rate_limit_requests: Vec<(String, usize, u64)>,
    /// Requests per log entry so far (for `rate_limit_requests`).
    pub requests_by_entry: std::collections::HashMap<String, usize>,
    /// 429s the limits above answered.
    pub rate_limited: u64,
}

impl HubspotData {
    /// The most searches answered within any one second.
    pub fn max_searches_per_second(&self) -> usize {
        let t = &self.search_times;
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi].duration_since(t[lo]) >= std::time::Duration::from_secs(1) {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

/// Logs `entry` and applies the injected 429s and the search limit to it.
#[allow(clippy::result_large_err)]
fn spend(d: &mut HubspotData, entry: String, search: bool) -> Result<(), Response> {
    d.requests.push(entry.clone());
    let n = {
        let n = d.requests_by_entry.entry(entry.clone()).or_default();
        *n += 1;
        *n
    };
    if let Some(i) = d
        .rate_limit_requests
        .iter()
        .position(|(r, at, _)| *r == entry && *at == n)
    {
        let (_, _, wait) = d.rate_limit_requests.remove(i);
        d.rate_limited += 1;
        return Err(rate_limited(wait));
    }
    if search {
        let now = std::time::Instant::now();
        if let Some(limit) = d.search_per_second {
            let in_last_second = d
                .search_times
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < std::time::Duration::from_secs(1))
                .count();
            if in_last_second >= limit {
                d.rate_limited += 1;
                return Err(rate_limited(1));
            }
        }
        d.search_times.push(now);
    }
    Ok(())
}

#[derive(Clone)]
pub struct FakeHubspot {
    pub oauth: FakeOAuth,
    pub data: Arc<Mutex<HubspotData>>,
    pub url: String,
}

impl FakeHubspot {
    pub async fn start() -> FakeHubspot {
        let oauth = FakeOAuth::new(OAuthSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Body,
            expires_in: 1800,
            rotate_refresh_tokens: false,
            grace_uses: 0,
            extra: json!({"hub_id": 4242, "token_type": "bearer"}),
        });
        let data = Arc::new(Mutex::new(HubspotData::default()));
        let router = Router::new()
            .route(
                "/oauth/authorize",
                get(oauth::authorize).with_state(oauth.clone()),
            )
            .route(
                "/oauth/v3/token",
                post(oauth::token).with_state(oauth.clone()),
            )
            .route(
                "/oauth/v1/refresh-tokens/{token}",
                axum::routing::delete(oauth::revoke_path).with_state(oauth.clone()),
            )
            .route("/account-info/v3/details", get(account_details))
            .route("/crm/v3/pipelines/deals", get(pipelines))
            .route("/crm/v3/objects/{kind}", get(objects))
            .route("/crm/v3/objects/{kind}/search", post(search))
            .route("/crm/v3/objects/{kind}/{id}", get(object))
            .route(
                "/crm/v4/objects/deals/{id}/associations/companies",
                get(deal_companies),
            )
            .with_state((oauth.clone(), data.clone()));
        let (url, _handle) = super::serve(router).await;
        FakeHubspot { oauth, data, url }
    }

    pub fn auth_url(&self) -> String {
        format!("{}/oauth/authorize", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/oauth/v3/token", self.url)
    }

    pub fn add(&self, kind: &str, object: Value) {
        let mut d = self.data.lock().unwrap();
        let list = d.objects.entry(kind.into()).or_default();
        list.retain(|o| o["id"] != object["id"]);
        list.push(object);
    }

    /// Replaces (or adds) an object as HubSpot records an edit: `hs_lastmodifieddate` and
    /// `updatedAt` become now.
    pub fn modify(&self, kind: &str, mut object: Value) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        object["properties"]["hs_lastmodifieddate"] = json!(now);
        object["updatedAt"] = json!(now);
        self.add(kind, object);
    }

    /// How many logged requests are exactly `request` (e.g. `"POST /crm/v3/objects/deals/search"`,
    /// `"GET /crm/v3/objects/deals?archived=true"`, `"GET /crm/v3/objects/deals/7"`).
    pub fn requests(&self, request: &str) -> usize {
        self.data
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| *r == request)
            .count()
    }

    /// The logged requests whose path starts with `prefix`.
    pub fn requests_starting(&self, prefix: &str) -> Vec<String> {
        self.data
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// A company's v3 association entries as HubSpot answers them: every associated company once
/// with the unlabeled type, then the primary one (stored as `deal_to_company`) once more with
/// the primary type, companies in descending id order (the order is undefined at HubSpot: a
/// reader taking the first entry gets the wrong company).
fn served_deal(o: &Value) -> Value {
    let mut o = o.clone();
    let Some(list) = o["associations"]["companies"]["results"].as_array() else {
        return o;
    };
    let (ids, primary) = companies_of(list);
    let mut results: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "type": "deal_to_company_unlabeled"}))
        .collect();
    results.extend(
        primary
            .iter()
            .map(|id| json!({"id": id, "type": "deal_to_company"})),
    );
    o["associations"]["companies"]["results"] = json!(results);
    o
}

/// The distinct company ids of stored association entries (descending) and the primary one.
fn companies_of(list: &[Value]) -> (Vec<String>, Option<String>) {
    let mut ids: Vec<String> = list
        .iter()
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    let primary = list
        .iter()
        .find(|a| a["type"] == "deal_to_company")
        .and_then(|a| a["id"].as_str().map(String::from));
    (ids, primary)
}

/// Companies carry only what the contract documents for them (`id`, `properties`).
fn served_company(o: &Value) -> Value {
    json!({"id": o["id"], "properties": o["properties"]})
}

fn modified_ms(o: &Value) -> Option<i64> {
    o["properties"]["hs_lastmodifieddate"]
        .as_str()
        .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map(|t| t.timestamp_millis())
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"status": "error", "message": message, "correlationId": "fake-corr",
                    "category": "VALIDATION_ERROR"}),
        ),
    )
        .into_response()
}

type S = (FakeOAuth, Arc<Mutex<HubspotData>>);

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"status": "error", "message": "The OAuth token used to make this call expired 75 second(s) ago.",
                    "correlationId": "fake-corr", "category": "EXPIRED_AUTHENTICATION"})),
    )
        .into_response()
}

fn rate_limited(retry_after: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                    "correlationId": "fake-corr", "policyName": "SECONDLY"})),
    )
        .into_response();
    r.headers_mut()
        .insert("retry-after", retry_after.to_string().parse().unwrap());
    r
}

async fn account_details(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    let account = data.lock().unwrap().account.clone().unwrap_or_else(|| {
        json!({"portalId": 4242, "accountType": "STANDARD", "companyCurrency": "AUD",
               "additionalCurrencies": [], "timeZone": "Australia/Sydney", "utcOffset": "+10:00",
               "utcOffsetMilliseconds": 36_000_000, "uiDomain": "app.hubspot.com",
               "dataHostingLocation": "na1"})
    });
    Json(account).into_response()
}

async fn pipelines(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    Json(json!({"results": data.lock().unwrap().pipelines})).into_response()
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    archived: Option<bool>,
}

async fn objects(
    State((oauth, data)): State<S>,
    Path(kind): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    let mut d = data.lock().unwrap();
    let archived = q.archived.unwrap_or(false);
    if let Err(r) = spend(
        &mut d,
        format!(
            "GET /crm/v3/objects/{kind}{}",
            if archived { "?archived=true" } else { "" }
        ),
        false,
    ) {
        return r;
    }
    let all: Vec<&Value> = d
        .objects
        .get(&kind)
        .map(|v| {
            v.iter()
                .filter(|o| o["archived"].as_bool().unwrap_or(false) == archived)
                .collect()
        })
        .unwrap_or_default();
    let limit = q.limit.unwrap_or(10).min(100);
    let start: usize = match q.after.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "message": "bad after"})),
            )
                .into_response()
        }
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|o| match kind.as_str() {
            "deals" => served_deal(o),
            "companies" => served_company(o),
            _ => (*o).clone(),
        })
        .collect();
    let mut body = json!({"results": page});
    if start + limit < all.len() {
        let next = (start + limit).to_string();
        body["paging"] = json!({"next": {"after": next, "link": format!("?after={next}")}});
    }
    Json(body).into_response()
}

async fn object(
    State((oauth, data)): State<S>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    let mut d = data.lock().unwrap();
    if let Err(r) = spend(&mut d, format!("GET /crm/v3/objects/{kind}/{id}"), false) {
        return r;
    }
    let found = d.objects.get(&kind).and_then(|v| {
        v.iter()
            .find(|o| o["id"] == id.as_str() && !o["archived"].as_bool().unwrap_or(false))
    });
    match found {
        Some(o) => Json(served_deal(o)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"status": "error", "message": "resource not found",
                        "correlationId": "fake-corr", "category": "OBJECT_NOT_FOUND"})),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct V4Query {
    limit: Option<usize>,
}

/// `GET /crm/v4/objects/deals/{id}/associations/companies`: each company with its association
/// types (always the unlabeled type 341; the primary one also type 5), `limit` <= 500.
async fn deal_companies(
    State((oauth, data)): State<S>,
    Path(id): Path<String>,
    Query(q): Query<V4Query>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    if q.limit.unwrap_or(500) > 500 {
        return bad_request("limit must be at most 500");
    }
    let mut d = data.lock().unwrap();
    if let Err(r) = spend(
        &mut d,
        format!("GET /crm/v4/objects/deals/{id}/associations/companies"),
        false,
    ) {
        return r;
    }
    let Some(deal) = d.objects.get("deals").and_then(|v| {
        v.iter()
            .find(|o| o["id"] == id.as_str() && !o["archived"].as_bool().unwrap_or(false))
    }) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"status": "error", "message": "resource not found",
                        "correlationId": "fake-corr", "category": "OBJECT_NOT_FOUND"})),
        )
            .into_response();
    };
    let list = deal["associations"]["companies"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (ids, primary) = companies_of(&list);
    let results: Vec<Value> = ids
        .iter()
        .map(|c| {
            let mut types =
                vec![json!({"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null})];
            if primary.as_deref() == Some(c.as_str()) {
                types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}));
            }
            json!({"toObjectId": c, "associationTypes": types})
        })
        .collect();
    Json(json!({"results": results})).into_response()
}

async fn search(
    State((oauth, data)): State<S>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = oauth.check_api(&headers, unauthorized, rate_limited) {
        return r;
    }
    let mut d = data.lock().unwrap();
    if let Err(r) = spend(&mut d, format!("POST /crm/v3/objects/{kind}/search"), true) {
        return r;
    }
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    if limit > 200 {
        return bad_request("limit must be at most 200");
    }
    let start: usize = match &body["after"] {
        Value::Null => 0,
        Value::String(s) => match s.parse() {
            Ok(n) => n,
            Err(_) => return bad_request("bad after"),
        },
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        _ => return bad_request("bad after"),
    };
    if start + limit > 10_000 {
        return bad_request("The maximum number of results a search can return is 10,000");
    }
    // One filter group, its filters ANDed; only hs_lastmodifieddate is understood.
    let mut filters: Vec<(String, i64)> = Vec::new();
    for group in body["filterGroups"].as_array().into_iter().flatten() {
        for f in group["filters"].as_array().into_iter().flatten() {
            if f["propertyName"] != "hs_lastmodifieddate" {
                return bad_request("fake: only hs_lastmodifieddate filters");
            }
            let Some(v) = f["value"].as_str().and_then(|v| v.parse::<i64>().ok()) else {
                return bad_request("filter value must be epoch milliseconds");
            };
            filters.push((f["operator"].as_str().unwrap_or("").to_string(), v));
        }
    }
    let mut all: Vec<&Value> = d
        .objects
        .get(&kind)
        .map(|v| {
            v.iter()
                .filter(|o| !o["archived"].as_bool().unwrap_or(false))
                .filter(|o| {
                    let m = modified_ms(o);
                    filters.iter().all(|(op, v)| match (op.as_str(), m) {
                        ("GTE", Some(m)) => m >= *v,
                        ("GT", Some(m)) => m > *v,
                        ("LTE", Some(m)) => m <= *v,
                        ("LT", Some(m)) => m < *v,
                        _ => false,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort_by_key(|o| (modified_ms(o), o["id"].as_str().unwrap_or("").to_string()));
    let wanted: Vec<&str> = body["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|o| {
            let props: serde_json::Map<String, Value> = wanted
                .iter()
                .map(|p| ((*p).to_string(), o["properties"][*p].clone()))
                .collect();
            json!({"id": o["id"], "properties": props, "createdAt": o["createdAt"],
                   "updatedAt": o["updatedAt"], "archived": false})
        })
        .collect();
    let mut out = json!({"total": all.len(), "results": page});
    if start + limit < all.len() {
        out["paging"] = json!({"next": {"after": (start + limit).to_string()}});
    }
    Json(out).into_response()
}
