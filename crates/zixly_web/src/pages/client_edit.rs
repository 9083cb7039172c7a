//! Adding, renaming and deleting a client by hand (EDITOR): the forms on `/clients` and
//! `/clients/{id}`, `/clients/new`, and the delete confirmation `/clients/{id}/delete`.
//!
//! The changes are [`crate::actions::clients`], the same code as `POST /api/v1/clients`,
//! `PATCH /api/v1/clients/{id}` and `DELETE /api/v1/clients/{id}` (validation, audit row).
//! After a change the browser is redirected with a fixed message code (`?done=created`), never
//! with text in the URL.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::clients::Client;

use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::internal::capitalise;
use super::{page, see_other, PageError, PageUser};
use crate::actions::clients::{self as actions, ClientChange, ClientInput, MAX_TEXT};
use crate::auth::Editor;
use crate::error::ApiError;
use crate::input_guard::Form;

/// What a redirect after a change tells the page to say (`?done=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Created,
    Renamed,
    Deleted,
}

impl Done {
    pub fn code(self) -> &'static str {
        match self {
            Done::Created => "created",
            Done::Renamed => "renamed",
            Done::Deleted => "deleted",
        }
    }

    /// The message of a code; an unknown code says nothing.
    pub fn message_of(code: Option<&str>) -> Option<&'static str> {
        match code? {
            "created" => Some("Client added."),
            "renamed" => Some("Client renamed."),
            "deleted" => Some("Client deleted, with its financials, lead events and metrics."),
            _ => None,
        }
    }
}

/// The person-readable name of a client field in an error.
fn field_label(field: &str) -> &str {
    match field {
        "client_id" => "Client ID",
        "client_name" => "Name",
        "industry" => "Industry",
        "currency" => "Currency",
        other => other,
    }
}

