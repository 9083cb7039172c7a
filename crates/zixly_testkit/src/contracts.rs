//! The providers' API contracts (`contracts/<provider>.json` at the repository root, a copy of
//! `../shared/contracts`; layout in `contracts/README.md`) and the checks that judge the fakes and
//! connectors by them:
//!
//! - [`check_requests`]: every request a fake recorded ([`crate::fakes::recorded`]) is a
//!   documented endpoint (method and path template) or OAuth URL, its query parameters are
//!   documented for that endpoint with documented enum values and within `min`/`max`, the
//!   contract's required headers are present, and every requested OAuth scope is documented;
//! - [`check_response_items`] / [`check_responses`]: the items at `response.list_path` carry only
//!   documented fields, with the documented JSON type, format and enum, and every required field.
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
        let mut headers = required.clone();
        headers.extend(e.required_headers());
        headers.sort_by_key(|h| h.to_ascii_lowercase());
        headers.dedup_by_key(|h| h.to_ascii_lowercase());
        for h in headers {
            if r.header(&h).is_none_or(str::is_empty) {
                out.push(format!("header {h}"), "present", "absent");
            }
        }
        let params = e.query_params();
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

/// Checks the items of one response body of `endpoint` (see the module docs).
pub fn check_response_items(endpoint: &Endpoint<'_>, body: &Value) -> Vec<Violation> {
    let mut out = Out {
        provider: endpoint.provider,
        endpoint: endpoint.id().to_string(),
        list: Vec::new(),
    };
    let Some(item) = endpoint.item() else {
        return out.list;
    };
    let list_path = endpoint.list_path().unwrap_or("$");
    let (prefix, items): (String, Vec<&Value>) = if list_path == "$" {
        match body {
            Value::Array(a) => ("$".into(), a.iter().collect()),
            other => ("$".into(), vec![other]),
        }
    } else {
        let mut v = body;
        for key in list_path.trim_start_matches("$.").split('.') {
            v = &v[key];
        }
        match v {
            Value::Array(a) => (list_path.to_string(), a.iter().collect()),
            other => {
                out.push(list_path, "an array of items", kind(other));
                return out.list;
            }
        }
    };
    let required_names = required_of(item, &Value::Null);
    for (i, v) in items.iter().enumerate() {
        let at = if items.len() == 1 && list_path == "$" {
            prefix.clone()
        } else {
            format!("{prefix}[{i}]")
        };
        check_object(&mut out, &at, v, item, &required_names, 0);
    }
    out.list
}

/// Checks every 2xx JSON answer in `recorded` that belongs to a documented endpoint.
pub fn check_responses(contract: &Contract, recorded: &[RecordedRequest]) -> Vec<Violation> {
    let endpoints = contract.endpoints();
    let mut out = Vec::new();
    for r in recorded {
        if !(200..300).contains(&r.status) {
            continue;
        }
        let (Some(body), Some(e)) = (
            &r.response,
            endpoints.iter().find(|e| e.matches(&r.method, &r.path)),
        ) else {
            continue;
        };
        out.extend(check_response_items(e, body));
    }
    out
}

