//! Per-portal settings (`iam_portal_settings`), e.g. the portal's Okta `okta_client_id`.
//!
//! The legacy table has no unique (portal_id, key): where duplicates exist, reads
//! return the newest row (highest id) and writes set every duplicate, so old and new
//! readers agree. Keys compare case-insensitively (the column's collation); rows with
//! a NULL key cannot be addressed and are not part of the map.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, AppPath, PortalPath, PortalSettingPath};
use super::problem::{ApiError, ApiResult, FieldError, Problem};
use super::state::AppState;
use crate::auth::{setting_scope, Caller};
use crate::domain::{check_text, PortalId, SettingKey};
use crate::trust::{FieldNames, VALUE_LIMIT};

/// Most keys one bulk put may set.
const MAX_KEYS_PER_PUT: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_portal_settings, put_portal_settings))
        .routes(routes!(
            get_portal_setting,
            put_portal_setting,
            delete_portal_setting
        ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"portal_id": 12, "settings": {"okta_client_id": "0oa1b2c3d4e5f6g7h8i9", "okta_group_id": "00g1emaKYZTWRYYRRTSK"}}))]
pub struct PortalSettings {
    pub portal_id: i32,
    /// Setting name → value (`null` where the stored value is NULL).
    pub settings: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"settings": {"okta_client_id": "0oa1b2c3d4e5f6g7h8i9"}}))]
pub struct PutPortalSettings {
    /// The keys to set (1 to 100); keys not named keep their values.
    #[schema(schema_with = settings_map_schema)]
    pub settings: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"portal_id": 12, "key": "okta_client_id", "value": "0oa1b2c3d4e5f6g7h8i9"}))]
pub struct PortalSettingValue {
    pub portal_id: i32,
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"value": "0oa1b2c3d4e5f6g7h8i9"}))]
pub struct PutPortalSetting {
    /// At most 255 characters, or `null`. Required (send `null` explicitly).
    #[schema(value_type = Option<String>, required = true, max_length = 255, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub value: serde_json::Value,
}

/// Keys as `SettingKey` accepts them, values as `VALUE_LIMIT` allows (BMP only).
fn settings_map_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_.:-]{1,50}$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .max_length(Some(255))
                .pattern(Some("^[\\u0000-\\uFFFF]*$")),
        ))
        .min_properties(Some(1))
        .max_properties(Some(MAX_KEYS_PER_PUT))
        .build()
}

fn nullable_value(field: &str, value: &serde_json::Value) -> Result<Option<String>, FieldError> {
    let value = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => s,
        _ => return Err(FieldError::new(field, "must be a string or null")),
    };
    check_text(value, VALUE_LIMIT).map_err(|e| FieldError::new(field, e))?;
    Ok(Some(value.clone()))
}

async fn load_map(state: &AppState, portal: PortalId) -> ApiResult<PortalSettings> {
    let rows = state.portal_settings.portal_settings(portal).await?;
    // Oldest first, so newer rows overwrite older duplicates; keys fold case as the
    // column's collation does, and the newest row's spelling is shown.
    let mut by_folded: HashMap<String, (String, Option<String>)> = HashMap::new();
    for row in rows {
        if let Some(key) = row.key {
            by_folded.insert(key.to_lowercase(), (key, row.value));
        }
    }
    Ok(PortalSettings {
        portal_id: portal.get(),
        settings: by_folded.into_values().collect(),
    })
}

