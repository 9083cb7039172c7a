//! `/reports`: the profitability table of a range (with CSV download) and the funnel report of a
//! chosen client. Both are the API's report queries (`TenantTx::profitability`, `TenantTx::funnel`).

use std::fmt::Write as _;

use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::reports::{FunnelQuery, ProfitabilityQuery, ProfitabilityRow};
use zixly_db::queries::series::DateRange;
use zixly_db::TenantTx;

use super::html::{self, esc, layout, money, money_short, percent, Nav};
use super::overview::{range_picker, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::api::csv::{self, CsvRow};
use crate::auth::Viewer;

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

pub async fn page_handler(
    user: PageUser<Viewer>,
    Query(p): Query<ReportParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let r = Range::resolve(&p.range, today_in(&tenant.time_zone));
    let range = DateRange::new(r.from, r.to).map_err(|_| PageError::NotFound)?;
    let (rows, missing) = all_rows(&tx, range).await?;
    let chosen = p.client.as_deref().and_then(|c| Uuid::try_parse(c).ok());
    let funnel_client = chosen.or_else(|| {
        rows.iter()
            .filter(|r| r.current.is_some())
            .max_by_key(|r| r.current.as_ref().map(|c| c.revenue))
            .map(|r| r.client_kpi_id)
    });
    let funnel = match funnel_client {
        Some(id) => Some(
            tx.funnel(
                id,
                &FunnelQuery {
                    range: Some(range),
                    stages: None,
                },
            )
            .await?,
        ),
        None => None,
    };
    tx.commit().await?;

    let sym = html::currency_symbol(&tenant.base_currency);
    let mut body = html::page_head(
        "Reports",
        &format!(
            "{} – {} · amounts in {}",
            html::date(r.from),
            html::date(r.to),
            esc(&tenant.base_currency)
        ),
        &range_picker("/reports", &r),
    );
    if missing > 0 {
        body.push_str(&html::flash("info", "Some amounts need exchange rates that are not loaded yet; those figures are shown as –."));
    }
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="prof-title"><div class="card-head"><h2 id="prof-title">Profitability by client</h2><a class="button secondary small" href="/reports/profitability.csv?{}" download>Download CSV</a></div>
<div class="table-wrap"><table data-table="profitability"><thead><tr><th scope="col">Client</th><th scope="col" class="num">Revenue</th><th scope="col" class="num">Expenses</th><th scope="col" class="num">Net profit</th><th scope="col" class="num">Margin</th><th scope="col" class="num hide-sm">Cash flow</th><th scope="col" class="num hide-sm">Profit, previous period</th></tr></thead><tbody>"#,
        r.query()
    );
    let (mut tr, mut te) = (Decimal::ZERO, Decimal::ZERO);
    for row in &rows {
        let c = row.current.as_ref();
        if let Some(c) = c {
            tr += c.revenue;
            te += c.expenses;
        }
        let m = |f: &dyn Fn(&zixly_db::queries::reports::PeriodFigures) -> Decimal| {
            c.map(|c| money_short(f(c), &sym))
                .unwrap_or_else(|| "–".into())
        };
        let class = if c.is_some_and(|c| c.net_profit.is_sign_negative()) {
            "neg"
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<tr><td><a href="/clients/{id}?{rq}">{name}</a></td><td class="num">{rev}</td><td class="num">{exp}</td><td class="num {class}">{profit}</td><td class="num">{margin}</td><td class="num hide-sm">{cash}</td><td class="num hide-sm">{prev}</td></tr>"#,
            id = row.client_kpi_id,
            rq = r.query(),
            name = esc(&row.client_name),
            rev = m(&|c| c.revenue),
            exp = m(&|c| c.expenses),
            profit = m(&|c| c.net_profit),
            margin = c
                .and_then(|c| c.margin)
                .map(percent)
                .unwrap_or_else(|| "–".into()),
            cash = m(&|c| c.cash_flow),
            prev = row
                .previous
                .as_ref()
                .map(|p| money_short(p.net_profit, &sym))
                .unwrap_or_else(|| "–".into()),
        );
    }
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="7" class="empty">No clients yet.</td></tr>"#);
    }
    let total_margin = zixly_domain::figures::margin(tr - te, tr);
    let _ = write!(
        body,
        r#"</tbody><tfoot><tr><th scope="row">Total</th><td class="num" title="{}"><b>{}</b></td><td class="num" title="{}"><b>{}</b></td><td class="num" title="{}"><b>{}</b></td><td class="num"><b>{}</b></td><td class="hide-sm"></td><td class="hide-sm"></td></tr></tfoot></table></div></section>"#,
        money(tr, &sym),
        money_short(tr, &sym),
        money(te, &sym),
        money_short(te, &sym),
        money(tr - te, &sym),
        money_short(tr - te, &sym),
        total_margin.map(percent).unwrap_or_else(|| "–".into())
    );

    // Funnel report.
    let mut options = String::new();
    for row in &rows {
        let sel = if Some(row.client_kpi_id) == funnel_client {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            r#"<option value="{}"{sel}>{}</option>"#,
            row.client_kpi_id,
            esc(&row.client_name)
        );
    }
    let custom = if r.preset == "custom" {
        format!(
            r#"<input type="hidden" name="from" value="{}"><input type="hidden" name="to" value="{}">"#,
            r.from, r.to
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="funnel-title"><div class="card-head"><h2 id="funnel-title">Sales funnel</h2>
<form class="row" method="get" action="/reports"><input type="hidden" name="range" value="{}">{custom}<div class="field"><label for="client">Client</label><select id="client" name="client">{options}</select></div><button type="submit" class="secondary">Show</button></form></div>"#,
        r.preset
    );
    match funnel {
        Some(f) if !f.stages.is_empty() => {
            body.push_str(r#"<div class="table-wrap"><table data-table="funnel"><thead><tr><th scope="col">Stage</th><th scope="col" class="num">Leads</th><th scope="col" class="num">Conversion</th><th scope="col" class="num">Value</th><th scope="col" class="hide-sm">Share</th></tr></thead><tbody>"#);
            let top = f.stages.iter().map(|s| s.leads).max().unwrap_or(1).max(1);
            for s in &f.stages {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="hide-sm" style="min-width:140px"><div class="funnel"><div class="bar" role="img" aria-label="{} of the top stage"><span style="width:{:.1}%"></span></div></div></td></tr>"#,
                    esc(&s.stage),
                    s.leads,
                    s.conversion_from_previous
                        .map(percent)
                        .unwrap_or_else(|| "–".into()),
                    s.value
                        .map(|v| money_short(v, &sym))
                        .unwrap_or_else(|| "–".into()),
                    zixly_domain::figures::ratio(Decimal::from(s.leads), Decimal::from(top))
                        .map(percent)
                        .unwrap_or_else(|| "–".into()),
                    s.leads as f64 / top as f64 * 100.0,
                );
            }
            body.push_str("</tbody></table></div>");
        }
        _ => {
            body.push_str(r#"<p class="empty">No lead events for this client in this period.</p>"#)
        }
    }
    body.push_str("</section>");
    Ok(page(layout(
        "Reports",
        Nav::Reports,
        Some(&user.who(&tenant)),
        &body,
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
