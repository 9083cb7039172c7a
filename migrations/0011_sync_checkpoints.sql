-- Resumable, paced syncs (issue 10).
--
-- * `sync_checkpoints`: the progress of the one unfinished run of an integration, written in the
--   same transaction as every page's rows, so that a 429 with a long wait, a crash, a deploy or a
--   kill resumes at the page where it stopped and never re-reads what is committed. `state` is the
--   provider runner's own (plan, stream, page or `after` token, high-water mark); the counters are
--   what the Integrations page and `zixly sync --wait` show. Deleted when the run settles.
-- * `integrations.paused_until` / `pause_reason`: a run stopped on purpose by a provider budget
--   (Xero's per-organisation day limit, a Pipedrive daily budget) resumes at this time; the ADMIN
--   sees why and when instead of a silent loop.
create table sync_checkpoints (
    tenant_id      uuid        not null,
    integration_id uuid        not null,
    started_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    state          jsonb       not null,
    stream         text,
    pages_read     bigint      not null default 0,
    items_read     bigint      not null default 0,
    items_total    bigint,
    requests       bigint      not null default 0,
    -- Attempts that began from this checkpoint and committed no page since: a run that makes no
    -- progress over several attempts ends in ERROR instead of looping.
    stalled_attempts integer   not null default 0,
    constraint sync_checkpoints_pkey primary key (tenant_id, integration_id),
    constraint sync_checkpoints_integration_fkey foreign key (tenant_id, integration_id)
        references integrations (tenant_id, id) on delete cascade,
    constraint sync_checkpoints_counts check (pages_read >= 0 and items_read >= 0 and requests >= 0)
);
create trigger sync_checkpoints_touch before update on sync_checkpoints
    for each row execute function zixly_touch_updated_at();

alter table sync_checkpoints enable row level security;
alter table sync_checkpoints force row level security;
create policy tenant_isolation on sync_checkpoints using (tenant_id = zixly_current_tenant())
    with check (tenant_id = zixly_current_tenant());
grant select, insert, update, delete on sync_checkpoints to zixly_app;

alter table integrations
    add column paused_until timestamptz,
    add column pause_reason text;
