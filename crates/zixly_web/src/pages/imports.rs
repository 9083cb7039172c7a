//! `/imports`: upload a CSV and see, line by line, what the validation rules make of it — the
//! same rules every source goes through (`zixly_domain::ingest`) — then load it. EDITOR and up.
//!
//! "Check file" only reads. "Load file" checks the same way and, when every line is valid, loads
//! the file through the same code path as `POST /api/v1/imports` (`zixly_db::loader`, atomic, one
//! `sync_runs` row and one `import.csv` audit row), then shows inserted / updated / unchanged. The
//! loader's own checks (duplicate keys in the file, exchange rates) can still refuse it; their
//! errors are listed by line and nothing is written.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use zixly_db::loader::{self, LoadReport, LoadStatus, Loadable};
use zixly_domain::ingest::{
    CsvRows, CustomMetricRow, FinancialRow, IngestContext, IngestRow, LeadEventRow, RowError,
};
use zixly_domain::timezone::Tz;
use zixly_domain::CurrencyCode;

use super::html::{self, csrf_field, esc, layout, Nav};
use super::{page, PageError, PageUser};
use crate::api::imports::upload_options;
use crate::auth::Editor;
use crate::AppState;

/// Upload limit of the page (the body is held in memory while it is checked).
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;
/// Lines listed one by one; beyond, only the errors are.
const MAX_LISTED: usize = 500;

const DATASETS: &[(&str, &str, &str)] = &[
    ("financials", "Financials", "client_id, client_name, record_date, revenue, expenses, net_profit (optional), cash_flow, currency, source_system"),
    ("lead_events", "Lead events", "client_id, client_name, event_date, lead_id, stage, value, currency, status, source_system"),
    ("custom_metrics", "Custom metrics", "client_id, client_name, metric_name, metric_value, unit, record_date, source_system"),
];

fn form(csrf: &str, dataset: &str) -> String {
    let mut options = String::new();
    for (k, label, _) in DATASETS {
        let sel = if *k == dataset { " selected" } else { "" };
        let _ = write!(options, r#"<option value="{k}"{sel}>{label}</option>"#);
    }
    let mut help = String::new();
    for (_, label, cols) in DATASETS {
        let _ = write!(help, "<li><b>{label}</b>: <code>{cols}</code></li>");
    }
    format!(
        r#"<section class="card" aria-labelledby="up-title"><h2 id="up-title">Check a CSV file</h2>
<form method="post" action="/imports" enctype="multipart/form-data">{csrf}
<div class="row"><div class="field" style="min-width:180px"><label for="dataset">Dataset</label><select id="dataset" name="dataset">{options}</select></div>
<div class="field" style="flex:1;min-width:220px"><label for="file">CSV file</label><input type="file" id="file" name="file" accept=".csv,text/csv" required></div>
<div class="actions"><button type="submit" name="action" value="check">Check file</button><button type="submit" name="action" value="load" class="secondary">Load file</button></div></div></form>
<details class="small" style="margin-top:.75rem"><summary>Expected columns</summary><ul>{help}</ul><p class="muted">Money: plain decimals with at most 2 places (<code>1234.50</code>). Dates: <code>YYYY-MM-DD</code>. Empty currency = the account's base currency. A file loads only when every line is valid; loading the same file again changes nothing.</p></details></section>"#,
        csrf = csrf_field(csrf),
    )
}

pub async fn page_get(user: PageUser<Editor>) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let body = format!(
        "{}{}",
        html::page_head(
            "Imports",
            "Upload a CSV file to see how every line reads, then load it.",
            ""
        ),
        form(&user.csrf, "financials")
    );
    Ok(page(layout(
        "Imports",
        Nav::Imports,
        Some(&user.who(&tenant)),
        &body,
    )))
}

/// One part of a form: name, file name, bytes.
type Part = (String, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body: (name, filename, bytes). Small and strict: enough
/// for this page's one form.
fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut pos = find(body, d, 0)? + d.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        pos += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = std::str::from_utf8(&body[pos..head_end]).ok()?;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), head_end + 4)?;
        let data = body[head_end + 4..next].to_vec();
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(&format!("{key}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        parts.push((param("name")?, param("filename"), data));
        pos = next + 2 + d.len();
    }
    Some(parts)
}

/// One line's verdict.
struct Verdict {
    line: u64,
    errors: Vec<RowError>,
}

