//! Fake MYOB AccountRight (MYOB Business API), as contracts/myob.json describes it:
//! `/oauth2/account/authorize` (refuses scopes that are not documented `sme-*` ones or the
//! legacy `CompanyFile` with `error=invalid_scope`; the redirect carries `businessId` and
//! `businessName` only with `prompt=consent`), `/oauth2/v1/authorize` as token endpoint (client id
//! and secret in the form body, `expires_in` 1200, every refresh rotates the refresh token and
//! retires the old one; [`FakeMyob::expire_consent`] makes MYOB refuse the refresh), `GET
//! /accountright/` (the company-file list: EMPTY for keys issued since March 2025 unless
//! [`MyobData::legacy_key`]), `GET /accountright/{businessId}/` (the file's own record) and `GET
//! /accountright/{businessId}/{resource}` for every resource of [`RESOURCES`]; an API call whose
//! resource needs a scope the last authorization did not ask for answers 403. Invoices and bills
//! are stored per layout: `Sale/Invoice/{layout}` and `Purchase/Bill/{layout}` carry `Lines`, the
//! generic `Sale/Invoice` and `Purchase/Bill` list every layout WITHOUT lines (with
//! `InvoiceType`/`BillType`). Lists answer with
//! `{Items, NextPageLink, Count}`, OData `$top` (max 1000) / `$skip` / `$filter=LastModified
//! gt|ge datetime'...'`, dates without offsets, the required `x-myobapi-key` and
//! `x-myobapi-version: v2` headers, 403 `RateLimitError` (per second or daily) instead of 429, and
//! deletions that simply remove the record. The 401 body (`OAuthTokenIsInvalid`) follows MYOB's
//! `Errors` envelope; its exact wording is UNVERIFIED in providers.md.

#![allow(clippy::result_large_err)] // handlers answer `Err(Response)`, like the other fakes

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::oauth::{self, ClientAuth, FakeOAuth, OAuthSettings};

pub const CLIENT_ID: &str = "myob-api-key";
pub const CLIENT_SECRET: &str = "myob-secret";
pub const RESOURCES: [&str; 16] = [
    "Contact/Customer",
    "GeneralLedger/Job",
    "Sale/Invoice",
    "Sale/Invoice/Service",
    "Sale/Invoice/Item",
    "Sale/Invoice/Professional",
    "Sale/Invoice/TimeBilling",
    "Sale/Invoice/Miscellaneous",
    "Purchase/Bill",
    "Purchase/Bill/Service",
    "Purchase/Bill/Item",
    "Purchase/Bill/Professional",
    "Purchase/Bill/Miscellaneous",
    "Sale/CustomerPayment",
    "Banking/ReceiveMoneyTxn",
    "Banking/SpendMoneyTxn",
];

/// Scopes MYOB documents (contracts/myob.json `oauth.scopes.available`, plus the legacy one).
pub const DOCUMENTED_SCOPES: [&str; 14] = [
    "sme-general-ledger",
    "sme-sales",
    "sme-timebilling",
    "sme-inventory",
    "sme-contacts-customer",
    "sme-contacts-supplier",
    "sme-contacts-personal",
    "sme-contacts-employee",
    "sme-banking",
    "sme-purchases",
    "sme-payroll",
    "sme-company-settings",
    "sme-company-file",
    "CompanyFile",
];

/// The scope a resource needs (contracts/myob.json `oauth.scopes.needed`).
pub fn scope_of(resource: &str) -> &'static str {
    match resource.split('/').next().unwrap_or_default() {
        "Sale" => "sme-sales",
        "Purchase" => "sme-purchases",
        "Banking" => "sme-banking",
        "Contact" => "sme-contacts-customer",
        "GeneralLedger" => "sme-general-ledger",
        _ => "sme-company-file",
    }
}

/// `Sale/Invoice` + doc -> `(Sale/Invoice/{layout}, layout field)`: where a document is stored.
fn layout_of(resource: &str, doc: &Value) -> Option<(String, &'static str)> {
    let field = match resource {
        "Sale/Invoice" => "InvoiceType",
        "Purchase/Bill" => "BillType",
        _ => return None,
    };
    let layout = doc[field].as_str().unwrap_or("Service");
    Some((format!("{resource}/{layout}"), field))
}

