//! A user's profile as EFS-Admin sends it: the request bodies that carry it
//! (`SyncUserRequest`; a batch job's user has the same fields through `profile_body!`),
//! its checks to Okta's default user schema, and what must change in Okta for Okta's
//! copy to say the same.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::okta::{NewUserProfile, OktaUserProfile, ProfileUpdate};

/// A user's profile as EFS-Admin sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Further Okta profile attributes by their Okta name (`null` clears one).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl UserProfile {
    pub(super) fn to_new(&self) -> NewUserProfile {
        NewUserProfile {
            login: self.login.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            extra: self
                .attributes
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// What has to change in Okta for its profile to say what this one says. Only the
    /// fields EFS sends are compared; Okta's other attributes are left alone.
    pub(super) fn diff(&self, okta: &OktaUserProfile) -> ProfileUpdate {
        let differs = |mine: &str, theirs: &Option<String>| theirs.as_deref() != Some(mine);
        let mut update = ProfileUpdate::default();
        if okta.login != self.login {
            update.login = Some(self.login.clone());
        }
        if differs(&self.email, &okta.email) {
            update.email = Some(self.email.clone());
        }
        if differs(&self.first_name, &okta.first_name) {
            update.first_name = Some(self.first_name.clone());
        }
        if differs(&self.last_name, &okta.last_name) {
            update.last_name = Some(self.last_name.clone());
        }
        for (name, value) in &self.attributes {
            let theirs = okta.extra.get(name).unwrap_or(&Value::Null);
            if !same_value(value, theirs) {
                update.extra.insert(name.clone(), value.clone());
            }
        }
        update
    }
}

/// JSON equality that counts `1` and `1.0` as the same (Okta may store either).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

pub(super) fn update_fields(update: &ProfileUpdate) -> Vec<String> {
    let mut fields = Vec::new();
    for (name, set) in [
        ("login", update.login.is_some()),
        ("email", update.email.is_some()),
        ("first_name", update.first_name.is_some()),
        ("last_name", update.last_name.is_some()),
    ] {
        if set {
            fields.push(name.to_owned());
        }
    }
    fields.extend(update.extra.keys().map(|k| format!("attributes.{k}")));
    fields
}

/// Okta's default user schema: login and email at most 100 characters, names at
/// most 50.
const LOGIN_MAX: usize = 100;
const NAME_MAX: usize = 50;
const ATTRIBUTES_MAX: usize = 50;
const ATTRIBUTE_TEXT_MAX: usize = 1024;
/// Okta's own names, which are fields of the request rather than attributes.
const RESERVED: [&str; 4] = ["login", "email", "firstName", "lastName"];

/// `attributes`: further Okta profile attributes by their Okta name.
pub(crate) fn attributes_schema() -> Schema {
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .max_length(Some(ATTRIBUTE_TEXT_MAX))
        .build();
    let mut object = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "Further Okta profile attributes by their Okta name (e.g. `department`, \
             `mobilePhone`, custom attributes): strings (at most 1024 characters), numbers, \
             booleans, or `null` to clear one. At most 50; `login`, `email`, `firstName` \
             and `lastName` are fields of the request, not attributes.",
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            value,
        )))))
        .max_properties(Some(ATTRIBUTES_MAX))
        .build();
    object.property_names = Some(Box::new(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some("^[A-Za-z][A-Za-z0-9_]{0,49}$"))
            .build(),
    )));
    Schema::Object(object)
}

/// Declares a request body that carries a profile: the body's own fields, then the
/// profile's, whose constraints (Okta's default user schema, as the spec states them and
/// [`validate_profile`] checks them) are written here once for every body that has
/// them: the single sync's and a batch job's user.
macro_rules! profile_body {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $($(#[$field_attr:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $($(#[$field_attr])* pub $field: $ty,)*
            /// Okta login, usually the e-mail address; 1 to 100 characters, not blank.
            #[schema(min_length = 1, max_length = 100, pattern = "[^ \\t\\r\\n]")]
            pub login: String,
            /// 3 to 100 characters: one `@`, no spaces.
            #[schema(
                min_length = 3,
                max_length = 100,
                pattern = "^[^@ \\t\\r\\n]+@[^@ \\t\\r\\n]+$"
            )]
            pub email: String,
            /// 1 to 50 characters, not blank.
            #[schema(min_length = 1, max_length = 50, pattern = "[^ \\t\\r\\n]")]
            pub first_name: String,
            /// 1 to 50 characters, not blank.
            #[schema(min_length = 1, max_length = 50, pattern = "[^ \\t\\r\\n]")]
            pub last_name: String,
            #[schema(schema_with = $crate::sync::profile::attributes_schema)]
            #[serde(default)]
            pub attributes: Option<::serde_json::Map<String, ::serde_json::Value>>,
        }
    };
}

pub(crate) use profile_body;

profile_body! {
    /// The profile fields of a sync request (single or batch entry).
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"login": "ada@example.com", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "attributes": {"department": "R&D"}}))]
    pub struct SyncUserRequest {}
}

