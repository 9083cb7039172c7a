//! Authentication and authorization: who is calling, for which tenant, with which capability.
//!
//! # Credentials
//! A request authenticates with `Authorization: Bearer <token>` or with the session cookie
//! [`SESSION_COOKIE`] set by login (the bearer header wins when both are present). Tokens are
//! opaque strings `<prefix>_<tenant id: 32 hex><secret: 64 hex>` (256 random bits): `zxs_` a
//! session, `zxp_` a personal API token, `zxi_` an invitation link, `zxr_` a password-reset link.
//! Only SHA-256 hashes are stored. The tenant id in the token lets the lookup run inside that
//! tenant's RLS transaction (see `migrations/0002_auth.sql`); a forged tenant part finds nothing.
//!
//! # Capabilities in types (after lldap's access-control crate)
//! A handler states the least role it needs by the type of its first argument:
//!
//! ```ignore
//! async fn list_users(auth: Auth<Admin>, ...) -> ApiResult<...>   // ADMIN only
//! async fn update_client(auth: Auth<Editor>, ...)                  // EDITOR or ADMIN
//! async fn get_client(auth: Auth<Viewer>, ...)                     // any authenticated user
//! ```
//!
//! [`Auth<C>`] has private fields and no public constructor: the only way to obtain one is the
//! extractor, which checks the caller's *current* role (read from the database with the token, so
//! a demotion takes effect at once) against `C::ROLE` and answers 401 (no valid credential) or
//! 403 (role too low). A stronger capability can be weakened ([`Auth::weaken`]); a weaker one can
//! never be strengthened. The capability markers ([`Viewer`], [`Editor`], [`Admin`]) are sealed.
//!
//! Neither of these compiles (checked by doc-tests, `cargo test --doc -p zixly_web`):
//!
//! ```compile_fail
//! use zixly_web::auth::{Admin, Auth, Viewer};
//! // A viewer's capability cannot be turned into an admin's.
//! fn escalate(a: &Auth<Viewer>) -> Auth<Admin> { a.weaken::<Admin>() }
//! ```
//!
//! ```compile_fail
//! use zixly_web::auth::{Admin, Auth};
//! // There is no constructor outside the extractor.
//! fn forge() -> Auth<Admin> { Auth { ..todo!() } }
//! ```
//!
//! # Tenant context
//! [`Auth::begin`] opens the request's [`TenantTx`] for the caller's tenant. Everything a handler
//! reads or writes goes through it, so RLS scopes it; another tenant's ids simply are not found
//! (404, never 403). Writes append an audit row in the same transaction: [`Auth::audit`] builds
//! the entry with actor, request id and client address filled in.
//!
//! # Token cache
//! Valid tokens are cached in memory for `WebConfig::token_cache_ttl` (default 10 s) so that a
//! request does not pay a database round trip for authentication. Revocation, logout, role
//! changes, deactivation and deletion through this process evict the cache at once; through
//! *another* process (several servers behind a balancer) they take effect within the TTL. Set the
//! TTL to zero to look every token up.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zixly_db::queries::audit::AuditEntry;
use zixly_db::queries::auth::TokenKind;
use zixly_db::{AppDb, TenantTx};
use zixly_domain::Role;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "zixly_session";

// ------------------------------------------------------------------------------------------------
// Secrets

/// What a secret token grants. The prefix is part of the token (it also helps secret scanners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Session,
    Personal,
    Invitation,
    PasswordReset,
    /// The `state` of an OAuth authorization (`api/integrations.rs`): never a credential.
    OAuthState,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::Session => "zxs",
            SecretKind::Personal => "zxp",
            SecretKind::Invitation => "zxi",
            SecretKind::PasswordReset => "zxr",
            SecretKind::OAuthState => "zxo",
        }
    }

    fn from_prefix(p: &str) -> Option<Self> {
        Some(match p {
            "zxs" => SecretKind::Session,
            "zxp" => SecretKind::Personal,
            "zxi" => SecretKind::Invitation,
            "zxr" => SecretKind::PasswordReset,
            "zxo" => SecretKind::OAuthState,
            _ => return None,
        })
    }
}

