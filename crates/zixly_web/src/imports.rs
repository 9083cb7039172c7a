//! The CSV import action shared by `POST /api/v1/imports` ([`crate::api::imports`]) and the
//! `/imports` page ([`crate::pages`]): what an upload may cost, decided in one place.
//!
//! 1. **Per-tenant slot** ([`ImportSlots::tenant_slot`], default 2 at once): taken before any byte
//!    of the body is read; over it, 429 `too_many_imports` with `Retry-After` at once. It bounds
//!    what one tenant's uploads hold (spool files, time), so one EDITOR cannot crowd out others.
//! 2. **Spool** ([`spool`]): the file part is copied to an anonymous temporary file (deleted when
//!    closed, even if the process dies) before any database connection is taken, counted against
//!    `import_body_limit` (413) and with at most `import_idle_timeout` between two pieces of the
//!    body (408 `upload_stalled`). A slow client therefore holds a file descriptor and a task,
//!    never a pooled connection: 16 uploads trickling a byte every few seconds no longer hold the
//!    pool, and `/readyz` and every other request keep their connections.
//! 3. **Run slot** ([`TenantSlot::run_slot`], default 4 at once in all): taken after the spool,
//!    before the first database connection and the parser thread, so imports never use more than
//!    that many of the pool's connections. Over it: a short bounded wait ([`RUN_SLOT_WAIT`]), then
//!    429 `imports_busy` with `Retry-After`. Waiting (rather than refusing at once) because the
//!    client has already sent the whole file and a load takes seconds, so a slot usually frees
//!    within the wait; the wait is bounded so that queued uploads do not pile up behind a stuck
//!    load. Taking this slot only after the spool means slow uploads cannot hold it.
//! 4. **Errors by kind** ([`ErrorKinds`]): the listed errors are capped (the loader's first
//!    [`zixly_db::loader::MAX_REPORTED_ERRORS`], [`MAX_LISTED_ERRORS`] on the page), and every
//!    error is counted by column, which is all that grows with the number of bad lines.

use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::Multipart;
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;
use zixly_db::loader::RejectSink;
use zixly_domain::ingest::RowError;

use zixly_db::loader::{self, LoadOptions, LoadReport, Loadable};
use zixly_domain::ingest::{CsvRows, IngestContext, IngestRow};

use crate::api::imports::upload_options;
use crate::auth::{Auth, Editor};
use crate::error::ApiError;
use crate::AppState;

/// How long an upload whose file is spooled waits for a run slot before 429 `imports_busy`.
pub const RUN_SLOT_WAIT: Duration = Duration::from_secs(10);
/// Errors the `/imports` page lists one by one (the API lists the loader's first 100).
pub const MAX_LISTED_ERRORS: usize = 100;
/// `Retry-After` of a refused import, in seconds.
const RETRY_AFTER_SECS: u64 = 5;
/// The key of [`ErrorKinds`] for errors about a whole line (no column).
pub const WHOLE_LINE: &str = "(line)";

/// Concurrent imports: per tenant (spool and load) and in all (loads).
pub struct ImportSlots {
    per_tenant: usize,
    /// Imports running per tenant; an entry is removed when its count falls to 0, so the map
    /// holds only tenants with an import in flight.
    tenants: Mutex<HashMap<Uuid, usize>>,
    total: Arc<Semaphore>,
    total_max: usize,
    wait: Duration,
}

impl ImportSlots {
    pub fn new(per_tenant: usize, total: usize, wait: Duration) -> Self {
        ImportSlots {
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
            total: Arc::new(Semaphore::new(total.max(1))),
            total_max: total.max(1),
            wait,
        }
    }

