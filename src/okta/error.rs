//! The adapter's errors. Callers branch on the variant (what kind of failure) and read
//! Okta's own details (`errorCode`, causes, `X-Okta-Request-Id`) from [`OktaApiError`].
//!
//! Variants follow what a caller does next, not Okta's status codes one to one: a
//! validation failure needs different data, a forbidden-state failure needs a different
//! lifecycle step, an auth failure needs an operator, and the transient kinds
//! (rate limit, server, timeout, connection) have already been retried by the time they
//! surface. Nothing here carries a token or a key: Display and Debug are built from
//! Okta's error body, the route template and our own texts only.

use std::fmt;

use serde::Deserialize;

use super::exchange::Exchange;

/// What Okta said about a request that failed (or, with status 0, that nothing came
/// back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OktaApiError {
    /// HTTP status; 0 when there was no answer.
    pub status: u16,
    /// Okta's `errorCode` (`E0000001`…), or the OAuth `error` (`invalid_client`…) for
    /// token-endpoint failures. Empty when the body had neither.
    pub error_code: String,
    /// Okta's `errorSummary` (or the OAuth `error_description`).
    pub summary: String,
    /// The `errorSummary` of each `errorCauses` entry, e.g.
    /// `login: An object with this field already exists in the current organization`.
    pub causes: Vec<String>,
    /// Okta's `errorId`, for Okta support.
    pub error_id: Option<String>,
    /// The `X-Okta-Request-Id` of the answer.
    pub request_id: Option<String>,
    /// HTTP method of the call.
    pub method: String,
    /// Route template of the call, e.g. `/api/v1/users/{id}` (no ids or logins).
    pub route: &'static str,
    /// Requests sent for this call, retries included.
    pub attempts: u32,
}

impl OktaApiError {
    /// Okta's duplicate-login answer: 400 `E0000001` with a cause starting `login:` that
    /// says the value already exists. Okta documents only `errorCode` as stable, so this
    /// matches the code, the field prefix and the "already exists" phrase rather than the
    /// whole sentence.
    pub fn is_duplicate_login(&self) -> bool {
        self.error_code == "E0000001"
            && self.causes.iter().any(|c| {
                c.trim_start().starts_with("login:")
                    && c.to_ascii_lowercase().contains("already exists")
            })
    }

    /// Profile fields named by the causes (`"<field>: <problem>"`), in Okta's order.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::new();
        for cause in &self.causes {
            if let Some((field, _)) = cause.split_once(':') {
                let field = field.trim();
                if is_field_name(field) && !fields.contains(&field) {
                    fields.push(field);
                }
            }
        }
        fields
    }

    /// The profile field a validation failure is about: the first cause's field. Never
    /// the word in `Api validation failed: <word>`, which is as often Okta's object
    /// (`newUser`, `user`) as a property.
    pub fn field(&self) -> Option<&str> {
        self.fields().first().copied()
    }
}

impl OktaApiError {
    /// What an error answer says: Okta's error object (or the token endpoint's OAuth
    /// error), read leniently; a body that is neither (a proxy's HTML page, say) gives
    /// a short piece of itself. Every text goes through `scrub` first, so no secret
    /// that somehow shows up in an answer is kept.
    pub(crate) fn from_answer(
        ex: &Exchange,
        method: &str,
        route: &'static str,
        scrub: &dyn Fn(String) -> String,
    ) -> Self {
        let body = ErrorBody::read(&ex.body);
        // A refused token or DPoP proof: an empty body, the reason in the challenge.
        let challenge = super::headers::challenge_error(&ex.headers);
        let (challenge_code, challenge_text) = match challenge {
            Some((code, text)) => (Some(code), text),
            None => (None, None),
        };
        let summary = body
            .error_summary
            .or(body.error_description)
            .or(challenge_text)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&ex.body);
                let text = text.trim();
                if text.is_empty() {
                    reqwest::StatusCode::from_u16(ex.status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("no error details")
                        .to_owned()
                } else {
                    truncate_chars(text, 200).to_owned()
                }
            });
        Self {
            status: ex.status,
            error_code: body
                .error_code
                .or(body.error)
                .or(challenge_code)
                .unwrap_or_default(),
            summary: scrub(summary),
            causes: body
                .error_causes
                .into_iter()
                .filter_map(|c| c.error_summary)
                .map(scrub)
                .collect(),
            error_id: body.error_id,
            request_id: ex.request_id.clone(),
            method: method.to_owned(),
            route,
            attempts: ex.attempt,
        }
    }
}