/// A freshly generated secret: the clear token (shown once) and what is stored. `Debug` redacts.
pub struct IssuedSecret {
    pub token: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedSecret { .. }")
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Generates a token of `kind` for `tenant_id` from the OS random generator.
pub fn issue_secret(kind: SecretKind, tenant_id: Uuid) -> IssuedSecret {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!(
        "{}_{}{}",
        kind.prefix(),
        tenant_id.simple(),
        hex::encode(secret)
    );
    let hash = sha256(token.as_bytes());
    IssuedSecret { token, hash }
}

/// A token parsed into its kind, tenant and hash. `None` for anything malformed.
#[derive(Clone, Copy)]
pub struct ParsedSecret {
    pub kind: SecretKind,
    pub tenant_id: Uuid,
    pub hash: [u8; 32],
}

pub fn parse_secret(token: &str) -> Option<ParsedSecret> {
    let token = token.trim();
    let (prefix, rest) = token.split_once('_')?;
    let kind = SecretKind::from_prefix(prefix)?;
    if rest.len() != 96
        || !rest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let tenant_id = Uuid::try_parse(&rest[..32]).ok()?;
    Some(ParsedSecret {
        kind,
        tenant_id,
        hash: sha256(token.as_bytes()),
    })
}

// ------------------------------------------------------------------------------------------------
// Request context

/// Per-request facts every handler may need: set by the request middleware.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: Arc<str>,
    pub client_addr: Option<IpAddr>,
}

impl RequestCtx {
    /// An audit entry for this request with an explicit actor (for flows without an [`Auth`]:
    /// accepting an invitation, resetting a password).
    pub fn audit(
        &self,
        actor: Option<(Uuid, &str)>,
        action: &str,
        entity_type: &str,
        entity_id: Option<String>,
        summary: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor_user_id: actor.map(|a| a.0),
            actor_label: actor.map_or_else(|| "anonymous".to_string(), |a| a.1.to_string()),
            action: action.to_string(),
            entity_type: entity_type.to_string(),
            entity_id,
            summary,
            request_id: Some(self.request_id.to_string()),
            client_addr: self.client_addr,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestCtx>()
            .cloned()
            .unwrap_or_else(|| RequestCtx {
                request_id: Arc::from(Uuid::now_v7().to_string()),
                client_addr: None,
            }))
    }
}

// ------------------------------------------------------------------------------------------------
// Capabilities

mod sealed {
    pub trait Sealed {}
}

/// A capability marker: the least role a handler needs. Sealed: exactly [`Viewer`], [`Editor`]
/// and [`Admin`].
pub trait Capability: sealed::Sealed + Send + Sync + 'static {
    const ROLE: Role;
}

/// Any authenticated user of the tenant (VIEWER, EDITOR or ADMIN).
pub struct Viewer;
/// EDITOR or ADMIN: may change data.
pub struct Editor;
/// ADMIN: manages users and integrations.
pub struct Admin;

impl sealed::Sealed for Viewer {}
impl sealed::Sealed for Editor {}
impl sealed::Sealed for Admin {}
impl Capability for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl Capability for Editor {
    const ROLE: Role = Role::Editor;
}
impl Capability for Admin {
    const ROLE: Role = Role::Admin;
}

/// `C: Includes<D>`: holding capability `C` proves capability `D`.
pub trait Includes<D: Capability>: Capability {}
impl Includes<Viewer> for Viewer {}
impl Includes<Viewer> for Editor {}
impl Includes<Editor> for Editor {}
impl Includes<Viewer> for Admin {}
impl Includes<Editor> for Admin {}
impl Includes<Admin> for Admin {}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    /// The role at authentication time (at most `token_cache_ttl` old).
    pub role: Role,
    pub token_id: Uuid,
    pub token_kind: TokenKind,
    pub token_expires_at: DateTime<Utc>,
}

/// Proof that the caller is authenticated with at least capability `C`. Only the extractor
/// builds one.
pub struct Auth<C: Capability> {
    principal: Arc<Principal>,
    ctx: RequestCtx,
    db: AppDb,
    cache: Arc<TokenCache>,
    token_hash: [u8; 32],
    _capability: PhantomData<C>,
}

