//! What happens to every request before and after its handler: recording, the
//! concurrency limit, rate-limit buckets, latency, injected faults, authentication, and
//! the headers Okta puts on every response.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::OktaError;
use super::{ids, ConnectionKiller, Fault, FaultKind, RecordedRequest, Shared};

/// Okta's rate-limit buckets for the endpoints the fake serves. Okta
/// matches the exact endpoint first, then the longest prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitBucket {
    /// `GET`/`POST /api/v1/users` (list, search, create).
    UsersCreateList,
    /// `GET /api/v1/users/{idOrLogin}`.
    UserGet,
    /// `POST`/`PUT`/`DELETE /api/v1/users/{id}` and `/api/v1/users/{id}/lifecycle/*`.
    UserWrite,
    /// `/api/v1/groups` (create, list) and `/api/v1/groups/{id}/users*` (members).
    Groups,
    /// `/api/v1/groups/{id}` only.
    GroupById,
    /// `POST /oauth2/v1/token`.
    OAuthToken,
    /// Any other `/api/v1` endpoint (including `GET /api/v1/users/{id}/groups`).
    OtherApi,
}

/// Where a request goes, for counting, rate limiting and authorization.
#[derive(Debug, Clone)]
pub(crate) struct RouteInfo {
    pub template: String,
    pub bucket: Option<RateLimitBucket>,
    /// OAuth scope needed with a Bearer token; `None` means no Management API auth at all.
    pub scope: Option<&'static str>,
    pub needs_auth: bool,
}

pub(crate) fn classify(method: &Method, path: &str) -> RouteInfo {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let users_scope = if get {
        "okta.users.read"
    } else {
        "okta.users.manage"
    };
    let groups_scope = if get {
        "okta.groups.read"
    } else {
        "okta.groups.manage"
    };
    let api = |template: &str, bucket, scope| RouteInfo {
        template: template.to_owned(),
        bucket: Some(bucket),
        scope: Some(scope),
        needs_auth: true,
    };
    use RateLimitBucket::*;
    match segs.as_slice() {
        ["api", "v1", "users"] => api("/api/v1/users", UsersCreateList, users_scope),
        ["api", "v1", "users", _] => api(
            "/api/v1/users/{id}",
            if get { UserGet } else { UserWrite },
            users_scope,
        ),
        ["api", "v1", "users", _, "groups"] => {
            api("/api/v1/users/{id}/groups", OtherApi, "okta.users.read")
        }
        ["api", "v1", "users", _, "roles"] => {
            api("/api/v1/users/{id}/roles", OtherApi, "okta.roles.read")
        }
        ["api", "v1", "users", _, "lifecycle", action] => RouteInfo {
            template: format!("/api/v1/users/{{id}}/lifecycle/{action}"),
            bucket: Some(UserWrite),
            scope: Some("okta.users.manage"),
            needs_auth: true,
        },
        ["api", "v1", "groups"] => api("/api/v1/groups", Groups, groups_scope),
        ["api", "v1", "groups", _] => api("/api/v1/groups/{groupId}", GroupById, groups_scope),
        ["api", "v1", "groups", _, "users"] => {
            api("/api/v1/groups/{groupId}/users", Groups, groups_scope)
        }
        ["api", "v1", "groups", _, "users", _] => api(
            "/api/v1/groups/{groupId}/users/{userId}",
            Groups,
            groups_scope,
        ),
        ["oauth2", "v1", "token"] => RouteInfo {
            template: "/oauth2/v1/token".into(),
            bucket: Some(OAuthToken),
            scope: None,
            needs_auth: false,
        },
        ["api", ..] => RouteInfo {
            template: path.to_owned(),
            bucket: Some(OtherApi),
            scope: None,
            needs_auth: true,
        },
        // `/oauth2/v1/keys` and `.well-known` metadata are not rate limited by Okta.
        _ => RouteInfo {
            template: path.to_owned(),
            bucket: None,
            scope: None,
            needs_auth: false,
        },
    }
}

// ---- request log -------------------------------------------------------------------

pub(crate) struct RequestLog {
    max: usize,
    next_index: u64,
    records: VecDeque<(u64, RecordedRequest)>,
    counts: HashMap<(String, String), usize>,
}

impl RequestLog {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            next_index: 0,
            records: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    fn record(&mut self, r: RecordedRequest) -> u64 {
        *self
            .counts
            .entry((r.method.clone(), r.route.clone()))
            .or_default() += 1;
        let index = self.next_index;
        self.next_index += 1;
        self.records.push_back((index, r));
        while self.records.len() > self.max {
            self.records.pop_front();
        }
        index
    }

    fn set_status(&mut self, index: u64, status: u16) {
        if let Some((_, r)) = self.records.iter_mut().rev().find(|(i, _)| *i == index) {
            r.status = Some(status);
        }
    }