/// All settings of a portal.
#[utoipa::path(
    get, path = "/portals/{portal_id}/settings", tag = "portal settings",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "The portal's settings (empty when it has none)", body = PortalSettings),
        (status = 400, description = "Invalid portal id", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_portal_settings(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
) -> ApiResult<Json<PortalSettings>> {
    Ok(Json(load_map(&state, portal).await?))
}

/// Sets several settings at once, in one transaction; keys not named are untouched.
#[utoipa::path(
    put, path = "/portals/{portal_id}/settings", tag = "portal settings",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647)),
    request_body = PutPortalSettings,
    responses(
        (status = 200, description = "All settings of the portal after the write", body = PortalSettings),
        (status = 400, description = "Invalid portal id or malformed JSON", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "A key or value is invalid (e.g. an `okta_issuer` outside the allowed issuer origins), or the `okta_group_id` names no group Okta has (`okta-group-not-found`); nothing was written", body = Problem),
        (status = 502, description = "Okta refused efs-iam's credentials while the `okta_group_id` was checked (`okta-auth-failed`); nothing was written", body = Problem),
        (status = 503, description = "Database unavailable, or Okta unavailable while the `okta_group_id` was checked (`okta-unavailable`)", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_portal_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppJson(body): AppJson<PutPortalSettings>,
) -> ApiResult<Json<PortalSettings>> {
    if body.settings.is_empty() || body.settings.len() > MAX_KEYS_PER_PUT {
        return Err(ApiError::invalid_field(
            "settings",
            format!("must name 1 to {MAX_KEYS_PER_PUT} keys"),
        ));
    }
    let mut errors = Vec::new();
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &body.settings {
        let field = format!("settings.{key}");
        let key = match SettingKey::parse(key) {
            Ok(k) => k,
            Err(e) => {
                errors.push(FieldError::new(&field, e));
                continue;
            }
        };
        if !seen.insert(key.as_str().to_lowercase()) {
            errors.push(FieldError::new(
                &field,
                "names the same key as another entry (keys are case-insensitive)",
            ));
            continue;
        }
        match value {
            Some(v) => match check_text(v, VALUE_LIMIT) {
                Ok(()) => entries.push((key, Some(v.clone()))),
                Err(e) => errors.push(FieldError::new(&field, e)),
            },
            None => entries.push((key, None)),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // The body's keys decide whether the trust settings' scope applies.
    for (key, _) in &entries {
        if let Some(needed) = setting_scope(key).filter(|s| !caller.has(*s)) {
            return Err(ApiError::Forbidden(needed));
        }
    }
    state
        .settings_guard
        .put(&caller.subject, portal, &entries, FieldNames::Bulk)
        .await?;
    Ok(Json(load_map(&state, portal).await?))
}

/// One setting of a portal.
#[utoipa::path(
    get, path = "/portals/{portal_id}/settings/{key}", tag = "portal settings",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("key" = String, Path, description = "Setting name (case-insensitive), e.g. okta_client_id", min_length = 1, max_length = 50, pattern = "^[A-Za-z0-9_.:-]{1,50}$"),
    ),
    responses(
        (status = 200, description = "The setting", body = PortalSettingValue),
        (status = 400, description = "Invalid portal id or key", body = Problem),
        (status = 404, description = "The portal has no such setting", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_portal_setting(
    State(state): State<AppState>,
    AppPath(PortalSettingPath { portal_id, key }): AppPath<PortalSettingPath>,
) -> ApiResult<Json<PortalSettingValue>> {
    let row = state
        .portal_settings
        .portal_setting(portal_id, &key)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "portal {portal_id} has no setting {}",
                key.as_str()
            ))
        })?;
    Ok(Json(PortalSettingValue {
        portal_id: portal_id.get(),
        key: row.key.unwrap_or_else(|| key.as_str().to_owned()),
        value: row.value,
    }))
}

/// Sets one setting (created when new).
#[utoipa::path(
    put, path = "/portals/{portal_id}/settings/{key}", tag = "portal settings",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("key" = String, Path, description = "Setting name: ASCII letters, digits, _ . : -", min_length = 1, max_length = 50, pattern = "^[A-Za-z0-9_.:-]{1,50}$"),
    ),
    request_body = PutPortalSetting,
    responses(
        (status = 200, description = "Updated", body = PortalSettingValue),
        (status = 201, description = "Created", body = PortalSettingValue),
        (status = 400, description = "Invalid portal id, key or malformed JSON", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Invalid value (e.g. an `okta_issuer` outside the allowed issuer origins), or the `okta_group_id` names no group Okta has (`okta-group-not-found`); nothing was written", body = Problem),
        (status = 502, description = "Okta refused efs-iam's credentials while the `okta_group_id` was checked (`okta-auth-failed`); nothing was written", body = Problem),
        (status = 503, description = "Database unavailable, or Okta unavailable while the `okta_group_id` was checked (`okta-unavailable`)", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_portal_setting(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppPath(PortalSettingPath { portal_id, key }): AppPath<PortalSettingPath>,
    AppJson(body): AppJson<PutPortalSetting>,
) -> ApiResult<(StatusCode, Json<PortalSettingValue>)> {
    let value = nullable_value("value", &body.value).map_err(|e| ApiError::Validation(vec![e]))?;
    let written = state
        .settings_guard
        .put(
            &caller.subject,
            portal_id,
            &[(key.clone(), value.clone())],
            FieldNames::Single,
        )
        .await?;
    let status = if written[0].created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PortalSettingValue {
            portal_id: portal_id.get(),
            key: key.as_str().to_owned(),
            value,
        }),
    ))
}

/// Removes a setting (every legacy duplicate of it too).
#[utoipa::path(
    delete, path = "/portals/{portal_id}/settings/{key}", tag = "portal settings",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("key" = String, Path, description = "Setting name", min_length = 1, max_length = 50, pattern = "^[A-Za-z0-9_.:-]{1,50}$"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid portal id or key", body = Problem),
        (status = 404, description = "The portal has no such setting", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_portal_setting(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppPath(PortalSettingPath { portal_id, key }): AppPath<PortalSettingPath>,
) -> ApiResult<StatusCode> {
    match state
        .settings_guard
        .delete(&caller.subject, portal_id, &key)
        .await?
    {
        None => Err(ApiError::NotFound(format!(
            "portal {portal_id} has no setting {}",
            key.as_str()
        ))),
        Some(_) => Ok(StatusCode::NO_CONTENT),
    }
}
