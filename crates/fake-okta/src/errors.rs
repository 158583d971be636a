//! Okta's error object (`errorCode`, `errorSummary`, `errorLink`, `errorId`,
//! `errorCauses`) with the catalog's exact summaries for the codes the fake emits.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ids;

/// Summaries copied from Okta's error catalog (`error-codes.json`, release 2026.08.1).
pub(crate) mod summary {
    pub const E0000001: &str = "Api validation failed: {0}";
    pub const E0000002: &str = "The request was not valid: {0}";
    pub const E0000003: &str = "The request body was not well-formed.";
    pub const E0000006: &str = "You do not have permission to perform the requested action";
    pub const E0000007: &str = "Not found: {0}";
    pub const E0000008: &str = "The requested path was not found";
    pub const E0000009: &str = "Internal Server Error";
    pub const E0000010: &str = "Service is in read only mode";
    pub const E0000011: &str = "Invalid token provided";
    pub const E0000016: &str = "Activation failed because the user is already active";
    pub const E0000022: &str = "The endpoint does not support the provided HTTP method";
    pub const E0000029: &str = "Invalid paging request.";
    pub const E0000031: &str = "Invalid search criteria.";
    pub const E0000032: &str = "Unlock is not allowed for this user.";
    pub const E0000033: &str =
        "Bad request. Can't specify a search query and filter in the same request.";
    pub const E0000038: &str = "This operation is not allowed in the user's current status.";
    pub const E0000047: &str = "API call exceeded rate limit due to too many requests.";
    pub const E0000093: &str = "Target count limit exceeded";
    pub const E0000124: &str = "Could not create user. To create a user and expire their password immediately, a password must be specified.";
    pub const E0000125: &str = "Could not create user. To create a user and expire their password immediately, `activate` must be true.";
    pub const E0000231: &str = "ETag value doesn't match.";
}

/// The cause Okta gives for a login that is already taken.
pub(crate) const DUPLICATE_CAUSE: &str =
    "An object with this field already exists in the current organization";

#[derive(Debug, Clone)]
pub(crate) struct OktaError {
    pub status: StatusCode,
    pub code: &'static str,
    pub summary: String,
    pub causes: Vec<String>,
    pub headers: Vec<(HeaderName, String)>,
}

impl OktaError {
    pub(crate) fn new(status: StatusCode, code: &'static str, summary: impl Into<String>) -> Self {
        Self {
            status,
            code,
            summary: summary.into(),
            causes: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_causes(mut self, causes: Vec<String>) -> Self {
        self.causes = causes;
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 E0000001 naming the first failing field, with one cause per problem
    /// (`"<field>: <problem>"`), as Okta reports profile validation.
    pub(crate) fn validation(causes: Vec<(String, String)>) -> Self {
        let field = causes.first().map(|(f, _)| f.clone()).unwrap_or_default();
        Self::new(
            StatusCode::BAD_REQUEST,
            "E0000001",
            summary::E0000001.replace("{0}", &field),
        )
        .with_causes(
            causes
                .into_iter()
                .map(|(f, problem)| format!("{f}: {problem}"))
                .collect(),
        )
    }

    /// 400 E0000001 for a profile property the org's schema does not have. Okta names
    /// the object in the summary (`newUser` on create, `user` on update), not the
    /// property, which only the cause names.
    pub(crate) fn undefined_property(object: &str, property: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "E0000001",
            summary::E0000001.replace("{0}", object),
        )
        .with_causes(vec![format!(
            "Property name '{property}' is not defined in profile"
        )])
    }

    pub(crate) fn bad_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000003", summary::E0000003)
    }

    pub(crate) fn invalid_request(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "E0000002",
            summary::E0000002.replace("{0}", what),
        )
    }

    pub(crate) fn user_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "E0000007",
            summary::E0000007.replace("{0}", &format!("Resource not found: {id} (User)")),
        )
    }

    pub(crate) fn group_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "E0000007",
            summary::E0000007.replace("{0}", &format!("Resource not found: {id} (UserGroup)")),
        )
    }

    pub(crate) fn path_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "E0000008", summary::E0000008)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "E0000022",
            summary::E0000022,
        )
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "E0000006", summary::E0000006)
    }

    pub(crate) fn wrong_status() -> Self {
        Self::new(StatusCode::FORBIDDEN, "E0000038", summary::E0000038)
    }

    pub(crate) fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "E0000011", summary::E0000011)
    }

    pub(crate) fn invalid_search() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000031", summary::E0000031)
    }

    pub(crate) fn invalid_paging() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000029", summary::E0000029)
    }

    pub(crate) fn rate_limited() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "E0000047", summary::E0000047)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "E0000009",
            summary::E0000009,
        )
    }

    pub(crate) fn read_only() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "E0000010",
            summary::E0000010,
        )
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        json!({
            "errorCode": self.code,
            "errorSummary": self.summary,
            "errorLink": self.code,
            "errorId": ids::error_id(),
            "errorCauses": self.causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
        })
    }
}

impl IntoResponse for OktaError {
    fn into_response(self) -> Response {
        let mut response = (self.status, json_body(&self.body())).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().append(name.clone(), v);
            }
        }
        response
    }
}

/// A JSON body with Okta's `Content-Type`.
pub(crate) fn json_body(value: &serde_json::Value) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
}
