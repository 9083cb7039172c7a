-- Monthly partitions of the time series (issue 14, item 1).
--
-- `financials` (by `record_date`), `lead_events` (by `event_date`) and `custom_metrics` (by
-- `record_date`) become declarative RANGE-partitioned tables with one partition per calendar month
-- (timestamptz columns: months in UTC), named `<table>_pYYYY_MM`, and a `<table>_default`
-- partition that catches nothing in normal operation: the loader creates the month of every row it
-- meets before it writes (a 1998 invoice gets `financials_p1998_03`), and the worker's scheduler
-- creates the coming months ahead. A row can reach the default only by an INSERT outside the
-- loader (hand-made fixtures); creating its month's partition later moves it there.
--
-- Keys: every primary and unique key must contain the partition column, so the primary keys
-- become (tenant_id, id, <date>); the natural keys the loader's ON CONFLICT targets already
-- contain it.
--
-- RLS: PostgreSQL applies the policies of the table a statement NAMES. Through the parent, the
-- parent's policies filter every partition; a partition named directly applies its own. So every
-- partition gets ENABLE + FORCE row level security and copies of the parent's policies, and NO
-- grant to zixly_app or zixly_readonly: naming a partition is refused outright (inserts routed
-- through the parent check only the parent's privileges).
--
-- DDL without CREATE rights: zixly_app calls `zixly_create_month_partitions`, SECURITY DEFINER
-- owned by zixly_owner, in its own short transaction (never inside a load's transaction, which
-- would hold the locks until the load commits). The table is created standalone and then
-- ATTACHed, which locks the parent only in SHARE UPDATE EXCLUSIVE mode (CREATE TABLE ... PARTITION
-- OF would take ACCESS EXCLUSIVE and queue behind, then block, every reader); ATTACH does take
-- ACCESS EXCLUSIVE on the (empty) default partition for its instant. Race-safe: a transaction
-- advisory lock per table, then the existence check, so two loaders meeting the same new
-- month create it once and the second returns without error. Whether a month has its partition is
-- read from the partitions' bounds, not their names.
--
-- Conversion in place: each table is renamed, its index-backed constraints dropped (their names
-- are schema-wide), the partitioned parent created under the old name, partitions created for the
-- months of the existing rows (and the current month and the next three), the rows moved with
-- one INSERT ... SELECT, then keys, indexes and the foreign key built on the filled partitions
-- (one bulk build each, one validation query, instead of per-row maintenance), and the old table
-- dropped. One transaction (the migration runner's): a failure leaves the database at 0013.
-- The runner reports no progress (NOTICEs stay out of the logs); BENCHMARKS.md records how long
-- it takes on a populated database.

-- Whether one partition of `parent` (not the default) covers the whole month of `first_day`
-- (UTC for timestamptz columns). Read from the partitions' bounds rather than their names, so
-- that months created by someone else under other names (Citus's `create_time_partitions`,
-- docs/citus.md) count, and the ATTACH of an overlapping range is never tried.
create function zixly_month_partition_exists(parent text, first_day date) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
    select exists (
        select 1
          from pg_catalog.pg_inherits i
          join pg_catalog.pg_class c on c.oid = i.inhrelid
          cross join lateral regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                          'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') b
         where i.inhparent = ('public.' || parent)::regclass
           and case when parent = 'financials'
                    then b[1]::date <= first_day and (first_day + interval '1 month')::date <= b[2]::date
                    else b[1]::timestamptz <= (first_day::timestamp at time zone 'UTC')
                         and ((first_day + interval '1 month')::timestamp at time zone 'UTC') <= b[2]::timestamptz
               end)
$$;
revoke all on function zixly_month_partition_exists(text, date) from public;

-- Creates the partition of the month of `month` unless one exists. Returns whether it created.
create function zixly_create_month_partition(parent text, month date) returns boolean
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    first_day date := date_trunc('month', month)::date;
    part text;
    lo text;
    hi text;
    pol record;
    col text := case parent when 'lead_events' then 'event_date' else 'record_date' end;
begin
    if parent not in ('financials', 'lead_events', 'custom_metrics') then
        raise exception 'not a monthly partitioned table: %', parent
            using errcode = 'invalid_parameter_value';
    end if;
    part := parent || '_p' || to_char(first_day, 'YYYY_MM');
    -- One lock per table: two creators of the same month wait for each other, and the check
    -- below (a new statement, so a new snapshot of the catalog) sees the first one's partition.
    perform pg_advisory_xact_lock(hashtext('zixly_partition'), hashtext(parent));
    if zixly_month_partition_exists(parent, first_day) then
        return false;
    end if;
    if parent = 'financials' then
        lo := first_day::text;
        hi := (first_day + interval '1 month')::date::text;
    else
        -- timestamptz: months in UTC, whatever the session's time zone.
        lo := first_day::text || ' 00:00:00+00';
        hi := (first_day + interval '1 month')::date::text || ' 00:00:00+00';
    end if;
    -- LIKE copies the columns, defaults, CHECK constraints and the parent's indexes (ATTACH then
    -- adopts those indexes as the parent's instead of building a second set); ATTACH itself clones
    -- the foreign key and the row triggers.
    execute format('create table public.%I (like public.%I including defaults including constraints'
                   ' including indexes including storage including compression)', part, parent);
    execute format('alter table public.%I enable row level security, force row level security', part);
    for pol in
        select p.policyname, p.permissive, p.cmd, p.roles, p.qual, p.with_check
          from pg_catalog.pg_policies p
         where p.schemaname = 'public' and p.tablename = parent
    loop
        execute format('create policy %I on public.%I as %s for %s to %s%s%s',
                       pol.policyname, part, pol.permissive, pol.cmd,
                       (select string_agg(case when r = 'public' then 'public' else quote_ident(r) end, ', ')
                          from unnest(pol.roles) r),
                       case when pol.qual is not null then ' using (' || pol.qual || ')' else '' end,
                       case when pol.with_check is not null then ' with check (' || pol.with_check || ')' else '' end);
    end loop;
    -- Rows of this month in the default partition (written by an INSERT outside the loader,
    -- e.g. a hand-made fixture) move into the new partition: ATTACH would refuse the range
    -- otherwise. Normally the default is empty and this finds nothing.
    execute format('with moved as (delete from public.%I where %I >= %L and %I < %L returning *)'
                   ' insert into public.%I select * from moved',
                   parent || '_default', col, lo, col, hi, part);
    execute format('alter table public.%I attach partition public.%I for values from (%L) to (%L)',
                   parent, part, lo, hi);
    return true;
end
$$;
revoke all on function zixly_create_month_partition(text, date) from public;

-- The loader's entry: every month of `months` that has no partition yet gets one. Returns how
-- many were created.
create function zixly_create_month_partitions(parent text, months date[]) returns integer
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    m date;
    created integer := 0;
begin
    foreach m in array months loop
        if zixly_create_month_partition(parent, m) then
            created := created + 1;
        end if;
    end loop;
    return created;
end
$$;
revoke all on function zixly_create_month_partitions(text, date[]) from public;
grant execute on function zixly_create_month_partitions(text, date[]) to zixly_app;

-- Which of `months` have no partition of `parent` yet (the loader asks inside its transaction,
-- and opens the DDL transaction only when the answer is not empty). A catalog read: it takes no
-- lock on the table.
create function zixly_missing_month_partitions(parent text, months date[]) returns date[]
language sql stable security definer set search_path = public, pg_temp as $$
    select coalesce(array_agg(m order by m), '{}')
      from (select distinct date_trunc('month', x)::date as m from unnest(months) x) ms
     where not zixly_month_partition_exists(parent, m)
$$;
revoke all on function zixly_missing_month_partitions(text, date[]) from public;
grant execute on function zixly_missing_month_partitions(text, date[]) to zixly_app;

-- The scheduler's entry: the current month and the `ahead` following ones, for every partitioned
-- table. Returns how many were created.
create function zixly_create_partitions_ahead(ahead integer) returns integer
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    t text;
    i integer;
    created integer := 0;
begin
    foreach t in array array['financials', 'lead_events', 'custom_metrics'] loop
        for i in 0 .. greatest(ahead, 0) loop
            if zixly_create_month_partition(t, (date_trunc('month', now() at time zone 'UTC')
                                                + make_interval(months => i))::date) then
                created := created + 1;
            end if;
        end loop;
    end loop;
    return created;
end
$$;
revoke all on function zixly_create_partitions_ahead(integer) from public;

-- The default partition: RLS and the parent's policies like every partition, no grants.
create function zixly_create_default_partition(parent text) returns void
language plpgsql as $$
declare
    part text := parent || '_default';
begin
    execute format('create table public.%I partition of public.%I default', part, parent);
    execute format('alter table public.%I enable row level security, force row level security', part);
    execute format('create policy tenant_isolation on public.%I using (tenant_id = zixly_current_tenant())'
                   ' with check (tenant_id = zixly_current_tenant())', part);
end
$$;

----------------------------------------------------------------------------------------------------
-- financials
alter table financials rename to financials_unpartitioned;
alter table financials_unpartitioned drop constraint financials_pkey,
    drop constraint financials_dedup_key, drop constraint financials_client_fkey;
drop index financials_tenant_date_idx;

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
    constraint financials_net_profit_derived check (net_profit = revenue - expenses),
    constraint financials_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
    constraint financials_source_not_blank check (btrim(source_system) <> '')
) partition by range (record_date);
create trigger financials_touch before update on financials
    for each row execute function zixly_touch_updated_at();
