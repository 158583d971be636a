//! One logical Okta call and the client state every call shares: the route it is
//! counted under, the answer it got, and the knobs of the retry loop (`retry.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::ExponentialBuilder;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use super::error_log::ErrorLog;
use super::governor::{Bucket, Governor, RateHeaders};
use super::token::AuthState;

/// A route template and the bucket Okta counts it in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub template: &'static str,
    pub bucket: Bucket,
}

pub(crate) const USERS: Route = Route {
    template: "/api/v1/users",
    bucket: Bucket::UsersCreateList,
};
pub(crate) const USER_GET: Route = Route {
    template: "/api/v1/users/{id}",
    bucket: Bucket::UserGet,
};
pub(crate) const USER_UPDATE: Route = Route {
    template: "/api/v1/users/{id}",
    bucket: Bucket::UserWrite,
};
pub(crate) const USER_DEACTIVATE: Route = Route {
    template: "/api/v1/users/{id}/lifecycle/deactivate",
    bucket: Bucket::UserWrite,
};
pub(crate) const USER_GROUPS: Route = Route {
    template: "/api/v1/users/{id}/groups",
    bucket: Bucket::OtherApi,
};
pub(crate) const GROUP_MEMBERS: Route = Route {
    template: "/api/v1/groups/{groupId}/users",
    bucket: Bucket::Groups,
};
pub(crate) const GROUP_GET: Route = Route {
    template: "/api/v1/groups/{groupId}",
    bucket: Bucket::GroupById,
};
pub(crate) const GROUP_MEMBER: Route = Route {
    template: "/api/v1/groups/{groupId}/users/{userId}",
    bucket: Bucket::Groups,
};
pub(super) const TOKEN: Route = Route {
    template: "/oauth2/v1/token",
    bucket: Bucket::OAuthToken,
};

/// One logical call (retries included).
pub(crate) struct Call {
    pub method: Method,
    pub route: Route,
    pub url: Url,
    pub body: Option<Vec<u8>>,
    /// A 404 `E0000007` (resource not found) is an answer, not a failure.
    pub not_found_ok: bool,
}

impl Call {
    pub(crate) fn new(method: Method, route: Route, url: Url) -> Self {
        Self {
            method,
            route,
            url,
            body: None,
            not_found_ok: false,
        }
    }

    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub(crate) fn not_found_ok(mut self, yes: bool) -> Self {
        self.not_found_ok = yes;
        self
    }
}

/// One HTTP answer.
pub(crate) struct Exchange {
    pub method: String,
    /// Path and query of the request (never the host or headers).
    pub path: String,
    pub route: &'static str,
    pub status: u16,
    pub headers: HeaderMap,
    pub request_id: Option<String>,
    pub rate: Option<RateHeaders>,
    pub date: Option<u64>,
    pub body: Vec<u8>,
    pub attempt: u32,
}

/// Retry knobs.
#[derive(Debug, Clone)]
pub(crate) struct Tunables {
    pub max_retries: u32,
    pub backoff: ExponentialBuilder,
    pub rate_limit_jitter: Duration,
    pub max_rate_limit_wait: Duration,
}

/// What every clone of an `OktaClient` shares.
pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub org: Url,
    pub governor: Arc<Governor>,
    pub auth: AuthState,
    pub error_log: Option<Arc<ErrorLog>>,
    pub tunables: Tunables,
    pub page_size: u32,
    pub last_success: Mutex<Option<DateTime<Utc>>>,
}
