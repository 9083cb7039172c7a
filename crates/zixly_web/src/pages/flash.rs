//! Flash messages after a redirect (POST → 303 → GET), from fixed message codes.
//!
//! The redirect carries a code (`?ok=role_changed`, `?err=last_admin`) and at most the id of the
//! thing it is about (`&who=<uuid>`), never text: a link someone else crafted could otherwise put
//! any sentence ("Your account is locked, call …") on a Zixly page under the tenant's name. The
//! page looks the code up in its own table, and fills `{email}` / `{role}` from the database
//! (through the tenant's transaction, so an id of another tenant names no one). Unknown codes show
//! nothing.

use axum::response::Response;
use maud::Markup;
use serde::Deserialize;
use uuid::Uuid;

use super::html::flash_box;
use super::see_other;

/// The flash part of a page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    pub ok: Option<String>,
    pub err: Option<String>,
    /// The user (or other subject) the message is about.
    pub who: Option<Uuid>,
}

/// One message a page can show: its code in the URL and its text, with optional `{email}` and
/// `{role}` placeholders the page fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub code: &'static str,
    pub text: &'static str,
    pub is_error: bool,
}

impl Notice {
    pub const fn ok(code: &'static str, text: &'static str) -> Notice {
        Notice {
            code,
            text,
            is_error: false,
        }
    }

    pub const fn err(code: &'static str, text: &'static str) -> Notice {
        Notice {
            code,
            text,
            is_error: true,
        }
    }

    /// The redirect to `path` that shows this notice, about `who` when given.
    pub fn redirect(&self, path: &str, who: Option<Uuid>) -> Response {
        let key = if self.is_error { "err" } else { "ok" };
        match who {
            Some(id) => see_other(&format!("{path}?{key}={}&who={id}", self.code)),
            None => see_other(&format!("{path}?{key}={}", self.code)),
        }
    }

    /// The text with `{email}` and `{role}` replaced (by "someone" / "" when unknown).
    pub fn render(&self, email: Option<&str>, role: Option<&str>) -> Markup {
        let text = self
            .text
            .replace("{email}", email.unwrap_or("someone"))
            .replace("{role}", role.unwrap_or(""));
        flash_box(if self.is_error { "err" } else { "ok" }, &text)
    }
}

impl FlashQuery {
    /// The notice of `table` this query names: `ok` codes among the success notices, `err` codes
    /// among the errors, anything else nothing.
    pub fn pick(&self, table: &'static [Notice]) -> Option<&'static Notice> {
        let (code, is_error) = match (&self.ok, &self.err) {
            (Some(code), _) => (code, false),
            (None, Some(code)) => (code, true),
            (None, None) => return None,
        };
        table
            .iter()
            .find(|n| n.code == code && n.is_error == is_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Notice] = &[
        Notice::ok("done", "{email} is now {role}."),
        Notice::err("nope", "That did not work."),
    ];

    fn query(ok: Option<&str>, err: Option<&str>) -> FlashQuery {
        FlashQuery {
            ok: ok.map(str::to_string),
            err: err.map(str::to_string),
            who: None,
        }
    }

    #[test]
    fn only_known_codes_of_the_right_kind_show_anything() {
        assert_eq!(query(Some("done"), None).pick(TABLE), Some(&TABLE[0]));
        assert_eq!(query(None, Some("nope")).pick(TABLE), Some(&TABLE[1]));
        // A code under the other key, free text, and nothing at all show nothing.
        assert_eq!(query(None, Some("done")).pick(TABLE), None);
        assert_eq!(
            query(Some("Your account is locked, call 555"), None).pick(TABLE),
            None
        );
        assert_eq!(query(None, None).pick(TABLE), None);
    }

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let html = TABLE[0]
            .render(Some("<b>x@y.co</b>"), Some("EDITOR"))
            .into_string();
        assert!(
            html.contains("&lt;b&gt;x@y.co&lt;/b&gt; is now EDITOR."),
            "{html}"
        );
        assert!(html.contains(r#"role="status""#), "{html}");
        let err = TABLE[1].render(None, None).into_string();
        assert!(err.contains(r#"role="alert""#), "{err}");
    }
}
