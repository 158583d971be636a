//! The control server: what a client's test suite cannot arrange through efs-iam's own
//! API, over plain HTTP on 127.0.0.1 so a suite in any language can call it. It plays
//! the other parties: EFS (its core tables), Okta (groups, users, outages, a rotated API
//! token, id_tokens), the callers' identity provider (RS256 caller tokens), another
//! efs-iam instance holding a user's sync lock, and the infrastructure (memcached going
//! down, the database pool exhausted, a table gone).
//!
//! | call | what it does |
//! |---|---|
//! | `POST /efs-users` `{"database": "main"\|"tight", "admin_users": [..], "panelists": [..]}` | rows in EFS's `users` / `panelists` |
//! | `POST /okta/groups` `{"name"}` → `{"id"}` | a group in the fake Okta |
//! | `DELETE /okta/groups/{id}` | deletes it through the fake's Management API |
//! | `GET /okta/groups/{id}/members` → `["00u…"]` | its members |
//! | `PUT /okta/groups/{id}/members/{user}` | a member added in Okta, behind efs-iam's back |
//! | `POST /okta/users` `{"login", "status"}` → `{"id"}` | a user in any status (`DEPROVISIONED`…) |
//! | `GET /okta/users/{id or login}` | the user as Okta renders it, 404 when absent |
//! | `POST /okta/users/{id}/roles` `{"type"}` | grants the user an Okta admin role (`SUPER_ADMIN`…) |
//! | `POST /managed-okta-users` `{"ids": ["00u…"]}` | Okta users efs-iam manages in the `main` database, as if adopted before the test |
//! | `POST /okta/faults` `{"org", "method", "path_prefix", "kind", "status", "body", "ms", "times"}` | a fault (`kind`: `response`, `hang`, `internal_server_error`, `service_unavailable`, `drop_connection`) in `org` `okta` (default), `slow_okta` or `caller_idp` |
//! | `DELETE /okta/faults?org=` | forgets the org's faults |
//! | `PUT /okta/api-token` `{"token": "…"\|null}` | the SSWS token the fake accepts (`test-token` is efs-iam's) |
//! | `POST /okta/id-token` `{"claims": {..}}` → `{"id_token"}` | an id_token signed by the fake's issuer |
//! | `POST /caller-token` `{"scope", "kid"}` → `{"token"}` | an RS256 caller token from `caller_idp`'s key (the `jwks` instance) |
//! | `POST /sync-locks` `{"name", "seconds"}`, `DELETE /sync-locks/{name}` | another instance holds (or gives back) a sync lock in the `main` database |
//! | `POST /memcached/cut`, `POST /memcached/restore` | the `cache` instance's memcached goes away and comes back |
//! | `POST /tight/hold-database` `{"ms"}` | takes the `tight` instance's one connection for `ms` |
//! | `POST /tight/occupy` `{"ms"}` | a call to `tight` that takes its one request slot for `ms` (its Okta hangs) |
//! | `POST /tight/tables/{table}/hide`, `…/restore` | renames a table of the `tight` database away and back |
//! | `POST /restartable/restart` `{"down_ms"}` | stops the `restartable` instance (down when this answers) and starts it again on its address after `down_ms` |

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use efs_iam::storage::sql::Db;
use efs_iam::storage::{LeaseStore, SqlStore};
use fake_okta::{FakeOkta, Fault, FaultKind, UserStatus};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::CuttableProxy;
use crate::deployment::{Restartable, AUDIENCE, ISSUER, SECRET};

/// Who holds a lock in `POST /sync-locks`: not one of the running instances.
const OTHER_INSTANCE: &str = "another-efs-iam-instance#1";

pub struct Control {
    pub okta: FakeOkta,
    pub slow_okta: FakeOkta,
    pub caller_idp: FakeOkta,
    pub main_store: Arc<SqlStore>,
    /// The `tight` database through a pool of its own (set-up statements must not
    /// need the instance's one connection).
    pub tight_admin: Arc<SqlStore>,
    /// The `tight` instance's own pool.
    pub tight_store: Arc<SqlStore>,
    pub tight_url: String,
    pub memcached_proxy: Option<Arc<CuttableProxy>>,
    pub restartable: Arc<Restartable>,
    pub http: reqwest::Client,
}