/// Okta's error object, or the token endpoint's OAuth error; read leniently.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "errorCode")]
    pub(crate) error_code: Option<String>,
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
    #[serde(rename = "errorId")]
    error_id: Option<String>,
    #[serde(rename = "errorCauses", default)]
    error_causes: Vec<ErrorCause>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorCause {
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
}

impl ErrorBody {
    pub(crate) fn read(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// The variant for a final error answer.
pub(crate) fn classify(status: u16, api: Box<OktaApiError>) -> OktaError {
    match status {
        // Okta refused efs-iam's DPoP proof (400, empty body): the credentials' fault.
        400 if api.error_code == "invalid_dpop_proof" => OktaError::Auth(api),
        400 => OktaError::Validation(api),
        401 => OktaError::Auth(api),
        403 if api.error_code == "E0000038" => OktaError::ForbiddenState(api),
        403 => OktaError::Forbidden(api),
        404 => OktaError::NotFound(api),
        429 => OktaError::RateLimited(api),
        s if s >= 500 => OktaError::Server(api),
        _ => OktaError::Rejected(api),
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl fmt::Display for OktaApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.method, self.route)?;
        if self.status != 0 {
            write!(f, "HTTP {}", self.status)?;
        }
        if !self.error_code.is_empty() {
            write!(f, " {}", self.error_code)?;
        }
        if !self.summary.is_empty() {
            write!(f, " {}", self.summary)?;
        }
        if !self.causes.is_empty() {
            write!(f, " ({})", self.causes.join("; "))?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [X-Okta-Request-Id {id}]")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

/// Why an Okta call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OktaError {
    /// No Okta org is configured (`EFS_IAM_OKTA_ORG_URL` unset).
    #[error("Okta is not configured (set EFS_IAM_OKTA_ORG_URL and credentials)")]
    NotConfigured,
    /// 404: the user or group does not exist.
    #[error("not found in Okta: {0}")]
    NotFound(Box<OktaApiError>),
    /// 400: the request or the profile data was refused (`E0000001` and friends). See
    /// [`OktaApiError::is_duplicate_login`] and [`OktaApiError::field`].
    #[error("Okta refused the data: {0}")]
    Validation(Box<OktaApiError>),
    /// 403 `E0000038`: not allowed in the user's current status (e.g. updating a
    /// deprovisioned user).
    #[error("not allowed in the user's current Okta status: {0}")]
    ForbiddenState(Box<OktaApiError>),
    /// Any other 403: missing permission or scope (`E0000006`), a group efs-iam may not
    /// change, a profile mastered elsewhere.
    #[error("Okta forbids the operation: {0}")]
    Forbidden(Box<OktaApiError>),
    /// 401 `E0000011`, or the token endpoint refused the client (`invalid_client`,
    /// `invalid_scope`…): credentials need an operator.
    #[error("authentication with Okta failed: {0}")]
    Auth(Box<OktaApiError>),
    /// Other 4xx answers (405, 409 `E0000112`, 412…), not retried.
    #[error("Okta rejected the request: {0}")]
    Rejected(Box<OktaApiError>),
    /// Still 429 after the configured retries.
    #[error("Okta rate limit still exceeded: {0}")]
    RateLimited(Box<OktaApiError>),
    /// Still 5xx after the configured retries.
    #[error("Okta server error: {0}")]
    Server(Box<OktaApiError>),
    /// No answer within the per-request timeout, on every attempt.
    #[error("Okta did not answer {method} {route} in time ({attempts} attempts)")]
    Timeout {
        method: String,
        route: &'static str,
        attempts: u32,
    },
    /// The connection failed or was dropped, on every attempt.
    #[error("could not reach Okta for {method} {route} ({attempts} attempts): {reason}")]
    Connection {
        method: String,
        route: &'static str,
        attempts: u32,
        reason: String,
    },
    /// An answer efs-iam cannot use (undecodable body, a pagination link to another
    /// host…).
    #[error("unusable answer from Okta for {method} {route}: {reason}")]
    InvalidResponse {
        method: String,
        route: &'static str,
        status: u16,
        request_id: Option<String>,
        reason: String,
    },
    /// The call was refused before anything was sent (e.g. an empty id).
    #[error("invalid Okta request: {0}")]
    InvalidInput(String),
}

impl OktaError {
    /// No answer to the `attempts`-th request of a call: it timed out, or the
    /// connection failed.
    pub(crate) fn no_answer(
        method: String,
        route: &'static str,
        attempts: u32,
        timeout: bool,
        reason: String,
    ) -> Self {
        if timeout {
            Self::Timeout {
                method,
                route,
                attempts,
            }
        } else {
            Self::Connection {
                method,
                route,
                attempts,
                reason,
            }
        }
    }

    /// Okta's answer, for the variants that have one.
    pub fn api_error(&self) -> Option<&OktaApiError> {
        match self {
            Self::NotFound(e)
            | Self::Validation(e)
            | Self::ForbiddenState(e)
            | Self::Forbidden(e)
            | Self::Auth(e)
            | Self::Rejected(e)
            | Self::RateLimited(e)
            | Self::Server(e) => Some(e),
            _ => None,
        }
    }

    /// True for Okta's duplicate-login validation error.
    pub fn is_duplicate_login(&self) -> bool {
        matches!(self, Self::Validation(e) if e.is_duplicate_login())
    }

    /// The profile field a validation error names.
    pub fn validation_field(&self) -> Option<&str> {
        match self {
            Self::Validation(e) => e.field(),
            _ => None,
        }
    }

    /// HTTP status of the final answer; 0 when there was none.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidResponse { status, .. } => *status,
            other => other.api_error().map_or(0, |e| e.status),
        }
    }

    /// `X-Okta-Request-Id` of the final answer.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::InvalidResponse { request_id, .. } => request_id.as_deref(),
            other => other.api_error().and_then(|e| e.request_id.as_deref()),
        }
    }

    /// Requests sent before giving up (0 when none was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Timeout { attempts, .. } | Self::Connection { attempts, .. } => *attempts,
            Self::NotConfigured | Self::InvalidInput(_) => 0,
            Self::InvalidResponse { .. } => 1,
            other => other.api_error().map_or(0, |e| e.attempts),
        }
    }

    /// Whether trying again later may help (the adapter has already retried these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited(_) | Self::Server(_) | Self::Timeout { .. } | Self::Connection { .. }
        )
    }

    /// The error with the number of requests the call sent.
    pub(crate) fn with_attempts(self, attempts: u32) -> OktaError {
        match self {
            OktaError::Timeout { method, route, .. } => OktaError::Timeout {
                method,
                route,
                attempts,
            },
            OktaError::Connection {
                method,
                route,
                reason,
                ..
            } => OktaError::Connection {
                method,
                route,
                attempts,
                reason,
            },
            mut other => {
                if let Some(api) = match &mut other {
                    OktaError::Auth(a)
                    | OktaError::RateLimited(a)
                    | OktaError::Server(a)
                    | OktaError::Rejected(a) => Some(a),
                    _ => None,
                } {
                    api.attempts = attempts;
                }
                other
            }
        }
    }
}

