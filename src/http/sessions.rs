//! The IdP token response stored per login session, through the token vault
//! ([`crate::tokens`]): encrypted at rest, keyed by a hash of the session id, expiring,
//! id_token verified for portals with an Okta issuer. Session ids and tokens are
//! secrets: handlers record neither in spans or logs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, AppPath, AppQuery, OktaUserPath, SessionPath};
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::domain::PortalId;
use crate::tokens::VerifiedClaims;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            put_session_token,
            get_session_token,
            delete_session_token
        ))
        .routes(routes!(delete_okta_user_sessions))
}

/// An OAuth 2.0 / OIDC token response as Okta's `/token` endpoint returned it. Any
/// JSON object is accepted and kept as it is; unknown fields are preserved.
/// `expires_in` (seconds) and `refresh_token` decide how long it is kept; an
/// `id_token` is verified when the PUT names a portal with an `okta_issuer`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "eyJraWQiOi...", "scope": "openid email offline_access", "refresh_token": "a9VpZDRCeFh3Nkk2VdY", "id_token": "eyJraWQiOi..."}))]
pub struct TokenResponse(pub serde_json::Map<String, serde_json::Value>);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutTokenQuery {
    /// The EFS portal the login belongs to. When the portal has the settings
    /// `okta_issuer` and `okta_client_id`, the response's `id_token` is verified
    /// against that issuer's keys and refused with 422 when invalid.
    #[param(minimum = 1, maximum = 2147483647)]
    pub portal_id: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"idp_response": {"token_type": "Bearer", "expires_in": 3600, "access_token": "eyJraWQiOi..."}, "stored_at": "2026-11-27T09:00:00Z", "expires_at": "2026-11-27T10:00:00Z", "portal_id": 5, "claims": {"sub": "00ub0oNGTSWTBKOLGLNR", "email": "jane@example.com", "exp": 1795689600}}))]
pub struct StoredSessionToken {
    /// The stored token response. Legacy rows that do not hold a JSON object are
    /// returned as a JSON string (or `null` for a NULL column).
    #[schema(value_type = Object)]
    pub idp_response: serde_json::Value,
    /// When efs-iam stored it; `null` for rows written before efs-iam.
    pub stored_at: Option<DateTime<Utc>>,
    /// After this it is no longer served; `null` for legacy rows not yet given one.
    pub expires_at: Option<DateTime<Utc>>,
    /// The portal named when it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_id: Option<i32>,
    /// The verified id_token's claims (`sub` is the Okta user id), when it was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<VerifiedClaims>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"deleted": 3}))]
pub struct DeletedSessions {
    /// Sessions forgotten.
    pub deleted: u64,
}

/// Stores the token response of a login session, replacing any earlier one.
///
/// The response is encrypted at rest under a keyed hash of the session id. It expires
/// `expires_in` seconds after being stored (the configured default without it), or
/// after the configured maximum lifetime when it holds a `refresh_token`.
#[utoipa::path(
    put, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id (1 to 50 visible ASCII bytes)", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$"), PutTokenQuery),
    request_body = TokenResponse,
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Invalid session id, portal_id or malformed JSON", body = Problem),
        (status = 413, description = "Body too large, or the encrypted response exceeds the token store's item limit (`token-too-large`); nothing is stored", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Not a JSON object, a bad `expires_in`, or an `id_token` that failed verification (`invalid-id-token`, with the reason)", body = Problem),
        (status = 503, description = "Database, token store or the portal's Okta issuer unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_session_token(
    State(state): State<AppState>,
    AppPath(SessionPath {
        session_id: session,
    }): AppPath<SessionPath>,
    AppQuery(query): AppQuery<PutTokenQuery>,
    AppJson(body): AppJson<TokenResponse>,
) -> ApiResult<StatusCode> {
    let portal = query
        .portal_id
        .map(|p| PortalId::new(p).map_err(|e| ApiError::invalid_parameter("portal_id", e)))
        .transpose()?;
    if body.0.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "must be a non-empty JSON object",
        ));
    }
    state.vault.put(&session, body.0, portal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The token response stored for a login session, with when it was stored and when
/// it expires. Expired responses are not returned.
#[utoipa::path(
    get, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$")),
    responses(
        (status = 200, description = "The stored token response", body = StoredSessionToken),
        (status = 400, description = "Invalid session id", body = Problem),
        (status = 404, description = "Nothing stored for this session, or it expired", body = Problem),
        (status = 500, description = "The stored response cannot be decrypted (`token-unreadable`)", body = Problem),
        (status = 503, description = "Database or token store unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_session_token(
    State(state): State<AppState>,
    AppPath(SessionPath {
        session_id: session,
    }): AppPath<SessionPath>,
) -> ApiResult<Json<StoredSessionToken>> {
    let opened = state
        .vault
        .get(&session)
        .await?
        .ok_or_else(|| ApiError::NotFound("no token stored for this session".into()))?;
    Ok(Json(StoredSessionToken {
        idp_response: opened.idp_response,
        stored_at: opened.stored_at,
        expires_at: opened.expires_at,
        portal_id: opened.portal_id,
        claims: opened.claims,
    }))
}

/// Forgets a login session's token response (logout).
#[utoipa::path(
    delete, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid session id", body = Problem),
        (status = 404, description = "Nothing stored for this session", body = Problem),
        (status = 503, description = "Database or token store unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_session_token(
    State(state): State<AppState>,
    AppPath(SessionPath {
        session_id: session,
    }): AppPath<SessionPath>,
) -> ApiResult<StatusCode> {
    if state.vault.delete(&session).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            "no token stored for this session".into(),
        ))
    }
}

/// Logs an Okta user out everywhere: forgets every stored session whose id_token was
/// verified for this user (`sub`). Sessions stored without a verified id_token are not
/// linked to a user and are not found here.
#[utoipa::path(
    delete, path = "/okta-users/{okta_user_id}/sessions", tag = "session tokens",
    params(("okta_user_id" = String, Path, description = "Okta user id (the id_token's `sub`)", max_length = 20)),
    responses(
        (status = 200, description = "Sessions forgotten (possibly none)", body = DeletedSessions),
        (status = 400, description = "Invalid Okta user id", body = Problem),
        (status = 503, description = "Database or token store unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_okta_user_sessions(
    State(state): State<AppState>,
    AppPath(OktaUserPath { okta_user_id: user }): AppPath<OktaUserPath>,
) -> ApiResult<Json<DeletedSessions>> {
    let deleted = state.vault.delete_user_sessions(&user).await?;
    tracing::info!(deleted, "sessions of an Okta user forgotten");
    Ok(Json(DeletedSessions { deleted }))
}
