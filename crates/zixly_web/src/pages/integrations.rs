//! `/integrations` (everyone sees the status; only ADMINs get the controls) and its actions,
//! handed to the API's integration routes.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use zixly_connectors::Provider;
use zixly_domain::Role;

use maud::{html, Markup};

use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::time::local;
use super::{page, see_other, PageError, PageUser};
use crate::api::integrations::IntegrationCard;
use crate::auth::{Admin, Viewer};
use crate::input_guard::Form;
use crate::AppState;

/// What each provider contributes, for its card. The providers and their names come from
/// `zixly_connectors::Provider` (`ALL`, `display_name`); this match is exhaustive, so a new
/// provider cannot be left off the page.
fn provider_blurb(p: Provider) -> &'static str {
    match p {
        Provider::Xero => "Accounting: invoices, bills and payments become financials.",
        Provider::Myob => "Accounting: sales and purchases become financials.",
        Provider::Hubspot => "CRM: deals and their stages become lead events.",
        Provider::Pipedrive => "CRM: deals and their stages become lead events.",
        Provider::Asana => "Projects: completed tasks and on-time rates become custom metrics.",
    }
}

/// `?connected=PROVIDER` after a completed OAuth flow (the API's callback redirects here);
/// `?organisation=choose` opens the Xero organisation picker; `?organisation=chosen` after a
/// choice.
#[derive(Deserialize, Default)]
pub struct IntegrationsQuery {
    connected: Option<String>,
    organisation: Option<String>,
}

/// The Xero card's organisation part (ADMINs, connected Xero): the chosen organisation's name
/// with a way to change it, or — when none is chosen and several are granted, or when asked —
/// a form listing the organisations by name. The list comes from the API's
/// `GET /integrations/{id}/organisations`, the choice goes to its `POST .../organisation`.
async fn xero_organisation_part(
    state: &AppState,
    ctx: &crate::auth::RequestCtx,
    headers: &axum::http::HeaderMap,
    user: &PageUser<Viewer>,
    integration: &zixly_db::integrations::Integration,
    change: bool,
) -> Markup {
    use crate::api::integrations::{XeroOrganisations, XERO_ORGANISATION_NAME, XERO_TENANT_ID};
    let chosen_name = integration
        .settings
        .get(XERO_TENANT_ID)
        .and_then(|v| v.as_str())
        .map(|id| {
            integration
                .settings
                .get(XERO_ORGANISATION_NAME)
                .and_then(|v| v.as_str())
                .unwrap_or(id)
                .to_string()
        });
    if let (Some(name), false) = (&chosen_name, change) {
        return html! {
            p class="small" data-xero-organisation {
                "Organisation: " strong { (name) } " "
                a href="/integrations?organisation=choose#int-XERO" class="small" { "Change organisation" }
            }
        };
    }
    let answer = super::internal::call(
        state,
        ctx,
        headers,
        axum::http::Method::GET,
        &format!("/integrations/{}/organisations", integration.id),
        None,
    )
    .await;
    if !answer.status.is_success() {
        return html! {
            p class="flash err small" style="margin:.5rem 0 0" {
                "Could not list the Xero organisations: " (answer.message())
            }
        };
    }
    let Ok(list) = serde_json::from_value::<XeroOrganisations>(answer.body) else {
        return html! {};
    };
    if !change && !list.choice_needed {
        // None chosen and one granted: the sync reads it.
        return match list.organisations.as_slice() {
            [only] => html! {
                p class="small" data-xero-organisation { "Organisation: " strong { (only.name) } }
            },
            _ => html! {},
        };
    }
    html! {
        form method="post" action="/integrations/XERO/organisation" class="org-picker" data-xero-organisation-picker {
            (csrf_input(&user.csrf))
            fieldset {
                legend class="small" {
                    @if list.choice_needed {
                        "Xero grants access to several organisations. Choose the one to sync:"
                    } @else {
                        "Choose the organisation to sync:"
                    }
                }
                @for (i, o) in list.organisations.iter().enumerate() {
                    label class="small" {
                        input type="radio" name="tenant_id" value=(o.tenant_id)
                            checked[o.chosen || (list.chosen.is_none() && i == 0)];
                        " " (o.name)
                    }
                    br;
                }
            }
            button type="submit" class="small" { "Use this organisation" }
            @if list.chosen.is_some() {
                " " a href="/integrations" class="small" { "Cancel" }
            }
        }
    }
}

/// Whether this server can connect `provider`: it needs the token encryption key (without it
/// no integration works) and the provider's OAuth client. The names are what to configure.
enum Setup {
    Ready,
    NoEncryptionKey,
    NoClient { id_var: String, secret_var: String },
}

fn setup(state: &AppState, p: Provider) -> Setup {
    match &state.integrations {
        None => Setup::NoEncryptionKey,
        Some(engine) if engine.provider_config(p).is_some() => Setup::Ready,
        Some(_) => Setup::NoClient {
            id_var: format!("ZIXLY_{}_CLIENT_ID", p.as_str()),
            secret_var: format!("ZIXLY_{}_CLIENT_SECRET", p.as_str()),
        },
    }
}

