-- Rollups of the open pipeline and of closed leads (issue 14, item 2).
--
-- The pipeline as of an instant T is each lead's latest event before T: open value and open leads
-- are the leads whose latest event is `active`, won and lost within a range are those whose latest
-- event is `won` / `lost` and happened in the range. The tenant-wide reader used to find every
-- lead's latest event by reading all of the tenant's lead events up to T and numbering them with a
-- window function: 716 ms at 200 clients × 10 years, whatever the range (BENCHMARKS.md, "Two new
-- patterns"). These tables hold the answer as sums over days:
--
-- * `lead_states`: each lead event's state (status, currency, value), clustered by lead, so the
--   trigger below reads a lead's events in order with one index range (`lead_events` is
--   partitioned by month: a lead's neighbours there would cost a probe per partition).
-- * `lead_pipeline_days`: per tenant, day (in the tenant's time zone), status and currency, the
--   net change on that day of the leads in that state — each event's *span* (from it to the
--   lead's next event) adds +1 on the day it starts and -1 on the day it ends — and the value
--   they carry, and how many spans start that day. The leads in a state as of the start of day D
--   are then the sum of the rows before D: a span counts at T = midnight of D exactly when it
--   started before D and ended on or after it. Periods start and end at the tenant's midnights,
--   so days are exact, with no raw edges.
-- * `lead_closing_ends`: per tenant, won/lost spans that ended (the lead moved on after closing),
--   by the days they started and ended. Won in [F, D) = won spans started in [F, D) (the
--   `started` column) minus those of them that also ended before D (this table, which holds
--   only reopened closings: few).
--
-- Values are summed per currency, never converted: the reader converts each currency's open value
-- once, at the rate of the period's last day (the open pipeline is a stock, valued at its closing
-- rate, as the raw reader does too). So neither a later FX rate nor a change of base currency
-- makes a rollup stale. The days are in the tenant's time zone: a change of `tenants.time_zone`
-- rebuilds the tenant's day rows (trigger below).
--
-- Maintenance: statement-level triggers with transition tables, as in 0015 and 0016. For the
-- leads a statement touched, the trigger computes their spans' contribution before the statement
-- (lead_states as it was: as it is now, less the new rows, plus the old ones) and after it, and
-- adds the difference — bounded by those leads' events, never the tenant's history.
--
-- Concurrency: the day rows are per tenant, so writers of one tenant's lead events must not
-- interleave (two transactions touching days in different orders over several statements would
-- deadlock). A BEFORE statement trigger takes a transaction-level advisory lock on the current
-- tenant before any row is written, so lead writes of one tenant run one transaction after the
-- other (financial loads are not affected). One lock per tenant, so the lock table stays small.
-- Statements without a current tenant (superuser maintenance) take no lock.
--
-- Foreign keys to `tenants` (ON DELETE CASCADE): a tenant's deletion cascades to its clients and
-- their lead events, whose trigger then finds no tenant (no time zone) and adds nothing; the
-- cascade from `tenants` removes the rows. Citus allows foreign keys from distributed tables to
-- the `tenants` reference table. A zero row is deleted; a `started` or `spans` count below zero
-- fails the write (`data_corrupted`), as in 0015/0016.

create table lead_states (
    tenant_id     uuid          not null references tenants (id) on delete cascade,
    client_kpi_id uuid          not null,
    lead_id       text          not null,
    event_date    timestamptz   not null,
    event_id      uuid          not null,
    status        lead_status   not null,
    currency      char(3)       not null,
    value         numeric(12,2),
    constraint lead_states_pkey primary key (tenant_id, client_kpi_id, lead_id, event_date, event_id)
);
create table lead_pipeline_days (
    tenant_id uuid          not null references tenants (id) on delete cascade,
    day       date          not null,
    status    lead_status   not null,
    currency  char(3)       not null,
    leads     bigint        not null,
    valued    bigint        not null,
    value     numeric(18,2) not null,
    started   bigint        not null,
    constraint lead_pipeline_days_pkey primary key (tenant_id, day, status, currency)
);
create table lead_closing_ends (
    tenant_id uuid        not null references tenants (id) on delete cascade,
    start_day date        not null,
    end_day   date        not null,
    status    lead_status not null,
    spans     bigint      not null,
    constraint lead_closing_ends_pkey primary key (tenant_id, start_day, end_day, status)
);
comment on table lead_states is
    'Per lead event: its status, currency and value, clustered by lead (triggers on lead_events).';
comment on table lead_pipeline_days is
    'Per tenant, local day, status and currency: net change of leads in that state (triggers on lead_events).';
comment on table lead_closing_ends is
    'Per tenant: won/lost spans that ended, by start and end day (triggers on lead_events).';

do $$
declare
    t text;
begin
    foreach t in array array['lead_states', 'lead_pipeline_days', 'lead_closing_ends'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())
                        with check (tenant_id = zixly_current_tenant())', t);
        execute format('grant select, insert, update, delete on %I to zixly_app', t);
        execute format('grant select on %I to zixly_readonly', t);
    end loop;
end
$$;

create type zixly_pipeline_day_key as (tenant_id uuid, day date, status lead_status, currency char(3));
create type zixly_closing_end_key as (tenant_id uuid, start_day date, end_day date, status lead_status);

create function zixly_pipeline_corrupt(what text, tenant uuid) returns bigint
language plpgsql as $$
begin
    raise exception '% disagrees with lead_events for tenant %', what, tenant
        using errcode = 'data_corrupted';
end
$$;

-- Serialises the lead writes of the current tenant (see the top of this file).
create function zixly_lead_pipeline_lock() returns trigger
language plpgsql as $$
declare
    tenant uuid := zixly_current_tenant();
begin
    if tenant is not null then
        perform pg_advisory_xact_lock(180018, hashtext(tenant::text));
    end if;
    return null;
end
$$;

-- After an upsert of day and closing rows: fails on a negative count, deletes the zero rows.
create function zixly_lead_pipeline_settle(days zixly_pipeline_day_key[], ends zixly_closing_end_key[])
returns void language plpgsql as $$
declare
    bad uuid;
begin
    select p.tenant_id into bad
      from unnest(days) k join lead_pipeline_days p using (tenant_id, day, status, currency)
     where p.started < 0 limit 1;
    if bad is null then
        select c.tenant_id into bad
          from unnest(ends) k join lead_closing_ends c using (tenant_id, start_day, end_day, status)
         where c.spans < 0 limit 1;
    end if;
    if bad is not null then
        perform zixly_pipeline_corrupt('the pipeline rollups', bad);
    end if;
    delete from lead_pipeline_days p using unnest(days) k
     where (p.tenant_id, p.day, p.status, p.currency) = (k.tenant_id, k.day, k.status, k.currency)
       and p.leads = 0 and p.valued = 0 and p.value = 0 and p.started = 0;
    delete from lead_closing_ends c using unnest(ends) k
     where (c.tenant_id, c.start_day, c.end_day, c.status) = (k.tenant_id, k.start_day, k.end_day, k.status)
       and c.spans = 0;
end
$$;

-- The trigger functions, generated from one text as in 0016: %1$s is the statement's new rows,
-- %2$s its old rows (an empty set where the event has none), both as lead_states columns.
do $generate$
declare
    -- A set of signed events (`sg`, `tenant_id`, `client_kpi_id`, `lead_id`, `event_date`,
    -- `event_id`, `status`, `currency`, `value`) in `ev` → `deltas`: each event's span and its
    -- contribution to the day and closing rows, times its sign. `stale` spans count for nothing.
    -- (Kept in step with zixly_lead_pipeline_rebuild below.)
    spans constant text := $s$
    spans as (select sg, tenant_id, status, currency, value, event_date as s,
                     lead(event_date) over (partition by sg, tenant_id, client_kpi_id, lead_id
                                            order by event_date, event_id) as e
                from ev),
    local as (select sp.sg, sp.tenant_id, sp.status, sp.currency, sp.value,
                     (sp.s at time zone t.time_zone)::date as ds, (sp.e at time zone t.time_zone)::date as de
                from spans sp join tenants t on t.id = sp.tenant_id
               where sp.status <> 'stale'),
    deltas as (select tenant_id, ds as day, status, currency, sg as leads,
                      case when value is null then 0 else sg end as valued,
                      sg * coalesce(value, 0) as value, sg as started
                 from local
               union all
               select tenant_id, de, status, currency, -sg,
                      case when value is null then 0 else -sg end, -sg * coalesce(value, 0), 0
                 from local where de is not null)$s$;
    body constant text := $body$
declare
    day_keys zixly_pipeline_day_key[];
    end_keys zixly_closing_end_key[];
begin
    -- lead_states follows the events: old keys that no new row keeps go, new rows are upserted.
    with o as (%2$s), n as (%1$s)
    delete from lead_states s using o
     where (s.tenant_id, s.client_kpi_id, s.lead_id, s.event_date, s.event_id)
           = (o.tenant_id, o.client_kpi_id, o.lead_id, o.event_date, o.event_id)
       and not exists (select 1 from n
                        where (n.tenant_id, n.client_kpi_id, n.lead_id, n.event_date, n.event_id)
                              = (o.tenant_id, o.client_kpi_id, o.lead_id, o.event_date, o.event_id));
    with n as (%1$s)
    insert into lead_states (tenant_id, client_kpi_id, lead_id, event_date, event_id, status, currency, value)
    select tenant_id, client_kpi_id, lead_id, event_date, event_id, status, currency, value
      from n order by 1, 2, 3, 4, 5
    on conflict (tenant_id, client_kpi_id, lead_id, event_date, event_id) do update
       set status = excluded.status, currency = excluded.currency, value = excluded.value;

    -- The touched leads' spans after (lead_states now) and before (less the new rows, plus the
    -- old ones), and the difference into the day and closing rows.
    with o as (%2$s), n as (%1$s),
    touched as (select tenant_id, client_kpi_id, lead_id from n
                union select tenant_id, client_kpi_id, lead_id from o),
    after_ev as (select s.tenant_id, s.client_kpi_id, s.lead_id, s.event_date, s.event_id, s.status,
                        s.currency, s.value
                   from lead_states s join touched t using (tenant_id, client_kpi_id, lead_id)),
    ev as (select 1 as sg, a.* from after_ev a
           union all
           select -1, a.* from after_ev a
            where not exists (select 1 from n
                               where (n.tenant_id, n.client_kpi_id, n.lead_id, n.event_date, n.event_id)
                                     = (a.tenant_id, a.client_kpi_id, a.lead_id, a.event_date, a.event_id))
           union all
           select -1, o.* from o),
    %3$s,
    put_days as (insert into lead_pipeline_days as p (tenant_id, day, status, currency, leads, valued, value, started)
                 select tenant_id, day, status, currency, sum(leads), sum(valued), sum(value), sum(started)
                   from deltas group by 1, 2, 3, 4
                 having sum(leads) <> 0 or sum(valued) <> 0 or sum(value) <> 0 or sum(started) <> 0
                  order by 1, 2, 3, 4
                 on conflict (tenant_id, day, status, currency) do update
                    set leads = p.leads + excluded.leads, valued = p.valued + excluded.valued,
                        value = p.value + excluded.value, started = p.started + excluded.started
                 returning p.tenant_id, p.day, p.status, p.currency),
    put_ends as (insert into lead_closing_ends as c (tenant_id, start_day, end_day, status, spans)
                 select tenant_id, ds, de, status, sum(sg) from local
                  where de is not null and status in ('won', 'lost')
                  group by 1, 2, 3, 4 having sum(sg) <> 0
                  order by 1, 2, 3, 4
                 on conflict (tenant_id, start_day, end_day, status) do update
                    set spans = c.spans + excluded.spans
                 returning c.tenant_id, c.start_day, c.end_day, c.status)
    select array(select row(tenant_id, day, status, currency)::zixly_pipeline_day_key from put_days),
           array(select row(tenant_id, start_day, end_day, status)::zixly_closing_end_key from put_ends)
      into day_keys, end_keys;
    if cardinality(day_keys) > 0 or cardinality(end_keys) > 0 then
        perform zixly_lead_pipeline_settle(day_keys, end_keys);
    end if;
    return null;
