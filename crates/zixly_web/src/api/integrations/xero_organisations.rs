//! Xero's organisation picker: the organisations a connection grants, and the choice.

use super::*;

// ---------------------------------------------------------------------------------------------
// Xero organisations

/// The setting naming the Xero organisation syncs read (the runner's `xero_tenant_id`).
pub const XERO_TENANT_ID: &str = "xero_tenant_id";
/// The chosen organisation's name when it was chosen (for the Integrations page).
pub const XERO_ORGANISATION_NAME: &str = "xero_organisation_name";

/// One organisation a Xero connection grants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct XeroOrganisation {
    /// Xero's `tenantId` (the `xero-tenant-id` header of every accounting request).
    pub tenant_id: String,
    /// Xero's `tenantName` (the id when Xero sends none).
    pub name: String,
    /// Syncs read this organisation.
    pub chosen: bool,
}

/// The organisations of a Xero integration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct XeroOrganisations {
    pub integration_id: Uuid,
    /// As Xero's `GET /connections` lists them now (organisations only; practices are not synced).
    pub organisations: Vec<XeroOrganisation>,
    /// `settings.xero_tenant_id`: the chosen organisation (`null`: none chosen; then a sync reads
    /// the only one, and fails asking for a choice when there are several).
    pub chosen: Option<String>,
    /// An ADMIN must choose: several organisations are granted and none is chosen, or the chosen
    /// one is no longer granted.
    pub choice_needed: bool,
    /// The sync queued because the choice changed (`POST .../organisation` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_job_id: Option<Uuid>,
}

impl XeroOrganisations {
    fn new(
        integration_id: Uuid,
        connections: &[zixly_connectors::xero::Connection],
        chosen: Option<String>,
    ) -> Self {
        let organisations: Vec<XeroOrganisation> =
            zixly_connectors::xero::organisations(connections)
                .into_iter()
                .map(|c| XeroOrganisation {
                    tenant_id: c.tenant_id.clone(),
                    name: c.display_name().to_string(),
                    chosen: chosen.as_deref() == Some(c.tenant_id.as_str()),
                })
                .collect();
        let choice_needed = match &chosen {
            Some(_) => !organisations.iter().any(|o| o.chosen),
            None => organisations.len() > 1,
        };
        XeroOrganisations {
            integration_id,
            organisations,
            chosen,
            choice_needed,
            sync_job_id: None,
        }
    }
}

/// The body of `POST /integrations/{id}/organisation`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationChoice {
    /// The `tenant_id` of one of the organisations `GET .../organisations` lists.
    pub tenant_id: String,
}

/// The settings recording `org` as the chosen organisation.
pub(super) fn organisation_settings(
    org: &zixly_connectors::xero::Connection,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(XERO_TENANT_ID.into(), json!(org.tenant_id));
    m.insert(XERO_ORGANISATION_NAME.into(), json!(org.display_name()));
    m
}

pub(super) fn sync_error(e: zixly_sync::SyncError) -> ApiError {
    use zixly_sync::SyncError as E;
    match e {
        E::Db(e) => ApiError::from(e),
        E::NotConnected => ApiError::conflict(
            "integration_not_connected",
            "the integration is not connected; connect it first",
        ),
        E::Crypto(_) => ApiError::conflict(
            "reconnect_needed",
            "the stored tokens cannot be read (was the encryption key changed?); connect again",
        ),
        E::Connector(e) => provider_error(&e),
        E::NotConfigured(p) => ApiError::conflict(
            "provider_not_configured",
            format!("{p} is not configured on this server (set ZIXLY_{p}_CLIENT_ID and ZIXLY_{p}_CLIENT_SECRET)"),
        ),
        e => {
            tracing::error!(error = %e, "listing the Xero organisations failed");
            ApiError::internal()
        }
    }
}

/// The integration `id` (a connected Xero one) and the connections its grant reaches now.
pub(super) async fn granted(
    state: &AppState,
    auth: &Auth<Admin>,
    id: Uuid,
) -> ApiResult<(Integration, Vec<zixly_connectors::xero::Connection>)> {
    let engine = engine(state)?;
    let tx = auth.begin().await?;
    let integration = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    tx.commit().await?;
    if integration.provider != Provider::Xero.as_str() {
        return Err(ApiError::conflict(
            "not_xero",
            format!(
                "only Xero integrations have organisations to choose (this one is {})",
                integration.provider
            ),
        ));
    }
    if !integration.has_tokens {
        return Err(ApiError::conflict(
            "integration_not_connected",
            format!(
                "the integration is {} and not connected; connect Xero first",
                integration.status
            ),
        ));
    }
    let config = configured(engine, Provider::Xero)?;
    let token = |rejected: Option<SecretString>| async move {
        zixly_sync::tokens::access_token(
            &state.db,
            engine.keyring(),
            engine.http(),
            config,
            auth.tenant_id(),
            id,
            rejected.as_ref(),
        )
        .await
        .map_err(sync_error)
    };
    let access = token(None).await?;
    let connections =
        match zixly_connectors::xero::connections(engine.http(), &config.api_url, &access).await {
            // Expired or revoked early: one refresh, as a sync does.
            Err(ConnectorError::Unauthorized(_)) => {
                let access = token(Some(access)).await?;
                zixly_connectors::xero::connections(engine.http(), &config.api_url, &access).await
            }
            other => other,
        }
        .map_err(|e| {
            tracing::warn!(error = %e, "listing the Xero organisations failed");
            provider_error(&e)
        })?;
    Ok((integration, connections))
}

