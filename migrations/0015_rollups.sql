-- Monthly rollups of the financials (issue 14, item 2).
--
-- `financial_months` holds, per client, calendar month and currency, the sums of the raw daily
-- rows of `financials` and how many rows they are. Reports read whole months from here and raw
-- rows only for the days at a range's edges (and for amounts in a currency other than the
-- tenant's base, which are converted at each day's rate: a month's sum in a foreign currency
-- cannot be converted as one amount). A row per currency, not one converted amount, so that
-- neither a later FX rate nor a change of the tenant's base currency makes a rollup stale.
--
-- Maintained by statement-level triggers on `financials` in the same transaction as every
-- write, whoever makes it: the loader's upserts (CSV, API batches, connectors), the connectors'
-- deletions, a client's deletion (its ON DELETE CASCADE deletes through the parent, so the
-- parent's statement trigger sees the rows), retention, hand-written SQL. The triggers add the
-- delta of the statement's transition tables (new rows minus old rows, grouped by key) — never a
-- recomputation from raw rows, so their cost is the statement's rows, not the month's. A rollup
-- row whose count reaches 0 is deleted, so "a row exists" means "the month has raw rows".
--
-- No foreign keys: a client's deletion cascades to `financials`, whose trigger then takes the
-- client's months to 0 and deletes them; a cascade straight to `financial_months` as well could
-- run first and leave the trigger's subtraction nothing to subtract from (the check below would
-- then fail the deletion).
--
-- Concurrency: the upsert locks each touched rollup row until commit, so two loads of the same
-- client and month serialise on it (loads of one tenant are few at a time: the import caps).
-- Keys are upserted in key order, so two statements touching the same keys cannot deadlock on
-- them.
--
-- Citus: `financial_months` is distributed by tenant_id like the others (the catalog test checks
-- its key). Statement triggers with transition tables on distributed tables are not supported by
-- Citus; docs/citus.md says what that means.

create table financial_months (
    tenant_id     uuid          not null,
    client_kpi_id uuid          not null,
    month         date          not null,
    currency      char(3)       not null,
    revenue       numeric(18,2) not null,
    expenses      numeric(18,2) not null,
    cash_flow     numeric(18,2) not null,
    row_count     bigint        not null,
    constraint financial_months_pkey primary key (tenant_id, client_kpi_id, month, currency),
    constraint financial_months_first_of_month check (month = date_trunc('month', month)::date)
    -- No CHECK (row_count >= 0): INSERT ... ON CONFLICT checks constraints on the proposed row
    -- (a negative delta) before it finds the conflict. The trigger functions check instead.
);
comment on table financial_months is
    'Per client, month and currency: sums of financials (maintained by triggers on financials).';
alter table financial_months enable row level security;
alter table financial_months force row level security;
create policy tenant_isolation on financial_months using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
-- zixly_app writes only through the triggers, which run as the writing role; BI tools read the
-- rollups like the raw rows.
grant select, insert, update, delete on financial_months to zixly_app;
grant select on financial_months to zixly_readonly;

create type zixly_month_key as (tenant_id uuid, client_kpi_id uuid, month date, currency char(3));

-- After a subtraction: deletes the keys it emptied, and fails the write when a count went
-- negative — a subtraction of rows the rollup never had, so rollup and raw rows disagree, and
-- storing a wrong sum would be worse than refusing the write.
create function zixly_financial_months_settle(keys zixly_month_key[]) returns void
language plpgsql as $$
declare
    bad zixly_month_key;
begin
    select k.* into bad
      from unnest(keys) k join financial_months m using (tenant_id, client_kpi_id, month, currency)
     where m.row_count < 0
     limit 1;
    if found then
        raise exception 'financial_months disagrees with financials for client % month % currency %',
            bad.client_kpi_id, bad.month, bad.currency
            using errcode = 'data_corrupted';
    end if;
    delete from financial_months m
     using unnest(keys) k
     where m.tenant_id = k.tenant_id and m.client_kpi_id = k.client_kpi_id and m.month = k.month
       and m.currency = k.currency and m.row_count = 0;
