//! `/imports`: upload a CSV and see, line by line, what the validation rules make of it — the
//! same rules every source goes through (`zixly_domain::ingest`) — then load it. EDITOR and up.
//!
//! "Check file" only reads. "Load file" checks the same way and, when every line is valid, loads
//! the file through the same code path as `POST /api/v1/imports` (`zixly_db::loader`, atomic, one
//! `sync_runs` row and one `import.csv` audit row), then shows inserted / updated / unchanged. The
//! loader's own checks (duplicate keys in the file, exchange rates) can still refuse it; their
//! errors are listed by line and nothing is written.
//!
//! Both go through the upload action of the API (`crate::imports`): the same per-tenant and
//! server-wide import slots, the file spooled to a temporary file (size limit
//! `import_body_limit`, idle limit `import_idle_timeout`) before any database work, and the same
//! loader call. What is rendered is bounded whatever the file: the first lines, at most
//! [`MAX_LISTED_ERRORS`] errors, then "and K more: by column ...".

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::Response;
use maud::{html, Markup};
use zixly_db::loader::{LoadReport, LoadStatus, Loadable};
use zixly_db::queries::dashboard::TenantProfile;
use zixly_domain::ingest::{CustomMetricRow, FinancialRow, IngestContext, LeadEventRow};
use zixly_domain::timezone::Tz;
use zixly_domain::CurrencyCode;

use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{page, PageError, PageUser};
use crate::auth::Editor;
use crate::imports::{self, check_spooled, CheckSummary, ErrorKinds, Spooled, MAX_LISTED_ERRORS};
use crate::AppState;

/// Lines listed one by one (valid or not); beyond, only lines with errors, up to
/// [`MAX_LISTED_ERRORS`] errors.
const MAX_LISTED: usize = 500;

const DATASETS: &[(&str, &str, &str)] = &[
    ("financials", "Financials", "client_id, client_name, record_date, revenue, expenses, net_profit (optional), cash_flow, currency, source_system"),
    ("lead_events", "Lead events", "client_id, client_name, event_date, lead_id, stage, value, currency, status, source_system"),
    ("custom_metrics", "Custom metrics", "client_id, client_name, metric_name, metric_value, unit, record_date, source_system"),
];

