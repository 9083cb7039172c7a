-- Interrupted imports leave a trace (issue 9): a load records its sync_runs row as `running` in
-- its own committed transaction before it reads any input, and finishes that row in the loading
-- transaction. A run whose process died (kill -9, a crash, PostgreSQL itself restarting) stays
-- `running`; the start-up sweep of `zixly up`/`serve`/`worker` and the job queue's rescuer mark it
-- `interrupted`.
--
-- Who owns a running row: the database session that inserted it holds a session-level advisory
-- lock on (2054714226, hashtext(id::text)) (`RUN_LOCK_CLASS` in
-- crates/zixly_db/src/queries/sync_runs.rs) until the row is finished; the lock
-- ends with the session, whatever killed it. A sweeper marks a row `interrupted` only when it can
-- take that lock itself (pg_try_advisory_xact_lock), i.e. when the owner is provably gone. A
-- long-running healthy load is never touched, however long it takes; no clock is involved.
-- owner_pid records the owning backend's pid for operators (pg_stat_activity.pid); it is not
-- used for that decision.
--
-- The new enum value cannot be used in this transaction (PostgreSQL: "unsafe use of new value"),
-- and is not: the finished-when-done check holds for it as it is.
alter type sync_status add value if not exists 'interrupted';

alter table sync_runs add column owner_pid integer;

-- The sweep looks for running rows of every tenant; only the few live ones are in this index.
-- It leads with tenant_id like every index here (the sweep reads all of it anyway).
create index sync_runs_running_idx on sync_runs (tenant_id, id) where status = 'running';
