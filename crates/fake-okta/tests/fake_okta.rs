//! The fake Okta over real HTTP: each test starts its own fake and talks to it with
//! reqwest, asserting Okta's documented behaviour.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fake_okta::{
    FakeOkta, FakeOktaConfig, Fault, FaultKind, GroupType, RateLimitBucket, UserStatus,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "SSWS test-token";

async fn fake() -> FakeOkta {
    FakeOkta::start(FakeOktaConfig::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(fake: &FakeOkta, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut req = client()
        .request(method, format!("{}{path}", fake.base_url()))
        .header("Authorization", TOKEN)
        .header("Accept", "application/json");
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request reaches the fake")
}

async fn json_of(r: Response) -> Value {
    r.json().await.expect("JSON body")
}

fn profile(login: &str) -> Value {
    json!({"firstName": "Isaac", "lastName": "Brock", "email": login, "login": login})
}

async fn create(fake: &FakeOkta, query: &str, body: Value) -> (StatusCode, Value) {
    let r = call(
        fake,
        Method::POST,
        &format!("/api/v1/users{query}"),
        Some(body),
    )
    .await;
    let status = r.status();
    (status, json_of(r).await)
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_okta_error(body: &Value, code: &str) {
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["errorLink"], code, "{body}");
    assert!(
        body["errorId"].as_str().unwrap().starts_with("oae"),
        "{body}"
    );
    assert!(body["errorSummary"].is_string(), "{body}");
    assert!(body["errorCauses"].is_array(), "{body}");
}

/// `X-Rate-Limit-Reset` of `r`, and the time now, both in epoch seconds.
fn reset_and_now(r: &Response) -> (u64, u64) {
    let reset = header(r, "x-rate-limit-reset").parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (reset, now)
}

fn next_link(r: &Response) -> Option<String> {
    r.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.ends_with("rel=\"next\""))
        .map(|v| v[1..v.find('>').unwrap()].to_owned())
}

// ---- users -------------------------------------------------------------------------

#[tokio::test]
async fn create_then_get_by_id_and_by_login_ignoring_case() {
    let fake = fake().await;
    let (status, user) = create(
        &fake,
        "",
        json!({"profile": profile("Isaac.Brock@example.com"), "credentials": {"password": {"value": "pa$$w0rdX"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "Okta answers 200, not 201");
    let id = user["id"].as_str().unwrap();
    assert_eq!(id.len(), 20);
    assert!(id.starts_with("00u"));
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(user["status"], "ACTIVE", "activate=true with a password");
    assert_eq!(user["credentials"]["password"], json!({}));
    assert_eq!(user["credentials"]["provider"]["type"], "OKTA");
    let created = user["created"].as_str().unwrap();
    assert_eq!(created.len(), "2013-07-02T21:36:25.344Z".len());
    assert!(created.ends_with('Z'));
    assert!(user["_links"]["suspend"]["href"]
        .as_str()
        .unwrap()
        .ends_with("/lifecycle/suspend"));

    let by_id = call(&fake, Method::GET, &format!("/api/v1/users/{id}"), None).await;
    assert_eq!(by_id.status(), StatusCode::OK);
    assert!(header(&by_id, "etag").starts_with("W/\""));
    assert_eq!(json_of(by_id).await["id"], id);

    let by_login = call(
        &fake,
        Method::GET,
        "/api/v1/users/isaac.BROCK%40EXAMPLE.com",
        None,
    )
    .await;
    assert_eq!(by_login.status(), StatusCode::OK);
    assert_eq!(json_of(by_login).await["id"], id);

    let short = call(&fake, Method::GET, "/api/v1/users/isaac.brock", None).await;
    assert_eq!(json_of(short).await["id"], id, "unambiguous short name");
}

#[tokio::test]
async fn activate_query_decides_the_initial_status() {
    let fake = fake().await;
    let (_, staged) = create(
        &fake,
        "?activate=false",
        json!({"profile": profile("a@example.com")}),
    )
    .await;
    assert_eq!(staged["status"], "STAGED");
    assert!(staged["activated"].is_null());
    assert!(staged["_links"]["activate"].is_object());
    let (_, provisioned) = create(&fake, "", json!({"profile": profile("b@example.com")})).await;
    assert_eq!(
        provisioned["status"], "PROVISIONED",
        "activate=true without a password"
    );
    let (_, expired) = create(
        &fake,
        "?nextLogin=changePassword",
        json!({"profile": profile("c@example.com"), "credentials": {"password": {"value": "x"}}}),
    )
    .await;
    assert_eq!(expired["status"], "PASSWORD_EXPIRED");
    let (status, err) = create(
        &fake,
        "?activate=false&nextLogin=changePassword",
        json!({"profile": profile("d@example.com"), "credentials": {"password": {"value": "x"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_okta_error(&err, "E0000125");
}

#[tokio::test]
async fn duplicate_login_ignoring_case_is_400_e0000001_with_login_cause() {
    let fake = fake().await;
    let (status, _) = create(
        &fake,
        "",
        json!({"profile": profile("isaac.brock@example.com")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = create(
        &fake,
        "",
        json!({"profile": profile("ISAAC.Brock@Example.com")}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_okta_error(&err, "E0000001");
    assert_eq!(err["errorSummary"], "Api validation failed: login");
    assert_eq!(
        err["errorCauses"][0]["errorSummary"],
        "login: An object with this field already exists in the current organization"
    );
    assert_eq!(fake.user_ids().len(), 1, "nothing was created");
}

#[tokio::test]
async fn missing_or_invalid_profile_fields_are_400_naming_the_field() {
    let fake = fake().await;
    let (status, err) = create(
        &fake,
        "",
        json!({"profile": {"firstName": "I", "email": "i@example.com", "login": "i@example.com"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_okta_error(&err, "E0000001");
    assert_eq!(err["errorSummary"], "Api validation failed: lastName");
    assert_eq!(
        err["errorCauses"][0]["errorSummary"],
        "lastName: The field cannot be left blank"
    );

    let long = "x".repeat(51);
    let (_, err) = create(
        &fake,
        "",
        json!({"profile": {"firstName": long, "lastName": "B", "email": "i@example.com", "login": "i@example.com"}}),
    )
    .await;
    assert_eq!(err["errorSummary"], "Api validation failed: firstName");

    let (_, err) = create(&fake, "", json!({"profile": profile("not-an-email")})).await;
    assert_eq!(err["errorSummary"], "Api validation failed: login");
    let causes: Vec<&str> = err["errorCauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["errorSummary"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        vec![
            "login: Username must be in the form of an email address",
            "email: Does not match required pattern"
        ]
    );

    let r = client()
        .post(format!("{}/api/v1/users", fake.base_url()))
        .header("Authorization", TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_okta_error(&json_of(r).await, "E0000003");
}

/// Real Okta's answer to a create with a property the org's schema lacks (recorded):
/// the summary names the object, only the cause names the property.
#[tokio::test]
async fn properties_outside_the_profile_schema_are_refused_until_defined() {
    let fake = fake().await;
    let mut body = profile("p@example.com");
    body["notValid"] = json!("x");
    body["department"] = json!("R&D"); // in Okta's default profile
    let (status, err) = create(&fake, "", json!({ "profile": body })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_okta_error(&err, "E0000001");
    assert_eq!(err["errorSummary"], "Api validation failed: newUser");
    assert_eq!(
        err["errorCauses"],
        json!([{"errorSummary": "Property name 'notValid' is not defined in profile"}])
    );
    assert!(fake.user_ids().is_empty(), "nothing was created");

    let (status, user) = create(&fake, "", json!({ "profile": profile("p@example.com") })).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    let r = call(
        &fake,
        Method::POST,
        &path,
        Some(json!({"profile": {"costCenter": "7", "notValid": "x"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let err = json_of(r).await;
    assert_okta_error(&err, "E0000001");
    assert_eq!(err["errorSummary"], "Api validation failed: user");
    assert_eq!(
        err["errorCauses"][0]["errorSummary"],
        "Property name 'notValid' is not defined in profile"
    );

    fake.define_profile_attribute("notValid");
    let r = call(
        &fake,
        Method::POST,
        &path,
        Some(json!({"profile": {"notValid": "x"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["profile"]["notValid"], "x");
}

#[tokio::test]
async fn unknown_ids_are_404_e0000007_with_okta_headers() {
    let fake = fake().await;
    let r = call(
        &fake,
        Method::GET,
        "/api/v1/users/00u0000000000000000",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let request_id = header(&r, "x-okta-request-id");
    assert!(!request_id.is_empty());
    assert!(header(&r, "date").ends_with(" GMT"));
    assert!(header(&r, "content-type").starts_with("application/json"));
    let err = json_of(r).await;
    assert_okta_error(&err, "E0000007");
    assert_eq!(
        err["errorSummary"],
        "Not found: Resource not found: 00u0000000000000000 (User)"
    );

    let r = call(
        &fake,
        Method::GET,
        "/api/v1/groups/00g0000000000000000",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(r).await["errorSummary"],
        "Not found: Resource not found: 00g0000000000000000 (UserGroup)"
    );

    let r = call(&fake, Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("x-okta-request-id"));
    assert!(r.headers().contains_key("x-rate-limit-remaining"));
    assert_okta_error(&json_of(r).await, "E0000008");
}

#[tokio::test]
async fn partial_update_merges_and_replace_drops_missing_properties() {
    let fake = fake().await;
    let (_, user) = create(
        &fake,
        "",
        json!({"profile": {"firstName": "I", "lastName": "B", "email": "i@example.com", "login": "i@example.com", "nickName": "ib"}}),
    )
    .await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());

    let r = call(
        &fake,
        Method::POST,
        &path,
        Some(json!({"profile": {"title": "Director"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let updated = json_of(r).await;
    assert_eq!(updated["profile"]["title"], "Director");
    assert_eq!(
        updated["profile"]["nickName"], "ib",
        "POST keeps other properties"
    );

    let r = call(
        &fake,
        Method::PUT,
        &path,
        Some(json!({"profile": {"firstName": "I", "lastName": "B", "email": "i@example.com", "login": "i@example.com"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let replaced = json_of(r).await;
    assert!(
        replaced["profile"].get("nickName").is_none(),
        "PUT deletes what it omits"
    );
    assert!(replaced["profile"].get("title").is_none());

    let r = call(
        &fake,
        Method::PUT,
        &path,
        Some(json!({"profile": {"firstName": "I"}})),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "PUT needs the required fields"
    );

    let r = client()
        .post(format!("{}{path}", fake.base_url()))
        .header("Authorization", TOKEN)
        .header("If-Match", "W/\"stale\"")
        .json(&json!({"profile": {"title": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_okta_error(&json_of(r).await, "E0000231");
}

#[tokio::test]
async fn lifecycle_follows_allowed_states_and_refuses_others_with_e0000038() {
    let fake = fake().await;
    let (_, user) = create(
        &fake,
        "?activate=false",
        json!({"profile": profile("l@example.com"), "credentials": {"password": {"value": "pw"}}}),
    )
    .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let lc = |action: &str| format!("/api/v1/users/{id}/lifecycle/{action}");

    let r = call(&fake, Method::POST, &lc("suspend"), None).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "STAGED can't be suspended"
    );
    assert_okta_error(&json_of(r).await, "E0000038");

    let r = call(
        &fake,
        Method::POST,
        &format!("{}?sendEmail=false", lc("activate")),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await;
    assert!(token["activationToken"].is_string());
    assert!(token["activationUrl"]
        .as_str()
        .unwrap()
        .contains("/tokens/"));
    assert_eq!(fake.user(&id).unwrap()["status"], "ACTIVE");

    let r = call(&fake, Method::POST, &lc("activate"), None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_okta_error(&json_of(r).await, "E0000016");

    let r = call(&fake, Method::POST, &lc("suspend"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().await.unwrap().is_empty(),
        "suspend answers 200 with no body"
    );
    assert_eq!(fake.user(&id).unwrap()["status"], "SUSPENDED");

    let r = call(&fake, Method::POST, &lc("suspend"), None).await;
    assert_okta_error(&json_of(r).await, "E0000038");

    let r = call(&fake, Method::POST, &lc("unsuspend"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(fake.user(&id).unwrap()["status"], "ACTIVE");

    let r = call(&fake, Method::POST, &lc("reactivate"), None).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "reactivate is for PROVISIONED/RECOVERY"
    );

    let r = call(&fake, Method::POST, &lc("deactivate"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await, json!({}));
    assert_eq!(fake.user(&id).unwrap()["status"], "DEPROVISIONED");

    let r = call(&fake, Method::POST, &lc("deactivate"), None).await;
    assert_okta_error(&json_of(r).await, "E0000038");
    let r = call(
        &fake,
        Method::POST,
        &format!("/api/v1/users/{id}"),
        Some(json!({"profile": {"title": "x"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_okta_error(&json_of(r).await, "E0000038");

    // Deactivation can also answer 204, as real Okta sometimes does.
    fake.set_deactivate_returns_204(true);
    let other = fake.create_user(
        "m@example.com",
        "m@example.com",
        "M",
        "N",
        UserStatus::Active,
    );
    let r = call(
        &fake,
        Method::POST,
        &format!("/api/v1/users/{other}/lifecycle/deactivate"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let locked = fake.create_user(
        "k@example.com",
        "k@example.com",
        "K",
        "L",
        UserStatus::LockedOut,
    );
    let unlock = format!("/api/v1/users/{locked}/lifecycle/unlock");
    let r = call(&fake, Method::POST, &unlock, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&fake, Method::POST, &unlock, None).await;
    assert_okta_error(&json_of(r).await, "E0000032");
}

#[tokio::test]
async fn delete_deactivates_first_and_deletes_second() {
    let fake = fake().await;
    let id = fake.create_user(
        "d@example.com",
        "d@example.com",
        "D",
        "E",
        UserStatus::Active,
    );
    let group = fake.create_group("G");
    assert!(fake.add_group_member(&group, &id));
    let path = format!("/api/v1/users/{id}");

    let r = call(&fake, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(fake.user(&id).unwrap()["status"], "DEPROVISIONED");
    assert_eq!(
        fake.group_members(&group),
        vec![id.clone()],
        "deactivated users stay members"
    );

    let r = call(&fake, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(fake.user(&id).is_none());
    assert!(fake.group_members(&group).is_empty());

    let r = call(&fake, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The login is free again once the user is gone.
    let (status, _) = create(&fake, "", json!({"profile": profile("d@example.com")})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn search_and_filter_find_users_by_login() {
    let fake = fake().await;
    let alice = fake.create_user(
        "Alice@example.com",
        "alice@example.com",
        "Alice",
        "A",
        UserStatus::Active,
    );
    let bob = fake.create_user(
        "bob@example.com",
        "bob@example.com",
        "Bob",
        "B",
        UserStatus::Active,
    );
    let gone = fake.create_user(
        "carol@example.com",
        "carol@example.com",
        "Carol",
        "C",
        UserStatus::Deprovisioned,
    );

    let list = |q: String| {
        let fake = fake.clone();
        async move {
            let r = call(&fake, Method::GET, &format!("/api/v1/users{q}"), None).await;
            let status = r.status();
            (status, json_of(r).await)
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, found) = list(format!(
        "?search={}",
        urlencode(r#"profile.login eq "alice@EXAMPLE.com""#)
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&found),
        vec![alice.clone()],
        "search values ignore case"
    );
    assert_eq!(
        found[0]["_links"].as_object().unwrap().len(),
        1,
        "collections carry only self"
    );

    let (_, found) = list(format!(
        "?filter={}",
        urlencode(r#"profile.login eq "Alice@example.com""#)
    ))
    .await;
    assert_eq!(ids(&found), vec![alice.clone()]);

    let (_, all) = list(String::new()).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "DEPROVISIONED omitted without a query"
    );
    let (_, deprov) = list(format!(
        "?search={}",
        urlencode(r#"status eq "DEPROVISIONED""#)
    ))
    .await;
    assert_eq!(ids(&deprov), vec![gone]);

    let (_, q) = list("?q=bo".into()).await;
    assert_eq!(q.as_array().unwrap().len(), 1);

    // `sortBy` sorts search results (`sortOrder` in any case); a filter ignores both.
    let active = urlencode(r#"status eq "ACTIVE""#);
    let by_name = "sortBy=profile.firstName";
    let (_, asc) = list(format!("?search={active}&{by_name}")).await;
    assert_eq!(ids(&asc), vec![alice.clone(), bob.clone()]);
    let (_, desc) = list(format!("?search={active}&{by_name}&sortOrder=DESC")).await;
    assert_eq!(ids(&desc), vec![bob.clone(), alice.clone()]);
    let (_, filtered) = list(format!("?filter={active}&{by_name}&sortOrder=desc")).await;
    assert_eq!(
        ids(&filtered),
        vec![alice.clone(), bob.clone()],
        "in creation order"
    );

    let (status, err) = list(format!(
        "?search={}&filter={}",
        urlencode(r#"status eq "ACTIVE""#),
        urlencode(r#"status eq "ACTIVE""#)
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_okta_error(&err, "E0000033");

    for bad in [
        r#"profile.nickName eq "x""#,  // not a filterable property
        r#"profile.login sw "alice""#, // filter supports only eq
        r#"status ne "ACTIVE""#,       // ne is not supported anywhere
        r#"profile.login eq "unterminated"#,
    ] {
        let (status, err) = list(format!("?filter={}", urlencode(bad))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_okta_error(&err, "E0000031");
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[tokio::test]
async fn list_users_paginates_with_link_headers() {
    let fake = fake().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(fake.create_user(
            &format!("user{i}@example.com"),
            &format!("user{i}@example.com"),
            "U",
            &format!("{i}"),
            UserStatus::Active,
        ));
    }
    let mut seen = Vec::new();
    let mut url = format!("{}/api/v1/users?limit=2", fake.base_url());
    let mut pages = 0;
    loop {
        let r = client()
            .get(&url)
            .header("Authorization", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        pages += 1;
        let links: Vec<String> = r
            .headers()
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(links[0].ends_with("rel=\"self\""), "{links:?}");
        let next = next_link(&r);
        if next.is_some() {
            assert_eq!(links.len(), 2, "self and next are separate header lines");
        }
        let page = json_of(r).await;
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match next {
            Some(n) => {
                assert!(
                    !created.iter().any(|id| n.contains(id.as_str())),
                    "cursor is opaque"
                );
                url = n;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let r = call(
        &fake,
        Method::GET,
        "/api/v1/users?after=forged-cursor",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_okta_error(&json_of(r).await, "E0000029");
}

// ---- groups ------------------------------------------------------------------------

#[tokio::test]
async fn group_membership_is_idempotent_and_checks_ids() {
    let fake = fake().await;
    let r = call(
        &fake,
        Method::POST,
        "/api/v1/groups",
        Some(json!({"profile": {"name": "Panel A", "description": "d"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let group = json_of(r).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    assert!(gid.starts_with("00g") && gid.len() == 20);
    assert_eq!(group["type"], "OKTA_GROUP");
    assert_eq!(group["objectClass"], json!(["okta:user_group"]));

    let uid = fake.create_user(
        "m@example.com",
        "m@example.com",
        "M",
        "N",
        UserStatus::Active,
    );
    let member = format!("/api/v1/groups/{gid}/users/{uid}");
    for _ in 0..2 {
        let r = call(&fake, Method::PUT, &member, None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(fake.group_members(&gid), vec![uid.clone()]);

    let r = call(
        &fake,
        Method::GET,
        &format!("/api/v1/groups/{gid}/users"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        header(&r, "link").contains("limit=1000"),
        "default member page is 1000"
    );
    let members = json_of(r).await;
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["id"], uid.as_str());

    let r = call(
        &fake,
        Method::GET,
        &format!("/api/v1/users/{uid}/groups"),
        None,
    )
    .await;
    let names: Vec<Value> = json_of(r)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["profile"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Everyone"), json!("Panel A")]);

    for _ in 0..2 {
        let r = call(&fake, Method::DELETE, &member, None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert!(fake.group_members(&gid).is_empty());

    // Okta names what it did not find: the group, or the user.
    for (path, missing) in [
        (
            format!("/api/v1/groups/00g0000000000000000/users/{uid}"),
            "(UserGroup)",
        ),
        (
            format!("/api/v1/groups/{gid}/users/00u0000000000000000"),
            "(User)",
        ),
    ] {
        let r = call(&fake, Method::PUT, &path, None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = json_of(r).await;
        let summary = body["errorSummary"].as_str().unwrap();
        assert!(summary.ends_with(missing), "{summary}");
    }

    let app_group = fake.create_group_of_type("AD group", GroupType::AppGroup);
    let r = call(
        &fake,
        Method::PUT,
        &format!("/api/v1/groups/{app_group}/users/{uid}"),
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "only OKTA_GROUP memberships can change"
    );
    assert!(fake.group_members(&app_group).is_empty());

    let r = call(
        &fake,
        Method::POST,
        "/api/v1/groups",
        Some(json!({"profile": {"name": "panel a"}})),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "group names are unique"
    );
}

#[tokio::test]
async fn group_members_and_groups_paginate() {
    let fake = fake().await;
    let gid = fake.create_group("Big");
    for i in 0..3 {
        let uid = fake.create_user(
            &format!("g{i}@example.com"),
            &format!("g{i}@example.com"),
            "G",
            "H",
            UserStatus::Active,
        );
        fake.add_group_member(&gid, &uid);
    }
    let r = call(
        &fake,
        Method::GET,
        &format!("/api/v1/groups/{gid}/users?limit=2"),
        None,
    )
    .await;
    let next = next_link(&r).expect("a second page");
    assert_eq!(json_of(r).await.as_array().unwrap().len(), 2);
    let r = client()
        .get(next)
        .header("Authorization", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(next_link(&r).is_none());
    assert_eq!(json_of(r).await.as_array().unwrap().len(), 1);

    let r = call(&fake, Method::GET, "/api/v1/groups?q=bi", None).await;
    let groups = json_of(r).await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["id"], gid.as_str());
}

// ---- auth --------------------------------------------------------------------------

#[tokio::test]
async fn bad_or_missing_credentials_are_401_e0000011() {
    let fake = fake().await;
    let url = format!("{}/api/v1/users", fake.base_url());
    for auth in [
        None,
        Some("SSWS wrong"),
        Some("Bearer not-a-token"),
        Some("Basic dXNlcjpwdw=="),
    ] {
        let mut req = client().get(&url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(r.headers().contains_key("x-okta-request-id"));
        let err = json_of(r).await;
        assert_okta_error(&err, "E0000011");
        assert_eq!(err["errorSummary"], "Invalid token provided");
    }
    fake.set_api_token(Some("rotated"));
    let r = call(&fake, Method::GET, "/api/v1/users", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "old token revoked");
}

// ---- rate limits and faults --------------------------------------------------------

#[tokio::test]
async fn rate_limit_headers_count_down_then_429_then_recover_after_window() {
    let fake = FakeOkta::start(FakeOktaConfig {
        rate_limit: 3,
        window: Duration::from_secs(1),
        ..FakeOktaConfig::default()
    })
    .await;
    let id = fake.create_user(
        "r@example.com",
        "r@example.com",
        "R",
        "L",
        UserStatus::Active,
    );
    let path = format!("/api/v1/users/{id}");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = call(&fake, Method::GET, &path, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-rate-limit-limit"), "3");
        remaining.push(header(&r, "x-rate-limit-remaining").parse::<u32>().unwrap());
    }
    assert_eq!(remaining, vec![2, 1, 0]);

    let r = call(&fake, Method::GET, &path, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "x-rate-limit-remaining"), "0");
    let (reset, now) = reset_and_now(&r);
    assert!(
        reset >= now && reset <= now + 2,
        "reset {reset} is epoch seconds near {now}"
    );
    assert!(
        !header(&r, "date").is_empty(),
        "SDKs need Date to compute the wait"
    );
    let err = json_of(r).await;
    assert_okta_error(&err, "E0000047");
    assert_eq!(
        err["errorSummary"],
        "API call exceeded rate limit due to too many requests."
    );

    // Another bucket is unaffected.
    let r = call(&fake, Method::GET, "/api/v1/groups", None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Wait for the reset the way the SDKs do.
    let wait = reset.saturating_sub(now) + 1;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = call(&fake, Method::GET, &path, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-rate-limit-remaining"), "2");

    // Limits can change at runtime, per bucket.
    fake.set_bucket_rate_limit(RateLimitBucket::UserGet, 1);
    let r = call(&fake, Method::GET, &path, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fake.request_count("GET", "/api/v1/users/{id}"), 6);
}

#[tokio::test]
async fn concurrency_limit_answers_429_with_zero_limit() {
    let fake = FakeOkta::start(FakeOktaConfig {
        concurrency_limit: 1,
        latency: Duration::from_millis(400),
        ..FakeOktaConfig::default()
    })
    .await;
    let (a, b) = tokio::join!(call(&fake, Method::GET, "/api/v1/users", None), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        call(&fake, Method::GET, "/api/v1/users", None).await
    });
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&b, "x-rate-limit-limit"), "0");
    assert_eq!(header(&b, "x-rate-limit-remaining"), "0");
    assert!(b.headers().contains_key("x-rate-limit-reset"));
    assert_okta_error(&json_of(b).await, "E0000047");

    fake.set_latency(Duration::ZERO);
    let r = call(&fake, Method::GET, "/api/v1/users", None).await;
    assert_eq!(r.status(), StatusCode::OK, "slot released");
}

#[tokio::test]
async fn injected_errors_apply_to_the_next_matching_requests_only() {
    let fake = fake().await;
    fake.inject(Fault::new(
        "GET",
        "/api/v1/users",
        FaultKind::InternalServerError,
    ));
    fake.inject(Fault::new("GET", "/api/v1/users", FaultKind::ServiceUnavailable).times(2));
    fake.inject(Fault::new(
        "POST",
        "/api/v1/groups",
        FaultKind::RateLimited {
            reset_after: Duration::from_secs(5),
        },
    ));
    assert_eq!(fake.pending_faults(), 4);

    let r = call(&fake, Method::GET, "/api/v1/groups", None).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "method and prefix must both match"
    );

    let r = call(&fake, Method::GET, "/api/v1/users", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.headers().contains_key("x-okta-request-id"));
    assert_okta_error(&json_of(r).await, "E0000009");
    for _ in 0..2 {
        let r = call(&fake, Method::GET, "/api/v1/users", None).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_okta_error(&json_of(r).await, "E0000010");
    }
    let r = call(&fake, Method::GET, "/api/v1/users", None).await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = call(
        &fake,
        Method::POST,
        "/api/v1/groups",
        Some(json!({"profile": {"name": "x"}})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "x-rate-limit-remaining"), "0");
    let (reset, now) = reset_and_now(&r);
    assert!(reset >= now + 4);
    assert_eq!(fake.pending_faults(), 0);
    assert_eq!(
        fake.request_count("GET", "/api/v1/users"),
        4,
        "faulted requests are counted"
    );
}

#[tokio::test]
async fn injected_drop_closes_the_connection_without_a_response() {
    let fake = fake().await;
    fake.inject(Fault::any_method(
        "/api/v1/users",
        FaultKind::DropConnection,
    ));
    let err = client()
        .get(format!("{}/api/v1/users", fake.base_url()))
        .header("Authorization", TOKEN)
        .send()
        .await
        .expect_err("no response");
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    let recorded = fake.requests();
    assert_eq!(recorded.last().unwrap().status, None, "never answered");

    let r = call(&fake, Method::GET, "/api/v1/users", None).await;
    assert_eq!(r.status(), StatusCode::OK, "the fake keeps serving");
}

#[tokio::test]
async fn injected_hang_trips_client_timeouts() {
    let fake = fake().await;
    fake.inject(Fault::new(
        "GET",
        "/api/v1/users/",
        FaultKind::Hang(Duration::from_secs(3)),
    ));
    let started = std::time::Instant::now();
    let err = client()
        .get(format!("{}/api/v1/users/anyone", fake.base_url()))
        .header("Authorization", TOKEN)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let r = call(&fake, Method::GET, "/api/v1/users/anyone", None).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "answers normally afterwards"
    );
}

#[tokio::test]
async fn runtime_latency_delays_answers() {
    let fake = fake().await;
    fake.set_latency(Duration::from_millis(250));
    let started = std::time::Instant::now();
    let r = call(&fake, Method::GET, "/api/v1/groups", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn requests_are_recorded_without_authorization() {
    let fake = fake().await;
    let id = fake.create_user(
        "x@example.com",
        "x@example.com",
        "X",
        "Y",
        UserStatus::Active,
    );
    client()
        .get(format!(
            "{}/api/v1/users/{id}?expand=blocks",
            fake.base_url()
        ))
        .header("Authorization", TOKEN)
        .header("X-Okta-Retry-Count", "1")
        .send()
        .await
        .unwrap();
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, format!("/api/v1/users/{id}"));
    assert_eq!(r.query.as_deref(), Some("expand=blocks"));
    assert_eq!(r.route, "/api/v1/users/{id}");
    assert_eq!(r.status, Some(200));
    assert_eq!(r.header("x-okta-retry-count"), Some("1"));
    assert!(r.header("authorization").is_none());
    assert_eq!(fake.request_count("GET", "/api/v1/users/{id}"), 1);
    assert_eq!(fake.request_count("POST", "/api/v1/users/{id}"), 0);
}

// ---- OAuth and OIDC ----------------------------------------------------------------

async fn token_request(fake: &FakeOkta, assertion: &str, scope: &str) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}/oauth2/v1/token", fake.base_url()))
        .header("Accept", "application/json")
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, json_of(r).await)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_yields_a_bearer_token() {
    let fake = fake().await;
    let aud = format!("{}/oauth2/v1/token", fake.base_url());
    let assertion = FakeOkta::sign_with_test_client_key(&json!({
        "iss": FakeOkta::TEST_CLIENT_ID, "sub": FakeOkta::TEST_CLIENT_ID, "aud": aud,
        "iat": now_secs(), "exp": now_secs() + 3600, "jti": "jti-1",
    }));
    let (status, token) =
        token_request(&fake, &assertion, "okta.users.read okta.groups.manage").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["scope"], "okta.users.read okta.groups.manage");
    let access = token["access_token"].as_str().unwrap().to_owned();

    let bearer = |path: &str, method: Method| {
        client()
            .request(method, format!("{}{path}", fake.base_url()))
            .header("Authorization", format!("Bearer {access}"))
            .send()
    };
    assert_eq!(
        bearer("/api/v1/users", Method::GET).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        bearer("/api/v1/groups", Method::GET)
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "groups.manage includes groups.read"
    );
    let r = bearer(
        "/api/v1/users/00u0000000000000000/lifecycle/suspend",
        Method::POST,
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "users.manage was not granted"
    );
    assert!(header(&r, "www-authenticate").contains("insufficient_scope"));
    assert_okta_error(&json_of(r).await, "E0000006");

    let (status, err) = token_request(&fake, &assertion, "okta.users.read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "jti replay");
    assert_eq!(err["error"], "invalid_client");

    fake.revoke_access_tokens();
    let r = bearer("/api/v1/users", Method::GET).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_okta_error(&json_of(r).await, "E0000011");

    // The handle's helper builds the same kind of assertion.
    let (status, _) =
        token_request(&fake, &fake.test_client_assertion(), "okta.users.manage").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_client_assertions_are_rejected_as_invalid_client() {
    let fake = fake().await;
    let aud = format!("{}/oauth2/v1/token", fake.base_url());
    let id = FakeOkta::TEST_CLIENT_ID;
    let n = now_secs();
    let cases = [
        (
            "wrong audience",
            FakeOkta::sign_with_test_client_key(
                &json!({"iss": id, "sub": id, "aud": "https://elsewhere/oauth2/v1/token", "exp": n + 300}),
            ),
        ),
        (
            "expired",
            FakeOkta::sign_with_test_client_key(
                &json!({"iss": id, "sub": id, "aud": aud, "exp": n - 10}),
            ),
        ),
        (
            "exp more than 1 h ahead",
            FakeOkta::sign_with_test_client_key(
                &json!({"iss": id, "sub": id, "aud": aud, "exp": n + 7200}),
            ),
        ),
        (
            "sub differs from iss",
            FakeOkta::sign_with_test_client_key(
                &json!({"iss": id, "sub": "someone", "aud": aud, "exp": n + 300}),
            ),
        ),
        (
            "unknown client",
            FakeOkta::sign_with_test_client_key(
                &json!({"iss": "0oaUNKNOWN", "sub": "0oaUNKNOWN", "aud": aud, "exp": n + 300}),
            ),
        ),
        ("signed with another key", {
            let key =
                jsonwebtoken::EncodingKey::from_rsa_der(&rsa_der(FakeOkta::test_signing_key_pem()));
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::RS256),
                &json!({"iss": id, "sub": id, "aud": aud, "exp": n + 300}),
                &key,
            )
            .unwrap()
        }),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (what, assertion) in cases {
        let (status, err) = token_request(&fake, &assertion, "okta.users.read").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {err}");
        assert_eq!(err["error"], "invalid_client", "{what}");
        assert!(err["error_description"].is_string(), "{what}");
    }
    let (status, err) =
        token_request(&fake, &fake.test_client_assertion(), "okta.apps.manage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_scope");
}

/// PKCS#1 DER of a PEM private key, to sign with a key the fake does not trust.
fn rsa_der(pem: &str) -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .unwrap()
        .to_pkcs1_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn minted_id_tokens_verify_against_the_served_jwks() {
    let fake = fake().await;
    let discovery: Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], fake.base_url());
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/oauth2/v1/token", fake.base_url())
    );
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let r = client().get(jwks_uri).send().await.unwrap();
    assert!(
        !r.headers().contains_key("x-rate-limit-limit"),
        "keys are not rate limited"
    );
    let jwks: JwkSet = r.json().await.unwrap();
    assert_eq!(jwks.keys.len(), 2);

    let verify = |token: &str| {
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid in JWKS");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[fake.base_url()]);
        v.set_audience(&["0oaPORTALclient000001"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .map(|d| d.claims)
    };

    let token = fake.mint_id_token(json!({
        "sub": "00u1fakeuser00000001", "email": "alice@example.com",
        "aud": "0oaPORTALclient000001", "nonce": "n-0S6_WzA2Mj",
    }));
    let claims = verify(&token).expect("verifies");
    assert_eq!(claims["sub"], "00u1fakeuser00000001");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["iss"], fake.base_url());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    let second =
        fake.mint_id_token_with_second_key(json!({"sub": "00u2", "aud": "0oaPORTALclient000001"}));
    assert_eq!(
        jsonwebtoken::decode_header(&second).unwrap().kid.as_deref(),
        Some(FakeOkta::SECOND_SIGNING_KEY_ID)
    );
    assert!(verify(&second).is_ok(), "key chosen by kid");

    let expired = fake.mint_id_token(
        json!({"aud": "0oaPORTALclient000001", "iat": now_secs() - 7200, "exp": now_secs() - 3600}),
    );
    assert!(verify(&expired).is_err());
    let other_aud = fake.mint_id_token(json!({"sub": "00u3"}));
    assert!(
        verify(&other_aud).is_err(),
        "default aud is not this client"
    );
}
