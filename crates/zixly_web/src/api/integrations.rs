//! Integrations: connecting a provider over OAuth2, the callback, disconnecting, manual syncs and
//! the list. Every route needs the ADMIN role (ADMINs manage integrations; the dashboard's
//! `/integrations` page shows statuses to other roles, through [`IntegrationCard`], which leaves
//! out what these routes refuse them).
//!
//! Routes (relative to `/api/v1`):
//! - `POST /integrations/{provider}/connect` → `{"authorize_url": ...}` (templated as
//!   `/integrations/{id}/connect` in the router and the OpenAPI document: the router cannot have
//!   differently named parameters at one position, and `{id}` of the other routes is a UUID). Creates the tenant's
//!   integration of that provider (`PENDING`) if it has none, and stores a fresh OAuth state:
//!   `state` = `zxo_<tenant id, 32 hex><secret, 64 hex>` (`auth::issue_secret`, the format of
//!   sessions, invitations and reset links), of which only the SHA-256 is stored, bound to
//!   the tenant and the calling user, single use, valid [`STATE_TTL`]. Where the provider supports
//!   PKCE (Xero, Asana) the verifier is stored encrypted with the token keyring (associated data
//!   `<tenant>/oauth_state/<state hash hex>`) and the challenge goes into the URL.
//! - `GET /integrations/callback?code&state` — the provider sends the browser here. The caller must
//!   be the ADMIN who started the flow (session cookie; the state's tenant and user must be the
//!   caller's): a state of another tenant or another user is refused with 400 `invalid_state` and
//!   is *not* consumed, so it cannot be burnt by someone else. A valid state is consumed (committed)
//!   before the code is exchanged, so a replay answers 400 `invalid_state`. The tokens are stored
//!   encrypted (`zixly_sync::tokens::store_new_tokens`) and the integration becomes `ACTIVE`; the
//!   token answer's non-secret extras (HubSpot `hub_id`, Pipedrive `api_domain`, scopes) go into
//!   the integration's `metadata`; what the runners need from the authorization goes into its
//!   `settings` (Pipedrive `pipedrive_api_domain`, MYOB `myob_business_id` from the redirect's
//!   `businessId`). Browsers (`Accept: text/html`) are redirected (303) to
//!   `/integrations?connected=<provider>`; API clients get the integration as JSON. A provider
//!   answer `?error=...` (the user declined) consumes the state and answers 400
//!   `authorization_denied`.
//! - `POST /integrations/{id}/disconnect` — revokes the refresh token where the provider offers
//!   revocation (Xero, HubSpot), under the integration's row lock so no refresh races it; deletes
//!   both tokens whatever the revocation's outcome; cancels queued syncs; status becomes
//!   **`DISABLED`** (not scheduled; connecting again makes it `ACTIVE`). The answer says whether
//!   the provider confirmed the revocation.
//! - `POST /integrations/{id}/sync` → 202 `{"job_id": ..., "already_queued": bool}`: enqueues a
//!   manual sync (`zixly_sync::engine::enqueue_sync`; one per integration at a time). Only a
//!   connected integration (`ACTIVE` or `ERROR` with tokens) can be synced: otherwise 409
//!   `integration_not_connected`.
//! - `PATCH /integrations/{id}` `{"settings": {"key": value | null}}` — merges into the
//!   integration's settings what the runners read (`tracking_category`,
//!   `stale_after_days`, `full_sync_hours`, `asana_workspace`, Asana's project mapping,
//!   `myob_business_id`, MYOB's `base_currency`); `null` removes a key. `pipedrive_api_domain` is learnt from the
//!   authorization only (the access token is sent there) and cannot be set.
//! - `GET /integrations` — every integration of the tenant: provider, status, whether tokens are
//!   stored, settings, interval, `last_sync_at`, `last_error`, `next_sync_at`. Never a token.
//! - `GET /integrations/{id}/organisations` (Xero) — the organisations the connection grants, as
//!   Xero's `GET /connections` lists them now (`tenantType` `ORGANISATION`): id, name, whether it
//!   is the chosen one, and whether a choice is needed (several granted, none or a no longer
//!   granted one chosen). Asks Xero each time (with a usable token from `zixly_sync::tokens`).
//! - `POST /integrations/{id}/organisation` `{"tenant_id": ...}` (Xero) — chooses the
//!   organisation syncs read: checked against `/connections` (an id Xero does not grant is 409
//!   `organisation_not_granted`), stored as `settings.xero_tenant_id` with its name
//!   (`xero_organisation_name`, shown on the Integrations page), audited
//!   (`integration.organisation`, from and to), and a sync is queued when the choice changed and
//!   the integration is connected. The Integrations page's picker posts here (through
//!   `pages::internal`). Right after connecting, when Xero grants exactly one organisation, the
//!   callback records it the same way. `xero_tenant_id` and `xero_organisation_name` cannot be
//!   set with `PATCH` (it would bypass the check).
//!
//! Without an integrations context ([`AppState::integrations`], i.e. no encryption key configured)
//! every route answers 503 `integrations_unavailable`. Every write appends an audit row in its
//! transaction. Tokens, codes, states and PKCE verifiers never appear in responses, errors, audit
//! rows or logs.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_connectors::oauth::Pkce;
use zixly_connectors::{ConnectorError, Provider, ProviderConfig};
use zixly_crypto::SecretString;
use zixly_db::integrations::Integration;
use zixly_db::queries::dashboard::IntegrationStatus;
use zixly_db::queue::Enqueued;
use zixly_domain::Role;
use zixly_sync::engine::SyncEngine;

