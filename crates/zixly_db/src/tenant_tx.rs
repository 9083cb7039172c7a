//! [`TenantTx`]: the one way to run tenant queries.

use deadpool_postgres::Object;
use uuid::Uuid;

use crate::error::{Ctx, DbResult};

/// A transaction on a pooled `zixly_app` connection with `zixly.tenant_id` set transaction-locally
/// (`set_config(.., true)`), so the setting cannot leak into the next user of the connection.
///
/// Commit explicitly with [`TenantTx::commit`]. Dropping it without committing (an error path or a
/// panic) detaches the connection from the pool and closes it, which makes the server roll back:
/// a connection can never go back to the pool in the middle of a transaction.
pub struct TenantTx {
    client: Option<Object>,
    tenant_id: Uuid,
}

impl TenantTx {
    pub(crate) async fn begin(client: Object, tenant_id: Uuid) -> DbResult<Self> {
        // A Uuid's Display is 36 hex-and-dash characters: safe to inline. Inlining lets BEGIN and
        // the setting share one round trip (batch_execute uses the simple query protocol).
        let begun = client
            .batch_execute(&format!(
                "begin; select set_config('{}', '{tenant_id}', true)",
                crate::TENANT_SETTING
            ))
            .await
            .ctx("starting a tenant transaction");
        if let Err(e) = begun {
            // Broken, or in a state we cannot tell (possibly holding a session lock, see
            // `queries::sync_runs`): close it rather than hand it to the next user.
            drop(Object::take(client));
            return Err(e);
        }
        Ok(TenantTx {
            client: Some(client),
            tenant_id,
        })
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    pub(crate) fn client(&self) -> &Object {
        self.client.as_ref().expect("TenantTx used after commit")
    }

    pub async fn commit(mut self) -> DbResult<()> {
        let client = self.client.take().expect("TenantTx committed twice");
        client.batch_execute("commit").await.ctx("committing")?;
        Ok(())
    }

    /// Commits and hands the connection back to the caller (which must return it to the pool in
    /// a clean state). On failure the connection is closed.
    pub(crate) async fn commit_keep(mut self) -> DbResult<Object> {
        self.end_keep("commit", "committing").await
    }

    /// Rolls back and hands the connection back to the caller (see [`Self::commit_keep`]).
    pub(crate) async fn rollback_keep(mut self) -> DbResult<Object> {
        self.end_keep("rollback", "rolling back").await
    }

    async fn end_keep(&mut self, sql: &str, context: &'static str) -> DbResult<Object> {
        let client = self.client.take().expect("TenantTx finished twice");
        match client.batch_execute(sql).await.ctx(context) {
            Ok(()) => Ok(client),
            Err(e) => {
                drop(Object::take(client));
                Err(e)
            }
        }
    }

    pub async fn rollback(mut self) -> DbResult<()> {
        let client = self.client.take().expect("TenantTx finished twice");
        client.batch_execute("rollback").await.ctx("rolling back")?;
        Ok(())
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Not committed: close the connection instead of returning it mid-transaction.
            drop(Object::take(client));
        }
    }
}
