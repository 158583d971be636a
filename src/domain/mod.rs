//! Validated domain values. Every value that reaches storage has passed through one of
//! these parsers, so the SQL layer never sees something longer than its column or a
//! character the legacy `utf8` (utf8mb3) tables cannot hold.

mod ids;
mod okta_user_id;
mod portal_user_status;
mod session_id;
mod setting_key;
mod text;

pub use ids::{parse_row_id, EfsUserId, PortalId};
pub use okta_user_id::OktaUserId;
pub use portal_user_status::PortalUserStatus;
pub use session_id::SessionId;
pub use setting_key::SettingKey;
pub use text::check_text;

/// Why a value was refused; the HTTP layer attaches the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
