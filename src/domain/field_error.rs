use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is wrong with a request, and where when that is known: what validation, storage
/// and Okta report and what the API's problem documents list under `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the body (`users[3].okta_user_id`), or the parameter name.
    /// Absent when the message names nothing the request sent (an Okta cause about a
    /// property the request did not send, say): efs-iam never guesses a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field.into()),
            message: message.to_string(),
        }
    }

    /// A message about the request that names no field of it.
    pub fn without_field(message: impl std::fmt::Display) -> Self {
        Self {
            field: None,
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
