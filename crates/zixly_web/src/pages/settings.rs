//! `/settings/data` (ADMIN): how long the workspace keeps raw daily financials (retention,
//! migrations/0022). The change is [`crate::actions::settings`], the API's action too; the
//! deletion is the worker's scheduled job. [`retention_notice`] is the line the report pages
//! show when a range reaches back before the first day of day-level data.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;
use zixly_db::queries::dashboard::DailyTotals;
use zixly_db::retention::{Retention, MAX_RETENTION_MONTHS};

use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{page, PageError, PageUser};
use crate::actions::settings as actions;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::input_guard::Form;

const NOTICES: &[Notice] = &[Notice::ok(
    "retention_saved",
    "The retention period was saved.",
)];

/// The page's address.
pub const DATA_SETTINGS: &str = "/settings/data";

/// "Figures before 1 Mar 2024 are monthly totals": shown by a report page whose range (or a
/// comparison period) starts before `raw_data_from`.
pub fn retention_notice(raw_data_from: Option<NaiveDate>, range_from: NaiveDate) -> Markup {
    match raw_data_from {
        Some(cutoff) if range_from < cutoff => html! {
            p class="flash info" role="note" data-retention-notice=(cutoff) {
                "Figures before " (cutoff.format("%-d %b %Y")) " are monthly totals: this workspace keeps "
                "day-level data from then on (data retention). Days, weeks and partial months before it are not shown."
            }
        },
        _ => html! {},
    }
}

/// The days a chart in `bucket`s may plot: all of them in month buckets; in day and week
/// buckets not the months before the retention cutoff, whose totals `daily_totals` puts on their
/// first day (a spike a reader would take for a day's figure).
pub fn chartable_days(
    days: &[DailyTotals],
    raw_data_from: Option<NaiveDate>,
    bucket: &str,
) -> Vec<DailyTotals> {
    match raw_data_from {
        Some(cutoff) if bucket == "day" || bucket == "week" => {
            days.iter().filter(|d| d.date >= cutoff).cloned().collect()
        }
        _ => days.to_vec(),
    }
}

pub async fn data_page(
    user: PageUser<Admin>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = q.pick(NOTICES).map(|n| n.render(None, None));
    render(&user, StatusCode::OK, message, None).await
}

async fn render(
    user: &PageUser<Admin>,
    status: StatusCode,
    message: Option<Markup>,
    typed: Option<&str>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let retention = tx.retention().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let body = body(user, &retention, message, typed);
    let mut response = page(page_layout(
        "Data retention",
        Nav::Data,
        Some(&user.who(&tenant)),
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

fn body(
    user: &PageUser<Admin>,
    r: &Retention,
    message: Option<Markup>,
    typed: Option<&str>,
) -> Markup {
    let current = r.months.map(|m| m.to_string()).unwrap_or_default();
    let value = typed.unwrap_or(&current);
    html! {
        (html::head(
            "Data retention",
            "How long raw daily financials are kept. Monthly totals are kept either way.",
            html! {},
        ))
        @if let Some(m) = message { (m) }
        section class="card" aria-labelledby="now-title" {
            h2 id="now-title" { "Now" }
            @match (r.months, r.raw_data_from) {
                (Some(months), Some(from)) => {
                    p data-retention="on" {
                        "Raw daily financials are kept for " b { (months) " months" } " before the current month: "
                        "from " b { (from.format("%-d %b %Y")) } " on. Older rows are deleted by the worker's "
                        "retention run, every few hours; each run is in the audit log."
                    }
                },
                _ => p data-retention="off" { "Raw daily financials are kept forever." },
            }
            p class="hint" {
                "With a retention period, reports, goals and alerts read monthly totals before the first day kept: whole months stay exact, "
                "per client and for the workspace; days, weeks and partial months are no longer available. "
                "Imports and syncs skip rows dated before it (their result says how many). "
                "Lead events and custom metrics are not affected."
            }
        }
        section class="card" aria-labelledby="set-title" {
            h2 id="set-title" { "Change" }
            form class="row" method="post" action=(DATA_SETTINGS) {
                (csrf_input(&user.csrf))
                div class="field" {
                    label for="retention-months" { "Months of daily data to keep" }
                    input id="retention-months" name="raw_retention_months" type="number" min="1"
                        max=(MAX_RETENTION_MONTHS) step="1" inputmode="numeric" placeholder="forever"
                        value=(value) aria-describedby="retention-hint";
                }
                button type="submit" { "Save" }
            }
            p class="hint" id="retention-hint" {
                "Leave empty to keep everything. A shorter period deletes the older daily rows at the next "
                "retention run; they cannot be brought back by a longer one."
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RetentionForm {
    #[serde(rename = "_csrf", default)]
    pub csrf: String,
    #[serde(default)]
    pub raw_retention_months: String,
}

pub async fn save(
    user: PageUser<Admin>,
    Form(f): Form<RetentionForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let typed = f.raw_retention_months.trim();
    // Not a number at all is the same refusal as a number out of range (an `i64` holds any
    // period the form can mean; the action checks the range).
    let result = match typed.parse::<i64>() {
        _ if typed.is_empty() => actions::set_retention(&user.auth, None).await.map(drop),
        Ok(m) => actions::set_retention(&user.auth, Some(m)).await.map(drop),
        Err(_) => Err(ApiError::validation(Vec::new())),
    };
    match result {
        Ok(()) => Ok(NOTICES[0].redirect(DATA_SETTINGS, None)),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let message = flash_box(
                "err",
                &format!(
                    "Months of daily data: a whole number from 1 to {MAX_RETENTION_MONTHS}, or empty to keep everything."
                ),
            );
            render(&user, e.status(), Some(message), Some(typed)).await
        }
        Err(e) => Err(e.into()),
    }
}
