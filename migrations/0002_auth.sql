-- Authentication: sessions and personal API tokens, invitations, password resets, login throttling,
-- and the one cross-tenant lookup login needs.
--
-- Design (see crates/zixly_web/src/auth.rs for the HTTP side):
-- * Every secret handed to a person (session token, personal API token, invitation link, password
--   reset link) is `<prefix>_<tenant id, 32 hex><secret, 64 hex = 256 random bits>`, and only its
--   SHA-256 (`token_hash`) is stored. Carrying the tenant id in the token lets the server open the
--   request's tenant transaction *before* looking the token up, so the lookup itself runs under RLS
--   through the unique index (tenant_id, token_hash): no cross-tenant index and no SECURITY DEFINER
--   function for tokens (rejected alternative: a global `token_hash` index plus a definer function,
--   which would be the only non-tenant-leading index on these tables and could not be distributed
--   by tenant_id). Forging the tenant part gains nothing: the hash still has to match.
-- * Login is the one place where the tenant is not known: a user types an email, which is unique
--   per tenant only. `zixly_login_candidates(email)` (SECURITY DEFINER, owned by zixly_owner,
--   EXECUTE for zixly_app only) returns the matching accounts of every tenant; the server verifies
--   the password against each candidate.
-- * Failed-login throttling is keyed by account (the email as typed, whether or not it exists, so
--   a 429 reveals nothing) and by client address. That state is not tenant data: it lives in
--   `login_throttle`, a table without grants that only the SECURITY DEFINER functions below reach.
--   Kept in the database rather than in memory so that it survives restarts and is shared by every
--   server process. Keys are SHA-256 hashes: no email or address is stored in clear.

----------------------------------------------------------------------------------------------------
-- auth_tokens: browser sessions (kind 'session', created by login) and personal API tokens (kind
-- 'personal', named, created by the user for scripts). Revocation sets revoked_at; rows of a deleted
-- user go with it (cascade).
create table auth_tokens (
    tenant_id    uuid        not null,
    id           uuid        not null default zixly_uuid_v7(),
    user_id      uuid        not null,
    kind         text        not null,
    name         text,
    token_hash   bytea       not null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_addr inet,
    constraint auth_tokens_pkey primary key (tenant_id, id),
    constraint auth_tokens_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, id) on delete cascade,
    constraint auth_tokens_token_hash_key unique (tenant_id, token_hash),
    constraint auth_tokens_kind_known check (kind in ('session', 'personal')),
    constraint auth_tokens_personal_named check (kind <> 'personal' or (name is not null and btrim(name) <> '')),
    constraint auth_tokens_hash_is_sha256 check (octet_length(token_hash) = 32),
    constraint auth_tokens_expiry_after_creation check (expires_at > created_at)
);
create index auth_tokens_user_idx on auth_tokens (tenant_id, user_id, kind);

----------------------------------------------------------------------------------------------------
-- invitations: an ADMIN invites an email with a role; the link (token) is single-use and expires.
-- At most one pending invitation per email (re-inviting revokes the previous one first).
create table invitations (
    tenant_id        uuid        not null,
    id               uuid        not null default zixly_uuid_v7(),
    email            text        not null,
    role             user_role   not null,
    token_hash       bytea       not null,
    invited_by       uuid,
    created_at       timestamptz not null default now(),
    expires_at       timestamptz not null,
    accepted_at      timestamptz,
    accepted_user_id uuid,
    revoked_at       timestamptz,
    constraint invitations_pkey primary key (tenant_id, id),
    constraint invitations_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint invitations_invited_by_fkey foreign key (tenant_id, invited_by)
        references users (tenant_id, id) on delete set null (invited_by),
    constraint invitations_token_hash_key unique (tenant_id, token_hash),
    constraint invitations_email_lowercase check (email = lower(email) and email like '%_@_%'),
    constraint invitations_hash_is_sha256 check (octet_length(token_hash) = 32),
    constraint invitations_single_outcome check (accepted_at is null or revoked_at is null)
);
create unique index invitations_pending_email_key on invitations (tenant_id, email)
    where accepted_at is null and revoked_at is null;

----------------------------------------------------------------------------------------------------
-- password_resets: single-use, expiring links to set a new password. Requested by the user
-- (requested_by null) or issued by an ADMIN.
create table password_resets (
    tenant_id    uuid        not null,
    id           uuid        not null default zixly_uuid_v7(),
    user_id      uuid        not null,
    token_hash   bytea       not null,
    requested_by uuid,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    used_at      timestamptz,
    constraint password_resets_pkey primary key (tenant_id, id),
    constraint password_resets_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, id) on delete cascade,
    constraint password_resets_token_hash_key unique (tenant_id, token_hash),
    constraint password_resets_hash_is_sha256 check (octet_length(token_hash) = 32)
);
create index password_resets_user_idx on password_resets (tenant_id, user_id);

