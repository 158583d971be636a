//! Every kind of bad input gets a 4xx problem naming the field, and writes nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{assert_problem, read, Api};
use crate::common::{spawn_app, spawn_app_on, TestDb};

struct Case {
    method: Method,
    path: String,
    body: Option<String>,
    content_type: &'static str,
    status: u16,
    slug: &'static str,
    field: Option<&'static str>,
}

fn case(
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    slug: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.to_owned(),
        body: body.map(|b| b.to_string()),
        content_type: "application/json",
        status,
        slug,
        field,
    }
}

/// A path or query parameter refused: 400 `invalid-parameter` naming it.
fn bad_param(method: Method, path: &str, field: &'static str) -> Case {
    case(method, path, None, 400, "invalid-parameter", Some(field))
}

/// A body refused field by field: 422 `validation-failed` naming the field.
fn invalid(method: Method, path: &str, body: Option<Value>, field: &'static str) -> Case {
    case(method, path, body, 422, "validation-failed", Some(field))
}

#[tokio::test]
async fn bad_requests_are_4xx_problems_naming_the_field() {
    let app = spawn_app().await;
    use Method as M;
    let setting = "/api/v1/portals/1/settings/okta_client_id";
    let reference = "/api/v1/portals/1/user-references/2";
    let mut cases = vec![
        // Beyond i64: refused, not clamped to i64::MAX or i64::MIN.
        invalid(
            M::POST,
            "/api/v1/sync/unassignments/requeue",
            Some(json!({"portal_id": 12, "ids": [9_223_372_036_854_775_808u64]})),
            "ids",
        ),
        Case {
            method: M::POST,
            path: "/api/v1/sync/unassignments/requeue".into(),
            body: Some(r#"{"portal_id": 12, "ids": [-9223372036854775809]}"#.into()),
            content_type: "application/json",
            status: 422,
            slug: "validation-failed",
            field: Some("ids"),
        },
        bad_param(M::GET, "/api/v1/portals/abc/settings", "portal_id"),
        bad_param(M::GET, "/api/v1/portals/-1/settings", "portal_id"),
        bad_param(M::GET, "/api/v1/portals/0/settings", "portal_id"),
        bad_param(M::GET, "/api/v1/portals/2147483648/settings", "portal_id"),
        bad_param(
            M::GET,
            &format!("/api/v1/portals/1/settings/{}", "k".repeat(51)),
            "key",
        ),
        bad_param(M::GET, "/api/v1/user-references/1.5", "user_id"),
        bad_param(M::GET, "/api/v1/portals/1/user-references/x", "user_id"),
        bad_param(
            M::GET,
            &format!("/api/v1/okta-users/{}/references", "a".repeat(21)),
            "okta_user_id",
        ),
        bad_param(
            M::GET,
            "/api/v1/okta-users/00u-x/references",
            "okta_user_id",
        ),
        bad_param(M::GET, "/api/v1/errors/abc", "id"),
        bad_param(
            M::GET,
            "/api/v1/portals/1/user-references?status=bogus",
            "status",
        ),
        bad_param(
            M::GET,
            "/api/v1/portals/1/user-references?has_data_changes=maybe",
            "has_data_changes",
        ),
        bad_param(
            M::GET,
            "/api/v1/portals/1/user-references?cursor=%%%",
            "cursor",
        ),
        bad_param(
            M::GET,
            "/api/v1/portals/1/user-references?limit=1001",
            "limit",
        ),
        bad_param(
            M::GET,
            "/api/v1/portals/1/unassignments?state=gone",
            "state",
        ),
        bad_param(
            M::GET,
            "/api/v1/portals/1/unassignments?cursor=eyJ4IjoxfQ",
            "cursor",
        ),
        invalid(M::PUT, setting, Some(json!({})), "value"),
        invalid(M::PUT, setting, Some(json!({"value": 5})), "value"),
        invalid(
            M::PUT,
            setting,
            Some(json!({"value": "x", "extra": 1})),
            "extra",
        ),
        invalid(
            M::PUT,
            setting,
            Some(json!({"value": "v".repeat(256)})),
            "value",
        ),
        invalid(M::PUT, setting, Some(json!({"value": "🚀"})), "value"),
        case(
            M::PUT,
            "/api/v1/portals/1/settings",
            Some(json!({"settings": {"k": 1}})),
            422,
            "validation-failed",
            Some("settings.k"),
        ),
        invalid(
            M::PUT,
            "/api/v1/portals/1/settings",
            Some(json!({"settings": []})),
            "settings",
        ),
        invalid(
            M::PUT,
            "/api/v1/user-references/3",
            Some(json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNRX"})),
            "okta_user_id",
        ),
        invalid(
            M::PUT,
            "/api/v1/user-references/3",
            Some(json!({"okta_user_id": 17})),
            "okta_user_id",
        ),
        invalid(
            M::PUT,
            "/api/v1/user-references/3",
            Some(json!({})),
            "okta_user_id",
        ),
        invalid(
            M::PUT,
            reference,
            Some(json!({"okta_user_id": "00u1"})),
            "status",
        ),
        invalid(
            M::PUT,
            reference,
            Some(json!({"okta_user_id": "00u1", "status": "active"})),
            "status",
        ),
        invalid(
            M::PUT,
            reference,
            Some(json!({"okta_user_id": "00u1", "status": "synced", "has_data_changes": "yes"})),
            "has_data_changes",
        ),
        invalid(M::PATCH, reference, Some(json!({})), "body"),
        invalid(M::PATCH, reference, Some(json!({"uuid": "x"})), "uuid"),
        invalid(M::PATCH, reference, Some(json!({"status": null})), "status"),
        invalid(
            M::POST,
            "/api/v1/errors",
            Some(json!({"status_code": 429.5})),
            "status_code",
        ),
        case(
            M::POST,
            "/api/v1/portals/1/unassignments",
            Some(json!({"users": [{"user_id": -4, "okta_user_id": "00u1"}]})),
            422,
            "validation-failed",
            Some("users[0].user_id"),
        ),
        case(
            M::POST,
            "/api/v1/portals/1/unassignments",
            Some(json!({"users": [{"user_id": "4", "okta_user_id": "00u1"}]})),
            422,
            "validation-failed",
            Some("users[0].user_id"),
        ),
        bad_param(M::DELETE, "/api/v1/errors?before=now", "before"),
        case(
            M::DELETE,
            "/api/v1/portals/1/unassignments",
            None,
            405,
            "method-not-allowed",
            None,
        ),
        case(M::GET, "/api/v2/anything", None, 404, "not-found", None),
    ];
    let mut malformed = case(M::PUT, setting, None, 400, "malformed-body", None);
    malformed.body = Some(r#"{"value": "#.into());
    cases.push(malformed);
    let mut trailing = case(M::PUT, setting, None, 400, "malformed-body", None);
    trailing.body = Some(r#"{"value": "a"} {"#.into());
    cases.push(trailing);
    let mut not_json = case(M::PUT, setting, None, 415, "unsupported-media-type", None);
    not_json.body = Some("value=a".into());
    not_json.content_type = "application/x-www-form-urlencoded";
    cases.push(not_json);
    let mut no_type = case(
        M::POST,
        "/api/v1/errors",
        None,
        415,
        "unsupported-media-type",
        None,
    );
    no_type.body = Some("{}".into());
    no_type.content_type = "";
    cases.push(no_type);

    for c in cases {
        let mut req = app.client.request(c.method.clone(), app.url(&c.path));
        if let Some(body) = &c.body {
            req = req.body(body.clone());
            if !c.content_type.is_empty() {
                req = req.header("content-type", c.content_type);
            }
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("application/problem+json".to_owned()),
            "{} {}",
            c.method,
            c.path
        );
        let got = read(res).await;
        let fields = assert_problem(&got, c.status, c.slug);
        if let Some(field) = c.field {
            assert_eq!(
                fields,
                vec![field.to_owned()],
                "{} {} -> {}",
                c.method,
                c.path,
                got.1
            );
        }
    }

    // Nothing of the refused writes reached the database.
    assert_eq!(
        app.get("/api/v1/portals/1/settings").await.1["settings"],
        json!({})
    );
    assert_problem(
        &app.get("/api/v1/user-references/3").await,
        404,
        "not-found",
    );
    assert_problem(
        &app.get("/api/v1/portals/1/user-references/2").await,
        404,
        "not-found",
    );
    assert_eq!(
        app.get("/api/v1/portals/1/unassignments").await.1["counts"]["pending"],
        0
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app_on(TestDb::sqlite().await, |s| s.max_body_bytes = 64 * 1024).await;
    let big = json!({"message": "x".repeat(70 * 1024)});
    let got = app.post("/api/v1/errors", big).await;
    assert_problem(&got, 413, "payload-too-large");
    let (_, page) = app.get("/api/v1/errors").await;
    assert_eq!(page["items"], json!([]));
}
