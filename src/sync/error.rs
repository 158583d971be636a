//! Why a sync failed, in terms EFS-Admin can act on. The HTTP layer turns a
//! [`SyncError`] into a problem document (`http::problem`); the slug of each kind
//! ([`SyncErrorKind::slug`]) is also what batch job results and the error log record,
//! so a user failed in a job reads the same as one failed by a single call.

use super::profile::UserProfile;
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
    /// `detail` is Okta's causes (or, without causes, its summary) as Okta wrote them;
    /// `errors` has one entry per cause, naming a request field only where the cause
    /// names one the request sent.
    #[error("Okta refused the profile: {detail}")]
    OktaValidation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("Okta is unavailable: {0}")]
    OktaUnavailable(OktaError),
    #[error("Okta refused efs-iam's credentials: {0}")]
    OktaAuth(OktaError),
    #[error("Okta refused the call: {0}")]
    OktaRefused(OktaError),
    /// The Okta user is not EFS's: efs-iam neither created nor adopted it.
    #[error("Okta user {okta_user_id}{} is not managed by efs-iam (it neither created it nor was told to adopt it); efs-iam does not act on it. An iam:admin adopts it with PUT /api/v1/okta-users/{okta_user_id}/management", login.as_deref().map(|l| format!(" (login {l:?})")).unwrap_or_default())]
    NotManaged {
        okta_user_id: String,
        login: Option<String>,
        /// The request field that named the user (`login`, `okta_user_id`), when one did.
        field: Option<&'static str>,
    },
    /// The Okta user holds admin roles: efs-iam never changes, groups, adopts or
    /// deactivates it, whatever the caller's scopes.
    #[error("Okta user {okta_user_id} holds Okta admin roles ({}); efs-iam never changes, groups, adopts or deactivates an administrator", roles.join(", "))]
    Privileged {
        okta_user_id: String,
        roles: Vec<String>,
    },
    /// Okta has no such user (adoption).
    #[error("Okta has no user {okta_user_id} (never existed, or deleted)")]
    OktaUserNotFound { okta_user_id: String },
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
    NotManaged,
    Privileged,
    OktaUserNotFound,
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
            Self::NotManaged => "okta-user-not-managed",
            Self::Privileged => "okta-user-privileged",
            Self::OktaUserNotFound => "okta-user-not-found",
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

/// The request field an Okta cause is about, if the cause names one the request sent:
/// a `<property>: <problem>` prefix naming a sent property, or a quoted attribute name
/// (`Property name 'notValid' is not defined in profile`). Anything else names no
/// field: the word after `Api validation failed:` is often Okta's object (`newUser`,
/// `user`), not a property, so guessing from it points EFS-Admin at the wrong field.
fn cause_field(cause: &str, sent: &UserProfile) -> Option<String> {
    let sends = |okta_name: &str| {
        matches!(okta_name, "login" | "email" | "firstName" | "lastName")
            || sent.attributes.contains_key(okta_name)
    };
    if let Some((prefix, _)) = cause.split_once(':') {
        let name = prefix.trim();
        if sends(name) {
            return Some(request_field(name));
        }
    }
    quoted(cause)
        .into_iter()
        .find(|name| sent.attributes.contains_key(*name))
        .map(request_field)
}

/// The texts between matching single or double quotes, in order. A quote right after a
/// letter or digit is an apostrophe (`user's`), not an opening quote.
fn quoted(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut pos = 0;
    let mut prev: Option<char> = None;
    while let Some(c) = text[pos..].chars().next() {
        let opens = matches!(c, '\'' | '"') && !prev.is_some_and(char::is_alphanumeric);
        pos += c.len_utf8();
        prev = Some(c);
        if opens {
            let Some(len) = text[pos..].find(c) else {
                break;
            };
            if len > 0 {
                found.push(&text[pos..pos + len]);
            }
            pos += len + c.len_utf8();
        }
    }
    found
}

impl SyncError {
    /// Maps an adapter error of a call that sent no profile. `NotFound` is left to the
    /// caller, which knows what was looked for.
    pub fn from_okta(e: OktaError) -> Self {
        Self::from_okta_answer(e, None)
    }

    /// Maps an adapter error of a call that sent `profile` (create, profile update), so
    /// that Okta's causes can name the request's fields.
    pub fn from_profile_write(e: OktaError, profile: &UserProfile) -> Self {
        Self::from_okta_answer(e, Some(profile))
    }

