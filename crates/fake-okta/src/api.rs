//! The Management API handlers: users, lifecycle, groups and memberships.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::errors::{json_body, summary, OktaError, DUPLICATE_CAUSE};
use super::query::{self, Op};
use super::store::{
    check_profile_properties, validate_profile, GroupType, NewUser, Render, UserStatus,
};
use super::{ids, oauth, pipeline, Shared};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{id}",
            get(get_user)
                .post(update_user)
                .put(replace_user)
                .delete(delete_user),
        )
        .route("/api/v1/users/{id}/groups", get(user_groups))
        .route("/api/v1/users/{id}/roles", get(user_roles))
        .route("/api/v1/users/{id}/lifecycle/{action}", post(lifecycle))
        .route("/api/v1/groups", get(list_groups).post(create_group))
        .route(
            "/api/v1/groups/{groupId}",
            get(get_group).put(replace_group).delete(delete_group),
        )
        .route("/api/v1/groups/{groupId}/users", get(list_members))
        .route(
            "/api/v1/groups/{groupId}/users/{userId}",
            put(add_member).delete(remove_member),
        )
        .route("/oauth2/v1/token", post(oauth::token))
        .route("/oauth2/v1/keys", get(oauth::keys))
        .route("/.well-known/openid-configuration", get(oauth::discovery))
        .fallback(|| async { OktaError::path_not_found() })
        .method_not_allowed_fallback(|| async { OktaError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            pipeline::middleware,
        ))
        .with_state(shared)
}

type ApiResult = Result<Response, OktaError>;

// ---- helpers -----------------------------------------------------------------------

fn json_ok(value: &Value) -> Response {
    json_body(value).into_response()
}

fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

fn params(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bool_param(params: &[(String, String)], name: &str, default: bool) -> Result<bool, OktaError> {
    match param(params, name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(OktaError::invalid_request(name)),
    }
}

fn limit_param(
    params: &[(String, String)],
    default: usize,
    max: usize,
) -> Result<usize, OktaError> {
    match param(params, "limit") {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            _ => Err(OktaError::new(
                StatusCode::BAD_REQUEST,
                "E0000001",
                summary::E0000001.replace("{0}", "limit"),
            )),
        },
    }
}

fn object_body(body: &Bytes) -> Result<Map<String, Value>, OktaError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(OktaError::bad_json()),
    }
}

fn encode_cursor(shared: &Shared, key: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{key}", shared.cursor_salt))
}

/// Cursors are opaque to clients; a cursor not minted by this fake is E0000029.
fn decode_cursor(shared: &Shared, cursor: &str) -> Result<u64, OktaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (salt, key) = s.split_once(':')?;
            (salt == shared.cursor_salt).then(|| key.parse().ok())?
        })
        .ok_or_else(OktaError::invalid_paging)
}

fn after_param(shared: &Shared, params: &[(String, String)]) -> Result<Option<u64>, OktaError> {
    param(params, "after")
        .map(|c| decode_cursor(shared, c))
        .transpose()
}

/// One page of `(cursor key, item)` pairs ordered by key, and the key to continue from.
fn paginate<T>(items: Vec<(u64, T)>, after: Option<u64>, limit: usize) -> (Vec<T>, Option<u64>) {
    let mut rest = items
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| *k > a));
    let page: Vec<(u64, T)> = rest.by_ref().take(limit).collect();
    let next = if rest.next().is_some() {
        page.last().map(|(k, _)| *k)
    } else {
        None
    };
    (page.into_iter().map(|(_, t)| t).collect(), next)
}

