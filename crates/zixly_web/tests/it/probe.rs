//! A randomized cross-tenant probe: every route of the OpenAPI document with a path parameter,
//! every method, as every role of one tenant, filled with ids of the OTHER tenant's records (of
//! every kind, not only the route's own) and with random UUIDs. Never a 2xx or 3xx, never a 5xx,
//! never a byte of the other tenant's data in the answer, and the other tenant's records are
//! unchanged afterwards. Seeded (`ZIXLY_PROBE_SEED`, default 7) and bounded
//! (`ZIXLY_PROBE_CASES` per route, method and role, default 6), so a failure replays.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, TestTenant};

use crate::routes::{fixture, still_exists, Entity};

const KINDS: [Entity; 6] = [
    Entity::User,
    Entity::Token,
    Entity::Invitation,
    Entity::Client,
    Entity::Integration,
    Entity::Goal,
];

/// One tenant's records, and the strings that must never show up in another tenant's answers.
struct Victim {
    ids: Vec<(Entity, Uuid)>,
    secrets: Vec<String>,
}

async fn victim(app: &TestApp, tenant: &TestTenant) -> Victim {
    let mut ids = Vec::new();
    for kind in KINDS {
        for _ in 0..2 {
            ids.push((kind, fixture(app, tenant, kind).await));
        }
    }
    // A client with a recognisable name and a row of every series.
    let marker = format!("secret-{}", Uuid::new_v4().simple());
    let res = app
        .post(
            "/api/v1/clients",
            &tenant.admin,
            &json!({"client_id": marker, "client_name": marker}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let client: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (series, row) in [
        (
            "financials",
            json!({"record_date": "2024-01-31", "revenue": "777.77", "expenses": "1", "cash_flow": "1", "external_id": marker}),
        ),
        (
            "lead-events",
            json!({"event_date": "2024-01-05T10:00:00Z", "lead_id": marker, "stage": "Lead", "status": "active"}),
        ),
        (
            "metrics",
            json!({"metric_name": marker, "metric_value": "1", "record_date": "2024-01-31T12:00:00Z"}),
        ),
    ] {
        let res = app
            .post(
                &format!("/api/v1/clients/{client}/{series}"),
                &tenant.admin,
                &json!({"rows": [row]}),
            )
            .await;
        assert_eq!(res.status(), 200, "seeding {series}");
    }
    let mut secrets: Vec<String> = ids.iter().map(|(_, id)| id.to_string()).collect();
    secrets.push(client.to_string());
    secrets.push(tenant.id.to_string());
    secrets.push(tenant.name.clone());
    secrets.push(marker);
    for role in Role::ALL {
        let u = tenant.user(role);
        secrets.push(u.email.clone());
        secrets.push(u.id.to_string());
    }
    ids.push((Entity::Client, client));
    Victim { ids, secrets }
}

/// A body that would succeed on the caller's own record, so that only the id can refuse it.
fn body_for(path: &str, rng: &mut StdRng) -> Value {
    let bodies = if path.ends_with("/financials") {
        vec![
            json!({"rows": [{"record_date": "2024-02-01", "revenue": "1", "expenses": "1", "cash_flow": "1"}]}),
        ]
    } else if path.ends_with("/lead-events") {
        vec![
            json!({"rows": [{"event_date": "2024-02-01T10:00:00Z", "lead_id": "X", "stage": "Lead", "status": "won"}]}),
        ]
    } else if path.ends_with("/metrics") {
        vec![
            json!({"rows": [{"metric_name": "x", "metric_value": "1", "record_date": "2024-02-01T12:00:00Z"}]}),
        ]
    } else if path.starts_with("/api/v1/users/") {
        vec![
            json!({"role": "ADMIN"}),
            json!({"display_name": "hijacked", "role": "VIEWER"}),
        ]
    } else if path.starts_with("/api/v1/clients/") {
        vec![
            json!({"client_name": "hijacked"}),
            json!({"currency": "EUR"}),
        ]
    } else if path.ends_with("/targets") {
        vec![json!({"targets": [{"period_start": "2024-01-01", "target": "1"}]})]
    } else if path.starts_with("/api/v1/goals/") {
        vec![json!({"target": "1"}), json!({"name": "hijacked"})]
    } else if path.ends_with("/organisation") {
        vec![json!({"tenant_id": "hijacked"})]
    } else if path.starts_with("/api/v1/integrations/") {
        vec![json!({"settings": {"tracking_category": "hijacked"}})]
    } else {
        vec![json!({})]
    };
    let mut b = bodies.choose(rng).unwrap().clone();
    if rng.gen_bool(0.2) {
        b = json!({});
    }
    b
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    let bytes: [u8; 16] = rng.gen();
    if rng.gen_bool(0.5) {
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    } else {
        // Time-ordered like real ids, near now.
        let ms = chrono::Utc::now().timestamp_millis() as u64 - rng.gen_range(0..10_000);
        let rand_bytes: [u8; 10] = rng.gen();
        uuid::Builder::from_unix_timestamp_millis(ms, &rand_bytes).into_uuid()
    }
}

#[tokio::test]
async fn random_cross_tenant_probe_of_every_route_with_an_id() {
    let seed: u64 = std::env::var("ZIXLY_PROBE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let cases: usize = std::env::var("ZIXLY_PROBE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let victims = [victim(&app, &app.a).await, victim(&app, &app.b).await];
    let doc: Value = app
        .anonymous(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        for m in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                routes.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(
        routes.len() >= 15,
        "only {} routes with an id",
        routes.len()
    );
    let mut sent = 0;
    for (m, path) in &routes {
        for (caller, victim) in [(&app.a, &victims[1]), (&app.b, &victims[0])] {
            for role in Role::ALL {
                let user = caller.user(role);
                for _ in 0..cases {
                    let id = if rng.gen_bool(0.75) {
                        victim.ids.choose(&mut rng).unwrap().1
                    } else {
                        random_uuid(&mut rng)
                    };
                    let url = path.replace("{id}", &id.to_string());
                    let mut req = app.request(m.parse().unwrap(), &url, user);
                    if m != "GET" && m != "DELETE" {
                        req = req.json(&body_for(path, &mut rng));
                    }
                    if m == "GET" && rng.gen_bool(0.3) {
                        req = req.query(&[("format", "csv")]);
                    }
                    let res = req.send().await.unwrap();
                    let status = res.status().as_u16();
                    let text = res.text().await.unwrap();
                    let what = format!("{m} {url} as {role} of {} (seed {seed})", caller.name);
                    assert!(
                        (400..500).contains(&status),
                        "{what}: answered {status}: {text}"
                    );
                    if let Some(leak) = victim.secrets.iter().find(|s| text.contains(s.as_str())) {
                        panic!("{what}: the answer holds the other tenant's {leak:?}: {text}");
                    }
                    sent += 1;
                }
            }
        }
    }
    assert_eq!(sent, routes.len() * 2 * 3 * cases);
    // Nothing of either tenant was changed by the other.
    for (tenant, victim) in [(&app.a, &victims[0]), (&app.b, &victims[1])] {
        for (kind, id) in &victim.ids {
            if *kind == Entity::Client && victim.ids.last() == Some(&(*kind, *id)) {
                continue; // the marker client: checked below
            }
            assert!(
                still_exists(&app, tenant, *kind, *id).await,
                "{}'s {kind:?} {id} changed",
                tenant.name
            );
        }
        let clients: Value = app
            .get("/api/v1/clients", &tenant.admin)
            .await
            .json()
            .await
            .unwrap();
        let n = clients["data"].as_array().unwrap().len();
        assert_eq!(n, 3, "{}: clients {clients}", tenant.name);
    }
}
