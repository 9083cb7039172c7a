//! Fake HubSpot: authorize, `/oauth/v3/token` with client credentials in the form body,
//! `/crm/v3/pipelines/deals`, `/crm/v3/objects/{companies,deals}` with the `after` cursor that
//! disappears on the last page, string property values, `archived=true` listing, the 401
//! `EXPIRED_AUTHENTICATION` body and the 429 `RATE_LIMIT` body.

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
            .route("/crm/v3/pipelines/deals", get(pipelines))
            .route("/crm/v3/objects/{kind}", get(objects))
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
    let d = data.lock().unwrap();
    let archived = q.archived.unwrap_or(false);
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
    let page: Vec<&Value> = all.iter().skip(start).take(limit).copied().collect();
    let mut body = json!({"results": page});
    if start + limit < all.len() {
        let next = (start + limit).to_string();
        body["paging"] = json!({"next": {"after": next, "link": format!("?after={next}")}});
    }
    Json(body).into_response()
}
