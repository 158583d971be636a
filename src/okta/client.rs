//! [`OktaClient`]: the operations efs-iam asks of Okta's Management API (users by id or
//! login, create, partial profile update, deactivate, group membership, member and
//! group listings), each a [`Call`] on its route that the [`Caller`] (`call.rs`) makes.
//! Built from an [`OktaClientConfig`] (see `settings.rs` for the environment).

use std::sync::Arc;
use std::time::Duration;

use backon::ExponentialBuilder;

use reqwest::{Method, Url};

use super::access_token::{AccessTokens, AuthFailure};
use super::call::Caller;
use super::credentials::{Credential, OktaAuth, Scheme};
use super::retry_policy::RetryPolicy;

use super::error::{OktaConfigError, OktaError};
use super::error_log::ErrorLog;
use super::exchange::{
    Call, Route, Transport, GROUP_GET, GROUP_MEMBER, GROUP_MEMBERS, USERS, USER_DEACTIVATE,
    USER_GET, USER_GROUPS, USER_ROLES, USER_UPDATE,
};
use super::governor::Governor;
use super::list_bound::ListBound;
use super::models::{
    Activation, NewUserProfile, OktaGroup, OktaGroupMember, OktaRole, OktaUser, OnMissing,
    ProfileUpdate, Removal,
};
use super::status::OktaStatus;
use crate::storage::ErrorLogStore;

/// Everything an [`OktaClient`] needs; [`OktaClientConfig::new`] fills in the defaults
/// that [`OktaSettings`] also uses.
#[derive(Debug, Clone)]
pub struct OktaClientConfig {
    /// `https://{org}.okta.com` (no path). Plain `http` is accepted for loopback hosts
    /// only, for the fake Okta.
    pub org_url: Url,
    pub auth: OktaAuth,
    /// Fraction of each rate-limit bucket efs-iam may use per window, in (0, 1].
    pub rate_share: f64,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// Per request attempt.
    pub timeout: Duration,
    /// Retries per call after a 429, 5xx, timeout or dropped connection.
    pub max_retries: u32,
    /// First backoff delay after a 5xx/timeout/connection failure (doubles each time,
    /// plus up to 100 % jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Random extra wait after a 429, so instances do not return at the same instant.
    pub rate_limit_jitter: Duration,
    /// Longest single wait after a 429 (guards against a nonsensical reset header).
    pub max_rate_limit_wait: Duration,
    /// `limit` for group member listings (Okta recommends 200).
    pub page_size: u32,
    /// Identical error answers within this window share their `iam_error_log` rows:
    /// the first answer's row and one row with the count.
    pub error_log_window: Duration,
}

impl OktaClientConfig {
    pub fn new(org_url: Url, auth: OktaAuth) -> Self {
        Self {
            org_url,
            auth,
            rate_share: 0.5,
            max_concurrency: 10,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            rate_limit_jitter: Duration::from_secs(1),
            max_rate_limit_wait: Duration::from_secs(120),
            page_size: 200,
            error_log_window: Duration::from_secs(60),
        }
    }
}

/// Client for Okta's Management API. Cheap to clone; clones share the governor, the
/// token cache and the connection pool.
#[derive(Clone)]
pub struct OktaClient {
    caller: Arc<Caller>,
    page_size: u32,
}

impl std::fmt::Debug for OktaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaClient")
            .field("org_url", &self.caller.org().as_str())
            .field("auth", &self.caller.tokens().kind())
            .finish_non_exhaustive()
    }
}

