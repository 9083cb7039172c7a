//! Static assets, embedded in the binary (no CDN, no files next to it).
//!
//! URLs carry a content fingerprint (`/assets/app.3f2a9c1d.css`), so responses are cacheable
//! forever (`immutable`) and a new binary's assets are fetched afresh. The fingerprint is FNV-1a
//! of the bytes, computed once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "app",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "uplot",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        name: "uplot",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uplot-license",
        ext: "txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/uplot/LICENSE"),
    },
];

fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h = (h ^ u32::from(*b)).wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

fn urls() -> &'static Vec<(String, String)> {
    static URLS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    URLS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                (
                    format!("{}.{}", a.name, a.ext),
                    format!("/assets/{}.{}.{}", a.name, fingerprint(a.bytes), a.ext),
                )
            })
            .collect()
    })
}

/// The fingerprinted URL of `file` (`"app.css"`). Panics on an unknown name (a programming error
/// that every page test would catch).
pub fn url(file: &str) -> &'static str {
    urls()
        .iter()
        .find(|(k, _)| k == file)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("unknown asset {file}"))
}

/// Total bytes of the JavaScript and CSS a page loads (BENCHMARKS.md records it).
pub fn shipped_js_css_bytes() -> usize {
    ASSETS
        .iter()
        .filter(|a| a.ext == "js" || a.ext == "css")
        .map(|a| a.bytes.len())
        .sum()
}

/// `GET /assets/{file}`: `name.fingerprint.ext`, or `name.ext` (not cached, for humans).
pub async fn serve(Path(file): Path<String>) -> Response {
    let mut parts = file.split('.');
    let (name, second, third) = (parts.next(), parts.next(), parts.next());
    let (name, print, ext) = match (name, second, third) {
        (Some(n), Some(p), Some(e)) => (n, Some(p), e),
        (Some(n), Some(e), None) => (n, None, e),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let Some(asset) = ASSETS.iter().find(|a| a.name == name && a.ext == ext) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = match print {
        Some(p) if p == fingerprint(asset.bytes) => "public, max-age=31536000, immutable",
        Some(_) => return StatusCode::NOT_FOUND.into_response(),
        None => "no-cache",
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_fingerprinted_and_assets_fit_the_budget() {
        assert!(url("app.css").starts_with("/assets/app.") && url("app.css").ends_with(".css"));
        assert_ne!(url("app.js"), url("uplot.js"));
        // Goal of issue 6: under 300 KB of JS + CSS, uncompressed.
        assert!(
            shipped_js_css_bytes() < 300 * 1024,
            "{} bytes",
            shipped_js_css_bytes()
        );
    }
}
