//! Response shapes: the items at an endpoint's `response.list_path` against the contract's
//! field descriptions (names, JSON types, formats, enums, required fields).

use serde_json::{Map, Value};

use super::{json_text, Contract, Endpoint, Out, Violation};
use crate::fakes::RecordedRequest;

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

/// Checks every 2xx JSON answer in `recorded` that belongs to a documented endpoint (its items
/// and its envelope, [`check_envelope`]), and every error answer whose status the endpoint
/// documents a body for (`response.error_<status>`, [`check_error_body`]).
pub fn check_responses(contract: &Contract, recorded: &[RecordedRequest]) -> Vec<Violation> {
    let endpoints = contract.endpoints();
    let mut out = Vec::new();
    for r in recorded {
        let (Some(body), Some(e)) = (
            &r.response,
            endpoints.iter().find(|e| e.matches(&r.method, &r.path)),
        ) else {
            continue;
        };
        if (200..300).contains(&r.status) {
            out.extend(check_response_items(e, body));
            out.extend(check_envelope(e, body));
        } else {
            out.extend(check_error_body(e, r.status, body));
        }
    }
    out
}

/// The JSON types a shorthand type text names (`"string|null"`, `"array (no next_page)"`);
/// `None` when it names none this check knows.
fn shorthand_types(text: &str) -> Option<Vec<&str>> {
    const KNOWN: [&str; 7] = [
        "string", "number", "integer", "boolean", "array", "object", "null",
    ];
    let word = text.split([' ', '(']).next()?;
    let types: Vec<&str> = word.split('|').map(str::trim).collect();
    types.iter().all(|t| KNOWN.contains(t)).then_some(types)
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// The top level of a 2xx body against `response.envelope`: each key the envelope gives as a
/// shorthand type (`"sync": "string"`) has that type when present. An envelope given entirely in
/// shorthand (Asana's events: `data`, `sync`, `has_more`) is the whole body: every key is
/// required and no other key may appear.
pub fn check_envelope(endpoint: &Endpoint<'_>, body: &Value) -> Vec<Violation> {
    let mut out = Out {
        provider: endpoint.provider,
        endpoint: endpoint.id().to_string(),
        list: Vec::new(),
    };
    let (Some(envelope), Some(obj)) = (
        endpoint.json["response"]["envelope"].as_object(),
        body.as_object(),
    ) else {
        return out.list;
    };
    let typed: Vec<(&String, Vec<&str>)> = envelope
        .iter()
        .filter_map(|(k, v)| Some((k, shorthand_types(v.as_str()?)?)))
        .collect();
    let whole = !typed.is_empty() && typed.len() == envelope.len();
    for (k, types) in &typed {
        match obj.get(*k) {
            None if whole => out.push(format!("$.{k}"), "present (envelope)", "absent"),
            None => {}
            Some(v) if !types.iter().any(|t| has_type(v, t)) => out.push(
                format!("$.{k}"),
                types.join("|"),
                format!("{} {v}", kind(v)),
            ),
            Some(_) => {}
        }
    }
    if whole {
        for k in obj.keys().filter(|k| !envelope.contains_key(*k)) {
            out.push(
                format!("$.{k}"),
                "a documented envelope key",
                format!("undocumented key {k}"),
            );
        }
    }
    out.list
}

/// An error answer's body against the endpoint's `response.error_<status>`, an example-shaped
/// description (`{"errors": [{"message": "string"}], "sync": "string"}`): every key present with
/// the named type, array elements like the described one, no undocumented key. Statuses the
/// endpoint describes no body for are not checked.
pub fn check_error_body(endpoint: &Endpoint<'_>, status: u16, body: &Value) -> Vec<Violation> {
    let mut out = Out {
        provider: endpoint.provider,
        endpoint: format!("{} (HTTP {status})", endpoint.id()),
        list: Vec::new(),
    };
    let shape = &endpoint.json["response"][format!("error_{status}")];
    if !shape.is_null() {
        check_example(&mut out, "$", body, shape);
    }
    out.list
}

fn check_example(out: &mut Out<'_>, at: &str, v: &Value, shape: &Value) {
    match shape {
        Value::Object(fields) => {
            let Some(obj) = v.as_object() else {
                out.push(at, "an object", kind(v));
                return;
            };
            for (k, d) in fields {
                match obj.get(k) {
                    None => out.push(format!("{at}.{k}"), "present", "absent"),
                    Some(x) => check_example(out, &format!("{at}.{k}"), x, d),
                }
            }
            for k in obj.keys().filter(|k| !fields.contains_key(*k)) {
                out.push(
                    format!("{at}.{k}"),
                    "a documented field",
                    format!("undocumented field {k}"),
                );
            }
        }
        Value::Array(element) => {
            let Some(items) = v.as_array() else {
                out.push(at, "an array", kind(v));
                return;
            };
            if let Some(e) = element.first() {
                for (i, x) in items.iter().enumerate() {
                    check_example(out, &format!("{at}[{i}]"), x, e);
                }
            }
        }
        Value::String(text) => {
            if let Some(types) = shorthand_types(text) {
                if !types.iter().any(|t| has_type(v, t)) {
                    out.push(at, types.join("|"), format!("{} {v}", kind(v)));
                }
            }
        }
        _ => {}
    }
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