end
$$;

-- The trigger functions: each adds its statement's delta per key (new rows count +1, old rows
-- -1), then deletes the keys it emptied.
create function zixly_financial_months_after_insert() returns trigger
language plpgsql as $$
begin
    insert into financial_months as m (tenant_id, client_kpi_id, month, currency, revenue, expenses,
                                       cash_flow, row_count)
    select tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency,
           sum(revenue), sum(expenses), sum(cash_flow), count(*)
      from zixly_new_rows
     group by 1, 2, 3, 4
     order by 1, 2, 3, 4
    on conflict (tenant_id, client_kpi_id, month, currency) do update
       set revenue = m.revenue + excluded.revenue, expenses = m.expenses + excluded.expenses,
           cash_flow = m.cash_flow + excluded.cash_flow, row_count = m.row_count + excluded.row_count;
    return null;
end
$$;

create function zixly_financial_months_after_update() returns trigger
language plpgsql as $$
begin
    insert into financial_months as m (tenant_id, client_kpi_id, month, currency, revenue, expenses,
                                       cash_flow, row_count)
    select tenant_id, client_kpi_id, month, currency, sum(revenue), sum(expenses), sum(cash_flow), sum(n)
      from (select tenant_id, client_kpi_id, date_trunc('month', record_date)::date as month, currency,
                   revenue, expenses, cash_flow, 1 as n
              from zixly_new_rows
            union all
            select tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency,
                   -revenue, -expenses, -cash_flow, -1
              from zixly_old_rows) d
     group by 1, 2, 3, 4
    -- An update that changed nothing a rollup holds (external_id, metadata) adds nothing.
    having sum(revenue) <> 0 or sum(expenses) <> 0 or sum(cash_flow) <> 0 or sum(n) <> 0
     order by 1, 2, 3, 4
    on conflict (tenant_id, client_kpi_id, month, currency) do update
       set revenue = m.revenue + excluded.revenue, expenses = m.expenses + excluded.expenses,
           cash_flow = m.cash_flow + excluded.cash_flow, row_count = m.row_count + excluded.row_count;
    -- An update can move a row to another month or currency, emptying its old key.
    perform zixly_financial_months_settle(array(
        select distinct row(tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency)::zixly_month_key
          from zixly_old_rows));
    return null;
end
$$;

create function zixly_financial_months_after_delete() returns trigger
language plpgsql as $$
begin
    insert into financial_months as m (tenant_id, client_kpi_id, month, currency, revenue, expenses,
                                       cash_flow, row_count)
    select tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency,
           -sum(revenue), -sum(expenses), -sum(cash_flow), -count(*)
      from zixly_old_rows
     group by 1, 2, 3, 4
     order by 1, 2, 3, 4
    on conflict (tenant_id, client_kpi_id, month, currency) do update
       set revenue = m.revenue + excluded.revenue, expenses = m.expenses + excluded.expenses,
           cash_flow = m.cash_flow + excluded.cash_flow, row_count = m.row_count + excluded.row_count;
    perform zixly_financial_months_settle(array(
        select distinct row(tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency)::zixly_month_key
          from zixly_old_rows));
    return null;
end
$$;

-- One trigger per event: PostgreSQL allows transition tables only on single-event triggers.
create trigger financial_months_insert after insert on financials
    referencing new table as zixly_new_rows
    for each statement execute function zixly_financial_months_after_insert();
create trigger financial_months_update after update on financials
    referencing old table as zixly_old_rows new table as zixly_new_rows
    for each statement execute function zixly_financial_months_after_update();
create trigger financial_months_delete after delete on financials
    referencing old table as zixly_old_rows
    for each statement execute function zixly_financial_months_after_delete();

-- The rollups of the rows already there.
insert into financial_months (tenant_id, client_kpi_id, month, currency, revenue, expenses, cash_flow, row_count)
select tenant_id, client_kpi_id, date_trunc('month', record_date)::date, currency,
       sum(revenue), sum(expenses), sum(cash_flow), count(*)
  from financials
 group by 1, 2, 3, 4;
analyze financial_months;