type Shared = State<Arc<Control>>;
type Answer = Result<Response, (StatusCode, String)>;

fn failed(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn bad(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, e.to_string())
}

/// Serves the control API on 127.0.0.1:0 in the background; its base URL.
pub async fn serve(control: Control) -> String {
    let router = Router::new()
        .route("/efs-users", post(efs_users))
        .route("/okta/groups", post(create_group))
        .route("/okta/groups/{id}", delete(delete_group))
        .route("/okta/groups/{id}/members", get(group_members))
        .route("/okta/groups/{id}/members/{user}", put(add_member))
        .route("/okta/users", post(create_user))
        .route("/okta/users/{id}", get(okta_user))
        .route("/okta/users/{id}/roles", post(grant_role))
        .route("/managed-okta-users", post(manage_okta_users))
        .route("/okta/faults", post(inject_fault).delete(clear_faults))
        .route("/okta/api-token", put(api_token))
        .route("/okta/id-token", post(id_token))
        .route("/caller-token", post(caller_token))
        .route("/sync-locks", post(hold_sync_lock))
        .route("/sync-locks/{name}", delete(release_sync_lock))
        .route("/memcached/{action}", post(memcached))
        .route("/tight/hold-database", post(hold_database))
        .route("/tight/occupy", post(occupy))
        .route("/tight/tables/{table}/{action}", post(rename_table))
        .route("/restartable/restart", post(restart))
        .with_state(Arc::new(control));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the control server");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("control server");
    });
    url
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn execute(store: &SqlStore, sql: &str) -> Result<(), sqlx::Error> {
    let Db::MySql(pool) = store.db() else {
        unreachable!("the deployment runs on MariaDB")
    };
    sqlx::query(sql).execute(pool).await.map(|_| ())
}

#[derive(Deserialize)]
struct EfsUsers {
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    admin_users: Vec<i64>,
    #[serde(default)]
    panelists: Vec<i64>,
}

