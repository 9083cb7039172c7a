-- The first and last lead event of a tenant from one index probe each (issue 14).
--
-- The overview says which comparison periods its lead figures cover from the tenant's first and
-- last lead event (`TenantTx::data_spans`). On the partitioned `lead_events` that was a min and a
-- max per client, each opening every monthly partition: 330–600 ms plus 100–150 ms of planning
-- at 200 clients × 10 years, most of the 12-month overview's time. `lead_states` (0018) holds
-- every event's date, one unpartitioned table: with this index both ends are a probe.
create index lead_states_tenant_date_idx on lead_states (tenant_id, event_date);