/// "Blank" as the schema's patterns say it (space, tab, CR, LF), so that the spec and
/// the server agree exactly on what they accept.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Checks a profile; `prefix` is prepended to field names (`users[3].`).
pub(crate) fn validate_profile(
    prefix: &str,
    login: String,
    email: String,
    first_name: String,
    last_name: String,
    attributes: Option<Map<String, Value>>,
    errors: &mut Vec<FieldError>,
) -> Option<UserProfile> {
    let before = errors.len();
    let mut text = |field: &str, value: &str, min: usize, max: usize| {
        let n = value.chars().count();
        if value.chars().all(is_blank) {
            errors.push(FieldError::new(
                format!("{prefix}{field}"),
                "must not be blank",
            ));
        } else if n < min || n > max {
            errors.push(FieldError::new(
                format!("{prefix}{field}"),
                format!("must be {min} to {max} characters"),
            ));
        }
    };
    text("login", &login, 1, LOGIN_MAX);
    text("email", &email, 3, LOGIN_MAX);
    text("first_name", &first_name, 1, NAME_MAX);
    text("last_name", &last_name, 1, NAME_MAX);
    if !email.chars().all(is_blank) {
        let ok = email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
            && !email.chars().any(is_blank);
        if !ok {
            errors.push(FieldError::new(
                format!("{prefix}email"),
                "must be an e-mail address (one @, no spaces)",
            ));
        }
    }
    let attributes = attributes.unwrap_or_default();
    if attributes.len() > ATTRIBUTES_MAX {
        errors.push(FieldError::new(
            format!("{prefix}attributes"),
            format!("at most {ATTRIBUTES_MAX} attributes"),
        ));
    }
    for (name, value) in &attributes {
        let field = format!("{prefix}attributes.{name}");
        let valid_name = name.len() <= 50
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            errors.push(FieldError::new(
                field,
                "attribute names are 1 to 50 ASCII letters, digits or _, starting with a letter",
            ));
            continue;
        }
        if RESERVED.contains(&name.as_str()) {
            errors.push(FieldError::new(
                field,
                "is a field of the request (login, email, first_name, last_name), not an attribute",
            ));
            continue;
        }
        match value {
            Value::String(s) if s.chars().count() > ATTRIBUTE_TEXT_MAX => errors.push(
                FieldError::new(field, format!("at most {ATTRIBUTE_TEXT_MAX} characters")),
            ),
            Value::Array(_) | Value::Object(_) => errors.push(FieldError::new(
                field,
                "must be a string, number, boolean or null",
            )),
            _ => {}
        }
    }
    (errors.len() == before).then_some(UserProfile {
        login,
        email,
        first_name,
        last_name,
        attributes,
    })
}

impl SyncUserRequest {
    pub(crate) fn into_profile(self) -> Result<UserProfile, Vec<FieldError>> {
        let mut errors = Vec::new();
        validate_profile(
            "",
            self.login,
            self.email,
            self.first_name,
            self.last_name,
            self.attributes,
            &mut errors,
        )
        .ok_or(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile() -> UserProfile {
        UserProfile {
            login: "a@example.com".into(),
            email: "a@example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            attributes: json!({"department": "R&D", "costCenter": 7, "nickName": null})
                .as_object()
                .unwrap()
                .clone(),
        }
    }
    #[test]
    fn diff_compares_only_what_efs_sends() {
        let okta: OktaUserProfile = serde_json::from_value(json!({
            "login": "a@example.com", "email": "a@example.com", "firstName": "Ada",
            "lastName": "King", "costCenter": 7.0, "department": "R&D", "title": "Countess"
        }))
        .unwrap();
        let update = profile().diff(&okta);
        assert_eq!(
            update.last_name.as_deref(),
            Some("King").map(|_| "Lovelace")
        );
        assert!(update.login.is_none() && update.email.is_none() && update.first_name.is_none());
        assert!(
            update.extra.is_empty(),
            "7 == 7.0, null == absent: {:?}",
            update.extra
        );
        assert_eq!(update_fields(&update), ["last_name"]);
    }

    fn check(body: Value) -> Result<UserProfile, Vec<String>> {
        let req: SyncUserRequest = serde_json::from_value(body).unwrap();
        req.into_profile()
            .map_err(|e| e.into_iter().filter_map(|f| f.field).collect())
    }

    #[test]
    fn profiles_are_checked_field_by_field() {
        let ok = json!({"login": "a@x.io", "email": "a@x.io", "first_name": "A", "last_name": "B"});
        assert!(check(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad["email"] = json!("no-at-sign");
        bad["first_name"] = json!("  ");
        bad["attributes"] = json!({"login": "x", "9bad": 1, "nested": {"a": 1}, "fine": "ok"});
        assert_eq!(
            check(bad).unwrap_err(),
            vec![
                "first_name",
                "email",
                "attributes.9bad",
                "attributes.login",
                "attributes.nested"
            ]
        );
    }
}