end
$body$;
    cols constant text := 'tenant_id, client_kpi_id, lead_id, event_date, id as event_id, status, currency, value';
begin
    execute format('create function zixly_lead_events_pipeline_insert() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_new_rows where false', cols), spans));
    execute format('create function zixly_lead_events_pipeline_delete() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_old_rows where false', cols),
                          format('select %s from zixly_old_rows', cols), spans));
    execute format('create function zixly_lead_events_pipeline_update() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_old_rows', cols), spans));
end
$generate$;

-- Rebuilds the day and closing rows of one tenant (all tenants when NULL) from lead_states: the
-- backfill below, and a change of a tenant's time zone.
create function zixly_lead_pipeline_rebuild(tenant uuid) returns void
language plpgsql as $$
begin
    delete from lead_pipeline_days where tenant is null or tenant_id = tenant;
    delete from lead_closing_ends where tenant is null or tenant_id = tenant;
    with ev as (select 1 as sg, s.tenant_id, s.client_kpi_id, s.lead_id, s.event_date, s.event_id, s.status,
                       s.currency, s.value
                  from lead_states s where tenant is null or s.tenant_id = tenant),
    spans as (select sg, tenant_id, status, currency, value, event_date as s,
                     lead(event_date) over (partition by sg, tenant_id, client_kpi_id, lead_id
                                            order by event_date, event_id) as e
                from ev),
    local as (select sp.sg, sp.tenant_id, sp.status, sp.currency, sp.value,
                     (sp.s at time zone t.time_zone)::date as ds, (sp.e at time zone t.time_zone)::date as de
                from spans sp join tenants t on t.id = sp.tenant_id
               where sp.status <> 'stale'),
    deltas as (select tenant_id, ds as day, status, currency, sg as leads,
                      case when value is null then 0 else sg end as valued,
                      sg * coalesce(value, 0) as value, sg as started
                 from local
               union all
               select tenant_id, de, status, currency, -sg,
                      case when value is null then 0 else -sg end, -sg * coalesce(value, 0), 0
                 from local where de is not null),
    put_ends as (insert into lead_closing_ends (tenant_id, start_day, end_day, status, spans)
                 select tenant_id, ds, de, status, count(*) from local
                  where de is not null and status in ('won', 'lost')
                  group by 1, 2, 3, 4)
    insert into lead_pipeline_days (tenant_id, day, status, currency, leads, valued, value, started)
    select tenant_id, day, status, currency, sum(leads), sum(valued), sum(value), sum(started)
      from deltas group by 1, 2, 3, 4
    having sum(leads) <> 0 or sum(valued) <> 0 or sum(value) <> 0 or sum(started) <> 0;
