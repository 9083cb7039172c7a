//! Where a redirect taken from input (`next` after login) may send the browser: only to a path of
//! this server.
//!
//! Checking the string (`starts_with('/')`, no `//`, no `/\`) is not enough: browsers remove tabs
//! and newlines from URLs and read `\` as `/`, so `/\t/evil.example` is `//evil.example` to them.
//! The only reliable check is to parse the target as a browser does: [`url::Url::join`] applies the
//! WHATWG URL rules (the ones browsers implement, tab/newline stripping and backslashes included)
//! onto a fixed base; the target is accepted only when the result keeps the base's origin, and
//! only its path, query and fragment are re-emitted — percent-encoded ASCII, so it is always a
//! valid `Location` header.

use url::Url;

/// A base no real host can have (`.invalid` is reserved, RFC 2606).
const BASE: &str = "http://zixly.invalid/";

/// Longer targets are refused rather than echoed into forms and headers.
const MAX_LEN: usize = 2048;

/// `next` as a same-origin path (`/clients?x=1#top`), or `/` for anything else: another origin,
/// another scheme (`javascript:`), a relative path, a protocol-relative result, something longer
/// than [`MAX_LEN`], or nothing.
pub(crate) fn local_target(next: Option<&str>) -> String {
    next.and_then(parse_local)
        .unwrap_or_else(|| "/".to_string())
}

fn parse_local(next: &str) -> Option<String> {
    // A path-relative target (`clients`) would depend on the page it is resolved against.
    if next.len() > MAX_LEN || !next.trim_start().starts_with(['/', '\\']) {
        return None;
    }
    let base = Url::parse(BASE).expect("the base URL parses");
    let joined = base.join(next).ok()?;
    if joined.origin() != base.origin() {
        return None;
    }
    let mut out = joined.path().to_string();
    if let Some(q) = joined.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = joined.fragment() {
        out.push('#');
        out.push_str(f);
    }
    // A path may still begin with `//` (`/.//evil` normalises to `//evil`): as a `Location` that
    // is protocol-relative, another host. And whatever is emitted must resolve back to itself.
    let again = base.join(&out).ok()?;
    if out.starts_with("//") || again.origin() != base.origin() || again != joined {
        return None;
    }
    (out.len() <= MAX_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_targets_fall_back_to_the_root() {
        let long = format!("/{}", "a".repeat(MAX_LEN));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "https://evil.example",
            "http://zixly.invalid@evil.example/",
            "HTTP://evil.example",
            "javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/.//evil.example",
            "/./\\evil.example",
            "/..//evil.example",
            "clients",
            "",
            long.as_str(),
        ] {
            assert_eq!(local_target(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn local_paths_survive_with_query_and_fragment_and_come_out_as_valid_header_values() {
        for (input, want) in [
            ("/", "/"),
            ("/clients?x=1", "/clients?x=1"),
            (
                "/clients?from=2024-01-01&to=2024-12-31#chart",
                "/clients?from=2024-01-01&to=2024-12-31#chart",
            ),
            (
                "/reports/funnel?client=a%20b",
                "/reports/funnel?client=a%20b",
            ),
            // Encoded slashes are a path segment to a browser, not an authority.
            ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
            // Control characters are stripped (tab, newline) or encoded, as a browser does.
            ("/\n", "/"),
            ("/cli\tents", "/clients"),
            ("/a\u{1}b", "/a%01b"),
            ("/x y", "/x%20y"),
            ("/é", "/%C3%A9"),
            ("/a/../b", "/b"),
        ] {
            let got = local_target(Some(input));
            assert_eq!(got, want, "{input:?}");
            assert!(
                axum::http::HeaderValue::from_str(&got).is_ok(),
                "{input:?} → {got:?}"
            );
        }
    }
}