/// A page of a collection: its items as a JSON array, and its links. Okta sends `self`
/// and `next` as two separate `link` header lines; `self` carries the effective
/// `limit`, as in recorded responses.
fn collection(
    items: Vec<Value>,
    shared: &Shared,
    path: &str,
    params: &[(String, String)],
    limit: usize,
    next: Option<u64>,
) -> Response {
    let url = |after: Option<String>, keep_after: bool| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            if k == "limit" || (k == "after" && !keep_after) {
                continue;
            }
            s.append_pair(k, v);
        }
        if let Some(a) = after {
            s.append_pair("after", &a);
        }
        s.append_pair("limit", &limit.to_string());
        format!("{}{}?{}", shared.base_url, path, s.finish())
    };
    let mut response = json_ok(&Value::Array(items));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"self\"", url(None, true))) {
        headers.append(header::LINK, v);
    }
    if let Some(key) = next {
        let cursor = encode_cursor(shared, key);
        if let Ok(v) =
            HeaderValue::from_str(&format!("<{}>; rel=\"next\"", url(Some(cursor), false)))
        {
            headers.append(header::LINK, v);
        }
    }
    response
}

fn parse_expression(
    text: &str,
    allowed: &dyn Fn(&str, Op) -> bool,
) -> Result<query::Expr, OktaError> {
    let expr = query::parse(text).map_err(|_| OktaError::invalid_search())?;
    if !query::all_comparisons(&expr, allowed) {
        return Err(OktaError::invalid_search());
    }
    Ok(expr)
}

const ORDERING_OPS: [Op; 4] = [Op::Gt, Op::Ge, Op::Lt, Op::Le];

fn user_filter_allowed(attr: &str, op: Op) -> bool {
    match attr {
        "lastUpdated" => op == Op::Eq || ORDERING_OPS.contains(&op),
        "status" | "id" | "profile.login" | "profile.email" | "profile.firstName"
        | "profile.lastName" => op == Op::Eq,
        _ => false,
    }
}

fn user_search_allowed(attr: &str, op: Op) -> bool {
    let known = matches!(
        attr,
        "id" | "status" | "created" | "activated" | "statusChanged" | "lastUpdated" | "type.id"
    ) || attr.strip_prefix("profile.").is_some_and(|a| !a.is_empty());
    let co_ok = matches!(
        attr,
        "profile.firstName" | "profile.lastName" | "profile.email" | "profile.login"
    );
    known && (op != Op::Co || co_ok)
}

fn group_filter_allowed(attr: &str, op: Op) -> bool {
    match attr {
        "lastUpdated" | "lastMembershipUpdated" => op == Op::Eq || ORDERING_OPS.contains(&op),
        "id" | "type" => op == Op::Eq,
        _ => false,
    }
}

fn group_search_allowed(attr: &str, op: Op) -> bool {
    let known = matches!(
        attr,
        "id" | "created" | "lastMembershipUpdated" | "lastUpdated" | "type" | "source.id"
    ) || attr.strip_prefix("profile.").is_some_and(|a| !a.is_empty());
    known && (op != Op::Co || matches!(attr, "profile.name" | "profile.description"))
}

/// What a listing's query asks for, as Okta reads it.
struct Listing<'a> {
    /// The `search` or `filter` expression.
    expr: Option<query::Expr>,
    /// `search` compares text case-insensitively, `filter` exactly.
    case_insensitive: bool,
    /// `q`, which applies only when there is no expression.
    q: Option<&'a str>,
    /// `sortBy` and whether `sortOrder` is `desc`: Okta sorts search results only.
    sort: Option<(&'a str, bool)>,
}

/// Reads a listing's `search`, `filter`, `q` and sorting; `search` and `filter`
/// together are refused (400 E0000033), as Okta does.
fn listing<'a>(
    params: &'a [(String, String)],
    search_allowed: &dyn Fn(&str, Op) -> bool,
    filter_allowed: &dyn Fn(&str, Op) -> bool,
) -> Result<Listing<'a>, OktaError> {
    let (search, filter) = (param(params, "search"), param(params, "filter"));
    let (expr, case_insensitive) = match (search, filter) {
        (Some(_), Some(_)) => {
            return Err(OktaError::new(
                StatusCode::BAD_REQUEST,
                "E0000033",
                summary::E0000033,
            ))
        }
        (Some(s), None) => (Some(parse_expression(s, search_allowed)?), true),
        (None, Some(f)) => (Some(parse_expression(f, filter_allowed)?), false),
        (None, None) => (None, false),
    };
    let sort = param(params, "sortBy")
        .filter(|_| search.is_some())
        .map(|by| {
            let descending =
                param(params, "sortOrder").is_some_and(|o| o.eq_ignore_ascii_case("desc"));
            (by, descending)
        });
    Ok(Listing {
        expr,
        case_insensitive,
        q: param(params, "q"),
        sort,
    })
}

