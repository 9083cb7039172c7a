-- Loader (issue 3): fresh planner statistics for client_kpis within a load's transaction.
--
-- Every row the loader inserts into financials, lead_events or custom_metrics fires the foreign-key
-- check `select 1 from client_kpis where tenant_id = $1 and id = $2 for key share`. Its plan is
-- made once per connection from client_kpis' statistics. When those say the table is empty or tiny
-- (a fresh install, a new tenant, right after a cleanup: autovacuum cannot see the clients the load
-- has just inserted), every index starting with tenant_id looks as cheap as the primary key, and the
-- planner may pick client_kpis_tenant_name_idx with `id` as a mere filter: each check then walks all
-- of the tenant's clients, and a load costs rows x clients (8.8M rows over 5,000 clients did not
-- finish in 17 minutes). ANALYZE sees the rows inserted by its own transaction, and the new
-- statistics invalidate the cached check plan, so the check becomes one primary-key probe.
--
-- zixly_app does not own client_kpis (only the owner may ANALYZE it), hence SECURITY DEFINER.
-- It analyzes only when the new clients are many compared with what the statistics know (more than
-- a tenth of reltuples, or the table was never analyzed), and never waits: ANALYZE's lock
-- (SHARE UPDATE EXCLUSIVE, held until the load commits) is taken NOWAIT, so a concurrent load that
-- is analyzing, or autovacuum, makes this a no-op instead of a queue. Returns whether it analyzed.
-- The search_path is pinned like every SECURITY DEFINER function here (pg_catalog is searched first
-- implicitly; pg_temp last, so a temporary table cannot shadow client_kpis).
create function zixly_refresh_client_stats(new_clients bigint) returns boolean
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    known real;
begin
    select c.reltuples into known from pg_class c where c.oid = 'public.client_kpis'::regclass;
    if new_clients <= 0 or (known >= 0 and new_clients * 10 <= known) then
        return false;
    end if;
    begin
        lock table public.client_kpis in share update exclusive mode nowait;
    exception when lock_not_available then
        return false;
    end;
    analyze public.client_kpis;
    return true;
end
$$;
revoke all on function zixly_refresh_client_stats(bigint) from public;
grant execute on function zixly_refresh_client_stats(bigint) to zixly_app;
