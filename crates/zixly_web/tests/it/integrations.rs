//! Integration routes over real HTTP against the fake Xero and HubSpot servers: connect through
//! the OAuth redirect, the callback's state checks, tokens encrypted at rest, sync, disconnect,
//! audit rows. Database facts are checked as a superuser, independently of the code under test.

use std::collections::HashMap;

use reqwest::{header, Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_connectors::{Provider, ProviderConfig};
use zixly_domain::Role;
use zixly_testkit::app::{TestApp, TestUser, PASSWORD};
use zixly_testkit::fakes::hubspot::FakeHubspot;
use zixly_testkit::fakes::xero::FakeXero;

const CALLBACK: &str = "/api/v1/integrations/callback";

fn config(
    p: Provider,
    id: &str,
    secret: &str,
    auth: String,
    token: String,
    api: &str,
) -> ProviderConfig {
    let n = p.as_str();
    let vars: HashMap<String, String> = [
        (format!("ZIXLY_{n}_CLIENT_ID"), id.to_string()),
        (format!("ZIXLY_{n}_CLIENT_SECRET"), secret.to_string()),
        (format!("ZIXLY_{n}_AUTH_URL"), auth),
        (format!("ZIXLY_{n}_TOKEN_URL"), token),
        (format!("ZIXLY_{n}_API_URL"), api.to_string()),
    ]
    .into();
    ProviderConfig::from_vars(p, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap()
}

struct Env {
    app: TestApp,
    xero: FakeXero,
    hubspot: FakeHubspot,
}

/// An app with Xero and HubSpot configured against their fakes (Pipedrive etc. not configured).
async fn env() -> Env {
    let xero = FakeXero::start().await;
    let hubspot = FakeHubspot::start().await;
    use zixly_testkit::fakes::{hubspot as hs, xero as xr};
    let providers = vec![
        config(
            Provider::Xero,
            xr::CLIENT_ID,
            xr::CLIENT_SECRET,
            xero.auth_url(),
            xero.token_url(),
            &xero.url,
        ),
        config(
            Provider::Hubspot,
            hs::CLIENT_ID,
            hs::CLIENT_SECRET,
            hubspot.auth_url(),
            hubspot.token_url(),
            &hubspot.url,
        ),
    ];
    let app = TestApp::builder().providers(providers).spawn().await;
    Env { app, xero, hubspot }
}

/// A browser session of `user` (login), as a `Cookie` header value.
async fn session(app: &TestApp, user: &TestUser) -> String {
    format!(
        "zixly_session={}",
        app.login_token(&user.email, PASSWORD).await
    )
}

/// `POST /integrations/{provider}/connect` as `user`; the authorize URL.
async fn start(app: &TestApp, user: &TestUser, provider: &str) -> String {
    let res = app
        .post(
            &format!("/api/v1/integrations/{provider}/connect"),
            user,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "connect {provider}");
    let v: Value = res.json().await.unwrap();
    v["authorize_url"].as_str().unwrap().to_string()
}

/// Follows the authorize URL to the fake, which "approves" and redirects back; the callback URL
/// (with `code` and `state`) the browser would go to next.
async fn approve(app: &TestApp, authorize_url: &str) -> String {
    let res = app.client.get(authorize_url).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&app.url(CALLBACK)),
        "the provider sends the browser to the callback: {location}"
    );
    location
}

/// The browser's request to the callback URL with a session cookie.
async fn callback(app: &TestApp, url: &str, cookie: &str, accept: &str) -> Response {
    app.client
        .get(url)
        .header(header::COOKIE, cookie)
        .header(header::ACCEPT, accept)
        .send()
        .await
        .unwrap()
}