fn form(csrf: &str, dataset: &str) -> Markup {
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
                        input type="file" id="file" name="file" accept=".csv,text/csv" required;
                    }
                    div class="actions" {
                        button type="submit" name="action" value="check" { "Check file" }
                        button type="submit" name="action" value="load" class="secondary" { "Load file" }
                    }
                }
            }
            details class="small" style="margin-top:.75rem" {
                summary { "Expected columns" }
                ul {
                    @for (_, label, cols) in DATASETS {
                        li { b { (label) } ": " code { (cols) } }
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
fn imports_page(user: &PageUser<Editor>, tenant: &TenantProfile, parts: Markup) -> Response {
    let body = html! {
        (html::head(
            "Imports",
            "Upload a CSV file to see how every line reads, then load it.",
            html! {},
        ))
        (parts)
    };
    page(page_layout(
        "Imports",
        Nav::Imports,
        Some(&user.who(tenant)),
        body,
    ))
}

pub async fn page_get(user: PageUser<Editor>) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    Ok(imports_page(&user, &tenant, form(&user.csrf, "financials")))
}

/// The form as posted: `_csrf` (checked before the file is read), `dataset`, `file`, `action`
/// (the button, after the file in document order).
struct Posted {
    dataset: String,
    file: Option<Spooled>,
    action: String,
}

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
            "file" if posted.file.is_none() => {
                // Nothing of a cross-site post is stored, not even in a temporary file.
                if !csrf_checked {
                    return Err(PageError::Csrf);
                }
                posted.file =
                    Some(imports::spool(field, state.config.import_body_limit, idle).await?);
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
    let dataset = posted.dataset.as_str();

    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let ctx = IngestContext {
        time_zone: tenant.time_zone.parse::<Tz>().unwrap_or(Tz::UTC),
        base_currency: tenant.base_currency.parse().unwrap_or(CurrencyCode::AUD),
        default_source_system: "csv".into(),
    };
    let wants_load = posted.action == "load";
    let form = form(&user.csrf, dataset);

    let Some(file) = posted.file.filter(|f| f.len > 0) else {
        let parts = html! { (form) (flash_box("err", "Choose a CSV file to check.")) };
        return Ok(imports_page(&user, &tenant, parts));
    };
    let _run = slot.run_slot().await?;
    let result = match dataset {
        "lead_events" => check_spooled::<LeadEventRow>(&file, ctx, MAX_LISTED).await?,
        "custom_metrics" => check_spooled::<CustomMetricRow>(&file, ctx, MAX_LISTED).await?,
        _ => check_spooled::<FinancialRow>(&file, ctx, MAX_LISTED).await?,
    };
    let name = file.file_name.as_deref().unwrap_or("upload.csv");
    let loaded = if wants_load {
        if result.error_count == 0 {
            let (report, kinds) = match dataset {
                "lead_events" => load::<LeadEventRow>(&state, &user, &file).await?,
                "custom_metrics" => load::<CustomMetricRow>(&state, &user, &file).await?,
                _ => load::<FinancialRow>(&state, &user, &file).await?,
            };
            load_section(name, &report, &kinds)
        } else {
            flash_box(
                "err",
                "Nothing was loaded: the file has lines with errors (listed below).",
            )
        }
    } else {
        html! {}
    };
    let parts = html! {
        (form)
        (loaded)
        section class="card" aria-labelledby="res-title" {
            h2 id="res-title" { "Result for " (name) }
            (render_check(&result))
        }
    };
    Ok(imports_page(&user, &tenant, parts))
}

/// "and K more errors: 1200 in revenue, ..." after a capped list.
fn more_errors(not_listed: u64, kinds: &ErrorKinds) -> String {
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
    let good = result.lines - result.bad_lines;
    let summary = format!(
        "{} lines read: {good} valid, {} with errors.",
        result.lines, result.bad_lines
    );
    let clean = result.bad_lines == 0 && result.read_failure.is_none();
    let not_listed = result.errors_not_listed();
    html! {
        (flash_box(if clean { "ok" } else { "err" }, &summary))
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

/// Loads a checked file through the API's upload action (atomic: all lines or none).
async fn load<T: Loadable>(
    state: &AppState,
    user: &PageUser<Editor>,
    file: &Spooled,
) -> Result<(LoadReport, ErrorKinds), PageError> {
    Ok(imports::load_spooled::<T>(state, &user.auth, file, false).await?)
}

/// What a load did: counts, or why nothing was written.
fn load_section(name: &str, r: &LoadReport, kinds: &ErrorKinds) -> Markup {
    let failed = r.status == LoadStatus::Failed;
    let why = match &r.aborted {
        Some(reason) => format!("Nothing was loaded: {reason}."),
        None => format!(
            "Nothing was loaded: {} lines were refused when loading.",
            r.rejected
        ),
    };
    let not_listed = r
        .error_count
        .saturating_sub(r.errors.len().min(MAX_LISTED_ERRORS) as u64);
    html! {
        section class="card" aria-labelledby="load-title" data-load-status=(r.status.as_str()) {
            h2 id="load-title" { "Load of " (name) }
            @if failed {
                (flash_box("err", &why))
                @if !r.errors.is_empty() {
                    div class="table-wrap" {
                        table data-table="load-errors" {
                            thead { tr {
                                th scope="col" class="num" { "Line" }
                                th scope="col" { "Details" }
                            } }
                            tbody {
                                // The loader keeps its first 100 errors: at most that many rows.
                                @for e in r.errors.iter().take(MAX_LISTED_ERRORS) {
                                    tr data-load-line=(e.line) {
                                        td class="num" { (e.line) }
                                        td { (e.to_string()) }
                                    }
                                }
                                @if not_listed > 0 {
                                    tr data-more-errors=(not_listed) {
                                        td colspan="2" class="muted" { (more_errors(not_listed, kinds)) }
                                    }
                                }
                            }
                        }
                    }
                }
            } @else {
                (flash_box("ok", &format!(
                    "Loaded {} lines: {} inserted, {} updated, {} unchanged.",
                    r.rows_read, r.inserted, r.updated, r.unchanged
                )))
                dl class="load-counts" {
                    div { dt { "Inserted" } dd data-count="inserted" { (r.inserted) } }
                    div { dt { "Updated" } dd data-count="updated" { (r.updated) } }
                    div { dt { "Unchanged" } dd data-count="unchanged" { (r.unchanged) } }
                    div { dt { "New clients" } dd data-count="clients" { (r.clients_inserted) } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::check;

    fn ctx() -> IngestContext {
        IngestContext {
            time_zone: Tz::UTC,
            base_currency: CurrencyCode::AUD,
            default_source_system: "csv".into(),
        }
    }

    #[test]
    fn a_bad_money_value_is_reported_on_its_line() {
        let csv = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nA,Acme,2025-01-01,1.00,0,1\nA,Acme,2025-01-02,12.345,0,1\n";
        let v = check::<FinancialRow, _>(&csv[..], ctx(), MAX_LISTED);
        assert_eq!((v.lines, v.bad_lines), (2, 1));
        assert!(v.listed[0].errors.is_empty());
        assert_eq!(v.listed[1].line, 3);
        assert_eq!(v.listed[1].errors[0].column.as_deref(), Some("revenue"));
    }

    #[test]
    fn a_check_of_many_bad_lines_renders_a_bounded_page() {
        // 20,000 junk lines of 3 errors each: at most MAX_LISTED_ERRORS are rendered.
        let mut csv =
            String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
        for _ in 0..20_000 {
            csv.push_str("A,Acme,junk,junk,0,junk\n");
        }
        let v = check::<FinancialRow, _>(csv.as_bytes(), ctx(), MAX_LISTED);
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
    fn a_file_name_and_a_load_failure_render_as_text() {
        // Both come from the upload (the name from the multipart header, the reason can quote
        // the file): maud escapes them, no markup of theirs reaches the page.
        let report = LoadReport {
            sync_run_id: uuid::Uuid::nil(),
            dataset: "financials",
            status: LoadStatus::Failed,
            rows_read: 1,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            rejected: 0,
            error_count: 0,
            errors: Vec::new(),
            aborted: Some("bad byte <script>".into()),
            clients_inserted: 0,
            clients_updated: 0,
            duration: std::time::Duration::ZERO,
        };
        let body = load_section("<img src=x>.csv", &report, &ErrorKinds::default()).into_string();
        assert!(body.contains("Load of &lt;img src=x&gt;.csv"), "{body}");
        assert!(
            body.contains("Nothing was loaded: bad byte &lt;script&gt;."),
            "{body}"
        );
        assert!(
            !body.contains("<img") && !body.contains("<script"),
            "{body}"
        );
        assert!(body.contains(r#"data-load-status="failed""#), "{body}");
    }
}
