//! `/integrations` (everyone sees the status; only ADMINs get the controls) and its actions,
//! handed to the API's integration routes.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use zixly_connectors::Provider;
use zixly_domain::Role;

use super::html::{self, csrf_field, esc, layout, Nav};
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
) -> String {
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
    let change_link = r#" <a href="/integrations?organisation=choose#int-XERO" class="small">Change organisation</a>"#;
    if let (Some(name), false) = (&chosen_name, change) {
        return format!(
            r#"<p class="small" data-xero-organisation>Organisation: <strong>{}</strong>{change_link}</p>"#,
            esc(name)
        );
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
        return format!(
            r#"<p class="flash err small" style="margin:.5rem 0 0">Could not list the Xero organisations: {}</p>"#,
            esc(&answer.message())
        );
    }
    let Ok(list) = serde_json::from_value::<XeroOrganisations>(answer.body) else {
        return String::new();
    };
    if !change && !list.choice_needed {
        // None chosen and one granted: the sync reads it.
        return match list.organisations.as_slice() {
            [only] => format!(
                r#"<p class="small" data-xero-organisation>Organisation: <strong>{}</strong></p>"#,
                esc(&only.name)
            ),
            _ => String::new(),
        };
    }
    let mut form = format!(
        r#"<form method="post" action="/integrations/XERO/organisation" class="org-picker" data-xero-organisation-picker>{}<fieldset><legend class="small">{}</legend>"#,
        csrf_field(&user.csrf),
        if list.choice_needed {
            "Xero grants access to several organisations. Choose the one to sync:"
        } else {
            "Choose the organisation to sync:"
        }
    );
    for (i, o) in list.organisations.iter().enumerate() {
        let checked = if o.chosen || (list.chosen.is_none() && i == 0) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            form,
            r#"<label class="small"><input type="radio" name="tenant_id" value="{}"{checked}> {}</label><br>"#,
            esc(&o.tenant_id),
            esc(&o.name)
        );
    }
    form.push_str(
        r#"</fieldset><button type="submit" class="small">Use this organisation</button>"#,
    );
    if list.chosen.is_some() {
        form.push_str(r#" <a href="/integrations" class="small">Cancel</a>"#);
    }
    form.push_str("</form>");
    form
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
    let mut body = html::page_head(
        "Integrations",
        "Connect the systems your clients' numbers live in. Zixly syncs them on a schedule.",
        "",
    );
    if !admin {
        body.push_str(&html::flash(
            "info",
            "Only ADMINs can connect or sync integrations.",
        ));
    }
    if let Some(p) = q.connected.as_deref().and_then(Provider::parse) {
        body.push_str(&html::flash(
            "ok",
            &format!(
                "{} is connected. The first sync has been scheduled.",
                p.display_name()
            ),
        ));
    }
    match q.organisation.as_deref() {
        Some("chosen") => body.push_str(&html::flash(
            "ok",
            "The Xero organisation is chosen. A sync has been queued.",
        )),
        Some("kept") => body.push_str(&html::flash(
            "ok",
            "Xero keeps syncing the same organisation.",
        )),
        _ => {}
    }
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
        None => String::new(),
    };
    body.push_str(r#"<div class="grid two">"#);
    for p in Provider::ALL {
        let (code, name, what) = (p.as_str(), p.display_name(), provider_blurb(p));
        let row = rows.iter().find(|r| r.provider == code);
        // A connection paused by a spent provider budget is connected but not syncing: the badge
        // says so, and the line below it says until when and why.
        let paused = row.is_some_and(|r| {
            r.status == "ACTIVE" && r.paused_until.is_some_and(|u| u > chrono::Utc::now())
        });
        let status = row.map(|r| r.status.as_str()).unwrap_or("none");
        let badge = if paused { "PAUSED" } else { status };
        let status_label = match badge {
            "none" => "Not connected",
            "PAUSED" => "Paused",
            "PENDING" => "Pending",
            "ACTIVE" => "Connected",
            "ERROR" => "Error",
            "DISABLED" => "Disabled",
            other => other,
        };
        let last_sync = row
            .and_then(|r| r.last_sync_at)
            .map(|t| format!("Last sync {}", t.format("%-d %b %Y %H:%M UTC")))
            .unwrap_or_else(|| "Never synced".into());
        let error = row
            .and_then(|r| r.last_error.as_deref())
            .map(|e| {
                format!(
                    r#"<p class="flash err small" style="margin:.5rem 0 0">{}</p>"#,
                    esc(e)
                )
            })
            .unwrap_or_default();
        let progress = sync_progress_line(row);
        let controls = if admin {
            if status == "ACTIVE" || status == "ERROR" {
                format!(
                    r#"<form method="post" action="/integrations/{code}/sync" class="inline">{csrf}<button type="submit" class="secondary small">Sync now</button></form> <form method="post" action="/integrations/{code}/disconnect" class="inline">{csrf}<button type="submit" class="secondary small">Disconnect</button></form>"#,
                    csrf = csrf_field(&user.csrf)
                )
            } else {
                format!(
                    r#"<form method="post" action="/integrations/{code}/connect" class="inline">{}<button type="submit" class="small">Connect {name}</button></form>"#,
                    csrf_field(&user.csrf)
                )
            }
        } else {
            String::new()
        };
        let organisation = if p == Provider::Xero {
            xero_part.as_str()
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<section class="card" aria-labelledby="int-{code}" data-provider="{code}"><div class="card-head"><h2 id="int-{code}">{name}</h2><span class="status {badge}">{status_label}</span></div><p class="muted small">{what}</p><p class="small">{last_sync}</p>{progress}{organisation}{error}{controls}</section>"#
        );
    }
    body.push_str("</div>");
    Ok(page(layout(
        "Integrations",
        Nav::Integrations,
        Some(&user.who(&tenant)),
        &body,
    )))
}

/// The card's line about an unfinished run: paused until a time (and why, for ADMINs), or how far
/// it has read.
fn sync_progress_line(row: Option<&IntegrationCard>) -> String {
    let Some(row) = row else {
        return String::new();
    };
    let mut out = String::new();
    if let Some(until) = row.paused_until {
        let why = row
            .pause_reason
            .as_deref()
            .map(|r| format!(": {}", esc(r)))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<p class="flash info small" data-sync-paused style="margin:.5rem 0 0">Paused until {}{why}</p>"#,
            until.format("%-d %b %Y %H:%M UTC")
        );
    }
    if let Some(p) = &row.progress {
        let _ = write!(
            out,
            r#"<p class="small" data-sync-progress>Sync in progress — {}</p>"#,
            esc(p)
        );
    }
    out
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