    fn from_okta_answer(e: OktaError, sent: Option<&UserProfile>) -> Self {
        match e {
            OktaError::NotConfigured => Self::OktaNotConfigured,
            OktaError::Validation(ref api) => {
                let mut errors: Vec<FieldError> = api
                    .causes
                    .iter()
                    .map(|cause| FieldError {
                        field: sent.and_then(|p| cause_field(cause, p)),
                        message: cause.clone(),
                    })
                    .collect();
                if errors.is_empty() {
                    errors.push(FieldError::without_field(&api.summary));
                }
                let detail = errors
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                Self::OktaValidation { detail, errors }
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
            Self::NotManaged { .. } => K::NotManaged,
            Self::Privileged { .. } => K::Privileged,
            Self::OktaUserNotFound { .. } => K::OktaUserNotFound,
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

    /// What is wrong with the request's profile, each naming its field where one is
    /// known, when the problem is about the profile.
    pub fn errors(&self) -> Vec<FieldError> {
        match self {
            Self::OktaValidation { errors, .. } => errors.clone(),
            Self::LoginConflict { .. } => {
                vec![FieldError::new("login", "taken by another Okta user")]
            }
            Self::NotManaged {
                field: Some(field), ..
            } => vec![FieldError::new(
                *field,
                "names an Okta user efs-iam does not manage",
            )],
            _ => Vec::new(),
        }
    }

    /// The first request field at fault, for job item results (whose `detail` carries
    /// every cause); `None` when no cause names a field the request sent.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::OktaValidation { errors, .. } => errors.iter().find_map(|e| e.field.as_deref()),
            Self::LoginConflict { .. } => Some("login"),
            Self::NotManaged { field, .. } => *field,
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
    use serde_json::json;

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

    fn sent(attributes: serde_json::Value) -> UserProfile {
        UserProfile {
            login: "a@example.com".into(),
            email: "a@example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            attributes: attributes.as_object().unwrap().clone(),
        }
    }

    fn entries(e: &SyncError) -> Vec<(Option<&str>, &str)> {
        match e {
            SyncError::OktaValidation { errors, .. } => errors
                .iter()
                .map(|e| (e.field.as_deref(), e.message.as_str()))
                .collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn prefixed_causes_name_the_request_fields_they_were_sent_as() {
        let e = SyncError::from_profile_write(
            validation(
                "Api validation failed: email",
                &[
                    "email: Does not match required pattern",
                    "firstName: The field cannot be left blank",
                    "countryCode: The field is too long",
                    "city: The field is too long",
                ],
            ),
            &sent(json!({"countryCode": "DEU"})),
        );
        assert_eq!(e.slug(), "okta-validation-failed");
        assert_eq!(
            entries(&e),
            [
                (Some("email"), "email: Does not match required pattern"),
                (
                    Some("first_name"),
                    "firstName: The field cannot be left blank"
                ),
                (
                    Some("attributes.countryCode"),
                    "countryCode: The field is too long"
                ),
                (None, "city: The field is too long"),
            ],
            "causes verbatim; city was not sent"
        );
        assert_eq!(e.field(), Some("email"));
        assert!(e
            .to_string()
            .starts_with("Okta refused the profile: email: Does not match required pattern; "));
    }

    #[test]
    fn a_quoted_property_names_a_field_only_when_the_request_sent_it() {
        let cause = "Property name 'notValid' is not defined in profile";
        let okta = || validation("Api validation failed: newUser", &[cause]);
        let e = SyncError::from_profile_write(okta(), &sent(json!({"notValid": "x"})));
        assert_eq!(entries(&e), [(Some("attributes.notValid"), cause)]);
        assert_eq!(e.to_string(), format!("Okta refused the profile: {cause}"));
        let e = SyncError::from_profile_write(okta(), &sent(json!({"department": "x"})));
        assert_eq!(entries(&e), [(None, cause)]);
        assert_eq!(e.field(), None);
        let double = "Property name \"notValid\" is not defined in profile";
        let e = SyncError::from_profile_write(
            validation("Api validation failed: user", &[double]),
            &sent(json!({"notValid": 1})),
        );
        assert_eq!(entries(&e), [(Some("attributes.notValid"), double)]);
    }

    #[test]
    fn the_summary_is_never_taken_for_a_field() {
        let e = SyncError::from_profile_write(
            validation("Api validation failed: lastName", &[]),
            &sent(json!({})),
        );
        assert_eq!(entries(&e), [(None, "Api validation failed: lastName")]);
        let e = SyncError::from_okta(validation(
            "Api validation failed: login",
            &["login: Username must be in the form of an email address"],
        ));
        assert_eq!(
            entries(&e),
            [(
                None,
                "login: Username must be in the form of an email address"
            )],
            "a call that sent no profile has no request field to name"
        );
    }

    #[test]
    fn quoted_texts_are_found_in_order() {
        let found = quoted(r#"a 'b' "c" 'd"e' '' 'f"#);
        assert_eq!(found, ["b", "c", "d\"e"]);
        let found = quoted("the user's 'notValid' property");
        assert_eq!(found, ["notValid"]);
    }
}