    /// A slot of `tenant`'s imports, or 429 `too_many_imports` when it has `per_tenant` running.
    pub fn tenant_slot(self: &Arc<Self>, tenant: Uuid) -> Result<TenantSlot, ApiError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let running = tenants.entry(tenant).or_insert(0);
        if *running >= self.per_tenant {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_imports",
                format!(
                    "{} imports of this account are already running (at most {} at once); retry when one has finished",
                    running, self.per_tenant
                ),
            )
            .retry_after(RETRY_AFTER_SECS));
        }
        *running += 1;
        Ok(TenantSlot {
            slots: self.clone(),
            tenant,
        })
    }
}

/// One of a tenant's import slots; released when dropped (whatever ends the request).
pub struct TenantSlot {
    slots: Arc<ImportSlots>,
    tenant: Uuid,
}

impl TenantSlot {
    /// A slot to parse and load (see the module documentation): waits at most the configured
    /// time, then 429 `imports_busy`.
    pub async fn run_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let busy = || {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "imports_busy",
                format!(
                    "the server is running its maximum of {} imports; the file was received but not loaded, retry shortly",
                    self.slots.total_max
                ),
            )
            .retry_after(RETRY_AFTER_SECS)
        };
        match tokio::time::timeout(self.slots.wait, self.slots.total.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut tenants = self.slots.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = tenants.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

/// An uploaded file, complete, in an anonymous temporary file.
pub struct Spooled {
    file: std::fs::File,
    pub len: u64,
    pub file_name: Option<String>,
}

impl Spooled {
    /// A reader from the start of the file (for the blocking parser thread). Readers share one
    /// file offset: use one at a time.
    pub fn reader(&self) -> std::io::Result<std::fs::File> {
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }
}

/// `fut`, or 408 `upload_stalled` when it takes longer than `idle` (a read of the body).
pub async fn idle<T>(
    idle: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, ApiError> {
    tokio::time::timeout(idle, fut).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload_stalled",
            format!(
                "no data arrived for {} s: the upload was abandoned and nothing was written",
                idle.as_secs_f64()
            ),
        )
    })
}

/// `256 MiB`, `64 KiB`: the upload limit as the page states it.
pub fn size_text(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// 413 for a file over `limit` bytes.
pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the file is larger than the limit of {} ({limit} bytes); nothing was written",
            size_text(limit)
        ),
    )
}

/// A multipart body that could not be read.
pub fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        );
    }
    ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
}

/// The body of an upload as multipart parts, or 400: the one parsing path of the API's upload
/// and the `/imports` page (axum's `Multipart`; both then read parts with [`next_field`],
/// [`text_field`] and [`spool`]).
pub fn open_multipart(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Multipart, ApiError> {
    multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })
}

/// The next part, with at most `idle_timeout` to wait for it (408).
pub async fn next_field(
    multipart: &mut Multipart,
    idle_timeout: Duration,
) -> Result<Option<Field<'_>>, ApiError> {
    idle(idle_timeout, multipart.next_field())
        .await?
        .map_err(multipart_error)
}

/// The text of a small form field (at most 64 bytes, trimmed).
pub async fn text_field(
    mut field: Field<'_>,
    name: &str,
    idle_timeout: Duration,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = idle(idle_timeout, field.chunk())
        .await?
        .map_err(multipart_error)?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 64 {
            return Err(ApiError::invalid_field(name, "is too long"));
        }
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| ApiError::invalid_field(name, "must be UTF-8 text"))
}

/// Copies the file part `field` to a temporary file: at most `limit` bytes (413), at most
/// `idle_timeout` between two chunks (408). No database connection is held meanwhile.
pub async fn spool(
    field: Field<'_>,
    limit: usize,
    idle_timeout: Duration,
) -> Result<Spooled, ApiError> {
    spool_draining(field, limit, idle_timeout, 0).await
}

