//! Notification channels (ADMIN: add, change, delete, send a test) and the caller's own in-app
//! notifications (every role: list, mark read). The API (`api/notifications.rs`) calls these;
//! the rules a receiver must meet and the delivery itself are `zixly_alerts::deliver`'s.
//!
//! Secrets: a webhook's signing secret (`whsec_…`, generated when absent and shown only in the
//! creation answer) and a Slack incoming-webhook URL (itself a credential) are stored encrypted
//! with the token keyring, bound to tenant, row and column; `target` then shows only what an
//! ADMIN needs to recognise the channel (the webhook URL, the Slack host, the e-mail address).

use serde_json::json;
use uuid::Uuid;
use zixly_alerts::deliver::{self, address, signature};
use zixly_crypto::{Keyring, SecretString};
use zixly_db::queries::notifications::{Channel, NewChannel, Notification};
use zixly_domain::EmailAddress;

use crate::auth::{Admin, Auth, Capability, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};

const MAX_NAME: usize = 100;
const MAX_TARGET: usize = 2000;

/// A new channel as a front end received it.
#[derive(Debug, Default)]
pub(crate) struct ChannelInput<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    /// Webhook or Slack URL.
    pub url: Option<&'a str>,
    /// E-mail address.
    pub address: Option<&'a str>,
    pub secret: Option<&'a str>,
}

/// A created channel and the secret to show once (a webhook's signing secret).
pub(crate) struct CreatedChannel {
    pub channel: Channel,
    pub secret: Option<SecretString>,
}

fn name(value: &str, errors: &mut Vec<ErrorDetail>) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(ErrorDetail::field("name", "must not be blank"));
    } else if v.chars().count() > MAX_NAME {
        errors.push(ErrorDetail::field(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    v.to_string()
}

fn url(value: Option<&str>, errors: &mut Vec<ErrorDetail>) -> Option<url::Url> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        errors.push(ErrorDetail::field("url", "is required for this kind"));
        return None;
    };
    if v.len() > MAX_TARGET {
        errors.push(ErrorDetail::field(
            "url",
            format!("must be at most {MAX_TARGET} bytes"),
        ));
        return None;
    }
    match address::check_url(v, deliver::allow_private_from_env()) {
        Ok(u) => Some(u),
        Err(e) => {
            errors.push(ErrorDetail::field("url", e.to_string()));
            None
        }
    }
}

/// Creates a channel: 422 naming each bad field (kind, name, url/address, secret), 409 for a
/// name already used, 503 when no encryption key is configured for a channel with a secret.
pub(crate) async fn create(
    auth: &Auth<Admin>,
    keyring: Option<&Keyring>,
    input: &ChannelInput<'_>,
) -> ApiResult<CreatedChannel> {
    let mut errors = Vec::new();
    let name = name(input.name, &mut errors);
    let id = Uuid::now_v7();
    // (target shown, secret stored, secret shown once)
    let (target, secret, shown) = match input.kind {
        "webhook" => {
            let u = url(input.url, &mut errors);
            let secret = match input.secret.map(str::trim).filter(|s| !s.is_empty()) {
                Some(s) if signature::secret_bytes(s).is_some() => s.to_string(),
                Some(_) => {
                    errors.push(ErrorDetail::field(
                        "secret",
                        "must be `whsec_` followed by base64 of 24 to 64 bytes",
                    ));
                    String::new()
                }
                None => signature::generate_secret(),
            };
            let shown = SecretString::new(secret.clone());
            (u.map(|u| u.to_string()), Some(secret), Some(shown))
        }
        "slack" => {
            let u = url(input.url, &mut errors);
            if input.secret.is_some_and(|s| !s.trim().is_empty()) {
                errors.push(ErrorDetail::field(
                    "secret",
                    "Slack channels take no secret",
                ));
            }
            let host = u.as_ref().and_then(|u| u.host_str().map(str::to_string));
            (host, u.map(|u| u.to_string()), None)
        }
        "email" => {
            if input.secret.is_some_and(|s| !s.trim().is_empty()) {
                errors.push(ErrorDetail::field(
                    "secret",
                    "e-mail channels take no secret",
                ));
            }
            let addr = match input.address.map(EmailAddress::parse) {
                Some(Ok(a)) => Some(a.as_str().to_string()),
                Some(Err(e)) => {
                    errors.push(ErrorDetail::field("address", e.to_string()));
                    None
                }
                None => {
                    errors.push(ErrorDetail::field(
                        "address",
                        "is required for e-mail channels",
                    ));
                    None
                }
            };
            (addr, None, None)
        }
        _ => {
            errors.push(ErrorDetail::field(
                "kind",
                "must be `webhook`, `slack` or `email`",
            ));
            (None, None, None)
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let target = target.expect("validated above");
    let secret_ciphertext = match secret {
        None => None,
        Some(secret) => {
            let keyring = keyring.ok_or_else(no_keyring)?;
            Some(keyring.encrypt_str(
                &SecretString::new(secret),
                &deliver::secret_aad(auth.tenant_id(), id),
            ))
        }
    };
    let tx = auth.begin().await?;
    let channel = tx
        .create_channel(&NewChannel {
            id,
            kind: input.kind,
            name: &name,
            target: &target,
            secret_ciphertext,
            created_by: Some(auth.user_id()),
        })
        .await
        .map_err(|e| match e {
            zixly_db::DbError::UniqueViolation { .. } => {
                ApiError::conflict("channel_name_taken", "a channel with this name exists")
            }
            e => e.into(),
        })?;
    tx.append_audit(&auth.audit(
        "notification_channel.create",
        "notification_channel",
        Some(channel.id.to_string()),
        json!({"kind": channel.kind, "name": channel.name, "target": channel.target}),
    ))
    .await?;
    tx.commit().await?;
    Ok(CreatedChannel {
        channel,
        secret: shown,
    })
}

/// The audit summary of a change: the channel's (new) name, and each changed field as
/// `{"from", "to"}` (which the audit page shows as `from → to`).
fn changes(before: &Channel, after: &Channel) -> serde_json::Value {
    let mut summary = json!({"name": after.name});
    if before.name != after.name {
        summary["renamed"] = json!({"from": before.name, "to": after.name});
    }
    if before.is_active != after.is_active {
        summary["active"] = json!({"from": before.is_active, "to": after.is_active});
    }
    summary
}

fn no_keyring() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "encryption_unavailable",
        "no encryption key is configured (ZIXLY_ENCRYPTION_KEY), so channel secrets cannot be stored",
    )
}

