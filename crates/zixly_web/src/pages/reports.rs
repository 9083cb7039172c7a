//! `/reports`: the profitability table of a range (with CSV download) and the funnel report of a
//! chosen client. Both are the API's report queries (`TenantTx::profitability`, `TenantTx::funnel`).

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::reports::{
    FunnelQuery, PeriodFigures, ProfitabilityQuery, ProfitabilityRow,
};
use zixly_db::queries::series::DateRange;
use zixly_db::TenantTx;

use super::html::{self, flash_box, money, money_short, page_layout, percent, Nav};
use super::range::{range_picker, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::api::csv::{self, CsvRow};
use crate::auth::Viewer;
use crate::error::{ApiError, ErrorDetail};

#[derive(Debug, Default, Deserialize)]
pub struct ReportParams {
    pub client: Option<String>,
    #[serde(flatten)]
    pub range: RangeParams,
}

/// Every client's row (the query pages by name; a report wants them all).
async fn all_rows(
    tx: &TenantTx,
    range: DateRange,
) -> Result<(Vec<ProfitabilityRow>, usize), PageError> {
    let mut rows = Vec::new();
    let mut after = None;
    let mut missing = 0;
    loop {
        let report = tx
            .profitability(&ProfitabilityQuery {
                range,
                after,
                limit: 500,
            })
            .await?;
        missing += report.missing_rates.len();
        rows.extend(report.rows);
        match report.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok((rows, missing))
}

/// One line of the page's profitability download (the current period, in the base currency).
struct ProfitabilityLine<'a> {
    row: &'a ProfitabilityRow,
    currency: &'a str,
    range: &'a Range,
}

impl CsvRow for ProfitabilityLine<'_> {
    const HEADER: &'static [&'static str] = &[
        "client_id",
        "client_name",
        "revenue",
        "expenses",
        "net_profit",
        "margin",
        "cash_flow",
        "currency",
        "from",
        "to",
    ];
    fn cells(&self) -> Vec<String> {
        let c = self.row.current.as_ref();
        let f = |v: Option<Decimal>| v.map(|d| d.to_string()).unwrap_or_default();
        vec![
            self.row.client_id.clone(),
            self.row.client_name.clone(),
            f(c.map(|c| c.revenue)),
            f(c.map(|c| c.expenses)),
            f(c.map(|c| c.net_profit)),
            f(c.and_then(|c| c.margin)),
            f(c.map(|c| c.cash_flow)),
            self.currency.to_string(),
            self.range.from.to_string(),
            self.range.to.to_string(),
        ]
    }
}

/// The funnel's client choice for all clients together.
const ALL_CLIENTS: &str = "all";

