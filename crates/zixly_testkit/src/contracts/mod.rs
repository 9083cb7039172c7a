//! The providers' API contracts (`contracts/<provider>.json` at the repository root, a copy of
//! `../shared/contracts`; layout in `contracts/README.md`) and the checks that judge the fakes and
//! connectors by them:
//!
//! - [`check_requests`]: every request a fake recorded ([`crate::fakes::recorded`]) is a
//!   documented endpoint (method and path template) or OAuth URL, its query parameters are
//!   documented for that endpoint with documented enum values and within `min`/`max`, the
//!   endpoint's required headers are present (its own `headers` list, or the contract's
//!   `headers.required` for an endpoint without one), and every requested OAuth scope is
//!   documented;
//! - [`check_response_items`] / [`check_responses`]: the items at `response.list_path` carry only
//!   documented fields, with the documented JSON type, format and enum, and every required field;
//!   the body's top level has the types `response.envelope` gives in shorthand (an envelope given
//!   wholly so, like Asana's events `{data, sync, has_more}`, is the whole body:
//!   [`check_envelope`]); an error answer whose status has a documented body
//!   (`response.error_412`) has that shape ([`check_error_body`]).
//!
//! Each finding is a [`Violation`] whose `Display` names the provider, the endpoint, the field or
//! parameter, and what was expected and found.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::fakes::RecordedRequest;

/// The five providers that have a contract file.
pub const PROVIDERS: [&str; 5] = ["xero", "myob", "hubspot", "pipedrive", "asana"];

/// `contracts/` at the repository root.
pub fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// One provider's contract, parsed.
#[derive(Debug, Clone)]
pub struct Contract {
    pub provider: String,
    pub json: Value,
}

/// Loads `contracts/<provider>.json`; panics with the path and the parse error (a test helper).
pub fn load(provider: &str) -> Contract {
    let path = contracts_dir().join(format!("{provider}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading contract {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing contract {}: {e}", path.display()));
    Contract {
        provider: provider.to_string(),
        json,
    }
}

/// One entry of `endpoints[]`.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub provider: &'a str,
    pub json: &'a Value,
}

