//! The client actions of `api/clients.rs` and the client pages (`pages/client_edit.rs`): create,
//! change (rename), delete.
//!
//! Input arrives as text so that every rejection names its field (`client_name: must not be
//! blank`), whichever front end sent it; each action writes its audit row in its transaction.

use serde_json::json;
use uuid::Uuid;
use zixly_db::queries::clients::{Client, ClientChanges, DeletedClient, NewClient};
use zixly_domain::CurrencyCode;

use crate::auth::{Auth, Editor};
use crate::error::{ApiError, ApiResult, ErrorDetail};

/// The longest `client_id`, `client_name` and `industry`, in characters.
pub(crate) const MAX_TEXT: usize = 200;

/// A new client as a front end received it.
#[derive(Debug, Default)]
pub(crate) struct ClientInput<'a> {
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub industry: Option<&'a str>,
    pub currency: Option<&'a str>,
}

/// A change as a front end received it: `None` leaves a field alone; `Some(None)` clears
/// `industry` or `currency` (an empty industry clears it too).
#[derive(Debug, Default)]
pub(crate) struct ClientChange<'a> {
    pub client_id: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub industry: Option<Option<&'a str>>,
    pub currency: Option<Option<&'a str>>,
}

fn text(field: &str, value: &str, errors: &mut Vec<ErrorDetail>) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(ErrorDetail::field(field, "must not be blank"));
    } else if v.chars().count() > MAX_TEXT {
        errors.push(ErrorDetail::field(
            field,
            format!("must be at most {MAX_TEXT} characters"),
        ));
    }
    v.to_string()
}

fn currency(value: &str, errors: &mut Vec<ErrorDetail>) -> Option<CurrencyCode> {
    match value.parse::<CurrencyCode>() {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(ErrorDetail::field("currency", e.to_string()));
            None
        }
    }
}

fn optional_text(
    field: &str,
    value: Option<&str>,
    errors: &mut Vec<ErrorDetail>,
) -> Option<String> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    if v.chars().count() > MAX_TEXT {
        errors.push(ErrorDetail::field(
            field,
            format!("must be at most {MAX_TEXT} characters"),
        ));
    }
    Some(v.to_string())
}

/// Creates a client: 422 naming each bad field, 409 when `client_id` is taken.
pub(crate) async fn create(auth: &Auth<Editor>, input: &ClientInput<'_>) -> ApiResult<Client> {
    let mut errors = Vec::new();
    let new = NewClient {
        client_id: text("client_id", input.client_id, &mut errors),
        client_name: text("client_name", input.client_name, &mut errors),
        industry: optional_text("industry", input.industry, &mut errors),
        currency: input.currency.and_then(|c| currency(c, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let tx = auth.begin().await?;
    let client = tx.create_client(&new).await?;
    tx.append_audit(&auth.audit(
        "client.create",
        "client",
        Some(client.id.to_string()),
        json!({"client_id": client.client_id, "client_name": client.client_name, "industry": client.industry, "currency": client.currency}),
    ))
    .await?;
    tx.commit().await?;
    Ok(client)
}

/// Changes a client; the audit row lists each changed field with its old and new value.
/// 404 for an id the tenant does not have, 422 for nothing to change or a bad field.
pub(crate) async fn update(
    auth: &Auth<Editor>,
    id: Uuid,
    change: &ClientChange<'_>,
) -> ApiResult<Client> {
    let mut errors = Vec::new();
    let changes = ClientChanges {
        client_id: change.client_id.map(|v| text("client_id", v, &mut errors)),
        client_name: change
            .client_name
            .map(|v| text("client_name", v, &mut errors)),
        industry: change
            .industry
            .map(|v| optional_text("industry", v, &mut errors)),
        currency: match change.currency {
            None => None,
            Some(None) => Some(None),
            Some(Some(c)) => Some(currency(c, &mut errors)),
        },
    };
    if changes.is_empty() {
        errors.push(ErrorDetail {
            reason: "nothing to change: give at least one field".into(),
            ..Default::default()
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let tx = auth.begin().await?;
    let (before, after) = tx
        .update_client(id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let mut changed = serde_json::Map::new();
    let pairs = [
        ("client_id", json!(before.client_id), json!(after.client_id)),
        (
            "client_name",
            json!(before.client_name),
            json!(after.client_name),
        ),
        ("industry", json!(before.industry), json!(after.industry)),
        ("currency", json!(before.currency), json!(after.currency)),
    ];
    for (name, old, new) in pairs {
        if old != new {
            changed.insert(name.into(), json!({"from": old, "to": new}));
        }
    }
    tx.append_audit(&auth.audit(
        "client.update",
        "client",
        Some(id.to_string()),
        json!({ "changed": changed }),
    ))
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a client with its financials, lead events and metrics; the audit row records how
/// many of each went. 404 for an id the tenant does not have.
pub(crate) async fn delete(auth: &Auth<Editor>, id: Uuid) -> ApiResult<DeletedClient> {
    let tx = auth.begin().await?;
    let deleted = tx
        .delete_client(id)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    tx.append_audit(&auth.audit(
        "client.delete",
        "client",
        Some(id.to_string()),
        json!({
            "client_id": deleted.client.client_id,
            "client_name": deleted.client.client_name,
            "deleted_financials": deleted.financials,
            "deleted_lead_events": deleted.lead_events,
            "deleted_custom_metrics": deleted.custom_metrics,
        }),
    ))
    .await?;
    tx.commit().await?;
    Ok(deleted)
}
