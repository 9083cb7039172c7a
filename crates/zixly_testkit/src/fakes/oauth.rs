//! The OAuth part every fake shares: codes, PKCE, token issue, rotation, expiry, injected failures.

// Fakes answer with ready-made HTTP responses as their error values; boxing them would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

/// How the token endpoint expects the client to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Body,
}

/// An injected answer for the next API request(s).
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with this `Retry-After` (and the provider's body).
    RateLimited { retry_after: u64 },
    /// This status with an empty JSON body.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    pub expires_in: i64,
    /// Every refresh returns a new refresh token.
    pub rotate_refresh_tokens: bool,
    /// A rotated-out refresh token still works this many more times (Xero's grace period).
    pub grace_uses: u32,
    /// Extra fields of the token answer (Pipedrive `api_domain`, HubSpot `hub_id`).
    pub extra: serde_json::Value,
}

#[derive(Default)]
pub struct OAuthState {
    codes: HashMap<String, (Option<String>, String)>,
    /// access token -> still valid
    access: HashMap<String, bool>,
    /// refresh token -> remaining uses (u32::MAX: current)
    refresh: HashMap<String, u32>,
    counter: u64,
    pub refreshes: u64,
    pub rejected_refreshes: u64,
    pub faults: VecDeque<Fault>,
    pub api_calls: u64,
    /// Refresh tokens revoked through the revocation endpoint.
    pub revocations: u64,
    /// Every API request waits this long before it is counted and answered (zero: no wait).
    pub api_delay: Duration,
    /// API requests still answered with the current tokens; when it reaches 0 every access token
    /// issued so far expires (`FakeOAuth::expire_tokens_after`: a token expiring mid-sync, at a
    /// request the test chooses).
    pub expire_after_api_calls: Option<u64>,
}

/// Shared handle on a fake's OAuth state.
#[derive(Clone)]
pub struct FakeOAuth {
    pub settings: Arc<OAuthSettings>,
    pub state: Arc<Mutex<OAuthState>>,
}

impl FakeOAuth {
    pub fn new(settings: OAuthSettings) -> FakeOAuth {
        FakeOAuth {
            settings: Arc::new(settings),
            state: Arc::default(),
        }
    }

    /// Every access token issued so far expires now (a token expiring mid-sync).
    pub fn expire_access_tokens(&self) {
        for valid in self.state.lock().unwrap().access.values_mut() {
            *valid = false;
        }
    }

    /// The next `n` API requests are answered as usual; then every access token issued
    /// so far expires, so request `n + 1` is answered 401 (tokens issued by the refresh work).
    pub fn expire_tokens_after(&self, n: u64) {
        self.state.lock().unwrap().expire_after_api_calls = Some(n);
    }

    /// Every refresh token is revoked (the user disconnected the app at the provider).
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh.clear();
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    pub fn refreshes(&self) -> u64 {
        self.state.lock().unwrap().refreshes
    }

    pub fn rejected_refreshes(&self) -> u64 {
        self.state.lock().unwrap().rejected_refreshes
    }

    pub fn revocations(&self) -> u64 {
        self.state.lock().unwrap().revocations
    }

    /// Revokes a refresh token (the grant's access tokens stop working too); whether it existed.
    fn revoke(&self, token: &str) -> bool {
        let mut st = self.state.lock().unwrap();
        if st.refresh.remove(token).is_none() {
            return false;
        }
        st.revocations += 1;
        for valid in st.access.values_mut() {
            *valid = false;
        }
        true
    }

    pub fn api_calls(&self) -> u64 {
        self.state.lock().unwrap().api_calls
    }

    /// Makes every later API request wait `delay` before it is counted and answered (a slow
    /// provider, so that a test can act while a sync is between calls); zero (the default) turns
    /// it off. The wait blocks the thread serving the request: under a multi-thread runtime it
    /// runs in `block_in_place`, so the rest of the test keeps running; under a current-thread
    /// runtime it stalls everything else on that runtime for as long.
    pub fn set_api_delay(&self, delay: Duration) {
        self.state.lock().unwrap().api_delay = delay;
    }

