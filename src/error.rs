//! The one error type of the HTTP API. Every failure leaves as an RFC 9457
//! `application/problem+json` body with a stable `type` that EFS's PHP can branch on;
//! internal details (SQL, causes) are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::storage::StorageError;
use crate::tokens::VaultError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:efs-iam:problem:validation-failed",
    "title": "Request validation failed",
    "status": 422,
    "detail": "okta_user_id: must be 1 to 20 characters",
    "errors": [{"field": "okta_user_id", "message": "must be 1 to 20 characters"}]
}))]
pub struct Problem {
    /// Stable, machine-readable problem type: `urn:efs-iam:problem:<slug>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The fields at fault, when the problem is about the request's content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the body (`users[3].okta_user_id`), or the parameter name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all, or not in the declared media type.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    /// A path or query parameter is not acceptable.
    #[error("invalid parameter {}", .0.field)]
    InvalidParameter(FieldError),
    /// Well-formed JSON whose content breaks a rule.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(crate::auth::AuthError),
    #[error("missing scope {}", .0.as_str())]
    Forbidden(crate::auth::Scope),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A token vault failure other than storage (see `From<VaultError>`).
    #[error(transparent)]
    Vault(VaultError),
    /// A sync operation's failure (`crate::sync::error` maps it to a problem).
    #[error(transparent)]
    Sync(crate::sync::SyncError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Storage(e) => Self::Storage(e),
            VaultError::Invalid { field, message } => Self::invalid_field(field, message),
            other => Self::Vault(other),
        }
    }
}

impl ApiError {
    pub fn invalid_parameter(field: &str, message: impl std::fmt::Display) -> Self {
        Self::InvalidParameter(FieldError::new(field, message))
    }

    pub fn invalid_field(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Vec<FieldError>,
    ) {
        use StatusCode as S;
        match self {
            Self::MalformedBody(m) => (
                S::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
                m.clone(),
                vec![],
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "the body must be JSON, sent with Content-Type: application/json".into(),
                vec![],
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                "the request body exceeds the configured limit".into(),
                vec![],
            ),
            Self::InvalidParameter(f) => (
                S::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                format!("{}: {}", f.field, f.message),
                vec![f.clone()],
            ),
            Self::Validation(errors) => (
                S::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Request validation failed",
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors.clone(),
            ),
            Self::Unauthorized(e) => (
                S::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                e.to_string(),
                vec![],
            ),
            Self::Forbidden(scope) => (
                S::FORBIDDEN,
                "forbidden",
                "Missing scope",
                format!("this operation needs the scope {}", scope.as_str()),
                vec![],
            ),
            Self::NotFound(m) => (S::NOT_FOUND, "not-found", "Not found", m.clone(), vec![]),
            Self::Unavailable(m) => (
                S::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
                m.clone(),
                vec![],
            ),
            Self::Storage(StorageError::UnknownEfsUser) => (
                S::UNPROCESSABLE_ENTITY,
                "unknown-efs-user",
                "Unknown EFS user",
                "user_id: no such user in EFS (users/panelists)".into(),
                vec![FieldError::new("user_id", "no such user in EFS")],
            ),
            Self::Storage(StorageError::CacheUnavailable(_)) => (
                S::SERVICE_UNAVAILABLE,
                "token-store-unavailable",
                "Token store unavailable",
                "the session token store (memcached) is unavailable; retry later".into(),
                vec![],
            ),
            Self::Storage(StorageError::TooLarge { size, limit }) => (
                S::PAYLOAD_TOO_LARGE,
                "token-too-large",
                "Token response too large",
                format!(
                    "the encrypted token response needs {size} bytes, more than the token \
                     store's item limit of {limit} bytes; it was not stored"
                ),
                vec![],
            ),
            Self::Vault(VaultError::InvalidIdToken(reason)) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-id-token",
                "Invalid id_token",
                format!("id_token: {reason}"),
                vec![FieldError::new("id_token", reason)],
            ),
            Self::Vault(VaultError::IdpUnavailable(_)) => (
                S::SERVICE_UNAVAILABLE,
                "idp-unavailable",
                "Identity provider unavailable",
                "the portal's Okta issuer did not provide its signing keys; retry later".into(),
                vec![],
            ),
            Self::Vault(VaultError::Unreadable(_)) => (
                S::INTERNAL_SERVER_ERROR,
                "token-unreadable",
                "Stored token response unreadable",
                "the stored token response failed its integrity check or was encrypted with a \
                 key that is no longer configured; the session must log in again"
                    .into(),
                vec![],
            ),
            Self::Storage(
                StorageError::Unavailable(_)
                | StorageError::Conflict(_)
                | StorageError::NotMigrated { .. },
            ) => (
                S::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
                "the database is unavailable or busy; retry later".into(),
                vec![],
            ),
            Self::Sync(e) => e.problem(),
            Self::Storage(_) | Self::Vault(_) | Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
                "an unexpected error occurred; the request id identifies it in the logs".into(),
                vec![],
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title, detail, errors) = self.parts();
        // RFC 6750: tell the client how to authenticate, or which scope is missing.
        let challenge = match &self {
            Self::Unauthorized(crate::auth::AuthError::Missing) => {
                Some(r#"Bearer realm="efs-iam""#.to_owned())
            }
            Self::Unauthorized(e) => Some(format!(
                r#"Bearer realm="efs-iam", error="invalid_token", error_description="{e}""#
            )),
            Self::Forbidden(scope) => Some(format!(
                r#"Bearer realm="efs-iam", error="insufficient_scope", scope="{}""#,
                scope.as_str()
            )),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(error = ?anyhow::Error::from(self), "request failed");
        }
        let mut res = problem_response(status, slug, title, detail, errors);
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        res
    }
}

pub fn problem_response(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let body = Problem {
        problem_type: format!("urn:efs-iam:problem:{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors,
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

pub type ApiResult<T> = Result<T, ApiError>;
