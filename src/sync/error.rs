//! Why a sync failed, in terms EFS-Admin can act on. The HTTP layer turns a
//! [`SyncError`] into a problem document (`http::problem`); the slug of each kind
//! ([`SyncErrorKind::slug`]) is also what batch job results and the error log record,
//! so a user failed in a job reads the same as one failed by a single call.

use crate::domain::FieldError;
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

/// What kind of failure a [`SyncError`] is; each kind is one problem type of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncErrorKind {
    OktaNotConfigured,
    PortalNotLinked,
    GroupNotFound,
    Deprovisioned,
    LoginConflict,
    OktaValidation,
    OktaUnavailable,
    OktaAuth,
    OktaRefused,
    Busy,
    UnknownEfsUser,
    DatabaseUnavailable,
    Internal,
}

impl SyncErrorKind {
    /// The problem type's slug (`urn:efs-iam:problem:<slug>`).
    pub fn slug(self) -> &'static str {
        match self {
            Self::OktaNotConfigured => "okta-not-configured",
            Self::PortalNotLinked => "portal-not-linked",
            Self::GroupNotFound => "okta-group-not-found",
            Self::Deprovisioned => "okta-user-deprovisioned",
            Self::LoginConflict => "okta-login-conflict",
            Self::OktaValidation => "okta-validation-failed",
            Self::OktaUnavailable => "okta-unavailable",
            Self::OktaAuth => "okta-auth-failed",
            Self::OktaRefused => "okta-refused",
            Self::Busy => "user-busy",
            Self::UnknownEfsUser => "unknown-efs-user",
            Self::DatabaseUnavailable => "database-unavailable",
            Self::Internal => "internal",
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

    pub fn kind(&self) -> SyncErrorKind {
        use SyncErrorKind as K;
        match self {
            Self::OktaNotConfigured => K::OktaNotConfigured,
            Self::PortalNotLinked { .. } => K::PortalNotLinked,
            Self::GroupNotFound { .. } => K::GroupNotFound,
            Self::Deprovisioned { .. } => K::Deprovisioned,
            Self::LoginConflict { .. } => K::LoginConflict,
            Self::OktaValidation { .. } => K::OktaValidation,
            Self::OktaUnavailable(_) => K::OktaUnavailable,
            Self::OktaAuth(_) => K::OktaAuth,
            Self::OktaRefused(_) => K::OktaRefused,
            Self::Busy => K::Busy,
            Self::Storage(StorageError::UnknownEfsUser) => K::UnknownEfsUser,
            Self::Storage(e) if e.is_transient() => K::DatabaseUnavailable,
            Self::Storage(_) => K::Internal,
        }
    }

    /// The problem type slug, for job item results and the error log.
    pub fn slug(&self) -> &'static str {
        self.kind().slug()
    }

    /// Whether a later attempt may succeed without anyone changing data or settings.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::OktaUnavailable(_) | Self::Busy => true,
            Self::Storage(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The request fields at fault, when the problem is about the profile.
    pub fn fields(&self) -> Vec<FieldError> {
        match self {
            Self::OktaValidation { fields, .. } => fields.clone(),
            Self::LoginConflict { .. } => {
                vec![FieldError::new("login", "taken by another Okta user")]
            }
            _ => Vec::new(),
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
        assert_eq!(e.slug(), "okta-validation-failed");
        let fields = e.fields();
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["email", "first_name", "attributes.countryCode"]);
        assert_eq!(fields[0].message, "Does not match required pattern");
        assert!(e
            .to_string()
            .contains("email: Does not match required pattern"));
    }

    #[test]
    fn a_summary_without_causes_still_names_the_field() {
        let e = SyncError::from_okta(validation("Api validation failed: lastName", &[]));
        assert_eq!(e.fields()[0].field, "last_name");
    }
}
