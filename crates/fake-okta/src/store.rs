//! The fake org's state: users, groups, memberships, and their Okta JSON renderings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::{OktaError, DUPLICATE_CAUSE};
use super::ids;

/// Okta's `UserStatus` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Staged,
    Provisioned,
    Active,
    Recovery,
    PasswordExpired,
    LockedOut,
    Suspended,
    Deprovisioned,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "STAGED",
            Self::Provisioned => "PROVISIONED",
            Self::Active => "ACTIVE",
            Self::Recovery => "RECOVERY",
            Self::PasswordExpired => "PASSWORD_EXPIRED",
            Self::LockedOut => "LOCKED_OUT",
            Self::Suspended => "SUSPENDED",
            Self::Deprovisioned => "DEPROVISIONED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Staged,
            Self::Provisioned,
            Self::Active,
            Self::Recovery,
            Self::PasswordExpired,
            Self::LockedOut,
            Self::Suspended,
            Self::Deprovisioned,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Okta's `GroupType` enum. Only `OKTA_GROUP` memberships can be changed through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    OktaGroup,
    AppGroup,
    BuiltIn,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OktaGroup => "OKTA_GROUP",
            Self::AppGroup => "APP_GROUP",
            Self::BuiltIn => "BUILT_IN",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub seq: u64,
    pub id: String,
    pub status: UserStatus,
    pub created: DateTime<Utc>,
    pub activated: Option<DateTime<Utc>>,
    pub status_changed: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub password_changed: Option<DateTime<Utc>>,
    pub profile: Map<String, Value>,
    pub has_password: bool,
    pub recovery_question: Option<String>,
    pub provider: (String, String),
    /// Admin role assignments (`GET /api/v1/users/{id}/roles`), as Okta renders them.
    pub admin_roles: Vec<Value>,
    /// Bumped on every change; feeds the ETag.
    pub version: u64,
}

impl User {
    pub(crate) fn login(&self) -> &str {
        self.profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn etag(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.id, self.version, self.last_updated).hash(&mut h);
        format!("W/\"{:016x}\"", h.finish())
    }

    fn touch(&mut self) {
        self.last_updated = ids::now();
        self.version += 1;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub seq: u64,
    pub id: String,
    pub group_type: GroupType,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub last_membership_updated: DateTime<Utc>,
    pub profile: Map<String, Value>,
    /// Membership sequence number → user id; the sequence orders member listings and
    /// backs their cursors.
    pub members: BTreeMap<u64, String>,
}

/// Single resources carry their full `_links`; collections carry only `self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Render {
    Full,
    Collection,
}

/// What a create request asks for, after parsing.
pub(crate) struct NewUser {
    pub profile: Map<String, Value>,
    pub status: UserStatus,
    pub has_password: bool,
    pub recovery_question: Option<String>,
    pub provider: (String, String),
}

pub(crate) struct Store {
    base_url: String,
    next_seq: u64,
    users: BTreeMap<u64, User>,
    user_seq: HashMap<String, u64>,
    /// Folded login → user: a lookup by login is one probe, as in Okta, rather than a
    /// scan that would make the fake the bottleneck with 10,000 users.
    login_seq: HashMap<String, u64>,
    groups: BTreeMap<u64, Group>,
    group_seq: HashMap<String, u64>,
    everyone: Option<String>,
    user_type_id: String,
    schema_id: String,
}

/// Profile attributes the spec declares non-nullable: a `null` sent for them removes
/// them instead of storing a value the schema forbids.
const NON_NULLABLE_OPTIONAL: &[&str] = &["department", "employeeNumber", "locale"];

