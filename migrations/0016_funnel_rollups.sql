-- Rollups of the sales funnel (issue 14, item 2).
--
-- The all-time funnel of a client used to aggregate every lead event of the client, opening every
-- monthly partition of `lead_events` (about 125 at ten years) on each call. These tables hold its
-- answer, maintained in the same transaction as every write to `lead_events`:
--
-- * `lead_stage_firsts`: per client, lead and stage, when the lead first entered the stage and how
--   many events it has there — the funnel's unit (a lead counts once per stage).
-- * `lead_funnel_stages`: per client and stage, how many leads reached it and the sum of the
--   stage's rank among each lead's stages ordered by first entry (the natural stage order is the
--   mean rank, as the raw reader computes it with `rank()`).
-- * `lead_funnel_pairs`: per client and ordered pair of stages, how many leads reached both (the
--   conversion between consecutive stages, in whatever order the report lists them).
-- * `lead_funnel_totals`: per client, stage, status and currency, the events, how many carry a
--   value, and the sum of values — a row per currency, never one converted amount, so that
--   neither a later FX rate nor a change of the base currency makes it stale (the reader converts
--   foreign-currency values from raw rows at each event's date, as for `financial_months`).
-- * `lead_funnel_clients`: per client with lead events, how many distinct leads; its row is also
--   the lock that serialises writers of one client's funnel (below).
--
-- A funnel over a date range still reads raw rows: a lead's first entry within a range is not a
-- sum of months. Such a read prunes to the range's partitions, so its cost follows the range, not
-- the history.
--
-- Maintenance: statement-level triggers with transition tables, as for `financial_months`. The
-- totals take the statement's delta (new rows minus old rows). The stage and pair counts depend on
-- each lead's stages together, so for the leads the statement touched the trigger subtracts their
-- contribution computed from `lead_stage_firsts` before the change and adds it computed after —
-- bounded by the statement's leads, never the client's history. An update that changes no key
-- column (the loader's re-loads change value, currency and status only) leaves the firsts alone.
-- A deletion of a lead's first event in a stage it still has events in recomputes that one first
-- from `lead_events` (an index probe per partition, for deleted keys only).
--
-- Concurrency: before reading the "before" state, the trigger locks the `lead_funnel_clients` row
-- of every client it touches (creating it if need be; an insert of the same new key waits for the
-- other transaction), in key order, so two statements on one client's leads run one after the
-- other and neither computes its delta from a state the other is changing. Row locks, not
-- advisory locks: a transaction touching thousands of clients does not fill the lock table.
--
-- No foreign keys, for the reason 0015 gives: a client's deletion cascades to `lead_events`, whose
-- trigger then empties the client's rows. A rollup row whose count reaches 0 is deleted; a count
-- below 0 fails the write (`data_corrupted`): the rollup and the raw rows disagree, and storing a
-- wrong funnel would be worse than refusing the write.

create table lead_stage_firsts (
    tenant_id     uuid        not null,
    client_kpi_id uuid        not null,
    lead_id       text        not null,
    stage         text        not null,
    first_at      timestamptz not null,
    event_count   bigint      not null,
    constraint lead_stage_firsts_pkey primary key (tenant_id, client_kpi_id, lead_id, stage)
);
create table lead_funnel_stages (
    tenant_id     uuid   not null,
    client_kpi_id uuid   not null,
    stage         text   not null,
    leads         bigint not null,
    rank_sum      bigint not null,
    constraint lead_funnel_stages_pkey primary key (tenant_id, client_kpi_id, stage)
);
create table lead_funnel_pairs (
    tenant_id     uuid   not null,
    client_kpi_id uuid   not null,
    stage         text   not null,
    other_stage   text   not null,
    leads         bigint not null,
    constraint lead_funnel_pairs_pkey primary key (tenant_id, client_kpi_id, stage, other_stage)
);
create table lead_funnel_totals (
    tenant_id     uuid          not null,
    client_kpi_id uuid          not null,
    stage         text          not null,
    status        lead_status   not null,
    currency      char(3)       not null,
    events        bigint        not null,
    valued        bigint        not null,
    value         numeric(18,2) not null,
    constraint lead_funnel_totals_pkey primary key (tenant_id, client_kpi_id, stage, status, currency)
);
create table lead_funnel_clients (
    tenant_id     uuid   not null,
    client_kpi_id uuid   not null,
    leads         bigint not null default 0,
    constraint lead_funnel_clients_pkey primary key (tenant_id, client_kpi_id)
);
comment on table lead_stage_firsts is
    'Per client, lead and stage: first entry and events (maintained by triggers on lead_events).';
comment on table lead_funnel_stages is
    'Per client and stage: leads that reached it, sum of its rank per lead (triggers on lead_events).';
comment on table lead_funnel_pairs is
    'Per client and pair of stages: leads that reached both (triggers on lead_events).';
comment on table lead_funnel_totals is
    'Per client, stage, status and currency: events and value sums (triggers on lead_events).';
comment on table lead_funnel_clients is
    'Per client with lead events: distinct leads; the lock row of its funnel rollups.';

do $$
declare
    t text;
begin
    foreach t in array array['lead_stage_firsts', 'lead_funnel_stages', 'lead_funnel_pairs',
                             'lead_funnel_totals', 'lead_funnel_clients'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())
                        with check (tenant_id = zixly_current_tenant())', t);
        -- zixly_app writes only through the triggers, which run as the writing role; BI tools
        -- read the rollups like the raw rows.
        execute format('grant select, insert, update, delete on %I to zixly_app', t);
        execute format('grant select on %I to zixly_readonly', t);
    end loop;
end
$$;

-- The trigger functions. Each step is one statement over the transition tables (which spill to
-- disk: a statement of millions of events keeps memory flat). One text, `body` below, serves the
-- three events: `d` in it is the statement's signed events, +1 for a new row and -1 for an old
-- one, and the DO block substitutes each event's query for `d` and creates one function per event.
-- Generated here rather than run as dynamic SQL (EXECUTE) at each statement: EXECUTE plans every
-- step on every call, which cost about 9 ms per single-row statement; static SQL keeps its plans
-- for the session (BENCHMARKS.md, "Ingestion", "Lead events and the funnel rollups").
create function zixly_funnel_corrupt(what text, client uuid) returns bigint
language plpgsql as $$
begin
    raise exception '% disagrees with lead_events for client %', what, client
        using errcode = 'data_corrupted';
end
$$;

do $generate$
declare
    cols constant text := 'tenant_id, client_kpi_id, lead_id, stage, event_date, status, currency, value';
    -- %1$s: the signed events. %2$s: `m`, the events whose key (client, lead, stage, instant)
    -- appeared or disappeared; an update of value, currency or status alone cancels out there and
    -- leaves the firsts as they are.
    moved constant text := 'm as (select tenant_id, client_kpi_id, lead_id, stage, event_date, sum(n)::bigint as n
                                    from d group by 1, 2, 3, 4, 5 having sum(n) <> 0)';
    body constant text := $body$
declare
    any_moved boolean;
    bad uuid;
begin
    -- Totals: the plain delta, then a check and the keys it emptied.
    with d as (%1$s)
    insert into lead_funnel_totals as t (tenant_id, client_kpi_id, stage, status, currency, events, valued, value)
    select tenant_id, client_kpi_id, stage, status, currency, sum(n),
           coalesce(sum(n) filter (where value is not null), 0), coalesce(sum(n * value), 0)
      from d
     group by 1, 2, 3, 4, 5
    having sum(n) <> 0 or coalesce(sum(n) filter (where value is not null), 0) <> 0
        or coalesce(sum(n * value), 0) <> 0
     order by 1, 2, 3, 4, 5
    on conflict (tenant_id, client_kpi_id, stage, status, currency) do update
       set events = t.events + excluded.events, valued = t.valued + excluded.valued,
           value = t.value + excluded.value;
    with d as (%1$s), k as (select distinct tenant_id, client_kpi_id, stage, status, currency from d)
    select t.client_kpi_id into bad
      from lead_funnel_totals t join k using (tenant_id, client_kpi_id, stage, status, currency)
     where t.events < 0 or t.valued < 0 or t.valued > t.events
     limit 1;
    if bad is not null then
        perform zixly_funnel_corrupt('lead_funnel_totals', bad);
    end if;
    with d as (%1$s), k as (select distinct tenant_id, client_kpi_id, stage, status, currency from d)
    delete from lead_funnel_totals t using k
     where (t.tenant_id, t.client_kpi_id, t.stage, t.status, t.currency)
           = (k.tenant_id, k.client_kpi_id, k.stage, k.status, k.currency)
       and t.events = 0;

    with d as (%1$s), %2$s select exists (select 1 from m) into any_moved;
    if not any_moved then
        return null;
    end if;

    -- Lock the clients' funnels (see the top of this file), in key order. Each statement after
    -- this one takes a new snapshot, so it sees what a transaction it waited for committed.
    with d as (%1$s), %2$s
    insert into lead_funnel_clients (tenant_id, client_kpi_id)
    select distinct tenant_id, client_kpi_id from m order by 1, 2
    on conflict do nothing;
    perform count(*)
       from (with d as (%1$s), %2$s, k as (select distinct tenant_id, client_kpi_id from m)
             select 1 from lead_funnel_clients c join k using (tenant_id, client_kpi_id)
              order by c.tenant_id, c.client_kpi_id for update of c) l;

    -- The firsts of the leads touched before and after, and from them the change in the stage,
    -- pair and client counts, all in one statement: `old_f` is the table as it was, `new_f` what
    -- it becomes (an added event can only move a first earlier; a removed one may have been the
    -- first, which is then recomputed from the raw rows, already as the statement left them).
    with d as (%1$s), %2$s,
    chg as (select tenant_id, client_kpi_id, lead_id, stage, sum(n)::bigint as dn,
                   min(event_date) filter (where n > 0) as added,
                   min(event_date) filter (where n < 0) as removed
              from m group by 1, 2, 3, 4),
    leads as (select distinct tenant_id, client_kpi_id, lead_id from chg),
    old_f as (select f.tenant_id, f.client_kpi_id, f.lead_id, f.stage, f.first_at, f.event_count
                from lead_stage_firsts f join leads using (tenant_id, client_kpi_id, lead_id)),
    next as (select tenant_id, client_kpi_id, lead_id, stage, c.dn is not null as changed,
                    case when coalesce(o.event_count, 0) + coalesce(c.dn, 0) < 0
                         then zixly_funnel_corrupt('lead_stage_firsts', client_kpi_id)
                         else coalesce(o.event_count, 0) + coalesce(c.dn, 0) end as event_count,
                    o.first_at as old_first, c.added, c.removed
               from old_f o full join chg c using (tenant_id, client_kpi_id, lead_id, stage)),
    new_f as (select n.tenant_id, n.client_kpi_id, n.lead_id, n.stage, n.changed, n.event_count,
                     case when n.removed is not null and n.removed <= n.old_first
                          then (select min(e.event_date) from lead_events e
                                 where e.tenant_id = n.tenant_id and e.client_kpi_id = n.client_kpi_id
                                   and e.lead_id = n.lead_id and e.stage = n.stage)
                          else least(n.old_first, n.added) end as first_at
                from next n where n.event_count > 0),
    put as (insert into lead_stage_firsts as f (tenant_id, client_kpi_id, lead_id, stage, first_at, event_count)
            select tenant_id, client_kpi_id, lead_id, stage, first_at, event_count
              from new_f where changed order by 1, 2, 3, 4
            on conflict (tenant_id, client_kpi_id, lead_id, stage) do update
               set first_at = excluded.first_at, event_count = excluded.event_count),
    drop_f as (delete from lead_stage_firsts f using next n
                where (f.tenant_id, f.client_kpi_id, f.lead_id, f.stage)
                      = (n.tenant_id, n.client_kpi_id, n.lead_id, n.stage)
                  and n.event_count = 0),
    ranked as (select tenant_id, client_kpi_id, lead_id, stage, -1 as sign,
                      rank() over (partition by tenant_id, client_kpi_id, lead_id order by first_at) as r
                 from old_f
               union all
               select tenant_id, client_kpi_id, lead_id, stage, 1,
                      rank() over (partition by tenant_id, client_kpi_id, lead_id order by first_at)
                 from new_f),
    put_stages as (insert into lead_funnel_stages as s (tenant_id, client_kpi_id, stage, leads, rank_sum)
                   select tenant_id, client_kpi_id, stage, sum(sign), sum(sign * r)
                     from ranked group by 1, 2, 3
                   having sum(sign) <> 0 or sum(sign * r) <> 0
                    order by 1, 2, 3
                   on conflict (tenant_id, client_kpi_id, stage) do update
                      set leads = s.leads + excluded.leads, rank_sum = s.rank_sum + excluded.rank_sum),
    put_pairs as (insert into lead_funnel_pairs as p (tenant_id, client_kpi_id, stage, other_stage, leads)
                  select a.tenant_id, a.client_kpi_id, a.stage, b.stage, sum(a.sign)
                    from ranked a join ranked b using (tenant_id, client_kpi_id, lead_id, sign)
                   where a.stage <> b.stage
                   group by 1, 2, 3, 4
                  having sum(a.sign) <> 0
                   order by 1, 2, 3, 4
                  on conflict (tenant_id, client_kpi_id, stage, other_stage) do update
                     set leads = p.leads + excluded.leads)
    update lead_funnel_clients c set leads = c.leads + x.leads
      from (select tenant_id, client_kpi_id, sum(sign) as leads
              from (select distinct tenant_id, client_kpi_id, lead_id, sign from ranked) l
             group by 1, 2 having sum(sign) <> 0) x
     where (c.tenant_id, c.client_kpi_id) = (x.tenant_id, x.client_kpi_id);

    -- A count below zero is a subtraction of leads the rollups never had; zeros are deleted, so
    -- "a row exists" means "the client has such leads".
    with d as (%1$s), %2$s, k as (select distinct tenant_id, client_kpi_id from m)
    select k.client_kpi_id into bad from k
     where exists (select 1 from lead_funnel_clients c
                    where (c.tenant_id, c.client_kpi_id) = (k.tenant_id, k.client_kpi_id) and c.leads < 0)
        or exists (select 1 from lead_funnel_stages s
                    where (s.tenant_id, s.client_kpi_id) = (k.tenant_id, k.client_kpi_id)
                      and (s.leads < 0 or s.rank_sum < s.leads))
        or exists (select 1 from lead_funnel_pairs p
                    where (p.tenant_id, p.client_kpi_id) = (k.tenant_id, k.client_kpi_id) and p.leads < 0)
     limit 1;
    if bad is not null then
        perform zixly_funnel_corrupt('the funnel rollups', bad);
    end if;
    with d as (%1$s), %2$s, k as (select distinct tenant_id, client_kpi_id from m),
    s as (delete from lead_funnel_stages s using k
           where (s.tenant_id, s.client_kpi_id) = (k.tenant_id, k.client_kpi_id) and s.leads = 0),
    p as (delete from lead_funnel_pairs p using k
           where (p.tenant_id, p.client_kpi_id) = (k.tenant_id, k.client_kpi_id) and p.leads = 0)
    delete from lead_funnel_clients c using k
     where (c.tenant_id, c.client_kpi_id) = (k.tenant_id, k.client_kpi_id) and c.leads = 0;
    return null;
end
$body$;
begin
    execute format('create function zixly_lead_events_funnel_insert() returns trigger language plpgsql as %L',
                   format(body, format('select %s, 1 as n from zixly_new_rows', cols), moved));
    execute format('create function zixly_lead_events_funnel_delete() returns trigger language plpgsql as %L',
                   format(body, format('select %s, -1 as n from zixly_old_rows', cols), moved));
    execute format('create function zixly_lead_events_funnel_update() returns trigger language plpgsql as %L',
                   format(body, format('select %1$s, 1 as n from zixly_new_rows union all select %1$s, -1 from zixly_old_rows', cols),
                          moved));
end
$generate$;

-- One trigger per event: PostgreSQL allows transition tables only on single-event triggers.
create trigger lead_funnel_insert after insert on lead_events
    referencing new table as zixly_new_rows
    for each statement execute function zixly_lead_events_funnel_insert();
create trigger lead_funnel_update after update on lead_events
    referencing old table as zixly_old_rows new table as zixly_new_rows
    for each statement execute function zixly_lead_events_funnel_update();
create trigger lead_funnel_delete after delete on lead_events
    referencing old table as zixly_old_rows
    for each statement execute function zixly_lead_events_funnel_delete();

-- The rollups of the events already there.
insert into lead_stage_firsts (tenant_id, client_kpi_id, lead_id, stage, first_at, event_count)
select tenant_id, client_kpi_id, lead_id, stage, min(event_date), count(*)
  from lead_events
 group by 1, 2, 3, 4;
insert into lead_funnel_totals (tenant_id, client_kpi_id, stage, status, currency, events, valued, value)
select tenant_id, client_kpi_id, stage, status, currency, count(*), count(value), coalesce(sum(value), 0)
  from lead_events
 group by 1, 2, 3, 4, 5;
insert into lead_funnel_clients (tenant_id, client_kpi_id, leads)
select tenant_id, client_kpi_id, count(distinct lead_id)
  from lead_stage_firsts
 group by 1, 2;
with f as (
    select tenant_id, client_kpi_id, lead_id, stage,
           rank() over (partition by tenant_id, client_kpi_id, lead_id order by first_at) as r
      from lead_stage_firsts)
insert into lead_funnel_stages (tenant_id, client_kpi_id, stage, leads, rank_sum)
select tenant_id, client_kpi_id, stage, count(*), sum(r) from f group by 1, 2, 3;
insert into lead_funnel_pairs (tenant_id, client_kpi_id, stage, other_stage, leads)
select a.tenant_id, a.client_kpi_id, a.stage, b.stage, count(*)
  from lead_stage_firsts a join lead_stage_firsts b using (tenant_id, client_kpi_id, lead_id)
 where a.stage <> b.stage
 group by 1, 2, 3, 4;
analyze lead_stage_firsts, lead_funnel_stages, lead_funnel_pairs, lead_funnel_totals, lead_funnel_clients;