use crate::api::Page;
use crate::auth::{issue_secret, parse_secret, Admin, Auth, IssuedSecret, SecretKind};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

/// How long a started authorization may take.
pub const STATE_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The callback path, relative to the public URL (register `ZIXLY_PUBLIC_URL` + this).
pub const CALLBACK_PATH: &str = "/api/v1/integrations/callback";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations))
        .routes(routes!(update_integration))
        .routes(routes!(oauth_callback))
        .routes(routes!(connect))
        .routes(routes!(disconnect))
        .routes(routes!(sync_now))
        .routes(routes!(list_organisations))
        .routes(routes!(choose_organisation))
}

/// An integration as the API shows it (never its tokens).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IntegrationView {
    pub id: Uuid,
    /// `XERO`, `MYOB`, `HUBSPOT`, `PIPEDRIVE` or `ASANA`.
    pub provider: String,
    /// `PENDING` (never connected), `ACTIVE`, `ERROR` (see `last_error`), `DISABLED`
    /// (disconnected; not scheduled).
    pub status: String,
    /// Whether tokens are stored (they are never shown).
    pub connected: bool,
    /// Whether this server has the provider's OAuth app configured (`ZIXLY_<P>_CLIENT_ID`).
    pub provider_configured: bool,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub sync_interval_secs: i64,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Why the last sync failed (readable reason; never a token).
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    /// When the scheduler will next enqueue a sync (plus up to two minutes of jitter); `null`
    /// when the integration is not scheduled (not `ACTIVE`).
    pub next_sync_at: Option<DateTime<Utc>>,
    /// A provider budget (a day limit) stopped the last run: it resumes at this time, from
    /// where it stopped.
    pub paused_until: Option<DateTime<Utc>>,
    /// Why it is paused (readable).
    pub pause_reason: Option<String>,
    /// The unfinished run, when one is under way or waiting to resume; `null` otherwise.
    pub progress: Option<SyncProgressView>,
}

/// How far an unfinished sync run is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncProgressView {
    /// The stream being read (`invoices`, `payments`, …); `null` once every stream is read.
    pub stream: Option<String>,
    pub pages_read: i64,
    pub items_read: i64,
    /// About how many items the run reads in all, when the provider says.
    pub items_total: Option<i64>,
    pub started_at: DateTime<Utc>,
    /// When the last page was committed.
    pub updated_at: DateTime<Utc>,
    /// The same, as a sentence ("invoices: 3,700 of about 200,000 items read (37 pages)").
    pub summary: String,
}

impl From<zixly_db::checkpoints::SyncProgress> for SyncProgressView {
    fn from(p: zixly_db::checkpoints::SyncProgress) -> Self {
        SyncProgressView {
            summary: p.describe(),
            stream: p.stream,
            pages_read: p.pages_read,
            items_read: p.items_read,
            items_total: p.items_total,
            started_at: p.started_at,
            updated_at: p.updated_at,
        }
    }
}

impl IntegrationView {
    fn new(i: Integration, engine: Option<&SyncEngine>) -> Self {
        let provider_configured = Provider::parse(&i.provider)
            .zip(engine)
            .is_some_and(|(p, e)| e.provider_config(p).is_some());
        let next_sync_at = (i.status == "ACTIVE").then(|| {
            let now = Utc::now();
            i.last_sync_at
                .map(|t| t + chrono::Duration::seconds(i.sync_interval_secs))
                .map_or(now, |t| t.max(now))
        });
        IntegrationView {
            id: i.id,
            provider: i.provider,
            status: i.status,
            connected: i.has_tokens,
            provider_configured,
            settings: i.settings,
            sync_interval_secs: i.sync_interval_secs,
            last_sync_at: i.last_sync_at,
            last_error: i.last_error,
            consecutive_failures: i.consecutive_failures,
            next_sync_at,
            paused_until: i.paused_until,
            pause_reason: i.pause_reason,
            progress: i.progress.map(SyncProgressView::from),
        }
    }
}

