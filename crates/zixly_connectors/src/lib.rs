//! `zixly_connectors` — clients of the providers' APIs. HTTP only: no SQL, no tenant context.
//!
//! Layout:
//! - [`Provider`] and [`ProviderConfig`]: per provider the OAuth endpoints, client credentials
//!   (`ZIXLY_P_CLIENT_ID`, `ZIXLY_P_CLIENT_SECRET`, `ZIXLY_P_AUTH_URL`, `ZIXLY_P_TOKEN_URL`,
//!   `ZIXLY_P_API_URL`), scopes, how the client authenticates at the token endpoint and whether PKCE
//!   is used.
//! - [`oauth`]: authorize URLs with state and PKCE, code exchange, refresh, revocation.
//! - [`http`]: sending a request and classifying the answer into [`ConnectorError`].
//! - [`xero`], [`hubspot`], [`pipedrive`], [`asana`], [`myob`]: the provider APIs and their
//!   normalization into per-client records ([`ClientRecord`], contributions, lead events, metrics).
//!
//! Invariants: tokens travel as [`zixly_crypto::SecretString`] and never appear in errors or logs
//! (error messages carry status codes and the provider's error *code*, never request headers);
//! every error is classified so the queue can decide: [`ConnectorError::RateLimited`] (wait, do not
//! count), [`ConnectorError::Unauthorized`] (refresh, then give up), [`ConnectorError::Transient`]
//! (retry with backoff), [`ConnectorError::Permanent`] (stop and show the admin).

pub mod asana;
pub mod http;
pub mod hubspot;
pub mod myob;
pub mod oauth;
pub mod pace;
pub mod pipedrive;
pub mod xero;

use std::time::Duration;

pub use oauth::{ProviderConfig, TokenSet};

/// A classified provider failure. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("rate limited by the provider; retry after {}s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    #[error("the provider rejected the credentials: {0}")]
    Unauthorized(String),
    #[error("temporary provider failure: {0}")]
    Transient(String),
    #[error("provider request failed: {0}")]
    Permanent(String),
}

pub type ConnectorResult<T> = Result<T, ConnectorError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Xero,
    Myob,
    Hubspot,
    Pipedrive,
    Asana,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Xero,
        Provider::Myob,
        Provider::Hubspot,
        Provider::Pipedrive,
        Provider::Asana,
    ];

    /// The `integration_provider` label and the `ZIXLY_<P>_*` infix.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Xero => "XERO",
            Provider::Myob => "MYOB",
            Provider::Hubspot => "HUBSPOT",
            Provider::Pipedrive => "PIPEDRIVE",
            Provider::Asana => "ASANA",
        }
    }

    /// The provider's name as people write it (pages, messages): the one list of display names.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Xero => "Xero",
            Provider::Myob => "MYOB",
            Provider::Hubspot => "HubSpot",
            Provider::Pipedrive => "Pipedrive",
            Provider::Asana => "Asana",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// `source_system` of the rows this provider produces.
    pub fn source_system(self) -> &'static str {
        match self {
            Provider::Xero => "xero",
            Provider::Myob => "myob",
            Provider::Hubspot => "hubspot",
            Provider::Pipedrive => "pipedrive",
            Provider::Asana => "asana",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client (customer, organization, project) as a provider lists it: `client_id` is the
/// provider's stable id, `name` its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: Option<String>,
}

/// A shared HTTP client: timeouts set, no cookies, no redirects followed (a redirect from an API
/// is unexpected and would otherwise carry the bearer token elsewhere).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("zixly/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("building the HTTP client")
}