/// What a provider that cannot be connected here says instead of a Connect button (which would
/// fail with 409 `provider_not_configured` or 503).
fn not_set_up(setup: &Setup, admin: bool) -> Markup {
    html! {
        div class="flash info small" data-not-set-up style="margin:.5rem 0 0" {
            @match setup {
                Setup::NoClient { id_var, secret_var } => {
                    "Not set up on this server. "
                    @if admin {
                        "To connect it, register an OAuth app with the provider, set "
                        code { (id_var) } " and " code { (secret_var) }
                        " in the server's environment and restart Zixly."
                    } @else {
                        "An administrator of the server can set it up."
                    }
                }
                Setup::NoEncryptionKey => {
                    "Not set up on this server: integrations need a token encryption key. "
                    @if admin {
                        "Set " code { "ZIXLY_ENCRYPTION_KEY" } " in the server's environment and restart Zixly."
                    }
                }
                Setup::Ready => {}
            }
        }
    }
}

pub async fn integrations(
    State(state): State<AppState>,
    ctx: crate::auth::RequestCtx,
    headers: axum::http::HeaderMap,
    user: PageUser<Viewer>,
    Query(q): Query<IntegrationsQuery>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let rows = tx.integration_overview().await?;
    let xero = match rows
        .iter()
        .find(|r| r.provider == Provider::Xero.as_str())
        .filter(|_| user.auth.role() == Role::Admin)
    {
        Some(r) => tx.integration(r.id).await?,
        None => None,
    };
    tx.commit().await?;
    let role = user.auth.role();
    let admin = role == Role::Admin;
    // Through the API's visibility rule: a VIEWER or EDITOR never sees what the API refuses them.
    let rows: Vec<IntegrationCard> = rows
        .into_iter()
        .map(|r| IntegrationCard::for_role(r, role))
        .collect();
    // Connected Xero (tokens stored): the organisation it syncs, or the picker.
    let xero_part = match xero.as_ref().filter(|i| i.has_tokens) {
        Some(i) => {
            xero_organisation_part(
                &state,
                &ctx,
                &headers,
                &user,
                i,
                q.organisation.as_deref() == Some("choose"),
            )
            .await
        }
        None => html! {},
    };
    let csrf = csrf_input(&user.csrf);
    let body = html! {
        (html::head(
            "Integrations",
            "Connect the systems your clients' numbers live in. Zixly syncs them on a schedule.",
            html! {},
        ))
        @if !admin { (flash_box("info", "Only ADMINs can connect or sync integrations.")) }
        @if let Some(p) = q.connected.as_deref().and_then(Provider::parse) {
            (flash_box("ok", &format!("{} is connected. The first sync has been scheduled.", p.display_name())))
        }
        @match q.organisation.as_deref() {
            Some("chosen") => (flash_box("ok", "The Xero organisation is chosen. A sync has been queued.")),
            Some("kept") => (flash_box("ok", "Xero keeps syncing the same organisation.")),
            _ => {}
        }
        div class="grid two" {
            @for p in Provider::ALL {
                (provider_card(p, rows.iter().find(|r| r.provider == p.as_str()), &setup(&state, p), admin, &csrf, &xero_part, &tenant.time_zone))
            }
        }
    };
    Ok(page(page_layout(
        "Integrations",
        Nav::Integrations,
        Some(&user.who(&tenant)),
        body,
    )))
}