    fn issue(&self, st: &mut OAuthState) -> serde_json::Value {
        st.counter += 1;
        let access = format!("at-{}-{}", st.counter, rand::random::<u64>());
        let refresh = format!("rt-{}-{}", st.counter, rand::random::<u64>());
        st.access.insert(access.clone(), true);
        st.refresh.insert(refresh.clone(), u32::MAX);
        let mut body = json!({
            "access_token": access, "refresh_token": refresh, "expires_in": self.settings.expires_in, "token_type": "Bearer"
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.settings.extra.as_object()) {
            b.extend(extra.clone());
        }
        body
    }

    /// Checks an API request's bearer token and consumes an injected fault. `Err` is the answer to
    /// send: `unauthorized` builds the provider's exact 401.
    pub fn check_api(
        &self,
        headers: &HeaderMap,
        unauthorized: impl Fn() -> Response,
        rate_limited: impl Fn(u64) -> Response,
    ) -> Result<(), Response> {
        let delay = self.state.lock().unwrap().api_delay;
        if !delay.is_zero() {
            wait(delay);
        }
        let mut st = self.state.lock().unwrap();
        st.api_calls += 1;
        match st.expire_after_api_calls {
            Some(0) => {
                st.expire_after_api_calls = None;
                for valid in st.access.values_mut() {
                    *valid = false;
                }
            }
            Some(n) => st.expire_after_api_calls = Some(n - 1),
            None => {}
        }
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if st.access.get(token) != Some(&true) {
            return Err(unauthorized());
        }
        match st.faults.pop_front() {
            Some(Fault::RateLimited { retry_after }) => Err(rate_limited(retry_after)),
            Some(Fault::Status(code)) => {
                Err((StatusCode::from_u16(code).unwrap(), axum::Json(json!({}))).into_response())
            }
            None => Ok(()),
        }
    }
}

/// Blocks the calling thread for `delay`, moving the runtime's other tasks off it when it can.
fn wait(delay: Duration) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| std::thread::sleep(delay));
    } else {
        std::thread::sleep(delay);
    }
}

#[derive(serde::Deserialize)]
pub struct AuthorizeQuery {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: Option<String>,
    pub response_type: Option<String>,
    /// Space-separated requested scopes (a provider fake may refuse some).
    pub scope: Option<String>,
}

/// `GET authorize`: the user "approves" at once; redirects back with a code and the state.
pub async fn authorize(State(f): State<FakeOAuth>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.client_id != f.settings.client_id || q.response_type.as_deref() != Some("code") {
        return (StatusCode::BAD_REQUEST, "unknown client or response_type").into_response();
    }
    let code = format!("code-{}", rand::random::<u64>());
    f.state
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), (q.code_challenge, q.redirect_uri.clone()));
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let state: String = url_encode(&q.state);
    Redirect::to(&format!("{}{sep}code={code}&state={state}", q.redirect_uri)).into_response()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant"})),
    )
        .into_response()
}

/// `POST token`: authorization_code and refresh_token grants, in the configured client-auth style.
pub async fn token(
    State(f): State<FakeOAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = &f.settings;
    let authenticated = match s.client_auth {
        ClientAuth::Basic => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", s.client_id, s.client_secret))
            );
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
        }
        ClientAuth::Body => {
            form.get("client_id") == Some(&s.client_id)
                && form.get("client_secret") == Some(&s.client_secret)
        }
    };
    if !authenticated {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut st = f.state.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect)) = form.get("code").and_then(|c| st.codes.remove(c))
            else {
                return invalid_grant();
            };
            if form.get("redirect_uri") != Some(&redirect) {
                return invalid_grant();
            }
            if let Some(challenge) = challenge {
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if computed != challenge {
                    return invalid_grant();
                }
            }
            axum::Json(f.issue(&mut st)).into_response()
        }
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            match st.refresh.get(&rt).copied() {
                Some(uses) if uses > 0 => {
                    st.refreshes += 1;
                    if s.rotate_refresh_tokens {
                        let left = if uses == u32::MAX {
                            s.grace_uses
                        } else {
                            uses - 1
                        };
                        if left == 0 {
                            st.refresh.remove(&rt);
                        } else {
                            st.refresh.insert(rt.clone(), left);
                        }
                        let body = f.issue(&mut st);
                        axum::Json(body).into_response()
                    } else {
                        st.counter += 1;
                        let access = format!("at-{}-{}", st.counter, rand::random::<u64>());
                        st.access.insert(access.clone(), true);
                        axum::Json(json!({"access_token": access, "refresh_token": rt, "expires_in": s.expires_in})).into_response()
                    }
                }
                _ => {
                    st.rejected_refreshes += 1;
                    invalid_grant()
                }
            }
        }
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

/// Xero's `POST /connect/revocation`: `token=<refresh token>` with HTTP Basic client auth; 200.
pub async fn revoke_form(
    State(f): State<FakeOAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = &f.settings;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", s.client_id, s.client_secret))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    f.revoke(form.get("token").map(String::as_str).unwrap_or_default());
    StatusCode::OK.into_response()
}

/// HubSpot's `DELETE /oauth/v1/refresh-tokens/{token}`: 204, or 404 for an unknown token.
pub async fn revoke_path(
    State(f): State<FakeOAuth>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if f.revoke(&token) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
