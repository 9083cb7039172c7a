//! The route table: every documented route with the least role it needs. The role × route ×
//! tenant matrix and the OpenAPI check below read it, so a route added to the router must be
//! added here (the OpenAPI test fails otherwise) with the right role (the matrix fails otherwise).
//!
//! To register a resource: add its routes to `ROUTES`; when a path has `{id}`, name the entity
//! in `entity` and teach [`fixture`] to create one in a tenant and [`still_exists`] to check it
//! survived (the cross-tenant test calls the route with tenant B's id as tenant A and expects 404).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, TestTenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed.
    Public,
    /// At least this role.
    Role(Role),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User,
    Token,
    Invitation,
    Client,
    /// A connected (ACTIVE, tokens stored) Xero integration.
    Integration,
    /// An e-mail notification channel.
    Channel,
    /// A tenant-wide monthly revenue goal.
    Goal,
    /// A tenant-wide stale-data alert rule.
    AlertRule,
    /// A firing alert of a threshold rule (made with SQL, as the evaluation writes it).
    Alert,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteCase {
    pub method: &'static str,
    /// Full path template as in the OpenAPI document.
    pub path: &'static str,
    pub access: Access,
    /// What `{id}` names, for the cross-tenant check.
    pub entity: Option<Entity>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    entity: Option<Entity>,
) -> RouteCase {
    RouteCase {
        method,
        path,
        access,
        entity,
    }
}

use Access::{Public, Role as R};
use Role::{Admin, Editor, Viewer};