impl Contract {
    pub fn endpoints(&self) -> Vec<Endpoint<'_>> {
        self.json["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|json| Endpoint {
                provider: &self.provider,
                json,
            })
            .collect()
    }

    /// The endpoint with this `id`; panics when there is none (a typo in a test).
    pub fn endpoint(&self, id: &str) -> Endpoint<'_> {
        self.endpoints()
            .into_iter()
            .find(|e| e.id() == id)
            .unwrap_or_else(|| panic!("{} contract has no endpoint {id}", self.provider))
    }

    /// An endpoint's `query_params`. One without them whose `note` says it has the "same list
    /// contract as <id>" (HubSpot `companies_list`) has those of endpoint `<id>`.
    pub fn query_params_of<'a>(&'a self, e: &Endpoint<'a>) -> Option<&'a Map<String, Value>> {
        if let Some(p) = e.json["query_params"].as_object() {
            return Some(p);
        }
        let note = e.json["note"].as_str()?;
        let (_, rest) = note.split_once("same list contract as ")?;
        let id = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()?;
        self.json["endpoints"]
            .as_array()?
            .iter()
            .find(|x| x["id"] == id)?["query_params"]
            .as_object()
    }

    /// Names of the headers every API request must carry (`headers.required`).
    pub fn required_headers(&self) -> Vec<String> {
        self.json["headers"]["required"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every scope the contract documents: the names under `oauth.scopes` (`needed`, `available`,
    /// `coverage`, `deprecated_broad`, at any depth: Xero nests them under `legacy`/`granular`)
    /// and each endpoint's `scopes.required`.
    pub fn oauth_scopes(&self) -> BTreeSet<String> {
        fn names(v: &Value, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(m) => out.extend(m.keys().filter(|k| *k != "src").cloned()),
                Value::Array(a) => {
                    out.extend(a.iter().filter_map(|s| s.as_str()).map(String::from))
                }
                _ => {}
            }
        }
        fn walk(v: &Value, out: &mut BTreeSet<String>) {
            if let Value::Object(m) = v {
                for (k, v) in m {
                    match k.as_str() {
                        "needed" | "available" | "coverage" | "deprecated_broad" => names(v, out),
                        _ => walk(v, out),
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.json["oauth"]["scopes"], &mut out);
        for e in self.endpoints() {
            names(&e.json["scopes"]["required"], &mut out);
        }
        out
    }

    /// Paths of the documented OAuth URLs (authorize, token, revoke), with the method when the
    /// contract gives one (`"DELETE https://.../{token}"`).
    pub fn oauth_paths(&self) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let o = &self.json["oauth"];
        for key in ["authorize_url", "token_url", "revoke_url"] {
            let mut texts: Vec<&str> = Vec::new();
            match &o[key] {
                Value::String(s) => texts.push(s),
                Value::Object(m) => {
                    for (k, v) in m {
                        if k == "example" || k == "v1" || k == "v3" {
                            texts.extend(v.as_str());
                        }
                    }
                }
                _ => {}
            }
            for t in texts {
                let mut words = t.split_whitespace();
                let (method, url) = match (words.next(), words.next()) {
                    (Some(m), Some(u)) if m.chars().all(|c| c.is_ascii_uppercase()) => {
                        (Some(m.to_string()), u)
                    }
                    (Some(u), _) => (None, u),
                    _ => continue,
                };
                if let Some(path) = url_path(url) {
                    out.push((method, path));
                }
            }
        }
        out
    }
}

/// The path part of an absolute URL (`https://host/a/b` -> `/a/b`; `{api_domain}/x` -> `/x`).
fn url_path(url: &str) -> Option<String> {
    let rest = if let Some(r) = url.strip_prefix("https://").or(url.strip_prefix("http://")) {
        r
    } else if url.starts_with('{') {
        url
    } else {
        return None;
    };
    Some(match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => String::new(),
    })
}

impl<'a> Endpoint<'a> {
    pub fn id(&self) -> &'a str {
        self.json["id"].as_str().unwrap_or("?")
    }
    pub fn method(&self) -> &'a str {
        self.json["method"].as_str().unwrap_or("GET")
    }
    /// The full path templates (base URL's path + `path`; `"/a | /b"` gives two).
    pub fn path_templates(&self) -> Vec<String> {
        let base = self.json["base_url"]
            .as_str()
            .and_then(url_path)
            .unwrap_or_default();
        self.json["path"]
            .as_str()
            .unwrap_or("")
            .split(" | ")
            .map(|p| format!("{base}{}", p.trim()))
            .collect()
    }
    /// `query_params` (name -> descriptor), when the endpoint has them.
    pub fn query_params(&self) -> Option<&'a Map<String, Value>> {
        self.json["query_params"].as_object()
    }
    /// Whether the endpoint lists its headers (then that list, not the contract's top-level
    /// `headers.required`, says what it needs).
    pub fn has_header_list(&self) -> bool {
        self.json["headers"].is_array()
    }
    /// The header names this endpoint requires (its `headers` list without `(optional)` ones).
    pub fn required_headers(&self) -> Vec<String> {
        self.json["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .filter(|h| !h.contains("(optional)"))
            .filter_map(|h| h.split(':').next())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect()
    }
    pub fn list_path(&self) -> Option<&'a str> {
        self.json["response"]["list_path"].as_str()
    }
    /// `response.item`: field name -> descriptor.
    pub fn item(&self) -> Option<&'a Map<String, Value>> {
        self.json["response"]["item"].as_object()
    }
    /// Whether a request `method path` is this endpoint.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method().eq_ignore_ascii_case(method)
            && self.path_templates().iter().any(|t| path_matches(t, path))
    }
}

/// `/a/{id}/b` matches `/a/7/b`; `{X|Y}` matches one of the alternatives. Trailing slashes and
/// case of literal segments are not significant (MYOB paths are case-insensitive).
pub fn path_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(alts) if alts.contains('|') => {
                    alts.split('|').any(|a| a.trim().eq_ignore_ascii_case(p))
                }
                Some(_) => !p.is_empty(),
                None => t.eq_ignore_ascii_case(p),
            }
        })
}

/// One disagreement between what was sent or served and the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub provider: String,
    /// Endpoint id, or `METHOD path` when no endpoint matched.
    pub endpoint: String,
    /// The parameter, header, scope or field (`results[0].properties.amount`).
    pub subject: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: expected {}, found {}",
            self.provider, self.endpoint, self.subject, self.expected, self.found
        )
    }
}

/// Panics listing every violation (one a line) when there are any.
pub fn assert_no_violations(what: &str, violations: &[Violation]) {
    if !violations.is_empty() {
        let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
        panic!(
            "{what}: {} contract violation(s):\n{}",
            violations.len(),
            lines.join("\n")
        );
    }
}

struct Out<'a> {
    provider: &'a str,
    endpoint: String,
    list: Vec<Violation>,
}

impl Out<'_> {
    fn push(
        &mut self,
        subject: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) {
        self.list.push(Violation {
            provider: self.provider.to_string(),
            endpoint: self.endpoint.clone(),
            subject: subject.into(),
            expected: expected.into(),
            found: found.into(),
        });
    }
}