/// What an integration shows to `role` outside the ADMIN-only API: the dashboard's
/// `/integrations` page shows every role the status, and builds its cards only through this, so
/// it cannot show what the API refuses non-ADMINs. Every integration route is ADMIN-only, so a
/// VIEWER or EDITOR gets provider, status and last sync and nothing of [`IntegrationView`]'s
/// details: no `last_error` (the provider's refusal can name organisations, accounts or scopes),
/// no settings, no failure count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntegrationCard {
    pub id: Uuid,
    pub provider: String,
    pub status: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// ADMINs only (as in [`IntegrationView::last_error`]).
    pub last_error: Option<String>,
    /// The unfinished run's progress, as a sentence (every role: it names no account).
    pub progress: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    /// ADMINs only (as `last_error`).
    pub pause_reason: Option<String>,
}

impl IntegrationCard {
    pub(crate) fn for_role(i: IntegrationStatus, role: Role) -> Self {
        let admin = role == Role::Admin;
        IntegrationCard {
            id: i.id,
            provider: i.provider,
            status: i.status,
            last_sync_at: i.last_sync_at,
            last_error: i.last_error.filter(|_| admin),
            progress: i.progress.map(|p| p.describe()),
            paused_until: i.paused_until,
            pause_reason: i.pause_reason.filter(|_| admin),
        }
    }
}

/// The answer of `connect`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectStarted {
    /// Send the user's browser here; the provider redirects back to the callback.
    pub authorize_url: String,
    /// The integration being connected.
    pub integration_id: Uuid,
    /// The authorization must complete before this.
    pub expires_at: DateTime<Utc>,
}

/// The answer of `disconnect`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Disconnected {
    pub integration: IntegrationView,
    /// The provider confirmed the revocation of the grant (`false`: the provider offers no
    /// revocation, or it failed — see `revocation_error`; the tokens are deleted either way).
    pub revoked: bool,
    pub revocation_error: Option<String>,
}

/// The answer of `sync`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncQueued {
    pub job_id: Uuid,
    /// A sync of this integration was already queued or running: that job is returned.
    pub already_queued: bool,
}

/// The query of the OAuth callback (as the provider sends it).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state handed out by `connect`.
    pub state: Option<String>,
    /// Set by the provider when the user declined or the request was refused.
    pub error: Option<String>,
    /// MYOB: the company file the user chose (kept as `settings.myob_business_id`).
    #[serde(rename = "businessId")]
    #[param(rename = "businessId")]
    pub business_id: Option<String>,
}

/// Settings learnt from the authorization itself: Pipedrive's `api_domain` (token answer) and
/// MYOB's `businessId` (redirect), which the runners read from the settings.
fn learnt_settings(
    config: &ProviderConfig,
    settings: &serde_json::Value,
    extra: &serde_json::Map<String, serde_json::Value>,
    business_id: Option<&str>,
) -> Option<serde_json::Value> {
    let domain;
    let value = match config.provider {
        Provider::Pipedrive => {
            // The same check as on every refresh (https only).
            domain = zixly_connectors::pipedrive::valid_api_domain(
                extra.get("api_domain")?.as_str()?,
                &config.api_url,
            )?;
            ("pipedrive_api_domain", domain.as_str())
        }
        Provider::Myob => ("myob_business_id", business_id?.trim()),
        _ => return None,
    };
    let plausible = !value.1.is_empty()
        && value.1.len() <= 200
        && value
            .1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    if !plausible {
        return None;
    }
    let mut settings = settings.as_object().cloned().unwrap_or_default();
    settings.insert(value.0.into(), json!(value.1));
    Some(serde_json::Value::Object(settings))
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "integrations_unavailable",
        "integrations are not available on this server: no token encryption key is configured (set ZIXLY_ENCRYPTION_KEY)",
    )
}

fn engine(state: &AppState) -> ApiResult<&SyncEngine> {
    state.integrations.as_ref().ok_or_else(unavailable)
}

fn invalid_state(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_state",
        message.to_string(),
    )
}

fn provider_error(e: &ConnectorError) -> ApiError {
    // Connector messages carry status codes and error codes, never tokens or request bodies.
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "provider_error",
        format!("the provider refused or failed: {e}"),
    )
}

