-- Goals, alert rules and their state, notification channels, in-app notifications, deliveries and
-- the dispatch log (issue 13). Every table is keyed by tenant_id first, under forced RLS, with
-- composite foreign keys that carry tenant_id (Citus: co-located distributed tables).
--
-- How the pieces meet:
--   goals (+ goal_targets per period)         -- read by the goals page/API and by `goal` rules
--   alert_rules (+ alert_rule_channels)       -- configuration (the seed's v1.2 "alerts": history
--   alerts (one row per rule, client, bucket)    and configuration, split in two tables)
--   alert_transitions                         -- append-only history of every state change
--   notification_providers                    -- a tenant's channels: webhook, slack, email
--   notifications                             -- in-app, one row per user and event
--   notification_deliveries                   -- the outbox: one row per (transition, channel);
--                                                its id is the webhook-id, stable across retries
--   notification_dispatch_log                 -- append-only, one row per delivery attempt

----------------------------------------------------------------------------------------------------
-- goals: a target on one catalogue KPI (built-in name or a custom metric's name), for one client
-- (client_id) or the whole tenant (null). Recurring per month/quarter/year, or one fixed period
-- (fixed_from .. fixed_to). `target` is the constant target; goal_targets rows override it for a
-- given period (seasonal targets, imported budgets).
create table goals (
    tenant_id   uuid        not null,
    id          uuid        not null default zixly_uuid_v7(),
    name        text,
    kpi         text        not null,
    client_id   uuid,
    period      text        not null,
    kind        text        not null,
    target      numeric(20,4) not null,
    fixed_from  date,
    fixed_to    date,
    created_by  uuid,
    archived_at timestamptz,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint goals_pkey primary key (tenant_id, id),
    constraint goals_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint goals_client_fkey foreign key (tenant_id, client_id)
        references client_kpis (tenant_id, id) on delete cascade,
    constraint goals_kpi_not_blank check (btrim(kpi) <> ''),
    constraint goals_period_known check (period in ('month', 'quarter', 'year', 'fixed')),
    constraint goals_kind_known check (kind in ('reach', 'stay_above', 'stay_below')),
    constraint goals_fixed_iff_dates
        check ((period = 'fixed') = (fixed_from is not null and fixed_to is not null)),
    constraint goals_fixed_ordered check (fixed_to is null or fixed_to >= fixed_from)
);
create index goals_tenant_client_idx on goals (tenant_id, client_id);
create trigger goals_touch before update on goals
    for each row execute function zixly_touch_updated_at();

-- A goal's target for one period (the period's first day), overriding goals.target.
create table goal_targets (
    tenant_id    uuid          not null,
    goal_id      uuid          not null,
    period_start date          not null,
    target       numeric(20,4) not null,
    created_at   timestamptz   not null default now(),
    updated_at   timestamptz   not null default now(),
    constraint goal_targets_pkey primary key (tenant_id, goal_id, period_start),
    constraint goal_targets_goal_fkey foreign key (tenant_id, goal_id)
        references goals (tenant_id, id) on delete cascade
);
create trigger goal_targets_touch before update on goal_targets
    for each row execute function zixly_touch_updated_at();

