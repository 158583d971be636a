//! The IdP token response stored per login session (`iam_token_data`). Session ids
//! and tokens are secrets: handlers record neither in spans or logs.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{path_param, AppJson};
use super::AppState;
use crate::domain::SessionId;
use crate::error::{ApiError, ApiResult, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(
        put_session_token,
        get_session_token,
        delete_session_token
    ))
}

/// An OAuth 2.0 / OIDC token response as Okta's `/token` endpoint returned it. Any
/// JSON object is accepted and kept as it is; unknown fields are preserved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "eyJraWQiOi...", "scope": "openid email offline_access", "refresh_token": "a9VpZDRCeFh3Nkk2VdY", "id_token": "eyJraWQiOi..."}))]
pub struct TokenResponse(pub serde_json::Map<String, serde_json::Value>);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredSessionToken {
    /// The stored token response. Legacy rows that do not hold a JSON object are
    /// returned as a JSON string (or `null` for a NULL column).
    #[schema(value_type = Object)]
    pub idp_response: serde_json::Value,
}

fn session_param(params: &HashMap<String, String>) -> ApiResult<SessionId> {
    path_param(params, "session_id", SessionId::parse)
}

/// Stores the token response of a login session, replacing any earlier one.
#[utoipa::path(
    put, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id (1 to 50 visible ASCII bytes)", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$")),
    request_body = TokenResponse,
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Invalid session id or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_session_token(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    AppJson(body): AppJson<TokenResponse>,
) -> ApiResult<StatusCode> {
    let session = session_param(&params)?;
    if body.0.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "must be a non-empty JSON object",
        ));
    }
    let text = serde_json::to_string(&body.0).map_err(anyhow::Error::from)?;
    state.tokens.put_token(&session, &text).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The token response stored for a login session.
#[utoipa::path(
    get, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$")),
    responses(
        (status = 200, description = "The stored token response", body = StoredSessionToken),
        (status = 400, description = "Invalid session id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Nothing stored for this session", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_session_token(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Json<StoredSessionToken>> {
    let session = session_param(&params)?;
    let stored = state
        .tokens
        .get_token(&session)
        .await?
        .ok_or_else(|| ApiError::NotFound("no token stored for this session".into()))?;
    let idp_response = match stored.idp_response {
        None => serde_json::Value::Null,
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => serde_json::Value::String(text),
        },
    };
    Ok(Json(StoredSessionToken { idp_response }))
}

/// Forgets a login session's token response (logout).
#[utoipa::path(
    delete, path = "/sessions/{session_id}/token", tag = "session tokens",
    params(("session_id" = String, Path, description = "EFS login session id", min_length = 1, max_length = 50, pattern = "^[!-~]{1,50}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid session id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Nothing stored for this session", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_session_token(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let session = session_param(&params)?;
    if state.tokens.delete_token(&session).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            "no token stored for this session".into(),
        ))
    }
}
