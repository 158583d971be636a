use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A field of a request at fault, and why: what validation, storage and Okta report
/// and what the API's problem documents list under `errors`.
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