async fn error_code(res: Response) -> String {
    let v: Value = res.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

/// Connects `provider` for tenant A's ADMIN through the whole redirect; the integration id.
async fn connect(env: &Env, provider: &str) -> Uuid {
    let app = &env.app;
    let url = approve(app, &start(app, &app.a.admin, provider).await).await;
    let cookie = session(app, &app.a.admin).await;
    let res = callback(app, &url, &cookie, "application/json").await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().parse().unwrap()
}

/// (status, access_token, refresh_token) of an integration as stored.
async fn stored(app: &TestApp, id: Uuid) -> (String, Option<Vec<u8>>, Option<Vec<u8>>) {
    let r = app
        .db
        .superuser()
        .await
        .query_one(
            "select status::text, access_token, refresh_token from integrations where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// Audit actions of a tenant, oldest first.
async fn audit_actions(app: &TestApp, tenant_id: Uuid) -> Vec<String> {
    app.db
        .superuser()
        .await
        .query(
            "select action from audit_logs where tenant_id = $1 and action like 'integration.%' order by occurred_at, id",
            &[&tenant_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn xero_connects_through_the_redirect_with_pkce_and_tokens_encrypted_at_rest() {
    let env = env().await;
    let app = &env.app;
    let authorize = start(app, &app.a.admin, "xero").await;
    let q: HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(authorize.starts_with(&env.xero.auth_url()), "{authorize}");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], app.url(CALLBACK));
    // The secret format of sessions and invitations (`issue_secret`), of the OAuth-state kind.
    assert!(q["state"].starts_with(&format!("zxo_{}", app.a.id.simple())));
    let parsed = zixly_web::auth::parse_secret(&q["state"]).expect("a well-formed secret");
    assert_eq!(parsed.kind, zixly_web::auth::SecretKind::OAuthState);
    assert_eq!(parsed.tenant_id, app.a.id);
    // Only the state's hash is stored, and the PKCE verifier is a ciphertext.
    let su = app.db.superuser().await;
    let st = su
        .query_one("select state_hash, pkce_verifier from oauth_states", &[])
        .await
        .unwrap();
    assert!(!contains(&st.get::<_, Vec<u8>>(0), q["state"].as_bytes()));
    assert_eq!(
        st.get::<_, Option<Vec<u8>>>(1).unwrap()[0],
        1,
        "zixly_crypto v1"
    );

    let url = approve(app, &authorize).await;
    let cookie = session(app, &app.a.admin).await;
    let res = callback(app, &url, &cookie, "application/json").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ACTIVE");
    assert_eq!(v["provider"], "XERO");
    assert_eq!(v["connected"], true);
    let id: Uuid = v["id"].as_str().unwrap().parse().unwrap();

    let (status, access, refresh) = stored(app, id).await;
    assert_eq!(status, "ACTIVE");
    let (access, refresh) = (access.unwrap(), refresh.unwrap());
    assert_eq!(access[0], 1, "zixly_crypto v1 ciphertext");
    // The plaintext exists only through the keyring, and appears nowhere else.
    let keyring = app.state.integrations.as_ref().unwrap().keyring();
    let plain = keyring
        .decrypt_str(
            &access,
            &zixly_sync::tokens::aad(app.a.id, id, "access_token"),
        )
        .unwrap();
    let plain_refresh = keyring
        .decrypt_str(
            &refresh,
            &zixly_sync::tokens::aad(app.a.id, id, "refresh_token"),
        )
        .unwrap();
    for secret in [plain.expose(), plain_refresh.expose()] {
        assert!(secret.len() > 8);
        assert!(!contains(&access, secret.as_bytes()) && !contains(&refresh, secret.as_bytes()));
        assert!(!body.contains(secret), "token in the callback answer");
    }
    let list = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(plain.expose()) && !list.contains(plain_refresh.expose()));
    let audit_text: String = su
        .query("select summary::text from audit_logs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(!audit_text.contains(plain.expose()) && !audit_text.contains(&q["state"]));
    // The state was consumed.
    let left: i64 = su
        .query_one("select count(*) from oauth_states", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(
        audit_actions(app, app.a.id).await,
        ["integration.connect_start", "integration.connect"]
    );
}

#[tokio::test]
async fn hubspot_connects_and_browsers_are_sent_back_to_the_integrations_page() {
    let env = env().await;
    let app = &env.app;
    let authorize = start(app, &app.a.admin, "HUBSPOT").await;
    assert!(
        authorize.starts_with(&env.hubspot.auth_url()),
        "{authorize}"
    );
    assert!(!authorize.contains("code_challenge"), "HubSpot has no PKCE");
    let url = approve(app, &authorize).await;
    let cookie = session(app, &app.a.admin).await;
    let res = callback(app, &url, &cookie, "text/html,application/xhtml+xml").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()[header::LOCATION],
        "/integrations?connected=hubspot"
    );
    let list: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let hubspot = &list["data"][0];
    assert_eq!(hubspot["provider"], "HUBSPOT");
    assert_eq!(hubspot["status"], "ACTIVE");
    assert_eq!(hubspot["provider_configured"], true);
    assert!(hubspot["next_sync_at"].is_string());
    // The token answer's non-secret extras are kept.
    let meta: Value = app
        .db
        .superuser()
        .await
        .query_one(
            "select metadata from integrations where provider = 'HUBSPOT'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(meta["hub_id"], 4242);
    assert!(meta
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.contains("token")));
}

#[tokio::test]
async fn a_state_is_single_use() {
    let env = env().await;
    let app = &env.app;
    let url = approve(app, &start(app, &app.a.admin, "xero").await).await;
    let cookie = session(app, &app.a.admin).await;
    assert_eq!(
        callback(app, &url, &cookie, "application/json")
            .await
            .status(),
        200
    );
    let replay = callback(app, &url, &cookie, "application/json").await;
    assert_eq!(replay.status(), 400);
    assert_eq!(error_code(replay).await, "invalid_state");
    // A made-up state of the right shape is no better.
    let forged = format!(
        "{}?code=x&state=zxo_{}{}",
        app.url(CALLBACK),
        app.a.id.simple(),
        "0".repeat(64)
    );
    let res = callback(app, &forged, &cookie, "application/json").await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "invalid_state");
}

#[tokio::test]
async fn a_tampered_state_or_another_kind_of_secret_is_refused_and_the_real_one_still_works() {
    let env = env().await;
    let app = &env.app;
    let url = approve(app, &start(app, &app.a.admin, "xero").await).await;
    let cookie = session(app, &app.a.admin).await;
    let parsed = url::Url::parse(&url).unwrap();
    let state: String = parsed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let with_state = |s: &str| url.replace(&format!("state={state}"), &format!("state={s}"));
    let last = state.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &state[..state.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let tenant = app.a.id.simple().to_string();
    let secret = &state[state.len() - 64..];
    for bad in [
        flipped,                                      // one digit changed
        state[4..].to_string(),                       // without its prefix (the former format)
        format!("zxi_{tenant}{secret}"),              // an invitation's kind
        format!("zxs_{tenant}{secret}"),              // a session's kind
        format!("zxo_{}{secret}", app.b.id.simple()), // another tenant's part
        state.to_uppercase(),
        format!("{state}0"),
    ] {
        let res = callback(app, &with_state(&bad), &cookie, "application/json").await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(error_code(res).await, "invalid_state", "{bad}");
    }
    // None of them consumed the real state.
    let res = callback(app, &url, &cookie, "application/json").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_state_of_another_user_or_tenant_is_refused_and_left_to_its_owner() {
    let env = env().await;
    let app = &env.app;
    let other_admin = app
        .add_user(app.a.id, "admin2@a.example", Role::Admin)
        .await;
    let url = approve(app, &start(app, &app.a.admin, "xero").await).await;
    // Another ADMIN of the same tenant.
    let res = callback(
        app,
        &url,
        &session(app, &other_admin).await,
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "invalid_state");
    // The ADMIN of another tenant.
    let res = callback(
        app,
        &url,
        &session(app, &app.b.admin).await,
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "invalid_state");
    // An EDITOR of the tenant cannot even reach the callback.
    let res = callback(
        app,
        &url,
        &session(app, &app.a.editor).await,
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 403);
    // Nobody could burn it: its owner completes the connection.
    let res = callback(
        app,
        &url,
        &session(app, &app.a.admin).await,
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 200);
    let tx = app.db.app.begin_tenant(app.b.id).await.unwrap();
    assert!(
        tx.integrations().await.unwrap().is_empty(),
        "nothing in tenant B"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_declined_authorization_consumes_the_state() {
    let env = env().await;
    let app = &env.app;
    let url = approve(app, &start(app, &app.a.admin, "hubspot").await).await;
    let state = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let declined = format!("{}?error=access_denied&state={state}", app.url(CALLBACK));
    let cookie = session(app, &app.a.admin).await;
    let res = callback(app, &declined, &cookie, "application/json").await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "authorization_denied");
    let res = callback(app, &url, &cookie, "application/json").await;
    assert_eq!(res.status(), 400, "the state is gone");
    let list: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["status"], "PENDING");
    assert_eq!(list["data"][0]["connected"], false);
}

#[tokio::test]
async fn sync_enqueues_one_job_and_disconnect_clears_the_tokens() {
    let env = env().await;
    let app = &env.app;
    let id = connect(&env, "xero").await;
    let path = format!("/api/v1/integrations/{id}/sync");
    let res = app.post(&path, &app.a.admin, &json!({})).await;
    assert_eq!(res.status(), 202);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["already_queued"], false);
    let job: Uuid = v["job_id"].as_str().unwrap().parse().unwrap();
    let j = app.db.system.job(app.a.id, job).await.unwrap().unwrap();
    assert_eq!(j.kind, "sync");
    assert_eq!(j.args["integration_id"], id.to_string());
    assert_eq!(j.args["manual"], true);
    let again: Value = app
        .post(&path, &app.a.admin, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["already_queued"], true);
    assert_eq!(again["job_id"], job.to_string());

    let list = app.get("/api/v1/integrations", &app.a.admin).await;
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    let fields: Vec<&String> = list["data"][0].as_object().unwrap().keys().collect();
    assert!(
        fields.iter().all(|f| !f.contains("token")),
        "no token fields: {fields:?}"
    );

    let res = app
        .post(
            &format!("/api/v1/integrations/{id}/disconnect"),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["integration"]["status"], "DISABLED");
    assert_eq!(v["integration"]["connected"], false);
    assert!(v["integration"]["next_sync_at"].is_null());
    let (status, access, refresh) = stored(app, id).await;
    assert_eq!(status, "DISABLED");
    assert!(access.is_none() && refresh.is_none(), "tokens deleted");
    // The queued sync was cancelled, and a disconnected integration cannot be synced.
    let j = app.db.system.job(app.a.id, job).await.unwrap().unwrap();
    assert_eq!(j.state.as_str(), "cancelled");
    let res = app.post(&path, &app.a.admin, &json!({})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "integration_not_connected");
    assert_eq!(
        audit_actions(app, app.a.id).await,
        [
            "integration.connect_start",
            "integration.connect",
            "integration.sync",
            "integration.sync",
            "integration.disconnect"
        ]
    );
    // Connecting again makes it ACTIVE.
    assert_eq!(connect(&env, "xero").await, id);
    assert_eq!(stored(app, id).await.0, "ACTIVE");
}

#[tokio::test]
async fn an_integration_not_yet_connected_cannot_be_synced() {
    let env = env().await;
    let app = &env.app;
    let res = app
        .post(
            "/api/v1/integrations/xero/connect",
            &app.a.admin,
            &json!({}),
        )
        .await;
    let id = res.json::<Value>().await.unwrap()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post(
            &format!("/api/v1/integrations/{id}/sync"),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "integration_not_connected");
}

#[tokio::test]
async fn unknown_and_unconfigured_providers() {
    let env = env().await;
    let app = &env.app;
    let res = app
        .post(
            "/api/v1/integrations/quickbooks/connect",
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post(
            "/api/v1/integrations/pipedrive/connect",
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "provider_not_configured");
    assert!(audit_actions(app, app.a.id).await.is_empty());
}

#[tokio::test]
async fn only_admins_manage_integrations_and_other_tenants_ids_are_not_found() {
    let env = env().await;
    let app = &env.app;
    let id = connect(&env, "xero").await;
    for user in [&app.a.editor, &app.a.viewer] {
        for (m, path) in [
            (Method::GET, "/api/v1/integrations".to_string()),
            (
                Method::POST,
                "/api/v1/integrations/xero/connect".to_string(),
            ),
            (Method::POST, format!("/api/v1/integrations/{id}/sync")),
            (
                Method::POST,
                format!("/api/v1/integrations/{id}/disconnect"),
            ),
        ] {
            let res = app
                .request(m.clone(), &path, user)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{m} {path} as {}", user.role);
        }
    }
    for suffix in ["sync", "disconnect"] {
        let res = app
            .post(
                &format!("/api/v1/integrations/{id}/{suffix}"),
                &app.b.admin,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 404, "{suffix} from tenant B");
    }
    let list: Value = app
        .get("/api/v1/integrations", &app.b.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
    assert_eq!(stored(app, id).await.0, "ACTIVE");
    assert_eq!(audit_actions(app, app.b.id).await, Vec::<String>::new());
}

#[tokio::test]
async fn without_an_encryption_key_the_routes_answer_503() {
    let app = TestApp::builder().without_integrations().spawn().await;
    for (m, path) in [
        (Method::GET, "/api/v1/integrations"),
        (Method::POST, "/api/v1/integrations/xero/connect"),
    ] {
        let res = app
            .request(m, path, &app.a.admin)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(error_code(res).await, "integrations_unavailable");
    }
    // The role check still comes first.
    let res = app.get("/api/v1/integrations", &app.a.viewer).await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_sync_started_through_the_route_writes_rows() {
    let env = env().await;
    let app = &env.app;
    env.xero.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "c1", "Name": "Acme Pty", "ContactStatus": "ACTIVE"}),
    );
    env.xero.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "PAID",
               "Contact": {"ContactID": "c1"}, "Date": "/Date(1704844800000+0000)/", "SubTotal": 100.0}),
    );
    let id = connect(&env, "xero").await;
    let res = sync_now(app, id).await;
    assert_eq!(res.status(), 202);
    let job: Uuid = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut worker = zixly_queue::Worker::new(app.db.system.clone(), Default::default());
    app.state
        .integrations
        .as_ref()
        .unwrap()
        .register(&mut worker, app.db.system.clone());
    worker.run_until_idle().await.unwrap();
    let j = app.db.system.job(app.a.id, job).await.unwrap().unwrap();
    assert_eq!(j.state.as_str(), "completed", "{}", j.errors);
    let rows: Vec<(String, String, String)> = app
        .db
        .superuser()
        .await
        .query(
            "select k.client_id, f.record_date::text, f.revenue::text
               from financials f join client_kpis k on k.tenant_id = f.tenant_id and k.id = f.client_kpi_id
              where f.tenant_id = $1 and f.source_system = 'xero'",
            &[&app.a.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [(
            "c1".to_string(),
            "2024-01-10".to_string(),
            "100.00".to_string()
        )]
    );
    let list: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["data"][0]["last_sync_at"].is_string());
    assert!(list["data"][0]["last_error"].is_null());
}

#[tokio::test]
async fn what_the_authorization_tells_goes_into_the_settings() {
    use zixly_testkit::fakes::myob::{self as my, FakeMyob};
    use zixly_testkit::fakes::pipedrive::{self as pd, FakePipedrive};
    let pipedrive = FakePipedrive::start().await;
    let myob = FakeMyob::start().await;
    let app = TestApp::builder()
        .providers(vec![
            config(
                Provider::Pipedrive,
                pd::CLIENT_ID,
                pd::CLIENT_SECRET,
                pipedrive.auth_url(),
                pipedrive.token_url(),
                &pipedrive.url,
            ),
            config(
                Provider::Myob,
                my::CLIENT_ID,
                my::CLIENT_SECRET,
                myob.auth_url(),
                myob.token_url(),
                &format!("{}/accountright", myob.url),
            ),
        ])
        .spawn()
        .await;
    let cookie = session(&app, &app.a.admin).await;
    for provider in ["pipedrive", "myob"] {
        let url = approve(&app, &start(&app, &app.a.admin, provider).await).await;
        let res = callback(&app, &url, &cookie, "application/json").await;
        assert_eq!(res.status(), 200, "{provider}");
    }
    let list: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let settings = |p: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["provider"] == p)
            .unwrap()["settings"]
            .clone()
    };
    assert_eq!(
        settings("PIPEDRIVE")["pipedrive_api_domain"],
        pipedrive.url.as_str()
    );
    assert_eq!(settings("MYOB")["myob_business_id"], "cf-1");
}

