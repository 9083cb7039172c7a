-- The API's range_90d read (zixly_db/src/queries/series.rs, `reading financials`): one client,
-- a random 90-day window of the 3 seeded years.
\set n random(1, 1000)
\set day random(0, 1004)
select tenant_id as tid, id as cid from bench_clients where n = :n \gset
begin;
select set_config('zixly.tenant_id', :tid::text, true);
select id, record_date, revenue, expenses, net_profit, cash_flow, currency::text, source_system, external_id, metadata
  from financials
 where tenant_id = :tid and client_kpi_id = :cid
   and record_date between date '2023-01-05' + :day::int and date '2023-01-05' + :day::int + 89
 order by record_date, source_system
 limit 1001;
commit;
