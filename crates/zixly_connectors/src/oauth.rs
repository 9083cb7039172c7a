//! OAuth2 authorization-code flow with refresh: configuration, authorize URLs (state, PKCE S256),
//! code exchange, refresh and revocation, in each provider's own style (providers.md).

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zixly_crypto::SecretString;

use crate::http::{send_raw, transport_error};
use crate::{ConnectorError, ConnectorResult, Provider};

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (Xero, Pipedrive).
    Basic,
    /// `client_id` and `client_secret` as form fields (HubSpot, Asana, MYOB).
    Body,
}

/// One provider's OAuth client and endpoints.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth_url: String,
    pub token_url: String,
    /// API root (Xero: the host serving `/connections` and `/api.xro/2.0`).
    pub api_url: String,
    /// Requested scopes: the provider's defaults, or `ZIXLY_<P>_SCOPES` (space-separated).
    pub scopes: Vec<String>,
    pub client_auth: ClientAuth,
    pub pkce: bool,
}

struct Defaults {
    auth: &'static str,
    token: &'static str,
    api: &'static str,
    scopes: &'static [&'static str],
    client_auth: ClientAuth,
    pkce: bool,
}

/// Xero read scopes for apps created on or after 2026-03-02 (the default).
pub const XERO_GRANULAR_SCOPES: &[&str] = &[
    "offline_access",
    "accounting.invoices.read",
    "accounting.payments.read",
    "accounting.banktransactions.read",
    "accounting.contacts.read",
    "accounting.settings.read",
];

/// Xero read scopes of apps created before 2026-03-02 (usable until September 2027).
pub const XERO_LEGACY_SCOPES: &[&str] = &[
    "offline_access",
    "accounting.transactions.read",
    "accounting.contacts.read",
    "accounting.settings.read",
];

