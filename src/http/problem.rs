//! The one place where failures become answers. Every failure leaves as an RFC 9457
//! `application/problem+json` body whose `type` is a stable `urn:efs-iam:problem:<slug>`
//! that EFS's PHP can branch on. [`ProblemType::ALL`] lists every type with its status
//! and title; [`ApiError`] maps each domain error (storage, token vault, sync, caller
//! authentication) to one of them. The OpenAPI document lists the same table, and a
//! test checks every documented error response against it (`openapi.rs`). Internal
//! details (SQL, causes) are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthError, Scope};
pub use crate::domain::FieldError;
use crate::storage::{StorageError, TokenStoreError};
use crate::sync::{SyncError, SyncErrorKind};
use crate::tokens::VaultError;
use crate::trust::SettingError;

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
    /// What is wrong with the request's content, each naming its field when one can be
    /// named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One problem type of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    pub slug: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
}

macro_rules! problem_types {
    ($($name:ident = $slug:literal, $status:ident, $title:literal;)*) => {
        impl ProblemType {
            $(pub const $name: Self = Self {
                slug: $slug,
                status: StatusCode::$status,
                title: $title,
            };)*
            /// Every problem type the API answers with.
            pub const ALL: &'static [Self] = &[$(Self::$name),*];
        }
    };
}

problem_types! {
    MALFORMED_BODY = "malformed-body", BAD_REQUEST, "Malformed request body";
    BAD_REQUEST = "bad-request", BAD_REQUEST, "Bad request";
    INVALID_PARAMETER = "invalid-parameter", BAD_REQUEST, "Invalid parameter";
    UNAUTHORIZED = "unauthorized", UNAUTHORIZED, "Authentication required";
    FORBIDDEN = "forbidden", FORBIDDEN, "Missing scope";
    NOT_FOUND = "not-found", NOT_FOUND, "Not found";
    METHOD_NOT_ALLOWED = "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed";
    PORTAL_NOT_LINKED = "portal-not-linked", CONFLICT, "Portal has no Okta group";
    OKTA_GROUP_NOT_FOUND = "okta-group-not-found", CONFLICT, "Okta group not found";
    OKTA_USER_DEPROVISIONED = "okta-user-deprovisioned", CONFLICT, "Okta user is deprovisioned";
    OKTA_LOGIN_CONFLICT = "okta-login-conflict", CONFLICT, "Login taken in Okta";
    OKTA_USER_NOT_MANAGED = "okta-user-not-managed", CONFLICT, "Okta user not managed by efs-iam";
    OKTA_USER_PRIVILEGED = "okta-user-privileged", CONFLICT, "Okta user is an administrator";
    ISSUER_NOT_ALLOWED = "issuer-not-allowed", CONFLICT, "Issuer not allowed";
    PAYLOAD_TOO_LARGE = "payload-too-large", PAYLOAD_TOO_LARGE, "Request body too large";
    TOKEN_TOO_LARGE = "token-too-large", PAYLOAD_TOO_LARGE, "Token response too large";
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type";
    VALIDATION_FAILED = "validation-failed", UNPROCESSABLE_ENTITY, "Request validation failed";
    UNKNOWN_EFS_USER = "unknown-efs-user", UNPROCESSABLE_ENTITY, "Unknown EFS user";
    INVALID_ID_TOKEN = "invalid-id-token", UNPROCESSABLE_ENTITY, "Invalid id_token";
    OKTA_VALIDATION_FAILED = "okta-validation-failed", UNPROCESSABLE_ENTITY, "Okta refused the profile";
    OKTA_GROUP_UNKNOWN = "okta-group-not-found", UNPROCESSABLE_ENTITY, "Okta group not found";
    OKTA_USER_NOT_FOUND = "okta-user-not-found", UNPROCESSABLE_ENTITY, "Okta user not found";
    INTERNAL = "internal", INTERNAL_SERVER_ERROR, "Internal server error";
    TOKEN_UNREADABLE = "token-unreadable", INTERNAL_SERVER_ERROR, "Stored token response unreadable";
    OKTA_AUTH_FAILED = "okta-auth-failed", BAD_GATEWAY, "Okta refused efs-iam's credentials";
    OKTA_REFUSED = "okta-refused", BAD_GATEWAY, "Okta refused the call";
    SERVICE_UNAVAILABLE = "service-unavailable", SERVICE_UNAVAILABLE, "Service unavailable";
    DATABASE_UNAVAILABLE = "database-unavailable", SERVICE_UNAVAILABLE, "Database unavailable";
    TOKEN_STORE_UNAVAILABLE = "token-store-unavailable", SERVICE_UNAVAILABLE, "Token store unavailable";
    IDP_UNAVAILABLE = "idp-unavailable", SERVICE_UNAVAILABLE, "Identity provider unavailable";
    OKTA_NOT_CONFIGURED = "okta-not-configured", SERVICE_UNAVAILABLE, "Okta is not configured";
    OKTA_UNAVAILABLE = "okta-unavailable", SERVICE_UNAVAILABLE, "Okta unavailable";
    USER_BUSY = "user-busy", SERVICE_UNAVAILABLE, "User busy";
    OVERLOADED = "overloaded", SERVICE_UNAVAILABLE, "Too many requests in flight";
    TIMEOUT = "timeout", SERVICE_UNAVAILABLE, "Request timed out";
}

