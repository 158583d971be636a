//! Extractors that turn every malformed request into our problem+json, naming the
//! field at fault (axum's own rejections are plain text without field paths).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::problem::{ApiError, ApiResult, FieldError};
use crate::domain::{EfsUserId, OktaUserId, PortalId, SessionId, SettingKey};

/// A JSON body (`application/json` or any `+json` type) with serde errors mapped to
/// the field path at fault.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == "application"
                    && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedBody(e.body_text())
            }
        })?;
        parse_json(&bytes).map(AppJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = field_name(&path, &inner.to_string());
                ApiError::Validation(vec![FieldError::new(field, strip_position(&inner))])
            }
            _ => ApiError::MalformedBody(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    Ok(value)
}

/// serde names a missing or unknown field only in its message (the path points at the
/// enclosing object); pull the name out so the problem names the field itself.
fn field_name(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match (path, named) {
        (".", Some(name)) => name,
        // Unknown fields are already part of the path.
        (p, Some(name)) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        (p, Some(name)) => format!("{p}.{name}"),
        (".", None) => "body".to_owned(),
        (p, None) => p.to_owned(),
    }
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// For optional body fields that may be left out but not sent as `null`
/// (`#[serde(default, deserialize_with = "present")]`): the spec says "not nullable",
/// and this keeps the server exactly as strict.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::de::Error;
    match <Option<T> as serde::Deserialize>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::custom("may be left out, but not null")),
    }
}

/// JSON Schema counts `590.0` as an integer; so does this (for `i64` body fields).
pub fn integral<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    integral_number(serde_json::Number::deserialize(deserializer)?)
}

/// A JSON number as an integer, where `7.0` counts as one.
pub fn integral_number<E: serde::de::Error>(n: serde_json::Number) -> Result<i64, E> {
    // A number written as an integer must fit i64 as written; only one written with a
    // fraction or exponent (`7.0`, `7e0`) goes through f64, strictly inside i64's range
    // (2^63 and -2^63 are where f64 rounding makes out-of-range values land). A number
    // beyond i64 is refused, never clamped.
    let written_as_integer = !n.to_string().contains(['.', 'e', 'E']);
    match n.as_i64() {
        Some(v) => Ok(v),
        None => match n.as_f64() {
            Some(f)
                if !written_as_integer
                    && f.fract() == 0.0
                    && f > -(2f64.powi(63))
                    && f < 2f64.powi(63) =>
            {
                Ok(f as i64)
            }
            _ => Err(E::custom(format!(
                "invalid value: {n}, expected an integer"
            ))),
        },
    }
}

/// Query parameters, with unknown parameters and bad values refused by name.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(AppQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = field_name(&path, &message);
                let field = if field == "body" {
                    "query".into()
                } else {
                    field
                };
                ApiError::InvalidParameter(FieldError::new(field, message))
            })
    }
}

/// Path parameters as a struct of validated values (`PortalId`, `SettingKey`, …, each
/// `Deserialize` through its own parser); a value its parser refuses is a 400 problem
/// naming the parameter.
pub struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Percent-decoded by axum; its own rejection (e.g. invalid UTF-8) stays its own.
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let de = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
            params.into_iter(),
        );
        serde_path_to_error::deserialize(de)
            .map(AppPath)
            .map_err(|e| {
                let name = e.path().to_string();
                ApiError::invalid_parameter(&name, e.into_inner()).into_response()
            })
    }
}

/// `{portal_id}`.
#[derive(Debug, serde::Deserialize)]
pub struct PortalPath {
    pub portal_id: PortalId,
}

/// `{portal_id}/…/{key}`.
#[derive(Debug, serde::Deserialize)]
pub struct PortalSettingPath {
    pub portal_id: PortalId,
    pub key: SettingKey,
}

/// `{user_id}` of an EFS-Admin user.
#[derive(Debug, serde::Deserialize)]
pub struct AdminUserPath {
    pub user_id: EfsUserId,
}