impl Store {
    pub(crate) fn new(base_url: &str, everyone_group: bool) -> Self {
        let mut store = Self {
            base_url: base_url.to_owned(),
            next_seq: 1,
            users: BTreeMap::new(),
            user_seq: HashMap::new(),
            login_seq: HashMap::new(),
            groups: BTreeMap::new(),
            group_seq: HashMap::new(),
            everyone: None,
            user_type_id: ids::user_type_id(),
            schema_id: format!("osc{}", ids::random_alnum(17)),
        };
        if everyone_group {
            let mut profile = Map::new();
            profile.insert("name".into(), json!("Everyone"));
            profile.insert(
                "description".into(),
                json!("All users in your organization"),
            );
            let id = store.insert_group(profile, GroupType::BuiltIn);
            store.everyone = Some(id);
        }
        store
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    // ---- users ---------------------------------------------------------------------

    pub(crate) fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub(crate) fn user_ids(&self) -> Vec<String> {
        self.users.values().map(|u| u.id.clone()).collect()
    }

    /// By id only (membership endpoints take ids, not logins).
    pub(crate) fn user_by_id(&self, id: &str) -> Option<&User> {
        self.user_seq.get(id).and_then(|s| self.users.get(s))
    }

    /// By id, then login (ignoring case and diacritics), then unambiguous login short
    /// name (the part before `@`), like `GET /api/v1/users/{idOrLogin}`.
    pub(crate) fn find_user(&self, key: &str) -> Option<&User> {
        self.find_user_seq(key).and_then(|s| self.users.get(&s))
    }

    pub(crate) fn find_user_seq(&self, key: &str) -> Option<u64> {
        if let Some(s) = self.user_seq.get(key) {
            return Some(*s);
        }
        let folded = fold_login(key);
        if let Some(s) = self.login_seq.get(&folded) {
            return Some(*s);
        }
        if !key.contains('@') {
            let mut matches = self.users.values().filter(|u| {
                u.login()
                    .split_once('@')
                    .is_some_and(|(short, _)| fold_login(short) == folded)
            });
            if let (Some(u), None) = (matches.next(), matches.next()) {
                return Some(u.seq);
            }
        }
        None
    }

    pub(crate) fn user(&self, seq: u64) -> Option<&User> {
        self.users.get(&seq)
    }

    /// Logins are unique in the org ignoring case and diacritics; deactivated users keep
    /// theirs until deleted.
    pub(crate) fn login_taken(&self, login: &str, except: Option<u64>) -> bool {
        self.login_seq
            .get(&fold_login(login))
            .is_some_and(|s| Some(*s) != except)
    }

    pub(crate) fn insert_user(&mut self, new: NewUser) -> Result<u64, OktaError> {
        let login = new
            .profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if self.login_taken(&login, None) {
            return Err(OktaError::validation(vec![(
                "login".into(),
                DUPLICATE_CAUSE.into(),
            )]));
        }
        let now = ids::now();
        let seq = self.seq();
        let mut profile = new.profile;
        clean_profile(&mut profile);
        // Okta's default schema always returns these two, null when unset.
        profile.entry("mobilePhone").or_insert(Value::Null);
        profile.entry("secondEmail").or_insert(Value::Null);
        let status = new.status;
        let user = User {
            seq,
            id: ids::user_id(),
            status,
            created: now,
            activated: matches!(status, UserStatus::Active | UserStatus::PasswordExpired)
                .then_some(now),
            status_changed: (status != UserStatus::Staged).then_some(now),
            last_login: None,
            last_updated: now,
            password_changed: new.has_password.then_some(now),
            profile,
            has_password: new.has_password,
            recovery_question: new.recovery_question,
            provider: new.provider,
            admin_roles: Vec::new(),
            version: 1,
        };
        self.user_seq.insert(user.id.clone(), seq);
        self.login_seq.insert(fold_login(user.login()), seq);
        self.users.insert(seq, user);
        Ok(seq)
    }

    /// Test setup: a user in any status, bypassing the API's validation except login
    /// uniqueness.
    pub(crate) fn seed_user(
        &mut self,
        login: &str,
        email: &str,
        first: &str,
        last: &str,
        status: UserStatus,
    ) -> Result<String, OktaError> {
        let mut profile = Map::new();
        profile.insert("firstName".into(), json!(first));
        profile.insert("lastName".into(), json!(last));
        profile.insert("email".into(), json!(email));
        profile.insert("login".into(), json!(login));
        let has_password = !matches!(status, UserStatus::Staged | UserStatus::Provisioned);
        let seq = self.insert_user(NewUser {
            profile,
            status,
            has_password,
            recovery_question: None,
            provider: ("OKTA".into(), "OKTA".into()),
        })?;
        Ok(self.users[&seq].id.clone())
    }

    pub(crate) fn force_status(&mut self, id: &str, status: UserStatus) -> bool {
        match self.user_seq.get(id).copied() {
            Some(seq) => {
                self.set_status(seq, status);
                true
            }
            None => false,
        }
    }

    /// Moves a user to a new status with Okta's timestamp bookkeeping.
    pub(crate) fn set_status(&mut self, seq: u64, status: UserStatus) {
        if let Some(u) = self.users.get_mut(&seq) {
            let now = ids::now();
            if u.status != status {
                u.status_changed = Some(now);
            }
            if status == UserStatus::Active
                && matches!(
                    u.status,
                    UserStatus::Staged | UserStatus::Provisioned | UserStatus::Deprovisioned
                )
            {
                u.activated = Some(now);
            }
            u.status = status;
            u.touch();
        }
    }

    /// Replaces (PUT) or merges (POST) the profile, after validation by the caller.
    pub(crate) fn update_profile(&mut self, seq: u64, mut profile: Map<String, Value>) {
        if let Some(u) = self.users.get_mut(&seq) {
            clean_profile(&mut profile);
            profile.entry("mobilePhone").or_insert(Value::Null);
            profile.entry("secondEmail").or_insert(Value::Null);
            let old = fold_login(u.login());
            u.profile = profile;
            u.touch();
            let new = fold_login(u.login());
            if new != old {
                self.login_seq.remove(&old);
                self.login_seq.insert(new, seq);
            }
        }
    }

    pub(crate) fn set_password(&mut self, seq: u64) {
        if let Some(u) = self.users.get_mut(&seq) {
            u.has_password = true;
            u.password_changed = Some(ids::now());
            u.touch();
        }
    }

    pub(crate) fn set_recovery_question(&mut self, seq: u64, question: String) {
        if let Some(u) = self.users.get_mut(&seq) {
            u.recovery_question = Some(question);
            u.touch();
        }
    }

    /// Permanent deletion: the user leaves every group and its login becomes free.
    /// Assigns the standard admin role `role_type` (`SUPER_ADMIN`, `ORG_ADMIN`,
    /// `USER_ADMIN`…) to the user, as the Admin Console does; false for an unknown user.
    pub(crate) fn grant_admin_role(&mut self, user_id: &str, role_type: &str) -> bool {
        let Some(seq) = self.find_user_seq(user_id) else {
            return false;
        };
        let now = ids::timestamp(&Utc::now());
        let Some(user) = self.users.get_mut(&seq) else {
            return false;
        };
        let id = ids::random_alnum(20);
        user.admin_roles.push(json!({
            "id": id,
            "label": role_label(role_type),
            "type": role_type,
            "status": "ACTIVE",
            "created": now,
            "lastUpdated": now,
            "assignmentType": "USER",
            "_links": {
                "assignee": {"href": format!("{}/api/v1/users/{}", self.base_url, user.id)}
            }
        }));
        true
    }

    pub(crate) fn delete_user(&mut self, seq: u64) {
        if let Some(u) = self.users.remove(&seq) {
            self.user_seq.remove(&u.id);
            self.login_seq.remove(&fold_login(u.login()));
            let now = ids::now();
            for g in self.groups.values_mut() {
                let before = g.members.len();
                g.members.retain(|_, id| *id != u.id);
                if g.members.len() != before {
                    g.last_membership_updated = now;
                }
            }
        }
    }

    pub(crate) fn render_user(&self, u: &User, render: Render) -> Value {
        let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(ids::timestamp);
        let mut credentials = Map::new();
        if u.has_password {
            credentials.insert("password".into(), json!({}));
        }
        if let Some(q) = &u.recovery_question {
            credentials.insert("recovery_question".into(), json!({ "question": q }));
        }
        credentials.insert(
            "provider".into(),
            json!({"type": u.provider.0, "name": u.provider.1}),
        );
        json!({
            "id": u.id,
            "status": u.status.as_str(),
            "created": ids::timestamp(&u.created),
            "activated": ts(&u.activated),
            "statusChanged": ts(&u.status_changed),
            "lastLogin": ts(&u.last_login),
            "lastUpdated": ids::timestamp(&u.last_updated),
            "passwordChanged": ts(&u.password_changed),
            "type": {"id": self.user_type_id},
            "profile": u.profile,
            "credentials": credentials,
            "_links": self.user_links(u, render),
        })
    }

    /// Lifecycle links follow what the user's status allows (Okta's lifecycle operations); the STAGED
    /// set matches a recorded Okta response.
    fn user_links(&self, u: &User, render: Render) -> Value {
        let me = format!("{}/api/v1/users/{}", self.base_url, u.id);
        let mut links = Map::new();
        links.insert("self".into(), json!({ "href": me }));
        if render == Render::Collection {
            return Value::Object(links);
        }
        let mut post = |rel: &str, path: &str| {
            links.insert(
                rel.into(),
                json!({"href": format!("{me}{path}"), "method": "POST"}),
            );
        };
        use UserStatus::*;
        match u.status {
            Staged => post("activate", "/lifecycle/activate"),
            Provisioned => {
                post("reactivate", "/lifecycle/reactivate");
                post("resetPassword", "/lifecycle/reset_password");
                post("deactivate", "/lifecycle/deactivate");
            }
            Active => {
                post("suspend", "/lifecycle/suspend");
                post("resetPassword", "/lifecycle/reset_password");
                post("expirePassword", "/lifecycle/expire_password");
                post("resetFactors", "/lifecycle/reset_factors");
                post("deactivate", "/lifecycle/deactivate");
                if u.has_password {
                    post("changePassword", "/credentials/change_password");
                    post(
                        "changeRecoveryQuestion",
                        "/credentials/change_recovery_question",
                    );
                    post("forgotPassword", "/credentials/forgot_password");
                }
            }
            Recovery => {
                post("reactivate", "/lifecycle/reactivate");
                post("resetPassword", "/lifecycle/reset_password");
                post("deactivate", "/lifecycle/deactivate");
            }
            PasswordExpired => {
                post("resetPassword", "/lifecycle/reset_password");
                post("resetFactors", "/lifecycle/reset_factors");
                post("deactivate", "/lifecycle/deactivate");
            }
            LockedOut => {
                post("unlock", "/lifecycle/unlock");
                post("resetPassword", "/lifecycle/reset_password");
                post("deactivate", "/lifecycle/deactivate");
            }
            Suspended => {
                post("unsuspend", "/lifecycle/unsuspend");
                post("deactivate", "/lifecycle/deactivate");
            }
            Deprovisioned => post("activate", "/lifecycle/activate"),
        }
        links.insert(
            "schema".into(),
            json!({"href": format!("{}/api/v1/meta/schemas/user/{}", self.base_url, self.schema_id)}),
        );
        links.insert(
            "type".into(),
            json!({"href": format!("{}/api/v1/meta/types/user/{}", self.base_url, self.user_type_id)}),
        );
        Value::Object(links)
    }

    /// The value of a `filter`/`search` attribute on a user.
    pub(crate) fn user_attr(&self, u: &User, attr: &str) -> Option<Value> {
        let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(|t| json!(ids::timestamp(t)));
        match attr {
            "id" => Some(json!(u.id)),
            "status" => Some(json!(u.status.as_str())),
            "created" => Some(json!(ids::timestamp(&u.created))),
            "activated" => ts(&u.activated),
            "statusChanged" => ts(&u.status_changed),
            "lastUpdated" => Some(json!(ids::timestamp(&u.last_updated))),
            "lastLogin" => ts(&u.last_login),
            "passwordChanged" => ts(&u.password_changed),
            "type.id" => Some(json!(self.user_type_id)),
            _ => attr
                .strip_prefix("profile.")
                .and_then(|name| u.profile.get(name).cloned()),
        }
    }

    // ---- groups --------------------------------------------------------------------

    fn insert_group(&mut self, profile: Map<String, Value>, group_type: GroupType) -> String {
        let now = ids::now();
        let seq = self.seq();
        let id = ids::group_id();
        self.group_seq.insert(id.clone(), seq);
        self.groups.insert(
            seq,
            Group {
                seq,
                id: id.clone(),
                group_type,
                created: now,
                last_updated: now,
                last_membership_updated: now,
                profile,
                members: BTreeMap::new(),
            },
        );
        id
    }

    /// Group names are unique in the org (case-insensitively).
    pub(crate) fn group_name_taken(&self, name: &str, except: Option<u64>) -> bool {
        let name = name.to_lowercase();
        self.groups.values().any(|g| {
            Some(g.seq) != except
                && g.profile
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_lowercase() == name)
        })
    }