impl<C: Capability> Auth<C> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn tenant_id(&self) -> Uuid {
        self.principal.tenant_id
    }

    pub fn user_id(&self) -> Uuid {
        self.principal.user_id
    }

    pub fn role(&self) -> Role {
        self.principal.role
    }

    pub fn ctx(&self) -> &RequestCtx {
        &self.ctx
    }

    /// SHA-256 of the credential this request used (logout revokes it).
    pub(crate) fn token_hash(&self) -> &[u8; 32] {
        &self.token_hash
    }

    /// Opens the request's transaction for the caller's tenant (RLS applies to everything in it).
    pub async fn begin(&self) -> ApiResult<TenantTx> {
        Ok(self.db.begin_tenant(self.principal.tenant_id).await?)
    }

    /// An audit entry for a write by this caller; append it in the write's transaction:
    /// `tx.append_audit(&auth.audit("client.update", "client", Some(id.to_string()), json!({..}))).await?`.
    pub fn audit(
        &self,
        action: &str,
        entity_type: &str,
        entity_id: Option<String>,
        summary: serde_json::Value,
    ) -> AuditEntry {
        self.ctx.audit(
            Some((self.principal.user_id, &self.principal.email)),
            action,
            entity_type,
            entity_id,
            summary,
        )
    }

    /// Evicts a user's tokens from this process's token cache (after role changes, deactivation,
    /// deletion, password changes: anything that must take effect at once).
    pub fn forget_user_tokens(&self, tenant_id: Uuid, user_id: Uuid) {
        self.cache.forget_user(tenant_id, user_id);
    }

    /// Evicts one token (after revocation).
    pub fn forget_token(&self, tenant_id: Uuid, token_id: Uuid) {
        self.cache.forget_token(tenant_id, token_id);
    }

    /// The same caller with a weaker capability (e.g. an admin handler calling an editor helper).
    pub fn weaken<D: Capability>(&self) -> Auth<D>
    where
        C: Includes<D>,
    {
        Auth {
            principal: self.principal.clone(),
            ctx: self.ctx.clone(),
            db: self.db.clone(),
            cache: self.cache.clone(),
            token_hash: self.token_hash,
            _capability: PhantomData,
        }
    }
}

impl<C: Capability> FromRequestParts<AppState> for Auth<C> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ctx = RequestCtx::from_request_parts(parts, state).await?;
        let (token, via_cookie) =
            credential(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        if via_cookie && !is_safe_method(&parts.method) && is_cross_site(&parts.headers, state) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "cookie-authenticated writes must come from the same site; scripts should use a bearer token",
            ));
        }
        let parsed = parse_secret(&token)
            .filter(|p| matches!(p.kind, SecretKind::Session | SecretKind::Personal))
            .ok_or_else(ApiError::unauthenticated)?;
        let principal = authenticate(state, &parsed)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let span = tracing::Span::current();
        span.record("tenant_id", tracing::field::display(principal.tenant_id));
        span.record("user_id", tracing::field::display(principal.user_id));
        if !principal.role.includes(C::ROLE) {
            return Err(ApiError::forbidden(C::ROLE));
        }
        Ok(Auth {
            principal,
            ctx,
            db: state.db.clone(),
            cache: state.token_cache.clone(),
            token_hash: parsed.hash,
            _capability: PhantomData,
        })
    }
}

/// Like `Option<Auth<Viewer>>`: the caller if a valid credential came, else `None` (never 401).
pub struct MaybeAuth(pub Option<Auth<Viewer>>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Auth::<Viewer>::from_request_parts(parts, state).await {
            Ok(a) => Ok(MaybeAuth(Some(a))),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => Ok(MaybeAuth(None)),
            Err(e) => Err(e),
        }
    }
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser tells us when a request comes from another site (`Sec-Fetch-Site`), and `Origin`
/// names the page that sent it. SameSite=Lax already keeps the cookie off cross-site POSTs in
/// current browsers; this is the second lock.
fn is_cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let public = state.config.public_url.origin().ascii_serialization();
    if origin == public {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !(origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// The bearer token, else the session cookie; and whether it came from the cookie.
fn credential(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        return Some((token.trim().to_string(), false));
    }
    session_cookie(headers).map(|t| (t, true))
}

/// The value of the session cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// `Set-Cookie` for a new session.
pub fn session_cookie_header(token: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).expect("token and attributes are visible ASCII")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie_header(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
    ))
    .expect("visible ASCII")
}

