-- Retention of raw daily financials (issue 14, item 3).
--
-- A tenant may keep its raw `financials` rows for a number of whole calendar months before the
-- current one (`tenants.raw_retention_months`; NULL, the default, keeps them forever). The
-- worker's scheduled job (`SystemDb::apply_retention`, crates/zixly_db/src/retention.rs) deletes
-- the rows before the cutoff — the first day of the current month in the tenant's time zone,
-- less that many months (`zixly_raw_data_from`) — in bounded batches, a transaction each.
--
-- What stays: `financial_months` (per client, month and currency) keeps what the deleted rows
-- summed, so every whole month before the cutoff is still reported, per client and tenant-wide.
-- What goes: the days. The raw rows and the tenant's day rollups (`financial_tenant_days`, whose
-- delete trigger runs as for any deletion) before the cutoff; pages and API say from which day
-- figures are per day (`raw_data_from`) and read the months before it from `financial_months`.
-- So everything stays exact where it is kept: the day rollups always equal the raw rows, and
-- `financial_months` equals them from the cutoff on.
--
-- So the month rollups' delete trigger must not subtract what retention deletes. It skips a
-- statement run with `zixly.keep_rollups` set to `on` (SET LOCAL: the batch's transaction only)
-- by a role with the owner's privileges. Anyone may set a custom setting, so the role is the
-- guard: `zixly_app` (and every login under it) cannot keep a rollup its own deletion should
-- change. The condition is the trigger's WHEN clause, so 0015's function stays as it is.
--
-- After retention, the loader keeps rows dated before the cutoff out (counted, not loaded): a
-- re-sync of an old invoice would otherwise add it to a month that still holds it.
--
-- Lead events and custom metrics are not subject to retention: the pipeline and funnel rollups
-- follow each lead through its whole history (a lead's state needs its earlier events), and
-- custom metrics have no rollups.

alter table tenants add column raw_retention_months integer,
    add constraint tenants_raw_retention_months_range
        check (raw_retention_months is null or raw_retention_months between 1 and 1200);
comment on column tenants.raw_retention_months is
    'Whole months of raw financials kept before the current month; NULL keeps them forever (monthly rollups are kept either way).';

-- The first day whose raw financials a tenant keeps (NULL: every day's). STABLE: it moves with
-- the clock, a month at a time.
create function zixly_raw_data_from(months integer, tz text) returns date
language sql stable parallel safe as $$
    select (date_trunc('month', now() at time zone tz) - make_interval(months => months))::date
$$;

-- True unless the statement is retention's deletion (see above). `pg_has_role` is about the
-- current user, which in a trigger's WHEN clause is the writer's role.
create function zixly_rollups_follow() returns boolean
language sql stable as $$
    select not (coalesce(current_setting('zixly.keep_rollups', true), '') = 'on'
                and pg_has_role('zixly_owner', 'MEMBER'))
$$;

drop trigger financial_months_delete on financials;
create trigger financial_months_delete after delete on financials
    referencing old table as zixly_old_rows
    for each statement when (zixly_rollups_follow())
    execute function zixly_financial_months_after_delete();

-- The months of a whole tenant (the tenant-wide months before the cutoff, its first month): the
-- primary key leads with the client.
create index financial_months_tenant_month on financial_months (tenant_id, month);
