//! `zixly_sync` — the sync engine's database side of a provider connection.
//!
//! Layout:
//! - [`tokens`]: storing tokens encrypted and handing out a usable access token, refreshing it
//!   before expiry with exactly one refresh per integration at a time (row lock), the rotated
//!   refresh token committed before the new access token is used.
//!
//! Still to come (issue 5): the sync job (connector -> normalize -> `zixly_db::loader`, cursors in
//! `sync_runs.cursor`), the scheduler, and the per-provider runners.

pub mod tokens;

/// Failures of the sync engine.
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
}
