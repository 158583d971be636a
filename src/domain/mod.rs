//! Validated domain values. Every value that reaches storage has passed through one of
//! these parsers, so the SQL layer never sees something longer than its column or a
//! character the legacy `utf8` (utf8mb3) tables cannot hold.

mod duration;
mod field_error;
mod ids;
mod okta_group_id;
pub mod okta_user_id;
mod portal_user_status;
mod session_id;
mod setting_key;
mod text;

pub use duration::parse_duration;
pub use field_error::FieldError;
pub use ids::{parse_row_id, EfsUserId, PortalId};
pub use okta_group_id::OktaGroupId;
pub use okta_user_id::OktaUserId;
pub use portal_user_status::PortalUserStatus;
pub use session_id::SessionId;
pub use setting_key::{
    SettingKey, OKTA_CLIENT_ID, OKTA_GROUP_ID, OKTA_ISSUER, RECONCILE_MODE, TRUST_SETTINGS,
};
pub use text::{check_text, storable_text, truncate_bytes, TEXT_MAX_CHARS};

/// Why a value was refused; the HTTP layer attaches the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// `Deserialize` through a value's own parser, so that a path or query parameter is
/// checked exactly as the value is everywhere else; a refusal is the parser's message.
macro_rules! deserialize_by_parse {
    ($($ty:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$ty>::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_by_parse!(PortalId, EfsUserId, OktaUserId, SettingKey, SessionId);
