//! SQL of integrations (one per tenant and provider), OAuth states and sync-run cursors.
//!
//! Tokens cross this layer only as ciphertexts (`zixly_crypto` format): this crate never sees a
//! plaintext token. The refresh protocol is [`TenantTx::lock_integration_tokens`]: `SELECT ... FOR
//! UPDATE` on the integration row, so exactly one refresh per integration runs at a time across all
//! processes; the rotated tokens are written and committed before the new access token is used.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::{SystemDb, TenantTx};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Integration {
    pub tenant_id: Uuid,
    pub id: Uuid,
    /// `XERO`, `MYOB`, `HUBSPOT`, `PIPEDRIVE`, `ASANA`.
    pub provider: String,
    /// `PENDING`, `ACTIVE`, `ERROR`, `DISABLED`.
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub settings: serde_json::Value,
    pub metadata: Option<serde_json::Value>,
    pub sync_interval_secs: i64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    pub has_tokens: bool,
    /// A provider budget (a day limit) stopped the last run; it resumes at this time.
    pub paused_until: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    /// The unfinished run (a sync under way, or waiting to resume at its checkpoint).
    pub progress: Option<crate::checkpoints::SyncProgress>,
    /// The latest finished run, with the whole run's counts.
    pub last_run: Option<crate::queries::sync_runs::LastSyncRun>,
}

const COLUMNS: &str = "tenant_id, id, provider::text, status::text, expires_at, settings, metadata, \
                       extract(epoch from sync_interval)::int8, last_sync_at, last_error, consecutive_failures, \
                       access_token is not null, paused_until, pause_reason, \
                       (select jsonb_build_object('stream', c.stream, 'pages_read', c.pages_read, \
                               'items_read', c.items_read, 'items_total', c.items_total, \
                               'started_at', c.started_at, 'updated_at', c.updated_at) \
                          from sync_checkpoints c \
                         where c.tenant_id = integrations.tenant_id and c.integration_id = integrations.id), \
                       (select jsonb_build_object('status', r.status, 'rows_read', r.rows_read, \
                               'rows_inserted', r.rows_inserted, 'rows_updated', r.rows_updated, \
                               'rows_unchanged', r.rows_unchanged, 'rows_rejected', r.rows_rejected, \
                               'started_at', r.started_at, 'finished_at', r.finished_at) \
                          from sync_runs r \
                         where r.tenant_id = integrations.tenant_id and r.integration_id = integrations.id \
                           and r.status <> 'running' \
                         order by r.finished_at desc, r.id desc limit 1)";

fn from_row(r: &Row) -> Integration {
    Integration {
        tenant_id: r.get(0),
        id: r.get(1),
        provider: r.get(2),
        status: r.get(3),
        expires_at: r.get(4),
        settings: r.get(5),
        metadata: r.get(6),
        sync_interval_secs: r.get(7),
        last_sync_at: r.get(8),
        last_error: r.get(9),
        consecutive_failures: r.get(10),
        has_tokens: r.get(11),
        paused_until: r.get(12),
        pause_reason: r.get(13),
        progress: r
            .get::<_, Option<serde_json::Value>>(14)
            .and_then(|v| serde_json::from_value(v).ok()),
        last_run: r
            .get::<_, Option<serde_json::Value>>(15)
            .and_then(|v| serde_json::from_value(v).ok()),
    }
}

/// Encrypted tokens of an integration.
pub struct TokenCiphertexts {
    pub access_token: Vec<u8>,
    pub refresh_token: Option<Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for TokenCiphertexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCiphertexts")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An OAuth state consumed by the callback.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub provider: String,
    pub user_id: Uuid,
    pub pkce_verifier: Option<Vec<u8>>,
    pub redirect_uri: String,
}

