//! `/clients` (search, sort, sparklines) and `/clients/{id}` (financial chart, funnel, custom
//! metrics per day/week/month, recent lead events).

use std::fmt::Write as _;

use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::reports::FunnelQuery;
use zixly_db::queries::series::{Bucket, BucketWindow, DateRange};

use super::html::{self, esc, layout, money_short, percent, q, ChartSeries, Nav};
use super::overview::bucketize;
use super::range::{range_picker, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::auth::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    #[serde(flatten)]
    pub range: RangeParams,
}

const SORTS: &[(&str, &str)] = &[
    ("name", "Client"),
    ("revenue", "Revenue"),
    ("expenses", "Expenses"),
    ("profit", "Net profit"),
    ("margin", "Margin"),
];

pub async fn list(
    user: PageUser<Viewer>,
    Query(p): Query<ListParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let r = Range::resolve(&p.range, today_in(&tenant.time_zone));
    let search = p.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut clients = tx.client_summaries(r.from, r.to, search).await?;
    tx.commit().await?;

    let sort = p
        .sort
        .as_deref()
        .filter(|s| SORTS.iter().any(|(k, _)| k == s))
        .unwrap_or("name");
    let desc = match p.dir.as_deref() {
        Some("desc") => true,
        Some("asc") => false,
        _ => sort != "name",
    };
    let margin = |c: &zixly_db::queries::dashboard::ClientSummary| {
        zixly_domain::figures::margin(c.net_profit, c.revenue)
    };
    match sort {
        "revenue" => clients.sort_by_key(|c| c.revenue),
        "expenses" => clients.sort_by_key(|c| c.expenses),
        "profit" => clients.sort_by_key(|c| c.net_profit),
        // No margin (no revenue) sorts below every margin.
        "margin" => clients.sort_by_key(margin),
        _ => {} // already by name
    }
    if desc {
        clients.reverse();
    }
    let sym = html::currency_symbol(&tenant.base_currency);
    let search_q = search.map(|s| format!("&q={}", q(s))).unwrap_or_default();

    let mut body = html::page_head(
        "Clients",
        &format!(
            "{} clients · {} – {} · amounts in {}",
            clients.len(),
            html::date(r.from),
            html::date(r.to),
            esc(&tenant.base_currency)
        ),
        &range_picker("/clients", &r).into_string(),
    );
    let _ = write!(
        body,
        r#"<form class="card row" method="get" action="/clients" role="search">
<input type="hidden" name="range" value="{preset}">{custom}
<div class="field" style="flex:1;min-width:200px"><label for="q">Search clients</label><input type="search" id="q" name="q" value="{qv}" placeholder="Name contains…"></div>
<input type="hidden" name="sort" value="{sort}"><button type="submit">Search</button>{clear}</form>"#,
        preset = r.preset,
        custom = if r.preset == "custom" {
            format!(
                r#"<input type="hidden" name="from" value="{}"><input type="hidden" name="to" value="{}">"#,
                r.from, r.to
            )
        } else {
            String::new()
        },
        qv = esc(search.unwrap_or("")),
        clear = if search.is_some() {
            format!(
                r#"<a class="button secondary" href="/clients?{}">Clear</a>"#,
                r.query()
            )
        } else {
            String::new()
        },
    );
    body.push_str(r#"<section class="card" aria-label="Client list"><div class="table-wrap"><table data-table="clients"><thead><tr>"#);
    for (key, label) in SORTS {
        let (next_dir, mark, aria) = if *key == sort {
            if desc {
                ("asc", " ↓", r#" aria-sort="descending""#)
            } else {
                ("desc", " ↑", r#" aria-sort="ascending""#)
            }
        } else {
            (if *key == "name" { "asc" } else { "desc" }, "", "")
        };
        let class = if *key == "name" {
            ""
        } else {
            r#" class="num""#
        };
        let _ = write!(
            body,
            r#"<th scope="col"{class}{aria}><a href="/clients?{rq}{search_q}&sort={key}&dir={next_dir}">{label}{mark}</a></th>"#,
            rq = r.query(),
        );
        if *key == "name" {
            body.push_str(r#"<th scope="col" class="hide-sm">Revenue trend</th>"#);
        }
    }
    body.push_str("</tr></thead><tbody>");
    if clients.is_empty() {
        body.push_str(r#"<tr><td colspan="6" class="empty">No clients match.</td></tr>"#);
    }
    for c in &clients {
        let spark: Vec<f64> = c
            .monthly_revenue
            .iter()
            .map(|(_, v)| html::to_f64(*v))
            .collect();
        let class = if c.net_profit.is_sign_negative() {
            "neg"
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<tr><td><a href="/clients/{id}?{rq}">{name}</a><div class="muted small">{cid}{ind}</div></td><td class="hide-sm">{spark}</td><td class="num">{rev}</td><td class="num">{exp}</td><td class="num {class}">{profit}</td><td class="num">{margin}</td></tr>"#,
            id = c.id,
            rq = r.query(),
            name = esc(&c.client_name),
            cid = esc(&c.client_id),
            ind = c
                .industry
                .as_deref()
                .map(|i| format!(" · {}", esc(i)))
                .unwrap_or_default(),
            spark = html::sparkline(&spark, &format!("Monthly revenue of {}", c.client_name)),
            rev = money_short(c.revenue, &sym),
            exp = money_short(c.expenses, &sym),
            profit = money_short(c.net_profit, &sym),
            margin = margin(c).map(percent).unwrap_or_else(|| "–".into()),
        );
    }
    body.push_str("</tbody></table></div></section>");
    Ok(page(layout(
        "Clients",
        Nav::Clients,
        Some(&user.who(&tenant)),
        &body,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    pub bucket: Option<String>,
    #[serde(flatten)]
    pub range: RangeParams,
}

const METRIC_COLORS: &[&str] = &[
    "#7a3fb8", "#0f7b8a", "#b8610f", "#2546c4", "#16874a", "#b4232a",
];

pub async fn detail(
    user: PageUser<Viewer>,
    Path(id): Path<String>,
    Query(p): Query<DetailParams>,
) -> Result<Response, PageError> {
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound)?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let client = tx.get_client(id).await?.ok_or(PageError::NotFound)?;
    let r = Range::resolve(&p.range, today_in(&tenant.time_zone));
    let metric_bucket: Bucket = p
        .bucket
        .as_deref()
        .and_then(|b| b.parse().ok())
        .unwrap_or(match r.bucket() {
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            _ => Bucket::Month,
        });
    let (days, unconverted) = tx.daily_totals(r.from, r.to, Some(id)).await?;
    let range = DateRange::new(r.from, r.to).map_err(|_| PageError::NotFound)?;
    let funnel = tx
        .funnel(
            id,
            &FunnelQuery {
                range: Some(range),
                stages: None,
            },
        )
        .await?;
    let window = BucketWindow {
        from: r.from,
        to: r.to,
        next: None,
    };
    let metrics = tx
        .custom_metric_buckets(id, None, metric_bucket, &window)
        .await?;
    let pipeline = tx.pipeline_summary(r.from, r.to, Some(id)).await?;
    let events = tx.recent_lead_events(id, 15).await?;
    tx.commit().await?;

    let sym = html::currency_symbol(&tenant.base_currency);
    let rev: Decimal = days.iter().map(|d| d.revenue).sum();
    let exp: Decimal = days.iter().map(|d| d.expenses).sum();
    let cash: Decimal = days.iter().map(|d| d.cash_flow).sum();
    let profit = rev - exp;
    let margin = zixly_domain::figures::margin(profit, rev);

    let subtitle = format!(
        "{}{} · {} – {} · amounts in {}",
        esc(&client.client_id),
        client
            .industry
            .as_deref()
            .map(|i| format!(" · {}", esc(i)))
            .unwrap_or_default(),
        html::date(r.from),
        html::date(r.to),
        esc(&tenant.base_currency)
    );
    let mut body = format!(
        r#"<p class="small"><a href="/clients?{}">← All clients</a></p>"#,
        r.query()
    );
    body.push_str(&html::page_head(
        &client.client_name,
        &subtitle,
        &range_picker(&format!("/clients/{id}"), &r).into_string(),
    ));
    if unconverted > 0 {
        body.push_str(&html::flash("info", &format!("{unconverted} rows in other currencies have no exchange rate yet and are not included.")));
    }
    let card = |label: &str, value: String| {
        format!(
            r#"<section class="kpi"><div class="label">{label}</div><div class="value">{value}</div></section>"#
        )
    };
    body.push_str(r#"<div class="grid kpis">"#);
    body.push_str(&card("Revenue", money_short(rev, &sym)));
    body.push_str(&card("Expenses", money_short(exp, &sym)));
    body.push_str(&card("Net profit", money_short(profit, &sym)));
    body.push_str(&card(
        "Margin",
        margin.map(percent).unwrap_or_else(|| "–".into()),
    ));
    body.push_str(&card("Cash flow", money_short(cash, &sym)));
    body.push_str(&card(
        "Open pipeline",
        money_short(pipeline.open_value, &sym),
    ));
    body.push_str("</div>");

    // Financial chart.
    let bucket = r.bucket();
    let buckets = bucketize(&days, r.from, r.to, bucket);
    let x: Vec<NaiveDate> = buckets.iter().map(|b| b.0).collect();
    let series = [
        ChartSeries {
            label: "Revenue",
            color: "#2546c4",
            values: buckets.iter().map(|b| Some(b.1)).collect(),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Expenses",
            color: "#d0572a",
            values: buckets.iter().map(|b| Some(b.2)).collect(),
            money: true,
            unit: None,
        },
        ChartSeries {
            label: "Net profit",
            color: "#16874a",
            values: buckets.iter().map(|b| Some(b.1 - b.2)).collect(),
            money: true,
            unit: None,
        },
    ];
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="fin-title"><div class="card-head"><h2 id="fin-title">Financials</h2><span class="muted small">per {bucket}</span></div>{}</section>"#,
        html::chart(
            "client-fin",
            &format!("Financials of {}", client.client_name),
            &x,
            &series,
            &sym,
            bucket,
            false
        )
    );

    // Funnel and lead events side by side.
    let mut funnel_html = String::new();
    let top = funnel.stages.iter().map(|s| s.leads).max().unwrap_or(0);
    if funnel.stages.is_empty() {
        funnel_html.push_str(r#"<p class="empty">No lead events in this period.</p>"#);
    } else {
        funnel_html.push_str(r#"<ol class="funnel" data-chart-kind="funnel">"#);
        for s in &funnel.stages {
            let pct = if top > 0 {
                s.leads as f64 / top as f64 * 100.0
            } else {
                0.0
            };
            let conv = s
                .conversion_from_previous
                .map(|c| format!(" · {} of previous", percent(c)))
                .unwrap_or_default();
            let value = s
                .value
                .map(|v| format!(" · {}", money_short(v, &sym)))
                .unwrap_or_default();
            let _ = write!(
                funnel_html,
                r#"<li><span>{stage}</span><span class="bar" role="img" aria-label="{stage}: {counted}"><span style="width:{pct:.1}%"></span></span><span class="num" title="{counted}{conv}{value}">{leads}</span></li>"#,
                stage = esc(&s.stage),
                leads = s.leads,
                counted = super::counted(s.leads, "lead", "leads"),
            );
        }
        funnel_html.push_str("</ol>");
        let _ = write!(
            funnel_html,
            r#"<p class="muted small">Win rate: {} ({} won, {} lost) · open pipeline {} in {}</p>"#,
            pipeline
                .win_rate()
                .map(percent)
                .unwrap_or_else(|| "–".into()),
            pipeline.won,
            pipeline.lost,
            money_short(pipeline.open_value, &sym),
            super::counted(pipeline.open_leads, "lead", "leads")
        );
    }
    let mut events_html = String::new();
    if events.is_empty() {
        events_html.push_str(r#"<p class="empty">No lead events yet.</p>"#);
    } else {
        events_html.push_str(r#"<div class="table-wrap"><table><thead><tr><th scope="col">When</th><th scope="col">Lead</th><th scope="col">Stage</th><th scope="col">Status</th><th scope="col" class="num">Value</th></tr></thead><tbody>"#);
        for e in &events {
            let _ = write!(
                events_html,
                r#"<tr><td>{when}</td><td>{lead}</td><td>{stage}</td><td><span class="status {status}">{status}</span></td><td class="num">{value}</td></tr>"#,
                when = e.event_date.format("%-d %b %Y"),
                lead = esc(&e.lead_id),
                stage = esc(&e.stage),
                status = esc(&e.status),
                value = e
                    .value
                    .map(|v| money_short(v, &html::currency_symbol(&e.currency)))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        events_html.push_str("</tbody></table></div>");
    }
    let _ = write!(
        body,
        r#"<div class="grid two"><section class="card" aria-labelledby="funnel-title"><h2 id="funnel-title">Sales funnel</h2>{funnel_html}</section><section class="card" aria-labelledby="events-title"><h2 id="events-title">Recent lead events</h2>{events_html}</section></div>"#
    );

    // Custom metrics: one chart per metric.
    let switch = {
        let mut s = String::from(r#"<nav class="bucket-switch" aria-label="Metric bucket">"#);
        for b in [Bucket::Day, Bucket::Week, Bucket::Month] {
            let current = if b == metric_bucket {
                r#" aria-current="true""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<a href="/clients/{id}?{}&bucket={}#metrics"{current}>{}</a>"#,
                r.query(),
                b.as_str(),
                b.as_str()
            );
        }
        s.push_str("</nav>");
        s
    };
    let _ = write!(
        body,
        r#"<section class="card" id="metrics" aria-labelledby="metrics-title"><div class="card-head"><h2 id="metrics-title">Custom metrics</h2>{switch}</div>"#
    );
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m.metric_name.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        body.push_str(r#"<p class="empty">No custom metrics in this period.</p>"#);
    } else {
        body.push_str(r#"<div class="grid two">"#);
        for (k, name) in names.iter().enumerate() {
            let rows: Vec<_> = metrics.iter().filter(|m| m.metric_name == *name).collect();
            let unit = rows.iter().find_map(|m| m.unit.as_deref());
            let x: Vec<NaiveDate> = rows.iter().map(|m| m.bucket_start).collect();
            let series = [ChartSeries {
                label: name,
                color: METRIC_COLORS[k % METRIC_COLORS.len()],
                values: rows.iter().map(|m| Some(m.avg)).collect(),
                money: false,
                unit,
            }];
            let _ = write!(
                body,
                r#"<div><h3 class="small" style="margin:0 0 .4rem">{} <span class="muted">(average per {})</span></h3>{}</div>"#,
                esc(name),
                metric_bucket.as_str(),
                html::chart(
                    &format!("metric-{k}"),
                    &format!("{name} per {}", metric_bucket.as_str()),
                    &x,
                    &series,
                    &sym,
                    metric_bucket.as_str(),
                    true
                )
            );
        }
        body.push_str("</div>");
    }
    body.push_str("</section>");
    Ok(page(layout(
        &client.client_name,
        Nav::Clients,
        Some(&user.who(&tenant)),
        &body,
    )))
}