/// [`spool`], but over the limit the rest of the part (up to `drain` more bytes) is read and
/// discarded before the 413 is returned: a browser still sending when the server answers and
/// closes the connection shows "connection reset" instead of the error page (the `/imports`
/// page). Nothing of the drained bytes is kept.
pub async fn spool_draining(
    mut field: Field<'_>,
    limit: usize,
    idle_timeout: Duration,
    drain: u64,
) -> Result<Spooled, ApiError> {
    let file_name = field.file_name().map(str::to_string);
    let file = tempfile::tempfile().map_err(|e| {
        tracing::error!(error = %e, "cannot create the spool file of an upload");
        ApiError::internal()
    })?;
    let write_error = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot write the spool file of an upload");
        ApiError::internal()
    };
    let mut out = tokio::fs::File::from_std(file.try_clone().map_err(write_error)?);
    let mut len = 0u64;
    while let Some(chunk) = idle(idle_timeout, field.chunk())
        .await?
        .map_err(multipart_error)?
    {
        len += chunk.len() as u64;
        if len > limit as u64 {
            drop(out);
            let mut drained = 0u64;
            while drained < drain {
                match idle(idle_timeout, field.chunk()).await {
                    Ok(Ok(Some(c))) => drained += c.len() as u64,
                    _ => break,
                }
            }
            return Err(payload_too_large(limit));
        }
        out.write_all(&chunk).await.map_err(write_error)?;
    }
    out.flush().await.map_err(write_error)?;
    Ok(Spooled {
        file,
        len,
        file_name,
    })
}

/// Every error of a load or check, counted by column ([`WHOLE_LINE`] for errors without one).
/// Columns are those of the dataset (an unknown column fails the header), so this stays small
/// whatever the number of bad lines. Doubles as the loader's [`RejectSink`].
#[derive(Debug, Default, Clone)]
pub struct ErrorKinds(pub BTreeMap<String, u64>);

