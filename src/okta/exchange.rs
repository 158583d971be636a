//! One HTTP exchange with Okta: what is asked (a [`Call`] on a [`Route`]), the
//! request sent by [`Transport`], and what came back (an [`Exchange`], read whole; its
//! rate-limit headers go to the governor as soon as they arrive). No retries, credentials or error rows here: `call.rs` puts
//! those around each exchange.

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use super::bucket::Bucket;
use super::governor::Governor;
use super::headers::{server_date, RateHeaders};

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
pub(crate) const USER_ROLES: Route = Route {
    template: "/api/v1/users/{id}/roles",
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
pub(crate) const TOKEN: Route = Route {
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

/// A request that got no answer: timed out, or the connection failed.
pub(crate) struct NoAnswer {
    pub timeout: bool,
    /// What failed, without the URL (which may name a user's login).
    pub reason: String,
}

/// The HTTP client and the org every request goes to.
pub(crate) struct Transport {
    http: reqwest::Client,
    org: Url,
}

impl Transport {
    pub(crate) fn new(http: reqwest::Client, org: Url) -> Self {
        Self { http, org }
    }

    /// The org's base URL.
    pub(crate) fn org(&self) -> &Url {
        &self.org
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request and reads the whole answer (counted in the request metrics),
    /// telling the governor its rate-limit headers as soon as they arrive.
    pub(crate) async fn send(
        &self,
        governor: &Governor,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &Url,
        route: Route,
        attempt: u32,
    ) -> Result<Exchange, NoAnswer> {
        let started = std::time::Instant::now();
        let bucket = route.bucket.as_str();
        let no_answer = |e: reqwest::Error| NoAnswer {
            timeout: e.is_timeout(),
            reason: describe(e),
        };
        let response = request.send().await.map_err(|e| {
            let outcome = if e.is_timeout() { "timeout" } else { "no_answer" };
            metrics::counter!("efs_iam_okta_requests_total", "bucket" => bucket, "outcome" => outcome)
                .increment(1);
            no_answer(e)
        })?;
        let status = response.status().as_u16();
        metrics::counter!(
            "efs_iam_okta_requests_total",
            "bucket" => bucket,
            "outcome" => status_class(status)
        )
        .increment(1);
        metrics::histogram!("efs_iam_okta_request_duration_seconds", "bucket" => bucket)
            .record(started.elapsed().as_secs_f64());
        let headers = response.headers().clone();
        let rate = RateHeaders::parse(&headers);
        let date = server_date(&headers);
        governor.observe(route.bucket, rate.as_ref(), date);
        let request_id = headers
            .get("x-okta-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(no_answer)?.to_vec();
        Ok(Exchange {
            method: method.to_owned(),
            path: path_and_query(url),
            route: route.template,
            status,
            rate,
            date,
            headers,
            request_id,
            body,
            attempt,
        })
    }
}

pub(crate) fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// An answer's status as the `outcome` label of `efs_iam_okta_requests_total`.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        401 | 403 => "auth_refused",
        429 => "rate_limited",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every `outcome` of `efs_iam_okta_requests_total`.
pub const OKTA_OUTCOMES: [&str; 7] = [
    "2xx",
    "4xx",
    "auth_refused",
    "rate_limited",
    "5xx",
    "timeout",
    "no_answer",
];

/// A reqwest error as text, without the URL (which may name a user's login).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
