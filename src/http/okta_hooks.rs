//! `/hooks/okta/events`: Okta Event Hooks. Outside `/api/v1` and its caller tokens:
//! Okta authenticates with the one header configured on the hook
//! (`EFS_IAM_OKTA_EVENT_HOOK_HEADER`, default `Authorization`) carrying the shared
//! secret (`EFS_IAM_OKTA_EVENT_HOOK_SECRET`), compared in constant time before the body
//! is read. Without a secret the endpoint answers 404: it is off.
//!
//! Okta gives an answer 3 s and retries once; a delivery is therefore only stored
//! (events already stored are skipped) and answered, and a worker applies it
//! (`sync::okta_events`).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::AppJson;
use super::problem::{ApiError, ApiResult, FieldError, Problem, ProblemType};
use super::state::AppState;
use crate::storage::NewOktaEvent;

/// Events one delivery may carry; Okta sends far fewer (it batches up to 50).
const MAX_EVENTS: usize = 1000;
/// `efs_iam_okta_event.uuid` / `.event_type` widths.
const UUID_MAX: usize = 64;
const TYPE_MAX: usize = 128;
/// A stored event (`MEDIUMTEXT`) is far below this; one this large is not Okta's.
const EVENT_MAX_BYTES: usize = 1024 * 1024;

/// The routes; with a state (a running service rather than the document alone), behind
/// the hook's authentication.
pub fn router(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new().routes(routes!(verify_event_hook, receive_events));
    match state {
        Some(state) => router.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        )),
        None => router,
    }
}

/// Off (404) without a secret; 401 without the right one. Before the body is read.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(auth) = &state.config.okta_event_hook else {
        return ApiError::NotFound(
            "Okta event hooks are off (EFS_IAM_OKTA_EVENT_HOOK_SECRET is not set)".into(),
        )
        .into_response();
    };
    if !auth.accepts(request.headers()) {
        metrics::counter!("efs_iam_okta_event_deliveries_refused_total").increment(1);
        tracing::warn!(header = %auth.header, "an Okta event hook request without the right secret was refused");
        return ProblemType::UNAUTHORIZED.response(
            format!(
                "the {} header does not carry the event hook's secret",
                auth.header
            ),
            vec![],
        );
    }
    next.run(request).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// The value of the request's `X-Okta-Verification-Challenge` header.
    pub verification: String,
}

/// Okta's one-time verification of the hook: echoes the challenge.
#[utoipa::path(
    get, path = "/hooks/okta/events", tag = "okta event hooks",
    params(("X-Okta-Verification-Challenge" = String, Header, description = "Okta's challenge")),
    security(("okta_event_hook" = [])),
    responses(
        (status = 200, description = "The challenge, echoed", body = Verification),
        (status = 400, description = "No challenge header", body = Problem),
        (status = 401, description = "Not the hook's secret", body = Problem),
        (status = 404, description = "Event hooks are off in this instance", body = Problem),
        (status = 503, description = "Not answered within the request timeout", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn verify_event_hook(headers: HeaderMap) -> ApiResult<Json<Verification>> {
    let challenge = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "X-Okta-Verification-Challenge",
                "the verification request needs this header",
            )
        })?;
    tracing::info!("Okta event hook verified");
    Ok(Json(Verification {
        verification: challenge.to_owned(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"received": 2, "new": 1}))]
pub struct Received {
    /// Events in the delivery.
    pub received: usize,
    /// Of them, events not stored before (a redelivery carries none).
    pub new: u64,
}

/// An event delivery: Okta's envelope (`eventType: com.okta.event_hook`) with
/// `data.events[]`. The events are stored (each once, by `uuid`) and answered at once;
/// the `okta-events` worker applies them to the portal user references.
#[utoipa::path(
    post, path = "/hooks/okta/events", tag = "okta event hooks",
    request_body(content = Object, description = "Okta's event hook envelope"),
    security(("okta_event_hook" = [])),
    responses(
        (status = 200, description = "Stored", body = Received),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "Not the hook's secret", body = Problem),
        (status = 404, description = "Event hooks are off in this instance", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Not an event hook envelope, or an event without uuid, eventType or published; nothing was stored", body = Problem),
        (status = 503, description = "Database unavailable; Okta retries", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(events))]
