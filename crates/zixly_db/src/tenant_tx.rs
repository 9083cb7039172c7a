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
        client
            .batch_execute(&format!(
                "begin; select set_config('{}', '{tenant_id}', true)",
                crate::TENANT_SETTING
            ))
            .await
            .ctx("starting a tenant transaction")?;
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
