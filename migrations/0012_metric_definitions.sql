-- The metric catalogue (issue 12, item 4): how each custom metric of a tenant is named, measured and
-- aggregated. Goals, alerts and rollups (issues 13, 14) key on (tenant_id, name) too.
--
-- * One row per custom metric name, created by the loader on first sight of the name (CSV import,
--   API batch, sync: all go through the loader) in the transaction of the rows, with defaults
--   (`sum`, `up_is_good`, a display name from the name) and `on conflict do nothing`, so a
--   definition an EDITOR changed is never overwritten by a later load.
-- * The built-in KPIs (revenue, expenses, net_profit, margin, ...) are not rows: their meaning is
--   fixed by code (a margin is a ratio of sums, not any of the five aggregations), so they are
--   read-only definitions in `zixly_domain::metrics`, merged with these rows by the API.
-- * RLS enabled and forced like every tenant table; `zixly_readonly` (BI logins) may read the
--   catalogue, under the same policy, so a BI tool can label and aggregate what it reads.
create table metric_definitions (
    tenant_id    uuid        not null references tenants (id) on delete cascade,
    name         text        not null,
    display_name text        not null,
    unit         text,
    aggregation  text        not null default 'sum',
    direction    text        not null default 'up_is_good',
    description  text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint metric_definitions_pkey primary key (tenant_id, name),
    constraint metric_definitions_name_not_blank check (btrim(name) <> ''),
    constraint metric_definitions_display_name_not_blank check (btrim(display_name) <> ''),
    constraint metric_definitions_aggregation_known
        check (aggregation in ('sum', 'average', 'last', 'min', 'max')),
    constraint metric_definitions_direction_known
        check (direction in ('up_is_good', 'down_is_good'))
);
create trigger metric_definitions_touch before update on metric_definitions
    for each row execute function zixly_touch_updated_at();

alter table metric_definitions enable row level security;
alter table metric_definitions force row level security;
create policy tenant_isolation on metric_definitions using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on metric_definitions to zixly_app;
grant select on metric_definitions to zixly_readonly;

-- The display name a metric gets on first sight: underscores become spaces, first letter upper
-- case (`billable_hours` -> `Billable hours`); the name itself if that leaves nothing.
create function zixly_metric_display_name(name text) returns text
language sql immutable parallel safe as $$
    select coalesce(nullif(upper(left(btrim(replace(name, '_', ' ')), 1))
                           || substr(btrim(replace(name, '_', ' ')), 2), ''), name)
$$;
grant execute on function zixly_metric_display_name(text) to zixly_app;

-- Metrics loaded before this migration get their definition now, as a first sight would.
insert into metric_definitions (tenant_id, name, display_name, unit)
select tenant_id, metric_name, zixly_metric_display_name(metric_name), min(unit)
  from custom_metrics
 group by tenant_id, metric_name
on conflict do nothing;
