//! Connecting a provider: `POST /integrations/{provider}/connect` and the OAuth2 callback.

use super::*;

/// The answer of `connect`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectStarted {
    /// Send the user's browser here; the provider redirects back to the callback.
    pub authorize_url: String,
    /// The integration being connected.
    pub integration_id: Uuid,
    /// The authorization must complete before this.
    pub expires_at: DateTime<Utc>,
}

/// The query of the OAuth callback (as the provider sends it).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state handed out by `connect`.
    pub state: Option<String>,
    /// Set by the provider when the user declined or the request was refused.
    pub error: Option<String>,
    /// MYOB: the company file the user chose (kept as `settings.myob_business_id`).
    #[serde(rename = "businessId")]
    #[param(rename = "businessId")]
    pub business_id: Option<String>,
}

/// Settings learnt from the authorization itself: Pipedrive's `api_domain` (token answer) and
/// MYOB's `businessId` (redirect), which the runners read from the settings.
pub(super) fn learnt_settings(
    config: &ProviderConfig,
    settings: &serde_json::Value,
    extra: &serde_json::Map<String, serde_json::Value>,
    business_id: Option<&str>,
) -> Option<serde_json::Value> {
    let domain;
    let value = match config.provider {
        Provider::Pipedrive => {
            // The same check as on every refresh (https only).
            domain = zixly_connectors::pipedrive::valid_api_domain(
                extra.get("api_domain")?.as_str()?,
                &config.api_url,
            )?;
            ("pipedrive_api_domain", domain.as_str())
        }
        Provider::Myob => ("myob_business_id", business_id?.trim()),
        _ => return None,
    };
    let plausible = !value.1.is_empty()
        && value.1.len() <= 200
        && value
            .1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    if !plausible {
        return None;
    }
    let mut settings = settings.as_object().cloned().unwrap_or_default();
    settings.insert(value.0.into(), json!(value.1));
    Some(serde_json::Value::Object(settings))
}

pub(super) fn invalid_state(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_state",
        message.to_string(),
    )
}

pub(super) fn state_aad(tenant_id: Uuid, state_hash: &[u8]) -> Vec<u8> {
    format!("{tenant_id}/oauth_state/{}", hex::encode(state_hash)).into_bytes()
}

/// Start connecting a provider (OAuth2)
#[utoipa::path(post, path = "/integrations/{id}/connect", tag = "integrations",
    params(("id" = String, Path, description = "The provider: `xero`, `myob`, `hubspot`, `pipedrive` or `asana` (any case)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = ConnectStarted, description = "Send the browser to `authorize_url`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown provider"),
        (status = 409, body = ErrorBody, description = "`provider_not_configured`"), (status = 503, body = ErrorBody)))]
pub(super) async fn connect(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<Json<ConnectStarted>> {
    let engine = engine(&state)?;
    let provider = Provider::parse(&provider).ok_or_else(|| ApiError::not_found("provider"))?;
    let config = configured(engine, provider)?;
    let tenant_id = auth.tenant_id();
    let IssuedSecret {
        token: oauth_state,
        hash: state_hash,
    } = issue_secret(SecretKind::OAuthState, tenant_id);
    let pkce = config.pkce.then(Pkce::generate);
    let verifier = pkce.as_ref().map(|p| {
        engine
            .keyring()
            .encrypt_str(&p.verifier, &state_aad(tenant_id, &state_hash))
    });
    let redirect_uri = state.config.link(CALLBACK_PATH);
    let expires_at = Utc::now() + chrono::Duration::from_std(STATE_TTL).expect("small TTL");
    let tx = auth.begin().await?;
    let integration = tx.ensure_integration(provider.as_str()).await?;
    tx.insert_oauth_state(
        &state_hash,
        provider.as_str(),
        auth.user_id(),
        verifier.as_deref(),
        &redirect_uri,
        expires_at,
    )
    .await?;
    tx.append_audit(&auth.audit(
        "integration.connect_start",
        "integration",
        Some(integration.id.to_string()),
        json!({"provider": provider.as_str(), "pkce": pkce.is_some()}),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(ConnectStarted {
        authorize_url: config.authorize_url(&oauth_state, &redirect_uri, pkce.as_ref()),
        integration_id: integration.id,
        expires_at,
    }))
}

pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// OAuth2 callback (the provider redirects the browser here)
#[utoipa::path(get, path = "/integrations/callback", tag = "integrations", params(CallbackParams),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = IntegrationView, description = "Connected (API clients)"),
        (status = 303, description = "Connected: browsers (`Accept: text/html`) go to `/integrations?connected=<provider>`"),
        (status = 400, body = ErrorBody, description = "`invalid_state` (unknown, expired, used, or another user's) or `authorization_denied`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "`provider_error`: the code exchange failed"),
        (status = 503, body = ErrorBody)))]
