//! `/clients` (search, sort, sparklines) and `/clients/{id}` (financial chart, funnel, custom
//! metrics per day/week/month, recent lead events). EDITORs also get the forms of
//! [`super::client_edit`] (add, rename, delete).

use axum::extract::{Path, Query};
use axum::response::Response;
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::reports::FunnelQuery;
use zixly_db::queries::series::{Bucket, BucketWindow, DateRange};

use maud::{html, Markup};
use zixly_domain::metrics::Aggregation;
use zixly_domain::Role;

use super::chart::{self, ChartSeries, SparkPoint};
use super::client_edit::{self, Done};
use super::html::{self, flash_box, money_short, page_layout, percent, q, Nav};
use super::range::{range_picker, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::auth::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    /// A fixed message code after a change (`?done=deleted`).
    pub done: Option<String>,
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
    let today = today_in(&tenant.time_zone);
    let r = Range::resolve(&p.range, today);
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
    let editor = user.auth.role().includes(Role::Editor);
    let done = Done::message_of(p.done.as_deref());
    let months = chart::slots(r.from, r.to, Bucket::Month, today);

    let body = html! {
        (html::head(
            "Clients",
            &format!(
                "{} clients · {} – {} · amounts in {}",
                clients.len(),
                html::date(r.from),
                html::date(r.to),
                tenant.base_currency
            ),
            range_picker("/clients", &r),
        ))
        @if let Some(m) = done { (flash_box("ok", m)) }
        form class="card row" method="get" action="/clients" role="search" {
            input type="hidden" name="range" value=(r.preset);
            @if r.preset == "custom" {
                input type="hidden" name="from" value=(r.from);
                input type="hidden" name="to" value=(r.to);
            }
            div class="field" style="flex:1;min-width:200px" {
                label for="q" { "Search clients" }
                input type="search" id="q" name="q" value=(search.unwrap_or("")) placeholder="Name contains…";
            }
            input type="hidden" name="sort" value=(sort);
            button type="submit" { "Search" }
            @if search.is_some() {
                a class="button secondary" href={ "/clients?" (r.query()) } { "Clear" }
            }
        }
        @if editor {
            details class="card" data-add-client {
                summary { "Add a client" }
                (client_edit::add_form(&user.csrf, &Default::default()))
            }
        }
        section class="card" aria-label="Client list" {
            div class="table-wrap" {
                table data-table="clients" {
                    thead { tr {
                        @for (key, label) in SORTS {
                            @let (next_dir, mark, aria) = if *key == sort {
                                if desc { ("asc", " ↓", Some("descending")) } else { ("desc", " ↑", Some("ascending")) }
                            } else {
                                (if *key == "name" { "asc" } else { "desc" }, "", None)
                            };
                            th scope="col" class=[(*key != "name").then_some("num")] aria-sort=[aria] {
                                a href={ "/clients?" (r.query()) (search_q) "&sort=" (key) "&dir=" (next_dir) } { (label) (mark) }
                            }
                            @if *key == "name" {
                                th scope="col" class="hide-sm" { "Revenue trend" }
                            }
                        }
                    } }
                    tbody {
                        @if clients.is_empty() {
                            tr { td colspan="6" class="empty" { "No clients match." } }
                        }
                        @for c in &clients {
                            // Every month of the range, so a month without revenue is a gap.
                            @let spark: Vec<SparkPoint> = months.iter().map(|m| SparkPoint {
                                value: c.monthly_revenue.iter()
                                    .find(|(start, _)| *start == Bucket::Month.start_of(m.start))
                                    .map(|(_, v)| chart::to_f64(*v)),
                                partial: m.partial,
                            }).collect();
                            tr {
                                td {
                                    a href={ "/clients/" (c.id) "?" (r.query()) } { (c.client_name) }
                                    div class="muted small" {
                                        (c.client_id)
                                        @if let Some(i) = c.industry.as_deref() { " · " (i) }
                                    }
                                }
                                td class="hide-sm" { (chart::sparkline(&spark, &format!("Monthly revenue of {}", c.client_name))) }
                                td class="num" { (money_short(c.revenue, &sym)) }
                                td class="num" { (money_short(c.expenses, &sym)) }
                                td class={ "num " (if c.net_profit.is_sign_negative() { "neg" } else { "" }) } { (money_short(c.net_profit, &sym)) }
                                td class="num" { (margin(c).map(percent).unwrap_or_else(|| "–".into())) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(page_layout(
        "Clients",
        Nav::Clients,
        Some(&user.who(&tenant)),
        body,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    pub bucket: Option<String>,
    /// A fixed message code after a change (`?done=renamed`).
    pub done: Option<String>,
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
    let today = today_in(&tenant.time_zone);
    let r = Range::resolve(&p.range, today);
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
            Some(id),
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
    let editor = user.auth.role().includes(Role::Editor);
    let rev: Decimal = days.iter().map(|d| d.revenue).sum();
    let exp: Decimal = days.iter().map(|d| d.expenses).sum();
    let cash: Decimal = days.iter().map(|d| d.cash_flow).sum();
    let profit = rev - exp;
    let margin = zixly_domain::figures::margin(profit, rev);

    let subtitle = format!(
        "{}{} · {} – {} · amounts in {}",
        client.client_id,
        client
            .industry
            .as_deref()
            .map(|i| format!(" · {i}"))
            .unwrap_or_default(),
        html::date(r.from),
        html::date(r.to),
        tenant.base_currency
    );
    let kpi = |label: &str, value: String| {
        html! {
            section class="kpi" { div class="label" { (label) } div class="value" { (value) } }
        }
    };

    // Financial chart.
    let bucket = r.bucket();
    let slots = chart::slots(r.from, r.to, chart::bucket_named(bucket), today);
    let charted = super::settings::chartable_days(&days, tenant.raw_data_from, bucket);
    let sums = chart::bucketize(&charted, &slots);
    let series = chart::financial_series(&sums);
    let financial_chart = chart::Chart {
        id: "client-fin",
        caption: &format!("Financials of {}", client.client_name),
        bucket: chart::bucket_named(bucket),
        slots: &slots,
        series: &series,
        symbol: &sym,
        style: chart::Style::Bars,
        small: false,
    }
    .render();

    let top = funnel.stages.iter().map(|s| s.leads).max().unwrap_or(0);
    let funnel_html = html! {
        @if funnel.stages.is_empty() {
            p class="empty" { "No lead events in this period." }
        } @else {
            ol class="funnel" data-chart-kind="funnel" {
                @for s in &funnel.stages {
                    @let pct = if top > 0 { s.leads as f64 / top as f64 * 100.0 } else { 0.0 };
                    @let counted = super::counted(s.leads, "lead", "leads");
                    @let conv = s.conversion_from_previous.map(|c| format!(" · {} of previous", percent(c))).unwrap_or_default();
                    @let value = s.value.map(|v| format!(" · {}", money_short(v, &sym))).unwrap_or_default();
                    li {
                        span { (s.stage) }
                        span class="bar" role="img" aria-label={ (s.stage) ": " (counted) } {
                            span style=(format!("width:{pct:.1}%")) {}
                        }
                        span class="num" title={ (counted) (conv) (value) } { (s.leads) }
                    }
                }
            }
            p class="muted small" {
                "Win rate: " (pipeline.win_rate().map(percent).unwrap_or_else(|| "–".into()))
                " (" (pipeline.won) " won, " (pipeline.lost) " lost) · open pipeline "
                (money_short(pipeline.open_value, &sym)) " in "
                (super::counted(pipeline.open_leads, "lead", "leads"))
            }
        }
    };
    let events_html = html! {
        @if events.is_empty() {
            p class="empty" { "No lead events yet." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Lead" }
                        th scope="col" { "Stage" }
                        th scope="col" { "Status" }
                        th scope="col" class="num" { "Value" }
                    } }
                    tbody {
                        @for e in &events {
                            tr {
                                td { (e.event_date.format("%-d %b %Y")) }
                                td { (e.lead_id) }
                                td { (e.stage) }
                                td { span class={ "status " (e.status) } { (e.status) } }
                                td class="num" {
                                    (e.value.map(|v| money_short(v, &html::currency_symbol(&e.currency))).unwrap_or_else(|| "–".into()))
                                }
                            }
                        }
                    }
                }
            }
        }
    };

    // Custom metrics: one chart per metric.
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m.metric_name.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let metric_slots = chart::slots(r.from, r.to, metric_bucket, today);
    let metric_charts: Vec<(String, String, Markup)> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let rows: Vec<_> = metrics.iter().filter(|m| m.metric_name == *name).collect();
            let unit = rows.iter().find_map(|m| m.unit.as_deref());
            // The catalogue's definition decides the aggregate and the name shown (hours sum,
            // an NPS averages); `value` is that aggregate. A bucket without readings is a gap
            // (`None`), never zero: nothing was recorded, which is not a reading of 0.
            let aggregation = rows.first().map_or(Aggregation::Average, |m| m.aggregation);
            let display = rows
                .first()
                .map_or_else(|| name.to_string(), |m| m.display_name.clone());
            let values = metric_slots
                .iter()
                .map(|slot| {
                    let start = metric_bucket.start_of(slot.start);
                    rows.iter()
                        .find(|m| m.bucket_start == start)
                        .map(|m| m.value)
                })
                .collect();
            let series = [ChartSeries {
                label: &display,
                color: METRIC_COLORS[k % METRIC_COLORS.len()],
                values,
                money: false,
                unit,
            }];
            let chart = chart::Chart {
                id: &format!("metric-{k}"),
                caption: &format!("{display} per {}", metric_bucket.as_str()),
                bucket: metric_bucket,
                slots: &metric_slots,
                series: &series,
                symbol: &sym,
                style: chart::Style::for_aggregation(aggregation),
                small: true,
            }
            .render();
            (
                display,
                chart::aggregate_word(aggregation).to_string(),
                chart,
            )
        })
        .collect();

    // This client's goals, as of today whatever range the page shows (a goal is about its period).
    let goals = crate::actions::goals::list(&user.auth, Some(id), Some(0)).await?;
    let body = html! {
        p class="small" { a href={ "/clients?" (r.query()) } { "← All clients" } }
        (html::head(
            &client.client_name,
            &subtitle,
            range_picker(&format!("/clients/{id}"), &r),
        ))
        (super::settings::retention_notice(tenant.raw_data_from, r.from))
        @if let Some(m) = Done::message_of(p.done.as_deref()) { (flash_box("ok", m)) }
        @if unconverted > 0 {
            (flash_box("info", &format!("{unconverted} rows in other currencies have no exchange rate yet and are not included.")))
        }
        div class="grid kpis" {
            (kpi("Revenue", money_short(rev, &sym)))
            (kpi("Expenses", money_short(exp, &sym)))
            (kpi("Net profit", money_short(profit, &sym)))
            (kpi("Margin", margin.map(percent).unwrap_or_else(|| "–".into())))
            (kpi("Cash flow", money_short(cash, &sym)))
            (kpi("Open pipeline", money_short(pipeline.open_value, &sym)))
        }
        @if !goals.is_empty() { (super::goals::compact(&goals, &tenant.base_currency)) }
        section class="card" aria-labelledby="fin-title" {
            div class="card-head" {
                h2 id="fin-title" { "Financials" }
                span class="muted small" { "per " (bucket) }
            }
            (financial_chart)
        }
        div class="grid two" {
            section class="card" aria-labelledby="funnel-title" {
                h2 id="funnel-title" { "Sales funnel" }
                (funnel_html)
            }
            section class="card" aria-labelledby="events-title" {
                h2 id="events-title" { "Recent lead events" }
                (events_html)
            }
        }
        section class="card" id="metrics" aria-labelledby="metrics-title" {
            div class="card-head" {
                h2 id="metrics-title" { "Custom metrics" }
                nav class="bucket-switch" aria-label="Metric bucket" {
                    @for b in [Bucket::Day, Bucket::Week, Bucket::Month] {
                        a href={ "/clients/" (id) "?" (r.query()) "&bucket=" (b.as_str()) "#metrics" }
                            aria-current=[(b == metric_bucket).then_some("true")] { (b.as_str()) }
                    }
                }
            }
            @if metric_charts.is_empty() {
                p class="empty" { "No custom metrics in this period." }
            } @else {
                div class="grid two" {
                    @for (name, how, chart) in &metric_charts {
                        div {
                            h3 class="small" style="margin:0 0 .4rem" {
                                (name) " " span class="muted" { "(" (how) " per " (metric_bucket.as_str()) ")" }
                            }
                            (chart)
                        }
                    }
                }
            }
        }
        @if editor { (client_edit::manage_card(&user.csrf, &client)) }
    };
    Ok(page(page_layout(
        &client.client_name,
        Nav::Clients,
        Some(&user.who(&tenant)),
        body,
    )))
}
