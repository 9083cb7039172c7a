//! `/notifications` (every signed-in user: their own in-app notifications, mark read, mark all
//! read, each linking to the figure) and `/settings/notifications` (ADMIN: the tenant's channels —
//! add, send test, delete — and the dispatch log, one row per delivery attempt). The changes are
//! [`crate::actions::notifications`], the same actions as the API's.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::notifications::{Channel, DispatchLogRow, Notification};

use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::time::local;
use super::{page, CsrfForm, PageError, PageUser};
use crate::actions::notifications::{self as actions, ChannelInput};
use crate::auth::{Admin, Viewer};
use crate::error::ApiError;
use crate::input_guard::Form;
use crate::AppState;

const NOTICES: &[Notice] = &[
    Notice::ok("all_read", "All notifications are marked read."),
    Notice::ok("channel_added", "The channel was added."),
    Notice::ok(
        "test_queued",
        "A test notification is on its way; its attempt appears in the dispatch log below.",
    ),
    Notice::ok("channel_deleted", "The channel was deleted."),
    Notice::err("gone", "That no longer exists."),
];

fn notice(code: &str) -> &'static Notice {
    NOTICES
        .iter()
        .find(|n| n.code == code)
        .expect("a code of NOTICES")
}

/// How many notifications the page lists.
const SHOWN: i64 = 100;

pub async fn list(
    user: PageUser<Viewer>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let (rows, unread) = actions::mine(&user.auth, None, SHOWN).await?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let flash = q.pick(NOTICES).map(|n| n.render(None, None));
    let body = list_body(&user, &tenant.time_zone, &rows, unread, flash);
    Ok(page(page_layout(
        "Notifications",
        Nav::Notifications,
        Some(&user.who(&tenant)),
        body,
    )))
}