#[tokio::test]
async fn settings_are_merged_by_patch_and_audited() {
    let env = env().await;
    let app = &env.app;
    let id = connect(&env, "xero").await;
    let path = format!("/api/v1/integrations/{id}");
    let res = app
        .patch(
            &path,
            &app.a.admin,
            &json!({"settings": {"full_sync_hours": 6, "tracking_category": "Project"}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .patch(
            &path,
            &app.a.admin,
            &json!({"settings": {"tracking_category": null, "full_sync_hours": 12}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    // The only organisation Xero granted was recorded when connecting.
    assert_eq!(
        v["settings"],
        json!({"xero_tenant_id": "org-1", "xero_organisation_name": "Demo Org", "full_sync_hours": 12})
    );
    assert_eq!(v["status"], "ACTIVE", "settings leave the connection alone");
    // What only the authorization or the organisation choice may set, nothing at all, unknown
    // fields: 422.
    for body in [
        json!({"settings": {"pipedrive_api_domain": "https://evil.example"}}),
        json!({"settings": {"xero_tenant_id": "anything"}}),
        json!({"settings": {"xero_organisation_name": null}}),
        json!({"settings": {}}),
        json!({"settings": {"a": 1}, "status": "ACTIVE"}),
        json!({"settings": {"requests_per_minute": 0}}),
        json!({"settings": {"requests_per_minute": 1501}}),
        json!({"settings": {"requests_per_minute": 1.5}}),
        json!({"settings": {"requests_per_minute": "1500"}}),
    ] {
        let res = app.patch(&path, &app.a.admin, &body).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    let res = app
        .patch(
            &path,
            &app.a.admin,
            &json!({"settings": {"requests_per_minute": 1500}}),
        )
        .await;
    assert_eq!(res.status(), 200, "a paid Asana workspace's limit");
    let res = app
        .patch(&path, &app.a.editor, &json!({"settings": {"a": 1}}))
        .await;
    assert_eq!(res.status(), 403);
    let updates = audit_actions(app, app.a.id)
        .await
        .into_iter()
        .filter(|a| a == "integration.update")
        .count();
    assert_eq!(updates, 3);
}

#[tokio::test]
async fn disconnect_revokes_the_grant_at_xero_and_hubspot() {
    let env = env().await;
    let app = &env.app;
    let engine = app.state.integrations.as_ref().unwrap();
    for (provider, fake) in [
        (Provider::Xero, &env.xero.oauth),
        (Provider::Hubspot, &env.hubspot.oauth),
    ] {
        let id = connect(&env, provider.as_str()).await;
        let refresh = engine
            .keyring()
            .decrypt_str(
                &stored(app, id).await.2.unwrap(),
                &zixly_sync::tokens::aad(app.a.id, id, "refresh_token"),
            )
            .unwrap();
        assert_eq!(fake.revocations(), 0);
        let res = app
            .post(
                &format!("/api/v1/integrations/{id}/disconnect"),
                &app.a.admin,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 200, "{provider}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["revoked"], true, "{provider}: {v}");
        assert!(v["revocation_error"].is_null());
        assert_eq!(fake.revocations(), 1, "{provider}");
        // The provider no longer honours the old grant.
        let config = engine.provider_config(provider).unwrap();
        let err = config.refresh(engine.http(), &refresh).await.unwrap_err();
        assert!(
            err.to_string().contains("invalid_grant"),
            "{provider}: {err}"
        );
    }
}

/// MYOB's yearly consent lapses: the refused refresh ends the integration in ERROR with a
/// "reconnect MYOB" reason the ADMIN reads on the integration list (no retry loop).
#[tokio::test]
async fn an_expired_myob_consent_shows_the_admin_a_reconnect_error() {
    use zixly_testkit::fakes::myob::{self as my, FakeMyob};
    let myob = FakeMyob::start().await;
    let app = TestApp::builder()
        .providers(vec![config(
            Provider::Myob,
            my::CLIENT_ID,
            my::CLIENT_SECRET,
            myob.auth_url(),
            myob.token_url(),
            &myob.api_url(),
        )])
        .spawn()
        .await;
    let cookie = session(&app, &app.a.admin).await;
    let url = approve(&app, &start(&app, &app.a.admin, "myob").await).await;
    let res = callback(&app, &url, &cookie, "application/json").await;
    assert_eq!(res.status(), 200);
    let id: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    myob.expire_consent();
    let res = app
        .post(
            &format!("/api/v1/integrations/{id}/sync"),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mut worker = zixly_queue::Worker::new(app.db.system.clone(), Default::default());
    app.state
        .integrations
        .as_ref()
        .unwrap()
        .register(&mut worker, app.db.system.clone());
    worker.run_until_idle().await.unwrap();
    assert_eq!(
        myob.oauth.rejected_refreshes(),
        1,
        "refused once, not retried"
    );
    let list: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let i = &list["data"][0];
    assert_eq!(i["status"], "ERROR");
    let error = i["last_error"].as_str().unwrap();
    assert!(
        error.contains("reconnect MYOB (consent expired)"),
        "{error}"
    );
}

const ORG_A: &str = "6f1b7c2e-1d3a-4c5b-9e8f-0a1b2c3d4e5f";
const ORG_B: &str = "0c9d8e7f-6a5b-4c3d-8e1f-2a3b4c5d6e7f";

/// `POST /api/v1/integrations/{id}/sync` as tenant A's ADMIN.
async fn sync_now(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.post(
        &format!("/api/v1/integrations/{id}/sync"),
        &app.a.admin,
        &json!({}),
    )
    .await
}

/// Runs the queued jobs with the app's engine.
async fn run_jobs(app: &TestApp) {
    let mut worker = zixly_queue::Worker::new(app.db.system.clone(), Default::default());
    app.state
        .integrations
        .as_ref()
        .unwrap()
        .register(&mut worker, app.db.system.clone());
    worker.run_until_idle().await.unwrap();
}

/// (status, last_error, settings) of an integration as stored.
async fn integration_row(app: &TestApp, id: Uuid) -> (String, Option<String>, Value) {
    let r = app
        .db
        .superuser()
        .await
        .query_one(
            "select status::text, last_error, settings from integrations where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// The `xero-tenant-id` headers of the accounting requests the fake Xero recorded.
fn xero_tenant_headers(xero: &FakeXero) -> Vec<String> {
    zixly_testkit::fakes::recorded(&xero.url)
        .iter()
        .filter(|r| r.path.starts_with("/api.xro/2.0/"))
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "xero-tenant-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn the_admin_lists_and_chooses_the_xero_organisation_through_the_api() {
    let env = env().await;
    let app = &env.app;
    env.xero
        .set_organisations(&[(ORG_A, "Acme Holdings"), (ORG_B, "Beta Services")]);
    let id = connect(&env, "xero").await;
    let (_, _, settings) = integration_row(app, id).await;
    assert!(
        settings.get("xero_tenant_id").is_none(),
        "two organisations: none is recorded at connect time: {settings}"
    );
    let list_path = format!("/api/v1/integrations/{id}/organisations");
    let choose_path = format!("/api/v1/integrations/{id}/organisation");

    // Several organisations and none chosen: the sync stops with an ERROR telling the ADMIN
    // where to choose.
    let res = app
        .post(
            &format!("/api/v1/integrations/{id}/sync"),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    run_jobs(app).await;
    let (status, error, _) = integration_row(app, id).await;
    assert_eq!(status, "ERROR");
    let error = error.unwrap();
    assert!(
        error.contains("2 Xero organisations")
            && error.contains("pick one on the Integrations page"),
        "{error}"
    );

    let res = app.get(&list_path, &app.a.admin).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["organisations"],
        json!([{"tenant_id": ORG_A, "name": "Acme Holdings", "chosen": false},
               {"tenant_id": ORG_B, "name": "Beta Services", "chosen": false}])
    );
    assert_eq!(v["chosen"], Value::Null);
    assert_eq!(v["choice_needed"], true);

    // VIEWERs and EDITORs may do neither.
    for user in [&app.a.viewer, &app.a.editor] {
        assert_eq!(app.get(&list_path, user).await.status(), 403);
        let res = app
            .post(&choose_path, user, &json!({"tenant_id": ORG_B}))
            .await;
        assert_eq!(res.status(), 403);
    }
    // An organisation Xero does not grant, or no id at all, is refused and changes nothing.
    let res = app
        .post(
            &choose_path,
            &app.a.admin,
            &json!({"tenant_id": "7e57a1b2-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "organisation_not_granted");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Acme Holdings") && message.contains("Beta Services"),
        "the message lists what can be chosen: {message}"
    );
    for body in [
        json!({"tenant_id": ""}),
        json!({}),
        json!({"tenant_id": ORG_B, "x": 1}),
    ] {
        let res = app.post(&choose_path, &app.a.admin, &body).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    assert!(integration_row(app, id)
        .await
        .2
        .get("xero_tenant_id")
        .is_none());
    assert!(!audit_actions(app, app.a.id)
        .await
        .contains(&"integration.organisation".to_string()));

    // Choosing B: recorded, audited, a sync queued.
    let res = app
        .post(&choose_path, &app.a.admin, &json!({"tenant_id": ORG_B}))
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["chosen"], ORG_B);
    assert_eq!(v["choice_needed"], false);
    assert_eq!(v["organisations"][1]["chosen"], true);
    assert!(v["sync_job_id"].is_string(), "{v}");
    let (_, _, settings) = integration_row(app, id).await;
    assert_eq!(settings["xero_tenant_id"], ORG_B);
    assert_eq!(settings["xero_organisation_name"], "Beta Services");
    let audit = app
        .db
        .superuser()
        .await
        .query_one(
            "select summary, actor_user_id = $2 from audit_logs where tenant_id = $1 and action = 'integration.organisation'",
            &[&app.a.id, &app.a.admin.id],
        )
        .await
        .unwrap();
    let details: Value = audit.get(0);
    assert!(audit.get::<_, bool>(1), "the ADMIN is the actor");
    assert_eq!(details["from"]["tenant_id"], Value::Null);
    assert_eq!(
        details["to"],
        json!({"tenant_id": ORG_B, "name": "Beta Services"})
    );

    // The fake's two-organisation `/connections` answers (and the requests for them) follow
    // Xero's contract.
    let connections: Vec<_> = zixly_testkit::fakes::recorded(&env.xero.url)
        .into_iter()
        .filter(|r| r.path == "/connections")
        .collect();
    assert!(
        connections.len() >= 3,
        "connect, list and choose asked Xero"
    );
    assert!(connections.iter().all(|r| r.response.is_some()));
    let contract = zixly_testkit::contracts::load("xero");
    let violations = zixly_testkit::contracts::check_responses(&contract, &connections);
    assert!(violations.is_empty(), "{violations:?}");
    let violations: Vec<_> = zixly_testkit::contracts::check_requests(&contract, &connections)
        .into_iter()
        // The identity API's `/connections` takes no tenant header (see xero_contract.rs).
        .filter(|v| v.subject != "header xero-tenant-id")
        .collect();
    assert!(violations.is_empty(), "{violations:?}");

    // The queued sync reads organisation B and brings the integration back.
    zixly_testkit::fakes::clear_recorded(&env.xero.url);
    run_jobs(app).await;
    let headers = xero_tenant_headers(&env.xero);
    assert!(!headers.is_empty());
    assert!(headers.iter().all(|h| h == ORG_B), "{headers:?}");
    let (status, error, _) = integration_row(app, id).await;
    assert_eq!((status.as_str(), error), ("ACTIVE", None));

    // Choosing the same one again queues nothing.
    let res = app
        .post(&choose_path, &app.a.admin, &json!({"tenant_id": ORG_B}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .json::<Value>()
        .await
        .unwrap()
        .get("sync_job_id")
        .is_none());

    // Not a Xero integration, or not connected: 409.
    let hubspot = app.db.app.begin_tenant(app.a.id).await.unwrap();
    let h = hubspot.ensure_integration("HUBSPOT").await.unwrap();
    hubspot.commit().await.unwrap();
    let res = app
        .get(
            &format!("/api/v1/integrations/{}/organisations", h.id),
            &app.a.admin,
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "not_xero");
    let res = app
        .post(
            &format!("/api/v1/integrations/{id}/disconnect"),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app.get(&list_path, &app.a.admin).await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "integration_not_connected");
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    html.split_once(r#"name="_csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .expect("the page carries a CSRF token")
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> String {
    let res = app
        .anonymous(Method::GET, path)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

async fn pick(app: &TestApp, cookie: &str, csrf: &str, tenant_id: &str) -> Response {
    app.anonymous(Method::POST, "/integrations/XERO/organisation")
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, app.base_url.as_str())
        .form(&[("_csrf", csrf), ("tenant_id", tenant_id)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_integrations_page_offers_the_xero_organisations_by_name_and_choosing_works() {
    let env = env().await;
    let app = &env.app;
    env.xero.set_organisations(&[
        (ORG_A, "<script>alert(1)</script> Ltd"),
        (ORG_B, "Beta & \"Sons\""),
    ]);
    let id = connect(&env, "xero").await;
    let cookie = session(app, &app.a.admin).await;
    let html = page(app, &cookie, "/integrations").await;
    assert!(html.contains("data-xero-organisation-picker"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; Ltd"));
    assert!(!html.contains("<script>alert(1)"), "names are escaped");
    assert!(html.contains("Beta &amp; &quot;Sons&quot;"));
    assert!(html.contains(&format!(r#"value="{ORG_B}""#)));
    let csrf = csrf_of(&html);

    // Other roles see the status, not the picker.
    let viewer = session(app, &app.a.viewer).await;
    let html = page(app, &viewer, "/integrations").await;
    assert!(!html.contains("data-xero-organisation-picker"));
    assert!(!html.contains("Beta &amp;"));

    // An organisation Xero does not grant: the API's refusal, shown.
    let res = pick(app, &cookie, &csrf, "7e57a1b2-0000-4000-8000-000000000000").await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("does not grant"));
    assert!(integration_row(app, id)
        .await
        .2
        .get("xero_tenant_id")
        .is_none());

    let res = pick(app, &cookie, &csrf, ORG_B).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()[header::LOCATION],
        "/integrations?organisation=chosen"
    );
    assert_eq!(integration_row(app, id).await.2["xero_tenant_id"], ORG_B);
    assert!(audit_actions(app, app.a.id)
        .await
        .contains(&"integration.organisation".to_string()));

    // Chosen: its name, and a way to change it.
    let html = page(app, &cookie, "/integrations?organisation=chosen").await;
    assert!(!html.contains("data-xero-organisation-picker"));
    assert!(
        html.contains("Organisation: <strong>Beta &amp; &quot;Sons&quot;</strong>"),
        "{html}"
    );
    assert!(html.contains("/integrations?organisation=choose"));
    let html = page(app, &cookie, "/integrations?organisation=choose").await;
    assert!(html.contains("data-xero-organisation-picker"));
    assert!(
        html.contains(&format!(r#"value="{ORG_B}" checked"#)),
        "{html}"
    );
    // Without a CSRF token nothing changes.
    let res = pick(app, &cookie, "", ORG_A).await;
    assert!(res.status().is_client_error());
    assert_eq!(integration_row(app, id).await.2["xero_tenant_id"], ORG_B);
}

#[tokio::test]
async fn connecting_with_one_organisation_records_it_and_the_page_names_it() {
    let env = env().await;
    let app = &env.app;
    env.xero.set_organisations(&[(ORG_A, "Acme Holdings")]);
    let id = connect(&env, "xero").await;
    let (_, _, settings) = integration_row(app, id).await;
    assert_eq!(settings["xero_tenant_id"], ORG_A);
    assert_eq!(settings["xero_organisation_name"], "Acme Holdings");
    let cookie = session(app, &app.a.admin).await;
    let html = page(app, &cookie, "/integrations").await;
    assert!(html.contains("Organisation: <strong>Acme Holdings</strong>"));
    assert!(!html.contains("data-xero-organisation-picker"));
}

#[tokio::test]
async fn an_unfinished_sync_shows_its_progress_and_a_pause_shows_when_and_why() {
    let env = env().await;
    let app = &env.app;
    let id = connect(&env, "xero").await;
    let su = app.db.superuser().await;
    su.execute(
        "insert into sync_checkpoints (tenant_id, integration_id, state, stream, pages_read, items_read, items_total, requests)
         values ($1, $2, '{}', 'invoices', 37, 37000, 200000, 40)",
        &[&app.a.id, &id],
    )
    .await
    .unwrap();
    su.execute(
        "update integrations set paused_until = '2030-01-02 03:04:00+00',
                pause_reason = 'the provider''s request budget is used up <day>' where id = $1",
        &[&id],
    )
    .await
    .unwrap();

    let res = app.get("/api/v1/integrations", &app.a.admin).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let xero = &body["data"][0];
    assert_eq!(xero["paused_until"], "2030-01-02T03:04:00Z");
    assert_eq!(
        xero["pause_reason"],
        "the provider's request budget is used up <day>"
    );
    assert_eq!(xero["progress"]["pages_read"], 37);
    assert_eq!(xero["progress"]["items_total"], 200000);
    assert_eq!(
        xero["progress"]["summary"],
        "invoices: 37,000 of about 200,000 items read (37 pages)"
    );

    let admin = session(app, &app.a.admin).await;
    let html = page(app, &admin, "/integrations").await;
    assert!(
        html.contains(
            // maud escapes `<`, `>`, `&` and `"`; an apostrophe in text is harmless as it is.
            "Paused until 2 Jan 2030 14:04 AEDT: the provider's request budget is used up &lt;day&gt;"
        ),
        "{html}"
    );
    assert!(
        html.contains("Sync in progress — invoices: 37,000 of about 200,000 items read (37 pages)")
    );
    // Other roles see that it is paused and how far it got, not the provider's reason.
    let viewer = session(app, &app.a.viewer).await;
    let html = page(app, &viewer, "/integrations").await;
    assert!(
        html.contains("Paused until 2 Jan 2030 14:04 AEDT</p>"),
        "{html}"
    );
    assert!(!html.contains("budget is used up"));
    assert!(html.contains("Sync in progress — invoices: 37,000"));

    // A settled run: no progress line.
    su.execute("delete from sync_checkpoints", &[])
        .await
        .unwrap();
    su.execute(
        "update integrations set paused_until = null, pause_reason = null",
        &[],
    )
    .await
    .unwrap();
    let html = page(app, &admin, "/integrations").await;
    assert!(!html.contains("data-sync-progress") && !html.contains("data-sync-paused"));
    let body: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"][0]["progress"], Value::Null);
}

/// A first sync of many pages (HubSpot lists 50 deals a page: 120 deals are three page loads)
/// is one run: the API's `last_run` and the page's "Last run" line have the whole run's counts,
/// not the last page's 20.
#[tokio::test]
async fn the_last_run_shows_the_whole_runs_counts_not_its_last_pages() {
    let env = env().await;
    let app = &env.app;
    let at = "2024-01-01T09:00:00.000Z";
    env.hubspot.data.lock().unwrap().pipelines = vec![json!({"id": "default", "label": "Sales",
        "displayOrder": 0, "archived": false, "createdAt": at, "updatedAt": at,
        "stages": [{"id": "s1", "label": "Qualified", "displayOrder": 0, "archived": false,
                    "metadata": {"probability": "0.2", "isClosed": "false"},
                    "createdAt": at, "updatedAt": at}]})];
    env.hubspot.add(
        "companies",
        json!({"id": "co-1", "properties": {"name": "Acme"}, "archived": false}),
    );
    for i in 0..120 {
        env.hubspot.add("deals", json!({"id": (1000 + i).to_string(), "archived": false,
            "properties": {"amount": "10", "dealstage": "s1", "pipeline": "default",
                           "hs_is_closed": "false", "hs_is_closed_won": "false",
                           "hs_lastmodifieddate": at},
            "propertiesWithHistory": {"dealstage": [{"value": "s1", "timestamp": at, "sourceType": "CRM_UI"}]},
            "associations": {"companies": {"results": [{"id": "co-1", "type": "deal_to_company"}]}},
            "createdAt": at, "updatedAt": at}));
    }
    let id = connect(&env, "hubspot").await;
    assert_eq!(sync_now(app, id).await.status(), 202);
    run_jobs(app).await;

    let body: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let hubspot = &body["data"][0];
    assert_eq!(hubspot["provider"], "HUBSPOT");
    let run = &hubspot["last_run"];
    assert_eq!(run["status"], "succeeded", "{hubspot}");
    assert_eq!(run["rows_read"], 120, "{hubspot}");
    assert_eq!(run["rows_inserted"], 120, "{hubspot}");
    let viewer = session(app, &app.a.viewer).await;
    let html = page(app, &viewer, "/integrations").await;
    assert!(
        html.contains("Last run: succeeded — 120 rows read: 120 inserted, 0 updated, 0 unchanged"),
        "{html}"
    );
}

/// The daily budget end to end: Xero answers "day limit" part-way through a sync run by the
/// worker, and the Integrations page tells the ADMIN when it resumes and why — not an error.
#[tokio::test]
async fn a_day_limit_met_during_a_sync_shows_on_the_page_as_a_pause_with_its_resume_time() {
    let env = env().await;
    let app = &env.app;
    let id = connect(&env, "xero").await;
    {
        let mut d = env.xero.data.lock().unwrap();
        d.day_remaining = Some(2);
        d.day_retry_after = 7_200;
    }
    assert_eq!(sync_now(app, id).await.status(), 202);
    run_jobs(app).await;
    let (status, last_error, _) = integration_row(app, id).await;
    assert_eq!((status.as_str(), last_error), ("ACTIVE", None));

    let admin = session(app, &app.a.admin).await;
    let html = page(app, &admin, "/integrations").await;
    assert!(html.contains("Paused until "), "{html}");
    assert!(html.contains("request budget is used up"), "{html}");
    let body: Value = app
        .get("/api/v1/integrations", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let until: chrono::DateTime<chrono::Utc> = body["data"][0]["paused_until"]
        .as_str()
        .expect("paused_until set")
        .parse()
        .unwrap();
    let wait = (until - chrono::Utc::now()).num_seconds();
    assert!(
        (7_000..=7_200).contains(&wait),
        "resumes in ~7200 s, not {wait}"
    );
}