alter table financials enable row level security;
alter table financials force row level security;
create policy tenant_isolation on financials using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on financials to zixly_app;
grant select on financials to zixly_readonly;
select zixly_create_default_partition('financials');
select zixly_create_month_partition('financials', m)
  from (select distinct date_trunc('month', record_date)::date as m from financials_unpartitioned) d;

insert into financials (tenant_id, id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow,
                        currency, source_system, external_id, metadata, created_at, updated_at)
select tenant_id, id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow,
       currency, source_system, external_id, metadata, created_at, updated_at
  from financials_unpartitioned;
drop table financials_unpartitioned;

alter table financials add constraint financials_pkey primary key (tenant_id, id, record_date),
    -- Also the index for the dashboard's time-range query (client, date range).
    add constraint financials_dedup_key unique (tenant_id, client_kpi_id, record_date, source_system),
    add constraint financials_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade;
create index financials_tenant_date_idx on financials (tenant_id, record_date);

----------------------------------------------------------------------------------------------------
-- lead_events
alter table lead_events rename to lead_events_unpartitioned;
alter table lead_events_unpartitioned drop constraint lead_events_pkey,
    drop constraint lead_events_natural_key, drop constraint lead_events_client_fkey;
drop index lead_events_client_date_idx, lead_events_lead_idx, lead_events_funnel_idx;

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
    constraint lead_events_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
    constraint lead_events_source_not_blank check (btrim(source_system) <> '')
) partition by range (event_date);
create trigger lead_events_touch before update on lead_events
    for each row execute function zixly_touch_updated_at();