pub(super) fn chosen_of(integration: &Integration) -> Option<String> {
    integration
        .settings
        .get(XERO_TENANT_ID)
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// List the organisations a Xero integration grants
#[utoipa::path(get, path = "/integrations/{id}/organisations", tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id (a Xero integration)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = XeroOrganisations, description = "The organisations Xero's `/connections` lists now, and which one syncs read"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`not_xero`, `integration_not_connected`, `reconnect_needed` or `provider_not_configured`"),
        (status = 502, body = ErrorBody, description = "`provider_error`: Xero refused or failed"),
        (status = 503, body = ErrorBody)))]
pub(super) async fn list_organisations(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<XeroOrganisations>> {
    let (integration, connections) = granted(&state, &auth, id).await?;
    Ok(Json(XeroOrganisations::new(
        id,
        &connections,
        chosen_of(&integration),
    )))
}

/// Choose the Xero organisation syncs read
#[utoipa::path(post, path = "/integrations/{id}/organisation", tag = "integrations", request_body = OrganisationChoice,
    params(("id" = Uuid, Path, description = "Integration id (a Xero integration)")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = XeroOrganisations, description = "Chosen (audited); `sync_job_id` when a sync was queued"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`organisation_not_granted` (Xero does not list that organisation for this connection), `not_xero`, `integration_not_connected`, `reconnect_needed` or `provider_not_configured`"),
        (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "`provider_error`: Xero refused or failed"),
        (status = 503, body = ErrorBody)))]
pub(super) async fn choose_organisation(
    auth: Auth<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<OrganisationChoice>,
) -> ApiResult<Json<XeroOrganisations>> {
    engine(&state)?;
    let wanted = body.tenant_id.trim();
    if wanted.is_empty() || wanted.len() > 64 {
        return Err(ApiError::invalid_field(
            "tenant_id",
            "must be the tenant_id of one of the listed organisations",
        ));
    }
    let (_, connections) = granted(&state, &auth, id).await?;
    let orgs = zixly_connectors::xero::organisations(&connections);
    let Some(org) = orgs.iter().find(|c| c.tenant_id == wanted) else {
        let names: Vec<String> = orgs
            .iter()
            .map(|c| format!("{} ({})", c.display_name(), c.tenant_id))
            .collect();
        return Err(ApiError::conflict(
            "organisation_not_granted",
            if names.is_empty() {
                format!("Xero does not grant this connection access to organisation {wanted}: it grants none; connect Xero again")
            } else {
                format!(
                    "Xero does not grant this connection access to organisation {wanted}; choose one of: {}",
                    names.join(", ")
                )
            },
        ));
    };
    let tx = auth.begin().await?;
    // Read again in this transaction: the audit's `from` is what this change replaces.
    let before = tx
        .integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let from = chosen_of(&before);
    let after = tx
        .merge_integration_settings(id, &organisation_settings(org))
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    let changed = from.as_deref() != Some(org.tenant_id.as_str());
    let sync_job_id =
        if changed && before.has_tokens && matches!(before.status.as_str(), "ACTIVE" | "ERROR") {
            Some(zixly_sync::engine::enqueue_sync(&tx, id).await?.id())
        } else {
            None
        };
    tx.append_audit(&auth.audit(
        "integration.organisation",
        "integration",
        Some(id.to_string()),
        json!({"provider": Provider::Xero.as_str(),
               "from": {"tenant_id": from, "name": before.settings.get(XERO_ORGANISATION_NAME)},
               "to": {"tenant_id": org.tenant_id, "name": org.display_name()},
               "sync_job_id": sync_job_id}),
    ))
    .await?;
    tx.commit().await?;
    let chosen = after
        .get(XERO_TENANT_ID)
        .and_then(|v| v.as_str())
        .map(String::from);
    let mut view = XeroOrganisations::new(id, &connections, chosen);
    view.sync_job_id = sync_job_id;
    Ok(Json(view))
}