pub struct MyobData {
    pub now: DateTime<Utc>,
    /// (id, name)
    pub company_files: Vec<(String, String)>,
    /// resource -> records (per company file id)
    pub records: HashMap<(String, String), Vec<Value>>,
    /// The daily budget is spent: every API call answers the daily RateLimitError.
    pub daily_limit_reached: bool,
    pub expire_after_calls: Option<u32>,
    /// An API key from before March 2025: the company-file list names the files.
    pub legacy_key: bool,
    /// The scopes the last authorization asked for (None: no authorization seen yet).
    pub granted_scopes: Option<Vec<String>>,
    /// One-shot: the page of this resource at this `$skip` answers the per-second
    /// RateLimitError (a rate limit in the middle of a read).
    pub rate_limit_page: Option<(String, usize)>,
    /// Every list page served: (resource, `$skip`), to check that no page is read twice.
    pub pages_served: Vec<(String, usize)>,
    row_version: u64,
}

#[derive(Clone)]
pub struct FakeMyob {
    pub oauth: FakeOAuth,
    pub data: Arc<Mutex<MyobData>>,
    pub url: String,
}

/// MYOB's offset-less timestamps.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

impl FakeMyob {
    pub async fn start() -> FakeMyob {
        let oauth = FakeOAuth::new(OAuthSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Body,
            expires_in: 1200,
            rotate_refresh_tokens: true,
            grace_uses: 0,
            extra: json!({"token_type": "bearer", "scope": "sme-company-file sme-sales sme-purchases sme-banking",
                          "user": {"uid": "u-1", "username": "owner@example.com"}}),
        });
        let data = Arc::new(Mutex::new(MyobData {
            now: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            company_files: vec![("cf-1".into(), "Clearwater Pty Ltd".into())],
            records: HashMap::new(),
            daily_limit_reached: false,
            expire_after_calls: None,
            legacy_key: false,
            rate_limit_page: None,
            pages_served: Vec::new(),
            granted_scopes: None,
            row_version: 1000,
        }));
        let state = (oauth.clone(), data.clone());
        let router = Router::new()
            .route("/oauth2/account/authorize", get(authorize))
            .route(
                "/oauth2/v1/authorize",
                post(oauth::token).with_state(oauth.clone()),
            )
            .route("/accountright/", get(company_files))
            .route("/accountright/{cf}/", get(company_file))
            .route("/accountright/{cf}/{*resource}", get(list))
            .with_state(state);
        let (url, _handle) = super::serve(router).await;
        FakeMyob { oauth, data, url }
    }

    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/account/authorize", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/authorize", self.url)
    }
    pub fn api_url(&self) -> String {
        format!("{}/accountright", self.url)
    }
    pub fn tick(&self, by: chrono::Duration) {
        self.data.lock().unwrap().now += by;
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.data.lock().unwrap().now
    }
    pub fn expire_tokens_after(&self, n: u32) {
        self.data.lock().unwrap().expire_after_calls = Some(n);
    }

    /// The yearly consent lapsed: access tokens stop working and MYOB refuses every refresh
    /// (`invalid_grant`) until an admin of the file authorizes again.
    pub fn expire_consent(&self) {
        self.oauth.expire_access_tokens();
        self.oauth.revoke_refresh_tokens();
    }

    /// Adds or replaces (by `UID`) a record of `resource` in company file `cf`, stamping
    /// `LastModified` with the fake clock and bumping `RowVersion`.
    ///
    /// A generic `Sale/Invoice` or `Purchase/Bill` document goes to the layout its
    /// `InvoiceType`/`BillType` names (default `Service`); that field is only served on the
    /// generic list.
    pub fn upsert(&self, cf: &str, resource: &str, mut doc: Value) {
        let stored;
        let resource = match layout_of(resource, &doc) {
            Some((layout, field)) => {
                if let Some(o) = doc.as_object_mut() {
                    o.remove(field);
                }
                stored = layout;
                stored.as_str()
            }
            None => resource,
        };
        let mut d = self.data.lock().unwrap();
        d.row_version += 1;
        doc["LastModified"] = json!(ts(d.now));
        doc["RowVersion"] = json!(d.row_version.to_string());
        doc["URI"] = json!(format!(
            "{{api}}/accountright/{cf}/{resource}/{}",
            doc["UID"].as_str().unwrap_or_default()
        ));
        let list = d
            .records
            .entry((cf.to_string(), resource.to_string()))
            .or_default();
        list.retain(|x| x["UID"] != doc["UID"]);
        list.push(doc);
    }

    /// Deletes a record: it is simply gone (MYOB lists no deletions).
    pub fn delete(&self, cf: &str, resource: &str, uid: &str) {
        let mut d = self.data.lock().unwrap();
        for ((file, r), list) in d.records.iter_mut() {
            // A generic resource deletes from every layout.
            if file == cf && (r == resource || r.starts_with(&format!("{resource}/"))) {
                list.retain(|x| x["UID"] != uid);
            }
        }
    }
}

type S = (FakeOAuth, Arc<Mutex<MyobData>>);

