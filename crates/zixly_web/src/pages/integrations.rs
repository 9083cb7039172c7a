//! `/integrations` (everyone sees the status; only ADMINs get the controls) and its actions,
//! handed to the API's integration routes.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use zixly_domain::Role;

use super::html::{self, csrf_field, esc, layout, Nav};
use super::{page, see_other, CsrfForm, PageError, PageUser};
use crate::api::integrations::IntegrationCard;
use crate::auth::{Admin, Viewer};
use crate::input_guard::Form;
use crate::AppState;

const PROVIDERS: &[(&str, &str, &str)] = &[
    (
        "XERO",
        "Xero",
        "Accounting: invoices, bills and payments become financials.",
    ),
    (
        "MYOB",
        "MYOB",
        "Accounting: sales and purchases become financials.",
    ),
    (
        "HUBSPOT",
        "HubSpot",
        "CRM: deals and their stages become lead events.",
    ),
    (
        "PIPEDRIVE",
        "Pipedrive",
        "CRM: deals and their stages become lead events.",
    ),
    (
        "ASANA",
        "Asana",
        "Projects: task counts and hours become custom metrics.",
    ),
];

/// `?connected=PROVIDER` after a completed OAuth flow (the API's callback redirects here).
#[derive(Deserialize, Default)]
pub struct IntegrationsQuery {
    connected: Option<String>,
}

pub async fn integrations(
    user: PageUser<Viewer>,
    Query(q): Query<IntegrationsQuery>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let rows = tx.integration_overview().await?;
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
    if let Some((_, name, _)) = q
        .connected
        .as_deref()
        .and_then(|c| PROVIDERS.iter().find(|p| p.0.eq_ignore_ascii_case(c)))
    {
        body.push_str(&html::flash(
            "ok",
            &format!("{name} is connected. The first sync has been scheduled."),
        ));
    }
    body.push_str(r#"<div class="grid two">"#);
    for (code, name, what) in PROVIDERS {
        let row = rows.iter().find(|r| r.provider == *code);
        let status = row.map(|r| r.status.as_str()).unwrap_or("none");
        let status_label = match status {
            "none" => "Not connected",
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
        let _ = write!(
            body,
            r#"<section class="card" aria-labelledby="int-{code}" data-provider="{code}"><div class="card-head"><h2 id="int-{code}">{name}</h2><span class="status {status}">{status_label}</span></div><p class="muted small">{what}</p><p class="small">{last_sync}</p>{error}{controls}</section>"#
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

/// `POST /integrations/{provider}/{connect|sync|disconnect}`: hands over to the API's integration
/// routes (connect is addressed by provider, sync and disconnect by the integration's id).
pub async fn integration_action(
    State(state): State<AppState>,
    ctx: crate::auth::RequestCtx,
    headers: axum::http::HeaderMap,
    user: PageUser<Admin>,
    Path((provider, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let provider = PROVIDERS
        .iter()
        .find(|p| p.0 == provider)
        .map(|p| p.0)
        .ok_or(PageError::NotFound)?;
    let path = match action.as_str() {
        "connect" => format!("/integrations/{}/connect", provider.to_lowercase()),
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
        None,
    )
    .await;
    if let Some(url) = answer.body.get("authorize_url").and_then(|v| v.as_str()) {
        return Ok(see_other(url));
    }
    if answer.status.is_success() {
        return Ok(see_other("/integrations"));
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