async fn receive_events(
    State(state): State<AppState>,
    AppJson(envelope): AppJson<Value>,
) -> ApiResult<Json<Received>> {
    let events = parse_envelope(&envelope)?;
    tracing::Span::current().record("events", events.len());
    let received = events.len();
    let new = state.sync.accept_okta_events(events).await?;
    Ok(Json(Received { received, new }))
}

/// The events of an envelope, or the fields at fault (nothing is stored then).
fn parse_envelope(envelope: &Value) -> ApiResult<Vec<NewOktaEvent>> {
    let Some(list) = envelope.pointer("/data/events").and_then(Value::as_array) else {
        return Err(ApiError::invalid_field(
            "data.events",
            "must be the array of events of an Okta event hook delivery",
        ));
    };
    if list.len() > MAX_EVENTS {
        return Err(ApiError::invalid_field(
            "data.events",
            format!("at most {MAX_EVENTS} events per delivery"),
        ));
    }
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(list.len());
    for (i, event) in list.iter().enumerate() {
        let field = |name: &str| format!("data.events[{i}].{name}");
        let text = |name: &str, max: usize, errors: &mut Vec<FieldError>| match event[name]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) if s.chars().count() <= max => Some(s.to_owned()),
            Some(_) => {
                errors.push(FieldError::new(
                    field(name),
                    format!("at most {max} characters"),
                ));
                None
            }
            None => {
                errors.push(FieldError::new(field(name), "required, a non-empty string"));
                None
            }
        };
        let uuid = text("uuid", UUID_MAX, &mut errors);
        let event_type = text("eventType", TYPE_MAX, &mut errors);
        let published = match event["published"]
            .as_str()
            .map(DateTime::parse_from_rfc3339)
        {
            // MariaDB's DATETIME holds years 1000 to 9999; Okta's events are recent.
            Some(Ok(t)) if (1970..=9999).contains(&t.with_timezone(&Utc).year()) => {
                Some(t.with_timezone(&Utc).naive_utc())
            }
            _ => {
                errors.push(FieldError::new(
                    field("published"),
                    "required, an RFC 3339 time between 1970 and 9999 such as \
                     2026-11-29T10:00:00.000Z",
                ));
                None
            }
        };
        let payload = event.to_string();
        if payload.len() > EVENT_MAX_BYTES {
            errors.push(FieldError::new(
                field("uuid"),
                "the event is larger than 1 MiB",
            ));
        }
        if let (Some(uuid), Some(event_type), Some(published)) = (uuid, event_type, published) {
            events.push(NewOktaEvent {
                uuid,
                event_type,
                published,
                payload,
            });
        }
        if errors.len() >= 100 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Any JSON a hook delivery may carry is either refused with the fields at fault or
/// read into events within the stored columns' bounds; nothing panics.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                proptest::collection::hash_map(".{0,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Envelopes close to Okta's, with each field sometimes wrong.
    fn event() -> impl Strategy<Value = Value> {
        (
            prop_oneof![".{0,80}".prop_map(Value::from), any_json()],
            prop_oneof![".{0,140}".prop_map(Value::from), any_json()],
            prop_oneof![
                "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
                    .prop_map(Value::from),
                any_json(),
            ],
            any_json(),
        )
            .prop_map(|(uuid, event_type, published, target)| {
                json!({"uuid": uuid, "eventType": event_type, "published": published, "target": target})
            })
    }

    proptest! {
        #[test]
        fn any_json_is_refused_or_read_within_bounds(envelope in any_json()) {
            check(&envelope)?;
        }

        #[test]
        fn okta_shaped_envelopes_are_refused_or_read_within_bounds(
            events in proptest::collection::vec(event(), 0..20)
        ) {
            check(&json!({"eventType": "com.okta.event_hook", "data": {"events": events}}))?;
        }
    }

    fn check(envelope: &Value) -> Result<(), TestCaseError> {
        match parse_envelope(envelope) {
            Ok(events) => {
                prop_assert!(events.len() <= MAX_EVENTS);
                for e in events {
                    prop_assert!(!e.uuid.is_empty() && e.uuid.chars().count() <= UUID_MAX);
                    prop_assert!(e.event_type.chars().count() <= TYPE_MAX);
                    prop_assert!((1970..=9999).contains(&e.published.and_utc().year()));
                    prop_assert!(e.payload.len() <= EVENT_MAX_BYTES);
                }
            }
            Err(ApiError::Validation(fields)) => prop_assert!(!fields.is_empty()),
            Err(_) => {}
        }
        Ok(())
    }
}