fn state_aad(tenant_id: Uuid, state_hash: &[u8]) -> Vec<u8> {
    format!("{tenant_id}/oauth_state/{}", hex::encode(state_hash)).into_bytes()
}

fn configured(engine: &SyncEngine, provider: Provider) -> ApiResult<&ProviderConfig> {
    engine.provider_config(provider).ok_or_else(|| {
        ApiError::conflict(
            "provider_not_configured",
            format!(
                "{provider} is not configured on this server (set ZIXLY_{provider}_CLIENT_ID and ZIXLY_{provider}_CLIENT_SECRET)"
            ),
        )
    })
}

/// List integrations
#[utoipa::path(get, path = "/integrations", tag = "integrations",
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Page<IntegrationView>, description = "Every integration of the tenant (never tokens)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_integrations(
    auth: Auth<Admin>,
    State(state): State<AppState>,
) -> ApiResult<Json<Page<IntegrationView>>> {
    let engine = engine(&state)?;
    let tx = auth.begin().await?;
    let rows = tx.integrations().await?;
    tx.commit().await?;
    Ok(Json(Page::all(
        rows.into_iter()
            .map(|i| IntegrationView::new(i, Some(engine)))
            .collect(),
    )))
}

/// Start connecting a provider (OAuth2)
#[utoipa::path(post, path = "/integrations/{id}/connect", tag = "integrations",
    params(("id" = String, Path, description = "The provider: `xero`, `myob`, `hubspot`, `pipedrive` or `asana` (any case)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = ConnectStarted, description = "Send the browser to `authorize_url`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown provider"),
        (status = 409, body = ErrorBody, description = "`provider_not_configured`"), (status = 503, body = ErrorBody)))]
