//! Synthetic tenant data for `zixly bench api|attack`: set-based inserts through RLS, like any
//! tenant write.

use chrono::NaiveDate;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

/// What [`TenantTx::seed_synthetic_series`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeedCounts {
    pub clients: u64,
    pub financials: u64,
    pub lead_events: u64,
    pub custom_metrics: u64,
}

impl TenantTx {
    /// Synthetic data for benchmarks and demos, set-based and through RLS like any tenant write:
    /// clients `bench-001`..`bench-NNN` (AUD), one financial row per client and day over the
    /// `days` days ending `end` (source `bench`), one lead a week per client walking 1 to 4 stages
    /// of `lead → qualified → proposal → negotiation` three days apart, and a weekly
    /// `project_delivery_days` metric. Existing rows are kept (`on conflict do nothing`), so a
    /// second run adds nothing. The months must have their partitions first
    /// ([`crate::SystemDb::create_month_partitions`] over `end - days` to `end` plus ten days):
    /// DDL cannot run inside a tenant transaction, and rows without a month land in the default
    /// partition, which every read then scans whole.
    pub async fn seed_synthetic_series(
        &self,
        clients: u32,
        days: u32,
        end: NaiveDate,
    ) -> DbResult<SeedCounts> {
        let tenant = self.tenant_id();
        let (n_clients, n_days) = (
            i32::try_from(clients).unwrap_or(i32::MAX),
            i32::try_from(days.max(1)).unwrap_or(i32::MAX),
        );
        let c = self.client();
        let clients_added = c
            .execute(
                "insert into client_kpis (tenant_id, id, client_id, client_name, industry, currency)
                 select $1, zixly_uuid_v7(), 'bench-' || lpad(i::text, 3, '0'), 'Bench client ' || lpad(i::text, 3, '0'),
                        'services', 'AUD'
                   from generate_series(1, $2::int) i
                 on conflict (tenant_id, client_id) do nothing",
                &[&tenant, &n_clients],
            )
            .await
            .ctx("seeding clients")?;
        let financials = c
            .execute(
                "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow,
                                         currency, source_system)
                 select tenant_id, id, d, r, e, r - e, cf, 'AUD', 'bench'
                   from (select c.tenant_id, c.id, d::date as d,
                                round((1000 + random() * 9000)::numeric, 2) as r,
                                round((500 + random() * 8000)::numeric, 2) as e,
                                round((random() * 2500 - 500)::numeric, 2) as cf
                           from client_kpis c,
                                generate_series($3::date - ($2::int - 1), $3::date, interval '1 day') d
                          where c.tenant_id = $1 and c.client_id like 'bench-%') s
                 on conflict (tenant_id, client_kpi_id, record_date, source_system) do nothing",
                &[&tenant, &n_days, &end],
            )
            .await
            .ctx("seeding financials")?;
        // Plans of the rollup triggers made on this pooled connection for another tenant's seed
        // (the tables smaller then) would be reused for this one's (see the loader's chunks).
        c.batch_execute("discard plans")
            .await
            .ctx("replanning before seeding lead events")?;
        let lead_events = c
            .execute(
                "insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status,
                                          source_system)
                 select c.tenant_id, c.id,
                        (($3::date - $2::int + 1 + n * 7)::timestamp + k * interval '3 days' + interval '10 hours')
                            at time zone 'UTC',
                        'L' || n, (array['lead', 'qualified', 'proposal', 'negotiation'])[k + 1],
                        round((1000 + random() * 50000)::numeric, 2), 'AUD',
                        case when k = s.depth - 1
                             then (array['won', 'lost', 'stale', 'active'])[1 + n % 4]::lead_status
                             else 'active'::lead_status end,
                        'bench'
                   from client_kpis c,
                        generate_series(0, $2::int / 7 - 1) n,
                        lateral (select 1 + abs(hashtext(c.id::text || n::text)) % 4 as depth) s,
                        lateral generate_series(0, s.depth - 1) k
                  where c.tenant_id = $1 and c.client_id like 'bench-%'
                 on conflict (tenant_id, client_kpi_id, source_system, lead_id, stage, event_date) do nothing",
                &[&tenant, &n_days, &end],
            )
            .await
            .ctx("seeding lead events")?;
        let custom_metrics = c
            .execute(
                "insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date,
                                             source_system)
                 select c.tenant_id, c.id, 'project_delivery_days', round((5 + random() * 40)::numeric, 4), 'days',
                        (($3::date - $2::int + 1 + n * 7)::timestamp + interval '9 hours') at time zone 'UTC', 'bench'
                   from client_kpis c, generate_series(0, $2::int / 7 - 1) n
                  where c.tenant_id = $1 and c.client_id like 'bench-%'
                 on conflict (tenant_id, client_kpi_id, metric_name, record_date, source_system) do nothing",
                &[&tenant, &n_days, &end],
            )
            .await
            .ctx("seeding custom metrics")?;
        Ok(SeedCounts {
            clients: clients_added,
            financials,
            lead_events,
            custom_metrics,
        })
    }
}
