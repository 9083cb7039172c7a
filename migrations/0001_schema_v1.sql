-- Zixly schema v1.
--
-- Conventions (they are load-bearing; tests in crates/zixly_db/tests check them against the catalog):
-- * Every tenant-scoped table carries `tenant_id uuid not null` as the FIRST column of its primary key,
--   of every unique constraint and of every foreign key to another tenant table. Citus can then
--   distribute every table by `tenant_id` and co-locate them unchanged; PostgreSQL also gets an index
--   whose leading column is the RLS predicate.
-- * Ids are UUIDv7 (time-ordered: new rows land at the right edge of the b-tree, and ids sort by
--   creation). The application generates them (uuid crate); `zixly_uuid_v7()` is the server-side
--   default for set-based loads. We chose UUIDv7 over ULID because PostgreSQL has a native 16-byte
--   `uuid` type and every client library understands it.
-- * Money is numeric(12,2), metric values numeric(12,4). Business dates are `date`; instants are
--   `timestamptz`.
-- * Constraints are named explicitly: the application maps constraint names to error messages.
-- * Every tenant table has ENABLE + FORCE ROW LEVEL SECURITY and one policy `tenant_isolation` that
--   compares `tenant_id` with `zixly_current_tenant()` in USING and WITH CHECK.
-- * Grants live next to each table. `zixly_app` gets DML only; `zixly_readonly` SELECT only.
--
-- Roles (`zixly_owner`, `zixly_app`, `zixly_readonly`) are cluster-wide and are created by the
-- bootstrap step (crates/zixly_db/src/bootstrap.rs), not here: migrations run as `zixly_owner`.

revoke all on schema public from public;
grant usage on schema public to zixly_app, zixly_readonly;

-- Server-side UUIDv7: 48-bit unix-ms timestamp, then random bits, with version 7 and the RFC 4122
-- variant. Built from gen_random_uuid() (variant already set); bits 52 and 53 turn version 4 into 7.
create function zixly_uuid_v7() returns uuid
language sql volatile parallel safe as $$
    select encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                    from 1 for 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The tenant of the current transaction, from the transaction-local setting `zixly.tenant_id`.
-- STABLE (not VOLATILE) so the planner can use it as an index condition; a plain SQL expression (no
-- subquery) so Citus accepts policies that call it. Fails closed: an unset setting, or the empty
-- string that a setting reads back as after a `set_config(..., true)` transaction ended, gives NULL,
-- and `tenant_id = NULL` matches no row and allows no write.
create function zixly_current_tenant() returns uuid
language sql stable parallel safe as $$
    select nullif(current_setting('zixly.tenant_id', true), '')::uuid
$$;
grant execute on function zixly_current_tenant() to zixly_app, zixly_readonly;

create function zixly_touch_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create type user_role as enum ('ADMIN', 'EDITOR', 'VIEWER');
create type integration_provider as enum ('XERO', 'MYOB', 'HUBSPOT', 'PIPEDRIVE', 'ASANA');
create type integration_status as enum ('PENDING', 'ACTIVE', 'ERROR', 'DISABLED');
create type lead_status as enum ('active', 'won', 'lost', 'stale');
create type sync_status as enum ('running', 'succeeded', 'partial', 'failed');

----------------------------------------------------------------------------------------------------
-- tenants: the root. Not tenant-scoped by a tenant_id column, but still under RLS on `id` so that a
-- request can read and rename only its own tenant. Creating and deleting tenants is cross-tenant work
-- (the system path, as zixly_owner).
create table tenants (
    id            uuid        not null default zixly_uuid_v7(),
    name          text        not null,
    industry      text,
    base_currency char(3)     not null default 'AUD',
    time_zone     text        not null default 'Australia/Sydney',
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint tenants_pkey primary key (id),
    constraint tenants_name_not_blank check (btrim(name) <> ''),
    constraint tenants_base_currency_iso4217 check (base_currency ~ '^[A-Z]{3}$')
);
create trigger tenants_touch before update on tenants
    for each row execute function zixly_touch_updated_at();
alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenant_isolation on tenants
    using (id = zixly_current_tenant()) with check (id = zixly_current_tenant());
grant select, update on tenants to zixly_app;
grant select on tenants to zixly_readonly;

