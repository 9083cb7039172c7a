#!/usr/bin/env bash
# Times migration 0014 (monthly partitions, in place) on a database populated at 0013 with the
# shape of `zixly bench api` (BENCHMARKS.md, "Migration 0014"): TENANTS x CLIENTS x DAYS of daily
# financials, a lead a week per client walking 1-4 stages, a weekly metric (the SQL of
# `TenantTx::seed_synthetic_series`, zixly_db/src/bench/seed.rs, run as the owner).
#
#   scripts/bench-migration-0014.sh <psql socket dir> [tenants] [clients] [days]
#
# Needs a PostgreSQL 15+ superuser `postgres` reachable on that socket; creates the roles if
# missing and the database `zixly_mig14` (dropped first), and keeps a copy at 0013 as `zixly_mig13`. Each migration runs in one transaction,
# as the migration runner does, as zixly_owner.
set -euo pipefail
host=${1:?socket dir}
tenants=${2:-50}
clients=${3:-20}
days=${4:-1095}
last=${5:-9999}
here=$(cd "$(dirname "$0")/.." && pwd)
su=(psql -X -q -v ON_ERROR_STOP=1 -h "$host" -U postgres)
"${su[@]}" -d postgres <<'SQL'
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'zixly_owner') then
    create role zixly_owner login nosuperuser nocreaterole bypassrls; end if;
  if not exists (select 1 from pg_roles where rolname = 'zixly_app') then
    create role zixly_app login nosuperuser nocreaterole nobypassrls; end if;
  if not exists (select 1 from pg_roles where rolname = 'zixly_readonly') then
    create role zixly_readonly nologin nosuperuser nocreaterole nobypassrls; end if;
end $$;
drop database if exists zixly_mig14 with (force);
create database zixly_mig14 owner zixly_owner;
SQL
own=(psql -X -q -v ON_ERROR_STOP=1 -h "$host" -U zixly_owner -d zixly_mig14)
"${own[@]}" -c "set client_min_messages = warning;
  create table schema_migrations (version integer not null primary key, name text not null,
      checksum text not null, applied_at timestamptz not null default now());
  grant select on schema_migrations to zixly_app, zixly_readonly;"
for f in "$here"/migrations/00*.sql; do
  v=$(basename "$f" | cut -c1-4)
  [ "$((10#$v))" -ge 14 ] && continue
  "${own[@]}" -1 -c "set client_min_messages = warning" -f "$f"
done
start=$(date +%s.%N)
"${own[@]}" <<SQL
set client_min_messages = warning;
insert into tenants (id, name, base_currency, time_zone)
select zixly_uuid_v7(), 'bench-' || lpad(i::text, 2, '0'), 'AUD', 'Australia/Sydney'
  from generate_series(1, $tenants) i;
insert into client_kpis (tenant_id, id, client_id, client_name, industry, currency)
select t.id, zixly_uuid_v7(), 'bench-' || lpad(i::text, 3, '0'), 'Bench client ' || lpad(i::text, 3, '0'), 'services', 'AUD'
  from tenants t, generate_series(1, $clients) i;
insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency, source_system)
select tenant_id, id, d, r, e, r - e, cf, 'AUD', 'bench'
  from (select c.tenant_id, c.id, d::date as d,
               round((1000 + random() * 9000)::numeric, 2) as r,
               round((500 + random() * 8000)::numeric, 2) as e,
               round((random() * 2500 - 500)::numeric, 2) as cf
          from client_kpis c, generate_series(date '2025-12-31' - ($days - 1), date '2025-12-31', interval '1 day') d) s;
insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status, source_system)
select c.tenant_id, c.id,
       ((date '2025-12-31' - $days + 1 + n * 7)::timestamp + k * interval '3 days' + interval '10 hours') at time zone 'UTC',
       'L' || n, (array['lead', 'qualified', 'proposal', 'negotiation'])[k + 1],
       round((1000 + random() * 50000)::numeric, 2), 'AUD',
       case when k = s.depth - 1 then (array['won', 'lost', 'stale', 'active'])[1 + n % 4]::lead_status
            else 'active'::lead_status end,
       'bench'
  from client_kpis c, generate_series(0, $days / 7 - 1) n,
       lateral (select 1 + abs(hashtext(c.id::text || n::text)) % 4 as depth) s,
       lateral generate_series(0, s.depth - 1) k;
insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date, source_system)
select c.tenant_id, c.id, 'project_delivery_days', round((5 + random() * 40)::numeric, 4), 'days',
       ((date '2025-12-31' - $days + 1 + n * 7)::timestamp + interval '9 hours') at time zone 'UTC', 'bench'
  from client_kpis c, generate_series(0, $days / 7 - 1) n;
SQL
"${su[@]}" -d zixly_mig14 -c "vacuum analyze"
seeded=$(date +%s.%N)
"${own[@]}" -tA -c "select 'rows before: financials ' || (select count(*) from financials)
   || ', lead_events ' || (select count(*) from lead_events)
   || ', custom_metrics ' || (select count(*) from custom_metrics)
   || ', database ' || pg_size_pretty(pg_database_size(current_database()))"
if [ "${KEEP_0013:-0}" = 1 ]; then
  # The database at 0013, kept for before/after reads (scripts/bench-migration-0014/*.sql).
  "${su[@]}" -d postgres -c "drop database if exists zixly_mig13 with (force)" \
      -c "create database zixly_mig13 template zixly_mig14 owner zixly_owner"
fi
printf 'seeding %.1f s\n' "$(echo "$seeded - $start" | bc)"
total=0
for f in "$here"/migrations/00*.sql; do
  v=$((10#$(basename "$f" | cut -c1-4)))
  { [ "$v" -lt 14 ] || [ "$v" -gt "$last" ]; } && continue
  t0=$(date +%s.%N)
  "${own[@]}" -1 -c "set client_min_messages = warning" -f "$f" >/dev/null
  t1=$(date +%s.%N)
  took=$(echo "$t1 - $t0" | bc)
  total=$(echo "$total + $took" | bc)
  printf 'migration %s: %.1f s\n' "$(basename "$f")" "$took"
done
"${own[@]}" -tA -c "select 'rows after: financials ' || (select count(*) from financials)
   || ', lead_events ' || (select count(*) from lead_events)
   || ', custom_metrics ' || (select count(*) from custom_metrics)
   || ', partitions ' || (select count(*) from pg_class where relispartition and relkind = 'r')
   || ', in defaults ' || ((select count(*) from financials_default) + (select count(*) from lead_events_default)
                           + (select count(*) from custom_metrics_default))
   || ', database ' || pg_size_pretty(pg_database_size(current_database()))"
if [ "$last" -ge 15 ]; then
  # The rollups the migrations built must equal the rows they summarise, to the cent.
  "${own[@]}" -tA -c "select 'rollups equal the rows: ' || ((select (sum(revenue), sum(expenses), sum(cash_flow)) from financials)
     is not distinct from (select (sum(revenue), sum(expenses), sum(cash_flow)) from financial_months))"
fi
printf 'migrations 0014 on: %.1f s in all\n' "$total"