async fn connect(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<Json<ConnectStarted>> {
    let engine = engine(&state)?;
    let provider = Provider::parse(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    let config = configured(engine, provider)?;
    let tenant_id = auth.tenant_id();
    let IssuedSecret {
        token: oauth_state,
        hash: state_hash,
    } = issue_secret(SecretKind::OAuthState, tenant_id);
    let pkce = config.pkce.then(Pkce::generate);
    let verifier = pkce.as_ref().map(|p| {
        engine
            .keyring()
            .encrypt_str(&p.verifier, &state_aad(tenant_id, &state_hash))
    });
    let redirect_uri = state.config.link(CALLBACK_PATH);
    let expires_at = Utc::now() + chrono::Duration::from_std(STATE_TTL).expect("small TTL");
    let tx = auth.begin().await?;
    let integration = tx.ensure_integration(provider.as_str()).await?;
    tx.insert_oauth_state(
        &state_hash,
        provider.as_str(),
        auth.user_id(),
        verifier.as_deref(),
        &redirect_uri,
        expires_at,
    )
    .await?;
    tx.append_audit(&auth.audit(
        "integration.connect_start",
        "integration",
        Some(integration.id.to_string()),
        json!({"provider": provider.as_str(), "pkce": pkce.is_some()}),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(ConnectStarted {
        authorize_url: config.authorize_url(&oauth_state, &redirect_uri, pkce.as_ref()),
        integration_id: integration.id,
        expires_at,
    }))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// OAuth2 callback (the provider redirects the browser here)
#[utoipa::path(get, path = "/integrations/callback", tag = "integrations", params(CallbackParams),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = IntegrationView, description = "Connected (API clients)"),
        (status = 303, description = "Connected: browsers (`Accept: text/html`) go to `/integrations?connected=<provider>`"),
        (status = 400, body = ErrorBody, description = "`invalid_state` (unknown, expired, used, or another user's) or `authorization_denied`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "`provider_error`: the code exchange failed"),
        (status = 503, body = ErrorBody)))]
async fn oauth_callback(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<CallbackParams>,
) -> ApiResult<Response> {
    let engine = engine(&state)?;
    let raw_state = params
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_state("the callback has no `state`"))?;
    let Some(parsed) = parse_secret(raw_state)
        .filter(|p| p.kind == SecretKind::OAuthState && p.tenant_id == auth.tenant_id())
    else {
        return Err(invalid_state(
            "this authorization was not started in your organisation",
        ));
    };
    let state_hash = parsed.hash;
    let tx = auth.begin().await?;
    let Some(stored) = tx.take_oauth_state(&state_hash).await? else {
        tx.commit().await?; // purges expired states
        return Err(invalid_state(
            "unknown, expired or already used authorization; start connecting again",
        ));
    };
    if stored.user_id != auth.user_id() {
        // Leave the state to its owner.
        tx.rollback().await?;
        return Err(invalid_state(
            "this authorization was started by another user; they must complete it",
        ));
    }
    // Consumed before anything else happens: a replay finds nothing.
    tx.commit().await?;
    let provider = Provider::parse(&stored.provider).ok_or_else(ApiError::internal)?;
    if let Some(error) = params.error.as_deref() {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "authorization_denied",
            format!("{provider} did not authorize Zixly ({error}); start connecting again"),
        ));
    }
    let code = params
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("the callback has no `code`"))?;
    let config = configured(engine, provider)?;
    let verifier: Option<SecretString> = match &stored.pkce_verifier {
        Some(ct) => Some(
            engine
                .keyring()
                .decrypt_str(ct, &state_aad(auth.tenant_id(), &state_hash))
                .map_err(|e| {
                    tracing::error!(error = %e, "the PKCE verifier cannot be decrypted");
                    ApiError::internal()
                })?,
        ),
        None => None,
    };
    let tokens = config
        .exchange_code(engine.http(), code, &stored.redirect_uri, verifier.as_ref())
        .await
        .map_err(|e| {
            tracing::warn!(%provider, error = %e, "OAuth code exchange failed");
            provider_error(&e)
        })?;
    // Xero: with exactly one organisation granted, it is the one to sync; it is recorded with
    // the tokens (several: the ADMIN picks one on the Integrations page). Asked before the
    // transaction opens; a failure leaves the choice to the runner, which takes the only one too.
    let only_organisation = if provider == Provider::Xero {
        match zixly_connectors::xero::connections(
            engine.http(),
            &config.api_url,
            &tokens.access_token,
        )
        .await
        {
            Ok(connections) => match zixly_connectors::xero::organisations(&connections).as_slice()
            {
                [only] => Some((*only).clone()),
                _ => None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "listing the Xero organisations after connecting failed");
                None
            }
        }
    } else {
        None
    };
    let tx = auth.begin().await?;
    let integration = tx.ensure_integration(provider.as_str()).await?;
    zixly_sync::tokens::store_new_tokens(&tx, engine.keyring(), integration.id, &tokens)
        .await
        .map_err(|e| match e {
            zixly_sync::SyncError::Db(e) => ApiError::from(e),
            e => {
                tracing::error!(error = %e, "storing tokens failed");
                ApiError::internal()
            }
        })?;
    let settings = learnt_settings(
        config,
        &integration.settings,
        &tokens.extra,
        params.business_id.as_deref(),
    );
    if !tokens.extra.is_empty() || settings.is_some() {
        tx.set_integration_settings(
            integration.id,
            settings.as_ref().unwrap_or(&integration.settings),
            Some(&serde_json::Value::Object(tokens.extra.clone())),
        )
        .await?;
    }
    let mut organisation = None;
    if let Some(only) = &only_organisation {
        tx.merge_integration_settings(integration.id, &organisation_settings(only))
            .await?;
        organisation = Some(only.tenant_id.clone());
    }
    tx.append_audit(&auth.audit(
        "integration.connect",
        "integration",
        Some(integration.id.to_string()),
        json!({"provider": provider.as_str(), "status": "ACTIVE", "refresh_token": tokens.refresh_token.is_some(),
               "xero_tenant_id": organisation}),
    ))
    .await?;
    let connected = tx
        .integration(integration.id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    tracing::info!(%provider, integration_id = %connected.id, "integration connected");
    if wants_html(&headers) {
        let mut r = StatusCode::SEE_OTHER.into_response();
        // Built from the provider enum, not from the request; still through the one check of
        // redirect targets, which also makes it a valid header value by construction.
        let to = crate::pages::local_target(Some(&format!(
            "/integrations?connected={}",
            provider.as_str().to_lowercase()
        )));
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(r);
    }
    Ok(Json(IntegrationView::new(connected, Some(engine))).into_response())
}