----------------------------------------------------------------------------------------------------
-- users. Email is unique per tenant (a global unique index could not contain tenant_id and could not
-- be enforced on a distributed table); login looks the email up across tenants through the SECURITY
-- DEFINER function zixly_login_candidates() (added with authentication).
create table users (
    tenant_id      uuid        not null,
    id             uuid        not null default zixly_uuid_v7(),
    email          text        not null,
    display_name   text,
    role           user_role   not null default 'VIEWER',
    password_hash  text,
    deactivated_at timestamptz,
    last_login_at  timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    constraint users_pkey primary key (tenant_id, id),
    constraint users_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint users_email_lowercase check (email = lower(email) and email like '%_@_%')
);
create unique index users_tenant_email_key on users (tenant_id, email);
create index users_email_idx on users (email);
create trigger users_touch before update on users
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- client_kpis: the tenant's clients (projects, customers) whose numbers are tracked.
-- `client_id` is the identifier in the source system (Xero ContactID, CSV client_id, ...).
create table client_kpis (
    tenant_id   uuid        not null,
    id          uuid        not null default zixly_uuid_v7(),
    client_id   text        not null,
    client_name text        not null,
    industry    text,
    currency    char(3),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint client_kpis_pkey primary key (tenant_id, id),
    constraint client_kpis_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint client_kpis_client_id_key unique (tenant_id, client_id),
    constraint client_kpis_client_id_not_blank check (btrim(client_id) <> ''),
    constraint client_kpis_currency_iso4217 check (currency ~ '^[A-Z]{3}$')
);
create index client_kpis_tenant_name_idx on client_kpis (tenant_id, lower(client_name));
create trigger client_kpis_touch before update on client_kpis
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- financials: one row per client, day and source. `source_system` is NOT NULL (default 'manual') so
-- that the dedup key really dedups: with a nullable column, NULLs would be distinct and re-imports
-- without a source would duplicate.
create table financials (
    tenant_id     uuid          not null,
    id            uuid          not null default zixly_uuid_v7(),
    client_kpi_id uuid          not null,
    record_date   date          not null,
    revenue       numeric(12,2) not null,
    expenses      numeric(12,2) not null,
    net_profit    numeric(12,2) not null,
    cash_flow     numeric(12,2) not null,
    currency      char(3)       not null default 'AUD',
    source_system text          not null default 'manual',
    external_id   text,
    metadata      jsonb,
    created_at    timestamptz   not null default now(),
    updated_at    timestamptz   not null default now(),
    constraint financials_pkey primary key (tenant_id, id),
    constraint financials_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade,
    -- Also the index for the dashboard's time-range query (client, date range).
    constraint financials_dedup_key unique (tenant_id, client_kpi_id, record_date, source_system),
    constraint financials_net_profit_derived check (net_profit = revenue - expenses),
    constraint financials_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
    constraint financials_source_not_blank check (btrim(source_system) <> '')
);
create index financials_tenant_date_idx on financials (tenant_id, record_date);
create trigger financials_touch before update on financials
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- lead_events: sales-pipeline history. One row per (lead, stage, instant) per source: a re-sync of
-- the same history is a no-op, a status or value change of the same event is an update.
create table lead_events (
    tenant_id     uuid          not null,
    id            uuid          not null default zixly_uuid_v7(),
    client_kpi_id uuid          not null,
    event_date    timestamptz   not null,
    lead_id       text          not null,
    stage         text          not null,
    value         numeric(12,2),
    currency      char(3)       not null default 'AUD',
    status        lead_status   not null,
    source_system text          not null default 'manual',
    external_id   text,
    metadata      jsonb,
    created_at    timestamptz   not null default now(),
    updated_at    timestamptz   not null default now(),
    constraint lead_events_pkey primary key (tenant_id, id),
    constraint lead_events_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade,
    constraint lead_events_natural_key
        unique (tenant_id, client_kpi_id, source_system, lead_id, stage, event_date),
    constraint lead_events_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
    constraint lead_events_source_not_blank check (btrim(source_system) <> '')
);
create index lead_events_client_date_idx on lead_events (tenant_id, client_kpi_id, event_date);
create index lead_events_lead_idx on lead_events (tenant_id, lead_id);
create index lead_events_funnel_idx on lead_events (tenant_id, client_kpi_id, stage, status);
create trigger lead_events_touch before update on lead_events
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- custom_metrics: user-defined KPIs. One value per client, metric, instant and source.
-- The seed's `embedding vector(1536)` column waits for schema 2.0 (pgvector is not a dependency yet).
create table custom_metrics (
    tenant_id     uuid          not null,
    id            uuid          not null default zixly_uuid_v7(),
    client_kpi_id uuid          not null,
    metric_name   text          not null,
    metric_value  numeric(12,4) not null,
    unit          text,
    record_date   timestamptz   not null,
    source_system text          not null default 'manual',
    metadata      jsonb,
    created_at    timestamptz   not null default now(),
    updated_at    timestamptz   not null default now(),
    constraint custom_metrics_pkey primary key (tenant_id, id),
    constraint custom_metrics_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade,
    -- Also the index for "one metric of one client over time".
    constraint custom_metrics_natural_key
        unique (tenant_id, client_kpi_id, metric_name, record_date, source_system),
    constraint custom_metrics_name_not_blank check (btrim(metric_name) <> ''),
    constraint custom_metrics_source_not_blank check (btrim(source_system) <> '')
);
create trigger custom_metrics_touch before update on custom_metrics
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- integrations: one per tenant and provider. Tokens are AES-256-GCM ciphertexts (key id + nonce +
-- ciphertext), never plaintext; NULL until the OAuth flow completes.
create table integrations (
    tenant_id        uuid                 not null,
    id               uuid                 not null default zixly_uuid_v7(),
    provider         integration_provider not null,
    status           integration_status   not null default 'PENDING',
    access_token     bytea,
    refresh_token    bytea,
    expires_at       timestamptz,
    settings         jsonb                not null default '{}'::jsonb,
    metadata         jsonb,
    sync_interval    interval             not null default interval '1 hour',
    last_sync_at     timestamptz,
    last_error       text,
    consecutive_failures integer          not null default 0,
    created_at       timestamptz          not null default now(),
    updated_at       timestamptz          not null default now(),
    constraint integrations_pkey primary key (tenant_id, id),
    constraint integrations_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint integrations_provider_key unique (tenant_id, provider),
    constraint integrations_active_has_token check (status <> 'ACTIVE' or access_token is not null),
    constraint integrations_sync_interval_positive check (sync_interval > interval '0')
);
create trigger integrations_touch before update on integrations
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- sync_runs: one row per import or sync, whatever its outcome.
create table sync_runs (
    tenant_id      uuid        not null,
    id             uuid        not null default zixly_uuid_v7(),
    source         text        not null,
    dataset        text        not null,
    integration_id uuid,
    file_name      text,
    status         sync_status not null default 'running',
    rows_read      bigint      not null default 0,
    rows_inserted  bigint      not null default 0,
    rows_updated   bigint      not null default 0,
    rows_unchanged bigint      not null default 0,
    rows_rejected  bigint      not null default 0,
    error_count    bigint      not null default 0,
    errors         jsonb       not null default '[]'::jsonb,
    cursor         jsonb,
    triggered_by   uuid,
    started_at     timestamptz not null default now(),
    finished_at    timestamptz,
    duration_ms    bigint,
    constraint sync_runs_pkey primary key (tenant_id, id),
    constraint sync_runs_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint sync_runs_integration_fkey foreign key (tenant_id, integration_id)
        references integrations (tenant_id, id) on delete set null (integration_id),
    constraint sync_runs_dataset_known check (dataset in ('financials', 'lead_events', 'custom_metrics', 'clients', 'mixed')),
    constraint sync_runs_finished_when_done check ((status = 'running') = (finished_at is null)),
    constraint sync_runs_counts_non_negative check (
        rows_read >= 0 and rows_inserted >= 0 and rows_updated >= 0 and rows_unchanged >= 0
        and rows_rejected >= 0 and error_count >= 0)
);
create index sync_runs_tenant_started_idx on sync_runs (tenant_id, started_at desc);
create index sync_runs_integration_idx on sync_runs (tenant_id, integration_id, started_at desc)
    where integration_id is not null;