impl TenantTx {
    /// The integration of `provider`, created `PENDING` when missing.
    pub async fn ensure_integration(&self, provider: &str) -> DbResult<Integration> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "with ins as (
                        insert into integrations (tenant_id, id, provider) values ($1, $2, $3::text::integration_provider)
                        on conflict (tenant_id, provider) do nothing returning {COLUMNS})
                     select * from ins
                     union all
                     select {COLUMNS} from integrations where tenant_id = $1 and provider = $3::text::integration_provider
                     limit 1"
                ),
                &[&self.tenant_id(), &Uuid::now_v7(), &provider],
            )
            .await
            .ctx("creating an integration")?;
        Ok(from_row(&row))
    }

    pub async fn integrations(&self) -> DbResult<Vec<Integration>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {COLUMNS} from integrations where tenant_id = $1 order by provider"
                ),
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing integrations")?;
        Ok(rows.iter().map(from_row).collect())
    }

    pub async fn integration(&self, id: Uuid) -> DbResult<Option<Integration>> {
        let row = self
            .client()
            .query_opt(
                &format!("select {COLUMNS} from integrations where tenant_id = $1 and id = $2"),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading an integration")?;
        Ok(row.as_ref().map(from_row))
    }

    pub async fn integration_by_provider(&self, provider: &str) -> DbResult<Option<Integration>> {
        let row = self
            .client()
            .query_opt(
                &format!("select {COLUMNS} from integrations where tenant_id = $1 and provider = $2::text::integration_provider"),
                &[&self.tenant_id(), &provider],
            )
            .await
            .ctx("reading an integration")?;
        Ok(row.as_ref().map(from_row))
    }

    /// Locks the integration row (`FOR UPDATE`) and returns its token ciphertexts: the caller holds
    /// the lock until this transaction ends, so concurrent refreshers queue up behind it and then see
    /// the rotated tokens.
    pub async fn lock_integration_tokens(&self, id: Uuid) -> DbResult<Option<TokenCiphertexts>> {
        let row = self
            .client()
            .query_opt(
                "select access_token, refresh_token, expires_at from integrations
                  where tenant_id = $1 and id = $2 for update",
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("locking integration tokens")?;
        Ok(row.and_then(|r| {
            let access: Option<Vec<u8>> = r.get(0);
            access.map(|access_token| TokenCiphertexts {
                access_token,
                refresh_token: r.get(1),
                expires_at: r.get(2),
            })
        }))
    }

    /// Stores new tokens. `activate`: also mark the integration ACTIVE and clear its error.
    pub async fn store_integration_tokens(
        &self,
        id: Uuid,
        tokens: &TokenCiphertexts,
        activate: bool,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "update integrations
                    set access_token = $3, refresh_token = coalesce($4, refresh_token), expires_at = $5,
                        status = case when $6 then 'ACTIVE'::integration_status else status end,
                        last_error = case when $6 then null else last_error end,
                        consecutive_failures = case when $6 then 0 else consecutive_failures end
                  where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id, &tokens.access_token, &tokens.refresh_token, &tokens.expires_at, &activate],
            )
            .await
            .ctx("storing integration tokens")?;
        Ok(())
    }

    /// Deletes the tokens and sets `status` (disconnect: PENDING; permanent auth failure: ERROR).
    pub async fn clear_integration_tokens(
        &self,
        id: Uuid,
        status: &str,
        error: Option<&str>,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "update integrations set access_token = null, refresh_token = null, expires_at = null,
                        status = $3::text::integration_status, last_error = $4
                  where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id, &status, &error],
            )
            .await
            .ctx("clearing integration tokens")?;
        Ok(())
    }

    pub async fn set_integration_settings(
        &self,
        id: Uuid,
        settings: &serde_json::Value,
        metadata: Option<&serde_json::Value>,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "update integrations set settings = $3, metadata = coalesce($4, metadata) where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id, settings, &metadata],
            )
            .await
            .ctx("updating integration settings")?;
        Ok(())
    }

    /// Merges `changes` into the integration's settings in one statement (`settings || changes`:
    /// keys of `changes` replace those present, the others stay), so a concurrent change of other
    /// keys is not lost. Returns the settings after the change (`None`: no such integration).
    pub async fn merge_integration_settings(
        &self,
        id: Uuid,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> DbResult<Option<serde_json::Value>> {
        let changes = serde_json::Value::Object(changes.clone());
        let row = self
            .client()
            .query_opt(
                "update integrations set settings = settings || $3::jsonb where tenant_id = $1 and id = $2 returning settings",
                &[&self.tenant_id(), &id, &changes],
            )
            .await
            .ctx("merging integration settings")?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records a sync attempt's end for the integration. A failure increments
    /// `consecutive_failures` and, at `error_after` failures or when `permanent`, sets ERROR; a
    /// success (a manual retry after the cause was fixed) turns ERROR back into ACTIVE.
    pub async fn record_integration_sync(
        &self,
        id: Uuid,
        error: Option<&str>,
        permanent: bool,
        error_after: i32,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "update integrations
                    set last_sync_at = case when $3::text is null then now() else last_sync_at end,
                        last_error = $3,
                        consecutive_failures = case when $3::text is null then 0 else consecutive_failures + 1 end,
                        status = case
                            when status = 'DISABLED' then status
                            when $3::text is null and status = 'ERROR' then 'ACTIVE'::integration_status
                            when $3::text is null then status
                            when $4 or consecutive_failures + 1 >= $5 then 'ERROR'::integration_status
                            else status end
                  where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id, &error, &permanent, &error_after],
            )
            .await
            .ctx("recording an integration sync")?;
        Ok(())
    }

    /// Stores an OAuth state (hash of the `state` parameter).
    pub async fn insert_oauth_state(
        &self,
        state_hash: &[u8],
        provider: &str,
        user_id: Uuid,
        pkce_verifier: Option<&[u8]>,
        redirect_uri: &str,
        expires_at: DateTime<Utc>,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "insert into oauth_states (tenant_id, id, state_hash, provider, user_id, pkce_verifier, redirect_uri, expires_at)
                 values ($1, $2, $3, $4::text::integration_provider, $5, $6, $7, $8)",
                &[&self.tenant_id(), &Uuid::now_v7(), &state_hash, &provider, &user_id, &pkce_verifier, &redirect_uri, &expires_at],
            )
            .await
            .ctx("storing an OAuth state")?;
        Ok(())
    }

    /// Consumes an OAuth state: deletes it and returns it when it existed and had not expired
    /// (single use: a replayed state finds nothing). Expired states of the tenant are purged too.
    pub async fn take_oauth_state(&self, state_hash: &[u8]) -> DbResult<Option<OAuthState>> {
        let row = self
            .client()
            .query_opt(
                "delete from oauth_states where tenant_id = $1 and state_hash = $2
                 returning provider::text, user_id, pkce_verifier, redirect_uri, expires_at > now()",
                &[&self.tenant_id(), &state_hash],
            )
            .await
            .ctx("consuming an OAuth state")?;
        self.client()
            .execute(
                "delete from oauth_states where tenant_id = $1 and expires_at < now()",
                &[&self.tenant_id()],
            )
            .await
            .ctx("purging expired OAuth states")?;
        Ok(row.filter(|r| r.get::<_, bool>(4)).map(|r| OAuthState {
            provider: r.get(0),
            user_id: r.get(1),
            pkce_verifier: r.get(2),
            redirect_uri: r.get(3),
        }))
    }

    /// The cursor of the integration's latest successful sync (incremental syncs start there).
    /// A `partial` run counts: it loaded every valid row and reported the rejected ones, so its
    /// cursor is as good (a run of many pages is `partial` as soon as one row was rejected, and
    /// must not send every later run back to a complete read).
    pub async fn last_sync_cursor(
        &self,
        integration_id: Uuid,
    ) -> DbResult<Option<serde_json::Value>> {
        let row = self
            .client()
            .query_opt(
                "select cursor from sync_runs
                  where tenant_id = $1 and integration_id = $2 and status in ('succeeded', 'partial') and cursor is not null
                  order by started_at desc, id desc limit 1",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("reading the last sync cursor")?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// An integration due for a scheduled sync.
#[derive(Debug, Clone)]
pub struct DueIntegration {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub provider: String,
}

/// One stored ciphertext, for key rotation.
pub struct StoredSecret {
    pub tenant_id: Uuid,
    pub integration_id: Uuid,
    pub column: &'static str,
    pub ciphertext: Vec<u8>,
}

impl SystemDb {
    /// **Cross-tenant.** ACTIVE integrations whose last sync is older than their interval (or that
    /// never synced) and that have no live sync job.
    pub async fn due_integrations(&self) -> DbResult<Vec<DueIntegration>> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "select /* cross-tenant */ i.tenant_id, i.id, i.provider::text from integrations i
                  where i.status = 'ACTIVE'
                    and (i.last_sync_at is null or i.last_sync_at + i.sync_interval <= now())
                    and (i.paused_until is null or i.paused_until <= now())
                    and not exists (select 1 from jobs j where j.tenant_id = i.tenant_id and j.kind = 'sync'
                                      and j.unique_key = i.id::text and j.state in ('available', 'running', 'retryable'))
                  order by i.last_sync_at nulls first limit 1000",
                &[],
            )
            .await
            .ctx("finding due integrations")?;
        Ok(rows
            .iter()
            .map(|r| DueIntegration {
                tenant_id: r.get(0),
                id: r.get(1),
                provider: r.get(2),
            })
            .collect())
    }

    /// **Cross-tenant.** Every stored token ciphertext (for `zixly keys rotate`).
    pub async fn integration_secrets(&self) -> DbResult<Vec<StoredSecret>> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "select /* cross-tenant */ tenant_id, id, access_token, refresh_token from integrations
                  where access_token is not null or refresh_token is not null",
                &[],
            )
            .await
            .ctx("reading integration secrets")?;
        let mut out = Vec::new();
        for r in rows {
            for (i, column) in [(2, "access_token"), (3, "refresh_token")] {
                if let Some(ciphertext) = r.get::<_, Option<Vec<u8>>>(i) {
                    out.push(StoredSecret {
                        tenant_id: r.get(0),
                        integration_id: r.get(1),
                        column,
                        ciphertext,
                    });
                }
            }
        }
        Ok(out)
    }

    /// **Cross-tenant.** Replaces one ciphertext if it is still `old` (a concurrent refresh wins).
    pub async fn replace_integration_secret(
        &self,
        secret: &StoredSecret,
        new: &[u8],
    ) -> DbResult<bool> {
        let client = self.pool().get().await?;
        let sql = match secret.column {
            "access_token" => "update integrations set access_token = $3 where tenant_id = $1 and id = $2 and access_token = $4",
            _ => "update integrations set refresh_token = $3 where tenant_id = $1 and id = $2 and refresh_token = $4",
        };
        let n = client
            .execute(
                sql,
                &[
                    &secret.tenant_id,
                    &secret.integration_id,
                    &new,
                    &secret.ciphertext,
                ],
            )
            .await
            .ctx("re-encrypting a secret")?;
        Ok(n == 1)
    }
}
