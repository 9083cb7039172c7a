//! `zixly_sync` — the sync engine: a provider connection's tokens, the `sync` job, the scheduler,
//! and the per-provider runners that turn connector output into loader input.
//!
//! Layout:
//! - [`tokens`]: storing tokens encrypted and handing out a usable access token, refreshing it
//!   before expiry with exactly one refresh per integration at a time (row lock), the rotated
//!   refresh token committed before the new access token is used.
//! - [`engine`]: [`engine::SyncEngine`] — the `sync` job handler and the scheduler registered on a
//!   [`zixly_queue::Worker`], enqueueing (`enqueue_sync`), and one run of one integration
//!   (status checks, error classification into job outcomes and integration status).
//! - [`providers`]: **the one place where providers are dispatched** (`providers::run`), plus one
//!   runner module per provider (`providers/{xero,hubspot,pipedrive,asana,myob}.rs`; Xero and MYOB
//!   share `providers/contributions.rs`). Adding a provider:
//!   write `providers/<name>.rs` with `pub(crate) async fn sync(ctx: &SyncCtx, token) ->
//!   Result<RunSummary, SyncError>` and add its arm to the `match` in `providers::run`.
//!
//! Flow of one run: job claimed (cross-tenant, `zixly_queue`) → [`engine::SyncEngine::run`] reads
//! the integration in its tenant → a usable access token ([`tokens::access_token`]) → the provider
//! runner fetches everything it needs over HTTP (no writes yet) → rows go through
//! `zixly_db::loader::load` inside the integration's tenant, every page counting into the run's
//! one `sync_runs` row (`SyncCtx::run`), whose last load carries the next cursor
//! (`LoadOptions::cursor`) → removals (voided documents, archived deals) → the integration's
//! `last_sync_at` / `last_error` / status are recorded.

pub mod engine;
pub mod providers;
pub mod tokens;

use zixly_connectors::{ConnectorError, Provider};

/// Failures of the sync engine. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Db(#[from] zixly_db::DbError),
    #[error(transparent)]
    Connector(#[from] zixly_connectors::ConnectorError),
    #[error("stored token cannot be decrypted: {0}")]
    Crypto(#[from] zixly_crypto::CryptoError),
    #[error("the integration is not connected (no tokens); connect it again")]
    NotConnected,
    #[error("{0} is not configured on this server (set ZIXLY_{0}_CLIENT_ID and ZIXLY_{0}_CLIENT_SECRET)")]
    NotConfigured(Provider),
    #[error("syncing {0} is not implemented yet")]
    Unsupported(Provider),
    #[error("the provider's data could not be loaded: {0}")]
    Load(String),
    #[error("{0}")]
    NoProgress(String),
}

impl SyncError {
    /// Retrying cannot help: the integration goes to ERROR at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            SyncError::Db(_) => false,
            SyncError::Connector(
                ConnectorError::Transient(_) | ConnectorError::RateLimited { .. },
            ) => false,
            SyncError::Connector(_) => true,
            SyncError::Crypto(_)
            | SyncError::NotConnected
            | SyncError::NotConfigured(_)
            | SyncError::Unsupported(_)
            | SyncError::Load(_)
            | SyncError::NoProgress(_) => true,
        }
    }
}
