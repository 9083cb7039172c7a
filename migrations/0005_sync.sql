-- Sync engine state that lets an incremental sync recompute what it touched (issue 5).
--
-- Providers whose documents AGGREGATE into one row of a dataset (Xero: many invoices, bills and
-- payments make one client's day in `financials`) cannot be synced incrementally by upserting the
-- changed documents' values: a changed or voided invoice must change its day's SUM. So:
-- * `sync_contributions`: what each provider document contributes to one client's day, in the
--   tenant's base currency. A re-fetched document replaces its rows; a VOIDED/DELETED one
--   deletes them.
-- * `sync_dirty_days`: the (client, day) pairs whose sums must be recomputed. Written in the same
--   transaction as the contributions, cleared only after the recomputed rows are loaded: a sync
--   killed in between leaves them dirty and the next run finishes the job (convergence).
create table sync_contributions (
    tenant_id      uuid          not null,
    integration_id uuid          not null,
    document_id    text          not null,
    client_id      text          not null,
    record_date    date          not null,
    revenue        numeric(14,2) not null default 0,
    expenses       numeric(14,2) not null default 0,
    cash_flow      numeric(14,2) not null default 0,
    updated_at     timestamptz   not null default now(),
    constraint sync_contributions_pkey primary key (tenant_id, integration_id, document_id, client_id),
    constraint sync_contributions_integration_fkey foreign key (tenant_id, integration_id)
        references integrations (tenant_id, id) on delete cascade
);
create index sync_contributions_day_idx
    on sync_contributions (tenant_id, integration_id, client_id, record_date);

create table sync_dirty_days (
    tenant_id      uuid not null,
    integration_id uuid not null,
    client_id      text not null,
    record_date    date not null,
    constraint sync_dirty_days_pkey primary key (tenant_id, integration_id, client_id, record_date),
    constraint sync_dirty_days_integration_fkey foreign key (tenant_id, integration_id)
        references integrations (tenant_id, id) on delete cascade
);

do $$
declare
    t text;
begin
    foreach t in array array['sync_contributions', 'sync_dirty_days']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())'
                       ' with check (tenant_id = zixly_current_tenant())', t);
        execute format('grant select on %I to zixly_readonly', t);
        execute format('grant select, insert, update, delete on %I to zixly_app', t);
    end loop;
end
$$;
