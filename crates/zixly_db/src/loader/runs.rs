//! The loader's bookkeeping around a load: the tenant's settings, the `sync_runs` row (recorded
//! as `running` before the first row, its lock held by the loading session), and a dry run's
//! connection.

use chrono::Utc;
use uuid::Uuid;
use zixly_domain::ingest::IngestContext;
use zixly_domain::timezone::Tz;
use zixly_domain::CurrencyCode;

use super::LoadOptions;
use crate::error::{Ctx, DbError, DbResult};
use crate::queries::sync_runs::{release_run_lock, FinishedSyncRun, NewSyncRun};
use crate::{AppDb, TenantTx};

/// What parsing needs to know about the tenant: its time zone and base currency. `source_system`
/// is the default for rows that name none (`csv` for file imports).
pub async fn ingest_context(
    app: &AppDb,
    tenant: Uuid,
    default_source_system: &str,
) -> DbResult<IngestContext> {
    let tx = app.begin_tenant(tenant).await?;
    let (base, zone) = tenant_settings(&tx).await?;
    tx.commit().await?;
    Ok(IngestContext {
        time_zone: zone,
        base_currency: base,
        default_source_system: default_source_system.into(),
    })
}

pub(super) async fn tenant_settings(tx: &TenantTx) -> DbResult<(CurrencyCode, Tz)> {
    let row = tx
        .client()
        .query_opt(
            "select base_currency::text, time_zone from tenants where id = $1",
            &[&tx.tenant_id()],
        )
        .await
        .ctx("reading the tenant's settings")?
        .ok_or(DbError::NotFound("tenant"))?;
    let (base, zone): (String, String) = (row.get(0), row.get(1));
    let base = base
        .parse()
        .map_err(|e| DbError::Config(format!("tenant base currency: {e}")))?;
    let zone = zone
        .parse()
        .map_err(|_| DbError::Config(format!("tenant time zone `{zone}` is not an IANA zone")))?;
    Ok((base, zone))
}

/// The connection of a dry run and the tenant's base currency: no sync run, so no lock and a
/// nil run id.
pub(super) async fn check_connection(
    app: &AppDb,
    tenant: Uuid,
) -> DbResult<(Uuid, CurrencyCode, deadpool_postgres::Object)> {
    let tx = app.begin_tenant(tenant).await?;
    let (base, _) = tenant_settings(&tx).await?;
    Ok((Uuid::nil(), base, tx.rollback_keep().await?))
}

/// Records the run as `running` (committed, with the tenant's base currency read in the same
/// transaction) and returns its id and the connection that holds its lock (see
/// `queries::sync_runs`).
pub(super) async fn start_run(
    app: &AppDb,
    tenant: Uuid,
    options: &LoadOptions,
    dataset: &str,
    started_at: chrono::DateTime<Utc>,
) -> DbResult<(Uuid, CurrencyCode, deadpool_postgres::Object)> {
    // Another live run whose id hashes to the same lock key is a one-in-four-billion event; a
    // few fresh ids make it vanish.
    for _ in 0..4 {
        let tx = app.begin_tenant(tenant).await?;
        let (base, _) = tenant_settings(&tx).await?;
        let run = NewSyncRun {
            id: Uuid::now_v7(),
            source: &options.source,
            dataset,
            integration_id: options.integration_id,
            file_name: options.file_name.as_deref(),
            triggered_by: options.triggered_by,
            started_at,
        };
        if tx.start_sync_run(&run).await? {
            return Ok((run.id, base, tx.commit_keep().await?));
        }
        tx.rollback().await?;
    }
    Err(DbError::Config(
        "could not take a lock for the sync run: its key was in use four times".into(),
    ))
}

/// Hands the owning connection back to the pool without the run's lock (or closes it).
pub(super) async fn release_run(client: deadpool_postgres::Object, run_id: Uuid) {
    if !release_run_lock(&client, run_id).await {
        drop(deadpool_postgres::Object::take(client));
    }
}

/// Best effort: records a failed outcome for a run that is still unfinished.
pub(super) async fn record_failure(
    app: &AppDb,
    tenant: Uuid,
    run_id: Uuid,
    run: &FinishedSyncRun<'_>,
) {
    if let Ok(tx) = app.begin_tenant(tenant).await {
        if tx.finish_sync_run(run_id, run).await.is_ok() {
            tx.commit().await.ok();
        }
    }
}
