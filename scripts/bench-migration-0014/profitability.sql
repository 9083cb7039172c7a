-- The profitability report's read (zixly_db/src/queries/reports.rs): every client of a tenant,
-- a random calendar quarter and the one before it.
\set t random(1, 50)
\set q random(1, 11)
select id as tid, (date '2023-04-01' + make_interval(months => 3 * :q))::date as qfrom from bench_tenants where n = :t \gset
begin;
select set_config('zixly.tenant_id', :tid::text, true);
with c as (
     select id, client_id, client_name, lower(client_name) as k
       from client_kpis where tenant_id = :tid order by lower(client_name), id limit 101)
select c.id, c.client_id, c.client_name, c.k, f.cur, f.d, f.is_current, f.rev, f.exp, f.cf, f.n
  from c
  left join lateral (
       select currency::text as cur, case when currency = 'AUD' then null else record_date end as d,
              record_date >= :qfrom::date as is_current,
              sum(revenue) as rev, sum(expenses) as exp, sum(cash_flow) as cf, count(*) as n
         from financials
        where tenant_id = :tid and client_kpi_id = c.id
          and record_date between (:qfrom::date - interval '3 months')::date and (:qfrom::date + interval '3 months' - interval '1 day')::date
        group by 1, 2, 3) f on true
 order by c.k, c.id;
commit;