/// Disconnect an integration (revoke where possible, delete the tokens)
#[utoipa::path(post, path = "/integrations/{id}/disconnect", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Disconnected, description = "Tokens deleted; status DISABLED"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn disconnect(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Disconnected>> {
    let engine = engine(&state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    // The row lock keeps refreshes out while the grant is revoked.
    let stored = tx.lock_integration_tokens(id).await?;
    let provider = Provider::parse(&integration.provider);
    let mut revoked = false;
    let mut revocation_error = None;
    if let (Some(stored), Some(provider)) = (stored, provider) {
        let column = if stored.refresh_token.is_some() {
            "refresh_token"
        } else {
            "access_token"
        };
        let ct = stored
            .refresh_token
            .as_deref()
            .unwrap_or(&stored.access_token);
        let secret = engine
            .keyring()
            .decrypt_str(ct, &zixly_sync::tokens::aad(auth.tenant_id(), id, column));
        match (secret, engine.provider_config(provider)) {
            (Ok(secret), Some(config)) => match config.revoke(engine.http(), &secret).await {
                Ok(r) => revoked = r,
                Err(e) => revocation_error = Some(e.to_string()),
            },
            (Err(e), _) => revocation_error = Some(format!("the stored token is unreadable: {e}")),
            (_, None) => {
                revocation_error = Some(format!("{provider} is not configured on this server"))
            }
        }
    }
    tx.clear_integration_tokens(id, "DISABLED", None).await?;
    let cancelled = tx
        .cancel_queued_jobs(zixly_sync::engine::SYNC_JOB, &id.to_string())
        .await?;
    tx.append_audit(&auth.audit(
        "integration.disconnect",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "status": "DISABLED", "revoked": revoked,
               "revocation_error": revocation_error, "cancelled_jobs": cancelled}),
    ))
    .await?;
    let after = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    Ok(Json(Disconnected {
        integration: IntegrationView::new(after, Some(engine)),
        revoked,
        revocation_error,
    }))
}

/// Sync an integration now
#[utoipa::path(post, path = "/integrations/{id}/sync", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 202, body = SyncQueued, description = "A sync job is queued (or already was)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`integration_not_connected`"), (status = 503, body = ErrorBody)))]
async fn sync_now(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<SyncQueued>)> {
    engine(&state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    if !integration.has_tokens || !matches!(integration.status.as_str(), "ACTIVE" | "ERROR") {
        return Err(ApiError::conflict(
            "integration_not_connected",
            format!(
                "the integration is {} and not connected; connect it first",
                integration.status
            ),
        ));
    }
    let enqueued = zixly_sync::engine::enqueue_sync(&tx, id).await?;
    let already_queued = matches!(enqueued, Enqueued::Duplicate(_));
    tx.append_audit(&auth.audit(
        "integration.sync",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "job_id": enqueued.id(), "already_queued": already_queued}),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncQueued {
            job_id: enqueued.id(),
            already_queued,
        }),
    ))
}

/// Changes to an integration.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    /// Keys to set (`null` removes the key) in the integration's settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Settings only the authorization may set.
const LEARNT_ONLY: &[&str] = &["pipedrive_api_domain"];
/// Settings set only by choosing an organisation (validated against Xero's `/connections`).
const CHOSEN_ONLY: &[&str] = &[XERO_TENANT_ID, XERO_ORGANISATION_NAME];
const MAX_SETTINGS_BYTES: usize = 16 * 1024;

/// Change an integration's settings
#[utoipa::path(patch, path = "/integrations/{id}", tag = "integrations", request_body = IntegrationPatch,
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = IntegrationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_integration(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<IntegrationPatch>,
) -> ApiResult<Json<IntegrationView>> {
    let engine = engine(&state)?;
    let mut errors = Vec::new();
    if body.settings.is_empty() {
        errors.push(ErrorDetail::field("settings", "nothing to change"));
    }
    for key in body.settings.keys() {
        if key.trim().is_empty() || key.len() > 64 {
            errors.push(ErrorDetail::field(
                "settings",
                "keys must be 1 to 64 characters",
            ));
        } else if LEARNT_ONLY.contains(&key.as_str()) {
            errors.push(ErrorDetail::field(
                format!("settings.{key}"),
                "is set by connecting, not by hand",
            ));
        } else if CHOSEN_ONLY.contains(&key.as_str()) {
            errors.push(ErrorDetail::field(
                format!("settings.{key}"),
                "is set by choosing the organisation (POST /api/v1/integrations/{id}/organisation, or the Integrations page)",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let mut settings = integration
        .settings
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, value) in &body.settings {
        if value.is_null() {
            settings.remove(key);
        } else {
            settings.insert(key.clone(), value.clone());
        }
    }
    let settings = serde_json::Value::Object(settings);
    if settings.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::invalid_field(
            "settings",
            format!("must be at most {MAX_SETTINGS_BYTES} bytes of JSON"),
        ));
    }
    tx.set_integration_settings(id, &settings, None).await?;
    tx.append_audit(&auth.audit(
        "integration.update",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "settings": {"from": integration.settings, "to": settings}}),
    ))
    .await?;
    let after = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    Ok(Json(IntegrationView::new(after, Some(engine))))
}