/// A refused change as sentences: `Name must not be blank.`, or the API's message.
fn problems(e: &ApiError) -> String {
    let body = e.body();
    if body.error.details.is_empty() {
        return capitalise(&body.error.message) + ".";
    }
    body.error
        .details
        .iter()
        .map(|d| match d.field.as_deref() {
            Some(f) => format!("{} {}.", field_label(f), d.reason),
            None => capitalise(&d.reason) + ".",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Conflicts (a taken client ID) and invalid input go back to the form; anything else
/// (403, 404, 500) is an error page.
fn form_error(e: ApiError) -> Result<String, PageError> {
    if e.status() == StatusCode::CONFLICT || e.status() == StatusCode::UNPROCESSABLE_ENTITY {
        Ok(problems(&e))
    } else {
        Err(e.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Add

/// The fields of the add form (also what it shows again after a refusal).
#[derive(Debug, Default, Deserialize)]
pub struct NewClientForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_name: String,
    #[serde(default)]
    industry: String,
    #[serde(default)]
    currency: String,
}

/// The add form; `values` fills it again after a refusal.
pub fn add_form(csrf: &str, values: &NewClientForm) -> Markup {
    html! {
        form method="post" action="/clients/new" class="client-form" data-form="add-client" {
            (csrf_input(csrf))
            div class="row" {
                div class="field" style="flex:1;min-width:180px" {
                    label for="new-client-name" { "Name" }
                    input type="text" id="new-client-name" name="client_name" required
                        maxlength=(MAX_TEXT) value=(values.client_name) autocomplete="off";
                }
                div class="field" style="flex:1;min-width:140px" {
                    label for="new-client-id" { "Client ID" }
                    input type="text" id="new-client-id" name="client_id" required
                        maxlength=(MAX_TEXT) value=(values.client_id) autocomplete="off"
                        aria-describedby="new-client-id-hint";
                }
                div class="field" style="flex:1;min-width:140px" {
                    label for="new-client-industry" { "Industry (optional)" }
                    input type="text" id="new-client-industry" name="industry"
                        maxlength=(MAX_TEXT) value=(values.industry);
                }
                div class="field" style="width:7rem" {
                    label for="new-client-currency" { "Currency (optional)" }
                    input type="text" id="new-client-currency" name="currency" maxlength="3"
                        placeholder="AUD" value=(values.currency) autocomplete="off";
                }
            }
            p class="hint" id="new-client-id-hint" {
                "The client's identifier in your files and systems (the CSV column client_id); imports of that ID add to this client."
            }
            button type="submit" { "Add client" }
        }
    }
}

/// `GET /clients/new`: the add form on its own page.
pub async fn new_form(user: PageUser<Editor>) -> Result<Response, PageError> {
    render_new(&user, &NewClientForm::default(), None, StatusCode::OK).await
}

async fn render_new(
    user: &PageUser<Editor>,
    values: &NewClientForm,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let body = html! {
        p class="small" { a href="/clients" { "← All clients" } }
        (html::head("Add a client", "Clients also appear by themselves when a file or a sync brings their data.", html! {}))
        @if let Some(e) = error { (flash_box("err", e)) }
        section class="card" aria-label="New client" { (add_form(&user.csrf, values)) }
    };
    let mut r = page(page_layout(
        "Add a client",
        Nav::Clients,
        Some(&user.who(&tenant)),
        body,
    ));
    *r.status_mut() = status;
    Ok(r)
}

/// An optional form field: blank is absent.
fn optional(v: &str) -> Option<&str> {
    Some(v.trim()).filter(|v| !v.is_empty())
}

/// `POST /clients/new`: [`actions::create`], as `POST /api/v1/clients`; then the new client's
/// page.
pub async fn create(
    user: PageUser<Editor>,
    Form(f): Form<NewClientForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let input = ClientInput {
        client_id: &f.client_id,
        client_name: &f.client_name,
        industry: optional(&f.industry),
        currency: optional(&f.currency),
    };
    match actions::create(&user.auth, &input).await {
        Ok(client) => Ok(see_other(&format!(
            "/clients/{}?done={}",
            client.id,
            Done::Created.code()
        ))),
        Err(e) => {
            let status = e.status();
            let message = form_error(e)?;
            render_new(&user, &f, Some(&message), status).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rename

/// The client page's part for EDITORs: rename, and the way to delete.
pub fn manage_card(csrf: &str, client: &Client) -> Markup {
    html! {
        section class="card" aria-labelledby="manage-title" data-manage-client {
            h2 id="manage-title" { "Manage client" }
            form class="row" method="post" action={ "/clients/" (client.id) "/rename" } {
                (csrf_input(csrf))
                div class="field" style="flex:1;min-width:200px" {
                    label for="rename-client" { "Client name" }
                    input type="text" id="rename-client" name="client_name" required
                        maxlength=(MAX_TEXT) value=(client.client_name);
                }
                button type="submit" class="secondary" { "Rename" }
            }
            p class="small" style="margin:.75rem 0 0" {
                a class="button danger small" href={ "/clients/" (client.id) "/delete" } { "Delete client…" }
                " "
                span class="muted" { "Removes the client with all its financials, lead events and metrics." }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RenameForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    client_name: String,
}

/// `POST /clients/{id}/rename`: [`actions::update`], as `PATCH /api/v1/clients/{id}` with
/// `client_name`. A refused name shows the form again with the reason.
pub async fn rename(
    user: PageUser<Editor>,
    Path(id): Path<String>,
    Form(f): Form<RenameForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound)?;
    let change = ClientChange {
        client_name: Some(&f.client_name),
        ..Default::default()
    };
    match actions::update(&user.auth, id, &change).await {
        Ok(_) => Ok(see_other(&format!(
            "/clients/{id}?done={}",
            Done::Renamed.code()
        ))),
        Err(e) => {
            let status = e.status();
            let message = form_error(e)?;
            let tx = user.begin().await?;
            let tenant = tx.tenant_profile().await?;
            let client = tx.get_client(id).await?.ok_or(PageError::NotFound)?;
            tx.commit().await?;
            let shown = Client {
                client_name: f.client_name.clone(),
                ..client.clone()
            };
            let body = html! {
                p class="small" { a href={ "/clients/" (id) } { "← " (client.client_name) } }
                (html::head("Rename client", &client.client_name, html! {}))
                (flash_box("err", &message))
                (manage_card(&user.csrf, &shown))
            };
            let mut r = page(page_layout(
                "Rename client",
                Nav::Clients,
                Some(&user.who(&tenant)),
                body,
            ));
            *r.status_mut() = status;
            Ok(r)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Delete

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `GET /clients/{id}/delete`: what deleting removes, and a form that wants the client's name
/// typed (a deletion cannot be undone).
pub async fn confirm_delete(
    user: PageUser<Editor>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound)?;
    render_confirm(&user, id, None, StatusCode::OK).await
}

async fn render_confirm(
    user: &PageUser<Editor>,
    id: Uuid,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let client = tx.get_client(id).await?.ok_or(PageError::NotFound)?;
    let counts = tx
        .client_data_counts(id)
        .await?
        .ok_or(PageError::NotFound)?;
    tx.commit().await?;
    let body = html! {
        p class="small" { a href={ "/clients/" (id) } { "← " (client.client_name) } }
        (html::head("Delete client", "", html! {}))
        @if let Some(e) = error { (flash_box("err", e)) }
        section class="card" aria-labelledby="delete-title" data-delete-client {
            h2 id="delete-title" { "Delete " (client.client_name) "?" }
            p { "This removes the client " b { (client.client_name) } " (client ID " code { (client.client_id) } ") and with it:" }
            ul data-delete-counts {
                li data-count="financials" { (amount(counts.financials, "day of financials", "days of financials")) }
                li data-count="lead_events" { (amount(counts.lead_events, "lead event", "lead events")) }
                li data-count="custom_metrics" { (amount(counts.custom_metrics, "custom metric value", "custom metric values")) }
            }
            p { "It cannot be undone. A later import or sync with this client ID creates the client again, with only the new data." }
            form method="post" action={ "/clients/" (id) "/delete" } {
                (csrf_input(&user.csrf))
                div class="field" {
                    label for="confirm-name" { "Type the client's name to confirm: " b { (client.client_name) } }
                    input type="text" id="confirm-name" name="confirm" required autocomplete="off";
                }
                div class="row" {
                    button type="submit" class="danger" { "Delete client" }
                    a class="button secondary" href={ "/clients/" (id) } { "Cancel" }
                }
            }
        }
    };
    let mut r = page(page_layout(
        "Delete client",
        Nav::Clients,
        Some(&user.who(&tenant)),
        body,
    ));
    *r.status_mut() = status;
    Ok(r)
}

/// `1 lead event`, `12,345 days of financials`.
fn amount(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", html::count(n), if n == 1 { one } else { many })
}

/// `POST /clients/{id}/delete`: [`actions::delete`], as `DELETE /api/v1/clients/{id}`, once the
/// typed name matches; then the clients list.
pub async fn delete(
    user: PageUser<Editor>,
    Path(id): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound)?;
    let tx = user.begin().await?;
    let client = tx.get_client(id).await?.ok_or(PageError::NotFound)?;
    tx.commit().await?;
    if f.confirm.trim() != client.client_name.trim() {
        return render_confirm(
            &user,
            id,
            Some("The name you typed is not this client's name. Nothing was deleted."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    actions::delete(&user.auth, id).await?;
    Ok(see_other(&format!(
        "/clients?done={}",
        Done::Deleted.code()
    )))
}