fn errors(status: StatusCode, name: &str, message: &str, code: u32) -> Response {
    (
        status,
        Json(json!({"Errors": [{"Name": name, "Message": message, "AdditionalDetails": "",
                                "ErrorCode": code, "Severity": "Error", "LearnMore": null}],
                    "Information": "Warning, error messages have not been finalised in this release and may change"})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    errors(
        StatusCode::UNAUTHORIZED,
        "OAuthTokenIsInvalid",
        "The supplied OAuth token (Bearer) is not valid",
        31001,
    )
}

fn rate_limit_error(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"Name": "RateLimitError", "Message": message,
                    "AdditionalDetails": "Rate limit exceeded", "ErrorCode": 429, "Severity": "Error"})),
    )
        .into_response()
}

fn rate_limited(_retry_after: u64) -> Response {
    rate_limit_error("API key has exceeded the per-second rate limit")
}

/// The authorize redirect; undocumented scopes are refused (`error=invalid_scope`), and the
/// company file's `businessId`/`businessName` are added only with `prompt=consent`.
async fn authorize(
    State((oauth, data)): State<S>,
    q: Query<oauth::AuthorizeQuery>,
    Query(raw): Query<HashMap<String, String>>,
) -> Response {
    let scopes: Vec<String> = raw
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty()
        || scopes
            .iter()
            .any(|s| !DOCUMENTED_SCOPES.contains(&s.as_str()))
    {
        let sep = if q.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        return axum::response::Redirect::to(&format!(
            "{}{sep}error=invalid_scope&state={}",
            q.redirect_uri,
            url::form_urlencoded::byte_serialize(q.state.as_bytes()).collect::<String>()
        ))
        .into_response();
    }
    let consent = raw.get("prompt").map(String::as_str) == Some("consent");
    let (business, name) = {
        let mut d = data.lock().unwrap();
        d.granted_scopes = Some(scopes);
        d.company_files[0].clone()
    };
    let mut response = oauth::authorize(State(oauth), q).await;
    if !consent {
        return response;
    }
    if let Some(loc) = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
    {
        let loc = format!(
            "{loc}&businessId={business}&businessName={}",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        );
        response
            .headers_mut()
            .insert("location", loc.parse().unwrap());
    }
    response
}

fn check(oauth: &FakeOAuth, data: &Mutex<MyobData>, headers: &HeaderMap) -> Result<(), Response> {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if header("x-myobapi-key") != Some(CLIENT_ID) {
        return Err(errors(
            StatusCode::FORBIDDEN,
            "ApiKeyInvalid",
            "The x-myobapi-key header is missing or invalid",
            31002,
        ));
    }
    if header("x-myobapi-version") != Some("v2") {
        return Err(errors(
            StatusCode::BAD_REQUEST,
            "ApiVersionInvalid",
            "The x-myobapi-version header must be v2",
            31003,
        ));
    }
    {
        let mut d = data.lock().unwrap();
        if d.daily_limit_reached {
            return Err(rate_limit_error(
                "API key has exceeded the daily rate limit",
            ));
        }
        match d.expire_after_calls {
            Some(0) => {
                d.expire_after_calls = None;
                oauth.expire_access_tokens();
            }
            Some(n) => d.expire_after_calls = Some(n - 1),
            None => {}
        }
    }
    oauth.check_api(headers, unauthorized, rate_limited)
}

fn company_file_record(id: &str, name: &str) -> Value {
    json!({"Id": id, "Name": name, "LibraryPath": name, "ProductVersion": "2024.1",
        "ProductLevel": {"Code": 20, "Name": "Standard"},
        "Uri": format!("https://api.myob.com/accountright/{id}"), "Country": "AU", "SerialNumber": "612345678901",
        "UIAccessFlags": 3})
}