impl ErrorKinds {
    pub fn count(&mut self, errors: &[RowError]) {
        for e in errors {
            let key = e.column.as_deref().unwrap_or(WHOLE_LINE);
            match self.0.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    self.0.insert(key.to_string(), 1);
                }
            }
        }
    }

    /// `1,200 in revenue, 3 in record_date, 1 (line)`, largest first.
    pub fn describe(&self) -> String {
        let mut kinds: Vec<(&String, &u64)> = self.0.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        kinds
            .iter()
            .map(|(k, n)| {
                if k.as_str() == WHOLE_LINE {
                    format!("{n} about the whole line")
                } else {
                    format!("{n} in {k}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl RejectSink for ErrorKinds {
    fn rejected(&mut self, _line: u64, errors: &[RowError]) {
        self.count(errors);
    }
}

/// Loads a spooled upload by `auth` (the API's and the page's "Load"): source `csv`, one
/// `sync_runs` row and one `import.csv` audit row, every error counted by kind. The caller holds
/// the run slot.
pub async fn load_spooled<T: Loadable>(
    state: &AppState,
    auth: &Auth<Editor>,
    file: &Spooled,
    skip_invalid: bool,
) -> Result<(LoadReport, ErrorKinds), ApiError> {
    let mut kinds = ErrorKinds::default();
    let options = upload_options::<T>(auth, file.file_name.clone(), skip_invalid);
    let report = run_loader::<T>(state, auth, file, &options, &mut kinds).await?;
    Ok((report, kinds))
}

/// The loader over a spooled file, `sink` seeing every staged and rejected line.
async fn run_loader<T: Loadable>(
    state: &AppState,
    auth: &Auth<Editor>,
    file: &Spooled,
    options: &LoadOptions,
    sink: &mut dyn ErrorSink,
) -> Result<LoadReport, ApiError> {
    let tenant = auth.tenant_id();
    let ctx = loader::ingest_context(&state.db, tenant, "csv").await?;
    let reader = file.reader().map_err(|e| {
        tracing::error!(error = %e, "cannot reopen the spool file of an upload");
        ApiError::internal()
    })?;
    let report = loader::load_csv::<T, _>(
        &state.db,
        tenant,
        options,
        ctx,
        reader,
        None,
        Some(sink.as_reject_sink()),
    )
    .await?;
    if let Some(reason) = &report.aborted {
        sink.kinds()
            .count(&[RowError::new(0, None, reason.clone())]);
    }
    Ok(report)
}

/// A [`RejectSink`] that also counts errors by kind.
trait ErrorSink: RejectSink {
    fn kinds(&mut self) -> &mut ErrorKinds;
    fn as_reject_sink(&mut self) -> &mut dyn RejectSink;
}

impl ErrorSink for ErrorKinds {
    fn kinds(&mut self) -> &mut ErrorKinds {
        self
    }
    fn as_reject_sink(&mut self) -> &mut dyn RejectSink {
        self
    }
}

impl ErrorSink for CheckSink {
    fn kinds(&mut self) -> &mut ErrorKinds {
        &mut self.kinds
    }
    fn as_reject_sink(&mut self) -> &mut dyn RejectSink {
        self
    }
}

/// One listed line of a check: its line and its errors (none = valid).
pub struct Verdict {
    pub line: u64,
    pub errors: Vec<RowError>,
}

/// What a check (or a load) found, bounded whatever the file: counts, the first lines and the
/// first [`MAX_LISTED_ERRORS`] errors, and every error counted by column.
pub struct CheckSummary {
    /// The header could not be used (nothing else was read).
    pub header_errors: Option<Vec<RowError>>,
    pub lines: u64,
    pub bad_lines: u64,
    pub error_count: u64,
    /// Lines dropped as exact copies of an earlier line (see `zixly_db::loader`).
    pub duplicates_ignored: u64,
    /// Every valid line among the first `listed_lines`, and lines with errors until
    /// [`MAX_LISTED_ERRORS`] errors are listed, in line order.
    pub listed: Vec<Verdict>,
    pub listed_errors: u64,
    pub kinds: ErrorKinds,
    /// The file could not be read to its end (a record over the size limit): the reason.
    pub read_failure: Option<String>,
}

impl CheckSummary {
    pub fn errors_not_listed(&self) -> u64 {
        self.error_count - self.listed_errors
    }

    /// Nothing wrong: every line valid and the file read to its end.
    pub fn is_clean(&self) -> bool {
        self.header_errors.is_none() && self.error_count == 0 && self.read_failure.is_none()
    }
}

/// Collects the bounded line-by-line view of a check or load from the loader's callbacks: valid
/// lines arrive as they are staged, errors as the parser or the checks after the COPY find them
/// (a line first staged can be rejected later, e.g. for a duplicate key).
pub struct CheckSink {
    listed_lines: usize,
    /// line -> its errors (empty: valid); at most `listed_lines` valid lines and
    /// [`MAX_LISTED_ERRORS`] errors.
    listed: BTreeMap<u64, Vec<RowError>>,
    valid_listed: usize,
    listed_errors: u64,
    kinds: ErrorKinds,
}

impl CheckSink {
    pub fn new(listed_lines: usize) -> Self {
        CheckSink {
            listed_lines,
            listed: BTreeMap::new(),
            valid_listed: 0,
            listed_errors: 0,
            kinds: ErrorKinds::default(),
        }
    }

    /// The summary of the load or dry run that fed this sink.
    pub fn summary(self, report: &LoadReport) -> CheckSummary {
        CheckSummary {
            header_errors: None,
            lines: report.rows_read,
            bad_lines: report.rejected,
            error_count: report.error_count,
            duplicates_ignored: report.duplicates_ignored,
            listed: self
                .listed
                .into_iter()
                .map(|(line, errors)| Verdict { line, errors })
                .collect(),
            listed_errors: self.listed_errors,
            kinds: self.kinds,
            read_failure: report.aborted.clone(),
        }
    }
}

impl RejectSink for CheckSink {
    fn staged(&mut self, line: u64) {
        if self.valid_listed < self.listed_lines {
            self.valid_listed += 1;
            self.listed.insert(line, Vec::new());
        }
    }

    fn rejected(&mut self, line: u64, errors: &[RowError]) {
        self.kinds.count(errors);
        let room = (MAX_LISTED_ERRORS as u64 - self.listed_errors) as usize;
        let shown: Vec<RowError> = errors.iter().take(room).cloned().collect();
        if shown.is_empty() {
            // No room left to say why, but a line shown as valid must not stay so.
            if self.listed.get(&line).is_some_and(Vec::is_empty) {
                self.listed.remove(&line);
            }
            return;
        }
        self.listed_errors += shown.len() as u64;
        self.listed.entry(line).or_default().extend(shown);
    }
}

/// The header of a spooled file, checked as the loader checks it (`CsvRows::new`): its errors,
/// if any. Reads only the first record.
fn header_errors<T: IngestRow>(
    file: &Spooled,
    ctx: IngestContext,
) -> Result<Option<Vec<RowError>>, ApiError> {
    let reader = file.reader().map_err(|e| {
        tracing::error!(error = %e, "cannot reopen the spool file of an upload");
        ApiError::internal()
    })?;
    Ok(CsvRows::<_, T>::new(reader, ctx).err())
}

fn header_summary(errors: Vec<RowError>) -> CheckSummary {
    let mut kinds = ErrorKinds::default();
    kinds.count(&errors);
    let count = errors.len() as u64;
    CheckSummary {
        header_errors: Some(errors),
        lines: 0,
        bad_lines: 0,
        error_count: count,
        duplicates_ignored: 0,
        listed: Vec::new(),
        listed_errors: count,
        kinds,
        read_failure: None,
    }
}

/// "Check file": the loader in dry-run mode over a spooled file — every check of a load (line
/// rules, exact duplicates, duplicate keys, exchange rates), nothing written, no `sync_runs`
/// row. The caller holds the run slot.
pub async fn check_spooled<T: Loadable>(
    state: &AppState,
    auth: &Auth<Editor>,
    file: &Spooled,
    listed_lines: usize,
) -> Result<CheckSummary, ApiError> {
    let ctx = loader::ingest_context(&state.db, auth.tenant_id(), "csv").await?;
    if let Some(errors) = header_errors::<T>(file, ctx)? {
        return Ok(header_summary(errors));
    }
    let options = LoadOptions {
        dry_run: true,
        file_name: file.file_name.clone(),
        ..LoadOptions::new("csv")
    };
    let mut sink = CheckSink::new(listed_lines);
    let report = run_loader::<T>(state, auth, file, &options, &mut sink).await?;
    Ok(sink.summary(&report))
}

/// "Load file": [`load_spooled`]'s load (atomic), with the same line-by-line view as a check.
pub async fn load_spooled_checked<T: Loadable>(
    state: &AppState,
    auth: &Auth<Editor>,
    file: &Spooled,
    listed_lines: usize,
) -> Result<(CheckSummary, Option<LoadReport>), ApiError> {
    let ctx = loader::ingest_context(&state.db, auth.tenant_id(), "csv").await?;
    if let Some(errors) = header_errors::<T>(file, ctx)? {
        return Ok((header_summary(errors), None));
    }
    let options = upload_options::<T>(auth, file.file_name.clone(), false);
    let mut sink = CheckSink::new(listed_lines);
    let report = run_loader::<T>(state, auth, file, &options, &mut sink).await?;
    Ok((sink.summary(&report), Some(report)))
}

/// How long a checked upload is kept for "Load this file".
pub const KEEP_CHECKED: Duration = Duration::from_secs(30 * 60);

/// Uploads kept after "Check file" so that "Load this file" loads exactly the bytes that were
/// checked, by a server-side token, without a second upload.
///
/// Why a token and not a re-post: a browser cannot have its file input filled in again by the
/// server, so a re-post means choosing the file again (maybe another one) and sending it again
/// (30 MB twice). The spooled file is already on disk; keeping it costs disk only, bounded: one
/// kept file per user (a new check replaces it), [`KEEP_CHECKED`] at most, and only the user who
/// checked it (same tenant) can load it.
#[derive(Default)]
pub struct CheckedUploads {
    kept: Mutex<HashMap<String, Kept>>,
}

struct Kept {
    tenant: Uuid,
    user: Uuid,
    dataset: String,
    file: Spooled,
    at: std::time::Instant,
}

impl CheckedUploads {
    /// Keeps `file` for `auth`'s user (replacing what that user had kept); returns its token.
    pub fn keep(&self, auth: &Auth<Editor>, dataset: &str, file: Spooled) -> String {
        // 128 random bits: the token is a capability for the kept file (with the user check).
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let token = hex::encode(bytes);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let user = auth.user_id();
        kept.retain(|_, k| k.at.elapsed() < KEEP_CHECKED && k.user != user);
        kept.insert(
            token.clone(),
            Kept {
                tenant: auth.tenant_id(),
                user,
                dataset: dataset.to_string(),
                file,
                at: std::time::Instant::now(),
            },
        );
        token
    }

    /// The file and dataset kept under `token` for `auth`'s user, removed from the store (it is
    /// loaded once). `None` when unknown, expired, or another user's.
    pub fn take(&self, auth: &Auth<Editor>, token: &str) -> Option<(String, Spooled)> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, k| k.at.elapsed() < KEEP_CHECKED);
        match kept.get(token) {
            Some(k) if k.tenant == auth.tenant_id() && k.user == auth.user_id() => {
                kept.remove(token).map(|k| (k.dataset, k.file))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tenant_slots_are_capped_per_tenant_and_released_on_drop() {
        let slots = Arc::new(ImportSlots::new(2, 4, Duration::from_millis(10)));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let a1 = slots.tenant_slot(a).unwrap();
        let _a2 = slots.tenant_slot(a).unwrap();
        let e = slots.tenant_slot(a).err().unwrap();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_imports")
        );
        let _b1 = slots.tenant_slot(b).unwrap();
        drop(a1);
        let _a3 = slots.tenant_slot(a).unwrap();
        drop(_a3);
        drop(_a2);
        assert!(
            !slots.tenants.lock().unwrap().contains_key(&a),
            "emptied entries are removed"
        );
    }

    #[tokio::test]
    async fn run_slots_are_capped_in_all_with_a_bounded_wait() {
        let slots = Arc::new(ImportSlots::new(8, 2, Duration::from_millis(50)));
        let t: Vec<TenantSlot> = (0..3)
            .map(|_| slots.tenant_slot(Uuid::now_v7()).unwrap())
            .collect();
        let p1 = t[0].run_slot().await.unwrap();
        let _p2 = t[1].run_slot().await.unwrap();
        let started = std::time::Instant::now();
        let e = t[2].run_slot().await.err().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::TOO_MANY_REQUESTS, "imports_busy")
        );
        // A slot freed during the wait is taken.
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move {
                let t = slots.tenant_slot(Uuid::now_v7()).unwrap();
                t.run_slot().await.map(|_| ())
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(p1);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[test]
    fn the_upload_limit_reads_in_binary_units() {
        assert_eq!(size_text(256 * 1024 * 1024), "256 MiB");
        assert_eq!(size_text(64 * 1024), "64 KiB");
        assert_eq!(size_text(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn error_kinds_count_by_column() {
        let mut k = ErrorKinds::default();
        for _ in 0..3 {
            k.count(&[
                RowError::new(2, Some("revenue"), "x"),
                RowError::new(2, None, "y"),
            ]);
        }
        k.count(&[RowError::new(9, Some("record_date"), "z")]);
        assert_eq!(
            k.describe(),
            "3 about the whole line, 3 in revenue, 1 in record_date"
        );
    }
}
