//! The real HTTP server on a fresh database, for API tests over real HTTP.
//!
//! ```ignore
//! let app = spawn_app().await;                       // two tenants, ADMIN/EDITOR/VIEWER in each
//! let res = app.get("/api/v1/me", &app.a.admin).await;
//! assert_eq!(res.status(), 200);
//! let res = app.post("/api/v1/clients", &app.b.editor, &json!({..})).await;
//! ```
//!
//! - [`spawn_app`] / [`TestAppBuilder`]: a [`TestDb`], `zixly_web::serve` on `127.0.0.1:0` in a
//!   task (stopped when the `TestApp` drops), a `reqwest` client without cookie store.
//! - Fixture: tenants [`TestApp::a`] and [`TestApp::b`], each with an ADMIN, an EDITOR and a
//!   VIEWER ([`TestUser`]) who have a password ([`PASSWORD`]) and a ready personal API token (made
//!   directly in the database: no login, no argon2 per user; all fixture users share one hash).
//! - [`TestAppBuilder::with_mailer`] captures outgoing mail ([`TestApp::mails`]).
//! - Integrations: every app has an integrations context (a random token keyring, no provider
//!   configured) unless [`TestAppBuilder::without_integrations`]; [`TestAppBuilder::providers`]
//!   configures providers (e.g. pointed at the fakes). The engine is
//!   `app.state.integrations` (run syncs in a test with its `register`/`run`).

use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, RequestBuilder, Response};
use uuid::Uuid;
use zixly_db::queries::auth::{NewToken, TokenKind};
use zixly_domain::Role;
use zixly_web::auth::{issue_secret, SecretKind};
use zixly_web::mail::{Email, MailFuture, Mailer};
use zixly_web::{AppState, WebConfig};

use crate::TestDb;

/// The password of every fixture user.
pub const PASSWORD: &str = "fixture password 123";

fn fixture_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        zixly_domain::password::hash_password(PASSWORD).expect("hashing the fixture password")
    })
}

/// A fixture user with a valid personal API token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// A personal API token (`Authorization: Bearer`).
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: Uuid,
    pub name: String,
    pub admin: TestUser,
    pub editor: TestUser,
    pub viewer: TestUser,
}

impl TestTenant {
    pub fn user(&self, role: Role) -> &TestUser {
        match role {
            Role::Admin => &self.admin,
            Role::Editor => &self.editor,
            Role::Viewer => &self.viewer,
        }
    }
}

/// Captures mail instead of sending it.
#[derive(Default)]
pub struct CapturingMailer {
    pub sent: Mutex<Vec<Email>>,
}

impl Mailer for CapturingMailer {
    fn send(&self, email: Email) -> MailFuture<'_> {
        self.sent.lock().unwrap().push(email);
        Box::pin(async { Ok(()) })
    }
}

pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub base_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub a: TestTenant,
    pub b: TestTenant,
    pub mailer: Option<Arc<CapturingMailer>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Last so that the server stops before the database is dropped.
    pub db: TestDb,
}

/// A test's adjustment of the server configuration before the app starts.
type ConfigureWeb = Box<dyn FnOnce(&mut WebConfig)>;

#[derive(Default)]
pub struct TestAppBuilder {
    configure: Option<ConfigureWeb>,
    mailer: bool,
    providers: Vec<zixly_connectors::ProviderConfig>,
    without_integrations: bool,
}

