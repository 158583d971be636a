//! Why a sync failed, in terms EFS-Admin can act on, and its problem+json form.
//!
//! | problem type | status | meaning |
//! |---|---|---|
//! | `okta-not-configured` | 503 | no Okta org configured in this instance |
//! | `portal-not-linked` | 409 | the portal has no `okta_group_id` setting |
//! | `okta-group-not-found` | 409 | the portal's `okta_group_id` names no group Okta has |
//! | `okta-user-deprovisioned` | 409 | the user's Okta account is deactivated; efs-iam does not reactivate |
//! | `okta-login-conflict` | 409 | Okta says the login is taken, but not by a user efs-iam can link |
//! | `okta-validation-failed` | 422 | Okta refused the profile; `errors` names the fields |
//! | `okta-unavailable` | 503 | Okta's 5xx, 429 or silence outlasted the adapter's retries |
//! | `okta-auth-failed` | 502 | Okta refused efs-iam's credentials (an operator must act) |
//! | `okta-refused` | 502 | Okta refused the call for another reason (permissions, group type…) |
//! | `user-busy` | 503 | another sync of the same user held its lock too long |

use axum::http::StatusCode;

use crate::error::FieldError;
use crate::okta::OktaError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("Okta is not configured in this instance (EFS_IAM_OKTA_ORG_URL)")]
    OktaNotConfigured,
    #[error("portal {portal} has no okta_group_id setting: set it to the portal's Okta group id (PUT /api/v1/portals/{portal}/settings/okta_group_id)")]
    PortalNotLinked { portal: i32 },
    #[error("the okta_group_id of portal {portal} ({group_id:?}) names no group Okta has")]
    GroupNotFound { portal: i32, group_id: String },
    #[error("Okta user {okta_user_id} is deprovisioned (deactivated); reactivate it in Okta first, efs-iam does not")]
    Deprovisioned { okta_user_id: String },
    #[error("Okta reports the login {login:?} as taken, but {reason}")]
    LoginConflict { login: String, reason: String },
    #[error("Okta refused the profile: {detail}")]
    OktaValidation {
        detail: String,
        fields: Vec<FieldError>,
    },
    #[error("Okta is unavailable: {0}")]
    OktaUnavailable(OktaError),
    #[error("Okta refused efs-iam's credentials: {0}")]
    OktaAuth(OktaError),
    #[error("Okta refused the call: {0}")]
    OktaRefused(OktaError),
    #[error("another sync of this user is still running; retry shortly")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<SyncError> for crate::error::ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            // The data API's own mapping (unknown EFS user, database unavailable…).
            SyncError::Storage(e) => Self::Storage(e),
            e => Self::Sync(e),
        }
    }
}

/// Okta's name for a profile field → the field in efs-iam's request body.
pub fn request_field(okta_field: &str) -> String {
    match okta_field {
        "login" => "login".into(),
        "email" => "email".into(),
        "firstName" => "first_name".into(),
        "lastName" => "last_name".into(),
        other => format!("attributes.{other}"),
    }
}

impl SyncError {
    /// Maps an adapter error. `NotFound` is left to the caller, which knows what was
    /// looked for.
    pub fn from_okta(e: OktaError) -> Self {
        match e {
            OktaError::NotConfigured => Self::OktaNotConfigured,
            OktaError::Validation(ref api) => {
                let mut fields: Vec<FieldError> = api
                    .causes
                    .iter()
                    .filter_map(|c| c.split_once(':'))
                    .filter(|(f, _)| api.fields().contains(&f.trim()))
                    .map(|(f, m)| FieldError::new(request_field(f.trim()), m.trim()))
                    .collect();
                if fields.is_empty() {
                    if let Some(f) = api.field() {
                        fields.push(FieldError::new(request_field(f), api.summary.clone()));
                    }
                }
                if fields.is_empty() {
                    fields.push(FieldError::new("profile", api.summary.clone()));
                }
                let detail = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                Self::OktaValidation { detail, fields }
            }
            e if e.is_transient() => Self::OktaUnavailable(e),
            OktaError::Auth(_) => Self::OktaAuth(e),
            e => Self::OktaRefused(e),
        }
    }