/// A page of users as a collection renders them.
fn users_page(store: &super::store::Store, page: Vec<&super::store::User>) -> Vec<Value> {
    page.into_iter()
        .map(|u| store.render_user(u, Render::Collection))
        .collect()
}

/// Sorts search results by `sortBy` (ties by id), when asked to; cursor keys become
/// positions.
fn sorted<T>(
    items: Vec<(u64, T)>,
    sort: Option<(&str, bool)>,
    value: &dyn Fn(&T, &str) -> Option<Value>,
    id: &dyn Fn(&T) -> String,
) -> Vec<(u64, T)> {
    let Some((sort_by, descending)) = sort else {
        return items;
    };
    let mut keyed: Vec<(String, String, T)> = items
        .into_iter()
        .map(|(_, t)| {
            let v = match value(&t, sort_by) {
                Some(Value::String(s)) => s.to_lowercase(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (v, id(&t), t)
        })
        .collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if descending {
        keyed.reverse();
    }
    keyed
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, t))| (i as u64 + 1, t))
        .collect()
}

// ---- users -------------------------------------------------------------------------

async fn list_users(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let params = params(raw);
    let asked = listing(&params, &user_search_allowed, &user_filter_allowed)?;
    let (expr, q) = (&asked.expr, asked.q);
    let q_mode = q.is_some() && expr.is_none();
    let limit = limit_param(&params, if q_mode { 10 } else { 200 }, 200)?;
    let after = after_param(&shared, &params)?;

    let store = shared.store.lock().unwrap();
    let items: Vec<(u64, &super::store::User)> = store
        .users()
        .filter(|u| match (expr, q) {
            (Some(e), _) => {
                query::eval(e, &|attr| store.user_attr(u, attr), asked.case_insensitive)
            }
            (None, Some(q)) => {
                let q = q.to_lowercase();
                u.status != UserStatus::Deprovisioned
                    && ["firstName", "lastName", "email"].iter().any(|f| {
                        u.profile
                            .get(*f)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.to_lowercase().starts_with(&q))
                    })
            }
            (None, None) => u.status != UserStatus::Deprovisioned,
        })
        .map(|u| (u.seq, u))
        .collect();
    let items = sorted(
        items,
        asked.sort,
        &|u, attr| store.user_attr(u, attr),
        &|u| u.id.clone(),
    );
    let (page, next) = paginate(items, after, limit);
    // `q` has no paging: a single page, never a `next` link.
    let next = if q_mode { None } else { next };
    let body = users_page(&store, page);
    drop(store);
    Ok(collection(
        body,
        &shared,
        "/api/v1/users",
        &params,
        limit,
        next,
    ))
}