/// `ZIXLY_<P>_SCOPES`: space-separated scope names; Xero needs `offline_access` (without it no
/// refresh token is issued and every connection dies after 30 minutes).
fn parse_scopes(provider: Provider, raw: &str) -> Result<Vec<String>, String> {
    let p = provider.as_str();
    let scopes: Vec<String> = raw.split_whitespace().map(String::from).collect();
    if let Some(bad) = scopes.iter().find(|s| {
        !s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(format!("ZIXLY_{p}_SCOPES: {bad:?} is not a scope name"));
    }
    if provider == Provider::Xero && !scopes.iter().any(|s| s == "offline_access") {
        return Err(format!(
            "ZIXLY_{p}_SCOPES must include offline_access (Xero issues no refresh token without it)"
        ));
    }
    Ok(scopes)
}

fn defaults(p: Provider) -> Defaults {
    match p {
        Provider::Xero => Defaults {
            auth: "https://login.xero.com/identity/connect/authorize",
            token: "https://identity.xero.com/connect/token",
            api: "https://api.xero.com",
            // Granular scopes: apps created on or after 2026-03-02 cannot request the broad
            // `accounting.transactions.read` (contracts/xero.json oauth.scopes.granular; the
            // names are marked unverified there). Older apps may set XERO_LEGACY_SCOPES through
            // `ZIXLY_XERO_SCOPES`.
            scopes: XERO_GRANULAR_SCOPES,
            client_auth: ClientAuth::Basic,
            pkce: true,
        },
        Provider::Hubspot => Defaults {
            auth: "https://app.hubspot.com/oauth/authorize",
            token: "https://api.hubapi.com/oauth/v3/token",
            api: "https://api.hubapi.com",
            scopes: &[
                "oauth",
                "crm.objects.deals.read",
                "crm.objects.companies.read",
            ],
            client_auth: ClientAuth::Body,
            pkce: false,
        },
        Provider::Pipedrive => Defaults {
            auth: "https://oauth.pipedrive.com/oauth/authorize",
            token: "https://oauth.pipedrive.com/oauth/token",
            // Replaced by the token response's `api_domain`.
            api: "https://api.pipedrive.com",
            scopes: &["deals:read", "contacts:read"],
            client_auth: ClientAuth::Basic,
            pkce: false,
        },
        Provider::Asana => Defaults {
            auth: "https://app.asana.com/-/oauth_authorize",
            token: "https://app.asana.com/-/oauth_token",
            api: "https://app.asana.com/api/1.0",
            scopes: &["tasks:read", "projects:read", "workspaces:read"],
            client_auth: ClientAuth::Body,
            pkce: true,
        },
        Provider::Myob => Defaults {
            auth: "https://secure.myob.com/oauth2/account/authorize",
            token: "https://secure.myob.com/oauth2/v1/authorize",
            api: "https://api.myob.com/accountright",
            // Granular scopes (keys issued since March 2025), one per family of endpoints read:
            // the company file, Sale/*, Purchase/*, Banking/*, Contact/Customer and
            // GeneralLedger/Job (contracts/myob.json `oauth.scopes.needed`).
            scopes: &[
                "sme-company-file",
                "sme-sales",
                "sme-purchases",
                "sme-banking",
                "sme-contacts-customer",
                "sme-general-ledger",
            ],
            client_auth: ClientAuth::Body,
            pkce: false,
        },
    }
}

impl ProviderConfig {
    /// Reads `ZIXLY_<P>_CLIENT_ID` etc. through `var`. `Ok(None)`: the provider is not configured
    /// (no client id). A client id without a secret is an error.
    pub fn from_vars(
        provider: Provider,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ProviderConfig>, String> {
        let p = provider.as_str();
        let get = |suffix: &str| {
            var(&format!("ZIXLY_{p}_{suffix}"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(client_id) = get("CLIENT_ID") else {
            return Ok(None);
        };
        let client_secret = get("CLIENT_SECRET").ok_or_else(|| {
            format!("ZIXLY_{p}_CLIENT_ID is set but ZIXLY_{p}_CLIENT_SECRET is not")
        })?;
        let d = defaults(provider);
        Ok(Some(ProviderConfig {
            provider,
            client_id,
            client_secret: SecretString::new(client_secret),
            auth_url: get("AUTH_URL").unwrap_or_else(|| d.auth.into()),
            token_url: get("TOKEN_URL").unwrap_or_else(|| d.token.into()),
            api_url: get("API_URL")
                .unwrap_or_else(|| d.api.into())
                .trim_end_matches('/')
                .to_string(),
            scopes: match get("SCOPES") {
                Some(raw) => parse_scopes(provider, &raw)?,
                None => d.scopes.iter().map(|s| s.to_string()).collect(),
            },
            client_auth: d.client_auth,
            pkce: d.pkce,
        }))
    }

    /// From the process environment.
    pub fn from_env(provider: Provider) -> Result<Option<ProviderConfig>, String> {
        Self::from_vars(provider, |k| std::env::var(k).ok())
    }

    /// The URL to send the user's browser to.
    pub fn authorize_url(&self, state: &str, redirect_uri: &str, pkce: Option<&Pkce>) -> String {
        let mut url = url::Url::parse(&self.auth_url).expect("validated auth URL");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", state);
            if let Some(p) = pkce {
                q.append_pair("code_challenge", &p.challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            // MYOB sends the company file (`businessId`) on the redirect only with
            // `prompt=consent`; without it new keys cannot find their file.
            if self.provider == Provider::Myob {
                q.append_pair("prompt", "consent");
            }
        }
        url.into()
    }

    fn token_request(
        &self,
        http: &reqwest::Client,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let request = http
            .post(&self.token_url)
            .header(reqwest::header::ACCEPT, "application/json");
        match self.client_auth {
            ClientAuth::Basic => request
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .form(&form),
            ClientAuth::Body => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", self.client_secret.expose().to_string()));
                request.form(&form)
            }
        }
    }

    async fn token_call(
        &self,
        http: &reqwest::Client,
        form: Vec<(&'static str, String)>,
    ) -> ConnectorResult<TokenSet> {
        let (status, headers, body) = send_raw(self.token_request(http, form)).await?;
        if status.is_success() {
            return TokenSet::parse(&body);
        }
        let code = status.as_u16();
        if code == 429 || status.is_server_error() {
            return Err(crate::http::classify(status, &headers, &body));
        }
        // 400/401 from a token endpoint: invalid_grant, invalid_client, ... Quote the error code
        // only: descriptions may echo parameters.
        let error = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {code}"));
        Err(ConnectorError::Permanent(format!(
            "token endpoint refused: {error}"
        )))
    }

    /// Exchanges an authorization code.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> ConnectorResult<TokenSet> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
        ];
        if let Some(v) = pkce_verifier {
            form.push(("code_verifier", v.expose().to_string()));
        }
        self.token_call(http, form).await
    }

    /// Refreshes. The answer may carry a new refresh token (Xero always rotates); the caller must
    /// persist it before using the new access token.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> ConnectorResult<TokenSet> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        match self.token_call(http, form).await {
            // MYOB's consent lasts a year and is renewed only by an admin of the file going
            // through the authorize page again: say so instead of a bare OAuth error code.
            Err(ConnectorError::Permanent(m))
                if self.provider == Provider::Myob && m.contains("invalid_grant") =>
            {
                Err(ConnectorError::Permanent(format!(
                    "reconnect MYOB (consent expired): MYOB refused to renew the authorisation ({m}); an administrator of the company file must connect MYOB again"
                )))
            }
            other => other,
        }
    }

    /// Revokes the refresh token where the provider offers it (Xero, HubSpot); `Ok(false)` where
    /// it does not. Failures are reported, but a disconnect deletes the tokens regardless.
    pub async fn revoke(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> ConnectorResult<bool> {
        let request = match self.provider {
            Provider::Xero => {
                let url = self
                    .token_url
                    .replace("/connect/token", "/connect/revocation");
                http.post(url)
                    .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                    .form(&[("token", refresh_token.expose())])
            }
            Provider::Hubspot => http.delete(format!(
                "{}/oauth/v1/refresh-tokens/{}",
                self.api_url,
                refresh_token.expose()
            )),
            _ => return Ok(false),
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 404 {
            Ok(true)
        } else {
            Err(ConnectorError::Transient(format!(
                "revocation answered HTTP {}",
                status.as_u16()
            )))
        }
    }
}

/// PKCE (RFC 7636) S256 pair.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Pkce::from_verifier(SecretString::new(verifier))
    }

    pub fn from_verifier(verifier: SecretString) -> Pkce {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.expose().as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// A token endpoint's answer.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Non-secret extras: Pipedrive `api_domain`, HubSpot `hub_id`, MYOB `businessId`, scopes.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TokenSet {
    pub fn parse(body: &str) -> ConnectorResult<TokenSet> {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)
            .map_err(|_| {
                ConnectorError::Permanent(
                    "token endpoint answered something that is not a JSON object".into(),
                )
            })?;
        let take = |v: &mut serde_json::Map<String, serde_json::Value>, k: &str| {
            v.remove(k)
                .and_then(|x| x.as_str().map(|s| SecretString::new(s.to_string())))
        };
        let access_token = take(&mut v, "access_token")
            .ok_or_else(|| ConnectorError::Permanent("token answer without access_token".into()))?;
        let refresh_token = take(&mut v, "refresh_token");
        let expires_at = v
            .get("expires_in")
            .and_then(|e| {
                e.as_i64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|secs| Utc::now() + chrono::Duration::seconds(secs));
        // Never keep anything token-like among the extras.
        v.retain(|k, _| !k.contains("token"));
        Ok(TokenSet {
            access_token,
            refresh_token,
            expires_at,
            extra: v,
        })
    }

    /// True when the access token expires within `margin` (refresh before expiry).
    pub fn expiring(expires_at: Option<DateTime<Utc>>, margin: Duration) -> bool {
        expires_at.is_some_and(|at| {
            at - chrono::Duration::from_std(margin).expect("small margin") <= Utc::now()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| pairs.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn config_from_env_with_overrides() {
        assert!(ProviderConfig::from_vars(Provider::Xero, vars(&[]))
            .unwrap()
            .is_none());
        assert!(
            ProviderConfig::from_vars(Provider::Xero, vars(&[("ZIXLY_XERO_CLIENT_ID", "id")]))
                .is_err()
        );
        let c = ProviderConfig::from_vars(
            Provider::Xero,
            vars(&[
                ("ZIXLY_XERO_CLIENT_ID", "id"),
                ("ZIXLY_XERO_CLIENT_SECRET", "s3cret"),
                ("ZIXLY_XERO_API_URL", "http://127.0.0.1:9/"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:9");
        assert_eq!(c.token_url, "https://identity.xero.com/connect/token");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn authorize_url_carries_state_scopes_and_pkce() {
        let c = ProviderConfig::from_vars(
            Provider::Xero,
            vars(&[
                ("ZIXLY_XERO_CLIENT_ID", "cid"),
                ("ZIXLY_XERO_CLIENT_SECRET", "x"),
            ]),
        )
        .unwrap()
        .unwrap();
        let pkce = Pkce::from_verifier(SecretString::new(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        // RFC 7636 appendix B.
        assert_eq!(
            pkce.challenge,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let url = url::Url::parse(&c.authorize_url("st4te", "http://zixly.test/cb", Some(&pkce)))
            .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].contains("offline_access"));
        assert_eq!(q["scope"], XERO_GRANULAR_SCOPES.join(" "));
    }

    #[test]
    fn xero_scopes_default_to_granular_and_are_configurable() {
        let base = [
            ("ZIXLY_XERO_CLIENT_ID", "cid"),
            ("ZIXLY_XERO_CLIENT_SECRET", "x"),
        ];
        let with = |scopes: &str| {
            let mut v = base.to_vec();
            v.push(("ZIXLY_XERO_SCOPES", scopes));
            ProviderConfig::from_vars(Provider::Xero, vars(&v))
        };
        let c = ProviderConfig::from_vars(Provider::Xero, vars(&base))
            .unwrap()
            .unwrap();
        assert!(!c.scopes.iter().any(|s| s == "accounting.transactions.read"));
        assert!(c.scopes.iter().any(|s| s == "accounting.invoices.read"));
        let legacy = with(&format!("  {}\n", XERO_LEGACY_SCOPES.join("  ")))
            .unwrap()
            .unwrap();
        assert_eq!(legacy.scopes, XERO_LEGACY_SCOPES);
        let err = with("accounting.invoices.read").unwrap_err();
        assert!(
            err.contains("ZIXLY_XERO_SCOPES") && err.contains("offline_access"),
            "{err}"
        );
        assert!(with("offline_access a\"b")
            .unwrap_err()
            .contains("ZIXLY_XERO_SCOPES"));
        // Blank: the defaults.
        assert_eq!(with("   ").unwrap().unwrap().scopes, c.scopes);
    }

    #[test]
    fn token_sets_keep_secrets_out_of_extras_and_debug() {
        let t = TokenSet::parse(r#"{"access_token":"AT","refresh_token":"RT","id_token":"ID","expires_in":1800,"api_domain":"https://x.pipedrive.com"}"#)
            .unwrap();
        assert_eq!(t.access_token.expose(), "AT");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "RT");
        assert!(t.extra.contains_key("api_domain") && !t.extra.contains_key("id_token"));
        let dbg = format!("{t:?}");
        assert!(
            !dbg.contains("AT\"") && !dbg.contains("RT") && !dbg.contains("\"ID\""),
            "{dbg}"
        );
        assert!(!TokenSet::expiring(t.expires_at, Duration::from_secs(60)));
        assert!(TokenSet::expiring(t.expires_at, Duration::from_secs(3600)));
    }
}
