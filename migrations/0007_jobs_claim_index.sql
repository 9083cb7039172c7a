-- Job queue (issue 5): indexes for the two cross-tenant scans of `jobs`.
--
-- A worker claims `where state in ('available', 'retryable') and scheduled_at <= now() and kind =
-- any(..) order by priority, scheduled_at, id limit n`, on every poll and every NOTIFY; the rescuer
-- looks for `state = 'running'` rows whose heartbeat is old. Both scan across tenants, so the
-- tenant-leading indexes of 0004 cannot serve them and the table (one row per sync run, kept for
-- the retention period) would be read in full each time. Both indexes are partial: they hold only
-- the few live jobs, not the finished ones that make up most of the table.
--
-- These are the queue's documented exceptions to "every index leads with tenant_id" (like
-- users_email_idx for login): the scans they serve are cross-tenant by nature.
create index jobs_claim_idx on jobs (priority, scheduled_at, id)
    where state in ('available', 'retryable');
create index jobs_running_heartbeat_idx on jobs (heartbeat_at)
    where state = 'running';