/// One provider's card: status, last sync, progress or pause, error, and the ADMIN's controls.
fn provider_card(
    p: Provider,
    row: Option<&IntegrationCard>,
    setup: &Setup,
    admin: bool,
    csrf: &Markup,
    xero_part: &Markup,
    time_zone: &str,
) -> Markup {
    let (code, name) = (p.as_str(), p.display_name());
    // A connection paused by a spent provider budget is connected but not syncing: the badge
    // says so, and the line below it says until when and why.
    let paused = row.is_some_and(|r| {
        r.status == "ACTIVE" && r.paused_until.is_some_and(|u| u > chrono::Utc::now())
    });
    let status = row.map(|r| r.status.as_str()).unwrap_or("none");
    let connected = status == "ACTIVE" || status == "ERROR";
    // A connection made before its client was removed keeps its status and controls
    // (disconnecting still works); only a new connection needs the client.
    let ready = matches!(setup, Setup::Ready);
    let badge = match (paused, status, ready) {
        (true, _, _) => "PAUSED",
        (false, "none" | "DISABLED" | "PENDING", false) => "UNSET",
        (false, s, _) => s,
    };
    let status_label = match badge {
        "none" => "Not connected",
        "UNSET" => "Not set up",
        "PAUSED" => "Paused",
        "PENDING" => "Pending",
        "ACTIVE" => "Connected",
        "ERROR" => "Error",
        "DISABLED" => "Disabled",
        other => other,
    };
    html! {
        section class="card" aria-labelledby={ "int-" (code) } data-provider=(code) {
            div class="card-head" {
                h2 id={ "int-" (code) } { (name) }
                span class={ "status " (badge) } { (status_label) }
            }
            p class="muted small" { (provider_blurb(p)) }
            p class="small" {
                @match row.and_then(|r| r.last_sync_at) {
                    Some(t) => { "Last sync " (local(t, time_zone)) }
                    None => "Never synced",
                }
            }
            @if let Some(run) = row.and_then(|r| r.last_run.as_deref()) {
                p class="small muted" data-last-run { "Last run: " (run) }
            }
            (sync_progress_line(row, time_zone))
            @if p == Provider::Xero { (xero_part) }
            @if let Some(e) = row.and_then(|r| r.last_error.as_deref()) {
                p class="flash err small" style="margin:.5rem 0 0" { (e) }
            }
            @if !connected && !ready {
                (not_set_up(setup, admin))
            } @else if admin {
                @if connected {
                    form method="post" action={ "/integrations/" (code) "/sync" } class="inline" {
                        (csrf)
                        button type="submit" class="secondary small" { "Sync now" }
                    }
                    " "
                    form method="post" action={ "/integrations/" (code) "/disconnect" } class="inline" {
                        (csrf)
                        button type="submit" class="secondary small" { "Disconnect" }
                    }
                } @else {
                    form method="post" action={ "/integrations/" (code) "/connect" } class="inline" {
                        (csrf)
                        button type="submit" class="small" { "Connect " (name) }
                    }
                }
            }
        }
    }
}

/// The card's line about an unfinished run: paused until a time (and why, for ADMINs), or how far
/// it has read.
fn sync_progress_line(row: Option<&IntegrationCard>, time_zone: &str) -> Markup {
    let Some(row) = row else {
        return html! {};
    };
    html! {
        @if let Some(until) = row.paused_until {
            p class="flash info small" data-sync-paused style="margin:.5rem 0 0" {
                "Paused until " (local(until, time_zone))
                @if let Some(r) = row.pause_reason.as_deref() { ": " (r) }
            }
        }
        @if let Some(p) = &row.progress {
            p class="small" data-sync-progress { "Sync in progress — " (p) }
        }
    }
}

/// The form of an integration action: the CSRF token and, for `organisation`, the choice.
#[derive(Debug, Default, Deserialize)]
pub struct IntegrationForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    tenant_id: Option<String>,
}

/// `POST /integrations/{provider}/{connect|sync|disconnect|organisation}`: hands over to the API's
/// integration routes (connect is addressed by provider; sync, disconnect and Xero's
/// organisation choice by the integration's id).
pub async fn integration_action(
    State(state): State<AppState>,
    ctx: crate::auth::RequestCtx,
    headers: axum::http::HeaderMap,
    user: PageUser<Admin>,
    Path((provider, action)): Path<(String, String)>,
    Form(f): Form<IntegrationForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let provider = Provider::ALL
        .into_iter()
        .find(|p| p.as_str() == provider)
        .map(Provider::as_str)
        .ok_or(PageError::NotFound)?;
    let mut body = None;
    let mut done = "/integrations";
    let path = match action.as_str() {
        "connect" => format!("/integrations/{}/connect", provider.to_lowercase()),
        "organisation" if provider == Provider::Xero.as_str() => {
            let tx = user.begin().await?;
            let rows = tx.integration_overview().await?;
            tx.commit().await?;
            let id = rows
                .iter()
                .find(|r| r.provider == provider)
                .map(|r| r.id)
                .ok_or(PageError::NotFound)?;
            body = Some(json!({"tenant_id": f.tenant_id.unwrap_or_default()}));
            done = "/integrations?organisation=chosen";
            format!("/integrations/{id}/organisation")
        }
        "sync" | "disconnect" => {
            let tx = user.begin().await?;
            let rows = tx.integration_overview().await?;
            tx.commit().await?;
            let id = rows
                .iter()
                .find(|r| r.provider == provider)
                .map(|r| r.id)
                .ok_or(PageError::NotFound)?;
            format!("/integrations/{id}/{action}")
        }
        _ => return Err(PageError::NotFound),
    };
    let answer = super::internal::call(
        &state,
        &ctx,
        &headers,
        axum::http::Method::POST,
        &path,
        body,
    )
    .await;
    if let Some(url) = answer.body.get("authorize_url").and_then(|v| v.as_str()) {
        return Ok(see_other(url));
    }
    if answer.status.is_success() {
        if done.ends_with("=chosen") && answer.body["sync_job_id"].is_null() {
            done = "/integrations?organisation=kept";
        }
        return Ok(see_other(done));
    }
    if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::METHOD_NOT_ALLOWED {
        return Err(PageError::Api(crate::error::ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_available",
            "this connector is not available in this build",
        )));
    }
    Err(PageError::Api(crate::error::ApiError::new(
        answer.status,
        "integration_failed",
        answer.message(),
    )))
}
