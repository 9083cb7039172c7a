-- Stale-data rules on one integration (issue 13, item 2: "an integration ... with no new data
-- for N days, or a sync in ERROR").
--
-- `integration_id` names the integration a stale rule watches: its freshness is the last sync of
-- that integration that brought rows, and it is in error when that integration is. Only a stale
-- rule may name one, and such a rule judges the tenant as a whole (an integration feeds many
-- clients), so its scope is 'tenant'.
--
-- ON DELETE CASCADE: a rule about an integration that no longer exists has nothing to watch; the
-- integration's deletion is audit-logged, and its rules and their alerts go with it (as a goal's
-- rules go with the goal). SET NULL would silently turn it into a tenant-wide rule.
--
-- Citus: the foreign key carries the distribution column, like every other between tenant tables.

alter table alert_rules add column integration_id uuid;
alter table alert_rules
    add constraint alert_rules_integration_fkey foreign key (tenant_id, integration_id)
        references integrations (tenant_id, id) on delete cascade,
    add constraint alert_rules_integration_only_stale
        check (integration_id is null or (kind = 'stale' and scope = 'tenant'));
-- The cascade looks rules up by integration.
create index alert_rules_integration_idx on alert_rules (tenant_id, integration_id)
    where integration_id is not null;