----------------------------------------------------------------------------------------------------
-- alert_rules: what to watch. kind: threshold | change | anomaly | goal | stale.
-- scope: 'tenant' = the tenant's total; 'clients' = each client in client_ids evaluated separately
-- (the API's `client_id` is the one-element case); 'each_client' = every client of the tenant.
-- pending_for: how long a crossing must last before it fires (0 = on the first evaluation);
-- repeat_every: null = notify once per firing, else again after that long while still firing.
create table alert_rules (
    tenant_id      uuid          not null,
    id             uuid          not null default zixly_uuid_v7(),
    name           text          not null,
    kind           text          not null,
    kpi            text,
    scope          text          not null default 'tenant',
    client_ids     uuid[]        not null default '{}',
    bucket         text          not null default 'month',
    condition      text,
    value          numeric(20,4),
    -- change rules: 'percent' | 'absolute', compared with 'previous' | 'last_year'
    change_mode    text,
    compare_to     text,
    -- goal rules
    goal_id        uuid,
    -- stale rules: days without new data
    stale_days     integer,
    pending_for    interval      not null default '0 seconds',
    repeat_every   interval,
    snoozed_until  timestamptz,
    enabled        boolean       not null default true,
    created_by     uuid,
    created_at     timestamptz   not null default now(),
    updated_at     timestamptz   not null default now(),
    constraint alert_rules_pkey primary key (tenant_id, id),
    constraint alert_rules_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint alert_rules_goal_fkey foreign key (tenant_id, goal_id)
        references goals (tenant_id, id) on delete cascade,
    constraint alert_rules_name_not_blank check (btrim(name) <> ''),
    constraint alert_rules_kind_known check (kind in ('threshold', 'change', 'anomaly', 'goal', 'stale')),
    constraint alert_rules_scope_known check (scope in ('tenant', 'clients', 'each_client')),
    constraint alert_rules_bucket_known check (bucket in ('day', 'week', 'month')),
    constraint alert_rules_condition_known check (condition is null or condition in ('above', 'below')),
    constraint alert_rules_change_mode_known check (change_mode is null or change_mode in ('percent', 'absolute')),
    constraint alert_rules_compare_to_known check (compare_to is null or compare_to in ('previous', 'last_year')),
    constraint alert_rules_stale_days_positive check (stale_days is null or stale_days > 0),
    constraint alert_rules_pending_not_negative check (pending_for >= '0 seconds'),
    constraint alert_rules_repeat_positive check (repeat_every is null or repeat_every > '0 seconds')
);
create trigger alert_rules_touch before update on alert_rules
    for each row execute function zixly_touch_updated_at();

create table notification_providers (
    tenant_id         uuid        not null,
    id                uuid        not null default zixly_uuid_v7(),
    kind              text        not null,
    name              text        not null,
    -- the e-mail address, or the webhook URL shown to ADMINs (a Slack URL is itself a secret:
    -- stored only encrypted, `target` then holds its host for display)
    target            text        not null,
    secret_ciphertext bytea,
    is_active         boolean     not null default true,
    verified_at       timestamptz,
    last_error        text,
    created_by        uuid,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint notification_providers_pkey primary key (tenant_id, id),
    constraint notification_providers_tenant_fkey foreign key (tenant_id) references tenants (id) on delete cascade,
    constraint notification_providers_kind_known check (kind in ('webhook', 'slack', 'email')),
    constraint notification_providers_name_not_blank check (btrim(name) <> ''),
    constraint notification_providers_name_key unique (tenant_id, name)
);
create trigger notification_providers_touch before update on notification_providers
    for each row execute function zixly_touch_updated_at();

create table alert_rule_channels (
    tenant_id  uuid not null,
    rule_id    uuid not null,
    channel_id uuid not null,
    constraint alert_rule_channels_pkey primary key (tenant_id, rule_id, channel_id),
    constraint alert_rule_channels_rule_fkey foreign key (tenant_id, rule_id)
        references alert_rules (tenant_id, id) on delete cascade,
    constraint alert_rule_channels_channel_fkey foreign key (tenant_id, channel_id)
        references notification_providers (tenant_id, id) on delete cascade
);

----------------------------------------------------------------------------------------------------
-- alerts: the state of one rule for one subject (a client, or the tenant: client_id null) and one
-- bucket. One row per (rule, subject, bucket_start): evaluating again updates it, so a re-import
-- of the same data cannot create a second firing. `subject_key` is client_id or the nil uuid,
-- because a unique key over a nullable column would not be unique.
create table alerts (
    tenant_id        uuid          not null,
    id               uuid          not null default zixly_uuid_v7(),
    rule_id          uuid          not null,
    client_id        uuid,
    subject_key      uuid          not null,
    bucket_start     date          not null,
    state            text          not null,
    value            numeric(20,4),
    threshold        numeric(20,4),
    expected_low     numeric(20,4),
    expected_high    numeric(20,4),
    detail           jsonb         not null default '{}'::jsonb,
    pending_since    timestamptz,
    fired_at         timestamptz,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    evaluated_at     timestamptz   not null default now(),
    created_at       timestamptz   not null default now(),
    updated_at       timestamptz   not null default now(),
    constraint alerts_pkey primary key (tenant_id, id),
    constraint alerts_rule_fkey foreign key (tenant_id, rule_id)
        references alert_rules (tenant_id, id) on delete cascade,
    constraint alerts_client_fkey foreign key (tenant_id, client_id)
        references client_kpis (tenant_id, id) on delete cascade,
    constraint alerts_subject_key check (subject_key = coalesce(client_id, '00000000-0000-0000-0000-000000000000'::uuid)),
    constraint alerts_once_per_bucket unique (tenant_id, rule_id, subject_key, bucket_start),
    constraint alerts_state_known check (state in ('ok', 'pending', 'firing', 'resolved', 'no_data'))
);
create index alerts_tenant_state_idx on alerts (tenant_id, state, updated_at desc);
create trigger alerts_touch before update on alerts
    for each row execute function zixly_touch_updated_at();

-- Append-only: every change of an alert's state, and whether it was to be notified.
create table alert_transitions (
    tenant_id   uuid          not null,
    id          uuid          not null default zixly_uuid_v7(),
    alert_id    uuid          not null,
    from_state  text,
    to_state    text          not null,
    value       numeric(20,4),
    notify      boolean       not null default false,
    occurred_at timestamptz   not null default now(),
    constraint alert_transitions_pkey primary key (tenant_id, id),
    constraint alert_transitions_alert_fkey foreign key (tenant_id, alert_id)
        references alerts (tenant_id, id) on delete cascade
);
create index alert_transitions_alert_idx on alert_transitions (tenant_id, alert_id, occurred_at);

----------------------------------------------------------------------------------------------------
-- notifications: in-app, one row per recipient user.
create table notifications (
    tenant_id  uuid        not null,
    id         uuid        not null default zixly_uuid_v7(),
    user_id    uuid        not null,
    type       text        not null,
    message    text        not null,
    link       text,
    ref_type   text,
    ref_id     uuid,
    read_at    timestamptz,
    created_at timestamptz not null default now(),
    constraint notifications_pkey primary key (tenant_id, id),
    constraint notifications_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, id) on delete cascade
);
create index notifications_user_unread_idx on notifications (tenant_id, user_id, created_at desc)
    where read_at is null;