    /// Whether a later attempt may succeed without anyone changing data or settings.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::OktaUnavailable(_) | Self::Busy => true,
            Self::Storage(e) => matches!(
                e,
                StorageError::Unavailable(_)
                    | StorageError::Conflict(_)
                    | StorageError::NotMigrated { .. }
            ),
            _ => false,
        }
    }

    /// Status, problem type slug, title, detail and fields of the problem document.
    pub fn problem(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Vec<FieldError>,
    ) {
        use StatusCode as S;
        let detail = self.to_string();
        match self {
            Self::OktaNotConfigured => (
                S::SERVICE_UNAVAILABLE,
                "okta-not-configured",
                "Okta is not configured",
                detail,
                vec![],
            ),
            Self::PortalNotLinked { .. } => (
                S::CONFLICT,
                "portal-not-linked",
                "Portal has no Okta group",
                detail,
                vec![],
            ),
            Self::GroupNotFound { .. } => (
                S::CONFLICT,
                "okta-group-not-found",
                "Okta group not found",
                detail,
                vec![],
            ),
            Self::Deprovisioned { .. } => (
                S::CONFLICT,
                "okta-user-deprovisioned",
                "Okta user is deprovisioned",
                detail,
                vec![],
            ),
            Self::LoginConflict { .. } => (
                S::CONFLICT,
                "okta-login-conflict",
                "Login taken in Okta",
                detail,
                vec![FieldError::new("login", "taken by another Okta user")],
            ),
            Self::OktaValidation { fields, .. } => (
                S::UNPROCESSABLE_ENTITY,
                "okta-validation-failed",
                "Okta refused the profile",
                detail,
                fields.clone(),
            ),
            Self::OktaUnavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "okta-unavailable",
                "Okta unavailable",
                detail,
                vec![],
            ),
            Self::OktaAuth(_) => (
                S::BAD_GATEWAY,
                "okta-auth-failed",
                "Okta refused efs-iam's credentials",
                detail,
                vec![],
            ),
            Self::OktaRefused(_) => (
                S::BAD_GATEWAY,
                "okta-refused",
                "Okta refused the call",
                detail,
                vec![],
            ),
            Self::Busy => (
                S::SERVICE_UNAVAILABLE,
                "user-busy",
                "User busy",
                detail,
                vec![],
            ),
            Self::Storage(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
                detail,
                vec![],
            ),
        }
    }

    /// The problem type slug, for job item results and the error log.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::Storage(StorageError::UnknownEfsUser) => "unknown-efs-user",
            Self::Storage(_) if self.is_transient() => "database-unavailable",
            _ => self.problem().1,
        }
    }

    /// The profile field at fault, for job item results.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::OktaValidation { fields, .. } => fields.first().map(|f| f.field.as_str()),
            Self::LoginConflict { .. } => Some("login"),
            _ => None,
        }
    }

    /// Okta's answer behind the error, if any.
    pub fn okta_error(&self) -> Option<&OktaError> {
        match self {
            Self::OktaUnavailable(e) | Self::OktaAuth(e) | Self::OktaRefused(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::OktaApiError;

    fn validation(summary: &str, causes: &[&str]) -> OktaError {
        OktaError::Validation(Box::new(OktaApiError {
            status: 400,
            error_code: "E0000001".into(),
            summary: summary.into(),
            causes: causes.iter().map(|c| (*c).to_owned()).collect(),
            error_id: None,
            request_id: None,
            method: "POST".into(),
            route: "/api/v1/users",
            attempts: 1,
        }))
    }

    #[test]
    fn okta_fields_become_request_fields() {
        let e = SyncError::from_okta(validation(
            "Api validation failed: email",
            &[
                "email: Does not match required pattern",
                "firstName: The field cannot be left blank",
                "countryCode: The field is too long",
            ],
        ));
        let (status, slug, _, detail, fields) = e.problem();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(slug, "okta-validation-failed");
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["email", "first_name", "attributes.countryCode"]);
        assert_eq!(fields[0].message, "Does not match required pattern");
        assert!(detail.contains("email: Does not match required pattern"));
    }

    #[test]
    fn a_summary_without_causes_still_names_the_field() {
        let e = SyncError::from_okta(validation("Api validation failed: lastName", &[]));
        let (_, _, _, _, fields) = e.problem();
        assert_eq!(fields[0].field, "last_name");
    }
}