impl TestAppBuilder {
    /// Adjusts the web configuration (throttling limits, public URL, TTLs...).
    pub fn config(mut self, f: impl FnOnce(&mut WebConfig) + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Configures a [`CapturingMailer`].
    pub fn with_mailer(mut self) -> Self {
        self.mailer = true;
        self
    }

    /// Provider configurations of the integrations context.
    pub fn providers(mut self, providers: Vec<zixly_connectors::ProviderConfig>) -> Self {
        self.providers = providers;
        self
    }

    /// No integrations context (as a server without an encryption key).
    pub fn without_integrations(mut self) -> Self {
        self.without_integrations = true;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let db = TestDb::new().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");
        let mut config = WebConfig::new(&base_url).unwrap();
        if let Some(f) = self.configure {
            f(&mut config);
        }
        let mut state = AppState::new(db.app.clone(), config);
        let mailer = self.mailer.then(|| Arc::new(CapturingMailer::default()));
        if let Some(m) = &mailer {
            state = state.with_mailer(m.clone());
        }
        if !self.without_integrations {
            let keyring = zixly_crypto::Keyring::new(&zixly_crypto::generate_key(), &[]);
            state = state.with_integrations(zixly_sync::engine::SyncEngine::new(
                db.app.clone(),
                Arc::new(keyring),
                self.providers,
                zixly_sync::engine::SyncConfig {
                    max_jitter: std::time::Duration::ZERO,
                    ..Default::default()
                },
            ));
        }
        let a = tenant(&db, "Tenant A", "a").await;
        let b = tenant(&db, "Tenant B", "b").await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            zixly_web::serve(listener, served, async {
                let _ = rx.await;
            })
            .await
            .expect("test server failed");
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base_url,
            client,
            state,
            a,
            b,
            mailer,
            shutdown: Some(tx),
            db,
        }
    }
}

/// A running server with the two-tenant fixture.
pub async fn spawn_app() -> TestApp {
    TestAppBuilder::default().spawn().await
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A request without credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with `user`'s bearer token.
    pub fn request(&self, method: Method, path: &str, user: &TestUser) -> RequestBuilder {
        self.anonymous(method, path).bearer_auth(&user.token)
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> Response {
        self.request(Method::GET, path, user)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: &serde_json::Value) -> Response {
        self.request(Method::POST, path, user)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch(&self, path: &str, user: &TestUser, body: &serde_json::Value) -> Response {
        self.request(Method::PATCH, path, user)
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str, user: &TestUser) -> Response {
        self.request(Method::DELETE, path, user)
            .send()
            .await
            .expect("DELETE")
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.anonymous(Method::POST, "/api/v1/auth/login")
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// Logs in and returns the session token (panics unless 200).
    pub async fn login_token(&self, email: &str, password: &str) -> String {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 200, "login of {email} failed");
        let body: serde_json::Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// The user behind `token`, for requests with a token obtained in the test.
    pub fn with_token(&self, user: &TestUser, token: &str) -> TestUser {
        TestUser {
            token: token.to_string(),
            ..user.clone()
        }
    }

    /// Mail captured so far (needs [`TestAppBuilder::with_mailer`]).
    pub fn mails(&self) -> Vec<Email> {
        self.mailer
            .as_ref()
            .expect("TestApp built without a mailer")
            .sent
            .lock()
            .unwrap()
            .clone()
    }

    /// Adds a user with [`PASSWORD`] and a personal token to a tenant.
    pub async fn add_user(&self, tenant_id: Uuid, email: &str, role: Role) -> TestUser {
        add_user(&self.db, tenant_id, email, role).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn tenant(db: &TestDb, name: &str, label: &str) -> TestTenant {
    let id = db.tenant(name).await;
    let admin = add_user(db, id, &format!("admin@{label}.example"), Role::Admin).await;
    let editor = add_user(db, id, &format!("editor@{label}.example"), Role::Editor).await;
    let viewer = add_user(db, id, &format!("viewer@{label}.example"), Role::Viewer).await;
    TestTenant {
        id,
        name: name.to_string(),
        admin,
        editor,
        viewer,
    }
}

async fn add_user(db: &TestDb, tenant_id: Uuid, email: &str, role: Role) -> TestUser {
    let tx = db.app.begin_tenant(tenant_id).await.unwrap();
    let id = tx
        .insert_user(email, role, Some(fixture_hash()))
        .await
        .unwrap();
    let secret = issue_secret(SecretKind::Personal, tenant_id);
    tx.insert_auth_token(&NewToken {
        user_id: id,
        kind: TokenKind::Personal,
        name: Some("fixture"),
        token_hash: &secret.hash,
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        created_addr: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    TestUser {
        tenant_id,
        id,
        email: email.to_string(),
        role,
        token: secret.token,
    }
}
