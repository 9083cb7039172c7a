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
//!
//! Files: this one (the router, the views, the list and what every route shares), [`oauth`]
//! (connect and the callback), [`manage`] (disconnect, sync now, settings) and
//! [`xero_organisations`] (the organisation picker).

mod manage;
mod oauth;
mod xero_organisations;

pub use manage::{Disconnected, IntegrationPatch, SyncQueued};
pub use oauth::{CallbackParams, ConnectStarted};
pub use xero_organisations::*;

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
        .routes(routes!(manage::update_integration))
        .routes(routes!(oauth::oauth_callback))
        .routes(routes!(oauth::connect))
        .routes(routes!(manage::disconnect))
        .routes(routes!(manage::sync_now))
        .routes(routes!(xero_organisations::list_organisations))
        .routes(routes!(xero_organisations::choose_organisation))
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
    /// The latest finished run (`null` before the first): the whole run's counts, however many
    /// pages and attempts it took.
    pub last_run: Option<LastRunView>,
}

/// An integration's latest finished sync run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastRunView {
    /// `succeeded`, `partial` (some rows rejected), `failed` or `interrupted`.
    pub status: String,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_rejected: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl From<zixly_db::queries::sync_runs::LastSyncRun> for LastRunView {
    fn from(r: zixly_db::queries::sync_runs::LastSyncRun) -> Self {
        LastRunView {
            status: r.status,
            rows_read: r.rows_read,
            rows_inserted: r.rows_inserted,
            rows_updated: r.rows_updated,
            rows_unchanged: r.rows_unchanged,
            rows_rejected: r.rows_rejected,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
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
            last_run: i.last_run.map(LastRunView::from),
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
    /// The latest finished run's status and counts, as a sentence (every role: counts only).
    pub last_run: Option<String>,
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
            last_run: i
                .last_run
                .map(|r| format!("{} — {}", r.status, r.describe())),
        }
    }
}

pub(super) fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "integrations_unavailable",
        "integrations are not available on this server: no token encryption key is configured (set ZIXLY_ENCRYPTION_KEY)",
    )
}

pub(super) fn engine(state: &AppState) -> ApiResult<&SyncEngine> {
    state.integrations.as_ref().ok_or_else(unavailable)
}

pub(super) fn provider_error(e: &ConnectorError) -> ApiError {
    // Connector messages carry status codes and error codes, never tokens or request bodies.
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "provider_error",
        format!("the provider refused or failed: {e}"),
    )
}

pub(super) fn configured(engine: &SyncEngine, provider: Provider) -> ApiResult<&ProviderConfig> {
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
pub(super) async fn list_integrations(
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
