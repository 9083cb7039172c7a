-- Rollup triggers that stay linear in the statement's size (issue 14; found seeding the bench).
--
-- A lead CSV of 26,000 events loaded through the app took 5.5 minutes, its re-load 5 minutes and
-- a deletion of them 6 minutes, against 3.5 s for the same insert as the owner; at 260,000 events
-- the bench seed did not finish. `auto_explain` of the trigger statements showed why: nested loops
-- whose inner side is an unindexed CTE or transition table, run once per outer row (338 million
-- join-filter rows for 26,000 events). The planner chose them because it expected one row:
--
-- * the triggers ran as the writing role, so every scan carried its RLS predicate, which the
--   planner propagates to the CTEs and transition tables and then estimates at 1/200 of their
--   rows, and joins of those at 1 row;
-- * anti-joins between two derived sets on five-column keys (the independence assumption
--   multiplies five selectivities into 1 row).
--
-- Fixes: (1) the rollup trigger functions run as their owner (SECURITY DEFINER, which bypasses
-- RLS): they read and write only rows keyed by the statement's own rows, which RLS already
-- checked on the way into `financials` / `lead_events` (the WITH CHECK of the writing role), so no
-- other tenant's row can enter them; `search_path` is pinned, as for every definer function.
-- (2) the pipeline trigger's two anti-joins become set differences (EXCEPT), which PostgreSQL runs
-- by hashing or sorting, never by a nested loop. BENCHMARKS.md, "Large lead statements", has the
-- before and after.

do $$
declare
    f text;
begin
    foreach f in array array[
        'zixly_financial_months_after_insert', 'zixly_financial_months_after_update',
        'zixly_financial_months_after_delete',
        'zixly_financial_tenant_days_insert', 'zixly_financial_tenant_days_update',
        'zixly_financial_tenant_days_delete',
        'zixly_lead_events_funnel_insert', 'zixly_lead_events_funnel_update',
        'zixly_lead_events_funnel_delete'] loop
        execute format('alter function %I() security definer set search_path = public, pg_temp', f);
        -- Only ever run as triggers (a trigger function cannot be called directly), and like every
        -- definer function not executable by PUBLIC (firing a trigger checks no EXECUTE right).
        execute format('revoke all on function %I() from public', f);
    end loop;
end
$$;

-- The pipeline's trigger functions again, from 0018's text with the two anti-joins replaced
-- (%1$s: the statement's new rows, %2$s its old rows, as there).
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
    with o as (%2$s), n as (%1$s),
    gone as (select tenant_id, client_kpi_id, lead_id, event_date, event_id from o
             except
             select tenant_id, client_kpi_id, lead_id, event_date, event_id from n)
    delete from lead_states s using gone g
     where (s.tenant_id, s.client_kpi_id, s.lead_id, s.event_date, s.event_id)
           = (g.tenant_id, g.client_kpi_id, g.lead_id, g.event_date, g.event_id);
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
           -- The state before: every event now less the new rows (each stored exactly as in n,
           -- so a set difference of whole rows removes them), plus the old rows.
           select -1, b.* from (select * from after_ev except all select * from n) b
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
    execute format('create or replace function zixly_lead_events_pipeline_insert() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_new_rows where false', cols), spans));
    execute format('create or replace function zixly_lead_events_pipeline_delete() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_old_rows where false', cols),
                          format('select %s from zixly_old_rows', cols), spans));
    execute format('create or replace function zixly_lead_events_pipeline_update() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_old_rows', cols), spans));
end
$generate$;

do $$
declare
    f text;
begin
    foreach f in array array['zixly_lead_events_pipeline_insert', 'zixly_lead_events_pipeline_update',
                             'zixly_lead_events_pipeline_delete'] loop
        execute format('alter function %I() security definer set search_path = public, pg_temp', f);
        -- Only ever run as triggers (a trigger function cannot be called directly), and like every
        -- definer function not executable by PUBLIC (firing a trigger checks no EXECUTE right).
        execute format('revoke all on function %I() from public', f);
    end loop;
end
$$;
