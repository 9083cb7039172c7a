//! Clients (`client_kpis`): list and search with keyset pagination, get, create, update, delete.
//!
//! Every statement filters `tenant_id = $1` explicitly (the transaction's tenant) on top of the
//! RLS policy: the planner then uses the tenant-leading indexes with a plain parameter, and RLS
//! still guarantees that a wrong parameter could not reach another tenant's rows.
//!
//! Pagination is keyset ("seek"), never OFFSET: a page is the rows strictly after the cursor
//! `(sort key, id)` in `(sort key, id)` order, so deep pages cost the same as the first one and
//! rows inserted meanwhile neither repeat nor vanish.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;
use zixly_domain::CurrencyCode;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

/// One client of the tenant (a row of `client_kpis`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    /// Zixly's id (UUIDv7).
    pub id: Uuid,
    /// The identifier in the source system (CSV `client_id`, Xero ContactID, ...): unique per tenant.
    pub client_id: String,
    pub client_name: String,
    pub industry: Option<String>,
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CLIENT_COLUMNS: &str =
    "id, client_id, client_name, industry, currency::text, created_at, updated_at, lower(client_name)";

fn client_from_row(r: &Row) -> Client {
    Client {
        id: r.get(0),
        client_id: r.get(1),
        client_name: r.get(2),
        industry: r.get(3),
        currency: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

/// Sort orders of the client list. Ties (equal names) are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSort {
    /// Case-insensitively by name (the index `client_kpis_tenant_name_idx`).
    #[default]
    Name,
    /// By creation (ids are UUIDv7, so id order is creation order).
    Created,
}

/// Where a page ends: the sort key and id of its last row. Opaque to API clients (the web layer
/// encodes it); it carries its sort order so that a cursor cannot be replayed with another one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientCursor {
    pub sort: ClientSort,
    /// `lower(client_name)` for [`ClientSort::Name`]; empty for [`ClientSort::Created`].
    pub key: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, Default)]
pub struct ClientQuery {
    /// Substring of the name, matched case-insensitively (`ILIKE`, wildcards in it are literal).
    pub search: Option<String>,
    pub sort: ClientSort,
    pub after: Option<ClientCursor>,
    /// Page size (at least 1).
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Present when more rows follow.
    pub next: Option<C>,
}

/// A new client. Validation of names and codes happens before (web layer / domain types).
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub client_name: String,
    pub industry: Option<String>,
    pub currency: Option<CurrencyCode>,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub industry: Option<Option<String>>,
    pub currency: Option<Option<CurrencyCode>>,
}

impl ClientChanges {
    pub fn is_empty(&self) -> bool {
        self.client_id.is_none()
            && self.client_name.is_none()
            && self.industry.is_none()
            && self.currency.is_none()
    }
}

/// A deleted client and how many rows went with it (for the audit summary).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeletedClient {
    pub client: Client,
    pub financials: i64,
    pub lead_events: i64,
    pub custom_metrics: i64,
}

/// How many rows of each kind belong to a client (see [`TenantTx::client_data_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDataCounts {
    pub financials: i64,
    pub lead_events: i64,
    pub custom_metrics: i64,
}