----------------------------------------------------------------------------------------------------
-- audit_logs: append-only. zixly_app may INSERT and SELECT, never UPDATE or DELETE (grants), and a
-- trigger refuses UPDATE for everyone. Rows go only when their tenant is deleted (cascade).
create table audit_logs (
    tenant_id     uuid        not null,
    id            uuid        not null default zixly_uuid_v7(),
    occurred_at   timestamptz not null default now(),
    actor_user_id uuid,
    actor_label   text        not null,
    action        text        not null,
    entity_type   text        not null,
    entity_id     text,
    summary       jsonb       not null default '{}'::jsonb,
    request_id    text,
    client_addr   inet,
    constraint audit_logs_pkey primary key (tenant_id, id),
    constraint audit_logs_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade
);
create index audit_logs_tenant_time_idx on audit_logs (tenant_id, occurred_at desc);

create function zixly_audit_logs_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'audit_logs is append-only' using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_logs_no_update before update on audit_logs
    for each row execute function zixly_audit_logs_append_only();

----------------------------------------------------------------------------------------------------
-- fx_rates: global reference data (not tenant-scoped; a Citus reference table). A row says
-- 1 `base_currency` = `rate` `quote_currency` on `rate_date` (the ECB layout: base EUR).
-- Readable by everyone, written only by `zixly fx import` (the owner).
create table fx_rates (
    rate_date      date           not null,
    base_currency  char(3)        not null,
    quote_currency char(3)        not null,
    rate           numeric(20,10) not null,
    source         text           not null default 'import',
    created_at     timestamptz    not null default now(),
    constraint fx_rates_pkey primary key (base_currency, quote_currency, rate_date),
    constraint fx_rates_rate_positive check (rate > 0),
    constraint fx_rates_distinct_currencies check (base_currency <> quote_currency),
    constraint fx_rates_iso4217 check (base_currency ~ '^[A-Z]{3}$' and quote_currency ~ '^[A-Z]{3}$')
);
grant select on fx_rates to zixly_app, zixly_readonly;

----------------------------------------------------------------------------------------------------
-- Row-level security and grants for every table with tenant_id.
do $$
declare
    t text;
begin
    foreach t in array array['users', 'client_kpis', 'financials', 'lead_events', 'custom_metrics',
                             'integrations', 'sync_runs', 'audit_logs']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())'
                       ' with check (tenant_id = zixly_current_tenant())', t);
        execute format('grant select on %I to zixly_readonly', t);
        if t = 'audit_logs' then
            execute format('grant select, insert on %I to zixly_app', t);
        else
            execute format('grant select, insert, update, delete on %I to zixly_app', t);
        end if;
    end loop;
end
$$;
