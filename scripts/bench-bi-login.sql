-- BI login cost (BENCHMARKS.md, "BI login cost"): the same aggregate as zixly_app (tenant from the
-- transaction-local setting) and as a BI login (tenant from the bi_logins mapping), over a table
-- scan and over an index scan. Run as a superuser against a scratch database migrated by zixly:
--   psql "$SUPERUSER_URL_TO_SCRATCH_DB" -v rows=1000000 -f scripts/bench-bi-login.sql
-- It creates the role bench_bi (dropped at the end) and two tenants with :rows financial rows
-- each (two clients per tenant, one row per client and day).
\set ON_ERROR_STOP on
\timing off
insert into tenants (id, name) values ('00000000-0000-7000-8000-00000000000a', 'Bench A'),
                                      ('00000000-0000-7000-8000-00000000000b', 'Bench B');
insert into client_kpis (tenant_id, client_id, client_name)
select t, c, c from (values ('00000000-0000-7000-8000-00000000000a'::uuid), ('00000000-0000-7000-8000-00000000000b'::uuid)) v(t),
                    (values ('c1'), ('c2')) w(c);
insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
select k.tenant_id, k.id, date '1900-01-01' + g, 100.00, 40.00, 60.00, 5.00
  from client_kpis k, generate_series(0, (:rows / 2) - 1) g;
analyze financials;
create role bench_bi login password 'bench-bi-password' in role zixly_readonly;
insert into bi_logins (role_oid, role_name, tenant_id)
select oid, rolname, '00000000-0000-7000-8000-00000000000a' from pg_roles where rolname = 'bench_bi';
-- Scan of the whole tenant (the policy qual is a filter or an index condition, as the planner likes).
\echo 'zixly_app, whole tenant'
set role zixly_app;
begin; select set_config('zixly.tenant_id', '00000000-0000-7000-8000-00000000000a', true);
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
commit;
reset role;
\echo 'BI login, whole tenant'
set session authorization bench_bi;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
-- A narrow range (index scan).
\echo 'BI login, one month'
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials where record_date between '1950-01-01' and '1950-01-31';
reset session authorization;
\echo 'zixly_app, one month'
set role zixly_app;
begin; select set_config('zixly.tenant_id', '00000000-0000-7000-8000-00000000000a', true);
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials where record_date between '1950-01-01' and '1950-01-31';
commit;
reset role;
-- The worst case: a sequential scan, where the policy qual is a per-row filter.
\echo 'zixly_app, whole tenant, sequential scan forced'
set role zixly_app;
set enable_indexscan = off; set enable_bitmapscan = off; set max_parallel_workers_per_gather = 0;
begin; select set_config('zixly.tenant_id', '00000000-0000-7000-8000-00000000000a', true);
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
commit;
reset role;
\echo 'BI login, whole tenant, sequential scan forced'
set session authorization bench_bi;
set enable_indexscan = off; set enable_bitmapscan = off; set max_parallel_workers_per_gather = 0;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
explain (analyze, timing off, summary on, costs off) select sum(revenue) from financials;
reset session authorization;
drop owned by bench_bi; drop role bench_bi;