end
$$;

create function zixly_tenant_time_zone_changed() returns trigger
language plpgsql as $$
begin
    perform zixly_lead_pipeline_rebuild(new.id);
    return null;
end
$$;

-- BEFORE triggers fire before any row is written, so the tenant's lock comes before any row lock.
create trigger lead_pipeline_lock before insert or update or delete on lead_events
    for each statement execute function zixly_lead_pipeline_lock();
create trigger lead_pipeline_insert after insert on lead_events
    referencing new table as zixly_new_rows
    for each statement execute function zixly_lead_events_pipeline_insert();
create trigger lead_pipeline_update after update on lead_events
    referencing old table as zixly_old_rows new table as zixly_new_rows
    for each statement execute function zixly_lead_events_pipeline_update();
create trigger lead_pipeline_delete after delete on lead_events
    referencing old table as zixly_old_rows
    for each statement execute function zixly_lead_events_pipeline_delete();
create trigger tenants_time_zone_changed after update of time_zone on tenants
    for each row when (old.time_zone is distinct from new.time_zone)
    execute function zixly_tenant_time_zone_changed();

-- The rollups of the events already there.
insert into lead_states (tenant_id, client_kpi_id, lead_id, event_date, event_id, status, currency, value)
select tenant_id, client_kpi_id, lead_id, event_date, id, status, currency, value from lead_events;
select zixly_lead_pipeline_rebuild(null);
analyze lead_states, lead_pipeline_days, lead_closing_ends;
