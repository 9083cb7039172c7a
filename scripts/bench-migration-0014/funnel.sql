-- A client's funnel over all time (stage x status counts, zixly_db/src/queries/reports.rs).
\set n random(1, 1000)
select tenant_id as tid, id as cid from bench_clients where n = :n \gset
begin;
select set_config('zixly.tenant_id', :tid::text, true);
select stage, status::text, count(*), sum(value)
  from lead_events
 where tenant_id = :tid and client_kpi_id = :cid
 group by 1, 2;
commit;