pub const ROUTES: &[RouteCase] = &[
    route("GET", "/healthz", Public, None),
    route("GET", "/readyz", Public, None),
    route("GET", "/metrics", Public, None),
    route("POST", "/api/v1/auth/login", Public, None),
    route("POST", "/api/v1/auth/logout", Public, None),
    route("POST", "/api/v1/auth/accept-invitation", Public, None),
    route("POST", "/api/v1/auth/password-reset", Public, None),
    route("POST", "/api/v1/auth/password-reset/confirm", Public, None),
    route("GET", "/api/v1/me", R(Viewer), None),
    route("POST", "/api/v1/me/password", R(Viewer), None),
    route("GET", "/api/v1/me/tokens", R(Viewer), None),
    route("POST", "/api/v1/me/tokens", R(Viewer), None),
    route(
        "DELETE",
        "/api/v1/me/tokens/{id}",
        R(Viewer),
        Some(Entity::Token),
    ),
    route("GET", "/api/v1/users", R(Admin), None),
    route("GET", "/api/v1/users/{id}", R(Admin), Some(Entity::User)),
    route("PATCH", "/api/v1/users/{id}", R(Admin), Some(Entity::User)),
    route("DELETE", "/api/v1/users/{id}", R(Admin), Some(Entity::User)),
    route(
        "POST",
        "/api/v1/users/{id}/deactivate",
        R(Admin),
        Some(Entity::User),
    ),
    route(
        "POST",
        "/api/v1/users/{id}/reactivate",
        R(Admin),
        Some(Entity::User),
    ),
    route(
        "POST",
        "/api/v1/users/{id}/password-reset",
        R(Admin),
        Some(Entity::User),
    ),
    route("GET", "/api/v1/invitations", R(Admin), None),
    route("POST", "/api/v1/invitations", R(Admin), None),
    route(
        "DELETE",
        "/api/v1/invitations/{id}",
        R(Admin),
        Some(Entity::Invitation),
    ),
    route("GET", "/api/v1/audit-logs", R(Admin), None),
    route("GET", "/api/v1/clients", R(Viewer), None),
    route("POST", "/api/v1/clients", R(Editor), None),
    route(
        "GET",
        "/api/v1/clients/{id}",
        R(Viewer),
        Some(Entity::Client),
    ),
    route(
        "PATCH",
        "/api/v1/clients/{id}",
        R(Editor),
        Some(Entity::Client),
    ),
    route(
        "DELETE",
        "/api/v1/clients/{id}",
        R(Editor),
        Some(Entity::Client),
    ),
    route(
        "GET",
        "/api/v1/clients/{id}/financials",
        R(Viewer),
        Some(Entity::Client),
    ),
    route(
        "GET",
        "/api/v1/clients/{id}/lead-events",
        R(Viewer),
        Some(Entity::Client),
    ),
    route(
        "GET",
        "/api/v1/clients/{id}/metrics",
        R(Viewer),
        Some(Entity::Client),
    ),
    route(
        "POST",
        "/api/v1/clients/{id}/financials",
        R(Editor),
        Some(Entity::Client),
    ),
    route(
        "POST",
        "/api/v1/clients/{id}/lead-events",
        R(Editor),
        Some(Entity::Client),
    ),
    route(
        "POST",
        "/api/v1/clients/{id}/metrics",
        R(Editor),
        Some(Entity::Client),
    ),
    route("POST", "/api/v1/imports", R(Editor), None),
    route("GET", "/api/v1/reports/profitability", R(Viewer), None),
    route("GET", "/api/v1/reports/funnel", R(Viewer), None),
    route("GET", "/api/v1/reports/metrics", R(Viewer), None),
    route("GET", "/api/v1/metric-definitions", R(Viewer), None),
    // `{name}` is a metric name; cross-tenant 404s are in `catalogue.rs`.
    route(
        "PATCH",
        "/api/v1/metric-definitions/{name}",
        R(Editor),
        None,
    ),
    route("GET", "/api/v1/goals", R(Viewer), None),
    route("POST", "/api/v1/goals", R(Editor), None),
    route("POST", "/api/v1/goals/budgets", R(Editor), None),
    route("GET", "/api/v1/goals/{id}", R(Viewer), Some(Entity::Goal)),
    route("PATCH", "/api/v1/goals/{id}", R(Editor), Some(Entity::Goal)),
    route(
        "DELETE",
        "/api/v1/goals/{id}",
        R(Editor),
        Some(Entity::Goal),
    ),
    route(
        "PUT",
        "/api/v1/goals/{id}/targets",
        R(Editor),
        Some(Entity::Goal),
    ),
    route(
        "GET",
        "/api/v1/goals/{id}/history",
        R(Viewer),
        Some(Entity::Goal),
    ),
    route("GET", "/api/v1/alert-rules", R(Viewer), None),
    route("POST", "/api/v1/alert-rules", R(Editor), None),
    route(
        "GET",
        "/api/v1/alert-rules/{id}",
        R(Viewer),
        Some(Entity::AlertRule),
    ),
    route(
        "PUT",
        "/api/v1/alert-rules/{id}",
        R(Editor),
        Some(Entity::AlertRule),
    ),
    route(
        "PATCH",
        "/api/v1/alert-rules/{id}",
        R(Editor),
        Some(Entity::AlertRule),
    ),
    route(
        "DELETE",
        "/api/v1/alert-rules/{id}",
        R(Editor),
        Some(Entity::AlertRule),
    ),
    route(
        "POST",
        "/api/v1/alert-rules/{id}/snooze",
        R(Editor),
        Some(Entity::AlertRule),
    ),
    route("GET", "/api/v1/alerts", R(Viewer), None),
    route("GET", "/api/v1/alerts/{id}", R(Viewer), Some(Entity::Alert)),
    route("GET", "/api/v1/integrations", R(Admin), None),
    route("GET", "/api/v1/integrations/callback", R(Admin), None),
    // `{id}` is the provider here (the router needs one parameter name per position).
    route("POST", "/api/v1/integrations/{id}/connect", R(Admin), None),
    route(
        "PATCH",
        "/api/v1/integrations/{id}",
        R(Admin),
        Some(Entity::Integration),
    ),
    route(
        "POST",
        "/api/v1/integrations/{id}/disconnect",
        R(Admin),
        Some(Entity::Integration),
    ),
    route(
        "POST",
        "/api/v1/integrations/{id}/sync",
        R(Admin),
        Some(Entity::Integration),
    ),
    route(
        "GET",
        "/api/v1/integrations/{id}/organisations",
        R(Admin),
        Some(Entity::Integration),
    ),
    route(
        "POST",
        "/api/v1/integrations/{id}/organisation",
        R(Admin),
        Some(Entity::Integration),
    ),
    route("GET", "/api/v1/notification-channels", R(Admin), None),
    route("POST", "/api/v1/notification-channels", R(Admin), None),
    route(
        "PATCH",
        "/api/v1/notification-channels/{id}",
        R(Admin),
        Some(Entity::Channel),
    ),
    route(
        "DELETE",
        "/api/v1/notification-channels/{id}",
        R(Admin),
        Some(Entity::Channel),
    ),
    route(
        "POST",
        "/api/v1/notification-channels/{id}/test",
        R(Admin),
        Some(Entity::Channel),
    ),
    route(
        "GET",
        "/api/v1/notification-channels/{id}/log",
        R(Admin),
        Some(Entity::Channel),
    ),
    route("GET", "/api/v1/settings/retention", R(Viewer), None),
    route("PUT", "/api/v1/settings/retention", R(Admin), None),
    route("GET", "/api/v1/notifications", R(Viewer), None),
    // A notification is its user's own: cross-user and cross-tenant 404s are in `notify.rs`.
    route("POST", "/api/v1/notifications/{id}/read", R(Viewer), None),
    route("POST", "/api/v1/notifications/read-all", R(Viewer), None),
];

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