/// Names of required fields: those marked `required: true`, plus a `required: [names]` list on
/// the enclosing descriptor.
fn required_of(fields: &Map<String, Value>, parent: &Value) -> Vec<String> {
    let mut names: Vec<String> = fields
        .iter()
        .filter(|(_, d)| d["required"] == true)
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(
        parent["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .map(String::from),
    );
    names
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Nesting the checks descend into (item -> field -> field -> element).
const MAX_DEPTH: usize = 4;

fn check_object(
    out: &mut Out<'_>,
    at: &str,
    v: &Value,
    fields: &Map<String, Value>,
    required: &[String],
    depth: usize,
) {
    let Some(obj) = v.as_object() else {
        out.push(at, "an object", kind(v));
        return;
    };
    for name in required {
        if !obj.contains_key(name) {
            out.push(format!("{at}.{name}"), "present (required)", "absent");
        }
    }
    for (k, val) in obj {
        match fields.get(k) {
            None => out.push(
                format!("{at}.{k}"),
                "a documented field",
                format!("undocumented field {k}"),
            ),
            Some(d) => check_value(out, &format!("{at}.{k}"), val, d, depth + 1),
        }
    }
}

fn check_value(out: &mut Out<'_>, at: &str, v: &Value, d: &Value, depth: usize) {
    if v.is_null() {
        if d["nullable"] != true && d["type"] != "null" {
            out.push(
                at,
                format!("{} (not nullable)", d["type"].as_str().unwrap_or("a value")),
                "null",
            );
        }
        return;
    }
    if let Some(t) = d["type"].as_str() {
        let ok = match t {
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => true,
        };
        if !ok {
            out.push(at, t, format!("{} {v}", kind(v)));
            return;
        }
    }
    if let Some(allowed) = d["enum"].as_array() {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(json_text).collect();
            out.push(at, format!("one of {}", list.join(", ")), json_text(v));
        }
    }
    if let (Some(format), Some(s)) = (d["format"].as_str(), v.as_str()) {
        if let Err(expected) = check_format(format, s) {
            out.push(at, expected, format!("{s:?}"));
        }
    }
    if depth >= MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(fields) = d["fields"].as_object() {
                check_object(out, at, v, fields, &required_of(fields, d), depth);
            } else if d["items"].is_object() {
                // A map whose values are lists of `items` (HubSpot propertiesWithHistory), or
                // `{results: [items]}` (HubSpot associations).
                for (k, val) in m {
                    let list = match val {
                        Value::Array(a) => a,
                        Value::Object(o) => match o.get("results") {
                            Some(Value::Array(a)) => a,
                            _ => continue,
                        },
                        _ => continue,
                    };
                    for (i, el) in list.iter().enumerate() {
                        check_value(out, &format!("{at}.{k}[{i}]"), el, &d["items"], depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if d["items"].is_object() => {
            for (i, el) in a.iter().enumerate() {
                check_value(out, &format!("{at}[{i}]"), el, &d["items"], depth + 1);
            }
        }
        _ => {}
    }
}

/// Checks a string against a contract `format` (free text in the files, recognised by its
/// keywords); formats it does not recognise are not checked.
pub fn check_format(format: &str, s: &str) -> Result<(), String> {
    let f = format.to_ascii_lowercase();
    let ok = |b: bool| {
        if b {
            Ok(())
        } else {
            Err(format!("format {format}"))
        }
    };
    let naive = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
            || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
    };
    if f.contains("uuid") {
        ok(uuid::Uuid::parse_str(s).is_ok())
    } else if f.starts_with("msdate") {
        ok(s.starts_with("/Date(") && s.ends_with(")/"))
    } else if f.contains("iso 4217") {
        ok((3..=5).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    } else if f.contains("decimal as string") {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let mut parts = digits.splitn(2, '.');
        let int = parts.next().unwrap_or("");
        let frac = parts.next();
        ok(!int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())))
    } else if f == "uri" {
        ok(s.starts_with("https://") || s.starts_with("http://"))
    } else if f.trim() == "yyyy-mm-dd" || f == "date" {
        ok(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
    } else if f.contains("'yyyy-mm-dd hh:mm:ss'") && f.starts_with("v1") {
        ok(chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok())
    } else if f.contains("without offset") || f.contains("without zone") || f.contains("no offset")
    {
        ok(naive(s))
    } else if f.contains("date-time") || f.contains("rfc 3339") || f.contains("iso 8601") {
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) else {
            return ok(false);
        };
        let utc = !f.contains("utc") || t.offset().local_minus_utc() == 0;
        let millis = !f.contains("milliseconds") || s.contains('.');
        ok(utc && millis)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `contracts/` is byte-identical to `../shared/contracts` (relative to the workspace root)
    /// when that directory exists, so the copy a fresh clone tests with is the one the team keeps.
    #[test]
    fn contracts_match_shared_copy() {
        let ours = contracts_dir();
        let shared = ours.join("../../shared/contracts");
        if !shared.is_dir() {
            println!("note: {} absent; not compared", shared.display());
            return;
        }
        let names = |dir: &PathBuf| -> BTreeSet<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&ours), names(&shared), "file lists differ");
        for name in names(&shared) {
            let a = std::fs::read(ours.join(&name)).unwrap();
            let b = std::fs::read(shared.join(&name)).unwrap();
            assert!(
                a == b,
                "contracts/{name} differs from {}",
                shared.join(&name).display()
            );
        }
    }

    #[test]
    fn every_contract_loads_with_endpoints_and_scopes() {
        for p in PROVIDERS {
            let c = load(p);
            assert!(!c.endpoints().is_empty(), "{p}: no endpoints");
            assert!(!c.oauth_scopes().is_empty(), "{p}: no scopes");
            assert!(
                c.required_headers().contains(&"Authorization".to_string()),
                "{p}"
            );
            assert!(!c.oauth_paths().is_empty(), "{p}: no OAuth URLs");
        }
    }

    #[test]
    fn path_templates_match() {
        assert!(path_matches(
            "/crm/v4/objects/deals/{dealId}/associations/companies",
            "/crm/v4/objects/deals/7/associations/companies"
        ));
        assert!(!path_matches(
            "/crm/v3/objects/deals/{id}",
            "/crm/v3/objects/deals"
        ));
        assert!(path_matches("/a/{X|Y}", "/a/y"));
        assert!(!path_matches("/a/{X|Y}", "/a/z"));
        let myob = load("myob");
        assert_eq!(
            myob.endpoint("debit_settlements_refunds").path_templates(),
            [
                "/accountright/{businessId}/Purchase/DebitSettlement",
                "/accountright/{businessId}/Purchase/DebitRefund"
            ]
        );
    }

    fn request(method: &str, path: &str, query: &[(&str, &str)]) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: vec![("authorization".into(), "Bearer at-1".into())],
            status: 200,
            ..Default::default()
        }
    }

    /// The checks bite: an undocumented query parameter, a documented one out of range or off its
    /// enum, a missing required header, an undocumented path and an undocumented scope are each
    /// reported; a documented request is not.
    #[test]
    fn request_checks_report_each_kind_of_violation() {
        let c = load("pipedrive");
        let good = request(
            "GET",
            "/api/v2/deals",
            &[("limit", "500"), ("updated_since", "2024-01-01T00:00:00Z")],
        );
        assert_no_violations("documented request", &check_requests(&c, &[good]));

        let v = check_requests(
            &c,
            &[request("GET", "/api/v2/deals", &[("page_size", "100")])],
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, "query parameter page_size");
        assert!(
            v[0].to_string()
                .starts_with("pipedrive deals: query parameter page_size: expected one of "),
            "{}",
            v[0]
        );

        let v = check_requests(&c, &[request("GET", "/api/v2/deals", &[("limit", "501")])]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].expected, "at most 500");

        let v = check_requests(
            &c,
            &[request("GET", "/api/v2/deals", &[("sort_direction", "up")])],
        );
        assert_eq!(v.len(), 1, "{v:?}");

        let mut no_auth = request("GET", "/api/v2/stages", &[]);
        no_auth.headers.clear();
        let v = check_requests(&c, &[no_auth]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, "header Authorization");

        let v = check_requests(&c, &[request("GET", "/api/v2/leads", &[])]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, "endpoint");

        let h = load("hubspot");
        let mut auth = request(
            "GET",
            "/oauth/authorize",
            &[("scope", "crm.objects.deals.read crm.objects.contacts.write")],
        );
        auth.headers.clear();
        let v = check_requests(&h, &[auth]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, "scope crm.objects.contacts.write");
        assert!(
            v[0].to_string()
                .contains("found crm.objects.contacts.write"),
            "{}",
            v[0]
        );
    }

    /// The checks bite on responses: a misspelt field name, a wrong type, an off-enum value, a bad
    /// format and a missing required field are each reported; a documented item is not.
    #[test]
    fn response_checks_report_each_kind_of_violation() {
        let c = load("hubspot");
        let e = c.endpoint("deals_list");
        let item = json!({"id": "1", "archived": false,
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-05T00:00:00.000Z",
            "properties": {"amount": "1500.50", "dealstage": "won", "hs_is_closed": "true", "closedate": null, "deal_currency_code": "AUD"},
            "associations": {"companies": {"results": [{"id": "9", "type": "deal_to_company"}]}}});
        assert_no_violations(
            "documented item",
            &check_response_items(&e, &json!({"results": [item.clone()]})),
        );

        let mut bad = item.clone();
        bad["properties"]["ammount"] = json!("10");
        let v = check_response_items(&e, &json!({"results": [bad]}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, "$.results[0].properties.ammount");
        assert_eq!(v[0].to_string(), "hubspot deals_list: $.results[0].properties.ammount: expected a documented field, found undocumented field ammount");

        let mut bad = item.clone();
        bad["properties"]["amount"] = json!(1500.5);
        bad["properties"]["hs_is_closed"] = json!("yes");
        bad["createdAt"] = json!("2024-01-01");
        bad.as_object_mut().unwrap().remove("updatedAt");
        let v = check_response_items(&e, &json!({"results": [bad]}));
        let subjects: BTreeSet<&str> = v.iter().map(|v| v.subject.as_str()).collect();
        assert_eq!(
            subjects,
            BTreeSet::from([
                "$.results[0].properties.amount",
                "$.results[0].properties.hs_is_closed",
                "$.results[0].createdAt",
                "$.results[0].updatedAt"
            ]),
            "{v:?}"
        );
        let v = check_response_items(&e, &json!({"items": []}));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn formats() {
        assert!(check_format(
            "ISO 8601 UTC date-time with milliseconds, e.g. 2012-02-22T02:06:58.147Z",
            "2012-02-22T02:06:58.147Z"
        )
        .is_ok());
        assert!(check_format(
            "ISO 8601 UTC date-time with milliseconds, e.g. 2012-02-22T02:06:58.147Z",
            "2012-02-22T02:06:58Z"
        )
        .is_err());
        assert!(check_format(
            "RFC 3339 UTC, e.g. 2025-01-01T10:20:00Z",
            "2025-01-01T10:20:00+10:00"
        )
        .is_err());
        assert!(check_format("YYYY-MM-DD", "2025-01-31").is_ok());
        assert!(check_format("YYYY-MM-DD", "2025-01-31T00:00:00Z").is_err());
        assert!(check_format("decimal as string", "-12.50").is_ok());
        assert!(check_format("decimal as string", "12,50").is_err());
        assert!(check_format("uuid", "not-a-uuid").is_err());
        assert!(check_format("msdate", "/Date(1518685950940+0000)/").is_ok());
        assert!(check_format("date-time without zone", "2019-12-07T18:46:19.5165400").is_ok());
        assert!(check_format("date-time without zone", "2019-12-07T18:46:19Z").is_err());
    }
}