async fn create_user(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let params = params(raw);
    let activate = bool_param(&params, "activate", true)?;
    bool_param(&params, "provider", false)?;
    let next_login = param(&params, "nextLogin");
    if next_login.is_some_and(|n| n != "changePassword") {
        return Err(OktaError::invalid_request("nextLogin"));
    }
    let body = object_body(&body)?;
    let profile = match body.get("profile") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(OktaError::bad_json()),
    };
    let settings = shared.settings();
    check_profile_properties(&profile, &settings.custom_profile_attributes, "newUser")?;
    validate_profile(&profile, settings.require_email_login)?;

    let credentials = body.get("credentials").cloned().unwrap_or(Value::Null);
    let password = &credentials["password"];
    let has_password = password["value"].is_string()
        || password["hash"].is_object()
        || password["hook"].is_object();
    let recovery_question = credentials["recovery_question"]["question"]
        .as_str()
        .map(str::to_owned);
    let provider_type = credentials["provider"]["type"]
        .as_str()
        .unwrap_or("OKTA")
        .to_owned();
    let provider_name = credentials["provider"]["name"]
        .as_str()
        .unwrap_or("OKTA")
        .to_owned();
    if next_login.is_some() {
        if !activate {
            return Err(
                OktaError::new(StatusCode::BAD_REQUEST, "E0000125", summary::E0000125)
                    .with_causes(vec![summary::E0000125.into()]),
            );
        }
        if !has_password {
            return Err(
                OktaError::new(StatusCode::BAD_REQUEST, "E0000124", summary::E0000124)
                    .with_causes(vec![summary::E0000124.into()]),
            );
        }
    }
    let group_ids: Vec<String> = match body.get("groupIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(OktaError::bad_json)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(OktaError::bad_json()),
    };
    if group_ids.len() > 20 {
        return Err(
            OktaError::new(StatusCode::BAD_REQUEST, "E0000093", summary::E0000093)
                .with_causes(vec!["The number of group targets is too large".into()]),
        );
    }
    let status = if !activate {
        UserStatus::Staged
    } else if matches!(provider_type.as_str(), "FEDERATION" | "SOCIAL") {
        UserStatus::Active
    } else if next_login.is_some() {
        UserStatus::PasswordExpired
    } else if has_password {
        UserStatus::Active
    } else {
        settings.passwordless_activation_status
    };

    let mut store = shared.store.lock().unwrap();
    let login = profile["login"].as_str().unwrap_or_default();
    if store.login_taken(login, None) {
        return Err(OktaError::validation(vec![(
            "login".into(),
            DUPLICATE_CAUSE.into(),
        )]));
    }
    for gid in &group_ids {
        let g = store
            .group(gid)
            .ok_or_else(|| OktaError::group_not_found(gid))?;
        if g.group_type != GroupType::OktaGroup {
            return Err(OktaError::forbidden());
        }
    }
    let seq = store.insert_user(NewUser {
        profile,
        status,
        has_password,
        recovery_question,
        provider: (provider_type, provider_name),
    })?;
    let id = store.user(seq).map(|u| u.id.clone()).unwrap_or_default();
    for gid in &group_ids {
        store.add_member(gid, &id);
    }
    let u = store.user(seq).expect("just inserted");
    Ok(json_ok(&store.render_user(u, Render::Full)))
}