fn with_id(path: &str, id: Uuid) -> String {
    path.replace("{id}", &id.to_string())
}

/// Creates an entity of `kind` in `tenant`, returning its id. For tokens, the entity belongs to
/// the tenant's ADMIN (the caller of the cross-tenant requests is the other tenant's ADMIN).
pub async fn fixture(app: &TestApp, tenant: &TestTenant, kind: Entity) -> Uuid {
    let (path, body) = match kind {
        Entity::User => {
            let email = format!("fixture-{}@x.example", Uuid::new_v4().simple());
            return app.add_user(tenant.id, &email, Role::Editor).await.id;
        }
        Entity::Integration => return connected_integration(app, tenant.id, "XERO").await,
        Entity::Token => ("/api/v1/me/tokens", json!({"name": "fixture"})),
        Entity::Invitation => (
            "/api/v1/invitations",
            json!({"email": format!("inv-{}@x.example", Uuid::new_v4().simple()), "role": "VIEWER"}),
        ),
        Entity::Client => (
            "/api/v1/clients",
            json!({"client_id": format!("C-{}", Uuid::new_v4().simple()), "client_name": "Fixture client"}),
        ),
        Entity::Channel => (
            "/api/v1/notification-channels",
            json!({"kind": "email", "name": format!("Fixture {}", Uuid::new_v4().simple()), "address": "ops@x.example"}),
        ),
        Entity::AlertRule => (
            "/api/v1/alert-rules",
            json!({"name": "Fixture rule", "kind": "stale", "stale_days": 5}),
        ),
        Entity::Alert => return firing_alert(app, tenant.id).await,
        Entity::Goal => (
            "/api/v1/goals",
            json!({"name": "Fixture goal", "kpi": "revenue", "period": "month", "kind": "reach", "target": "1000"}),
        ),
    };
    let res = app.post(path, &tenant.admin, &body).await;
    assert_eq!(res.status(), 201, "creating a {kind:?} fixture");
    let v: Value = res.json().await.unwrap();
    let id = if kind == Entity::Invitation {
        &v["invitation"]["id"]
    } else {
        &v["id"]
    };
    id.as_str().unwrap().parse().unwrap()
}

