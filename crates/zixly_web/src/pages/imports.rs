//! `/imports`: upload a CSV and see, line by line, what the validation rules make of it — the
//! same rules every source goes through — then load it. EDITOR and up.
//!
//! "Check file" runs the loader in dry-run mode (`zixly_db::loader`, `LoadOptions::dry_run`):
//! every check "Load file" makes — the line rules, exact duplicate rows (collapsed), duplicate
//! keys, exchange rates — and nothing is written. The checked upload is kept on the server
//! (`crate::imports::CheckedUploads`), so the result offers "Load this file" without choosing and
//! sending the file again. "Load file" loads through the same code path as
//! `POST /api/v1/imports` (atomic, one `sync_runs` row and one `import.csv` audit row) and shows
//! the same line-by-line view with inserted / updated / unchanged.
//!
//! Both go through the upload action of the API (`crate::imports`): the same per-tenant and
//! server-wide import slots, the file streamed to a temporary file (size limit
//! `import_body_limit`, stated on the page; idle limit `import_idle_timeout`) before any
//! database work, and the same loader call. What is rendered is bounded whatever the file: the
//! first lines, at most [`MAX_LISTED_ERRORS`] errors, then "and K more: by column ...".
//!
//! Below the form: the import history (one line per `sync_runs` row of a file import, with a link
//! to each run's stored errors at `/imports/runs/{id}`) and a CSV template per dataset
//! (`GET /imports/template/{dataset}`).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use uuid::Uuid;
use zixly_db::loader::{duplicates_message, LoadReport, LoadStatus, Loadable};
use zixly_db::queries::dashboard::TenantProfile;
use zixly_db::queries::sync_runs::ImportRun;
use zixly_domain::ingest::{csv_template, CustomMetricRow, FinancialRow, LeadEventRow};
use zixly_domain::timezone::Tz;

use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{counted, page, PageError, PageUser};
use crate::auth::Editor;
use crate::imports::{self, size_text, CheckSummary, Spooled};
use crate::AppState;

/// Lines listed one by one (valid or not); beyond, only lines with errors, up to
/// [`MAX_LISTED_ERRORS`] errors.
const MAX_LISTED: usize = 500;

/// Imports listed in the history.
const HISTORY_ROWS: i64 = 20;

const DATASETS: &[(&str, &str, &str)] = &[
    ("financials", "Financials", "client_id, client_name, record_date, revenue, expenses, net_profit (optional), cash_flow, currency, source_system"),
    ("lead_events", "Lead events", "client_id, client_name, event_date, lead_id, stage, value, currency, status, source_system"),
    ("custom_metrics", "Custom metrics", "client_id, client_name, metric_name, metric_value, unit, record_date, source_system"),
];

fn form(csrf: &str, dataset: &str, limit: usize) -> Markup {
    html! {
        section class="card" aria-labelledby="up-title" {
            h2 id="up-title" { "Check a CSV file" }
            form method="post" action="/imports" enctype="multipart/form-data" {
                (csrf_input(csrf))
                div class="row" {
                    div class="field" style="min-width:180px" {
                        label for="dataset" { "Dataset" }
                        select id="dataset" name="dataset" {
                            @for (k, label, _) in DATASETS {
                                option value=(k) selected[*k == dataset] { (label) }
                            }
                        }
                    }
                    div class="field" style="flex:1;min-width:220px" {
                        label for="file" { "CSV file" }
                        input type="file" id="file" name="file" accept=".csv,text/csv" required
                            aria-describedby="file-limit";
                    }
                    div class="actions" {
                        button type="submit" name="action" value="check" { "Check file" }
                        button type="submit" name="action" value="load" class="secondary" { "Load file" }
                    }
                }
                p id="file-limit" class="muted small" data-upload-limit=(limit) {
                    "Files up to " (size_text(limit)) " (a 500,000-line file is about 30 MiB). "
                    "Exact copies of a line are loaded once."
                }
            }
            details class="small" style="margin-top:.75rem" {
                summary { "Expected columns and templates" }
                ul {
                    @for (k, label, cols) in DATASETS {
                        li {
                            b { (label) } ": " code { (cols) } " "
                            a href={ "/imports/template/" (k) } download data-template=(k) {
                                "Download the " (label.to_lowercase()) " template"
                            }
                        }
                    }
                }
                p class="muted" {
                    "Money: plain decimals with at most 2 places (" code { "1234.50" } "). Dates: "
                    code { "YYYY-MM-DD" }
                    ". Empty currency = the account's base currency. A file loads only when every \
                     line is valid; loading the same file again changes nothing."
                }
            }
        }
    }
}

