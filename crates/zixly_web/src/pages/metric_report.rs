//! `/reports/metrics`: one custom metric across every client, per day, week or month — the page of
//! `GET /api/v1/reports/metrics` (the same query, `TenantTx::metric_report`). Each bucket's value
//! is the aggregate the metric's catalogue definition names (hours sum, an NPS averages), with
//! how many clients and readings it covers; the CSV link is the API's `format=csv`.

use axum::extract::Query;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use zixly_db::queries::series::{Bucket, BucketWindow};

use super::chart::{self, ChartSeries};
use super::html::{self, page_layout, q, Nav};
use super::range::{range_picker, today_in, Range, RangeParams};
use super::{page, PageError, PageUser};
use crate::auth::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct MetricReportParams {
    pub name: Option<String>,
    pub bucket: Option<String>,
    #[serde(flatten)]
    pub range: RangeParams,
}

pub async fn page_handler(
    user: PageUser<Viewer>,
    Query(p): Query<MetricReportParams>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let today = today_in(&tenant.time_zone);
    let r = Range::resolve(&p.range, today);
    let definitions = tx.metric_definitions().await?;
    let bucket = p
        .bucket
        .as_deref()
        .and_then(|b| b.parse::<Bucket>().ok())
        .unwrap_or_else(|| chart::bucket_named(r.bucket()));
    // The asked metric if the tenant has it, else the first one.
    let chosen = p
        .name
        .as_deref()
        .and_then(|n| definitions.iter().find(|d| d.name == n))
        .or(definitions.first());
    let rows = match chosen {
        Some(d) => {
            let window = BucketWindow {
                from: r.from,
                to: r.to,
                next: None,
            };
            tx.metric_report(&d.name, bucket, &window).await?
        }
        None => Vec::new(),
    };
    tx.commit().await?;

    let slots = chart::slots(r.from, r.to, bucket, today);
    let chart = chosen.map(|d| {
        let values = slots
            .iter()
            .map(|s| {
                let start = bucket.start_of(s.start);
                rows.iter()
                    .find(|x| x.bucket_start == start)
                    .map(|x| x.value)
            })
            .collect();
        let series = [ChartSeries {
            label: &d.display_name,
            color: "#6d4bd1",
            values,
            money: false,
            unit: d.unit.as_deref(),
        }];
        chart::Chart {
            id: "metric-report",
            caption: &format!("{} of all clients per {}", d.display_name, bucket.as_str()),
            bucket,
            slots: &slots,
            series: &series,
            symbol: "",
            style: chart::Style::for_aggregation(d.aggregation),
            small: false,
        }
        .render()
    });
    let how = chart::aggregate_word;
    let unit = |d: &Option<String>| d.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
    let body = html! {
        p class="small" { a href={ "/reports?" (r.query()) } { "← Reports" } }
        (html::head(
            "Custom metrics across clients",
            &format!("{} – {}", html::date(r.from), html::date(r.to)),
            range_picker("/reports/metrics", &r),
        ))
        @if definitions.is_empty() {
            section class="card" {
                p class="empty" {
                    "No custom metrics yet. Import a custom-metrics CSV on "
                    a href="/imports" { "Imports" } " or send them through the API."
                }
            }
        } @else {
            form class="card row" method="get" action="/reports/metrics" {
                input type="hidden" name="range" value=(r.preset);
                @if r.preset == "custom" {
                    input type="hidden" name="from" value=(r.from);
                    input type="hidden" name="to" value=(r.to);
                }
                div class="field" style="flex:1;min-width:200px" {
                    label for="metric" { "Metric" }
                    select id="metric" name="name" {
                        @for d in &definitions {
                            option value=(d.name) selected[chosen.is_some_and(|c| c.name == d.name)] { (d.display_name) }
                        }
                    }
                }
                div class="field" {
                    label for="bucket" { "Per" }
                    select id="bucket" name="bucket" {
                        @for b in [Bucket::Day, Bucket::Week, Bucket::Month] {
                            option value=(b.as_str()) selected[b == bucket] { (b.as_str()) }
                        }
                    }
                }
                button type="submit" class="secondary" { "Show" }
            }
            @if let (Some(d), Some(chart)) = (chosen, chart) {
                section class="card" aria-labelledby="metric-title" {
                    div class="card-head" {
                        h2 id="metric-title" { (d.display_name) " " span class="muted small" { "(" (how(d.aggregation)) " per " (bucket.as_str()) ", all clients)" } }
                        a class="button secondary" href={
                            "/api/v1/reports/metrics?name=" (q(&d.name)) "&from=" (r.from) "&to=" (r.to) "&bucket=" (bucket.as_str()) "&format=csv"
                        } { "Download CSV" }
                    }
                    @if let Some(desc) = &d.description { p class="muted small" { (desc) } }
                    (chart)
                }
                section class="card" aria-label="Metric values" {
                    div class="table-wrap" {
                        table data-table="metric-report" {
                            thead { tr {
                                th scope="col" { "Period" }
                                th scope="col" class="num" { (how(d.aggregation)) }
                                th scope="col" class="num" { "Clients" }
                                th scope="col" class="num hide-sm" { "Readings" }
                                th scope="col" class="num hide-sm" { "Lowest" }
                                th scope="col" class="num hide-sm" { "Highest" }
                            } }
                            tbody {
                                @if rows.is_empty() {
                                    tr { td colspan="6" class="empty" { "No values in this period." } }
                                }
                                @for x in &rows {
                                    tr {
                                        td { (html::date(x.bucket_start)) }
                                        td class="num" { (html::number(x.value)) (unit(&x.unit)) }
                                        td class="num" { (html::count(x.clients)) }
                                        td class="num hide-sm" { (html::count(x.count)) }
                                        td class="num hide-sm" { (html::number(x.min)) }
                                        td class="num hide-sm" { (html::number(x.max)) }
                                    }
                                }
                            }
                        }
                    }
                    p class="hint" { "Change how this metric adds up in the " a href="/catalogue" { "metric catalogue" } "." }
                }
            }
        }
    };
    Ok(page(page_layout(
        "Custom metrics",
        Nav::Reports,
        Some(&user.who(&tenant)),
        body,
    )))
}