// ---------------------------------------------------------------------------------------------
// Xero organisations

/// The setting naming the Xero organisation syncs read (the runner's `xero_tenant_id`).
pub const XERO_TENANT_ID: &str = "xero_tenant_id";
/// The chosen organisation's name when it was chosen (for the Integrations page).
pub const XERO_ORGANISATION_NAME: &str = "xero_organisation_name";

/// One organisation a Xero connection grants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct XeroOrganisation {
    /// Xero's `tenantId` (the `xero-tenant-id` header of every accounting request).
    pub tenant_id: String,
    /// Xero's `tenantName` (the id when Xero sends none).
    pub name: String,
    /// Syncs read this organisation.
    pub chosen: bool,
}

/// The organisations of a Xero integration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct XeroOrganisations {
    pub integration_id: Uuid,
    /// As Xero's `GET /connections` lists them now (organisations only; practices are not synced).
    pub organisations: Vec<XeroOrganisation>,
    /// `settings.xero_tenant_id`: the chosen organisation (`null`: none chosen; then a sync reads
    /// the only one, and fails asking for a choice when there are several).
    pub chosen: Option<String>,
    /// An ADMIN must choose: several organisations are granted and none is chosen, or the chosen
    /// one is no longer granted.
    pub choice_needed: bool,
    /// The sync queued because the choice changed (`POST .../organisation` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_job_id: Option<Uuid>,
}

impl XeroOrganisations {
    fn new(
        integration_id: Uuid,
        connections: &[zixly_connectors::xero::Connection],
        chosen: Option<String>,
    ) -> Self {
        let organisations: Vec<XeroOrganisation> =
            zixly_connectors::xero::organisations(connections)
                .into_iter()
                .map(|c| XeroOrganisation {
                    tenant_id: c.tenant_id.clone(),
                    name: c.display_name().to_string(),
                    chosen: chosen.as_deref() == Some(c.tenant_id.as_str()),
                })
                .collect();
        let choice_needed = match &chosen {
            Some(_) => !organisations.iter().any(|o| o.chosen),
            None => organisations.len() > 1,
        };
        XeroOrganisations {
            integration_id,
            organisations,
            chosen,
            choice_needed,
            sync_job_id: None,
        }
    }
}

/// The body of `POST /integrations/{id}/organisation`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationChoice {
    /// The `tenant_id` of one of the organisations `GET .../organisations` lists.
    pub tenant_id: String,
}

/// The settings recording `org` as the chosen organisation.
fn organisation_settings(
    org: &zixly_connectors::xero::Connection,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(XERO_TENANT_ID.into(), json!(org.tenant_id));
    m.insert(XERO_ORGANISATION_NAME.into(), json!(org.display_name()));
    m
}

fn sync_error(e: zixly_sync::SyncError) -> ApiError {
    use zixly_sync::SyncError as E;
    match e {
        E::Db(e) => ApiError::from(e),
        E::NotConnected => ApiError::conflict(
            "integration_not_connected",
            "the integration is not connected; connect it first",
        ),
        E::Crypto(_) => ApiError::conflict(
            "reconnect_needed",
            "the stored tokens cannot be read (was the encryption key changed?); connect again",
        ),
        E::Connector(e) => provider_error(&e),
        E::NotConfigured(p) => ApiError::conflict(
            "provider_not_configured",
            format!("{p} is not configured on this server (set ZIXLY_{p}_CLIENT_ID and ZIXLY_{p}_CLIENT_SECRET)"),
        ),
        e => {
            tracing::error!(error = %e, "listing the Xero organisations failed");
            ApiError::internal()
        }
    }
}