/// The page around `parts` (the form, the flashes, the results), below the heading.
fn imports_page(
    user: &PageUser<Editor>,
    tenant: &TenantProfile,
    parts: Markup,
    history: &[ImportRun],
) -> Response {
    let zone = tenant.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let body = html! {
        (html::head(
            "Imports",
            "Upload a CSV file to see how every line reads, then load it.",
            html! {},
        ))
        (parts)
        (history_section(history, zone))
    };
    page(page_layout(
        "Imports",
        Nav::Imports,
        Some(&user.who(tenant)),
        body,
    ))
}

/// `2026-12-02 16:40` in the tenant's zone.
fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

fn who(run: &ImportRun) -> String {
    match (&run.triggered_by_email, run.triggered_by) {
        (Some(email), _) => email.clone(),
        (None, None) => "command line (zixly import)".into(),
        (None, Some(_)) => "a removed user".into(),
    }
}

fn history_section(history: &[ImportRun], zone: Tz) -> Markup {
    html! {
        section class="card" aria-labelledby="hist-title" {
            h2 id="hist-title" { "Import history" }
            @if history.is_empty() {
                p class="muted" { "No file has been imported yet." }
            } @else {
                div class="table-wrap" {
                    table data-table="import-history" {
                        thead { tr {
                            th scope="col" { "When" }
                            th scope="col" { "Who" }
                            th scope="col" { "File" }
                            th scope="col" { "Dataset" }
                            th scope="col" { "Status" }
                            th scope="col" class="num" { "Lines" }
                            th scope="col" class="num" { "Inserted" }
                            th scope="col" class="num" { "Updated" }
                            th scope="col" class="num" { "Unchanged" }
                            th scope="col" class="num" { "Rejected" }
                            th scope="col" { "Errors" }
                        } }
                        tbody {
                            @for h in history {
                                @let r = &h.run;
                                tr data-run=(r.id) data-run-status=(r.status) {
                                    td { time datetime=(r.started_at.to_rfc3339()) { (local_time(r.started_at, zone)) } }
                                    td { (who(h)) }
                                    td { (r.file_name.as_deref().unwrap_or("—")) }
                                    td { (r.dataset) }
                                    td { (r.status) }
                                    td class="num" { (r.rows_read) }
                                    td class="num" { (r.rows_inserted) }
                                    td class="num" { (r.rows_updated) }
                                    td class="num" { (r.rows_unchanged) }
                                    td class="num" { (r.rows_rejected) }
                                    td {
                                        @if r.error_count > 0 {
                                            a href={ "/imports/runs/" (r.id) } {
                                                (counted(r.error_count, "error", "errors"))
                                            }
                                        } @else {
                                            span class="muted" { "none" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn history(user: &PageUser<Editor>) -> Result<(TenantProfile, Vec<ImportRun>), PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let history = tx.import_history(HISTORY_ROWS).await?;
    tx.commit().await?;
    Ok((tenant, history))
}

pub async fn page_get(
    user: PageUser<Editor>,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let (tenant, history) = history(&user).await?;
    let form = form(&user.csrf, "financials", state.config.import_body_limit);
    Ok(imports_page(&user, &tenant, form, &history))
}

/// `GET /imports/template/{dataset}`: the header and one example row of a dataset, as a download.
pub async fn template(
    _user: PageUser<Editor>,
    Path(dataset): Path<String>,
) -> Result<Response, PageError> {
    let body = match dataset.as_str() {
        "financials" => csv_template::<FinancialRow>(),
        "lead_events" => csv_template::<LeadEventRow>(),
        "custom_metrics" => csv_template::<CustomMetricRow>(),
        _ => return Err(PageError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{dataset}-template.csv\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// `GET /imports/runs/{id}`: one import of the history with the errors stored with it (the
/// loader keeps the first 100 in `sync_runs.errors`).
pub async fn run_page(
    user: PageUser<Editor>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: Uuid = id.parse().map_err(|_| PageError::NotFound)?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let run = tx.import_run(id).await?.ok_or(PageError::NotFound)?;
    let history = tx.import_history(HISTORY_ROWS).await?;
    tx.commit().await?;
    let zone = tenant.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let errors: Vec<zixly_domain::ingest::RowError> =
        serde_json::from_value(run.run.errors.clone()).unwrap_or_default();
    let r = &run.run;
    let not_stored = (r.error_count as u64).saturating_sub(errors.len() as u64);
    let parts = html! {
        section class="card" aria-labelledby="run-title" data-run=(r.id) {
            h2 id="run-title" {
                "Import of " (r.file_name.as_deref().unwrap_or("a file")) " on " (local_time(r.started_at, zone))
            }
            p class="muted" {
                (r.dataset) ", " (r.status) ", by " (who(&run)) ": "
                (counted(r.rows_read, "line", "lines")) " read, " (r.rows_inserted) " inserted, "
                (r.rows_updated) " updated, " (r.rows_unchanged) " unchanged, "
                (r.rows_rejected) " rejected."
            }
            @if errors.is_empty() {
                p { "No errors were recorded." }
            } @else {
                div class="table-wrap" {
                    table data-table="run-errors" {
                        thead { tr {
                            th scope="col" class="num" { "Line" }
                            th scope="col" { "Details" }
                        } }
                        tbody {
                            @for e in &errors {
                                tr data-line=(e.line) { td class="num" { (e.line) } td { (e.to_string()) } }
                            }
                            @if not_stored > 0 {
                                tr { td colspan="2" class="muted" {
                                    "… and " (counted(not_stored as i64, "more error", "more errors"))
                                    " not stored (the first 100 are kept)."
                                } }
                            }
                        }
                    }
                }
            }
            p { a href="/imports" { "Back to imports" } }
        }
    };
    Ok(imports_page(&user, &tenant, parts, &history))
}

/// The form as posted: `_csrf` (checked before the file is read), `dataset`, `file` or `upload`
/// (the token of a checked file), `action` (the button, after the file in document order).
struct Posted {
    dataset: String,
    file: Option<Spooled>,
    upload: String,
    action: String,
}

/// Bytes of an upload over the limit that the page reads and discards before answering 413: a
/// browser that is still sending when the server answers and closes shows "connection reset"
/// instead of the error page. Beyond this, the connection is closed anyway.
const DRAIN_OVER_LIMIT: u64 = 512 * 1024 * 1024;

async fn read_form(
    user: &PageUser<Editor>,
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Posted, PageError> {
    let mut multipart = imports::open_multipart(multipart)?;
    let idle = state.config.import_idle_timeout;
    let mut csrf_checked = false;
    let mut posted = Posted {
        dataset: String::new(),
        file: None,
        upload: String::new(),
        action: String::new(),
    };
    while let Some(field) = imports::next_field(&mut multipart, idle).await? {
        match field.name().unwrap_or_default() {
            "_csrf" => {
                user.check_csrf(&imports::text_field(field, "_csrf", idle).await?)?;
                csrf_checked = true;
            }
            "dataset" => posted.dataset = imports::text_field(field, "dataset", idle).await?,
            "action" => posted.action = imports::text_field(field, "action", idle).await?,
            "upload" => posted.upload = imports::text_field(field, "upload", idle).await?,
            "file" if posted.file.is_none() => {
                // Nothing of a cross-site post is stored, not even in a temporary file.
                if !csrf_checked {
                    return Err(PageError::Csrf);
                }
                let limit = state.config.import_body_limit;
                match imports::spool_draining(field, limit, idle, DRAIN_OVER_LIMIT).await {
                    Ok(file) => posted.file = Some(file),
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {} // skipped unread by the next `next_field`
        }
    }
    if !csrf_checked {
        return Err(PageError::Csrf);
    }
    Ok(posted)
}

pub async fn page_post(
    user: PageUser<Editor>,
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    // Before any byte of the body is read (see `crate::imports`).
    let slot = state.imports.tenant_slot(user.auth.tenant_id())?;
    let posted = read_form(&user, &state, multipart).await?;
    let limit = state.config.import_body_limit;
    let wants_load = posted.action == "load";

    // "Load this file": the upload kept by a check.
    let (dataset, file, from_check) = match posted.file.filter(|f| f.len > 0) {
        Some(file) => (posted.dataset, file, false),
        None if wants_load && !posted.upload.is_empty() => {
            match state.checked_uploads.take(&user.auth, &posted.upload) {
                Some((dataset, file)) => (dataset, file, true),
                None => {
                    let (tenant, history) = history(&user).await?;
                    let parts = html! {
                        (form(&user.csrf, &posted.dataset, limit))
                        (flash_box("err", "The checked file is no longer kept on the server (files are kept for 30 minutes, and only the latest check of each user): choose it again."))
                    };
                    return Ok(imports_page(&user, &tenant, parts, &history));
                }
            }
        }
        None => {
            let (tenant, history) = history(&user).await?;
            let parts = html! {
                (form(&user.csrf, &posted.dataset, limit))
                (flash_box("err", "Choose a CSV file to check."))
            };
            return Ok(imports_page(&user, &tenant, parts, &history));
        }
    };
    let dataset = match dataset.as_str() {
        "lead_events" | "custom_metrics" => dataset,
        _ => "financials".to_string(),
    };
    let name = file
        .file_name
        .clone()
        .unwrap_or_else(|| "upload.csv".to_string());
    let _run = slot.run_slot().await?;
    let outcome = if wants_load {
        let (summary, report) = match dataset.as_str() {
            "lead_events" => load::<LeadEventRow>(&state, &user, &file).await?,
            "custom_metrics" => load::<CustomMetricRow>(&state, &user, &file).await?,
            _ => load::<FinancialRow>(&state, &user, &file).await?,
        };
        let loaded = match &report {
            Some(r) if r.status != LoadStatus::Failed => load_section(&name, r),
            Some(LoadReport {
                aborted: Some(reason),
                ..
            }) => flash_box("err", &format!("Nothing was loaded: {reason}.")),
            _ => flash_box(
                "err",
                "Nothing was loaded: the file has lines with errors (listed below).",
            ),
        };
        html! {
            (loaded)
            @if from_check {
                p class="muted small" { "Loaded the file checked before: " (name) "." }
            }
            (result_section(&name, &summary))
        }
    } else {
        let summary = match dataset.as_str() {
            "lead_events" => check::<LeadEventRow>(&state, &user, &file).await?,
            "custom_metrics" => check::<CustomMetricRow>(&state, &user, &file).await?,
            _ => check::<FinancialRow>(&state, &user, &file).await?,
        };
        let offer = summary.is_clean().then(|| {
            let token = state.checked_uploads.keep(&user.auth, &dataset, file);
            load_this_file(&user.csrf, &token, &name)
        });
        html! {
            (result_section(&name, &summary))
            @if let Some(offer) = offer { (offer) }
        }
    };
    let (tenant, history) = history(&user).await?;
    let parts = html! {
        (form(&user.csrf, &dataset, limit))
        (outcome)
    };
    Ok(imports_page(&user, &tenant, parts, &history))
}

fn result_section(name: &str, summary: &CheckSummary) -> Markup {
    html! {
        section class="card" aria-labelledby="res-title" {
            h2 id="res-title" { "Result for " (name) }
            (render_check(summary))
        }
    }
}

/// After a clean check: load the very file that was checked (kept on the server, by token).
fn load_this_file(csrf: &str, token: &str, name: &str) -> Markup {
    html! {
        section class="card" aria-labelledby="load-this-title" {
            h2 id="load-this-title" { "Load " (name) }
            form method="post" action="/imports" enctype="multipart/form-data" {
                (csrf_input(csrf))
                input type="hidden" name="upload" value=(token);
                p class="muted small" {
                    "Every line is valid. The checked file is kept on the server for 30 minutes: \
                     load it without choosing it again."
                }
                div class="actions" {
                    button type="submit" name="action" value="load" { "Load this file" }
                }
            }
        }
    }
}

async fn check<T: Loadable>(
    state: &AppState,
    user: &PageUser<Editor>,
    file: &Spooled,
) -> Result<CheckSummary, PageError> {
    Ok(imports::check_spooled::<T>(state, &user.auth, file, MAX_LISTED).await?)
}

/// Loads a file through the API's upload action (atomic: all lines or none), with the check's
/// line-by-line view of the same run.
async fn load<T: Loadable>(
    state: &AppState,
    user: &PageUser<Editor>,
    file: &Spooled,
) -> Result<(CheckSummary, Option<LoadReport>), PageError> {
    Ok(imports::load_spooled_checked::<T>(state, &user.auth, file, MAX_LISTED).await?)
}

/// "and K more errors: 1200 in revenue, ..." after a capped list.
fn more_errors(not_listed: u64, kinds: &imports::ErrorKinds) -> String {
    format!(
        "… and {not_listed} more errors not listed. All errors by column: {}.",
        kinds.describe()
    )
}

fn render_check(result: &CheckSummary) -> Markup {
    if let Some(header_errors) = &result.header_errors {
        return html! {
            (flash_box("err", "The header line cannot be used, so no line was read."))
            div class="table-wrap" {
                table data-table="import" {
                    thead { tr { th scope="col" { "Line" } th scope="col" { "Result" } } }
                    tbody {
                        @for e in header_errors {
                            tr data-line=(e.line) { td class="num" { (e.line) } td { (e.to_string()) } }
                        }
                    }
                }
            }
        };
    }
    let good = result
        .lines
        .saturating_sub(result.bad_lines + result.duplicates_ignored);
    let duplicates = duplicates_message(result.duplicates_ignored).map_or_else(String::new, |m| {
        format!(" {m}: an exact copy of an earlier line is loaded once.")
    });
    let summary = format!(
        "{} read: {good} valid, {} with errors.{duplicates}",
        counted(result.lines as i64, "line", "lines"),
        result.bad_lines
    );
    let clean = result.bad_lines == 0 && result.read_failure.is_none();
    let not_listed = result.errors_not_listed();
    html! {
        div data-check-summary data-duplicates-ignored=(result.duplicates_ignored) {
            (flash_box(if clean { "ok" } else { "err" }, &summary))
        }
        @if let Some(reason) = &result.read_failure {
            (flash_box(
                "err",
                &format!("The file could not be read to its end: {reason}. Nothing after it was checked."),
            ))
        }
        @if result.bad_lines > 0 {
            p class="muted small" {
                "Fix the lines below and check the file again; a file loads only when every line is valid."
            }
        }
        div class="table-wrap" {
            table data-table="import" {
                thead { tr {
                    th scope="col" class="num" { "Line" }
                    th scope="col" { "Status" }
                    th scope="col" { "Details" }
                } }
                tbody {
                    @for v in &result.listed {
                        tr data-line=(v.line) {
                            td class="num" { (v.line) }
                            @if v.errors.is_empty() {
                                td { span class="status valid" { "OK" } }
                                td class="muted" { "valid" }
                            } @else {
                                td { span class="status invalid" { "Error" } }
                                td {
                                    @for (i, e) in v.errors.iter().enumerate() {
                                        @if i > 0 { br; }
                                        (e.to_string())
                                    }
                                }
                            }
                        }
                    }
                    @if result.lines > MAX_LISTED as u64 {
                        tr { td colspan="3" class="muted" {
                            "Valid lines after the first " (MAX_LISTED) " are not listed."
                        } }
                    }
                    @if not_listed > 0 {
                        tr data-more-errors=(not_listed) {
                            td colspan="3" class="muted" { (more_errors(not_listed, &result.kinds)) }
                        }
                    }
                }
            }
        }
    }
}

/// What a load that wrote its rows did: the counts.
fn load_section(name: &str, r: &LoadReport) -> Markup {
    let duplicates = r
        .duplicates_message()
        .map_or_else(String::new, |m| format!(" {m}."));
    html! {
        section class="card" aria-labelledby="load-title" data-load-status=(r.status.as_str()) {
            h2 id="load-title" { "Load of " (name) }
            (flash_box("ok", &format!(
                "Loaded {}: {} inserted, {} updated, {} unchanged.{duplicates}",
                counted((r.rows_read - r.duplicates_ignored - r.rejected) as i64, "line", "lines"),
                r.inserted, r.updated, r.unchanged
            )))
            dl class="load-counts" {
                div { dt { "Inserted" } dd data-count="inserted" { (r.inserted) } }
                div { dt { "Updated" } dd data-count="updated" { (r.updated) } }
                div { dt { "Unchanged" } dd data-count="unchanged" { (r.unchanged) } }
                div { dt { "New clients" } dd data-count="clients" { (r.clients_inserted) } }
                div { dt { "Duplicates ignored" } dd data-count="duplicates" { (r.duplicates_ignored) } }
            }
            @if r.before_retention > 0 {
                (flash_box("info", &format!(
                    "{} not stored: dated before the start of this workspace's day-level data,                      where data retention keeps monthly totals only (Settings, Data).",
                    counted(r.before_retention as i64, "line was", "lines were"),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::{CheckSink, MAX_LISTED_ERRORS};
    use zixly_db::loader::RejectSink;
    use zixly_domain::ingest::{CsvRows, IngestContext};
    use zixly_domain::CurrencyCode;

    fn ctx() -> IngestContext {
        IngestContext {
            time_zone: Tz::UTC,
            base_currency: CurrencyCode::AUD,
            default_source_system: "csv".into(),
        }
    }

    fn report(rows_read: u64, rejected: u64, error_count: u64, duplicates: u64) -> LoadReport {
        LoadReport {
            sync_run_id: uuid::Uuid::nil(),
            dataset: "financials",
            status: LoadStatus::Failed,
            rows_read,
            duplicates_ignored: duplicates,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            before_retention: 0,
            rejected,
            error_count,
            errors: Vec::new(),
            aborted: None,
            clients_inserted: 0,
            clients_updated: 0,
            duration: std::time::Duration::ZERO,
        }
    }

    /// Feeds a sink as the loader does while streaming (parse errors and staged lines).
    fn check_without_db(csv: &[u8]) -> CheckSummary {
        let mut sink = CheckSink::new(MAX_LISTED);
        let (mut read, mut bad, mut errors) = (0, 0, 0);
        for item in CsvRows::<_, FinancialRow>::new(csv, ctx()).unwrap() {
            read += 1;
            match item {
                Ok(v) => sink.staged(v.line),
                Err(e) => {
                    bad += 1;
                    errors += e.len() as u64;
                    sink.rejected(e[0].line, &e);
                }
            }
        }
        sink.summary(&report(read, bad, errors, 0))
    }

    #[test]
    fn a_bad_money_value_is_reported_on_its_line() {
        let csv = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nA,Acme,2025-01-01,1.00,0,1\nA,Acme,2025-01-02,12.345,0,1\n";
        let v = check_without_db(&csv[..]);
        assert_eq!((v.lines, v.bad_lines), (2, 1));
        assert!(v.listed[0].errors.is_empty());
        assert_eq!(v.listed[1].line, 3);
        assert_eq!(v.listed[1].errors[0].column.as_deref(), Some("revenue"));
    }

    #[test]
    fn a_line_staged_as_valid_then_rejected_by_a_check_is_shown_with_its_error() {
        let mut sink = CheckSink::new(MAX_LISTED);
        sink.staged(2);
        sink.staged(3);
        let dup = zixly_domain::ingest::RowError::new(3, None, "duplicate key");
        sink.rejected(3, std::slice::from_ref(&dup));
        let v = sink.summary(&report(2, 1, 1, 0));
        assert_eq!(v.listed.len(), 2);
        assert!(v.listed[0].errors.is_empty());
        assert_eq!(v.listed[1].errors, [dup]);
    }

    #[test]
    fn duplicates_are_reported_with_the_right_plural() {
        let one =
            render_check(&CheckSink::new(MAX_LISTED).summary(&report(3, 0, 0, 1))).into_string();
        assert!(
            one.contains("3 lines read: 2 valid, 0 with errors. 1 duplicate row ignored"),
            "{one}"
        );
        let two =
            render_check(&CheckSink::new(MAX_LISTED).summary(&report(1, 0, 0, 2))).into_string();
        assert!(two.contains("1 line read:"), "{two}");
        assert!(two.contains("2 duplicate rows ignored"), "{two}");
    }

    #[test]
    fn a_check_of_many_bad_lines_renders_a_bounded_page() {
        // 20,000 junk lines of 3 errors each: at most MAX_LISTED_ERRORS are rendered.
        let mut csv =
            String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
        for _ in 0..20_000 {
            csv.push_str("A,Acme,junk,junk,0,junk\n");
        }
        let v = check_without_db(csv.as_bytes());
        assert_eq!(
            (v.lines, v.bad_lines, v.error_count),
            (20_000, 20_000, 60_000)
        );
        assert_eq!(v.listed_errors, MAX_LISTED_ERRORS as u64);
        let body = render_check(&v).into_string();
        assert!(body.len() < 64 * 1024, "{} bytes", body.len());
        assert_eq!(
            body.matches("status invalid").count(),
            34,
            "100 errors on 34 lines"
        );
        assert!(
            body.contains("… and 59900 more errors not listed. All errors by column: 20000 in cash_flow, 20000 in record_date, 20000 in revenue."),
            "{body}"
        );
    }

    #[test]
    fn a_file_name_renders_as_text() {
        // The name comes from the multipart header: maud escapes it.
        let mut r = report(1, 0, 0, 0);
        r.status = LoadStatus::Succeeded;
        let body = load_section("<img src=x>.csv", &r).into_string();
        assert!(body.contains("Load of &lt;img src=x&gt;.csv"), "{body}");
        assert!(!body.contains("<img"), "{body}");
        assert!(body.contains(r#"data-load-status="succeeded""#), "{body}");
    }
}