/// Whether the entity is still there, unchanged in the ways a cross-tenant call could change it.
pub async fn still_exists(app: &TestApp, tenant: &TestTenant, kind: Entity, id: Uuid) -> bool {
    match kind {
        Entity::User => {
            let res = app.get(&format!("/api/v1/users/{id}"), &tenant.admin).await;
            if res.status() != 200 {
                return false;
            }
            let v: Value = res.json().await.unwrap();
            v["deactivated_at"].is_null() && v["role"] == "EDITOR"
        }
        Entity::Token => {
            let v: Value = app
                .get("/api/v1/me/tokens", &tenant.admin)
                .await
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id.to_string())
        }
        Entity::Invitation => {
            let v: Value = app
                .get("/api/v1/invitations", &tenant.admin)
                .await
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id.to_string())
        }
        Entity::Integration => {
            let v: Value = app
                .get("/api/v1/integrations", &tenant.admin)
                .await
                .json()
                .await
                .unwrap();
            v["data"].as_array().unwrap().iter().any(|i| {
                i["id"] == id.to_string()
                    && i["status"] == "ACTIVE"
                    && i["connected"] == true
                    && i["settings"] == json!({})
            }) && !has_jobs(app, tenant.id).await
        }
        Entity::Client => {
            let res = app
                .get(&format!("/api/v1/clients/{id}"), &tenant.admin)
                .await;
            if res.status() != 200 {
                return false;
            }
            let v: Value = res.json().await.unwrap();
            v["client_name"] == "Fixture client"
        }
        Entity::Channel => {
            let v: Value = app
                .get("/api/v1/notification-channels", &tenant.admin)
                .await
                .json()
                .await
                .unwrap();
            v["data"].as_array().unwrap().iter().any(|c| {
                c["id"] == id.to_string()
                    && c["active"] == true
                    && c["name"].as_str().unwrap().starts_with("Fixture")
            }) && !has_jobs(app, tenant.id).await
        }
        Entity::AlertRule => {
            let res = app
                .get(&format!("/api/v1/alert-rules/{id}"), &tenant.admin)
                .await;
            if res.status() != 200 {
                return false;
            }
            let v: Value = res.json().await.unwrap();
            v["name"] == "Fixture rule" && v["stale_days"] == 5 && v["snoozed_until"].is_null()
        }
        Entity::Alert => {
            let res = app
                .get(&format!("/api/v1/alerts/{id}"), &tenant.admin)
                .await;
            res.status() == 200
        }
        Entity::Goal => {
            let res = app.get(&format!("/api/v1/goals/{id}"), &tenant.admin).await;
            if res.status() != 200 {
                return false;
            }
            let v: Value = res.json().await.unwrap();
            v["name"] == "Fixture goal" && v["target"] == "1000" && v["targets"] == json!([])
        }
    }
}

