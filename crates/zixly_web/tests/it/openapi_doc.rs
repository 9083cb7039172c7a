//! The served OpenAPI document is complete and self-consistent: every `$ref` resolves, every
//! operation documents the statuses the shared layers answer, and JSON bodies that are not
//! objects are refused wherever the document expects an object.

use reqwest::Method;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp};

use crate::routes::{fixture, ROUTES};

async fn document(app: &TestApp) -> Value {
    let res = app
        .anonymous(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Every `$ref` string under `v`, with where it was found.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                if k == "$ref" {
                    if let Some(r) = item.as_str() {
                        out.push((at.clone(), r));
                    }
                } else {
                    refs(item, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if METHODS.contains(&m.as_str()) {
                ops.push((m.to_uppercase(), path.clone(), op));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_ref_in_the_openapi_document_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(
        found.len() > 50,
        "expected the document to use references, found {}",
        found.len()
    );
    let dangling: Vec<String> = found
        .iter()
        .filter(|(_, r)| {
            !r.strip_prefix('#').is_some_and(|pointer| {
                doc.pointer(pointer)
                    .is_some_and(|target| target.is_object())
            })
        })
        .map(|(at, r)| format!("{r} (at {at})"))
        .collect();
    assert!(dangling.is_empty(), "dangling $ref: {dangling:#?}");
}

#[tokio::test]
async fn every_operation_documents_the_shared_statuses() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut missing = Vec::new();
    for (m, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let secured = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s.as_object().unwrap().is_empty());
        let has = |place: &str| {
            op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
        };
        let body = op.get("requestBody").is_some();
        let takes_format = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "format"));
        if takes_format && op.pointer("/responses/200/content/text~1csv").is_none() {
            missing.push(format!(
                "{m} {path}: 200 as text/csv (it takes ?format=csv)"
            ));
        }
        let mut expected = vec!["400", "503"];
        if secured {
            expected.extend(["401", "403"]);
        }
        if has("path") {
            expected.push("404");
        }
        if body {
            expected.extend(["413", "415", "422"]);
        }
        if has("query") {
            expected.push("422");
        }
        for status in expected {
            if !responses.contains_key(status) {
                missing.push(format!("{m} {path}: {status}"));
            }
        }
        // Every error answer has a schema that admits the one error shape.
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &r["content"]["application/json"]["schema"];
                let text = schema.to_string();
                assert!(
                    text.contains("#/components/schemas/ErrorBody") || path == "/readyz",
                    "{m} {path} {status}: error schema {text}"
                );
            }
        }
    }
    assert!(missing.is_empty(), "undocumented statuses: {missing:#?}");
    // `oneOf` would reject an answer that fits two variants (an empty page of rows is also an
    // empty page of buckets); the untagged enums are documented as `anyOf`.
    assert!(
        !doc.to_string().contains("\"oneOf\""),
        "the document still uses oneOf"
    );
}

/// Every JSON request body of the API is an object: an array (which serde would otherwise read
/// into a struct positionally), a string, a number, a boolean or null is refused with 422, on
/// the caller's own records (so that a 404 cannot hide an accepted body).
#[tokio::test]
async fn json_bodies_that_are_not_objects_are_refused() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut checked = 0;
    for (m, path, op) in operations(&doc) {
        if op
            .pointer("/requestBody/content/application~1json")
            .is_none()
        {
            continue;
        }
        let route = ROUTES
            .iter()
            .find(|r| r.method == m && r.path == path)
            .unwrap_or_else(|| panic!("{m} {path} is not in ROUTES"));
        let url = match route.entity {
            Some(kind) => path.replace("{id}", &fixture(&app, &app.a, kind).await.to_string()),
            None => path.clone(),
        };
        for body in [
            json!([]),
            json!(["admin@a.example", zixly_testkit::app::PASSWORD]),
            json!([{"rows": []}]),
            json!("text"),
            json!(1),
            json!(true),
            Value::Null,
        ] {
            let res = app
                .request(m.parse().unwrap(), &url, &app.a.admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            assert_eq!(status, 422, "{m} {path} with body {body}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], "validation_failed", "{m} {path}: {v}");
            assert!(
                v["error"]["details"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("the body must be a JSON object"),
                "{m} {path}: {v}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} operations with a JSON body");
}