/// `GET /accountright/`: empty for keys issued since March 2025 (`new_keys_no_file_list`).
async fn company_files(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let d = data.lock().unwrap();
    if !d.legacy_key {
        return Json(json!([])).into_response();
    }
    Json(
        d.company_files
            .iter()
            .map(|(id, name)| company_file_record(id, name))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /accountright/{businessId}/`: the file's record and its resources.
async fn company_file(
    State((oauth, data)): State<S>,
    Path(cf): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let d = data.lock().unwrap();
    let Some((id, name)) = d.company_files.iter().find(|(id, _)| *id == cf) else {
        return errors(
            StatusCode::NOT_FOUND,
            "CompanyFileNotFound",
            "The company file was not found",
            404,
        );
    };
    let resources: Vec<String> = RESOURCES
        .iter()
        .map(|r| format!("https://api.myob.com/accountright/{id}/{r}"))
        .collect();
    Json(json!({"CompanyFile": company_file_record(id, name), "Resources": resources}))
        .into_response()
}

/// `LastModified gt|ge datetime'2024-01-01T00:00:00'` (the only filter the fake understands).
fn parse_filter(f: &str) -> Option<(bool, NaiveDateTime)> {
    let mut parts = f.trim().splitn(3, ' ');
    if parts.next()? != "LastModified" {
        return None;
    }
    let inclusive = match parts.next()? {
        "ge" => true,
        "gt" => false,
        _ => return None,
    };
    let value = parts
        .next()?
        .trim()
        .strip_prefix("datetime'")?
        .strip_suffix('\'')?;
    let t = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some((inclusive, t))
}

async fn list(
    State((oauth, data)): State<S>,
    Path((cf, resource)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let mut d = data.lock().unwrap();
    if !d.company_files.iter().any(|(id, _)| *id == cf) {
        return errors(
            StatusCode::NOT_FOUND,
            "CompanyFileNotFound",
            "The company file was not found",
            404,
        );
    }
    let at_skip: usize = q.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    if d.rate_limit_page.as_ref() == Some(&(resource.clone(), at_skip)) {
        d.rate_limit_page = None;
        return rate_limit_error("API key has exceeded the per-second rate limit");
    }
    d.pages_served.push((resource.clone(), at_skip));
    if !RESOURCES.contains(&resource.as_str()) {
        return errors(StatusCode::NOT_FOUND, "ResourceNotFound", "Not found", 404);
    }
    let scope = scope_of(&resource);
    if d.granted_scopes
        .as_ref()
        .is_some_and(|g| !g.iter().any(|s| s == scope || s == "CompanyFile"))
    {
        return errors(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("The authorization does not include the {scope} scope"),
            403,
        );
    }
    let num = |k: &str, default: usize| q.get(k).map_or(Ok(default), |v| v.parse::<usize>());
    let (Ok(top), Ok(skip)) = (num("$top", 400), num("$skip", 0)) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "InvalidQuery",
            "Invalid $top or $skip",
            400,
        );
    };
    if top == 0 || top > 1000 {
        return errors(
            StatusCode::BAD_REQUEST,
            "InvalidQuery",
            "$top must be between 1 and 1000",
            400,
        );
    }
    let filter = match q.get("$filter") {
        None => None,
        Some(f) => match parse_filter(f) {
            Some(x) => Some(x),
            None => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    "InvalidFilter",
                    "The $filter is not supported",
                    400,
                )
            }
        },
    };
    // The generic invoice/bill lists: every layout, without Lines, with the layout named.
    let generic = layout_of(&resource, &Value::Null).map(|(_, field)| field);
    let all: Vec<Value> = match generic {
        Some(field) => RESOURCES
            .iter()
            .filter_map(|r| Some((r, r.strip_prefix(&format!("{resource}/"))?)))
            .flat_map(|(r, layout)| {
                d.records
                    .get(&(cf.clone(), r.to_string()))
                    .into_iter()
                    .flatten()
                    .map(move |x| {
                        let mut x = x.clone();
                        if let Some(o) = x.as_object_mut() {
                            o.remove("Lines");
                            o.insert(field.into(), json!(layout));
                        }
                        x
                    })
            })
            .collect(),
        None => d
            .records
            .get(&(cf.clone(), resource.clone()))
            .cloned()
            .unwrap_or_default(),
    };
    let items: Vec<&Value> = Some(&all)
        .map(|v| {
            v.iter()
                .filter(|x| {
                    filter.is_none_or(|(inclusive, at)| {
                        x["LastModified"]
                            .as_str()
                            .and_then(|s| {
                                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
                            })
                            .is_some_and(|m| if inclusive { m >= at } else { m > at })
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let count = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|x| {
            let mut x = x.clone();
            if let Some(uri) = x["URI"].as_str() {
                x["URI"] = json!(uri.replace(
                    "{api}",
                    &format!(
                        "http://{}",
                        headers
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                    )
                ));
            }
            x
        })
        .collect();
    let next = (skip + top < count).then(|| {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let mut link = format!(
            "http://{host}/accountright/{cf}/{resource}?$top={top}&$skip={}",
            skip + top
        );
        if let Some(f) = q.get("$filter") {
            link.push_str(&format!(
                "&$filter={}",
                f.replace(' ', "%20").replace('\'', "%27")
            ));
        }
        link
    });
    let mut r = Json(json!({"Items": page, "NextPageLink": next, "Count": count})).into_response();
    r.headers_mut()
        .insert("date", super::pipedrive::http_date(d.now).parse().unwrap());
    r
}