pub(crate) async fn list(auth: &Auth<Admin>) -> ApiResult<Vec<Channel>> {
    let tx = auth.begin().await?;
    let rows = tx.list_channels().await?;
    tx.commit().await?;
    Ok(rows)
}

/// Renames and/or (de)activates a channel; 404 when absent, 422 for nothing to change.
pub(crate) async fn update(
    auth: &Auth<Admin>,
    id: Uuid,
    new_name: Option<&str>,
    active: Option<bool>,
) -> ApiResult<Channel> {
    let tx = auth.begin().await?;
    // Existence first: another tenant's id answers 404 whatever the body says.
    let before = tx
        .channel(id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    let mut errors = Vec::new();
    let new_name = new_name.map(|n| name(n, &mut errors));
    if new_name.is_none() && active.is_none() {
        errors.push(ErrorDetail::field("name", "give `name` and/or `active`"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let after = tx
        .update_channel(id, new_name.as_deref(), active)
        .await
        .map_err(|e| match e {
            zixly_db::DbError::UniqueViolation { .. } => {
                ApiError::conflict("channel_name_taken", "a channel with this name exists")
            }
            e => e.into(),
        })?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    tx.append_audit(&auth.audit(
        "notification_channel.update",
        "notification_channel",
        Some(id.to_string()),
        changes(&before, &after),
    ))
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub(crate) async fn delete(auth: &Auth<Admin>, id: Uuid) -> ApiResult<Channel> {
    let tx = auth.begin().await?;
    let gone = tx
        .delete_channel(id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    tx.append_audit(&auth.audit(
        "notification_channel.delete",
        "notification_channel",
        Some(id.to_string()),
        json!({"kind": gone.kind, "name": gone.name}),
    ))
    .await?;
    tx.commit().await?;
    Ok(gone)
}

/// "Send test": a test delivery through the same outbox and job as an alert's. Returns its id.
pub(crate) async fn send_test(auth: &Auth<Admin>, id: Uuid) -> ApiResult<Uuid> {
    let tx = auth.begin().await?;
    let channel = tx
        .channel(id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))?;
    let delivery = tx
        .create_test_delivery(id, "alert.test", &deliver::test_payload(&channel.name))
        .await?;
    deliver::enqueue_delivery(&tx, delivery).await?;
    tx.append_audit(&auth.audit(
        "notification_channel.test",
        "notification_channel",
        Some(id.to_string()),
        json!({"name": channel.name, "delivery_id": delivery}),
    ))
    .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// The caller's notifications, newest first, and their unread count.
pub(crate) async fn mine(
    auth: &Auth<Viewer>,
    before: Option<Uuid>,
    limit: i64,
) -> ApiResult<(Vec<Notification>, i64)> {
    let tx = auth.begin().await?;
    let rows = tx.list_notifications(auth.user_id(), before, limit).await?;
    let unread = tx.unread_notifications(auth.user_id()).await?;
    tx.commit().await?;
    Ok((rows, unread))
}

/// The caller's unread count (any role: the top bar of every page shows it).
pub(crate) async fn unread<C: Capability>(auth: &Auth<C>) -> ApiResult<i64> {
    let tx = auth.begin().await?;
    let n = tx.unread_notifications(auth.user_id()).await?;
    tx.commit().await?;
    Ok(n)
}

/// Marks one of the caller's notifications read; 404 when it is not theirs.
pub(crate) async fn mark_read(auth: &Auth<Viewer>, id: Uuid) -> ApiResult<()> {
    let tx = auth.begin().await?;
    if !tx.mark_notification_read(auth.user_id(), id).await? {
        return Err(ApiError::not_found("notification"));
    }
    tx.append_audit(&auth.audit(
        "notification.read",
        "notification",
        Some(id.to_string()),
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn mark_all_read(auth: &Auth<Viewer>) -> ApiResult<u64> {
    let tx = auth.begin().await?;
    let n = tx.mark_all_notifications_read(auth.user_id()).await?;
    if n > 0 {
        tx.append_audit(&auth.audit(
            "notification.read_all",
            "notification",
            None,
            json!({"count": n}),
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}