fn list_body(
    user: &PageUser<Viewer>,
    tz: &str,
    rows: &[Notification],
    unread: i64,
    flash: Option<Markup>,
) -> Markup {
    let csrf = csrf_input(&user.csrf);
    let subtitle = match unread {
        0 => "Nothing unread.".to_string(),
        1 => "1 unread.".to_string(),
        n => format!("{} unread.", html::count(n)),
    };
    let controls = html! {
        @if unread > 0 {
            form method="post" action="/notifications/read-all" {
                (csrf)
                button type="submit" class="secondary" { "Mark all read" }
            }
        }
    };
    html! {
        (html::head("Notifications", &subtitle, controls))
        @if let Some(f) = flash { (f) }
        section class="card" aria-label="Your notifications" {
            @if rows.is_empty() {
                p class="muted" { "No notifications yet. Alerts you are told about appear here." }
            } @else {
                ul class="notification-list" data-list="notifications" {
                    @for n in rows {
                        li class={ "notification" @if n.read_at.is_none() { " unread" } } {
                            div class="notification-text" {
                                @if n.read_at.is_none() { span class="badge" { "New" } " " }
                                @match &n.link {
                                    Some(link) => a href=(link) { (n.message) },
                                    None => span { (n.message) },
                                }
                                div class="muted small" { (local(n.created_at, tz)) }
                            }
                            @if n.read_at.is_none() {
                                form method="post" action={ "/notifications/" (n.id) "/read" } {
                                    (csrf_input(&user.csrf))
                                    button type="submit" class="secondary small" { "Mark read" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn read_one(
    user: PageUser<Viewer>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    match actions::mark_read(&user.auth, id).await {
        Ok(()) => Ok(super::see_other("/notifications")),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            Ok(notice("gone").redirect("/notifications", None))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn read_all(
    user: PageUser<Viewer>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    actions::mark_all_read(&user.auth).await?;
    Ok(notice("all_read").redirect("/notifications", None))
}

// ---------------------------------------------------------------------------------------------
// Channels (ADMIN)

enum Message {
    None,
    Flash(&'static Notice),
    Error(String),
    /// A webhook's signing secret, shown once.
    Secret {
        name: String,
        secret: String,
    },
}

pub async fn channels(
    user: PageUser<Admin>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = q.pick(NOTICES).map_or(Message::None, Message::Flash);
    render_channels(&user, StatusCode::OK, message).await
}

async fn render_channels(
    user: &PageUser<Admin>,
    status: StatusCode,
    message: Message,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let channels = tx.list_channels().await?;
    let log = tx.dispatch_log(None, 50).await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let body = channels_body(user, &tenant.time_zone, &channels, &log, message);
    let mut response = page(page_layout(
        "Notification channels",
        Nav::Channels,
        Some(&user.who(&tenant)),
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

fn channels_body(
    user: &PageUser<Admin>,
    tz: &str,
    channels: &[Channel],
    log: &[DispatchLogRow],
    message: Message,
) -> Markup {
    let csrf = csrf_input(&user.csrf);
    let names: std::collections::HashMap<Uuid, &str> =
        channels.iter().map(|c| (c.id, c.name.as_str())).collect();
    html! {
        (html::head(
            "Notification channels",
            "Where alerts are sent besides the notification centre: signed webhooks, Slack, e-mail.",
            html! {},
        ))
        @match &message {
            Message::None => {},
            Message::Flash(n) => (n.render(None, None)),
            Message::Error(text) => (flash_box("err", text)),
            Message::Secret { name, secret } => {
                div class="flash ok" role="status" {
                    "Channel " b { (name) } " added. Its signing secret (shown only now; receivers verify the "
                    code { "webhook-signature" } " header with it):" br;
                    code data-webhook-secret style="word-break:break-all" { (secret) }
                }
            },
        }
        section class="card" aria-labelledby="add-title" {
            h2 id="add-title" { "Add a channel" }
            form class="row" method="post" action="/settings/notifications" {
                (csrf)
                div class="field" {
                    label for="ch-kind" { "Kind" }
                    select id="ch-kind" name="kind" {
                        option value="webhook" { "Webhook" }
                        option value="slack" { "Slack" }
                        option value="email" { "E-mail" }
                    }
                }
                div class="field" {
                    label for="ch-name" { "Name" }
                    input id="ch-name" name="name" required maxlength="100" autocomplete="off";
                }
                div class="field" style="flex:1;min-width:240px" {
                    label for="ch-target" { "URL (webhook, Slack) or e-mail address" }
                    input id="ch-target" name="target" required autocomplete="off";
                }
                button type="submit" { "Add channel" }
            }
            p class="hint" {
                "Receivers must be https on a public address. A webhook gets a Standard Webhooks signing secret; a Slack URL is stored encrypted and shown by its host only."
            }
        }
        section class="card" aria-labelledby="channels-title" {
            h2 id="channels-title" { "Channels" }
            @if channels.is_empty() {
                p class="muted" { "No channels yet." }
            } @else {
                div class="table-wrap" {
                    table data-table="channels" {
                        thead { tr {
                            th scope="col" { "Channel" }
                            th scope="col" { "Kind" }
                            th scope="col" class="hide-sm" { "Last result" }
                            th scope="col" { span class="sr-only" { "Actions" } }
                        } }
                        tbody {
                            @for c in channels {
                                tr {
                                    td {
                                        b { (c.name) }
                                        div class="muted small" style="word-break:break-all" { (c.target) }
                                        @if !c.is_active { span class="status DISABLED" { "Inactive" } }
                                    }
                                    td { (kind_label(&c.kind)) }
                                    td class="hide-sm" {
                                        @if let Some(e) = &c.last_error {
                                            span class="status ERROR" { "Failing" }
                                            div class="muted small" { (e) }
                                        } @else if let Some(t) = c.verified_at {
                                            span class="status ACTIVE" { "Delivered" }
                                            div class="muted small" { (local(t, tz)) }
                                        } @else {
                                            span class="muted" { "Nothing sent yet" }
                                        }
                                    }
                                    td {
                                        div class="row" style="gap:.4rem;flex-wrap:nowrap" {
                                            form method="post" action={ "/settings/notifications/" (c.id) "/test" } {
                                                (csrf_input(&user.csrf))
                                                button type="submit" class="secondary small" { "Send test" }
                                            }
                                            form method="post" action={ "/settings/notifications/" (c.id) "/delete" } {
                                                (csrf_input(&user.csrf))
                                                button type="submit" class="danger small"
                                                    aria-label={ "Delete " (c.name) } { "Delete" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="log-title" {
            h2 id="log-title" { "Dispatch log" }
            p class="hint" { "Every delivery attempt, newest first (the last 50). A failed attempt is retried with growing waits." }
            @if log.is_empty() {
                p class="muted" { "No attempts yet." }
            } @else {
                div class="table-wrap" {
                    table data-table="dispatch-log" {
                        thead { tr {
                            th scope="col" { "When" }
                            th scope="col" { "Channel" }
                            th scope="col" { "Event" }
                            th scope="col" { "Attempt" }
                            th scope="col" { "Result" }
                            th scope="col" class="hide-sm" { "Time taken" }
                        } }
                        tbody {
                            @for r in log {
                                tr {
                                    td class="muted" { (local(r.created_at, tz)) }
                                    td { (names.get(&r.channel_id).copied().unwrap_or("(deleted)")) }
                                    td { (event_label(&r.kind)) }
                                    td { (r.attempt) }
                                    td {
                                        @if r.status == "sent" {
                                            span class="status ACTIVE" { "Sent" }
                                        } @else {
                                            span class="status ERROR" { "Failed" }
                                        }
                                        @if let Some(code) = r.response_status { " " span class="muted small" { "HTTP " (code) } }
                                        @if let Some(e) = &r.error { div class="muted small" { (e) } }
                                    }
                                    td class="hide-sm muted" { (r.duration_ms) " ms" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "webhook" => "Webhook",
        "slack" => "Slack",
        "email" => "E-mail",
        _ => "Other",
    }
}

fn event_label(kind: &str) -> &str {
    match kind {
        "alert.firing" => "Alert firing",
        "alert.resolved" => "Alert resolved",
        "alert.test" => "Test",
        other => other,
    }
}

#[derive(Deserialize)]
pub struct ChannelForm {
    #[serde(rename = "_csrf", default)]
    pub csrf: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub target: String,
}

pub async fn add_channel(
    State(state): State<AppState>,
    user: PageUser<Admin>,
    Form(f): Form<ChannelForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let is_email = f.kind == "email";
    let input = ChannelInput {
        kind: &f.kind,
        name: &f.name,
        url: (!is_email).then_some(f.target.as_str()),
        address: is_email.then_some(f.target.as_str()),
        secret: None,
    };
    let keyring = state.integrations.as_ref().map(|e| e.keyring().as_ref());
    match actions::create(&user.auth, keyring, &input).await {
        Ok(created) => match created.secret {
            Some(secret) => {
                let message = Message::Secret {
                    name: created.channel.name,
                    secret: secret.expose().to_string(),
                };
                render_channels(&user, StatusCode::OK, message).await
            }
            None => Ok(notice("channel_added").redirect("/settings/notifications", None)),
        },
        Err(e) => {
            let status = e.status();
            // Refusals a person can act on are shown on the page, by the form (503: no key to
            // store a secret with, which only an operator can fix, but the ADMIN must read why).
            if matches!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY
                    | StatusCode::CONFLICT
                    | StatusCode::SERVICE_UNAVAILABLE
            ) {
                render_channels(&user, status, Message::Error(problems(&e))).await
            } else {
                Err(e.into())
            }
        }
    }
}

/// The error's field problems as sentences (`URL: the URL must use https.`).
fn problems(e: &ApiError) -> String {
    let body = e.body();
    if body.error.details.is_empty() {
        return super::internal::capitalise(&body.error.message) + ".";
    }
    body.error
        .details
        .iter()
        .map(|d| {
            let field = match d.field.as_deref() {
                Some("url") | Some("address") => "Receiver",
                Some("name") => "Name",
                Some("kind") => "Kind",
                Some(other) => other,
                None => "",
            };
            format!("{field}: {}.", d.reason)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn test_channel(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    match actions::send_test(&user.auth, id).await {
        Ok(_) => Ok(notice("test_queued").redirect("/settings/notifications", None)),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            Ok(notice("gone").redirect("/settings/notifications", None))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_channel(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    match actions::delete(&user.auth, id).await {
        Ok(_) => Ok(notice("channel_deleted").redirect("/settings/notifications", None)),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            Ok(notice("gone").redirect("/settings/notifications", None))
        }
        Err(e) => Err(e.into()),
    }
}
