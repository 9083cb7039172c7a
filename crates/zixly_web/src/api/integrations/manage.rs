//! A connected integration: disconnect, sync now, and its settings (`PATCH`).

use super::*;

/// The answer of `disconnect`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Disconnected {
    pub integration: IntegrationView,
    /// The provider confirmed the revocation of the grant (`false`: the provider offers no
    /// revocation, or it failed — see `revocation_error`; the tokens are deleted either way).
    pub revoked: bool,
    pub revocation_error: Option<String>,
}

/// The answer of `sync`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncQueued {
    pub job_id: Uuid,
    /// A sync of this integration was already queued or running: that job is returned.
    pub already_queued: bool,
}

/// Disconnect an integration (revoke where possible, delete the tokens)
#[utoipa::path(post, path = "/integrations/{id}/disconnect", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Disconnected, description = "Tokens deleted; status DISABLED"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(super) async fn disconnect(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Disconnected>> {
    let engine = engine(&state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    // The row lock keeps refreshes out while the grant is revoked.
    let stored = tx.lock_integration_tokens(id).await?;
    let provider = Provider::parse(&integration.provider);
    let mut revoked = false;
    let mut revocation_error = None;
    if let (Some(stored), Some(provider)) = (stored, provider) {
        let column = if stored.refresh_token.is_some() {
            "refresh_token"
        } else {
            "access_token"
        };
        let ct = stored
            .refresh_token
            .as_deref()
            .unwrap_or(&stored.access_token);
        let secret = engine
            .keyring()
            .decrypt_str(ct, &zixly_sync::tokens::aad(auth.tenant_id(), id, column));
        match (secret, engine.provider_config(provider)) {
            (Ok(secret), Some(config)) => match config.revoke(engine.http(), &secret).await {
                Ok(r) => revoked = r,
                Err(e) => revocation_error = Some(e.to_string()),
            },
            (Err(e), _) => revocation_error = Some(format!("the stored token is unreadable: {e}")),
            (_, None) => {
                revocation_error = Some(format!("{provider} is not configured on this server"))
            }
        }
    }
    tx.clear_integration_tokens(id, "DISABLED", None).await?;
    let cancelled = tx
        .cancel_queued_jobs(zixly_sync::engine::SYNC_JOB, &id.to_string())
        .await?;
    tx.append_audit(&auth.audit(
        "integration.disconnect",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "status": "DISABLED", "revoked": revoked,
               "revocation_error": revocation_error, "cancelled_jobs": cancelled}),
    ))
    .await?;
    let after = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    Ok(Json(Disconnected {
        integration: IntegrationView::new(after, Some(engine)),
        revoked,
        revocation_error,
    }))
}

/// Sync an integration now
#[utoipa::path(post, path = "/integrations/{id}/sync", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 202, body = SyncQueued, description = "A sync job is queued (or already was)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`integration_not_connected`"), (status = 503, body = ErrorBody)))]
pub(super) async fn sync_now(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<SyncQueued>)> {
    engine(&state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    if !integration.has_tokens || !matches!(integration.status.as_str(), "ACTIVE" | "ERROR") {
        return Err(ApiError::conflict(
            "integration_not_connected",
            format!(
                "the integration is {} and not connected; connect it first",
                integration.status
            ),
        ));
    }
    let enqueued = zixly_sync::engine::enqueue_sync(&tx, id).await?;
    let already_queued = matches!(enqueued, Enqueued::Duplicate(_));
    tx.append_audit(&auth.audit(
        "integration.sync",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "job_id": enqueued.id(), "already_queued": already_queued}),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncQueued {
            job_id: enqueued.id(),
            already_queued,
        }),
    ))
}

/// Changes to an integration.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    /// Keys to set (`null` removes the key) in the integration's settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Settings only the authorization may set.
pub(super) const LEARNT_ONLY: &[&str] = &["pipedrive_api_domain"];
/// Settings set only by choosing an organisation (validated against Xero's `/connections`).
pub(super) const CHOSEN_ONLY: &[&str] = &[XERO_TENANT_ID, XERO_ORGANISATION_NAME];
pub(super) const MAX_SETTINGS_BYTES: usize = 16 * 1024;

/// Change an integration's settings
#[utoipa::path(patch, path = "/integrations/{id}", tag = "integrations", request_body = IntegrationPatch,
    params(("id" = Uuid, Path, description = "Integration id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = IntegrationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn update_integration(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<IntegrationPatch>,
) -> ApiResult<Json<IntegrationView>> {
    let engine = engine(&state)?;
    let mut errors = Vec::new();
    if body.settings.is_empty() {
        errors.push(ErrorDetail::field("settings", "nothing to change"));
    }
    for key in body.settings.keys() {
        if key.trim().is_empty() || key.len() > 64 {
            errors.push(ErrorDetail::field(
                "settings",
                "keys must be 1 to 64 characters",
            ));
        } else if LEARNT_ONLY.contains(&key.as_str()) {
            errors.push(ErrorDetail::field(
                format!("settings.{key}"),
                "is set by connecting, not by hand",
            ));
        } else if CHOSEN_ONLY.contains(&key.as_str()) {
            errors.push(ErrorDetail::field(
                format!("settings.{key}"),
                "is set by choosing the organisation (POST /api/v1/integrations/{id}/organisation, or the Integrations page)",
            ));
        } else if key == zixly_sync::engine::REQUESTS_PER_MINUTE {
            if let Err(e) = zixly_sync::engine::requests_per_minute(body.settings.get(key)) {
                errors.push(ErrorDetail::field(format!("settings.{key}"), e));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let mut settings = integration
        .settings
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, value) in &body.settings {
        if value.is_null() {
            settings.remove(key);
        } else {
            settings.insert(key.clone(), value.clone());
        }
    }
    let settings = serde_json::Value::Object(settings);
    if settings.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::invalid_field(
            "settings",
            format!("must be at most {MAX_SETTINGS_BYTES} bytes of JSON"),
        ));
    }
    tx.set_integration_settings(id, &settings, None).await?;
    tx.append_audit(&auth.audit(
        "integration.update",
        "integration",
        Some(id.to_string()),
        json!({"provider": integration.provider, "settings": {"from": integration.settings, "to": settings}}),
    ))
    .await?;
    let after = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    Ok(Json(IntegrationView::new(after, Some(engine))))
}
