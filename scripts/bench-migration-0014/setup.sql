-- Helper tables of the reads (bench databases only): tenants and clients by number, readable by
-- zixly_app, which runs the reads under RLS like the server does.
drop table if exists bench_tenants, bench_clients;
create table bench_tenants as select row_number() over (order by name) as n, id from tenants;
create table bench_clients as
  select row_number() over (order by t.name, c.client_id) as n, c.tenant_id, c.id
    from client_kpis c join tenants t on t.id = c.tenant_id;
grant select on bench_tenants, bench_clients to zixly_app;
analyze bench_tenants, bench_clients;