/// Checks every recorded request against the contract (see the module docs).
pub fn check_requests(contract: &Contract, recorded: &[RecordedRequest]) -> Vec<Violation> {
    let endpoints = contract.endpoints();
    let oauth_paths = contract.oauth_paths();
    let scopes = contract.oauth_scopes();
    let required = contract.required_headers();
    let mut out = Out {
        provider: &contract.provider,
        endpoint: String::new(),
        list: Vec::new(),
    };
    for r in recorded {
        let oauth = oauth_paths.iter().any(|(m, p)| {
            m.as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&r.method))
                && path_matches(p, &r.path)
        });
        if oauth {
            out.endpoint = format!("oauth {} {}", r.method, r.path);
            for s in r.scopes().unwrap_or_default() {
                if !scopes.contains(&s) {
                    out.push(
                        format!("scope {s}"),
                        format!("a documented scope ({})", join(&scopes)),
                        s.clone(),
                    );
                }
            }
            continue;
        }
        let Some(e) = endpoints.iter().find(|e| e.matches(&r.method, &r.path)) else {
            out.endpoint = format!("{} {}", r.method, r.path);
            out.push(
                "endpoint",
                "a documented method and path",
                format!("{} {}", r.method, r.path),
            );
            continue;
        };
        out.endpoint = e.id().to_string();
        // An endpoint's own `headers` list is the more specific statement and wins: Xero's
        // top-level `xero-tenant-id` is "required on every accounting operation", and
        // `/connections`, which lists only `Authorization`, is not one.
        let mut headers = if e.has_header_list() {
            e.required_headers()
        } else {
            required.clone()
        };
        headers.sort_by_key(|h| h.to_ascii_lowercase());
        headers.dedup_by_key(|h| h.to_ascii_lowercase());
        for h in headers {
            if r.header(&h).is_none_or(str::is_empty) {
                out.push(format!("header {h}"), "present", "absent");
            }
        }
        let params = contract.query_params_of(e);
        for (name, value) in &r.query {
            match params.and_then(|p| p.get(name)) {
                None => out.push(
                    format!("query parameter {name}"),
                    match params {
                        Some(p) => format!("one of {}", join(p.keys())),
                        None => "no query parameters".into(),
                    },
                    format!("{name}={value}"),
                ),
                Some(d) => check_param(&mut out, name, value, d),
            }
        }
        if let (Some(body), Some(doc)) = (&r.json_body, e.json["request_body"].as_object()) {
            if let Some(b) = body.as_object() {
                for (k, v) in b {
                    match doc.get(k) {
                        None => out.push(
                            format!("request body field {k}"),
                            format!(
                                "one of {}",
                                join(doc.keys().filter(|k| !k.ends_with("_note")))
                            ),
                            "an undocumented field",
                        ),
                        Some(d) => {
                            if let (Some(max), Some(n)) = (d["max"].as_f64(), v.as_f64()) {
                                if n > max {
                                    out.push(
                                        format!("request body {k}"),
                                        format!("at most {max}"),
                                        n.to_string(),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out.list
}

fn join<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_param(out: &mut Out<'_>, name: &str, value: &str, d: &Value) {
    let subject = format!("query parameter {name}");
    let is_array = d["type"] == "array";
    // Array parameters are comma-separated lists; each element is checked.
    let values: Vec<&str> = if is_array || value.contains(',') && d["enum"].is_array() {
        value.split(',').collect()
    } else {
        vec![value]
    };
    let enum_values = d["enum"].as_array().or(d["items"]["enum"].as_array());
    let elem_type = if is_array {
        d["items"]["type"].as_str()
    } else {
        d["type"].as_str()
    };
    for v in values {
        if let Some(allowed) = enum_values {
            if !allowed.iter().any(|a| json_text(a) == v) {
                let list: Vec<String> = allowed.iter().map(json_text).collect();
                out.push(&subject, format!("one of {}", list.join(", ")), v);
            }
        }
        match elem_type {
            Some("integer") if v.parse::<i64>().is_err() => out.push(&subject, "an integer", v),
            Some("number") if v.parse::<f64>().is_err() => out.push(&subject, "a number", v),
            Some("boolean") if v != "true" && v != "false" => {
                out.push(&subject, "true or false", v)
            }
            _ => {}
        }
        if let Some(format) = d["format"].as_str() {
            if let Err(expected) = check_format(format, v) {
                out.push(&subject, expected, v);
            }
        }
        if let Ok(n) = v.parse::<f64>() {
            if let Some(max) = d["max"].as_f64() {
                if n > max {
                    out.push(&subject, format!("at most {max}"), v);
                }
            }
            if let Some(min) = d["min"].as_f64() {
                if n < min {
                    out.push(&subject, format!("at least {min}"), v);
                }
            }
        }
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

mod shape;
#[cfg(test)]
mod tests;

pub use shape::{
    check_envelope, check_error_body, check_format, check_response_items, check_responses,
};
