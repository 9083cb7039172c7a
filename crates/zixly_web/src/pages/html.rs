//! HTML building blocks: escaping, the page layout, number formatting, sparklines, chart specs.
//!
//! Pages are moving from `format!` strings with manual [`esc`] calls to maud (`html!`), which
//! escapes every interpolated value unless it is wrapped in `PreEscaped`; the typed components
//! are below the string ones (see ARCHITECTURE.md, "HTML").

use std::fmt::Write as _;

use chrono::NaiveDate;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::json;
use zixly_domain::Role;

use super::assets;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The sections of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Clients,
    Reports,
    Imports,
    Integrations,
    Team,
    Audit,
    None,
}

/// Who is looking at the page (for the top bar and role-aware controls).
pub struct Who<'a> {
    pub email: &'a str,
    pub role: Role,
    pub tenant_name: &'a str,
    pub csrf: &'a str,
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(csrf: &str) -> String {
    csrf_input(csrf).into_string()
}

/// A complete page: `<head>` with the embedded assets, the top bar, and `body` (already HTML).
pub fn layout(title: &str, nav: Nav, who: Option<&Who<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{title} · Zixly</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{uplot_css}">
<link rel="stylesheet" href="{app_css}">
<script src="{uplot_js}" defer></script>
<script src="{app_js}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
"##,
        title = esc(title),
        uplot_css = assets::url("uplot.css"),
        app_css = assets::url("app.css"),
        uplot_js = assets::url("uplot.js"),
        app_js = assets::url("app.js"),
    );
    if let Some(who) = who {
        let items: &[(Nav, &str, &str, Role)] = &[
            (Nav::Overview, "/", "Overview", Role::Viewer),
            (Nav::Clients, "/clients", "Clients", Role::Viewer),
            (Nav::Reports, "/reports", "Reports", Role::Viewer),
            (Nav::Imports, "/imports", "Imports", Role::Editor),
            (
                Nav::Integrations,
                "/integrations",
                "Integrations",
                Role::Viewer,
            ),
            (Nav::Team, "/team", "Team", Role::Admin),
            (Nav::Audit, "/audit", "Audit log", Role::Admin),
        ];
        let _ = write!(
            out,
            r#"<header class="topbar"><div class="inner">
<a class="logo" href="/"><span class="logo-mark" aria-hidden="true">Z</span>Zixly</a>
<nav class="nav" aria-label="Main">"#
        );
        for (n, href, label, least) in items {
            if !who.role.includes(*least) {
                continue;
            }
            let current = if *n == nav {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(out, r#"<a href="{href}"{current}>{label}</a>"#);
        }
        let _ = write!(
            out,
            r#"</nav>
<div class="who"><span class="email" title="{tenant}">{email}</span><span class="badge" data-role="{role}">{role}</span>
<form method="post" action="/logout">{csrf}<button type="submit">Log out</button></form></div>
</div></header>
"#,
            tenant = esc(who.tenant_name),
            email = esc(who.email),
            role = who.role.as_str(),
            csrf = csrf_field(who.csrf),
        );
    }
    let _ = write!(out, "<main id=\"main\">\n{body}\n</main>\n");
    if who.is_some() {
        out.push_str("<footer>Zixly · self-hosted business KPIs</footer>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A page heading with an optional subtitle and right-hand controls.
pub fn page_head(title: &str, subtitle: &str, controls: &str) -> String {
    format!(
        r#"<div class="page-head"><div><h1>{}</h1>{}</div>{}</div>"#,
        esc(title),
        if subtitle.is_empty() {
            String::new()
        } else {
            format!(r#"<p class="muted">{subtitle}</p>"#)
        },
        controls
    )
}

pub fn flash(kind: &str, message: &str) -> String {
    flash_box(kind, message).into_string()
}

// ---------------------------------------------------------------------------------------------
// Typed components (maud). Pages move to these one at a time (issue #11 item 2): text is `&str`
// and escaped by maud, markup is `Markup`, so a caller can no longer pass HTML where text goes.
// The `String` versions above remain until the last page is converted.

/// The hidden CSRF field every form carries.
pub fn csrf_input(csrf: &str) -> Markup {
    html! { input type="hidden" name="_csrf" value=(csrf); }
}

/// A page heading with an optional subtitle and right-hand controls.
pub fn head(title: &str, subtitle: &str, controls: Markup) -> Markup {
    html! {
        div class="page-head" {
            div {
                h1 { (title) }
                @if !subtitle.is_empty() { p class="muted" { (subtitle) } }
            }
            (controls)
        }
    }
}

/// A flash message; `kind` is `ok` or `err` (an error is announced as an alert).
pub fn flash_box(kind: &str, message: &str) -> Markup {
    html! {
        div class={ "flash " (kind) } role=(if kind == "err" { "alert" } else { "status" }) { (message) }
    }
}

/// A complete page around typed `body`.
pub fn page_layout(title: &str, nav: Nav, who: Option<&Who<'_>>, body: Markup) -> String {
    layout(title, nav, who, &body.into_string())
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// The symbol shown before amounts of `currency` (the code itself when it has no common symbol).
pub fn currency_symbol(currency: &str) -> String {
    match currency {
        "AUD" | "USD" | "CAD" | "NZD" | "SGD" | "HKD" | "MXN" => "$".into(),
        "EUR" => "€".into(),
        "GBP" => "£".into(),
        "JPY" | "CNY" => "¥".into(),
        "INR" => "₹".into(),
        "KRW" => "₩".into(),
        "CHF" => "CHF ".into(),
        other => format!("{other} "),
    }
}

fn group_thousands(int_part: &str) -> String {
    let digits: Vec<char> = int_part.chars().collect();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*c);
    }
    out
}

/// `$12,345.60`, `−$3.00`: exact, two decimals, thousands grouped, a real minus sign.
pub fn money(d: Decimal, symbol: &str) -> String {
    let mut r = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    let s = r.abs().to_string();
    let (int_part, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let sign = if r.is_sign_negative() && !r.is_zero() {
        "−"
    } else {
        ""
    };
    format!("{sign}{symbol}{}.{frac}", group_thousands(int_part))
}

/// Like [`money`] without cents, for dense tables and cards: `$12,346`.
pub fn money_short(d: Decimal, symbol: &str) -> String {
    let r = d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let s = r.abs().trunc().to_string();
    let sign = if r.is_sign_negative() && !r.is_zero() {
        "−"
    } else {
        ""
    };
    format!("{sign}{symbol}{}", group_thousands(&s))
}

/// A ratio as a percentage with one decimal (`0.123` → `12.3%`): the one formatting of the one
/// rounding in `zixly_domain::figures`, so every page agrees with the API and the CSV.
pub fn percent(fraction: Decimal) -> String {
    zixly_domain::figures::percent_text(fraction)
}

pub fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

pub fn date(d: NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

// ---------------------------------------------------------------------------------------------
// Charts

/// An inline SVG sparkline of `values` (no script needed), with an accessible summary.
pub fn sparkline(values: &[f64], label: &str) -> String {
    let (w, h) = (120.0, 32.0);
    if values.len() < 2 {
        return format!(
            r#"<span class="muted small" aria-label="{}">–</span>"#,
            esc(label)
        );
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if (max - min).abs() < f64::EPSILON {
        1.0
    } else {
        max - min
    };
    let step = w / (values.len() - 1) as f64;
    let mut pts = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = i as f64 * step;
        let y = 2.0 + (h - 4.0) * (1.0 - (v - min) / span);
        let _ = write!(pts, "{x:.1},{y:.1} ");
    }
    let up = values.last() >= values.first();
    let color = if up { "#16874a" } else { "#b4232a" };
    format!(
        r#"<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}"><polyline fill="none" stroke="{color}" stroke-width="1.75" stroke-linejoin="round" points="{}"/></svg>"#,
        esc(label),
        pts.trim_end()
    )
}

/// One line of a chart: exact values as strings (the tooltip shows them unrounded).
pub struct ChartSeries<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub values: Vec<Option<Decimal>>,
    pub money: bool,
    pub unit: Option<&'a str>,
}

/// A uPlot chart: a `<figure>` the script draws into, the data as JSON beside it, and a caption
/// with the series legend. `id` must be unique in the page.
pub fn chart(
    id: &str,
    caption: &str,
    x: &[NaiveDate],
    series: &[ChartSeries<'_>],
    symbol: &str,
    bucket: &str,
    small: bool,
) -> String {
    let xs: Vec<i64> = x
        .iter()
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp()
        })
        .collect();
    let spec = json!({
        "x": xs,
        "symbol": symbol,
        "bucket": bucket,
        "series": series.iter().map(|s| json!({
            "label": s.label,
            "color": s.color,
            "money": s.money,
            "unit": s.unit,
            "values": s.values.iter().map(|v| v.map(|d| d.normalize().to_string())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    // `</` cannot appear inside the script element: escape the slash (valid JSON either way).
    let data = spec.to_string().replace("</", "<\\/");
    let mut legend = String::new();
    for s in series {
        let _ = write!(
            legend,
            r#"<span style="--c:{}">{}</span>"#,
            esc(s.color),
            esc(s.label)
        );
    }
    let empty = if x.is_empty() {
        r#"<p class="empty">No data in this period.</p>"#
    } else {
        ""
    };
    format!(
        r#"<div class="chart-legend" aria-hidden="true">{legend}</div><figure class="chart{small}" data-chart="{id}" role="img" aria-label="{caption}" style="margin:0">{empty}</figure><script type="application/json" id="{id}">{data}</script>"#,
        small = if small { " small" } else { "" },
        id = esc(id),
        caption = esc(caption),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(q("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn money_is_exact_grouped_and_signed() {
        assert_eq!(money(d("1234567.5"), "$"), "$1,234,567.50");
        assert_eq!(money(d("-0.004"), "$"), "$0.00");
        assert_eq!(money(d("-1200"), "€"), "−€1,200.00");
        assert_eq!(money(d("999.995"), "$"), "$1,000.00");
        assert_eq!(money_short(d("-12345.5"), "$"), "−$12,346");
        assert_eq!(currency_symbol("NOK"), "NOK ");
    }

    #[test]
    fn chart_data_cannot_close_its_script_element() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let html = chart(
            "c",
            "t",
            &[day],
            &[ChartSeries {
                label: "</script><b>",
                color: "#000",
                values: vec![Some(d("1.50"))],
                money: true,
                unit: None,
            }],
            "$",
            "day",
            false,
        );
        assert!(!html.contains("</script><b>"));
        assert!(html.contains(r#""values":["1.5"]"#));
    }

    #[test]
    fn sparkline_needs_two_points() {
        assert!(sparkline(&[1.0], "x").contains("–"));
        assert!(sparkline(&[1.0, 3.0, 2.0], "x").contains("<polyline"));
    }
}