alter table lead_events enable row level security;
alter table lead_events force row level security;
create policy tenant_isolation on lead_events using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on lead_events to zixly_app;
grant select on lead_events to zixly_readonly;
select zixly_create_default_partition('lead_events');
select zixly_create_month_partition('lead_events', m)
  from (select distinct date_trunc('month', event_date at time zone 'UTC')::date as m
          from lead_events_unpartitioned) d;

insert into lead_events (tenant_id, id, client_kpi_id, event_date, lead_id, stage, value, currency, status,
                         source_system, external_id, metadata, created_at, updated_at)
select tenant_id, id, client_kpi_id, event_date, lead_id, stage, value, currency, status,
       source_system, external_id, metadata, created_at, updated_at
  from lead_events_unpartitioned;
drop table lead_events_unpartitioned;

alter table lead_events add constraint lead_events_pkey primary key (tenant_id, id, event_date),
    add constraint lead_events_natural_key
        unique (tenant_id, client_kpi_id, source_system, lead_id, stage, event_date),
    add constraint lead_events_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade;
create index lead_events_client_date_idx on lead_events (tenant_id, client_kpi_id, event_date);
create index lead_events_lead_idx on lead_events (tenant_id, lead_id);
create index lead_events_funnel_idx on lead_events (tenant_id, client_kpi_id, stage, status);

----------------------------------------------------------------------------------------------------
-- custom_metrics
alter table custom_metrics rename to custom_metrics_unpartitioned;
alter table custom_metrics_unpartitioned drop constraint custom_metrics_pkey,
    drop constraint custom_metrics_natural_key, drop constraint custom_metrics_client_fkey;

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
    constraint custom_metrics_name_not_blank check (btrim(metric_name) <> ''),
    constraint custom_metrics_source_not_blank check (btrim(source_system) <> '')
) partition by range (record_date);
create trigger custom_metrics_touch before update on custom_metrics
    for each row execute function zixly_touch_updated_at();
alter table custom_metrics enable row level security;
alter table custom_metrics force row level security;
create policy tenant_isolation on custom_metrics using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on custom_metrics to zixly_app;
grant select on custom_metrics to zixly_readonly;
select zixly_create_default_partition('custom_metrics');
select zixly_create_month_partition('custom_metrics', m)
  from (select distinct date_trunc('month', record_date at time zone 'UTC')::date as m
          from custom_metrics_unpartitioned) d;

insert into custom_metrics (tenant_id, id, client_kpi_id, metric_name, metric_value, unit, record_date,
                            source_system, metadata, created_at, updated_at)
select tenant_id, id, client_kpi_id, metric_name, metric_value, unit, record_date,
       source_system, metadata, created_at, updated_at
  from custom_metrics_unpartitioned;
drop table custom_metrics_unpartitioned;

alter table custom_metrics add constraint custom_metrics_pkey primary key (tenant_id, id, record_date),
    -- Also the index for "one metric of one client over time".
    add constraint custom_metrics_natural_key
        unique (tenant_id, client_kpi_id, metric_name, record_date, source_system),
    add constraint custom_metrics_client_fkey foreign key (tenant_id, client_kpi_id)
        references client_kpis (tenant_id, id) on delete cascade;

-- The current month and the next three of every table (the scheduler keeps this up).
select zixly_create_partitions_ahead(3);

-- Fresh tables have no planner statistics until autovacuum gets to them (it never analyzes a
-- partitioned parent at all): without them the first reads after the upgrade may pick poor plans.
analyze financials, lead_events, custom_metrics;

-- Only this migration creates default partitions.
drop function zixly_create_default_partition(text);