/// `%` and `_` (and the escape character) in a search are literal.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl TenantTx {
    /// A page of the tenant's clients.
    pub async fn list_clients(&self, q: &ClientQuery) -> DbResult<Page<Client, ClientCursor>> {
        let limit = i64::from(q.limit.max(1));
        let pattern = q
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(like_pattern);
        // A cursor of another sort order is ignored rather than misapplied (the web layer rejects it).
        let after = q.after.as_ref().filter(|c| c.sort == q.sort);
        let (after_key, after_id) = (after.map(|c| c.key.as_str()), after.map(|c| c.id));
        let stmt_and_rows = match q.sort {
            ClientSort::Name => {
                let sql = format!(
                    "select {CLIENT_COLUMNS} from client_kpis
                      where tenant_id = $1
                        and ($2::text is null or client_name ilike $2)
                        and ($3::text is null or (lower(client_name), id) > ($3::text, $4::uuid))
                      order by lower(client_name), id
                      limit $5"
                );
                let stmt = self
                    .client()
                    .prepare_cached(&sql)
                    .await
                    .ctx("listing clients")?;
                self.client()
                    .query(
                        &stmt,
                        &[
                            &self.tenant_id(),
                            &pattern,
                            &after_key,
                            &after_id,
                            &(limit + 1),
                        ],
                    )
                    .await
            }
            ClientSort::Created => {
                let sql = format!(
                    "select {CLIENT_COLUMNS} from client_kpis
                      where tenant_id = $1
                        and ($2::text is null or client_name ilike $2)
                        and ($3::uuid is null or id > $3::uuid)
                      order by id
                      limit $4"
                );
                let stmt = self
                    .client()
                    .prepare_cached(&sql)
                    .await
                    .ctx("listing clients")?;
                self.client()
                    .query(
                        &stmt,
                        &[&self.tenant_id(), &pattern, &after_id, &(limit + 1)],
                    )
                    .await
            }
        };
        let rows = stmt_and_rows.ctx("listing clients")?;
        let more = rows.len() as i64 > limit;
        let items: Vec<Client> = rows
            .iter()
            .take(limit as usize)
            .map(client_from_row)
            .collect();
        let next = if more {
            rows.get(limit as usize - 1).map(|r| ClientCursor {
                sort: q.sort,
                key: if q.sort == ClientSort::Name {
                    r.get(7)
                } else {
                    String::new()
                },
                id: r.get(0),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One client by Zixly id; `None` when absent or another tenant's (RLS makes them look alike).
    pub async fn get_client(&self, id: Uuid) -> DbResult<Option<Client>> {
        let sql =
            format!("select {CLIENT_COLUMNS} from client_kpis where tenant_id = $1 and id = $2");
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("reading client")?;
        let row = self
            .client()
            .query_opt(&stmt, &[&self.tenant_id(), &id])
            .await
            .ctx("reading client")?;
        Ok(row.as_ref().map(client_from_row))
    }

    /// One client by its external identifier (`client_kpis.client_id`).
    pub async fn get_client_by_external_id(&self, client_id: &str) -> DbResult<Option<Client>> {
        let sql = format!(
            "select {CLIENT_COLUMNS} from client_kpis where tenant_id = $1 and client_id = $2"
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("reading client")?;
        let row = self
            .client()
            .query_opt(&stmt, &[&self.tenant_id(), &client_id.trim()])
            .await
            .ctx("reading client")?;
        Ok(row.as_ref().map(client_from_row))
    }

    /// Creates a client. A taken `client_id` is `DbError::UniqueViolation` on `client_kpis_client_id_key`.
    pub async fn create_client(&self, new: &NewClient) -> DbResult<Client> {
        let sql = format!(
            "insert into client_kpis (tenant_id, id, client_id, client_name, industry, currency)
             values ($1, $2, $3, $4, $5, $6)
             returning {CLIENT_COLUMNS}"
        );
        let row = self
            .client()
            .query_one(
                &sql,
                &[
                    &self.tenant_id(),
                    &Uuid::now_v7(),
                    &new.client_id.trim(),
                    &new.client_name.trim(),
                    &new.industry.as_deref().map(str::trim),
                    &new.currency.as_ref().map(CurrencyCode::as_str),
                ],
            )
            .await
            .ctx("creating client")?;
        Ok(client_from_row(&row))
    }

    /// Applies `changes`; returns the row before and after, or `None` when there is no such client.
    pub async fn update_client(
        &self,
        id: Uuid,
        changes: &ClientChanges,
    ) -> DbResult<Option<(Client, Client)>> {
        let before = self.lock_client(id).await?;
        let Some(before) = before else {
            return Ok(None);
        };
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update client_kpis set
                        client_id   = coalesce($3, client_id),
                        client_name = coalesce($4, client_name),
                        industry    = case when $5 then $6 else industry end,
                        currency    = case when $7 then $8 else currency end
                      where tenant_id = $1 and id = $2
                      returning {CLIENT_COLUMNS}"
                ),
                &[
                    &self.tenant_id(),
                    &id,
                    &changes.client_id.as_deref().map(str::trim),
                    &changes.client_name.as_deref().map(str::trim),
                    &changes.industry.is_some(),
                    &changes.industry.clone().flatten().as_deref().map(str::trim),
                    &changes.currency.is_some(),
                    &changes
                        .currency
                        .flatten()
                        .as_ref()
                        .map(CurrencyCode::as_str),
                ],
            )
            .await
            .ctx("updating client")?;
        Ok(row.map(|r| (before, client_from_row(&r))))
    }

    async fn lock_client(&self, id: Uuid) -> DbResult<Option<Client>> {
        let sql = format!(
            "select {CLIENT_COLUMNS} from client_kpis where tenant_id = $1 and id = $2 for update"
        );
        let row = self
            .client()
            .query_opt(&sql, &[&self.tenant_id(), &id])
            .await
            .ctx("locking client")?;
        Ok(row.as_ref().map(client_from_row))
    }

    /// Deletes a client and, by cascade, its financials, lead events and custom metrics.
    pub async fn delete_client(&self, id: Uuid) -> DbResult<Option<DeletedClient>> {
        // The counting subqueries see the snapshot from before the delete (one statement).
        let sql = format!(
            "with counts as (
                 select (select count(*) from financials where tenant_id = $1 and client_kpi_id = $2) as f,
                        (select count(*) from lead_events where tenant_id = $1 and client_kpi_id = $2) as l,
                        (select count(*) from custom_metrics where tenant_id = $1 and client_kpi_id = $2) as m)
             delete from client_kpis using counts
              where tenant_id = $1 and id = $2
              returning {CLIENT_COLUMNS}, counts.f, counts.l, counts.m"
        );
        let row = self
            .client()
            .query_opt(&sql, &[&self.tenant_id(), &id])
            .await
            .ctx("deleting client")?;
        if row.is_some() {
            // The cascade's rollup triggers took the client's months down by its raw rows; what
            // is left are months whose rows retention deleted (migrations/0022), kept for the
            // client's reports. With the client they go too.
            self.client()
                .execute(
                    "delete from financial_months where tenant_id = $1 and client_kpi_id = $2",
                    &[&self.tenant_id(), &id],
                )
                .await
                .ctx("deleting the client's retained months")?;
        }
        Ok(row.map(|r| DeletedClient {
            client: client_from_row(&r),
            financials: r.get(8),
            lead_events: r.get(9),
            custom_metrics: r.get(10),
        }))
    }

    /// How many financials, lead events and custom metric values a client has: what deleting it
    /// removes (the delete confirmation shows it). `None` when the tenant has no such client.
    pub async fn client_data_counts(&self, id: Uuid) -> DbResult<Option<ClientDataCounts>> {
        let sql = "select (select count(*) from financials where tenant_id = $1 and client_kpi_id = $2),
                          (select count(*) from lead_events where tenant_id = $1 and client_kpi_id = $2),
                          (select count(*) from custom_metrics where tenant_id = $1 and client_kpi_id = $2)
                     from client_kpis where tenant_id = $1 and id = $2";
        let row = self
            .client()
            .query_opt(sql, &[&self.tenant_id(), &id])
            .await
            .ctx("counting a client's data")?;
        Ok(row.map(|r| ClientDataCounts {
            financials: r.get(0),
            lead_events: r.get(1),
            custom_metrics: r.get(2),
        }))
    }

    /// Whether the client exists in this tenant (series reads use it to tell "no data" from 404).
    pub async fn client_exists(&self, id: Uuid) -> DbResult<bool> {
        let stmt = self
            .client()
            .prepare_cached("select 1 from client_kpis where tenant_id = $1 and id = $2")
            .await
            .ctx("looking up client")?;
        Ok(self
            .client()
            .query_opt(&stmt, &[&self.tenant_id(), &id])
            .await
            .ctx("looking up client")?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_wildcards_are_literal() {
        assert_eq!(like_pattern("acme"), "%acme%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