async fn authenticate(
    state: &AppState,
    parsed: &ParsedSecret,
) -> ApiResult<Option<Arc<Principal>>> {
    if let Some(p) = state.token_cache.get(&parsed.hash) {
        return Ok(Some(p));
    }
    let tx = state.db.begin_tenant(parsed.tenant_id).await?;
    let found = tx.authenticate_token(&parsed.hash, 60).await?;
    tx.commit().await?;
    let Some(found) = found else { return Ok(None) };
    let expected = match parsed.kind {
        SecretKind::Session => TokenKind::Session,
        SecretKind::Personal => TokenKind::Personal,
        // Not credentials (the extractor filters them out before this).
        SecretKind::Invitation | SecretKind::PasswordReset | SecretKind::OAuthState => {
            return Ok(None)
        }
    };
    if found.kind != expected {
        return Ok(None);
    }
    let principal = Arc::new(Principal {
        tenant_id: parsed.tenant_id,
        user_id: found.user_id,
        email: found.email,
        display_name: found.display_name,
        role: found.role,
        token_id: found.token_id,
        token_kind: found.kind,
        token_expires_at: found.expires_at,
    });
    state.token_cache.put(parsed.hash, principal.clone());
    Ok(Some(principal))
}

// ------------------------------------------------------------------------------------------------
// Token cache

type CacheEntries = HashMap<[u8; 32], (Arc<Principal>, Instant)>;

/// Recently validated tokens (see the module documentation for the consistency trade-off).
pub(crate) struct TokenCache {
    ttl: Duration,
    entries: Mutex<CacheEntries>,
}

const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hash: &[u8; 32]) -> Option<Arc<Principal>> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        let (principal, at) = entries.get(hash)?;
        if at.elapsed() < self.ttl && principal.token_expires_at > Utc::now() {
            return Some(principal.clone());
        }
        entries.remove(hash);
        None
    }

    fn put(&self, hash: [u8; 32], principal: Arc<Principal>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, (principal, Instant::now()));
    }

    pub(crate) fn forget_hash(&self, hash: &[u8; 32]) {
        self.lock().remove(hash);
    }

    /// Forgets every cached token of a user (role change, deactivation, deletion, password change).
    pub(crate) fn forget_user(&self, tenant_id: Uuid, user_id: Uuid) {
        self.lock()
            .retain(|_, (p, _)| !(p.tenant_id == tenant_id && p.user_id == user_id));
    }

    pub(crate) fn forget_token(&self, tenant_id: Uuid, token_id: Uuid) {
        self.lock()
            .retain(|_, (p, _)| !(p.tenant_id == tenant_id && p.token_id == token_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_malformed_ones_are_refused() {
        let tenant = Uuid::now_v7();
        let s = issue_secret(SecretKind::Personal, tenant);
        assert!(s.token.starts_with("zxp_"));
        assert_eq!(s.token.len(), 4 + 96);
        let p = parse_secret(&s.token).unwrap();
        assert_eq!(p.kind, SecretKind::Personal);
        assert_eq!(p.tenant_id, tenant);
        assert_eq!(p.hash, s.hash);
        assert_ne!(issue_secret(SecretKind::Personal, tenant).token, s.token);
        for kind in [
            SecretKind::Session,
            SecretKind::Personal,
            SecretKind::Invitation,
            SecretKind::PasswordReset,
            SecretKind::OAuthState,
        ] {
            let s = issue_secret(kind, tenant);
            let p = parse_secret(&s.token).unwrap();
            assert_eq!((p.kind, p.tenant_id, p.hash), (kind, tenant, s.hash));
        }
        assert!(issue_secret(SecretKind::OAuthState, tenant)
            .token
            .starts_with("zxo_"));
        for bad in [
            "",
            "zxp_",
            "zxq_00",
            &s.token[..s.token.len() - 1],
            &s.token.to_uppercase(),
            &format!("{}0", s.token),
        ] {
            assert!(parse_secret(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; zixly_session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        assert_eq!(credential(&h), Some(("abc".into(), true)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(credential(&h), Some(("xyz".into(), false)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(credential(&h), None);
    }

    #[test]
    fn cookie_attributes() {
        let v = session_cookie_header("t", Duration::from_secs(60), true);
        assert_eq!(
            v.to_str().unwrap(),
            "zixly_session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert!(!clear_session_cookie_header(false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
