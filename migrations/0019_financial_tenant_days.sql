-- Per-tenant daily rollups of the financials (issue 14, item 2).
--
-- The overview, the tenant-wide goals and the tenant's data span read the tenant's financials per
-- day: its per-day chart, each comparison period's first and last day with a record (a comparison
-- against days the data does not cover is not shown), and the sums of three periods. Read from
-- raw rows that is every client's every row of two years: 78,800 rows and 69 ms at 200 clients
-- (BENCHMARKS.md, "Two new patterns"). `financial_tenant_days` holds, per tenant, day and
-- currency, the sums of the tenant's raw rows of that day and how many rows they are: at most a
-- row per day and currency, whatever the number of clients, and the same answer as the raw rows
-- to the cent (the reader converts each day's foreign sum at that day's rate, as it did from raw
-- rows: per-currency sums, never one converted amount, so neither a later FX rate nor a change
-- of the base currency makes a row stale).
--
-- Maintenance: statement-level triggers with transition tables on `financials`, as in 0015 (the
-- statement's delta per key: new rows minus old rows; a row whose count reaches 0 is deleted, a
-- count below 0 fails the write with `data_corrupted`). They fire after 0015's triggers (names
-- sort after `financial_months_*`), in the same transaction as every write, whoever makes it.
--
-- Concurrency: a day row is shared by all of the tenant's clients, so two transactions writing
-- one tenant's financials over several statements each (a load's upsert and its deletions) could
-- lock the same day rows in different orders and deadlock. A BEFORE statement trigger takes the
-- tenant's transaction-level write lock before any row is written, so the financial writes of one
-- tenant run one transaction after the other. It is the same lock as the lead events' (0018,
-- renamed here `zixly_tenant_rollup_lock`): one lock per tenant for every tenant-wide rollup, so
-- a transaction that writes both financials and lead events cannot deadlock with one that writes
-- them in the other order. The price: a long load of a tenant makes that tenant's other loads
-- wait until it commits (other tenants are not affected). Statements without a current tenant
-- (superuser maintenance) take no lock.
--
-- No foreign key to `tenants`, for the reason 0015 gives: a tenant's deletion cascades through
-- its clients to `financials`, whose trigger then takes the tenant's days to 0 and deletes them.

create table financial_tenant_days (
    tenant_id uuid          not null,
    day       date          not null,
    currency  char(3)       not null,
    revenue   numeric(18,2) not null,
    expenses  numeric(18,2) not null,
    cash_flow numeric(18,2) not null,
    row_count bigint        not null,
    constraint financial_tenant_days_pkey primary key (tenant_id, day, currency)
);
comment on table financial_tenant_days is
    'Per tenant, day and currency: sums of financials (maintained by triggers on financials).';
alter table financial_tenant_days enable row level security;
alter table financial_tenant_days force row level security;
create policy tenant_isolation on financial_tenant_days using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on financial_tenant_days to zixly_app;
grant select on financial_tenant_days to zixly_readonly;

create type zixly_tenant_day_key as (tenant_id uuid, day date, currency char(3));

-- The tenant's write lock, for every tenant-wide rollup (see the top of this file).
create function zixly_tenant_rollup_lock() returns trigger
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
drop trigger lead_pipeline_lock on lead_events;
drop function zixly_lead_pipeline_lock();
create trigger lead_pipeline_lock before insert or update or delete on lead_events
    for each statement execute function zixly_tenant_rollup_lock();
create trigger financial_tenant_days_lock before insert or update or delete on financials
    for each statement execute function zixly_tenant_rollup_lock();

-- The trigger functions, generated from one text as in 0016 and 0018: %1$s is the statement's
-- new rows, %2$s its old rows (an empty set where the event has none). Each adds the signed delta
-- per (tenant, day, currency) in key order, then fails on a count below zero and deletes the rows
-- it emptied.
do $generate$
declare
    body constant text := $body$
declare
    keys zixly_tenant_day_key[];
    bad zixly_tenant_day_key;
begin
    with n as (%1$s), o as (%2$s),
    d as (select tenant_id, record_date, currency, revenue, expenses, cash_flow, 1 as n from n
          union all
          select tenant_id, record_date, currency, -revenue, -expenses, -cash_flow, -1 from o),
    put as (insert into financial_tenant_days as t (tenant_id, day, currency, revenue, expenses, cash_flow, row_count)
            select tenant_id, record_date, currency, sum(revenue), sum(expenses), sum(cash_flow), sum(n)
              from d group by 1, 2, 3
            -- An update that changed nothing summed here (external_id, metadata, client) adds nothing.
            having sum(revenue) <> 0 or sum(expenses) <> 0 or sum(cash_flow) <> 0 or sum(n) <> 0
             order by 1, 2, 3
            on conflict (tenant_id, day, currency) do update
               set revenue = t.revenue + excluded.revenue, expenses = t.expenses + excluded.expenses,
                   cash_flow = t.cash_flow + excluded.cash_flow, row_count = t.row_count + excluded.row_count
            returning t.tenant_id, t.day, t.currency, t.row_count)
    select array(select row(tenant_id, day, currency)::zixly_tenant_day_key from put where row_count <= 0)
      into keys;
    if cardinality(keys) > 0 then
        select k.* into bad
          from unnest(keys) k join financial_tenant_days t using (tenant_id, day, currency)
         where t.row_count < 0 limit 1;
        if found then
            -- (%% is format()'s literal percent sign: this text is a format string.)
            raise exception 'financial_tenant_days disagrees with financials for tenant %% day %% currency %%',
                bad.tenant_id, bad.day, bad.currency
                using errcode = 'data_corrupted';
        end if;
        delete from financial_tenant_days t using unnest(keys) k
         where (t.tenant_id, t.day, t.currency) = (k.tenant_id, k.day, k.currency) and t.row_count = 0;
    end if;
    return null;
end
$body$;
    cols constant text := 'tenant_id, record_date, currency, revenue, expenses, cash_flow';
begin
    execute format('create function zixly_financial_tenant_days_insert() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_new_rows where false', cols)));
    execute format('create function zixly_financial_tenant_days_delete() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_old_rows where false', cols),
                          format('select %s from zixly_old_rows', cols)));
    execute format('create function zixly_financial_tenant_days_update() returns trigger language plpgsql as %L',
                   format(body, format('select %s from zixly_new_rows', cols),
                          format('select %s from zixly_old_rows', cols)));
end
$generate$;

create trigger financial_tenant_days_insert after insert on financials
    referencing new table as zixly_new_rows
    for each statement execute function zixly_financial_tenant_days_insert();
create trigger financial_tenant_days_update after update on financials
    referencing old table as zixly_old_rows new table as zixly_new_rows
    for each statement execute function zixly_financial_tenant_days_update();
create trigger financial_tenant_days_delete after delete on financials
    referencing old table as zixly_old_rows
    for each statement execute function zixly_financial_tenant_days_delete();

-- The rollups of the rows already there.
insert into financial_tenant_days (tenant_id, day, currency, revenue, expenses, cash_flow, row_count)
select tenant_id, record_date, currency, sum(revenue), sum(expenses), sum(cash_flow), count(*)
  from financials
 group by 1, 2, 3;
analyze financial_tenant_days;