/// A path segment from a caller-supplied id; refused if it would change the path's
/// meaning (`""`, `.`, `..`).
fn segment<'a>(what: &str, value: &'a str) -> Result<&'a str, OktaError> {
    if value.trim().is_empty() || value == "." || value == ".." {
        return Err(OktaError::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(value)
}

impl OktaClient {
    /// Builds a client. `error_log` receives a row for every error answer from Okta,
    /// identical ones within `error_log_window` coalesced (see [`Self::flush_error_log`]);
    /// `None` keeps failures in the tracing log only.
    pub fn new(
        config: OktaClientConfig,
        error_log: Option<Arc<dyn ErrorLogStore>>,
    ) -> Result<Self, OktaConfigError> {
        let org =
            super::org_url::validate_org_url(&config.org_url).map_err(OktaConfigError::OrgUrl)?;
        if !(config.rate_share > 0.0 && config.rate_share <= 1.0) {
            return Err(OktaConfigError::Invalid(
                "rate share must be more than 0 and at most 1".into(),
            ));
        }
        if config.max_concurrency == 0 {
            return Err(OktaConfigError::Invalid(
                "max concurrency must be at least 1".into(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(OktaConfigError::Invalid(
                "timeout must be more than 0".into(),
            ));
        }
        if config.error_log_window.is_zero() {
            return Err(OktaConfigError::Invalid(
                "the error log window must be more than 0".into(),
            ));
        }
        if !(1..=1000).contains(&config.page_size) {
            return Err(OktaConfigError::Invalid(
                "page size must be 1 to 1000".into(),
            ));
        }
        match &config.auth {
            OktaAuth::ApiToken(token) => {
                use secrecy::ExposeSecret;
                let t = token.expose_secret();
                if t.trim().is_empty() {
                    return Err(OktaConfigError::ApiToken("is empty"));
                }
                if Credential::new(Scheme::Ssws, token).is_err() || t.trim() != t {
                    return Err(OktaConfigError::ApiToken(
                        "contains whitespace or characters not allowed in an HTTP header",
                    ));
                }
            }
            OktaAuth::PrivateKeyJwt(jwt) => {
                if jwt.client_id.trim().is_empty() {
                    return Err(OktaConfigError::Invalid("client id is empty".into()));
                }
                if jwt.scopes.is_empty() {
                    return Err(OktaConfigError::Scopes(
                        "at least one scope is needed".into(),
                    ));
                }
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("efs-iam/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(OktaConfigError::HttpClient)?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(config.backoff_min)
            .with_max_delay(config.backoff_max.max(config.backoff_min))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        let caller = Caller::new(
            Transport::new(http, org),
            AccessTokens::new(config.auth),
            Arc::new(
                Governor::new(config.rate_share, config.max_concurrency)
                    .with_reset_horizon(config.max_rate_limit_wait),
            ),
            error_log.map(|store| ErrorLog::new(store, config.error_log_window)),
            RetryPolicy {
                max_retries: config.max_retries,
                backoff,
                rate_limit_jitter: config.rate_limit_jitter,
                max_rate_limit_wait: config.max_rate_limit_wait,
            },
        );
        Ok(Self {
            caller: Arc::new(caller),
            page_size: config.page_size,
        })
    }

    /// Resolves the "maybe configured" client the service holds into one to call, or
    /// [`OktaError::NotConfigured`].
    pub fn require(client: Option<&OktaClient>) -> Result<&OktaClient, OktaError> {
        client.ok_or(OktaError::NotConfigured)
    }

    /// The org's base URL.
    pub fn org_url(&self) -> &Url {
        self.caller.org()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.caller.org().clone();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .clear()
            .extend(segments);
        url
    }

    /// `GET /api/v1/users/{id}`; `None` when Okta has no such user.
    pub async fn get_user(&self, id: &str) -> Result<Option<OktaUser>, OktaError> {
        let url = self.url(&["api", "v1", "users", segment("user id", id)?]);
        self.get_optional_user(url).await
    }

    /// Looks a user up by login (Okta compares logins ignoring case); `None` when there
    /// is none. Logins containing `/` cannot be used in the path of `GET /api/v1/users/{id}`, so those
    /// go through `search`, which Okta serves from an eventually consistent index: a
    /// user created a moment ago may not be found yet.
    pub async fn get_user_by_login(&self, login: &str) -> Result<Option<OktaUser>, OktaError> {
        let login = segment("login", login)?;
        if !login.contains('/') {
            let url = self.url(&["api", "v1", "users", login]);
            return self.get_optional_user(url).await;
        }
        let escaped = login.replace('\\', "\\\\").replace('"', "\\\"");
        let mut url = self.url(&["api", "v1", "users"]);
        url.query_pairs_mut()
            .append_pair("search", &format!("profile.login eq \"{escaped}\""))
            .append_pair("limit", "2");
        let call = Call::new(Method::GET, USERS, url);
        let ex = self.caller.execute(&call).await?;
        let users: Vec<OktaUser> = self.caller.decode(&call, &ex).await?;
        Ok(users
            .into_iter()
            .find(|u| u.profile.login.to_lowercase() == login.to_lowercase()))
    }

    async fn get_optional_user(&self, url: Url) -> Result<Option<OktaUser>, OktaError> {
        let call = Call::new(Method::GET, USER_GET, url).not_found_ok(true);
        let ex = self.caller.execute(&call).await?;
        if ex.status == 404 {
            return Ok(None);
        }
        self.caller.decode(&call, &ex).await.map(Some)
    }

    /// `POST /api/v1/users?activate=…`. A duplicate login fails with
    /// [`OktaError::Validation`] for which [`OktaError::is_duplicate_login`] is true; if
    /// an earlier attempt of this call timed out, that user may be the one this call
    /// created, so look it up by login before treating it as someone else's.
    pub async fn create_user(
        &self,
        profile: &NewUserProfile,
        activation: Activation,
    ) -> Result<OktaUser, OktaError> {
        let mut url = self.url(&["api", "v1", "users"]);
        let activate = matches!(activation, Activation::Activate);
        url.query_pairs_mut()
            .append_pair("activate", if activate { "true" } else { "false" });
        let body = serde_json::json!({ "profile": profile.to_json() });
        let call = Call::new(Method::POST, USERS, url).json(&body);
        let ex = self.caller.execute(&call).await?;
        self.caller.decode(&call, &ex).await
    }

    /// Partial profile update (`POST /api/v1/users/{id}`): fields not in `update` keep
    /// their values.
    pub async fn update_user_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
    ) -> Result<OktaUser, OktaError> {
        if update.is_empty() {
            return Err(OktaError::InvalidInput(
                "a profile update needs at least one field".into(),
            ));
        }
        let url = self.url(&["api", "v1", "users", segment("user id", id)?]);
        let body = serde_json::json!({ "profile": update.to_json() });
        let call = Call::new(Method::POST, USER_UPDATE, url).json(&body);
        let ex = self.caller.execute(&call).await?;
        self.caller.decode(&call, &ex).await
    }

    /// `POST /api/v1/users/{id}/lifecycle/deactivate` (no email). Okta answers 200 `{}`
    /// or 204; both mean done. Deactivating a deprovisioned user fails with
    /// [`OktaError::ForbiddenState`].
    pub async fn deactivate_user(&self, id: &str) -> Result<(), OktaError> {
        let url = self.url(&[
            "api",
            "v1",
            "users",
            segment("user id", id)?,
            "lifecycle",
            "deactivate",
        ]);
        self.caller
            .execute(&Call::new(Method::POST, USER_DEACTIVATE, url))
            .await?;
        Ok(())
    }

    fn group_member_url(&self, group_id: &str, user_id: &str) -> Result<Url, OktaError> {
        Ok(self.url(&[
            "api",
            "v1",
            "groups",
            segment("group id", group_id)?,
            "users",
            segment("user id", user_id)?,
        ]))
    }

    /// `GET /api/v1/groups/{groupId}`; `None` when Okta has no such group.
    pub async fn get_group(&self, group_id: &str) -> Result<Option<OktaGroup>, OktaError> {
        let url = self.url(&["api", "v1", "groups", segment("group id", group_id)?]);
        let call = Call::new(Method::GET, GROUP_GET, url).not_found_ok(true);
        let ex = self.caller.execute(&call).await?;
        if ex.status == 404 {
            return Ok(None);
        }
        self.caller.decode(&call, &ex).await.map(Some)
    }

    /// `PUT /api/v1/groups/{groupId}/users/{userId}` (idempotent).
    pub async fn add_group_member(&self, group_id: &str, user_id: &str) -> Result<(), OktaError> {
        let url = self.group_member_url(group_id, user_id)?;
        self.caller
            .execute(&Call::new(Method::PUT, GROUP_MEMBER, url))
            .await?;
        Ok(())
    }

    /// As [`Self::add_group_member`], but Okta's 404 (no such group, or no such user) is
    /// the answer `Ok(Some(not_found))`, not written to the error log: only the caller
    /// can tell which of the two it was, and records the failure as what it was.
    pub async fn add_group_member_or_404(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<OktaError>, OktaError> {
        let url = self.group_member_url(group_id, user_id)?;
        let call = Call::new(Method::PUT, GROUP_MEMBER, url).not_found_ok(true);
        let ex = self.caller.execute(&call).await?;
        Ok((ex.status == 404).then(|| self.caller.answer_error(&call, &ex)))
    }

    /// `DELETE /api/v1/groups/{groupId}/users/{userId}`. Removing a non-member of an
    /// existing group is a plain success; `on_missing` decides what a 404 (no such
    /// group or user) means.
    pub async fn remove_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        on_missing: OnMissing,
    ) -> Result<Removal, OktaError> {
        let url = self.group_member_url(group_id, user_id)?;
        let call = Call::new(Method::DELETE, GROUP_MEMBER, url)
            .not_found_ok(on_missing == OnMissing::TreatAsRemoved);
        let ex = self.caller.execute(&call).await?;
        Ok(if ex.status == 404 {
            Removal::AlreadyGone
        } else {
            Removal::Removed
        })
    }

    /// Every member of a group, following Okta's `next` links page by page.
    pub async fn list_group_members(
        &self,
        group_id: &str,
    ) -> Result<Vec<OktaGroupMember>, OktaError> {
        self.list_group_members_within(group_id, ListBound::default())
            .await
    }

    /// [`Self::list_group_members`] that gives up (an error, nothing returned) once the
    /// listing passes `bound`: an Okta, or a proxy, that links page after page never
    /// holds a caller for long.
    pub async fn list_group_members_within(
        &self,
        group_id: &str,
        bound: ListBound,
    ) -> Result<Vec<OktaGroupMember>, OktaError> {
        let mut url = self.url(&[
            "api",
            "v1",
            "groups",
            segment("group id", group_id)?,
            "users",
        ]);
        url.query_pairs_mut()
            .append_pair("limit", &self.page_size.to_string());
        self.list_all(GROUP_MEMBERS, url, bound).await
    }

    /// The user's admin role assignments (`GET /api/v1/users/{id}/roles`; empty for a
    /// user without any). Needs the `okta.roles.read` scope.
    pub async fn list_user_roles(&self, user_id: &str) -> Result<Vec<OktaRole>, OktaError> {
        let url = self.url(&["api", "v1", "users", segment("user id", user_id)?, "roles"]);
        let call = Call::new(Method::GET, USER_ROLES, url);
        let ex = self.caller.execute(&call).await?;
        self.caller.decode(&call, &ex).await
    }

    /// Every group the user belongs to (Okta's built-in `Everyone` included).
    pub async fn list_user_groups(&self, user_id: &str) -> Result<Vec<OktaGroup>, OktaError> {
        let url = self.url(&["api", "v1", "users", segment("user id", user_id)?, "groups"]);
        self.list_all(USER_GROUPS, url, ListBound::default()).await
    }

    async fn list_all<T: serde::de::DeserializeOwned>(
        &self,
        route: Route,
        first: Url,
        bound: ListBound,
    ) -> Result<Vec<T>, OktaError> {
        let started = std::time::Instant::now();
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next {
            seen.insert(url.clone());
            let call = Call::new(Method::GET, route, url);
            let ex = self.caller.execute(&call).await?;
            let page: Vec<T> = self.caller.decode(&call, &ex).await?;
            items.extend(page);
            next = self.caller.next_page(&call, &ex, &seen).await?;
            if next.is_some() {
                if let Some(why) = bound.passed(items.len(), seen.len(), started.elapsed()) {
                    return Err(self.caller.invalid_answer(&call, &ex, why).await);
                }
            }
        }
        Ok(items)
    }

    /// Rate-limit state per bucket, requests in flight and the last auth failure.
    pub fn status(&self) -> OktaStatus {
        let governor = self.caller.governor();
        OktaStatus {
            org_url: self.caller.org().as_str().trim_end_matches('/').to_owned(),
            auth_method: self.caller.tokens().kind(),
            rate_share: governor.share(),
            max_concurrency: governor.max_concurrency(),
            in_flight: governor.in_flight(),
            buckets: governor.snapshot(),
            last_success_at: self.caller.last_success(),
            last_auth_failure: self.caller.tokens().last_failure(),
            dpop: self.caller.tokens().dpop_state(),
            scopes: self.caller.tokens().scope_check(),
        }
    }

    /// With a service app: fetches an access token now (if none is cached), so a
    /// refusal and the scopes Okta grants are known and logged from start-up, before
    /// any call needs them. A refusal is remembered as [`Self::last_auth_failure`].
    /// Nothing to check for an API token without calling the Management API.
    pub async fn check_credentials(&self) {
        self.caller.check_credentials().await;
    }

    /// Writes the counts of coalesced error answers that are still pending in memory
    /// (`iam_error_log`), closing every window. Call it at shutdown, after the last Okta
    /// call: what is pending then is lost otherwise.
    pub async fn flush_error_log(&self) {
        self.caller.flush_error_log().await;
    }

    /// The last time Okta refused the credentials, if ever.
    pub fn last_auth_failure(&self) -> Option<AuthFailure> {
        self.caller.tokens().last_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        assert!(segment("user id", "").is_err());
        assert!(segment("user id", "..").is_err());
        assert!(segment("user id", "00u1").is_ok());
    }
}