    pub(crate) fn create_group(
        &mut self,
        name: &str,
        description: Option<&str>,
        group_type: GroupType,
    ) -> Result<String, OktaError> {
        if self.group_name_taken(name, None) {
            return Err(OktaError::validation(vec![(
                "name".into(),
                DUPLICATE_CAUSE.into(),
            )]));
        }
        let mut profile = Map::new();
        profile.insert("name".into(), json!(name));
        if let Some(d) = description {
            profile.insert("description".into(), json!(d));
        }
        Ok(self.insert_group(profile, group_type))
    }

    pub(crate) fn create_group_with_profile(&mut self, profile: Map<String, Value>) -> String {
        self.insert_group(profile, GroupType::OktaGroup)
    }

    pub(crate) fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.group_seq.get(id).and_then(|s| self.groups.get(s))
    }

    pub(crate) fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        let seq = *self.group_seq.get(id)?;
        self.groups.get_mut(&seq)
    }

    pub(crate) fn delete_group(&mut self, id: &str) {
        if let Some(seq) = self.group_seq.remove(id) {
            self.groups.remove(&seq);
        }
    }

    fn is_everyone(&self, g: &Group) -> bool {
        self.everyone.as_deref() == Some(g.id.as_str())
    }

    /// Members in listing order with their cursor keys. `Everyone` contains every user.
    pub(crate) fn members(&self, g: &Group) -> Vec<(u64, &User)> {
        if self.is_everyone(g) {
            return self.users.values().map(|u| (u.seq, u)).collect();
        }
        g.members
            .iter()
            .filter_map(|(k, id)| self.user_by_id(id).map(|u| (*k, u)))
            .collect()
    }

    pub(crate) fn member_ids(&self, group_id: &str) -> Vec<String> {
        self.group(group_id)
            .map(|g| {
                self.members(g)
                    .into_iter()
                    .map(|(_, u)| u.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn is_member(&self, g: &Group, user_id: &str) -> bool {
        self.is_everyone(g) || g.members.values().any(|id| id == user_id)
    }

    /// Adds a member; a no-op when already a member (Okta answers 204 either way).
    pub(crate) fn add_member(&mut self, group_id: &str, user_id: &str) {
        let seq = self.seq();
        if let Some(g) = self.group_mut(group_id) {
            if !g.members.values().any(|id| id == user_id) {
                g.members.insert(seq, user_id.to_owned());
                g.last_membership_updated = ids::now();
            }
        }
    }

    pub(crate) fn remove_member(&mut self, group_id: &str, user_id: &str) {
        if let Some(g) = self.group_mut(group_id) {
            let before = g.members.len();
            g.members.retain(|_, id| id != user_id);
            if g.members.len() != before {
                g.last_membership_updated = ids::now();
            }
        }
    }

    pub(crate) fn force_add_member(&mut self, group_id: &str, user_id: &str) -> bool {
        if self.group(group_id).is_none() || self.user_by_id(user_id).is_none() {
            return false;
        }
        self.add_member(group_id, user_id);
        true
    }

    /// The groups a user belongs to, `Everyone` included, in group creation order.
    pub(crate) fn user_groups(&self, user_id: &str) -> Vec<&Group> {
        self.groups
            .values()
            .filter(|g| self.is_member(g, user_id))
            .collect()
    }

    pub(crate) fn render_group(&self, g: &Group, stats: bool) -> Value {
        let me = format!("{}/api/v1/groups/{}", self.base_url, g.id);
        let mut links = json!({
            "logo": [
                {"name": "medium", "href": format!("{}/assets/img/logos/groups/okta-medium.png", self.base_url), "type": "image/png"},
                {"name": "large", "href": format!("{}/assets/img/logos/groups/okta-large.png", self.base_url), "type": "image/png"},
            ],
            "users": {"href": format!("{me}/users")},
            "apps": {"href": format!("{me}/apps")},
        });
        let object_class = match g.group_type {
            GroupType::AppGroup => {
                links["source"] =
                    json!({"href": format!("{}/api/v1/apps/0oa{}", self.base_url, &g.id[3..])});
                "okta:windows_security_principal"
            }
            _ => "okta:user_group",
        };
        let mut group = json!({
            "id": g.id,
            "created": ids::timestamp(&g.created),
            "lastUpdated": ids::timestamp(&g.last_updated),
            "lastMembershipUpdated": ids::timestamp(&g.last_membership_updated),
            "objectClass": [object_class],
            "type": g.group_type.as_str(),
            "profile": g.profile,
            "_links": links,
        });
        if stats {
            group["_embedded"] = json!({"stats": {"usersCount": self.members(g).len()}});
        }
        group
    }

    pub(crate) fn group_attr(&self, g: &Group, attr: &str) -> Option<Value> {
        match attr {
            "id" => Some(json!(g.id)),
            "type" => Some(json!(g.group_type.as_str())),
            "created" => Some(json!(ids::timestamp(&g.created))),
            "lastUpdated" => Some(json!(ids::timestamp(&g.last_updated))),
            "lastMembershipUpdated" => Some(json!(ids::timestamp(&g.last_membership_updated))),
            _ => attr
                .strip_prefix("profile.")
                .and_then(|name| g.profile.get(name).cloned()),
        }
    }
}

fn clean_profile(profile: &mut Map<String, Value>) {
    for key in NON_NULLABLE_OPTIONAL {
        if profile.get(*key).is_some_and(Value::is_null) {
            profile.remove(*key);
        }
    }
}

/// Okta compares logins ignoring case and diacritical marks.
/// Okta's label of a standard admin role.
fn role_label(role_type: &str) -> &'static str {
    match role_type {
        "SUPER_ADMIN" => "Super Administrator",
        "ORG_ADMIN" => "Organizational Administrator",
        "USER_ADMIN" => "Group Administrator",
        "GROUP_MEMBERSHIP_ADMIN" => "Group Membership Administrator",
        "HELP_DESK_ADMIN" => "Help Desk Administrator",
        "APP_ADMIN" => "Application Administrator",
        "READ_ONLY_ADMIN" => "Read-only Administrator",
        _ => "Custom Role",
    }
}

pub(crate) fn fold_login(login: &str) -> String {
    let mut out = String::with_capacity(login.len());
    for c in login.chars().flat_map(char::to_lowercase) {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => 'i',
            'ł' | 'ľ' => 'l',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ř' => 'r',
            'ś' | 'š' | 'ş' => 's',
            'ť' | 'ţ' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            other => other,
        };
        out.push(base);
    }
    out
}

struct FieldRule {
    name: &'static str,
    required: bool,
    min: usize,
    max: usize,
    email: bool,
}

const fn rule(
    name: &'static str,
    required: bool,
    min: usize,
    max: usize,
    email: bool,
) -> FieldRule {
    FieldRule {
        name,
        required,
        min,
        max,
        email,
    }
}

/// The default user profile's constraints, in the order Okta reports them.
const RULES: &[FieldRule] = &[
    rule("login", true, 5, 100, false),
    rule("email", true, 5, 100, true),
    rule("firstName", true, 1, 50, false),
    rule("lastName", true, 1, 50, false),
    rule("secondEmail", false, 0, 100, true),
    rule("mobilePhone", false, 0, 100, false),
    rule("primaryPhone", false, 0, 100, false),
    rule("countryCode", false, 0, 2, false),
    rule("city", false, 0, 128, false),
    rule("state", false, 0, 128, false),
    rule("zipCode", false, 0, 50, false),
    rule("streetAddress", false, 0, 1024, false),
    rule("postalAddress", false, 0, 4096, false),
];

/// The properties of Okta's default user profile (the spec's `UserProfile`).
const DEFAULT_PROFILE_PROPERTIES: &[&str] = &[
    "city",
    "costCenter",
    "countryCode",
    "department",
    "displayName",
    "division",
    "email",
    "employeeNumber",
    "firstName",
    "honorificPrefix",
    "honorificSuffix",
    "lastName",
    "locale",
    "login",
    "manager",
    "managerId",
    "middleName",
    "mobilePhone",
    "nickName",
    "organization",
    "postalAddress",
    "preferredLanguage",
    "primaryPhone",
    "profileUrl",
    "secondEmail",
    "state",
    "streetAddress",
    "timezone",
    "title",
    "userType",
    "zipCode",
];

/// Refuses a profile that sets a property the org's schema lacks (neither Okta's
/// default profile nor a declared custom one), as Okta does before it looks at any
/// value: one cause, for the first such property. `object` is Okta's name for what is
/// being written (`newUser`, `user`).
pub(crate) fn check_profile_properties(
    given: &Map<String, Value>,
    custom: &BTreeSet<String>,
    object: &str,
) -> Result<(), OktaError> {
    match given
        .keys()
        .find(|k| !DEFAULT_PROFILE_PROPERTIES.contains(&k.as_str()) && !custom.contains(*k))
    {
        Some(undefined) => Err(OktaError::undefined_property(object, undefined)),
        None => Ok(()),
    }
}

/// Checks a complete profile; the error names the first failing field and lists every
/// problem as a cause, as Okta does.
pub(crate) fn validate_profile(
    profile: &Map<String, Value>,
    require_email_login: bool,
) -> Result<(), OktaError> {
    let mut causes: Vec<(String, String)> = Vec::new();
    for r in RULES {
        let value = profile.get(r.name);
        let text = match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                causes.push((r.name.into(), "Does not match required type".into()));
                continue;
            }
        };
        let text = match text {
            Some(t) if !t.trim().is_empty() => t,
            _ => {
                if r.required {
                    causes.push((r.name.into(), "The field cannot be left blank".into()));
                }
                continue;
            }
        };
        let len = text.chars().count();
        if len < r.min {
            causes.push((r.name.into(), "The field is too short".into()));
        } else if len > r.max {
            causes.push((r.name.into(), "The field is too long".into()));
        } else if r.email && !looks_like_email(text) {
            causes.push((r.name.into(), "Does not match required pattern".into()));
        } else if r.name == "login" && require_email_login && !looks_like_email(text) {
            causes.push((
                r.name.into(),
                "Username must be in the form of an email address".into(),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(OktaError::validation(causes))
    }
}

fn looks_like_email(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !domain.contains('@')
        && domain.split('.').all(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_folding_ignores_case_and_diacritics() {
        assert_eq!(
            fold_login("Isáàc.Bröck@Example.com"),
            "isaac.brock@example.com"
        );
    }

    #[test]
    fn validation_names_first_field_and_lists_causes() {
        let mut p = Map::new();
        p.insert("email".into(), json!("not-an-email"));
        p.insert("firstName".into(), json!("A"));
        let err = validate_profile(&p, true).unwrap_err();
        assert_eq!(err.summary, "Api validation failed: login");
        assert_eq!(
            err.causes,
            vec![
                "login: The field cannot be left blank",
                "email: Does not match required pattern",
                "lastName: The field cannot be left blank",
            ]
        );
    }

    #[test]
    fn properties_outside_the_schema_are_refused_naming_the_object() {
        let mut p = Map::new();
        p.insert("department".into(), json!("R&D"));
        p.insert("notValid".into(), json!("x"));
        let mut custom = BTreeSet::new();
        let err = check_profile_properties(&p, &custom, "newUser").unwrap_err();
        assert_eq!(err.summary, "Api validation failed: newUser");
        assert_eq!(
            err.causes,
            vec!["Property name 'notValid' is not defined in profile"]
        );
        custom.insert("notValid".to_owned());
        assert!(check_profile_properties(&p, &custom, "user").is_ok());
    }

    #[test]
    fn short_name_lookup_requires_uniqueness() {
        let mut s = Store::new("http://x", true);
        let a = s
            .seed_user("ann@a.com", "ann@a.com", "A", "A", UserStatus::Active)
            .unwrap();
        assert_eq!(s.find_user("ANN").map(|u| u.id.clone()), Some(a));
        s.seed_user("ann@b.com", "ann@b.com", "A", "B", UserStatus::Active)
            .unwrap();
        assert!(s.find_user("ann").is_none());
    }

    #[test]
    fn login_index_follows_renames_and_deletions() {
        let mut s = Store::new("http://x", true);
        let id = s
            .seed_user("Old@A.com", "old@a.com", "A", "A", UserStatus::Active)
            .unwrap();
        let seq = s.find_user_seq(&id).unwrap();
        assert!(s.login_taken("old@a.COM", None));
        assert!(!s.login_taken("old@a.com", Some(seq)));

        let mut profile = s.user(seq).unwrap().profile.clone();
        profile.insert("login".into(), json!("Néw@a.com"));
        s.update_profile(seq, profile);
        assert!(s.find_user("old@a.com").is_none());
        assert!(!s.login_taken("old@a.com", None));
        assert_eq!(s.find_user("new@A.com").map(|u| u.id.clone()), Some(id));

        s.delete_user(seq);
        assert!(s.find_user("new@a.com").is_none());
        assert!(!s.login_taken("new@a.com", None));
        s.seed_user("new@a.com", "new@a.com", "B", "B", UserStatus::Active)
            .unwrap();
    }
}
