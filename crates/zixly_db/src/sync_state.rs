//! SQL of the sync engine's own state (migration 0005): per-document contributions to a client's
//! day, the days whose sums must be recomputed, and removals of rows a provider no longer has.
//!
//! Protocol of an aggregating provider (Xero), each step its own transaction:
//! 1. [`TenantTx::replace_contributions`] for the fetched documents: the days they touched before
//!    and after the change are marked dirty, in the same transaction as the new contributions.
//! 2. [`TenantTx::dirty_day_totals`]: the sums of every dirty day, which the caller hands to the
//!    loader (days with contributions) or removes (days left without any).
//! 3. [`TenantTx::settle_dirty_days`] after the load committed: deletes the `financials` rows of
//!    emptied days and clears exactly the dirty days that were processed.
//!
//! A run killed between the steps leaves days dirty; the next run recomputes them (step 2 reads
//! every dirty day of the integration, not only this run's), so it converges without duplicates.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

/// What one provider document adds to one client's day (base currency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContributionRow {
    pub document_id: String,
    pub client_id: String,
    pub record_date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
}

/// The recomputed sums of one dirty day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    pub client_id: String,
    pub record_date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
    /// 0: no document contributes any more; the day's row is to be removed.
    pub contributions: i64,
}

impl TenantTx {
    /// Replaces the contributions of `documents` (every fetched document, including VOIDED/DELETED
    /// ones, whose new contribution set is empty) by `rows`, marking old and new days dirty.
    pub async fn replace_contributions(
        &self,
        integration_id: Uuid,
        documents: &[String],
        rows: &[ContributionRow],
    ) -> DbResult<()> {
        let c = self.client();
        let t = self.tenant_id();
        c.execute(
            "insert into sync_dirty_days (tenant_id, integration_id, client_id, record_date)
             select distinct tenant_id, integration_id, client_id, record_date from sync_contributions
              where tenant_id = $1 and integration_id = $2 and document_id = any($3)
             on conflict do nothing",
            &[&t, &integration_id, &documents],
        )
        .await
        .ctx("marking the old days of changed documents")?;
        c.execute(
            "delete from sync_contributions where tenant_id = $1 and integration_id = $2 and document_id = any($3)",
            &[&t, &integration_id, &documents],
        )
        .await
        .ctx("deleting old contributions")?;
        // One row per (document, client): a document's lines for one client are summed here.
        let mut merged: Vec<ContributionRow> = Vec::with_capacity(rows.len());
        let mut at: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::new();
        for r in rows {
            match at.get(&(r.document_id.as_str(), r.client_id.as_str())) {
                Some(&i) => {
                    let m = &mut merged[i];
                    m.revenue += r.revenue;
                    m.expenses += r.expenses;
                    m.cash_flow += r.cash_flow;
                }
                None => {
                    at.insert((&r.document_id, &r.client_id), merged.len());
                    merged.push(r.clone());
                }
            }
        }
        let rows = &merged;
        let doc: Vec<&str> = rows.iter().map(|r| r.document_id.as_str()).collect();
        let client: Vec<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
        let date: Vec<NaiveDate> = rows.iter().map(|r| r.record_date).collect();
        let rev: Vec<Decimal> = rows.iter().map(|r| r.revenue).collect();
        let exp: Vec<Decimal> = rows.iter().map(|r| r.expenses).collect();
        let cash: Vec<Decimal> = rows.iter().map(|r| r.cash_flow).collect();
        c.execute(
            "insert into sync_contributions (tenant_id, integration_id, document_id, client_id, record_date, revenue, expenses, cash_flow)
             select $1, $2, d, cl, dt, r, e, cf
               from unnest($3::text[], $4::text[], $5::date[], $6::numeric[], $7::numeric[], $8::numeric[]) as u(d, cl, dt, r, e, cf)
",
            &[&t, &integration_id, &doc, &client, &date, &rev, &exp, &cash],
        )
        .await
        .ctx("storing contributions")?;
        c.execute(
            "insert into sync_dirty_days (tenant_id, integration_id, client_id, record_date)
             select distinct $1::uuid, $2::uuid, cl, dt from unnest($3::text[], $4::date[]) as u(cl, dt)
             on conflict do nothing",
            &[&t, &integration_id, &client, &date],
        )
        .await
        .ctx("marking the new days of changed documents")?;
        Ok(())
    }

