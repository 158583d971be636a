//! A user's profile as EFS-Admin sends it, and what must change in Okta for Okta's
//! copy to say the same.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
}
