//! Enforces caller authentication on `/api/v1` (and `/metrics` when so configured),
//! and logs the audit line of every call.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::{ApiError, ProblemType};
use super::state::AppState;
use crate::auth::{
    reconcile_scope, required_scope, setting_scope, writes_portal_settings, AuthError,
    Authenticator, Caller, Scope, RECONCILE_ROUTE, SETTING_ROUTE,
};
use crate::domain::SettingKey;

const METRICS_ROUTE: &str = "/metrics";

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::WrongScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::WrongScheme);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

async fn verify(auth: &Authenticator, headers: &HeaderMap) -> Result<Arc<Caller>, AuthError> {
    auth.verify(bearer(headers)?).await
}

pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // MatchedPath is reference-counted: this clone copies no string.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = match &matched {
        Some(m) => std::borrow::Cow::Borrowed(m.as_str()),
        None => std::borrow::Cow::Owned(req.uri().path().to_owned()),
    };
    if route == METRICS_ROUTE && !state.config.metrics_require_auth {
        return next.run(req).await;
    }
    let needed = if route == METRICS_ROUTE {
        Scope::Read
    } else {
        required_scope(req.method(), &route)
    };
    // A single setting's key is in the path: its own rule applies here too.
    let also_needed = (route == SETTING_ROUTE && writes_portal_settings(req.method(), &route))
        .then(|| req.uri().path().rsplit('/').next())
        .flatten()
        .and_then(|raw| percent_encoding::percent_decode_str(raw).decode_utf8().ok())
        .and_then(|key| SettingKey::parse(&key).ok())
        .and_then(|key| setting_scope(&key))
        .or_else(|| {
            (route == RECONCILE_ROUTE && req.method() == axum::http::Method::POST)
                .then(|| reconcile_scope(req.uri().query()))
                .flatten()
        });
    let method = req.method().clone();
    let operation = Operation(&method, &route);
    let caller = match &state.auth {
        // Development mode: only possible on loopback (checked at start-up).
        None => Arc::new(Caller {
            subject: "anonymous".into(),
            scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        }),
        Some(auth) => match verify(auth, req.headers()).await {
            Ok(caller) => caller,
            Err(AuthError::KeysUnavailable) => {
                tracing::info!(target: "audit", operation = %operation, outcome = "keys-unavailable");
                let mut res =
                    ApiError::Unavailable(AuthError::KeysUnavailable.to_string()).into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return res;
            }
            Err(e) => {
                tracing::info!(target: "audit", operation = %operation, outcome = "unauthenticated", reason = %e);
                return ApiError::Unauthorized(e).into_response();
            }
        },
    };
    for needed in std::iter::once(needed).chain(also_needed) {
        if !caller.has(needed) {
            tracing::info!(target: "audit", sub = %caller.subject, operation = %operation, outcome = "forbidden", needed = needed.as_str());
            return ApiError::Forbidden(needed).into_response();
        }
    }
    req.extensions_mut().insert(caller.clone());
    let res = next.run(req).await;
    tracing::info!(target: "audit", sub = %caller.subject, operation = %operation, outcome = res.status().as_u16());
    res
}

/// The audit line's `operation` ("GET /api/v1/..."), formatted only when the line is
/// actually written.
struct Operation<'a>(&'a axum::http::Method, &'a str);

impl std::fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// The answer past the concurrent-request limit: 503 with `Retry-After` at once,
/// instead of queueing without bound (see `overload` in the router).
pub async fn overloaded(_: tower::BoxError) -> Response {
    ProblemType::OVERLOADED.response(
        "efs-iam is at its concurrent request limit; retry shortly".into(),
        vec![],
    )
}