    /// The sums of every dirty day of the integration, by client and day.
    pub async fn dirty_day_totals(&self, integration_id: Uuid) -> DbResult<Vec<DayTotal>> {
        let rows = self
            .client()
            .query(
                "select d.client_id, d.record_date, coalesce(sum(c.revenue), 0), coalesce(sum(c.expenses), 0),
                        coalesce(sum(c.cash_flow), 0), count(c.document_id)
                   from sync_dirty_days d
                   left join sync_contributions c
                     on c.tenant_id = d.tenant_id and c.integration_id = d.integration_id
                    and c.client_id = d.client_id and c.record_date = d.record_date
                  where d.tenant_id = $1 and d.integration_id = $2
                  group by d.client_id, d.record_date
                  order by d.client_id, d.record_date",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("summing dirty days")?;
        Ok(rows
            .iter()
            .map(|r| DayTotal {
                client_id: r.get(0),
                record_date: r.get(1),
                revenue: r.get(2),
                expenses: r.get(3),
                cash_flow: r.get(4),
                contributions: r.get(5),
            })
            .collect())
    }

    /// After the recomputed days were loaded: deletes the `financials` rows (of `source_system`)
    /// of the days no document contributes to any more, and clears the processed dirty days.
    /// Returns the number of deleted `financials` rows.
    pub async fn settle_dirty_days(
        &self,
        integration_id: Uuid,
        source_system: &str,
        processed: &[DayTotal],
    ) -> DbResult<u64> {
        let c = self.client();
        let t = self.tenant_id();
        let empty: Vec<&DayTotal> = processed.iter().filter(|d| d.contributions == 0).collect();
        let e_client: Vec<&str> = empty.iter().map(|d| d.client_id.as_str()).collect();
        let e_date: Vec<NaiveDate> = empty.iter().map(|d| d.record_date).collect();
        let deleted = c
            .execute(
                "delete from financials f using client_kpis k, unnest($3::text[], $4::date[]) as u(cl, dt)
                  where f.tenant_id = $1 and k.tenant_id = $1 and f.client_kpi_id = k.id
                    and k.client_id = u.cl and f.record_date = u.dt and f.source_system = $2",
                &[&t, &source_system, &e_client, &e_date],
            )
            .await
            .ctx("removing emptied days")?;
        self.data_changed(deleted).await?;
        self.clear_dirty_days(integration_id, processed).await?;
        Ok(deleted)
    }

    /// Clears exactly the dirty days that were processed (after their recomputed rows committed).
    pub async fn clear_dirty_days(
        &self,
        integration_id: Uuid,
        processed: &[DayTotal],
    ) -> DbResult<()> {
        let p_client: Vec<&str> = processed.iter().map(|d| d.client_id.as_str()).collect();
        let p_date: Vec<NaiveDate> = processed.iter().map(|d| d.record_date).collect();
        self.client()
            .execute(
                "delete from sync_dirty_days d using unnest($3::text[], $4::date[]) as u(cl, dt)
                  where d.tenant_id = $1 and d.integration_id = $2 and d.client_id = u.cl and d.record_date = u.dt",
                &[&self.tenant_id(), &integration_id, &p_client, &p_date],
            )
            .await
            .ctx("clearing processed dirty days")?;
        Ok(())
    }

    /// Deletes the lead events of `source_system` for leads the provider removed (archived or
    /// deleted deals). Returns the number of deleted rows.
    pub async fn delete_leads(&self, source_system: &str, lead_ids: &[String]) -> DbResult<u64> {
        let n = self
            .client()
            .execute(
                "delete from lead_events where tenant_id = $1 and source_system = $2 and lead_id = any($3)",
                &[&self.tenant_id(), &source_system, &lead_ids],
            )
            .await
            .ctx("removing lead events of removed leads")?;
        self.data_changed(n).await?;
        Ok(n)
    }

    /// Deletes the lead events of re-fetched leads that the provider no longer reports (a stage
    /// entry that vanished, a deal moved to another company): `keep` lists, per lead, the
    /// `(client_id, stage, event_date)` keys of the fresh events. Returns the number deleted.
    pub async fn prune_lead_events(
        &self,
        source_system: &str,
        leads: &[String],
        keep: &[(String, String, String, chrono::DateTime<chrono::Utc>)],
    ) -> DbResult<u64> {
        let k_lead: Vec<&str> = keep.iter().map(|k| k.0.as_str()).collect();
        let k_client: Vec<&str> = keep.iter().map(|k| k.1.as_str()).collect();
        let k_stage: Vec<&str> = keep.iter().map(|k| k.2.as_str()).collect();
        let k_at: Vec<chrono::DateTime<chrono::Utc>> = keep.iter().map(|k| k.3).collect();
        let n = self
            .client()
            .execute(
                "delete from lead_events e using client_kpis k
                  where e.tenant_id = $1 and k.tenant_id = $1 and e.client_kpi_id = k.id
                    and e.source_system = $2 and e.lead_id = any($3)
                    and not exists (select 1 from unnest($4::text[], $5::text[], $6::text[], $7::timestamptz[]) as u(l, cl, st, at)
                                     where u.l = e.lead_id and u.cl = k.client_id and u.st = e.stage and u.at = e.event_date)",
                &[&self.tenant_id(), &source_system, &leads, &k_lead, &k_client, &k_stage, &k_at],
            )
            .await
            .ctx("pruning lead events of re-fetched leads")?;
        self.data_changed(n).await?;
        Ok(n)
    }

    /// The stored contributions of `documents` (a runner that takes one client's share away from
    /// a document rewrites the rest with [`TenantTx::replace_contributions`]).
    pub async fn contributions_of(
        &self,
        integration_id: Uuid,
        documents: &[String],
    ) -> DbResult<Vec<ContributionRow>> {
        let rows = self
            .client()
            .query(
                "select document_id, client_id, record_date, revenue, expenses, cash_flow
                   from sync_contributions
                  where tenant_id = $1 and integration_id = $2 and document_id = any($3)
                  order by document_id, client_id",
                &[&self.tenant_id(), &integration_id, &documents],
            )
            .await
            .ctx("reading the contributions of documents")?;
        Ok(rows
            .iter()
            .map(|r| ContributionRow {
                document_id: r.get(0),
                client_id: r.get(1),
                record_date: r.get(2),
                revenue: r.get(3),
                expenses: r.get(4),
                cash_flow: r.get(5),
            })
            .collect())
    }

    /// Every document that currently contributes to the integration's days (a provider without
    /// a deletion list replaces all of them after a complete read: what it no longer lists is gone).
    pub async fn contribution_documents(&self, integration_id: Uuid) -> DbResult<Vec<String>> {
        let rows = self
            .client()
            .query(
                "select distinct document_id from sync_contributions where tenant_id = $1 and integration_id = $2",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("listing contributing documents")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Documents none of whose contributions were stored since the integration's unfinished run
    /// started (`sync_checkpoints.started_at`, the database's clock like `updated_at`): at the end
    /// of a complete read of a provider that lists no deletions (MYOB), the documents the read
    /// no longer listed. None without a checkpoint.
    pub async fn contribution_documents_before_run(
        &self,
        integration_id: Uuid,
    ) -> DbResult<Vec<String>> {
        let rows = self
            .client()
            .query(
                "select c.document_id from sync_contributions c
                  where c.tenant_id = $1 and c.integration_id = $2
                  group by c.document_id
                 having max(c.updated_at) < (select k.started_at from sync_checkpoints k
                                              where k.tenant_id = $1 and k.integration_id = $2)",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("listing documents a complete read did not list")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// After the recomputed days of a provider whose contributions are metric counts (Asana) were
    /// loaded: deletes the `custom_metrics` (of `source_system`) of the processed `days` (client,
    /// start of the day) except the `(client, metric, start of the day)` triples in `keep`, so a day
    /// left without tasks, or without a rate, loses what it had. Returns the number deleted.
    pub async fn prune_metric_days(
        &self,
        source_system: &str,
        days: &[(String, chrono::DateTime<chrono::Utc>)],
        keep: &[(String, String, chrono::DateTime<chrono::Utc>)],
    ) -> DbResult<u64> {
        let d_client: Vec<&str> = days.iter().map(|d| d.0.as_str()).collect();
        let d_at: Vec<chrono::DateTime<chrono::Utc>> = days.iter().map(|d| d.1).collect();
        let k_client: Vec<&str> = keep.iter().map(|k| k.0.as_str()).collect();
        let k_name: Vec<&str> = keep.iter().map(|k| k.1.as_str()).collect();
        let k_at: Vec<chrono::DateTime<chrono::Utc>> = keep.iter().map(|k| k.2).collect();
        let n = self
            .client()
            .execute(
                "delete from custom_metrics m using client_kpis k, unnest($3::text[], $4::timestamptz[]) as d(cl, at)
                  where m.tenant_id = $1 and k.tenant_id = $1 and m.client_kpi_id = k.id
                    and m.source_system = $2 and k.client_id = d.cl and m.record_date = d.at
                    and not exists (select 1 from unnest($5::text[], $6::text[], $7::timestamptz[]) as u(cl, n, at)
                                     where u.cl = k.client_id and u.n = m.metric_name and u.at = m.record_date)",
                &[
                    &self.tenant_id(),
                    &source_system,
                    &d_client,
                    &d_at,
                    &k_client,
                    &k_name,
                    &k_at,
                ],
            )
            .await
            .ctx("pruning recomputed metric days")?;
        self.data_changed(n).await?;
        Ok(n)
    }

    /// After a complete read of a provider whose metrics are sums of contributions (Asana):
    /// deletes the `custom_metrics` of `source_system` on client-days (calendar days in `time_zone`,
    /// an IANA name) to which no contribution of the integration is left: days a run before the
    /// contributions were kept wrote, or a client no longer mapped. Returns the number deleted.
    pub async fn prune_metrics_without_contributions(
        &self,
        integration_id: Uuid,
        source_system: &str,
        time_zone: &str,
    ) -> DbResult<u64> {
        let n = self
            .client()
            .execute(
                "delete from custom_metrics m using client_kpis k
                  where m.tenant_id = $1 and k.tenant_id = $1 and m.client_kpi_id = k.id
                    and m.source_system = $2
                    and not exists (select 1 from sync_contributions c
                                     where c.tenant_id = $1 and c.integration_id = $3
                                       and c.client_id = k.client_id
                                       and c.record_date = (m.record_date at time zone $4)::date)",
                &[
                    &self.tenant_id(),
                    &source_system,
                    &integration_id,
                    &time_zone,
                ],
            )
            .await
            .ctx("pruning metrics without contributions")?;
        self.data_changed(n).await?;
        Ok(n)
    }
}