-- The outbox: one delivery per (transition, channel) — or a channel's "send test" (transition
-- null). Its id is the Standard Webhooks `webhook-id`, the same on every retry.
create table notification_deliveries (
    tenant_id     uuid        not null,
    id            uuid        not null default zixly_uuid_v7(),
    channel_id    uuid        not null,
    transition_id uuid,
    event_type    text        not null,
    payload       jsonb       not null,
    state         text        not null default 'pending',
    attempts      integer     not null default 0,
    delivered_at  timestamptz,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint notification_deliveries_pkey primary key (tenant_id, id),
    constraint notification_deliveries_channel_fkey foreign key (tenant_id, channel_id)
        references notification_providers (tenant_id, id) on delete cascade,
    constraint notification_deliveries_transition_fkey foreign key (tenant_id, transition_id)
        references alert_transitions (tenant_id, id) on delete cascade,
    constraint notification_deliveries_once unique (tenant_id, transition_id, channel_id),
    constraint notification_deliveries_state_known check (state in ('pending', 'delivered', 'failed'))
);
create trigger notification_deliveries_touch before update on notification_deliveries
    for each row execute function zixly_touch_updated_at();

-- Append-only: one row per delivery attempt (the seed's notification_dispatch_log).
create table notification_dispatch_log (
    tenant_id         uuid        not null,
    id                uuid        not null default zixly_uuid_v7(),
    delivery_id       uuid        not null,
    channel_id        uuid        not null,
    channel           text        not null,
    type              text        not null,
    status            text        not null,
    attempt           integer     not null,
    duration_ms       integer     not null,
    response_status   integer,
    provider_response text,
    error             text,
    created_at        timestamptz not null default now(),
    constraint notification_dispatch_log_pkey primary key (tenant_id, id),
    constraint notification_dispatch_log_delivery_fkey foreign key (tenant_id, delivery_id)
        references notification_deliveries (tenant_id, id) on delete cascade,
    constraint notification_dispatch_log_status_known check (status in ('sent', 'failed')),
    constraint notification_dispatch_log_response_bounded
        check (provider_response is null or octet_length(provider_response) <= 1024)
);
create index notification_dispatch_log_tenant_time_idx
    on notification_dispatch_log (tenant_id, created_at desc);
create index notification_dispatch_log_delivery_idx
    on notification_dispatch_log (tenant_id, delivery_id, attempt);

create function zixly_append_only() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end
$$;
create trigger alert_transitions_no_update before update on alert_transitions
    for each row execute function zixly_append_only();
create trigger notification_dispatch_log_no_update before update on notification_dispatch_log
    for each row execute function zixly_append_only();

do $$
declare
    t text;
begin
    foreach t in array array['goals', 'goal_targets', 'alert_rules', 'notification_providers',
                             'alert_rule_channels', 'alerts', 'alert_transitions', 'notifications',
                             'notification_deliveries', 'notification_dispatch_log']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy tenant_isolation on %I using (tenant_id = zixly_current_tenant())'
                       ' with check (tenant_id = zixly_current_tenant())', t);
    end loop;
end
$$;
grant select, insert, update, delete on goals, goal_targets, alert_rules, alert_rule_channels,
    notification_providers, alerts, notifications, notification_deliveries to zixly_app;
-- history: written and read, never changed (grants; the trigger refuses UPDATE for everyone)
grant select, insert on alert_transitions, notification_dispatch_log to zixly_app;
-- BI tools may read goals and alert history; channels (secrets) and notifications (personal) not.
grant select on goals, goal_targets, alert_rules, alerts, alert_transitions to zixly_readonly;