pub(super) async fn oauth_callback(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<CallbackParams>,
) -> ApiResult<Response> {
    let engine = engine(&state)?;
    let raw_state = params
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_state("the callback has no `state`"))?;
    let Some(parsed) = parse_secret(raw_state)
        .filter(|p| p.kind == SecretKind::OAuthState && p.tenant_id == auth.tenant_id())
    else {
        return Err(invalid_state(
            "this authorization was not started in your organisation",
        ));
    };
    let state_hash = parsed.hash;
    let tx = auth.begin().await?;
    let Some(stored) = tx.take_oauth_state(&state_hash).await? else {
        tx.commit().await?; // purges expired states
        return Err(invalid_state(
            "unknown, expired or already used authorization; start connecting again",
        ));
    };
    if stored.user_id != auth.user_id() {
        // Leave the state to its owner.
        tx.rollback().await?;
        return Err(invalid_state(
            "this authorization was started by another user; they must complete it",
        ));
    }
    // Consumed before anything else happens: a replay finds nothing.
    tx.commit().await?;
    let provider = Provider::parse(&stored.provider).ok_or_else(ApiError::internal)?;
    if let Some(error) = params.error.as_deref() {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "authorization_denied",
            format!("{provider} did not authorize Zixly ({error}); start connecting again"),
        ));
    }
    let code = params
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("the callback has no `code`"))?;
    let config = configured(engine, provider)?;
    let verifier: Option<SecretString> = match &stored.pkce_verifier {
        Some(ct) => Some(
            engine
                .keyring()
                .decrypt_str(ct, &state_aad(auth.tenant_id(), &state_hash))
                .map_err(|e| {
                    tracing::error!(error = %e, "the PKCE verifier cannot be decrypted");
                    ApiError::internal()
                })?,
        ),
        None => None,
    };
    let tokens = config
        .exchange_code(engine.http(), code, &stored.redirect_uri, verifier.as_ref())
        .await
        .map_err(|e| {
            tracing::warn!(%provider, error = %e, "OAuth code exchange failed");
            provider_error(&e)
        })?;
    // Xero: with exactly one organisation granted, it is the one to sync; it is recorded with
    // the tokens (several: the ADMIN picks one on the Integrations page). Asked before the
    // transaction opens; a failure leaves the choice to the runner, which takes the only one too.
    let only_organisation = if provider == Provider::Xero {
        match zixly_connectors::xero::connections(
            engine.http(),
            &config.api_url,
            &tokens.access_token,
        )
        .await
        {
            Ok(connections) => match zixly_connectors::xero::organisations(&connections).as_slice()
            {
                [only] => Some((*only).clone()),
                _ => None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "listing the Xero organisations after connecting failed");
                None
            }
        }
    } else {
        None
    };
    let tx = auth.begin().await?;
    let integration = tx.ensure_integration(provider.as_str()).await?;
    zixly_sync::tokens::store_new_tokens(&tx, engine.keyring(), integration.id, &tokens)
        .await
        .map_err(|e| match e {
            zixly_sync::SyncError::Db(e) => ApiError::from(e),
            e => {
                tracing::error!(error = %e, "storing tokens failed");
                ApiError::internal()
            }
        })?;
    let settings = learnt_settings(
        config,
        &integration.settings,
        &tokens.extra,
        params.business_id.as_deref(),
    );
    if !tokens.extra.is_empty() || settings.is_some() {
        tx.set_integration_settings(
            integration.id,
            settings.as_ref().unwrap_or(&integration.settings),
            Some(&serde_json::Value::Object(tokens.extra.clone())),
        )
        .await?;
    }
    let mut organisation = None;
    if let Some(only) = &only_organisation {
        tx.merge_integration_settings(integration.id, &organisation_settings(only))
            .await?;
        organisation = Some(only.tenant_id.clone());
    }
    tx.append_audit(&auth.audit(
        "integration.connect",
        "integration",
        Some(integration.id.to_string()),
        json!({"provider": provider.as_str(), "status": "ACTIVE", "refresh_token": tokens.refresh_token.is_some(),
               "xero_tenant_id": organisation}),
    ))
    .await?;
    let connected = tx
        .integration(integration.id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    tracing::info!(%provider, integration_id = %connected.id, "integration connected");
    if wants_html(&headers) {
        let mut r = StatusCode::SEE_OTHER.into_response();
        // Built from the provider enum, not from the request; still through the one check of
        // redirect targets, which also makes it a valid header value by construction.
        let to = crate::pages::local_target(Some(&format!(
            "/integrations?connected={}",
            provider.as_str().to_lowercase()
        )));
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(r);
    }
    Ok(Json(IntegrationView::new(connected, Some(engine))).into_response())
}