fn check<T: IngestRow>(bytes: &[u8], ctx: IngestContext) -> Result<Vec<Verdict>, Vec<RowError>> {
    let rows = CsvRows::<_, T>::new(bytes, ctx)?;
    Ok(rows
        .map(|r| match r {
            Ok(v) => Verdict {
                line: v.line,
                errors: vec![],
            },
            Err(errors) => Verdict {
                line: errors.first().map_or(0, |e| e.line),
                errors,
            },
        })
        .collect())
}

pub async fn page_post(
    user: PageUser<Editor>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = multipart(content_type, &body).unwrap_or_default();
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.0 == name)
            .map(|p| String::from_utf8_lossy(&p.2).into_owned())
            .unwrap_or_default()
    };
    user.check_csrf(&text("_csrf"))?;
    let dataset = text("dataset");
    let file = parts.iter().find(|p| p.0 == "file");

    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let ctx = IngestContext {
        time_zone: tenant.time_zone.parse::<Tz>().unwrap_or(Tz::UTC),
        base_currency: tenant.base_currency.parse().unwrap_or(CurrencyCode::AUD),
        default_source_system: "csv".into(),
    };
    let mut body = html::page_head(
        "Imports",
        "Upload a CSV file to see how every line reads, then load it.",
        "",
    );
    let wants_load = text("action") == "load";
    body.push_str(&form(&user.csrf, &dataset));

    let Some((_, filename, bytes)) = file.filter(|f| !f.2.is_empty()) else {
        body.push_str(&html::flash("err", "Choose a CSV file to check."));
        return Ok(page(layout(
            "Imports",
            Nav::Imports,
            Some(&user.who(&tenant)),
            &body,
        )));
    };
    let result = match dataset.as_str() {
        "lead_events" => check::<LeadEventRow>(bytes, ctx.clone()),
        "custom_metrics" => check::<CustomMetricRow>(bytes, ctx.clone()),
        _ => check::<FinancialRow>(bytes, ctx.clone()),
    };
    let name = filename.as_deref().unwrap_or("upload.csv");
    if wants_load {
        let all_valid = matches!(&result, Ok(v) if v.iter().all(|v| v.errors.is_empty()));
        if all_valid {
            let file_name = Some(name.to_string());
            let input = std::io::Cursor::new(bytes.clone());
            let db = &state.db;
            let report = match dataset.as_str() {
                "lead_events" => load::<LeadEventRow>(&user, db, file_name, ctx, input).await?,
                "custom_metrics" => {
                    load::<CustomMetricRow>(&user, db, file_name, ctx, input).await?
                }
                _ => load::<FinancialRow>(&user, db, file_name, ctx, input).await?,
            };
            body.push_str(&load_section(name, &report));
        } else {
            body.push_str(&html::flash(
                "err",
                "Nothing was loaded: the file has lines with errors (listed below).",
            ));
        }
    }
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="res-title"><h2 id="res-title">Result for {}</h2>"#,
        esc(name)
    );
    match result {
        Err(header_errors) => {
            body.push_str(&html::flash(
                "err",
                "The header line cannot be used, so no line was read.",
            ));
            body.push_str(r#"<div class="table-wrap"><table data-table="import"><thead><tr><th scope="col">Line</th><th scope="col">Result</th></tr></thead><tbody>"#);
            for e in header_errors {
                let _ = write!(
                    body,
                    r#"<tr data-line="{}"><td class="num">{}</td><td>{}</td></tr>"#,
                    e.line,
                    e.line,
                    esc(&e.to_string())
                );
            }
            body.push_str("</tbody></table></div>");
        }
        Ok(verdicts) => {
            let bad = verdicts.iter().filter(|v| !v.errors.is_empty()).count();
            let good = verdicts.len() - bad;
            let summary = format!(
                "{} lines read: {good} valid, {bad} with errors.",
                verdicts.len()
            );
            body.push_str(&html::flash(if bad == 0 { "ok" } else { "err" }, &summary));
            if bad > 0 {
                body.push_str(r#"<p class="muted small">Fix the lines below and check the file again; a file loads only when every line is valid.</p>"#);
            }
            body.push_str(r#"<div class="table-wrap"><table data-table="import"><thead><tr><th scope="col" class="num">Line</th><th scope="col">Status</th><th scope="col">Details</th></tr></thead><tbody>"#);
            for (i, v) in verdicts.iter().enumerate() {
                if i >= MAX_LISTED && v.errors.is_empty() {
                    continue;
                }
                if v.errors.is_empty() {
                    let _ = write!(
                        body,
                        r#"<tr data-line="{l}"><td class="num">{l}</td><td><span class="status valid">OK</span></td><td class="muted">valid</td></tr>"#,
                        l = v.line
                    );
                } else {
                    let reasons: Vec<String> =
                        v.errors.iter().map(|e| esc(&e.to_string())).collect();
                    let _ = write!(
                        body,
                        r#"<tr data-line="{l}"><td class="num">{l}</td><td><span class="status invalid">Error</span></td><td>{}</td></tr>"#,
                        reasons.join("<br>"),
                        l = v.line
                    );
                }
            }
            if verdicts.len() > MAX_LISTED {
                let _ = write!(
                    body,
                    r#"<tr><td colspan="3" class="muted">Valid lines after line {MAX_LISTED} are not listed.</td></tr>"#
                );
            }
            body.push_str("</tbody></table></div>");
        }
    }
    body.push_str("</section>");
    Ok(page(layout(
        "Imports",
        Nav::Imports,
        Some(&user.who(&tenant)),
        &body,
    )))
}

/// Loads a checked file through the API's upload path (atomic: all lines or none).
async fn load<T: Loadable>(
    user: &PageUser<Editor>,
    db: &zixly_db::AppDb,
    file_name: Option<String>,
    ctx: zixly_domain::ingest::IngestContext,
    input: std::io::Cursor<Vec<u8>>,
) -> Result<LoadReport, PageError> {
    let options = upload_options::<T>(&user.auth, file_name, false);
    let report =
        loader::load_csv::<T, _>(db, user.auth.tenant_id(), &options, ctx, input, None, None)
            .await?;
    Ok(report)
}

/// What a load did: counts, or why nothing was written.
fn load_section(name: &str, r: &LoadReport) -> String {
    let mut out = format!(
        r#"<section class="card" aria-labelledby="load-title" data-load-status="{status}"><h2 id="load-title">Load of {name}</h2>"#,
        status = r.status.as_str(),
        name = esc(name),
    );
    if r.status == LoadStatus::Failed {
        let why = match &r.aborted {
            Some(reason) => format!("Nothing was loaded: {reason}."),
            None => format!(
                "Nothing was loaded: {} lines were refused when loading.",
                r.rejected
            ),
        };
        out.push_str(&html::flash("err", &why));
        if !r.errors.is_empty() {
            out.push_str(r#"<div class="table-wrap"><table data-table="load-errors"><thead><tr><th scope="col" class="num">Line</th><th scope="col">Details</th></tr></thead><tbody>"#);
            for e in &r.errors {
                let _ = write!(
                    out,
                    r#"<tr data-load-line="{l}"><td class="num">{l}</td><td>{}</td></tr>"#,
                    esc(&e.to_string()),
                    l = e.line
                );
            }
            out.push_str("</tbody></table></div>");
        }
    } else {
        out.push_str(&html::flash(
            "ok",
            &format!(
                "Loaded {} lines: {} inserted, {} updated, {} unchanged.",
                r.rows_read, r.inserted, r.updated, r.unchanged
            ),
        ));
        let _ = write!(
            out,
            r#"<dl class="load-counts"><div><dt>Inserted</dt><dd data-count="inserted">{}</dd></div><div><dt>Updated</dt><dd data-count="updated">{}</dd></div><div><dt>Unchanged</dt><dd data-count="unchanged">{}</dd></div><div><dt>New clients</dt><dd data-count="clients">{}</dd></div></dl>"#,
            r.inserted, r.updated, r.unchanged, r.clients_inserted
        );
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_split_into_named_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nh1,h2\r\n1,2\r\n\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].0.as_str(), parts[0].2.as_slice()),
            ("_csrf", &b"abc"[..])
        );
        assert_eq!(parts[1].1.as_deref(), Some("a.csv"));
        assert_eq!(parts[1].2, b"h1,h2\r\n1,2\r\n");
        assert!(multipart("multipart/form-data", body).is_none());
    }

    #[test]
    fn a_bad_money_value_is_reported_on_its_line() {
        let csv = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nA,Acme,2025-01-01,1.00,0,1\nA,Acme,2025-01-02,12.345,0,1\n";
        let ctx = IngestContext {
            time_zone: Tz::UTC,
            base_currency: CurrencyCode::AUD,
            default_source_system: "csv".into(),
        };
        let v = check::<FinancialRow>(csv, ctx).unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].errors.is_empty());
        assert_eq!(v[1].line, 3);
        assert_eq!(v[1].errors[0].column.as_deref(), Some("revenue"));
    }
}