pub async fn page_handler(
    user: PageUser<Viewer>,
    Query(p): Query<ReportParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let r = Range::resolve(&p.range, today_in(&tenant.time_zone));
    let range = DateRange::new(r.from, r.to).map_err(|_| PageError::NotFound)?;
    let (rows, missing) = all_rows(&tx, range).await?;
    // `client=all` is the tenant-wide funnel; without a choice, the client with most revenue.
    let all_clients = p.client.as_deref() == Some(ALL_CLIENTS);
    let chosen = p.client.as_deref().and_then(|c| Uuid::try_parse(c).ok());
    let funnel_client = if all_clients {
        None
    } else {
        chosen.or_else(|| {
            rows.iter()
                .filter(|r| r.current.is_some())
                .max_by_key(|r| r.current.as_ref().map(|c| c.revenue))
                .map(|r| r.client_kpi_id)
        })
    };
    let funnel = if all_clients || funnel_client.is_some() {
        let q = FunnelQuery {
            range: Some(range),
            stages: None,
        };
        Some(tx.funnel(funnel_client, &q).await?)
    } else {
        None
    };
    tx.commit().await?;

    let sym = html::currency_symbol(&tenant.base_currency);
    let dash = || "–".to_string();
    let (mut tr, mut te) = (Decimal::ZERO, Decimal::ZERO);
    for c in rows.iter().filter_map(|row| row.current.as_ref()) {
        tr += c.revenue;
        te += c.expenses;
    }
    let total_margin = zixly_domain::figures::margin(tr - te, tr);
    let body = maud::html! {
        (html::head(
            "Reports",
            &format!(
                "{} – {} · amounts in {}",
                html::date(r.from),
                html::date(r.to),
                tenant.base_currency
            ),
            range_picker("/reports", &r),
        ))
        (super::settings::retention_notice(tenant.raw_data_from, r.previous().0))
        p class="small" { "Also: " a href={ "/reports/metrics?" (r.query()) } { "custom metrics across clients" } }
        @if missing > 0 {
            (flash_box("info", "Some amounts need exchange rates that are not loaded yet; those figures are shown as –."))
        }
        section class="card" aria-labelledby="prof-title" {
            div class="card-head" {
                h2 id="prof-title" { "Profitability by client" }
                a class="button secondary small" href={ "/reports/profitability.csv?" (r.query()) } download { "Download CSV" }
            }
            div class="table-wrap" {
                table data-table="profitability" {
                    thead { tr {
                        th scope="col" { "Client" }
                        th scope="col" class="num" { "Revenue" }
                        th scope="col" class="num" { "Expenses" }
                        th scope="col" class="num" { "Net profit" }
                        th scope="col" class="num" { "Margin" }
                        th scope="col" class="num hide-sm" { "Cash flow" }
                        th scope="col" class="num hide-sm" { "Profit, previous period" }
                    } }
                    tbody {
                        @for row in &rows {
                            @let c = row.current.as_ref();
                            @let m = |f: &dyn Fn(&PeriodFigures) -> Decimal| {
                                c.map(|c| money_short(f(c), &sym)).unwrap_or_else(dash)
                            };
                            @let class = if c.is_some_and(|c| c.net_profit.is_sign_negative()) { "neg" } else { "" };
                            tr {
                                td { a href={ "/clients/" (row.client_kpi_id) "?" (r.query()) } { (row.client_name) } }
                                td class="num" { (m(&|c| c.revenue)) }
                                td class="num" { (m(&|c| c.expenses)) }
                                td class={ "num " (class) } { (m(&|c| c.net_profit)) }
                                td class="num" { (c.and_then(|c| c.margin).map(percent).unwrap_or_else(dash)) }
                                td class="num hide-sm" { (m(&|c| c.cash_flow)) }
                                td class="num hide-sm" {
                                    (row.previous.as_ref().map(|p| money_short(p.net_profit, &sym)).unwrap_or_else(dash))
                                }
                            }
                        }
                        @if rows.is_empty() {
                            tr { td colspan="7" class="empty" { "No clients yet." } }
                        }
                    }
                    tfoot { tr {
                        th scope="row" { "Total" }
                        td class="num" title=(money(tr, &sym)) { b { (money_short(tr, &sym)) } }
                        td class="num" title=(money(te, &sym)) { b { (money_short(te, &sym)) } }
                        td class="num" title=(money(tr - te, &sym)) { b { (money_short(tr - te, &sym)) } }
                        td class="num" { b { (total_margin.map(percent).unwrap_or_else(dash)) } }
                        td class="hide-sm" {}
                        td class="hide-sm" {}
                    } }
                }
            }
        }
        // Funnel report.
        section class="card" aria-labelledby="funnel-title" {
            div class="card-head" {
                h2 id="funnel-title" { "Sales funnel" }
                form class="row" method="get" action="/reports" {
                    input type="hidden" name="range" value=(r.preset);
                    @if r.preset == "custom" {
                        input type="hidden" name="from" value=(r.from);
                        input type="hidden" name="to" value=(r.to);
                    }
                    div class="field" {
                        label for="client" { "Client" }
                        select id="client" name="client" {
                            option value=(ALL_CLIENTS) selected[all_clients] { "All clients" }
                            @for row in &rows {
                                option value=(row.client_kpi_id) selected[Some(row.client_kpi_id) == funnel_client] {
                                    (row.client_name)
                                }
                            }
                        }
                    }
                    button type="submit" class="secondary" { "Show" }
                }
            }
            @match &funnel {
                Some(f) if !f.stages.is_empty() => {
                    @let top = f.stages.iter().map(|s| s.leads).max().unwrap_or(1).max(1);
                    div class="table-wrap" {
                        table data-table="funnel" {
                            thead { tr {
                                th scope="col" { "Stage" }
                                th scope="col" class="num" { "Leads" }
                                th scope="col" class="num" { "Conversion" }
                                th scope="col" class="num" { "Value" }
                                th scope="col" class="hide-sm" { "Share" }
                            } }
                            tbody {
                                @for s in &f.stages {
                                    @let share = zixly_domain::figures::ratio(Decimal::from(s.leads), Decimal::from(top))
                                        .map(percent)
                                        .unwrap_or_else(dash);
                                    tr {
                                        td { (s.stage) }
                                        td class="num" { (html::count(s.leads)) }
                                        td class="num" { (s.conversion_from_previous.map(percent).unwrap_or_else(dash)) }
                                        td class="num" { (s.value.map(|v| money_short(v, &sym)).unwrap_or_else(dash)) }
                                        td class="hide-sm" style="min-width:140px" {
                                            div class="funnel" {
                                                div class="bar" role="img" aria-label={ (share) " of the top stage" } {
                                                    span style=(format!("width:{:.1}%", s.leads as f64 / top as f64 * 100.0)) {}
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                _ => { p class="empty" {
                    @if all_clients { "No lead events in this period." }
                    @else { "No lead events for this client in this period." }
                } }
            }
        }
    };
    Ok(page(page_layout(
        "Reports",
        Nav::Reports,
        Some(&user.who(&tenant)),
        body,
    )))
}

/// `GET /reports/profitability.csv`: the table above as CSV (exact amounts, dot decimals).
pub async fn profitability_csv(
    user: PageUser<Viewer>,
    Query(p): Query<RangeParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let r = Range::resolve(&p, today_in(&tenant.time_zone));
    // A download has no page to explain a bad range on: refuse it like the API (422, the field).
    if let Some(problem) = r.problem() {
        let field = problem.field().name();
        let message = format!("the range cannot be downloaded: {problem}");
        let detail = ErrorDetail::field(field, problem.to_string());
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(vec![detail])
        .into());
    }
    let range = DateRange::new(r.from, r.to).map_err(|_| PageError::NotFound)?;
    let (rows, _) = all_rows(&tx, range).await?;
    tx.commit().await?;
    let mut out = csv::record(ProfitabilityLine::HEADER);
    for row in &rows {
        let line = ProfitabilityLine {
            row,
            currency: &tenant.base_currency,
            range: &r,
        };
        out.push_str(&csv::record(&line.cells()));
    }
    let name = format!(
        "attachment; filename=\"profitability-{}-{}.csv\"",
        r.from, r.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formula_safe() {
        // One field as the shared writer renders it.
        let csv_field = |s: &str| csv::record(&[s]).trim_end_matches("\r\n").to_string();
        assert_eq!(csv_field(r#"A "quoted", name"#), r#""A ""quoted"", name""#);
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-12.50"), "-12.50");
    }
}