    pub(crate) fn count(&self, method: &str, route: &str) -> usize {
        self.counts
            .get(&(method.to_ascii_uppercase(), route.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.records.iter().map(|(_, r)| r.clone()).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.counts.clear();
    }
}

// ---- rate limiting -----------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// UTC epoch seconds.
    pub reset: u64,
}

struct Window {
    start: SystemTime,
    count: u32,
}

/// Fixed windows per bucket, each starting at the bucket's first request after the
/// previous window ended (Okta's windows are not aligned to the wall-clock minute).
#[derive(Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<RateLimitBucket, Window>,
}

fn epoch_secs_ceil(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimiter {
    pub(crate) fn reset(&mut self) {
        self.windows.clear();
    }

    /// Counts a request; `Err` when the bucket is exhausted.
    fn consume(
        &mut self,
        bucket: RateLimitBucket,
        limit: u32,
        window: Duration,
        now: SystemTime,
    ) -> Result<RateInfo, RateInfo> {
        let w = self.windows.entry(bucket).or_insert(Window {
            start: now,
            count: 0,
        });
        if now >= w.start + window {
            w.start = now;
            w.count = 0;
        }
        let reset = epoch_secs_ceil(w.start + window);
        if w.count >= limit {
            return Err(RateInfo {
                limit,
                remaining: 0,
                reset,
            });
        }
        w.count += 1;
        Ok(RateInfo {
            limit,
            remaining: limit - w.count,
            reset,
        })
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn enter(counter: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
    let before = counter.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(counter.clone());
    (before < limit).then_some(guard)
}

// ---- the middleware ----------------------------------------------------------------

pub(crate) async fn middleware(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let request_id = ids::request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = classify(&method, &path);
    let index = shared.log.lock().unwrap().record(RecordedRequest {
        request_id: request_id.clone(),
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: req.uri().query().map(str::to_owned),
        route: route.template.clone(),
        auth_scheme: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(' ').next())
            .map(str::to_owned),
        headers: req
            .headers()
            .iter()
            .filter(|(name, _)| *name != header::AUTHORIZATION)
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        status: None,
        received_at: SystemTime::now(),
    });

    let (mut response, rate) = process(&shared, req, next, &route).await;

    let headers = response.headers_mut();
    let now = SystemTime::now();
    if let Some(rate) = rate {
        set(headers, "x-rate-limit-limit", rate.limit.to_string());
        set(
            headers,
            "x-rate-limit-remaining",
            rate.remaining.to_string(),
        );
        set(headers, "x-rate-limit-reset", rate.reset.to_string());
    }
    set(headers, "x-okta-request-id", request_id);
    set(headers, "date", ids::http_date(now));
    if route.needs_auth {
        // What Okta sends on Management API responses.
        set(headers, "cache-control", "no-cache, no-store".into());
        set(headers, "pragma", "no-cache".into());
        set(headers, "expires", "0".into());
    }
    shared
        .log
        .lock()
        .unwrap()
        .set_status(index, response.status().as_u16());
    response
}

fn set(headers: &mut axum::http::HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

async fn process(
    shared: &Arc<Shared>,
    req: Request,
    next: Next,
    route: &RouteInfo,
) -> (Response, Option<RateInfo>) {
    let settings = shared.settings();
    let now = SystemTime::now();

    // Concurrency first: a request turned away here never reached a bucket.
    let Some(_slot) = enter(&shared.in_flight, settings.concurrency_limit) else {
        shared.dpop.burn(req.headers());
        return (
            OktaError::rate_limited().into_response(),
            Some(RateInfo {
                limit: 0,
                remaining: 0,
                reset: epoch_secs_ceil(now + Duration::from_secs(1)),
            }),
        );
    };

    let rate = match route.bucket {
        Some(bucket) => {
            let limit = settings
                .bucket_limits
                .get(&bucket)
                .copied()
                .unwrap_or(settings.rate_limit);
            let result =
                shared
                    .limiter
                    .lock()
                    .unwrap()
                    .consume(bucket, limit, settings.window, now);
            match result {
                Ok(info) => Some(info),
                Err(info) => {
                    shared.dpop.burn(req.headers());
                    return (OktaError::rate_limited().into_response(), Some(info));
                }
            }
        }
        None => None,
    };

    if !settings.latency.is_zero() {
        tokio::time::sleep(settings.latency).await;
    }

    let mut lose_answer = false;
    let mut lying = None;
    if let Some(kind) = take_fault(shared, req.method(), req.uri().path()) {
        if !matches!(
            kind,
            FaultKind::Hang(_) | FaultKind::AnswerLost | FaultKind::LyingRateHeaders { .. }
        ) {
            // Okta had the request: its proof is used, whatever the answer.
            shared.dpop.burn(req.headers());
        }
        match kind {
            FaultKind::Hang(d) => tokio::time::sleep(d).await,
            FaultKind::AnswerLost => lose_answer = true,
            FaultKind::LyingRateHeaders { remaining, reset } => {
                lying = Some(RateInfo {
                    limit: rate.map(|r| r.limit).unwrap_or(settings.rate_limit),
                    remaining,
                    reset,
                });
            }
            FaultKind::DropConnection => {
                if let Some(killer) = req.extensions().get::<ConnectionKiller>() {
                    killer.kill();
                }
                // The connection task drops this future along with the socket.
                std::future::pending::<()>().await;
            }
            FaultKind::InternalServerError => return (OktaError::internal().into_response(), rate),
            FaultKind::ServiceUnavailable => return (OktaError::read_only().into_response(), rate),
            FaultKind::RateLimited { reset_after } => {
                let info = RateInfo {
                    limit: rate.map(|r| r.limit).unwrap_or(settings.rate_limit),
                    remaining: 0,
                    reset: epoch_secs_ceil(SystemTime::now() + reset_after),
                };
                return (OktaError::rate_limited().into_response(), Some(info));
            }
            FaultKind::ConcurrencyLimited => {
                let info = RateInfo {
                    limit: 0,
                    remaining: 0,
                    reset: epoch_secs_ceil(SystemTime::now() + Duration::from_secs(1)),
                };
                return (OktaError::rate_limited().into_response(), Some(info));
            }
            FaultKind::EndlessPages => {
                let page: Vec<serde_json::Value> = (0..200)
                    .map(|_| {
                        let id = format!("00u{}", ids::random_alnum(17));
                        let login = format!("{}@endless.example", id.to_lowercase());
                        serde_json::json!({
                            "id": id, "status": "ACTIVE", "created": "2024-01-01T00:00:00.000Z",
                            "profile": {"login": login, "email": login, "firstName": "E", "lastName": "N"},
                        })
                    })
                    .collect();
                let next = format!(
                    "<{}{}?limit=200&after={}>; rel=\"next\"",
                    shared.base_url,
                    req.uri().path(),
                    ids::random_alnum(24)
                );
                let mut response = (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from(serde_json::Value::Array(page).to_string()),
                )
                    .into_response();
                if let Ok(link) = HeaderValue::from_str(&next) {
                    response.headers_mut().insert(header::LINK, link);
                }
                return (response, rate);
            }
            FaultKind::Response { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
                let response = (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from(body.to_string()),
                )
                    .into_response();
                return (response, rate);
            }
        }
    }

    if route.needs_auth {
        let url = match req.uri().query() {
            Some(q) => format!("{}{}?{q}", shared.base_url, req.uri().path()),
            None => format!("{}{}", shared.base_url, req.uri().path()),
        };
        let request = crate::oauth::ApiRequest {
            base_url: &shared.base_url,
            method: req.method().as_str(),
            headers: req.headers(),
            scope: route.scope,
            path: req.uri().path(),
            url: &url,
        };
        if let Err(refusal) =
            shared
                .oauth
                .authorize(request, settings.api_token.as_deref(), &shared.dpop)
        {
            return (*refusal, rate);
        }
    }

    let killer = req.extensions().get::<ConnectionKiller>().cloned();
    let response = next.run(req).await;
    if lose_answer {
        if let Some(killer) = killer {
            killer.kill();
        }
        std::future::pending::<()>().await;
    }
    (response, lying.or(rate))
}

fn take_fault(shared: &Shared, method: &Method, path: &str) -> Option<FaultKind> {
    let mut faults = shared.faults.lock().unwrap();
    let pos = faults.iter().position(|f: &Fault| {
        f.times > 0
            && f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && path.starts_with(&f.path_prefix)
    })?;
    let fault = &mut faults[pos];
    fault.times -= 1;
    let kind = fault.kind.clone();
    if fault.times == 0 {
        faults.remove(pos);
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_okta_table() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(
            c(Method::GET, "/api/v1/users").bucket,
            Some(RateLimitBucket::UsersCreateList)
        );
        assert_eq!(
            c(Method::GET, "/api/v1/users/00u1").bucket,
            Some(RateLimitBucket::UserGet)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/users/00u1/lifecycle/suspend").template,
            "/api/v1/users/{id}/lifecycle/suspend"
        );
        assert_eq!(
            c(Method::PUT, "/api/v1/groups/00g1/users/00u1").bucket,
            Some(RateLimitBucket::Groups)
        );
        assert_eq!(c(Method::GET, "/oauth2/v1/keys").bucket, None);
    }

    #[test]
    fn windows_reset_after_their_length() {
        let mut l = RateLimiter::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let b = RateLimitBucket::UserGet;
        let w = Duration::from_secs(2);
        assert_eq!(l.consume(b, 2, w, t0).unwrap().remaining, 1);
        assert_eq!(l.consume(b, 2, w, t0).unwrap().remaining, 0);
        let over = l.consume(b, 2, w, t0).unwrap_err();
        assert_eq!(over.reset, 1_002);
        assert_eq!(
            l.consume(b, 2, w, t0 + w).unwrap().remaining,
            1,
            "a new window starts"
        );
    }
}
