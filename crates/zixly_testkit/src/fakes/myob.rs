//! Fake MYOB AccountRight (MYOB Business API): `/oauth2/account/authorize` (the redirect carries
//! `businessId`), `/oauth2/v1/authorize` as token endpoint (client id and secret in the form body,
//! `expires_in` 1200, every refresh rotates the refresh token and retires the old one), `GET
//! /accountright/` (company files) and `GET /accountright/{businessId}/{resource}` for
//! `Contact/Customer`, `GeneralLedger/Job`, `Sale/Invoice`, `Purchase/Bill`,
//! `Sale/CustomerPayment`, `Banking/ReceiveMoneyTxn`, `Banking/SpendMoneyTxn` with
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
pub const RESOURCES: [&str; 7] = [
    "Contact/Customer",
    "GeneralLedger/Job",
    "Sale/Invoice",
    "Purchase/Bill",
    "Sale/CustomerPayment",
    "Banking/ReceiveMoneyTxn",
    "Banking/SpendMoneyTxn",
];

pub struct MyobData {
    pub now: DateTime<Utc>,
    /// (id, name)
    pub company_files: Vec<(String, String)>,
    /// resource -> records (per company file id)
    pub records: HashMap<(String, String), Vec<Value>>,
    /// The daily budget is spent: every API call answers the daily RateLimitError.
    pub daily_limit_reached: bool,
    pub expire_after_calls: Option<u32>,
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

    /// Adds or replaces (by `UID`) a record of `resource` in company file `cf`, stamping
    /// `LastModified` with the fake clock and bumping `RowVersion`.
    pub fn upsert(&self, cf: &str, resource: &str, mut doc: Value) {
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
        if let Some(list) = self
            .data
            .lock()
            .unwrap()
            .records
            .get_mut(&(cf.to_string(), resource.to_string()))
        {
            list.retain(|x| x["UID"] != uid);
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

/// The authorize redirect, with the company file's `businessId` added.
async fn authorize(State((oauth, data)): State<S>, q: Query<oauth::AuthorizeQuery>) -> Response {
    let mut response = oauth::authorize(State(oauth), q).await;
    let business = data.lock().unwrap().company_files[0].0.clone();
    if let Some(loc) = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
    {
        let loc = format!("{loc}&businessId={business}");
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

async fn company_files(State((oauth, data)): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = check(&oauth, &data, &headers) {
        return r;
    }
    let d = data.lock().unwrap();
    Json(
        d.company_files
            .iter()
            .map(|(id, name)| json!({"Id": id, "Name": name, "LibraryPath": name, "ProductVersion": "2024.1",
                "ProductLevel": {"Code": 20, "Name": "Standard"}, "CheckedOutDate": null, "CheckedOutBy": null,
                "Uri": format!("https://api.myob.com/accountright/{id}"), "Country": "AU", "SerialNumber": "612345678901"}))
            .collect::<Vec<_>>(),
    )
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
    let d = data.lock().unwrap();
    if !d.company_files.iter().any(|(id, _)| *id == cf) {
        return errors(
            StatusCode::NOT_FOUND,
            "CompanyFileNotFound",
            "The company file was not found",
            404,
        );
    }
    if !RESOURCES.contains(&resource.as_str()) {
        return errors(StatusCode::NOT_FOUND, "ResourceNotFound", "Not found", 404);
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
    let items: Vec<&Value> = d
        .records
        .get(&(cf.clone(), resource.clone()))
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