/// A threshold rule and one firing alert of it, written with SQL as the evaluation job would.
pub async fn firing_alert(app: &TestApp, tenant_id: Uuid) -> Uuid {
    let (rule, alert) = (Uuid::now_v7(), Uuid::now_v7());
    let zero = Uuid::nil();
    let tx = app.db.app.begin_tenant(tenant_id).await.unwrap();
    tx.raw_batch(&format!(
        "insert into alert_rules (tenant_id, id, name, kind, kpi, condition, value)
           values ('{tenant_id}', '{rule}', 'Fixture threshold', 'threshold', 'revenue', 'above', 10);
         insert into alerts (tenant_id, id, rule_id, subject_key, bucket_start, state, value, threshold)
           values ('{tenant_id}', '{alert}', '{rule}', '{zero}', '2026-01-01', 'firing', 20, 10);"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    alert
}

/// An ACTIVE integration of `provider` with (meaningless) stored token ciphertexts, made
/// directly in the database.
pub async fn connected_integration(app: &TestApp, tenant_id: Uuid, provider: &str) -> Uuid {
    let tx = app.db.app.begin_tenant(tenant_id).await.unwrap();
    let i = tx.ensure_integration(provider).await.unwrap();
    tx.store_integration_tokens(
        i.id,
        &zixly_db::integrations::TokenCiphertexts {
            access_token: vec![1; 40],
            refresh_token: Some(vec![1; 40]),
            expires_at: None,
        },
        true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    i.id
}

/// Whether the tenant has any job (a cross-tenant sync must not enqueue one).
/// Whether the tenant has jobs a cross-tenant call could have enqueued (a sync, a delivery); the
/// evaluation that creating an alert-rule fixture asks for does not count.
async fn has_jobs(app: &TestApp, tenant_id: Uuid) -> bool {
    let n: i64 = app
        .db
        .superuser()
        .await
        .query_one(
            "select count(*) from jobs where tenant_id = $1 and kind <> 'alert_evaluate'",
            &[&tenant_id],
        )
        .await
        .unwrap()
        .get(0);
    n > 0
}

async fn assert_error_shape(res: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(res.status(), status, "{what}");
    let v: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        v["error"]["message"].is_string() && v["error"]["details"].is_array(),
        "{what}: {v}"
    );
}

#[tokio::test]
async fn every_protected_route_needs_credentials() {
    let app = spawn_app().await;
    for r in ROUTES.iter().filter(|r| r.access != Public) {
        let path = with_id(r.path, Uuid::now_v7());
        let res = app
            .anonymous(method(r.method), &path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let what = format!("{} {} without credentials", r.method, r.path);
        assert!(
            res.headers().get("www-authenticate").is_some(),
            "{what}: WWW-Authenticate missing"
        );
        assert_error_shape(res, 401, "unauthenticated", &what).await;
        // A malformed or forged token is no better than none.
        let forged = format!("zxp_{}{}", app.a.id.simple(), "0".repeat(64));
        for token in ["nonsense", forged.as_str()] {
            let res = app
                .anonymous(method(r.method), &path)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_error_shape(
                res,
                401,
                "unauthenticated",
                &format!("{what} (token {token:.8}…)"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn public_routes_answer_without_credentials() {
    let app = spawn_app().await;
    // `/metrics` needs the metrics token, not a user's (auth_hardening.rs tests it).
    for r in ROUTES
        .iter()
        .filter(|r| r.access == Public && r.path != "/metrics")
    {
        let res = app
            .anonymous(method(r.method), r.path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            ![401, 403, 404, 405].contains(&status),
            "{} {} answered {status}",
            r.method,
            r.path
        );
    }
}

/// Role × route in both tenants: a role below the minimum gets 403 (on an id that does not even
/// exist: the role check comes first and reveals nothing); a sufficient role passes the check.
/// Bodies are empty and ids random, so nothing is modified.
#[tokio::test]
async fn role_matrix() {
    let app = spawn_app().await;
    for tenant in [&app.a, &app.b] {
        for r in ROUTES {
            let Access::Role(min) = r.access else {
                continue;
            };
            for role in Role::ALL {
                let user = tenant.user(role);
                let path = with_id(r.path, Uuid::now_v7());
                let res = app
                    .request(method(r.method), &path, user)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let what = format!("{} {} as {} of {}", r.method, r.path, role, tenant.name);
                if role.includes(min) {
                    let s = res.status().as_u16();
                    assert!(
                        s != 401 && s != 403 && s != 405 && s < 500,
                        "{what}: answered {s}"
                    );
                } else {
                    assert_error_shape(res, 403, "forbidden", &what).await;
                }
            }
        }
    }
}

/// Every route with an id, called by tenant A's ADMIN with an id of tenant B: 404 (never 403),
/// and tenant B's record is untouched.
#[tokio::test]
async fn another_tenants_ids_answer_404() {
    let app = spawn_app().await;
    for r in ROUTES.iter().filter(|r| r.entity.is_some()) {
        let kind = r.entity.unwrap();
        let id = fixture(&app, &app.b, kind).await;
        // A valid body, so that only the id can make the request fail.
        let body = match (r.method, kind) {
            ("PATCH", Entity::User) => json!({"role": "VIEWER", "display_name": "hijacked"}),
            ("PATCH", Entity::Client) => json!({"client_name": "hijacked"}),
            ("PATCH", Entity::Goal) => json!({"target": "1", "name": "hijacked"}),
            ("PUT", Entity::Goal) => {
                json!({"targets": [{"period_start": "2024-01-01", "target": "1"}]})
            }
            ("PATCH", Entity::AlertRule) => json!({"name": "hijacked"}),
            ("PUT", Entity::AlertRule) => {
                json!({"name": "hijacked", "kind": "stale", "stale_days": 1})
            }
            ("POST", Entity::AlertRule) => {
                json!({"until": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()})
            }
            ("PATCH", Entity::Integration) => {
                json!({"settings": {"tracking_category": "hijacked"}})
            }
            ("POST", Entity::Integration) if r.path.ends_with("/organisation") => {
                json!({"tenant_id": "hijacked"})
            }
            _ => json!({}),
        };
        let res = app
            .request(method(r.method), &with_id(r.path, id), &app.a.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error_shape(
            res,
            404,
            "not_found",
            &format!("{} {} with tenant B's id", r.method, r.path),
        )
        .await;
        assert!(
            still_exists(&app, &app.b, kind, id).await,
            "{} {} changed tenant B's {kind:?}",
            r.method,
            r.path
        );
    }
}

/// The OpenAPI document lists exactly the routes of `ROUTES`, with the same roles.
#[tokio::test]
async fn openapi_document_matches_the_route_table() {
    let app = spawn_app().await;
    let res = app
        .anonymous(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI version {}",
        doc["openapi"]
    );
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                continue;
            }
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{m} {path}: no security"));
            let access = if security.iter().any(|s| s.as_object().unwrap().is_empty()) {
                Access::Public
            } else {
                let roles: Vec<Role> = security
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().values())
                    .flat_map(|v| {
                        v.as_array()
                            .unwrap()
                            .iter()
                            .map(|r| r.as_str().unwrap().parse::<Role>().unwrap())
                    })
                    .collect();
                assert!(
                    !roles.is_empty() && roles.windows(2).all(|w| w[0] == w[1]),
                    "{m} {path}: roles {roles:?}"
                );
                Access::Role(roles[0])
            };
            documented.push((m.to_uppercase(), path.clone(), access));
        }
    }
    let mut expected: Vec<(String, String, Access)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.access))
        .collect();
    let key = |x: &(String, String, Access)| (x.1.clone(), x.0.clone());
    documented.sort_by_key(key);
    expected.sort_by_key(key);
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !documented.iter().any(|d| d.0 == e.0 && d.1 == e.1))
        .collect();
    let extra: Vec<_> = documented
        .iter()
        .filter(|d| !expected.iter().any(|e| d.0 == e.0 && d.1 == e.1))
        .collect();
    assert!(
        missing.is_empty(),
        "in ROUTES but not documented: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented but not in ROUTES (add them to ROUTES): {extra:?}"
    );
    assert_eq!(documented, expected, "documented roles differ from ROUTES");
    // And every documented route is really routed (no 404/405 for its method).
    for (m, path, _) in &documented {
        let res = app
            .anonymous(method(m), &with_id(path, Uuid::now_v7()))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let s = res.status().as_u16();
        // `/metrics` answers 404 on this listener until a metrics token is configured.
        assert!(
            s != 405 && (s != 404 || path.contains('{') || path == "/metrics"),
            "{m} {path} is documented but answers {s}"
        );
    }
    // The offline docs page: same origin only, no CDN.
    let html = app
        .anonymous(Method::GET, "/api/docs")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    let csp = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let text = html.text().await.unwrap();
    assert!(
        text.contains("/api/docs/docs.js")
            && !text.contains("http://")
            && !text.contains("https://"),
        "{text}"
    );
    let js = app
        .anonymous(Method::GET, "/api/docs/docs.js")
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("/api/openapi.json"));
}
