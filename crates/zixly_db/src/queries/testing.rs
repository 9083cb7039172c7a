//! Raw SQL through a tenant transaction, for tests that probe RLS with arbitrary statements.
//! Compiled only with the `test-support` feature, which only dev-dependencies enable (zixly_db's own
//! tests and zixly_web's), so no `cargo build` of the binary has it.

use crate::error::{DbError, DbResult};
use crate::TenantTx;

impl TenantTx {
    /// Executes `sql` (simple protocol, may hold several statements).
    pub async fn raw_batch(&self, sql: &str) -> DbResult<()> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| DbError::query("raw statement", e))
    }

    /// Runs a query whose single column is text-castable, returning it as strings.
    pub async fn raw_strings(&self, sql: &str) -> DbResult<Vec<Option<String>>> {
        let rows = self
            .client()
            .query(sql, &[])
            .await
            .map_err(|e| DbError::query("raw query", e))?;
        Ok(rows.iter().map(|r| r.get::<_, Option<String>>(0)).collect())
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn raw_execute(&self, sql: &str) -> DbResult<u64> {
        self.client()
            .execute(sql, &[])
            .await
            .map_err(|e| DbError::query("raw statement", e))
    }
}
