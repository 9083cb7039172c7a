-- BI logins confined by who they are (issue 9, item 1).
--
-- Before this migration a BI tool's login role inherited `zixly_readonly` and was pinned to a tenant
-- with `ALTER ROLE ... SET zixly.tenant_id`. That pinned nothing: the login could `SET` the setting
-- itself (or `set_config`, or `PGOPTIONS=-c zixly.tenant_id=...`) and read any tenant, and
-- `pg_roles.rolconfig` showed every pinned tenant's id to every role. Now:
--
-- * `zixly_current_tenant()` trusts the transaction-local setting only when the current role is
--   `zixly_app`, the role every request runs as (it sets the setting itself, in each transaction,
--   from the authenticated session). For any other role it asks `zixly_bi_login_tenant()`, which
--   looks the SESSION user up in `bi_logins` — a mapping only `zixly_owner` writes (through
--   `zixly bi-role create`). Nothing a login can set changes `session_user` (SET SESSION
--   AUTHORIZATION needs a superuser), so a BI login sees its own tenant or, unmapped, nothing:
--   isolation still fails closed. `SET ROLE zixly_readonly` changes `current_user` but not
--   `session_user`, so it gains nothing either.
-- * `zixly_readonly` keeps SELECT on business data only (tenants, clients, financials, lead events,
--   custom metrics, exchange rates, the migration history). Users (password hashes, e-mail
--   addresses), tokens, invitations, password resets, OAuth states, integrations (encrypted
--   provider tokens, error texts), sync state, jobs and the audit log are refused.
-- * The mapping stores the role's OID (a role dropped and re-created under the same name by
--   someone else is not mapped) and its tenant (a deleted tenant's mapping goes with it, and its
--   login then sees nothing). Tenant ids no longer appear in `pg_roles.rolconfig`.
--
-- Cost: for `zixly_app` the function stays an inlined CASE over `current_user` and the setting, as
-- cheap as before. For a BI login each evaluation is a SECURITY DEFINER call with one index probe;
-- PostgreSQL evaluates it once per index scan, but once per row in a sequential scan's filter
-- (BENCHMARKS.md, "BI login cost").
--
-- Citus: `bi_logins` is identity data, looked up by role, not by tenant: it would be a reference
-- table there (replicated to every node), which is why its primary key does not lead with
-- tenant_id (a documented exception in the catalog tests).
create table bi_logins (
    role_oid   oid         not null,
    role_name  name        not null,
    tenant_id  uuid        not null,
    created_at timestamptz not null default now(),
    constraint bi_logins_pkey primary key (role_oid),
    constraint bi_logins_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade
);
create index bi_logins_tenant_idx on bi_logins (tenant_id);
-- RLS like every table with tenant_id, although nobody but the owner (BYPASSRLS) has any grant:
-- a future accidental grant would still expose nothing beyond the grantee's own tenant.
alter table bi_logins enable row level security;
alter table bi_logins force row level security;
create policy tenant_isolation on bi_logins
    using (tenant_id = zixly_current_tenant()) with check (tenant_id = zixly_current_tenant());

-- The tenant of the session's login role, or NULL when it is not a BI login. SECURITY DEFINER (it
-- reads `bi_logins`, which nobody else may read); search_path pinned so that a caller's temporary
-- table cannot shadow `bi_logins`. Takes no argument: no caller can ask about another role.
create function zixly_bi_login_tenant() returns uuid
language sql stable parallel safe security definer
set search_path = public, pg_temp
as $$
    select b.tenant_id from bi_logins b
     where b.role_oid = (select r.oid from pg_catalog.pg_roles r where r.rolname = session_user)
$$;
revoke all on function zixly_bi_login_tenant() from public;
-- zixly_app never reaches the ELSE branch below, but an inlined CASE checks the EXECUTE privilege
-- of every function it contains when the query starts.
grant execute on function zixly_bi_login_tenant() to zixly_app, zixly_readonly;

-- Same contract as before (STABLE, no subquery in the policy itself, NULL = nothing): the planner
-- still inlines it and uses it as an index condition.
create or replace function zixly_current_tenant() returns uuid
language sql stable parallel safe as $$
    select case when current_user = 'zixly_app'
                then nullif(current_setting('zixly.tenant_id', true), '')::uuid
                else zixly_bi_login_tenant()
           end
$$;

-- BI sees business data and the metric catalogue only.
revoke select on users, integrations, sync_runs, audit_logs, auth_tokens, invitations,
    password_resets, jobs, oauth_states, sync_contributions, sync_dirty_days from zixly_readonly;
