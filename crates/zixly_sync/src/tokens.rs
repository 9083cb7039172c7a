//! Integration tokens: encryption at rest and refresh.
//!
//! Protocol of [`access_token`]:
//! 1. Open a tenant transaction and `SELECT ... FOR UPDATE` the integration row. Every process
//!    that wants to refresh this integration queues on that lock, so at most one refresh is in
//!    flight (the `invalid_grant` races of providers.md cannot happen).
//! 2. If the stored access token is not expiring within [`REFRESH_MARGIN`] and is not the one the
//!    caller saw rejected (`rejected`), return it: someone else already refreshed.
//! 3. Otherwise call the token endpoint while holding the lock, store the new ciphertexts (the
//!    rotated refresh token included) and COMMIT; only then is the new access token returned.
//! 4. `invalid_grant` and other permanent refusals put the integration in ERROR with a readable
//!    reason and delete nothing else.
//!
//! Pipedrive's token answer (code exchange and refresh) carries `api_domain`, the company's API
//! root, which can change: a refresh's `api_domain`, when valid
//! (`zixly_connectors::pipedrive::valid_api_domain`: https only), replaces
//! `settings.pipedrive_api_domain` in the same transaction as the rotated tokens, and the runner
//! reads it after obtaining its token ([`pipedrive_api_domain`]), so the requests made with the
//! new token go to the new domain.
//!
//! Associated data `<tenant>/<integration>/<column>` binds every ciphertext to its row and column.

use std::time::Duration;

use uuid::Uuid;
use zixly_connectors::{pipedrive, ConnectorError, Provider, ProviderConfig, TokenSet};
use zixly_crypto::{Keyring, SecretString};
use zixly_db::integrations::TokenCiphertexts;
use zixly_db::{AppDb, TenantTx};

use crate::SyncError;

/// Refresh when the access token expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub fn aad(tenant_id: Uuid, integration_id: Uuid, column: &str) -> Vec<u8> {
    format!("{tenant_id}/{integration_id}/{column}").into_bytes()
}

fn encrypt(
    keyring: &Keyring,
    tx: &TenantTx,
    integration_id: Uuid,
    tokens: &TokenSet,
) -> TokenCiphertexts {
    let t = tx.tenant_id();
    TokenCiphertexts {
        access_token: keyring.encrypt_str(
            &tokens.access_token,
            &aad(t, integration_id, "access_token"),
        ),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|r| keyring.encrypt_str(r, &aad(t, integration_id, "refresh_token"))),
        expires_at: tokens.expires_at,
    }
}

/// Stores freshly obtained tokens (OAuth callback) and marks the integration ACTIVE.
pub async fn store_new_tokens(
    tx: &TenantTx,
    keyring: &Keyring,
    integration_id: Uuid,
    tokens: &TokenSet,
) -> Result<(), SyncError> {
    tx.store_integration_tokens(
        integration_id,
        &encrypt(keyring, tx, integration_id, tokens),
        true,
    )
    .await?;
    Ok(())
}

/// A usable access token for the integration (see the module docs). `rejected`: the access token a
/// provider just answered 401 to, which forces a refresh unless another process already did one.
pub async fn access_token(
    app: &AppDb,
    keyring: &Keyring,
    http: &reqwest::Client,
    config: &ProviderConfig,
    tenant_id: Uuid,
    integration_id: Uuid,
    rejected: Option<&SecretString>,
) -> Result<SecretString, SyncError> {
    let tx = app.begin_tenant(tenant_id).await?;
    let stored = tx
        .lock_integration_tokens(integration_id)
        .await?
        .ok_or(SyncError::NotConnected)?;
    let access = keyring.decrypt_str(
        &stored.access_token,
        &aad(tenant_id, integration_id, "access_token"),
    )?;
    let rejected_now = rejected.is_some_and(|r| r == &access);
    if !rejected_now && !TokenSet::expiring(stored.expires_at, REFRESH_MARGIN) {
        tx.commit().await?;
        return Ok(access);
    }
    let Some(refresh_ct) = stored.refresh_token else {
        tx.clear_integration_tokens(
            integration_id,
            "ERROR",
            Some("the access token expired and there is no refresh token; connect again"),
        )
        .await?;
        tx.commit().await?;
        return Err(SyncError::NotConnected);
    };
    let refresh = keyring.decrypt_str(
        &refresh_ct,
        &aad(tenant_id, integration_id, "refresh_token"),
    )?;
    match config.refresh(http, &refresh).await {
        Ok(tokens) => {
            tx.store_integration_tokens(
                integration_id,
                &encrypt(keyring, &tx, integration_id, &tokens),
                false,
            )
            .await?;
            if let Some(changes) = refreshed_settings(config, &tokens) {
                tx.merge_integration_settings(integration_id, &changes)
                    .await?;
            }
            tx.commit().await?;
            tracing::info!(%tenant_id, %integration_id, "refreshed the access token");
            Ok(tokens.access_token)
        }
        Err(e @ ConnectorError::Permanent(_)) => {
            tx.record_integration_sync(
                integration_id,
                Some(&format!("re-authorisation needed: {e}")),
                true,
                1,
            )
            .await?;
            tx.commit().await?;
            Err(e.into())
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

/// The settings a refresh's answer updates: Pipedrive's `api_domain` when it is a valid API root
/// (an invalid or missing one keeps the stored domain).
fn refreshed_settings(
    config: &ProviderConfig,
    tokens: &TokenSet,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if config.provider != Provider::Pipedrive {
        return None;
    }
    let raw = tokens.extra.get("api_domain")?.as_str()?;
    match pipedrive::valid_api_domain(raw, &config.api_url) {
        Some(domain) => {
            let mut changes = serde_json::Map::new();
            changes.insert("pipedrive_api_domain".into(), domain.into());
            Some(changes)
        }
        None => {
            tracing::warn!(
                "Pipedrive's refresh answered an api_domain that is not an https URL; keeping the stored one"
            );
            None
        }
    }
}

/// The integration's current `settings.pipedrive_api_domain`, read after the access token was
/// obtained (a refresh may just have changed it; the run's copy of the settings predates it).
pub async fn pipedrive_api_domain(
    app: &AppDb,
    tenant_id: Uuid,
    integration_id: Uuid,
) -> Result<Option<String>, SyncError> {
    let tx = app.begin_tenant(tenant_id).await?;
    let integration = tx.integration(integration_id).await?;
    tx.commit().await?;
    Ok(integration.and_then(|i| {
        i.settings
            .get("pipedrive_api_domain")
            .and_then(|v| v.as_str())
            .map(String::from)
    }))
}