async fn get_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let store = shared.store.lock().unwrap();
    let u = store
        .find_user(&id)
        .ok_or_else(|| OktaError::user_not_found(&id))?;
    let mut body = store.render_user(u, Render::Full);
    // `Content-Type: application/json; okta-response=omitCredentials,...` trims the answer.
    let okta_response = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split_once("okta-response="))
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    if okta_response.contains("omitCredentialsLinks") {
        if let Some(links) = body["_links"].as_object_mut() {
            for rel in [
                "changePassword",
                "changeRecoveryQuestion",
                "forgotPassword",
                "resetPassword",
                "resetFactors",
                "unlock",
            ] {
                links.remove(rel);
            }
        }
    }
    if okta_response
        .split(',')
        .any(|p| p.trim() == "omitCredentials")
    {
        if let Some(obj) = body.as_object_mut() {
            obj.remove("credentials");
        }
    }
    let mut response = json_ok(&body);
    if let Ok(etag) = HeaderValue::from_str(&u.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Shared by partial update (POST) and full replace (PUT).
fn write_user(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    replace: bool,
) -> ApiResult {
    let body = object_body(body)?;
    let settings = shared.settings();
    let mut store = shared.store.lock().unwrap();
    let seq = store
        .find_user_seq(id)
        .ok_or_else(|| OktaError::user_not_found(id))?;
    let u = store.user(seq).expect("found");
    if u.status == UserStatus::Deprovisioned {
        return Err(OktaError::wrong_status());
    }
    if let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if expected != u.etag() {
            return Err(OktaError::new(
                StatusCode::PRECONDITION_FAILED,
                "E0000231",
                summary::E0000231,
            ));
        }
    }
    let given = match body.get("profile") {
        Some(Value::Object(p)) => Some(p.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(OktaError::bad_json()),
    };
    if let Some(given) = &given {
        check_profile_properties(given, &settings.custom_profile_attributes, "user")?;
    }
    let profile = match (replace, given) {
        (true, given) => given.unwrap_or_default(),
        (false, Some(given)) => {
            let mut merged = u.profile.clone();
            merged.extend(given);
            merged
        }
        (false, None) => u.profile.clone(),
    };
    validate_profile(&profile, settings.require_email_login)?;
    let login = profile["login"].as_str().unwrap_or_default();
    if store.login_taken(login, Some(seq)) {
        return Err(OktaError::validation(vec![(
            "login".into(),
            DUPLICATE_CAUSE.into(),
        )]));
    }
    store.update_profile(seq, profile);
    let credentials = body.get("credentials").cloned().unwrap_or(Value::Null);
    if credentials["password"]["value"].is_string() || credentials["password"]["hash"].is_object() {
        store.set_password(seq);
    }
    if let Some(q) = credentials["recovery_question"]["question"].as_str() {
        store.set_recovery_question(seq, q.to_owned());
    }
    let u = store.user(seq).expect("found");
    let mut response = json_ok(&store.render_user(u, Render::Full));
    if let Ok(etag) = HeaderValue::from_str(&u.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

async fn update_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_user(&shared, &id, &headers, &body, false)
}

async fn replace_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_user(&shared, &id, &headers, &body, true)
}

/// The first DELETE deactivates, the second deletes (as Okta's `deleteUser` does).
async fn delete_user(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let mut store = shared.store.lock().unwrap();
    let seq = store
        .find_user_seq(&id)
        .ok_or_else(|| OktaError::user_not_found(&id))?;
    if store.user(seq).map(|u| u.status) == Some(UserStatus::Deprovisioned) {
        store.delete_user(seq);
    } else {
        store.set_status(seq, UserStatus::Deprovisioned);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn user_groups(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let store = shared.store.lock().unwrap();
    let u = store
        .find_user(&id)
        .ok_or_else(|| OktaError::user_not_found(&id))?;
    let body: Vec<Value> = store
        .user_groups(&u.id)
        .into_iter()
        .map(|g| store.render_group(g, false))
        .collect();
    Ok(json_ok(&Value::Array(body)))
}

/// `GET /api/v1/users/{id}/roles`: the user's admin role assignments; `[]` for a user
/// without any.
async fn user_roles(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let store = shared.store.lock().unwrap();
    let u = store
        .user_by_id(&id)
        .ok_or_else(|| OktaError::user_not_found(&id))?;
    Ok(json_ok(&Value::Array(u.admin_roles.clone())))
}

fn activation_body(shared: &Shared, send_email: bool) -> Value {
    if send_email {
        json!({})
    } else {
        let token = ids::random_alnum(20);
        json!({
            "activationToken": token,
            "activationUrl": format!("{}/tokens/{token}/verify", shared.base_url),
        })
    }
}

/// Lifecycle operations with the statuses Okta allows each from.
async fn lifecycle(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = params(raw);
    let settings = shared.settings();
    let mut store = shared.store.lock().unwrap();
    let seq = store
        .find_user_seq(&id)
        .ok_or_else(|| OktaError::user_not_found(&id))?;
    let (status, has_password) = {
        let u = store.user(seq).expect("found");
        (u.status, u.has_password)
    };
    use UserStatus::*;
    match action.as_str() {
        "activate" => {
            let send_email = bool_param(&params, "sendEmail", true)?;
            match status {
                Staged | Deprovisioned => {}
                Active => {
                    return Err(OktaError::new(
                        StatusCode::FORBIDDEN,
                        "E0000016",
                        summary::E0000016,
                    ))
                }
                _ => return Err(OktaError::wrong_status()),
            }
            let to = if has_password {
                Active
            } else {
                settings.passwordless_activation_status
            };
            store.set_status(seq, to);
            Ok(json_ok(&activation_body(&shared, send_email)))
        }
        "reactivate" => {
            let send_email = bool_param(&params, "sendEmail", false)?;
            if !matches!(status, Provisioned | Recovery) {
                return Err(OktaError::wrong_status());
            }
            store.set_status(seq, Provisioned);
            Ok(json_ok(&activation_body(&shared, send_email)))
        }
        "deactivate" => {
            bool_param(&params, "sendEmail", false)?;
            if status == Deprovisioned {
                return Err(OktaError::wrong_status());
            }
            store.set_status(seq, Deprovisioned);
            if settings.deactivate_returns_204 {
                Ok(empty(StatusCode::NO_CONTENT))
            } else {
                Ok(json_ok(&json!({})))
            }
        }
        "suspend" => {
            if status != Active {
                return Err(OktaError::wrong_status());
            }
            store.set_status(seq, Suspended);
            Ok(empty(StatusCode::OK))
        }
        "unsuspend" => {
            if status != Suspended {
                return Err(OktaError::wrong_status());
            }
            store.set_status(seq, Active);
            Ok(empty(StatusCode::OK))
        }
        "unlock" => {
            if status != LockedOut {
                return Err(OktaError::new(
                    StatusCode::FORBIDDEN,
                    "E0000032",
                    summary::E0000032,
                ));
            }
            store.set_status(seq, Active);
            Ok(empty(StatusCode::OK))
        }
        _ => Err(OktaError::path_not_found()),
    }
}

// ---- groups ------------------------------------------------------------------------

fn group_profile(body: &Map<String, Value>) -> Result<Map<String, Value>, OktaError> {
    let mut profile = match body.get("profile") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(OktaError::bad_json()),
    };
    match profile.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => {}
        _ => {
            return Err(OktaError::validation(vec![(
                "name".into(),
                "The field cannot be left blank".into(),
            )]))
        }
    }
    if profile.get("description").is_some_and(Value::is_null) {
        profile.remove("description");
    }
    Ok(profile)
}

async fn create_group(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let body = object_body(&body)?;
    let profile = group_profile(&body)?;
    let mut store = shared.store.lock().unwrap();
    let name = profile["name"].as_str().unwrap_or_default();
    if store.group_name_taken(name, None) {
        return Err(OktaError::validation(vec![(
            "name".into(),
            DUPLICATE_CAUSE.into(),
        )]));
    }
    let id = store.create_group_with_profile(profile);
    let g = store.group(&id).expect("just created");
    Ok(json_ok(&store.render_group(g, false)))
}

async fn list_groups(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> ApiResult {
    let params = params(raw);
    let asked = listing(&params, &group_search_allowed, &group_filter_allowed)?;
    let (expr, q) = (&asked.expr, asked.q);
    let q_mode = q.is_some() && expr.is_none();
    let limit = limit_param(&params, if q_mode { 300 } else { 10_000 }, 10_000)?;
    let after = after_param(&shared, &params)?;
    let stats = param(&params, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let store = shared.store.lock().unwrap();
    let items: Vec<(u64, &super::store::Group)> = store
        .groups()
        .filter(|g| match (expr, q) {
            (Some(e), _) => {
                query::eval(e, &|attr| store.group_attr(g, attr), asked.case_insensitive)
            }
            (None, Some(q)) => g
                .profile
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_lowercase().starts_with(&q.to_lowercase())),
            (None, None) => true,
        })
        .map(|g| (g.seq, g))
        .collect();
    let items = sorted(
        items,
        asked.sort,
        &|g, attr| store.group_attr(g, attr),
        &|g| g.id.clone(),
    );
    let (page, next) = paginate(items, after, limit);
    let next = if q_mode { None } else { next };
    let body: Vec<Value> = page
        .into_iter()
        .map(|g| store.render_group(g, stats))
        .collect();
    drop(store);
    Ok(collection(
        body,
        &shared,
        "/api/v1/groups",
        &params,
        limit,
        next,
    ))
}

async fn get_group(
    State(shared): State<Arc<Shared>>,
    Path(group_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = params(raw);
    let stats = param(&params, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let store = shared.store.lock().unwrap();
    let g = store
        .group(&group_id)
        .ok_or_else(|| OktaError::group_not_found(&group_id))?;
    Ok(json_ok(&store.render_group(g, stats)))
}

async fn replace_group(
    State(shared): State<Arc<Shared>>,
    Path(group_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = object_body(&body)?;
    let mut store = shared.store.lock().unwrap();
    let g = store
        .group(&group_id)
        .ok_or_else(|| OktaError::group_not_found(&group_id))?;
    if g.group_type != GroupType::OktaGroup {
        return Err(OktaError::forbidden());
    }
    let seq = g.seq;
    let profile = group_profile(&body)?;
    if store.group_name_taken(profile["name"].as_str().unwrap_or_default(), Some(seq)) {
        return Err(OktaError::validation(vec![(
            "name".into(),
            DUPLICATE_CAUSE.into(),
        )]));
    }
    let g = store.group_mut(&group_id).expect("found");
    g.profile = profile;
    g.last_updated = ids::now();
    let g = store.group(&group_id).expect("found");
    Ok(json_ok(&store.render_group(g, false)))
}

async fn delete_group(
    State(shared): State<Arc<Shared>>,
    Path(group_id): Path<String>,
) -> ApiResult {
    let mut store = shared.store.lock().unwrap();
    let g = store
        .group(&group_id)
        .ok_or_else(|| OktaError::group_not_found(&group_id))?;
    if g.group_type == GroupType::BuiltIn {
        return Err(OktaError::forbidden());
    }
    store.delete_group(&group_id);
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn list_members(
    State(shared): State<Arc<Shared>>,
    Path(group_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let params = params(raw);
    let limit = limit_param(&params, 1000, 10_000)?;
    let after = after_param(&shared, &params)?;
    let store = shared.store.lock().unwrap();
    let g = store
        .group(&group_id)
        .ok_or_else(|| OktaError::group_not_found(&group_id))?;
    let (page, next) = paginate(store.members(g), after, limit);
    let body = users_page(&store, page);
    drop(store);
    Ok(collection(
        body,
        &shared,
        &format!("/api/v1/groups/{group_id}/users"),
        &params,
        limit,
        next,
    ))
}

/// Validates a membership change: the group and the user must exist (404 E0000007
/// naming whichever is missing, group first) and the group must be an `OKTA_GROUP`.
fn check_membership(shared: &Shared, group_id: &str, user_id: &str) -> Result<(), OktaError> {
    let store = shared.store.lock().unwrap();
    let g = store
        .group(group_id)
        .ok_or_else(|| OktaError::group_not_found(group_id))?;
    store
        .user_by_id(user_id)
        .ok_or_else(|| OktaError::user_not_found(user_id))?;
    if g.group_type != GroupType::OktaGroup {
        return Err(OktaError::forbidden());
    }
    Ok(())
}

async fn add_member(
    State(shared): State<Arc<Shared>>,
    Path((group_id, user_id)): Path<(String, String)>,
) -> ApiResult {
    check_membership(&shared, &group_id, &user_id)?;
    shared.store.lock().unwrap().add_member(&group_id, &user_id);
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn remove_member(
    State(shared): State<Arc<Shared>>,
    Path((group_id, user_id)): Path<(String, String)>,
) -> ApiResult {
    check_membership(&shared, &group_id, &user_id)?;
    shared
        .store
        .lock()
        .unwrap()
        .remove_member(&group_id, &user_id);
    Ok(empty(StatusCode::NO_CONTENT))
}
