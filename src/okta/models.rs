//! Typed views of Okta's `User` and `Group` objects, and the request bodies efs-iam
//! sends.
//!
//! Parsing is deliberately lenient, as Okta documents its objects may grow: unknown fields are ignored, statuses
//! and group types outside the documented enums are kept as `Other(..)` instead of
//! failing the whole page, and the profile fields that an Okta admin can make nullable
//! are `Option`s. A sync that stops on the first surprising user is worse than one that
//! carries the surprise through to the caller.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An Okta user: the parts efs-iam works with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OktaUser {
    /// Okta's opaque id (`00u…`, 20 characters in practice).
    pub id: String,
    #[serde(default = "OktaUserStatus::unknown")]
    pub status: OktaUserStatus,
    /// Set while an asynchronous lifecycle change (activation, deactivation) runs.
    #[serde(
        rename = "transitioningToStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transitioning_to_status: Option<OktaUserStatus>,
    /// When Okta created the user; `None` when the answer has no (readable) time.
    #[serde(
        default,
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub profile: OktaUserProfile,
}

/// A group member as reconciliation reads it: only the fields it compares. A group
/// is read whole (every page) before it is compared, so what each member keeps is what
/// the run holds at its peak: the full [`OktaUser`] (every profile attribute, as a
/// JSON map) is several times this, and an allocator keeps that high-water mark.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OktaGroupMember {
    pub id: String,
    #[serde(default = "OktaUserStatus::unknown")]
    pub status: OktaUserStatus,
    #[serde(default)]
    pub profile: OktaMemberLogin,
}

/// The one profile field a group member keeps: its login, for the report.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OktaMemberLogin {
    #[serde(default)]
    pub login: String,
}

/// An RFC 3339 time, or `None` for anything else: a field efs-iam only consults is no
/// reason to refuse the whole answer.
fn lenient_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let raw = Option::<Value>::deserialize(d)?;
    Ok(raw
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc)))
}

/// A user's profile: the four fields of Okta's default schema plus every other
/// attribute as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OktaUserProfile {
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "firstName", default)]
    pub first_name: Option<String>,
    #[serde(rename = "lastName", default)]
    pub last_name: Option<String>,
    /// Every other profile attribute (custom attributes included), as Okta sent it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `User.status`. `ACTIVATING` and anything newer land in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OktaUserStatus {
    Staged,
    Provisioned,
    Active,
    Recovery,
    PasswordExpired,
    LockedOut,
    Suspended,
    Deprovisioned,
    Other(String),
}

impl OktaUserStatus {
    fn unknown() -> Self {
        Self::Other(String::new())
    }

    /// Okta's spelling, e.g. `DEPROVISIONED`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Staged => "STAGED",
            Self::Provisioned => "PROVISIONED",
            Self::Active => "ACTIVE",
            Self::Recovery => "RECOVERY",
            Self::PasswordExpired => "PASSWORD_EXPIRED",
            Self::LockedOut => "LOCKED_OUT",
            Self::Suspended => "SUSPENDED",
            Self::Deprovisioned => "DEPROVISIONED",
            Self::Other(s) => s,
        }
    }
}

impl From<String> for OktaUserStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "STAGED" => Self::Staged,
            "PROVISIONED" => Self::Provisioned,
            "ACTIVE" => Self::Active,
            "RECOVERY" => Self::Recovery,
            "PASSWORD_EXPIRED" => Self::PasswordExpired,
            "LOCKED_OUT" => Self::LockedOut,
            "SUSPENDED" => Self::Suspended,
            "DEPROVISIONED" => Self::Deprovisioned,
            _ => Self::Other(s),
        }
    }
}

impl From<OktaUserStatus> for String {
    fn from(s: OktaUserStatus) -> Self {
        s.as_str().to_owned()
    }
}