do $$
declare
    t text;
begin
    foreach t in array array['auth_tokens', 'invitations', 'password_resets']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())'
                       ' with check (tenant_id = zixly_current_tenant())', t);
        execute format('grant select on %I to zixly_readonly', t);
        execute format('grant select, insert, update, delete on %I to zixly_app', t);
    end loop;
end
$$;

----------------------------------------------------------------------------------------------------
-- Login: the cross-tenant email lookup. Runs as its owner (zixly_owner, BYPASSRLS); a fixed
-- search_path so a caller cannot shadow `users` with a temporary table. Returns no row for an
-- unknown email; the caller must still spend the time of a password verification.
create function zixly_login_candidates(p_email text)
returns table (tenant_id uuid, user_id uuid, password_hash text, role user_role, deactivated boolean)
language sql stable security definer
set search_path = public, pg_temp
as $$
    select u.tenant_id, u.id, u.password_hash, u.role, u.deactivated_at is not null
      from users u
     where u.email = lower(btrim(p_email))
     order by u.tenant_id
$$;
revoke all on function zixly_login_candidates(text) from public;
grant execute on function zixly_login_candidates(text) to zixly_app;

----------------------------------------------------------------------------------------------------
-- login_throttle: failed-login counters per key (SHA-256 of 'account:<email>' or 'addr:<ip>').
-- Not tenant data, no grants: reachable only through the three functions below.
create table login_throttle (
    key_hash          bytea       not null,
    failures          integer     not null default 0,
    window_started_at timestamptz not null default now(),
    locked_until      timestamptz,
    constraint login_throttle_pkey primary key (key_hash),
    constraint login_throttle_failures_non_negative check (failures >= 0)
);
-- RLS without a policy: even a future accidental grant would expose nothing.
alter table login_throttle enable row level security;
alter table login_throttle force row level security;

-- Seconds until the most restrictive of `p_keys` allows another attempt (0: allowed now).
create function zixly_login_throttle_wait(p_keys bytea[])
returns integer
language sql stable security definer
set search_path = public, pg_temp
as $$
    select coalesce(ceil(extract(epoch from max(locked_until) - now()))::integer, 0)
      from login_throttle
     where key_hash = any (p_keys) and locked_until > now()
$$;

-- Records a failure for `p_key`. Failures are counted within `p_window_secs`; from the `p_limit`-th
-- on, the key is locked for `p_lock_secs`, doubling with every further failure (at most one hour).
-- Returns the lock in seconds (0: not locked).
create function zixly_login_throttle_fail(p_key bytea, p_limit integer, p_window_secs integer, p_lock_secs integer)
returns integer
language plpgsql volatile security definer
set search_path = public, pg_temp
as $$
declare
    p_window interval := make_interval(secs => p_window_secs);
    p_lock interval := make_interval(secs => p_lock_secs);
    n integer;
    until timestamptz;
begin
    insert into login_throttle as t (key_hash, failures, window_started_at)
    values (p_key, 1, now())
    on conflict (key_hash) do update
        set failures = case when t.window_started_at < now() - p_window
                                 and (t.locked_until is null or t.locked_until <= now())
                            then 1 else t.failures + 1 end,
            window_started_at = case when t.window_started_at < now() - p_window
                                          and (t.locked_until is null or t.locked_until <= now())
                                     then now() else t.window_started_at end
    returning failures into n;
    if n >= p_limit then
        until := now() + least(p_lock * power(2, least(n - p_limit, 12)), interval '1 hour');
        update login_throttle set locked_until = until where key_hash = p_key;
        return ceil(extract(epoch from until - now()))::integer;
    end if;
    -- Occasional housekeeping keeps the table small without a scheduled job.
    if random() < 0.01 then
        delete from login_throttle
         where window_started_at < now() - interval '1 day'
           and (locked_until is null or locked_until < now());
    end if;
    return 0;
end
$$;

-- Forgets the failures of `p_key` (after a successful login, for the account key only: clearing the
-- address key would let one valid account reset an attacker's address budget).
create function zixly_login_throttle_clear(p_key bytea)
returns void
language sql volatile security definer
set search_path = public, pg_temp
as $$
    delete from login_throttle where key_hash = p_key
$$;

revoke all on function zixly_login_throttle_wait(bytea[]) from public;
revoke all on function zixly_login_throttle_fail(bytea, integer, integer, integer) from public;
revoke all on function zixly_login_throttle_clear(bytea) from public;
grant execute on function zixly_login_throttle_wait(bytea[]) to zixly_app;
grant execute on function zixly_login_throttle_fail(bytea, integer, integer, integer) to zixly_app;
grant execute on function zixly_login_throttle_clear(bytea) to zixly_app;
