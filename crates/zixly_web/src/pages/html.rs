//! HTML building blocks: escaping, the page layout, number formatting (charts: `chart.rs`).
//!
//! Pages are moving from `format!` strings with manual [`esc`] calls to maud (`html!`), which
//! escapes every interpolated value unless it is wrapped in `PreEscaped`; the typed components
//! are below the string ones (see ARCHITECTURE.md, "HTML").

use std::fmt::Write as _;

use maud::{html, Markup, DOCTYPE};
use rust_decimal::Decimal;
use zixly_domain::Role;

use super::assets;

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
    Account,
    Metrics,
    Notifications,
    Channels,
    Data,
    Goals,
    Alerts,
    None,
}

/// Who is looking at the page (for the top bar and role-aware controls).
pub struct Who<'a> {
    pub email: &'a str,
    pub role: Role,
    pub tenant_name: &'a str,
    pub csrf: &'a str,
    /// The user's unread in-app notifications (the top bar's count).
    pub unread: i64,
}

/// The navigation bar's entries: section, link, label, and the least role that sees it.
const NAV_ITEMS: &[(Nav, &str, &str, Role)] = &[
    (Nav::Overview, "/", "Overview", Role::Viewer),
    (Nav::Clients, "/clients", "Clients", Role::Viewer),
    (Nav::Reports, "/reports", "Reports", Role::Viewer),
    (Nav::Goals, "/goals", "Goals", Role::Viewer),
    (Nav::Alerts, "/alerts", "Alerts", Role::Viewer),
    (Nav::Metrics, "/catalogue", "Metrics", Role::Viewer),
    (Nav::Imports, "/imports", "Imports", Role::Editor),
    (
        Nav::Integrations,
        "/integrations",
        "Integrations",
        Role::Viewer,
    ),
    (Nav::Team, "/team", "Team", Role::Admin),
    (Nav::Audit, "/audit", "Audit log", Role::Admin),
    (
        Nav::Channels,
        "/settings/notifications",
        "Channels",
        Role::Admin,
    ),
    (Nav::Data, "/settings/data", "Data", Role::Admin),
];

/// The top bar of a signed-in page: the sections `who` may open, who is signed in, log out.
fn top_bar(nav: Nav, who: &Who<'_>) -> Markup {
    html! {
        header class="topbar" {
            div class="inner" {
                a class="logo" href="/" { span class="logo-mark" aria-hidden="true" { "Z" } "Zixly" }
                // On a phone the navigation folds behind this button (app.js shows the button
                // and toggles the menu; without script the links stay visible as a row).
                button type="button" class="menu-toggle" aria-expanded="false" aria-controls="main-nav" hidden { "Menu" }
                nav class="nav" id="main-nav" aria-label="Main" {
                    @for (n, href, label, least) in NAV_ITEMS {
                        @if who.role.includes(*least) {
                            a href=(href) aria-current=[(*n == nav).then_some("page")] { (label) }
                        }
                    }
                    // The top bar hides the email on a phone: the menu carries the account link.
                    a class="nav-account" href="/account" aria-current=[(nav == Nav::Account).then_some("page")] { "Your account" }
                }
                div class="who" {
                    (notifications_link(nav, who.unread))
                    a class="email" href="/account" title={ "Your account at " (who.tenant_name) }
                        aria-current=[(nav == Nav::Account).then_some("page")] { (who.email) }
                    span class="badge" data-role=(who.role) { (who.role) }
                    form method="post" action="/logout" {
                        (csrf_input(who.csrf))
                        button type="submit" { "Log out" }
                    }
                }
            }
        }
    }
}

/// The notification centre's link with the unread count (a screen reader hears the count in
/// words, not a bare number).
fn notifications_link(nav: Nav, unread: i64) -> Markup {
    let label = match unread {
        0 => "Notifications, none unread".to_string(),
        1 => "Notifications, 1 unread".to_string(),
        n => format!("Notifications, {n} unread"),
    };
    html! {
        a class="notif-link" href="/notifications" aria-label=(label) title=(label)
            aria-current=[(nav == Nav::Notifications).then_some("page")] {
            "Notifications"
            @if unread > 0 { span class="notif-count" data-unread=(unread) { (unread.min(99)) @if unread > 99 { "+" } } }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typed components (maud): text is `&str` and escaped by maud, markup is `Markup`, so a caller
// can no longer pass HTML where text goes.

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

/// A complete page: `<head>` with the embedded assets, the top bar when someone is signed in,
/// and `body`. The only layout: every page, error pages included, is built by it.
pub fn page_layout(title: &str, nav: Nav, who: Option<&Who<'_>>, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light";
                title { (title) " · Zixly" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url("uplot.css"));
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("uplot.js")) defer {}
                script src=(assets::url("app.js")) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                @if let Some(who) = who { (top_bar(nav, who)) }
                main id="main" { (body) }
                @if who.is_some() { footer { "Zixly · self-hosted business KPIs" } }
            }
        }
    };
    page.into_string()
}

// ---------------------------------------------------------------------------------------------
// Numbers

// The formatting itself lives in `zixly_domain::display`, shared with the alert reasons and the
// notifications, so a figure reads the same on a page and in the mail about it.
pub use zixly_domain::display::{count, currency_symbol, date, money, money_short, number};

/// A ratio as a percentage with one decimal (`0.123` → `12.3%`): the one formatting of the one
/// rounding in `zixly_domain::figures`, so every page agrees with the API and the CSV.
pub fn percent(fraction: Decimal) -> String {
    zixly_domain::figures::percent_text(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(q("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