/// Why [`super::OktaClient`] could not be built from settings. Never echoes a token or
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum OktaConfigError {
    #[error("EFS_IAM_OKTA_ORG_URL: {0}")]
    OrgUrl(String),
    #[error("EFS_IAM_OKTA_ORG_URL is set but no credentials are: set EFS_IAM_OKTA_API_TOKEN, or EFS_IAM_OKTA_CLIENT_ID with EFS_IAM_OKTA_PRIVATE_KEY_FILE")]
    MissingCredentials,
    #[error("{0} is set but EFS_IAM_OKTA_ORG_URL is not")]
    CredentialsWithoutOrgUrl(&'static str),
    #[error("set either EFS_IAM_OKTA_API_TOKEN or EFS_IAM_OKTA_CLIENT_ID (OAuth), not both")]
    TokenAndClientId,
    #[error("EFS_IAM_OKTA_CLIENT_ID needs EFS_IAM_OKTA_PRIVATE_KEY_FILE (private_key_jwt is the only client authentication Okta allows for service apps)")]
    ClientIdWithoutKey,
    #[error("{0} is only used with EFS_IAM_OKTA_CLIENT_ID, which is not set")]
    OAuthSettingWithoutClientId(&'static str),
    #[error("{variable} {path}: cannot read it: {source}")]
    KeyFile {
        variable: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "EFS_IAM_OKTA_PRIVATE_KEY_FILE {path}: not an RSA private key in PEM (PKCS#8 or PKCS#1)"
    )]
    InvalidKey { path: String },
    #[error("EFS_IAM_OKTA_DPOP_KEY_FILE {path}: not a P-256 private key in PKCS#8 PEM")]
    InvalidDpopKey { path: String },
    #[error("EFS_IAM_OKTA_SCOPES: {0}")]
    Scopes(String),
    #[error("EFS_IAM_OKTA_API_TOKEN: {0}")]
    ApiToken(&'static str),
    #[error("invalid Okta adapter setting: {0}")]
    Invalid(String),
    #[error("cannot build the HTTP client for Okta")]
    HttpClient(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, summary: &str, causes: &[&str]) -> OktaApiError {
        OktaApiError {
            status: 400,
            error_code: code.into(),
            summary: summary.into(),
            causes: causes.iter().map(|c| (*c).to_owned()).collect(),
            error_id: None,
            request_id: Some("reqX".into()),
            method: "POST".into(),
            route: "/api/v1/users",
            attempts: 1,
        }
    }

    #[test]
    fn final_statuses_map_to_variants() {
        let api = |code: &str| Box::new(api(code, "", &[]));
        assert!(matches!(
            classify(400, api("E0000001")),
            OktaError::Validation(_)
        ));
        assert!(matches!(classify(401, api("E0000011")), OktaError::Auth(_)));
        assert!(matches!(
            classify(403, api("E0000038")),
            OktaError::ForbiddenState(_)
        ));
        assert!(matches!(
            classify(403, api("E0000006")),
            OktaError::Forbidden(_)
        ));
        assert!(matches!(
            classify(404, api("E0000007")),
            OktaError::NotFound(_)
        ));
        assert!(matches!(
            classify(409, api("E0000112")),
            OktaError::Rejected(_)
        ));
        assert!(matches!(
            classify(503, api("E0000010")),
            OktaError::Server(_)
        ));
    }

    #[test]
    fn summaries_are_cut_at_char_boundaries() {
        assert_eq!(truncate_chars("E0000001", 36), "E0000001");
        assert_eq!(truncate_chars(&"é".repeat(40), 36).chars().count(), 36);
    }

    #[test]
    fn duplicate_login_is_recognised_by_code_and_cause() {
        let dup = api(
            "E0000001",
            "Api validation failed: login",
            &["login: An object with this field already exists in the current organization"],
        );
        assert!(dup.is_duplicate_login());
        assert_eq!(dup.field(), Some("login"));
        let format = api(
            "E0000001",
            "Api validation failed: login",
            &["login: Username must be in the form of an email address"],
        );
        assert!(!format.is_duplicate_login());
        let email_dup = api(
            "E0000001",
            "Api validation failed: email",
            &["email: An object with this field already exists"],
        );
        assert!(!email_dup.is_duplicate_login());
    }

    #[test]
    fn only_causes_name_a_field_never_the_summary() {
        let e = api("E0000001", "Api validation failed: firstName", &[]);
        assert_eq!(e.field(), None);
        let e = api(
            "E0000001",
            "Api validation failed: newUser",
            &["Property name 'notValid' is not defined in profile"],
        );
        assert_eq!(e.field(), None);
        let e = api("E0000003", "The request body was not well-formed.", &[]);
        assert_eq!(e.field(), None);
    }

    #[test]
    fn display_names_route_code_and_request_id() {
        let e = OktaError::Validation(Box::new(api(
            "E0000001",
            "Api validation failed: email",
            &["email: Does not match required pattern"],
        )));
        let s = e.to_string();
        assert!(s.contains("POST /api/v1/users"), "{s}");
        assert!(s.contains("E0000001"), "{s}");
        assert!(s.contains("email: Does not match required pattern"), "{s}");
        assert!(s.contains("reqX"), "{s}");
        assert_eq!(e.validation_field(), Some("email"));
    }
}
