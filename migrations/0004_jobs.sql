-- Background jobs (a PostgreSQL job queue: no extra server) and OAuth authorization states.
--
-- Design, after riverqueue/river:
-- * Explicit job states, enforced by CHECK constraints (not an enum, so a future state is a
--   constraint change rather than an enum migration):
--
--       available ──claim──▶ running ──ok──▶ completed
--           ▲                  │  │
--           │   error, attempts left: retryable (scheduled_at = now() + backoff) ──due──▶ claimable
--           │                  │  └─error, no attempts left / permanent──▶ discarded
--           └── rescuer (heartbeat lost) / shutdown release ┘
--       available | retryable ──cancel──▶ cancelled
--
--   `finalized_at` is set exactly in the final states (completed, discarded, cancelled), and a
--   running job always has `attempted_at` and `heartbeat_at`.
-- * Claiming is one statement (`update ... from (select ... for update skip locked)`), run by the
--   worker through the owner role across tenants (`SystemDb`, the loudly named path). The job then
--   runs outside that transaction, in its own tenant transactions as `zixly_app`.
-- * A job may run more than once (a worker killed after the work but before `completed`): every
--   job body is idempotent.
-- * Unique jobs: a partial unique index over live states on (tenant_id, kind, unique_key), so at
--   most one sync per integration is queued or running; enqueueing a duplicate is a no-op.
-- * Wake-up: a statement-level trigger notifies channel `zixly_jobs` on insert; workers also poll.
-- * No cross-tenant claim index: the schema rule is that every index of a tenant table leads with
--   tenant_id, and the table stays small (finalized jobs are deleted after a retention period), so
--   the claim scans the live rows. Revisit (as a documented exception) if the table grows large.

create table jobs (
    tenant_id     uuid        not null,
    id            uuid        not null default zixly_uuid_v7(),
    kind          text        not null,
    args          jsonb       not null default '{}'::jsonb,
    state         text        not null default 'available',
    priority      smallint    not null default 2,
    attempt       integer     not null default 0,
    max_attempts  integer     not null default 5,
    scheduled_at  timestamptz not null default now(),
    attempted_at  timestamptz,
    attempted_by  text,
    heartbeat_at  timestamptz,
    finalized_at  timestamptz,
    unique_key    text,
    errors        jsonb       not null default '[]'::jsonb,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint jobs_pkey primary key (tenant_id, id),
    constraint jobs_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint jobs_state_known
        check (state in ('available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    constraint jobs_finalized_iff_final
        check ((state in ('completed', 'discarded', 'cancelled')) = (finalized_at is not null)),
    constraint jobs_running_has_attempt
        check (state <> 'running' or (attempted_at is not null and heartbeat_at is not null and attempt > 0)),
    constraint jobs_attempts_valid check (attempt >= 0 and max_attempts > 0 and attempt <= max_attempts + 1),
    constraint jobs_priority_range check (priority between 1 and 4),
    constraint jobs_kind_not_blank check (btrim(kind) <> ''),
    constraint jobs_errors_array check (jsonb_typeof(errors) = 'array')
);
create unique index jobs_unique_live_key on jobs (tenant_id, kind, unique_key)
    where unique_key is not null and state in ('available', 'running', 'retryable');
create index jobs_tenant_state_idx on jobs (tenant_id, state, scheduled_at);
create trigger jobs_touch before update on jobs
    for each row execute function zixly_touch_updated_at();

create function zixly_jobs_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('zixly_jobs', '');
    return null;
end
$$;
create trigger jobs_notify_insert after insert on jobs
    for each statement execute function zixly_jobs_notify();

----------------------------------------------------------------------------------------------------
-- oauth_states: one row per started OAuth authorization. The `state` parameter handed to the
-- provider is `<tenant id, 32 hex><secret, 64 hex>`; only its SHA-256 is stored (as with auth
-- tokens, the tenant part lets the callback open the tenant's transaction before the lookup).
-- Single use (the callback deletes the row it consumes) and expiring. The PKCE verifier is
-- stored encrypted (zixly_crypto ciphertext).
create table oauth_states (
    tenant_id      uuid                 not null,
    id             uuid                 not null default zixly_uuid_v7(),
    state_hash     bytea                not null,
    provider       integration_provider not null,
    user_id        uuid                 not null,
    pkce_verifier  bytea,
    redirect_uri   text                 not null,
    created_at     timestamptz          not null default now(),
    expires_at     timestamptz          not null,
    constraint oauth_states_pkey primary key (tenant_id, id),
    constraint oauth_states_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, id) on delete cascade,
    constraint oauth_states_state_hash_key unique (tenant_id, state_hash),
    constraint oauth_states_hash_is_sha256 check (octet_length(state_hash) = 32),
    constraint oauth_states_expiry_after_creation check (expires_at > created_at)
);

do $$
declare
    t text;
begin
    foreach t in array array['jobs', 'oauth_states']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())'
                       ' with check (tenant_id = zixly_current_tenant())', t);
        execute format('grant select on %I to zixly_readonly', t);
    end loop;
end
$$;
-- The application enqueues, reads and cancels jobs of its tenant; it never deletes them (the
-- cleaner does, as the owner).
grant select, insert, update on jobs to zixly_app;
grant select, insert, delete on oauth_states to zixly_app;