/// EFS owns `users` and `panelists`; references and syncs need their rows (MariaDB's
/// foreign keys, the sync engine's existence check).
async fn efs_users(State(c): Shared, Json(req): Json<EfsUsers>) -> Answer {
    let store = match req.database.as_deref() {
        None | Some("main") => &c.main_store,
        Some("tight") => &c.tight_admin,
        Some(other) => return Err(bad(format!("no database {other}"))),
    };
    for (table, ids) in [("users", &req.admin_users), ("panelists", &req.panelists)] {
        for id in ids {
            execute(
                store,
                &format!("INSERT IGNORE INTO {table} (uid) VALUES ({id})"),
            )
            .await
            .map_err(failed)?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct NewGroup {
    name: String,
}

async fn create_group(State(c): Shared, Json(req): Json<NewGroup>) -> Answer {
    let id = c.okta.create_group(&req.name);
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

/// Through the fake's Management API, as an Okta admin deleting the group would.
async fn delete_group(State(c): Shared, Path(id): Path<String>) -> Answer {
    let res = c
        .http
        .delete(format!("{}/api/v1/groups/{id}", c.okta.base_url()))
        .header("authorization", "SSWS test-token")
        .send()
        .await
        .map_err(failed)?;
    let status = StatusCode::from_u16(res.status().as_u16()).map_err(failed)?;
    Ok(status.into_response())
}

async fn group_members(State(c): Shared, Path(id): Path<String>) -> Answer {
    if c.okta.group(&id).is_none() {
        return Err((StatusCode::NOT_FOUND, format!("no group {id}")));
    }
    Ok(Json(c.okta.group_members(&id)).into_response())
}

async fn add_member(State(c): Shared, Path((group, user)): Path<(String, String)>) -> Answer {
    if !c.okta.add_group_member(&group, &user) {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no group {group} or user {user}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct NewUser {
    login: String,
    #[serde(default)]
    status: Option<String>,
}

async fn create_user(State(c): Shared, Json(req): Json<NewUser>) -> Answer {
    let status = match req.status.as_deref() {
        None => UserStatus::Active,
        Some(s) => UserStatus::parse(s).ok_or_else(|| bad(format!("no Okta status {s}")))?,
    };
    let id = c
        .okta
        .create_user(&req.login, &req.login, "Grace", "Hopper", status);
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn okta_user(State(c): Shared, Path(id): Path<String>) -> Answer {
    match c.okta.user(&id) {
        Some(user) => Ok(Json(user).into_response()),
        None => Err((StatusCode::NOT_FOUND, format!("no Okta user {id}"))),
    }
}

#[derive(Deserialize)]
struct NewRole {
    r#type: String,
}

async fn grant_role(State(c): Shared, Path(id): Path<String>, Json(req): Json<NewRole>) -> Answer {
    if !c.okta.grant_admin_role(&id, &req.r#type) {
        return Err((StatusCode::NOT_FOUND, format!("no Okta user {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ManagedIds {
    ids: Vec<String>,
}

/// What an administrator's adoption left behind before the test began.
async fn manage_okta_users(State(c): Shared, Json(req): Json<ManagedIds>) -> Answer {
    use efs_iam::domain::OktaUserId;
    use efs_iam::storage::{now as stored_now, ManagedOrigin, ManagedUserStore};
    for id in &req.ids {
        let id = OktaUserId::parse(id).map_err(bad)?;
        c.main_store
            .manage_okta_user(
                &id,
                ManagedOrigin::Adopted,
                "control-server",
                None,
                stored_now(),
            )
            .await
            .map_err(failed)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct NewFault {
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    method: Option<String>,
    path_prefix: String,
    kind: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    ms: Option<u64>,
    #[serde(default)]
    times: Option<usize>,
}

fn org<'a>(c: &'a Control, name: Option<&str>) -> Result<&'a FakeOkta, (StatusCode, String)> {
    match name {
        None | Some("okta") => Ok(&c.okta),
        Some("slow_okta") => Ok(&c.slow_okta),
        Some("caller_idp") => Ok(&c.caller_idp),
        Some(other) => Err(bad(format!("no fake Okta org {other}"))),
    }
}

async fn inject_fault(State(c): Shared, Json(req): Json<NewFault>) -> Answer {
    let kind = match req.kind.as_str() {
        "response" => FaultKind::Response {
            status: req
                .status
                .ok_or_else(|| bad("a response fault needs a status"))?,
            body: req.body.unwrap_or(Value::Null),
        },
        "hang" => FaultKind::Hang(Duration::from_millis(req.ms.unwrap_or(5_000))),
        "internal_server_error" => FaultKind::InternalServerError,
        "service_unavailable" => FaultKind::ServiceUnavailable,
        "drop_connection" => FaultKind::DropConnection,
        other => return Err(bad(format!("no fault kind {other}"))),
    };
    let fault = match &req.method {
        Some(method) => Fault::new(method, &req.path_prefix, kind),
        None => Fault::any_method(&req.path_prefix, kind),
    };
    org(&c, req.org.as_deref())?.inject(fault.times(req.times.unwrap_or(1)));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct OrgQuery {
    #[serde(default)]
    org: Option<String>,
}

async fn clear_faults(State(c): Shared, Query(q): Query<OrgQuery>) -> Answer {
    org(&c, q.org.as_deref())?.clear_faults();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ApiToken {
    token: Option<String>,
}

async fn api_token(State(c): Shared, Json(req): Json<ApiToken>) -> Answer {
    c.okta.set_api_token(req.token.as_deref());
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct IdTokenRequest {
    #[serde(default)]
    claims: Value,
}

async fn id_token(State(c): Shared, Json(req): Json<IdTokenRequest>) -> Answer {
    let claims = if req.claims.is_object() {
        req.claims
    } else {
        json!({})
    };
    Ok(Json(json!({"id_token": c.okta.mint_id_token(claims)})).into_response())
}

#[derive(Deserialize)]
struct CallerTokenRequest {
    scope: String,
    #[serde(default)]
    kid: Option<String>,
}

/// What EFS-Admin would get from its identity provider by client credentials.
async fn caller_token(Json(req): Json<CallerTokenRequest>) -> Answer {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(
        req.kid
            .unwrap_or_else(|| FakeOkta::SIGNING_KEY_ID.to_owned()),
    );
    let key =
        EncodingKey::from_rsa_pem(FakeOkta::test_signing_key_pem().as_bytes()).map_err(failed)?;
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "efs-admin-rs256",
        "scope": req.scope, "iat": now(), "exp": now() + 300});
    let token = jsonwebtoken::encode(&header, &claims, &key).map_err(failed)?;
    Ok(Json(json!({"token": token})).into_response())
}

#[derive(Deserialize)]
struct SyncLock {
    name: String,
    seconds: i64,
}

/// The lease a sync takes on a user (`admin:<uid>`, `panelist:<uid>`, `login:<login>`),
/// taken by "another instance" through the lease contract efs-iam itself uses.
async fn hold_sync_lock(State(c): Shared, Json(req): Json<SyncLock>) -> Answer {
    let now = efs_iam::storage::now();
    let until = now + chrono::Duration::seconds(req.seconds);
    let taken = c
        .main_store
        .try_lock(&req.name, OTHER_INSTANCE, now, until)
        .await
        .map_err(failed)?;
    if !taken {
        return Err((StatusCode::CONFLICT, format!("{} is held", req.name)));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn release_sync_lock(State(c): Shared, Path(name): Path<String>) -> Answer {
    c.main_store
        .unlock(&name, OTHER_INSTANCE)
        .await
        .map_err(failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn memcached(State(c): Shared, Path(action): Path<String>) -> Answer {
    let Some(proxy) = &c.memcached_proxy else {
        return Err((StatusCode::NOT_FOUND, "no memcached in this run".into()));
    };
    match action.as_str() {
        "cut" => proxy.cut(),
        "restore" => proxy.restore(),
        other => return Err(bad(format!("no memcached action {other}"))),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ForMs {
    ms: u64,
}

/// Takes the `tight` instance's only connection and gives it back after `ms`; answers
/// once it is taken.
async fn hold_database(State(c): Shared, Json(req): Json<ForMs>) -> Answer {
    let Db::MySql(pool) = c.tight_store.db() else {
        unreachable!("the deployment runs on MariaDB")
    };
    let held = pool.acquire().await.map_err(failed)?;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(req.ms)).await;
        drop(held);
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A call that holds the `tight` instance's one request slot for `ms`: writing an
/// `okta_group_id` makes efs-iam ask Okta about the group, and `slow_okta` takes `ms`
/// to answer. Answers once the call is in flight (Okta has seen it).
async fn occupy(State(c): Shared, Json(req): Json<ForMs>) -> Answer {
    let route = "/api/v1/groups/{groupId}";
    let before = c.slow_okta.request_count("GET", route);
    c.slow_okta.inject(Fault::new(
        "GET",
        "/api/v1/groups/",
        FaultKind::Hang(Duration::from_millis(req.ms)),
    ));
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "control-server",
            "scope": "iam:write iam:admin", "iat": now(), "exp": now() + 300}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .map_err(failed)?;
    let call = c
        .http
        .put(format!(
            "{}/api/v1/portals/1/settings/okta_group_id",
            c.tight_url
        ))
        .bearer_auth(token)
        .json(&json!({"value": "00gOCCUPYINGTHESLOT1"}))
        .send();
    tokio::spawn(async move {
        let _ = call.await;
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    while c.slow_okta.request_count("GET", route) == before {
        if Instant::now() > deadline {
            return Err(failed("the occupying call did not reach Okta within 3 s"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A table the `tight` instance's queries need goes missing (an operator's mistake, a
/// half-applied migration): its calls fail with 500 `internal`.
async fn rename_table(State(c): Shared, Path((table, action)): Path<(String, String)>) -> Answer {
    if !table
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(bad(format!("not a table name: {table}")));
    }
    let hidden = format!("{table}_hidden_by_test");
    let sql = match action.as_str() {
        "hide" => format!("RENAME TABLE `{table}` TO `{hidden}`"),
        "restore" => format!("RENAME TABLE `{hidden}` TO `{table}`"),
        other => return Err(bad(format!("no table action {other}"))),
    };
    execute(&c.tight_admin, &sql).await.map_err(failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct Restart {
    down_ms: u64,
}

async fn restart(State(c): Shared, Json(req): Json<Restart>) -> Answer {
    c.restartable
        .restart(Duration::from_millis(req.down_ms))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
