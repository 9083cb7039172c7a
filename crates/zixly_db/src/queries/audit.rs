//! The audit log: every write appends one row in the same transaction as the write, so a change
//! and its record commit or roll back together. Append-only (grants plus a trigger, see 0001).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

/// One audit record. The web crate fills actor, request id and client address from the request
/// (`zixly_web::auth::Auth::audit`); background jobs use a label like `"sync:xero"` and no user.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The acting user, when a person acted.
    pub actor_user_id: Option<Uuid>,
    /// Human-readable actor (the user's email, or e.g. `"system"`), kept even if the user is deleted.
    pub actor_label: String,
    /// Dotted verb, e.g. `"user.invite"`, `"client.update"`.
    pub action: String,
    /// The kind of thing changed, e.g. `"user"`, `"client"`.
    pub entity_type: String,
    /// Its id, when there is one.
    pub entity_id: Option<String>,
    /// What changed (new values, counts). Never secrets: no passwords, tokens or hashes.
    pub summary: serde_json::Value,
    pub request_id: Option<String>,
    pub client_addr: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub summary: serde_json::Value,
    pub request_id: Option<String>,
    pub client_addr: Option<IpAddr>,
}

/// Optional filters of [`TenantTx::list_audit_logs`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor_user_id: Option<Uuid>,
    /// Only actions of this kind: the part of `action` before the dot (`user` for
    /// `user.invite`, `user.update`, …).
    pub kind: Option<String>,
}

impl TenantTx {
    /// Appends one audit row for the current tenant. Call it in the transaction of the write.
    pub async fn append_audit(&self, e: &AuditEntry) -> DbResult<Uuid> {
        let id = Uuid::now_v7();
        self.client()
            .execute(
                "insert into audit_logs (tenant_id, id, actor_user_id, actor_label, action, entity_type, entity_id,
                                         summary, request_id, client_addr)
                 values ($10, $1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &id,
                    &e.actor_user_id,
                    &e.actor_label,
                    &e.action,
                    &e.entity_type,
                    &e.entity_id,
                    &e.summary,
                    &e.request_id,
                    &e.client_addr, &self.tenant_id()],
            )
            .await
            .ctx("appending to the audit log")?;
        Ok(id)
    }

    /// Newest first, keyset-paginated on the UUIDv7 id: rows with an id below `before`.
    pub async fn list_audit_logs(
        &self,
        filter: &AuditFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> DbResult<Vec<AuditRow>> {
        let rows = self
            .client()
            .query(
                "select id, occurred_at, actor_user_id, actor_label, action, entity_type, entity_id, summary,
                        request_id, client_addr
                   from audit_logs
                  where tenant_id = $8
                    and ($1::uuid is null or id < $1)
                    and ($2::text is null or action = $2)
                    and ($3::text is null or entity_type = $3)
                    and ($4::text is null or entity_id = $4)
                    and ($5::uuid is null or actor_user_id = $5)
                    and ($7::text is null or split_part(action, '.', 1) = $7)
                  order by id desc
                  limit $6",
                &[&before, &filter.action, &filter.entity_type, &filter.entity_id, &filter.actor_user_id, &limit, &filter.kind, &self.tenant_id()],
            )
            .await
            .ctx("listing the audit log")?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                occurred_at: r.get(1),
                actor_user_id: r.get(2),
                actor_label: r.get(3),
                action: r.get(4),
                entity_type: r.get(5),
                entity_id: r.get(6),
                summary: r.get(7),
                request_id: r.get(8),
                client_addr: r.get(9),
            })
            .collect())
    }
}