/// The integration `id` (a connected Xero one) and the connections its grant reaches now.
async fn granted(
    state: &AppState,
    auth: &Auth<Admin>,
    id: Uuid,
) -> ApiResult<(Integration, Vec<zixly_connectors::xero::Connection>)> {
    let engine = engine(state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    if integration.provider != Provider::Xero.as_str() {
        return Err(ApiError::conflict(
            "not_xero",
            format!(
                "only Xero integrations have organisations to choose (this one is {})",
                integration.provider
            ),
        ));
    }
    if !integration.has_tokens {
        return Err(ApiError::conflict(
            "integration_not_connected",
            format!(
                "the integration is {} and not connected; connect Xero first",
                integration.status
            ),
        ));
    }
    let config = configured(engine, Provider::Xero)?;
    let token = |rejected: Option<SecretString>| async move {
        zixly_sync::tokens::access_token(
            &state.db,
            engine.keyring(),
            engine.http(),
            config,
            auth.tenant_id(),
            id,
            rejected.as_ref(),
        )
        .await
        .map_err(sync_error)
    };
    let access = token(None).await?;
    let connections =
        match zixly_connectors::xero::connections(engine.http(), &config.api_url, &access).await {
            // Expired or revoked early: one refresh, as a sync does.
            Err(ConnectorError::Unauthorized(_)) => {
                let access = token(Some(access)).await?;
                zixly_connectors::xero::connections(engine.http(), &config.api_url, &access).await
            }
            other => other,
        }
        .map_err(|e| {
            tracing::warn!(error = %e, "listing the Xero organisations failed");
            provider_error(&e)
        })?;
    Ok((integration, connections))
}

fn chosen_of(integration: &Integration) -> Option<String> {
    integration
        .settings
        .get(XERO_TENANT_ID)
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// List the organisations a Xero integration grants
#[utoipa::path(get, path = "/integrations/{id}/organisations", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id (a Xero integration)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = XeroOrganisations, description = "The organisations Xero's `/connections` lists now, and which one syncs read"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`not_xero`, `integration_not_connected`, `reconnect_needed` or `provider_not_configured`"),
        (status = 502, body = ErrorBody, description = "`provider_error`: Xero refused or failed"),
        (status = 503, body = ErrorBody)))]
async fn list_organisations(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<XeroOrganisations>> {
    let (integration, connections) = granted(&state, &auth, id).await?;
    Ok(Json(XeroOrganisations::new(
        id,
        &connections,
        chosen_of(&integration),
    )))
}

/// Choose the Xero organisation syncs read
#[utoipa::path(post, path = "/integrations/{id}/organisation", tag = "integrations", request_body = OrganisationChoice,
    params(("id" = Uuid, Path, description = "Integration id (a Xero integration)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = XeroOrganisations, description = "Chosen (audited); `sync_job_id` when a sync was queued"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`organisation_not_granted` (Xero does not list that organisation for this connection), `not_xero`, `integration_not_connected`, `reconnect_needed` or `provider_not_configured`"),
        (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "`provider_error`: Xero refused or failed"),
        (status = 503, body = ErrorBody)))]
async fn choose_organisation(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<OrganisationChoice>,
) -> ApiResult<Json<XeroOrganisations>> {
    engine(&state)?;
    let wanted = body.tenant_id.trim();
    if wanted.is_empty() || wanted.len() > 64 {
        return Err(ApiError::invalid_field(
            "tenant_id",
            "must be the tenant_id of one of the listed organisations",
        ));
    }
    let (_, connections) = granted(&state, &auth, id).await?;
    let orgs = zixly_connectors::xero::organisations(&connections);
    let Some(org) = orgs.iter().find(|c| c.tenant_id == wanted) else {
        let names: Vec<String> = orgs
            .iter()
            .map(|c| format!("{} ({})", c.display_name(), c.tenant_id))
            .collect();
        return Err(ApiError::conflict(
            "organisation_not_granted",
            if names.is_empty() {
                format!("Xero does not grant this connection access to organisation {wanted}: it grants none; connect Xero again")
            } else {
                format!(
                    "Xero does not grant this connection access to organisation {wanted}; choose one of: {}",
                    names.join(", ")
                )
            },
        ));
    };
    let tx = auth.begin().await?;
    // Read again in this transaction: the audit's `from` is what this change replaces.
    let before = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let from = chosen_of(&before);
    let after = tx
        .merge_integration_settings(id, &organisation_settings(org))
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let changed = from.as_deref() != Some(org.tenant_id.as_str());
    let sync_job_id =
        if changed && before.has_tokens && matches!(before.status.as_str(), "ACTIVE" | "ERROR") {
            Some(zixly_sync::engine::enqueue_sync(&tx, id).await?.id())
        } else {
            None
        };
    tx.append_audit(&auth.audit(
        "integration.organisation",
        "integration",
        Some(id.to_string()),
        json!({"provider": Provider::Xero.as_str(),
               "from": {"tenant_id": from, "name": before.settings.get(XERO_ORGANISATION_NAME)},
               "to": {"tenant_id": org.tenant_id, "name": org.display_name()},
               "sync_job_id": sync_job_id}),
    ))
    .await?;
    tx.commit().await?;
    let chosen = after
        .get(XERO_TENANT_ID)
        .and_then(|v| v.as_str())
        .map(String::from);
    let mut view = XeroOrganisations::new(id, &connections, chosen);
    view.sync_job_id = sync_job_id;
    Ok(Json(view))
}
