//! The overview compares like with like: a comparison period the tenant's data does not cover
//! says "no data for …" instead of a percentage, and a range that cannot be shown says which field
//! is wrong instead of silently showing another one.

use reqwest::header::COOKIE;
use reqwest::Method;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp, PASSWORD};

use super::page_kit::get_page;

/// The text of the KPI card `kpi` (tags stripped, whitespace collapsed).
fn card_text(html: &str, kpi: &str) -> String {
    let start = html
        .find(&format!(r#"data-kpi="{kpi}""#))
        .unwrap_or_else(|| panic!("no KPI card {kpi}"));
    let end = html[start..].find("</section>").expect("the card ends") + start;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A client whose financials run from 15 October to 30 November 2025, every day.
async fn seeded_app() -> (TestApp, String) {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "R-1", "client_name": "Range Co"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let client: Value = res.json().await.unwrap();
    let id = client["id"].as_str().unwrap().to_string();
    let t = app.a.id;
    let su = app.db.superuser().await;
    su.batch_execute(&format!(
        "set role zixly_owner;
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
         select '{t}', '{id}', d::date, 100.00, 40.00, 60.00, 50.00
           from generate_series(date '2025-10-15', date '2025-11-30', interval '1 day') d;"
    ))
    .await
    .unwrap();
    let token = app.login_token(&app.a.viewer.email, PASSWORD).await;
    (app, format!("zixly_session={token}"))
}

#[tokio::test]
async fn a_comparison_period_without_data_says_so_instead_of_a_percentage() {
    let (app, cookie) = seeded_app().await;

    // November 2025: October (the previous month) has data from the 15th only, November 2024
    // has none.
    let html = get_page(&app, &cookie, "/?from=2025-11-01&to=2025-11-30").await;
    let revenue = card_text(&html, "revenue");
    assert!(
        revenue.contains("vs previous period: no data for 1–14 Oct 2025"),
        "{revenue}"
    );
    assert!(
        revenue.contains("vs last year: no data for Nov 2024"),
        "{revenue}"
    );
    assert!(
        !revenue.contains('%'),
        "no percentage against missing days: {revenue}"
    );
    assert!(card_text(&html, "margin").contains("no data for Nov 2024"));

    // 16–30 November against 1–15 November, both covered: a real change (both 15 days, equal).
    let html = get_page(&app, &cookie, "/?from=2025-11-16&to=2025-11-30").await;
    let revenue = card_text(&html, "revenue");
    assert!(revenue.contains("0.0% vs previous period"), "{revenue}");
    assert!(
        revenue.contains("vs last year: no data for 16–30 Nov 2024"),
        "{revenue}"
    );

    // Lead events: none at all, so the pipeline cards have nothing to compare with.
    let pipeline = card_text(&html, "pipeline");
    assert!(
        pipeline.contains("vs previous period: no data for 1–15 Nov 2025"),
        "{pipeline}"
    );
}

#[tokio::test]
async fn an_invalid_custom_range_shows_which_field_is_wrong() {
    let (app, cookie) = seeded_app().await;
    let cases = [
        (
            "/?range=custom&from=2025-11-30&to=2025-11-01",
            "from",
            "From: 30 Nov 2025 is after the To date, 1 Nov 2025.",
        ),
        (
            "/?from=2025-11-01&to=2025-13-01",
            "to",
            "To: “2025-13-01” is not a date (use YYYY-MM-DD).",
        ),
        (
            "/?from=1990-01-01&to=2025-11-30",
            "to",
            "To: 1 Jan 1990 – 30 Nov 2025 is longer than the 10 years",
        ),
        (
            "/?range=custom&from=2025-11-01",
            "to",
            "To: a custom range needs both a From and a To date.",
        ),
        (
            "/?range=fortnight",
            "range",
            "Range: “fortnight” is not a range",
        ),
    ];
    for (path, field, message) in cases {
        let html = get_page(&app, &cookie, path).await;
        assert!(
            html.contains(&format!(r#"data-range-error="{field}""#)),
            "{path}: no notice about {field}"
        );
        assert!(
            html.contains(message),
            "{path}: the notice does not say {message:?}"
        );
        assert!(html.contains("Showing last 12 months instead."), "{path}");
    }
    // The same notice on the other pages with a range picker.
    for path in ["/reports", "/clients"] {
        let html = get_page(
            &app,
            &cookie,
            &format!("{path}?from=2025-11-30&to=2025-11-01"),
        )
        .await;
        assert!(html.contains(r#"data-range-error="from""#), "{path}");
    }
    // The CSV download has no page to explain it on: 422 naming the field, like the API.
    let res = app
        .anonymous(
            Method::GET,
            "/reports/profitability.csv?from=2025-11-01&to=nope",
        )
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("`to` (nope) is not a date YYYY-MM-DD"),
        "{body}"
    );
    // A valid range has no notice, and `from`/`to` alone select it.
    let html = get_page(&app, &cookie, "/?from=2025-11-01&to=2025-11-30").await;
    assert!(!html.contains("data-range-error"));
    assert!(
        html.contains("1 Nov 2025 – 30 Nov 2025"),
        "the custom range is shown"
    );
}