/// `{portal_id}/…/{user_id}` of a portal user.
#[derive(Debug, serde::Deserialize)]
pub struct PortalUserPath {
    pub portal_id: PortalId,
    pub user_id: EfsUserId,
}

/// `{session_id}`.
#[derive(serde::Deserialize)]
pub struct SessionPath {
    pub session_id: SessionId,
}

/// `{okta_user_id}`.
#[derive(Debug, serde::Deserialize)]
pub struct OktaUserPath {
    pub okta_user_id: OktaUserId,
}

/// The id of something efs-iam created (a sync job, a reconciliation run): a lower-case
/// hyphenated UUID, exactly as the API hands them out.
#[derive(Debug)]
pub struct ResourceId(pub String);

impl<'de> serde::Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        uuid::Uuid::parse_str(&raw)
            .ok()
            .map(|u| u.hyphenated().to_string())
            .filter(|u| *u == raw)
            .map(ResourceId)
            .ok_or_else(|| {
                serde::de::Error::custom(crate::domain::Invalid::new(
                    "must be an id as returned by the API (a lower-case UUID)",
                ))
            })
    }
}

/// Opaque keyset cursors: base64url of a small JSON position. Opaque so that callers
/// cannot build them and so the position format may change.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    let json = serde_json::to_vec(position).expect("cursor positions serialise");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> ApiResult<T> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid_parameter("cursor", "not a cursor returned by this API"))
}

/// The position a `cursor` query parameter names, if one was given.
pub fn cursor_position<T: DeserializeOwned>(cursor: Option<&str>) -> ApiResult<Option<T>> {
    cursor.map(decode_cursor).transpose()
}

/// One page of a keyset listing read with `limit + 1` rows: the page, and the cursor of
/// the next page when there is one (`position` is what the next read starts after).
pub fn keyset_page<T, P: Serialize>(
    mut rows: Vec<T>,
    limit: u32,
    position: impl Fn(&T) -> P,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    let next = (rows.len() > limit).then(|| encode_cursor(&position(&rows[limit - 1])));
    rows.truncate(limit);
    (rows, next)
}

/// Page size: `default` when absent, refused above `max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_parameter(
            "limit",
            format!("must be from 1 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: i32,
    }

    fn field_of(json: &str) -> String {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::Validation(e)) => e[0].field.clone().expect("a field"),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(field_of(r#"{"items":[]}"#), "name");
        assert_eq!(field_of(r#"{"name":"a","items":[],"x":1}"#), "x");
        assert_eq!(
            field_of(r#"{"name":"a","items":[{"n":"1"}]}"#),
            "items[0].n"
        );
        assert_eq!(
            field_of(r#"{"name":"a","items":[{"n":1,"m":2}]}"#),
            "items[0].m"
        );
        assert!(matches!(
            parse_json::<Body>(b"{\"name\":"),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"name":"a","items":[]} x"#),
            Err(ApiError::MalformedBody(_))
        ));
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(&42);
        assert_eq!(decode_cursor::<i32>(&c).unwrap(), 42);
        assert!(decode_cursor::<i32>("!!").is_err());
        assert!(decode_cursor::<i32>(&encode_cursor(&"x")).is_err());
    }
}

/// A cursor is whatever the caller sends: it decodes to a position or is refused.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_cursor_decodes_or_is_refused(cursor in ".{0,300}|[A-Za-z0-9_-]{0,300}") {
            let _ = decode_cursor::<(i64, String)>(&cursor);
            let _ = decode_cursor::<i32>(&cursor);
        }

        #[test]
        fn positions_round_trip(at in any::<i64>(), key in ".{0,40}") {
            let cursor = encode_cursor(&(at, key.clone()));
            let back = decode_cursor::<(i64, String)>(&cursor);
            prop_assert!(matches!(back, Ok((a, k)) if a == at && k == key));
        }
    }
}