impl std::fmt::Display for OktaUserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One admin role assignment of a user (`GET /api/v1/users/{id}/roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OktaRole {
    #[serde(default)]
    pub id: String,
    /// `SUPER_ADMIN`, `ORG_ADMIN`, `USER_ADMIN`, `CUSTOM`…
    #[serde(rename = "type")]
    pub role_type: String,
    #[serde(default)]
    pub label: Option<String>,
    /// `ACTIVE` or `INACTIVE`.
    #[serde(default)]
    pub status: Option<String>,
}

/// An Okta group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OktaGroup {
    /// Okta's opaque id (`00g…`).
    pub id: String,
    /// Only `OKTA_GROUP` memberships can be changed through the API (`APP_GROUP` and
    /// `BUILT_IN` are managed by apps and by Okta).
    #[serde(rename = "type", default = "OktaGroupType::unknown")]
    pub group_type: OktaGroupType,
    #[serde(default)]
    pub profile: OktaGroupProfile,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OktaGroupProfile {
    #[serde(default)]
    pub name: String,
    /// Okta omits it, or (in a recording) sends `null`, when there is none.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OktaGroupType {
    OktaGroup,
    AppGroup,
    BuiltIn,
    Other(String),
}

impl OktaGroupType {
    fn unknown() -> Self {
        Self::Other(String::new())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::OktaGroup => "OKTA_GROUP",
            Self::AppGroup => "APP_GROUP",
            Self::BuiltIn => "BUILT_IN",
            Self::Other(s) => s,
        }
    }
}

impl From<String> for OktaGroupType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "OKTA_GROUP" => Self::OktaGroup,
            "APP_GROUP" => Self::AppGroup,
            "BUILT_IN" => Self::BuiltIn,
            _ => Self::Other(s),
        }
    }
}

impl From<OktaGroupType> for String {
    fn from(t: OktaGroupType) -> Self {
        t.as_str().to_owned()
    }
}

/// The profile of a user to create. Okta's default schema requires all four named
/// fields; `extra` carries custom attributes (a key that repeats a named field is
/// overridden by the named field).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUserProfile {
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub extra: Map<String, Value>,
}

impl NewUserProfile {
    pub fn new(
        login: impl Into<String>,
        email: impl Into<String>,
        first_name: impl Into<String>,
        last_name: impl Into<String>,
    ) -> Self {
        Self {
            login: login.into(),
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            extra: Map::new(),
        }
    }

    /// Adds a custom profile attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut profile = self.extra.clone();
        profile.insert("login".into(), self.login.clone().into());
        profile.insert("email".into(), self.email.clone().into());
        profile.insert("firstName".into(), self.first_name.clone().into());
        profile.insert("lastName".into(), self.last_name.clone().into());
        Value::Object(profile)
    }
}

/// Whether a new user is activated as part of creation (`activate` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `activate=true`: without a password the user becomes `PROVISIONED` (or `ACTIVE`,
    /// by enrollment policy) and Okta emails an activation link.
    Activate,
    /// `activate=false`: the user is created `STAGED` and no email is sent.
    Stage,
}

/// A partial profile update (`POST /api/v1/users/{id}`): only the fields set here
/// change. To clear an attribute, put `Value::Null` into `extra`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    pub login: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub extra: Map<String, Value>,
}

impl ProfileUpdate {
    pub fn is_empty(&self) -> bool {
        self.login.is_none()
            && self.email.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
            && self.extra.is_empty()
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut profile = self.extra.clone();
        for (name, value) in [
            ("login", &self.login),
            ("email", &self.email),
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
        ] {
            if let Some(v) = value {
                profile.insert(name.into(), v.clone().into());
            }
        }
        Value::Object(profile)
    }
}

/// What [`super::OktaClient::remove_group_member`] does when Okta answers 404 (the
/// group or the user does not exist; removing a non-member of an existing group is a
/// plain 204).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    /// Report [`super::OktaError::NotFound`].
    Fail,
    /// Treat it as already removed: [`Removal::AlreadyGone`].
    TreatAsRemoved,
}

/// Outcome of a successful membership removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Okta answered 204.
    Removed,
    /// Okta answered 404 and the caller asked for [`OnMissing::TreatAsRemoved`].
    AlreadyGone,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_parse_leniently() {
        let u: OktaUser = serde_json::from_value(json!({
            "id": "00ub0oNGTSWTBKOLGLNR",
            "status": "ACTIVATING",
            "created": "2013-07-02T21:36:25.344Z",
            "credentials": {"emails": [{"value": "x"}]},
            "profile": {"login": "a@example.com", "email": "a@example.com",
                        "firstName": null, "lastName": "B", "costCenter": 7},
            "_links": {"self": {"href": "x", "method": "GET"}}
        }))
        .unwrap();
        assert_eq!(u.status, OktaUserStatus::Other("ACTIVATING".into()));
        assert_eq!(u.profile.first_name, None);
        assert_eq!(u.profile.last_name.as_deref(), Some("B"));
        assert_eq!(u.profile.extra["costCenter"], json!(7));
        assert!(!u.profile.extra.contains_key("login"));
    }

    #[test]
    fn a_group_member_keeps_its_id_status_and_login_only() {
        let m: OktaGroupMember = serde_json::from_value(json!({
            "id": "00ub0oNGTSWTBKOLGLNR",
            "status": "DEPROVISIONED",
            "profile": {"login": "a@example.com", "firstName": null, "costCenter": 7},
            "_links": {"self": {"href": "x"}}
        }))
        .unwrap();
        assert_eq!(m.id, "00ub0oNGTSWTBKOLGLNR");
        assert_eq!(m.status, OktaUserStatus::Deprovisioned);
        assert_eq!(m.profile.login, "a@example.com");
        let bare: OktaGroupMember = serde_json::from_value(json!({"id": "00u2"})).unwrap();
        assert_eq!(bare.status, OktaUserStatus::Other(String::new()));
        assert_eq!(bare.profile.login, "");
    }

    #[test]
    fn groups_parse_with_or_without_description() {
        let g: OktaGroup = serde_json::from_value(json!({
            "id": "00g1", "type": "BUILT_IN", "objectClass": ["okta:user_group"],
            "profile": {"name": "Everyone", "description": null}
        }))
        .unwrap();
        assert_eq!(g.group_type, OktaGroupType::BuiltIn);
        assert_eq!(g.profile.description, None);
    }

    #[test]
    fn named_fields_win_over_extra() {
        let p = NewUserProfile::new("a@x.io", "a@x.io", "A", "B")
            .with_attribute("login", "evil@x.io")
            .with_attribute("department", "R&D");
        let v = p.to_json();
        assert_eq!(v["login"], "a@x.io");
        assert_eq!(v["department"], "R&D");
    }

    #[test]
    fn partial_update_sends_only_set_fields() {
        let u = ProfileUpdate {
            last_name: Some("C".into()),
            ..Default::default()
        };
        assert_eq!(u.to_json(), json!({"lastName": "C"}));
        assert!(ProfileUpdate::default().is_empty());
    }
}