impl ProblemType {
    pub fn uri(self) -> String {
        format!("urn:efs-iam:problem:{}", self.slug)
    }

    /// The answer: this type with `detail` and the fields at fault.
    pub fn response(self, detail: String, errors: Vec<FieldError>) -> Response {
        let body = Problem {
            problem_type: self.uri(),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail,
            errors,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // Worth repeating in a second, except where an operator must act first.
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.slug != Self::OKTA_NOT_CONFIGURED.slug
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Every way a request can fail: the HTTP layer's own reasons, and the domain errors
/// of the services it calls.
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
    #[error("invalid parameter {}", .0.field.as_deref().unwrap_or_default())]
    InvalidParameter(FieldError),
    /// Well-formed JSON whose content breaks a rule.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("missing scope {}", .0.as_str())]
    Forbidden(Scope),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    TokenStore(#[from] TokenStoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid_parameter(field: &str, message: impl std::fmt::Display) -> Self {
        Self::InvalidParameter(FieldError::new(field, message))
    }

    pub fn invalid_field(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem type, detail and fields of this error.
    pub fn problem(&self) -> (ProblemType, String, Vec<FieldError>) {
        use ProblemType as P;
        match self {
            Self::MalformedBody(m) => (P::MALFORMED_BODY, m.clone(), vec![]),
            Self::UnsupportedMediaType => (
                P::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with Content-Type: application/json".into(),
                vec![],
            ),
            Self::PayloadTooLarge => (
                P::PAYLOAD_TOO_LARGE,
                "the request body exceeds the configured limit".into(),
                vec![],
            ),
            Self::InvalidParameter(f) => (P::INVALID_PARAMETER, f.to_string(), vec![f.clone()]),
            Self::Validation(errors) => (
                P::VALIDATION_FAILED,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                errors.clone(),
            ),
            Self::Unauthorized(e) => (P::UNAUTHORIZED, e.to_string(), vec![]),
            Self::Forbidden(scope) => (
                P::FORBIDDEN,
                format!("this operation needs the scope {}", scope.as_str()),
                vec![],
            ),
            Self::NotFound(m) => (P::NOT_FOUND, m.clone(), vec![]),
            Self::Unavailable(m) => (P::SERVICE_UNAVAILABLE, m.clone(), vec![]),
            Self::Storage(e) => storage_problem(e),
            Self::TokenStore(e) => token_store_problem(e),
            Self::Vault(e) => vault_problem(e),
            Self::Sync(e) => sync_problem(e),
            Self::Setting(e) => setting_problem(e),
            Self::Internal(_) => internal(),
        }
    }
}

fn internal() -> (ProblemType, String, Vec<FieldError>) {
    (
        ProblemType::INTERNAL,
        "an unexpected error occurred; the request id identifies it in the logs".into(),
        vec![],
    )
}

fn storage_problem(e: &StorageError) -> (ProblemType, String, Vec<FieldError>) {
    match e {
        StorageError::UnknownEfsUser => (
            ProblemType::UNKNOWN_EFS_USER,
            "user_id: no such user in EFS (users/panelists)".into(),
            vec![FieldError::new("user_id", "no such user in EFS")],
        ),
        e if e.is_transient() => (
            ProblemType::DATABASE_UNAVAILABLE,
            "the database is unavailable or busy; retry later".into(),
            vec![],
        ),
        _ => internal(),
    }
}

fn token_store_problem(e: &TokenStoreError) -> (ProblemType, String, Vec<FieldError>) {
    match e {
        TokenStoreError::Storage(e) => storage_problem(e),
        TokenStoreError::Unavailable(_) => (
            ProblemType::TOKEN_STORE_UNAVAILABLE,
            "the session token store (memcached) is unavailable; retry later".into(),
            vec![],
        ),
        TokenStoreError::TooLarge { size, limit } => (
            ProblemType::TOKEN_TOO_LARGE,
            format!(
                "the encrypted token response needs {size} bytes, more than the token \
                 store's item limit of {limit} bytes; it was not stored"
            ),
            vec![],
        ),
    }
}

fn vault_problem(e: &VaultError) -> (ProblemType, String, Vec<FieldError>) {
    match e {
        VaultError::Store(e) => token_store_problem(e),
        VaultError::Invalid { field, message } => {
            ApiError::invalid_field(field.clone(), message).problem()
        }
        VaultError::InvalidIdToken(reason) => (
            ProblemType::INVALID_ID_TOKEN,
            format!("id_token: {reason}"),
            vec![FieldError::new("id_token", reason)],
        ),
        VaultError::IssuerNotAllowed(reason) => (
            ProblemType::ISSUER_NOT_ALLOWED,
            format!(
                "the portal's okta_issuer cannot be used to verify id_tokens ({reason}); \
                 nothing was stored"
            ),
            vec![],
        ),
        VaultError::IdpUnavailable(_) => (
            ProblemType::IDP_UNAVAILABLE,
            "the portal's Okta issuer did not provide its signing keys; retry later".into(),
            vec![],
        ),
        VaultError::Unreadable(_) => (
            ProblemType::TOKEN_UNREADABLE,
            "the stored token response failed its integrity check or was encrypted with a \
             key that is no longer configured; the session must log in again"
                .into(),
            vec![],
        ),
        VaultError::Unsupported(_) => internal(),
    }
}

fn sync_problem(e: &SyncError) -> (ProblemType, String, Vec<FieldError>) {
    use ProblemType as P;
    use SyncErrorKind as K;
    let problem = match e.kind() {
        K::OktaNotConfigured => P::OKTA_NOT_CONFIGURED,
        K::PortalNotLinked => P::PORTAL_NOT_LINKED,
        K::GroupNotFound => P::OKTA_GROUP_NOT_FOUND,
        K::Deprovisioned => P::OKTA_USER_DEPROVISIONED,
        K::LoginConflict => P::OKTA_LOGIN_CONFLICT,
        K::OktaValidation => P::OKTA_VALIDATION_FAILED,
        K::OktaUnavailable => P::OKTA_UNAVAILABLE,
        K::OktaAuth => P::OKTA_AUTH_FAILED,
        K::OktaRefused => P::OKTA_REFUSED,
        K::NotManaged => P::OKTA_USER_NOT_MANAGED,
        K::Privileged => P::OKTA_USER_PRIVILEGED,
        K::OktaUserNotFound => P::OKTA_USER_NOT_FOUND,
        K::Busy => P::USER_BUSY,
        K::UnknownEfsUser | K::DatabaseUnavailable | K::Internal => {
            return match e {
                SyncError::Storage(e) => storage_problem(e),
                _ => internal(),
            }
        }
    };
    debug_assert_eq!(problem.slug, e.slug());
    (problem, e.to_string(), e.errors())
}

fn setting_problem(e: &SettingError) -> (ProblemType, String, Vec<FieldError>) {
    match e {
        SettingError::Invalid { field, message } => {
            ApiError::invalid_field(field.clone(), message).problem()
        }
        SettingError::GroupNotFound { field, group } => (
            ProblemType::OKTA_GROUP_UNKNOWN,
            e.to_string(),
            vec![FieldError::new(
                field.clone(),
                format!("Okta has no group {group:?}"),
            )],
        ),
        SettingError::Okta(okta) => sync_problem(&SyncError::from_okta(okta.clone())),
        SettingError::Storage(e) => storage_problem(e),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (problem, detail, errors) = self.problem();
        // RFC 6750: tell the client how to authenticate, or which scope is missing.
        let challenge = match &self {
            Self::Unauthorized(AuthError::Missing) => Some(r#"Bearer realm="efs-iam""#.to_owned()),
            Self::Unauthorized(e) => Some(format!(
                r#"Bearer realm="efs-iam", error="invalid_token", error_description="{e}""#
            )),
            Self::Forbidden(scope) => Some(format!(
                r#"Bearer realm="efs-iam", error="insufficient_scope", scope="{}""#,
                scope.as_str()
            )),
            _ => None,
        };
        if problem.status.is_server_error() {
            // On the request's access-log line (`middleware::access_log`): its causes,
            // one after the other, never a backtrace.
            let cause = format!("{:#}", anyhow::Error::from(self));
            tracing::Span::current().record("error", cause.as_str());
        }
        let mut res = problem.response(detail, errors);
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slug may answer with two statuses (a group named in the request vs. one
    /// stored in a setting), but each pair is listed once.
    #[test]
    fn problem_types_are_unique_and_sync_kinds_all_map() {
        let mut types: Vec<(&str, u16)> = ProblemType::ALL
            .iter()
            .map(|p| (p.slug, p.status.as_u16()))
            .collect();
        types.sort();
        let n = types.len();
        types.dedup();
        assert_eq!(types.len(), n, "a problem type is listed twice");
        let portal_not_linked = ApiError::Sync(SyncError::PortalNotLinked { portal: 3 });
        let (p, detail, _) = portal_not_linked.problem();
        assert_eq!(
            (p.slug, p.status),
            ("portal-not-linked", StatusCode::CONFLICT)
        );
        assert!(detail.contains("portal 3"));
        let busy = ApiError::Sync(SyncError::Busy).problem().0;
        assert_eq!(busy, ProblemType::USER_BUSY);
    }
}
