//! The Okta adapter over real HTTP against the fake Okta (crates/fake-okta): every test
//! starts its own fake and its own SQLite error log, drives `OktaClient` and checks
//! what the fake saw and what landed in `iam_error_log`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::TestDb;
use crate::okta_env::*;
use efs_iam::okta::{
    Activation, Bucket, NewUserProfile, OktaAuth, OktaClient, OktaError, OktaGroupType,
    OktaUserStatus, OnMissing, PrivateKeyJwt, ProfileUpdate, Removal,
};
use efs_iam::storage::{ErrorLogQuery, ErrorLogStore};
use fake_okta::{
    FakeOkta, FakeOktaConfig, Fault, FaultKind, RateLimitBucket, RecordedRequest, UserStatus,
};
use serde_json::json;

// ---- users -------------------------------------------------------------------------

#[tokio::test]
async fn gets_users_by_id_and_by_login_and_none_when_missing() {
    let e = env().await;
    let id = e.seed_user("Alice.Smith@example.com");

    let by_id = e.okta.get_user(&id).await.unwrap().expect("user exists");
    assert_eq!(by_id.id, id);
    assert_eq!(by_id.status, OktaUserStatus::Active);
    assert_eq!(by_id.profile.login, "Alice.Smith@example.com");
    assert_eq!(by_id.profile.first_name.as_deref(), Some("Ada"));

    let by_login = e
        .okta
        .get_user_by_login("alice.smith@EXAMPLE.com")
        .await
        .unwrap()
        .expect("logins compare ignoring case");
    assert_eq!(by_login.id, id);

    assert_eq!(e.okta.get_user("00uNOSUCHUSER0000001").await.unwrap(), None);
    assert_eq!(
        e.okta
            .get_user_by_login("nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        e.fake.request_count("GET", "/api/v1/users/{id}"),
        4,
        "404s are answers, not retried"
    );
    assert!(
        e.errors().await.is_empty(),
        "a missing user is not a failure"
    );
    // The login went into the path as a single segment.
    let paths: Vec<String> = e.fake.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/api/v1/users/alice.smith@EXAMPLE.com".to_owned()),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_login_with_a_slash_is_found_through_search() {
    let e = env().await;
    let id = e.seed_user("ops/admin@example.com");
    let found = e
        .okta
        .get_user_by_login("OPS/admin@example.com")
        .await
        .unwrap()
        .expect("found by search");
    assert_eq!(found.id, id);
    assert_eq!(e.fake.request_count("GET", "/api/v1/users"), 1);
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 0);
}

#[tokio::test]
async fn a_404_that_is_not_resource_not_found_is_an_error_not_none() {
    let e = env().await;
    e.fail_next_user_read(FaultKind::Response {
        status: 404,
        body: json!({"errorCode": "E0000008", "errorSummary": "The requested path was not found", "errorCauses": []}),
    });
    let err = e.okta.get_user("00uSOMEONE0000000001").await.unwrap_err();
    assert!(matches!(err, OktaError::NotFound(_)), "{err:?}");
    assert_eq!(err.api_error().unwrap().error_code, "E0000008");
    assert_eq!(e.errors().await.len(), 1);
}

#[tokio::test]
async fn creates_active_and_staged_users_with_extra_attributes() {
    let e = env().await;
    let active = e
        .okta
        .create_user(
            &profile("grace@example.com").with_attribute("department", "Navy"),
            Activation::Activate,
        )
        .await
        .unwrap();
    // No password: Okta (and the fake, by default) provisions and emails a link.
    assert_eq!(active.status, OktaUserStatus::Provisioned);
    assert_eq!(active.profile.extra["department"], "Navy");
    assert_eq!(
        e.fake.user(&active.id).unwrap()["profile"]["department"],
        "Navy"
    );

    let staged = e
        .okta
        .create_user(&profile("staged@example.com"), Activation::Stage)
        .await
        .unwrap();
    assert_eq!(staged.status, OktaUserStatus::Staged);
    assert_eq!(e.fake.user(&staged.id).unwrap()["status"], "STAGED");

    let queries: Vec<Option<String>> = e
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(
        queries,
        vec![Some("activate=true".into()), Some("activate=false".into())]
    );
}

#[tokio::test]
async fn a_duplicate_login_is_recognised_and_logged() {
    let e = env().await;
    e.seed_user("dup@example.com");
    let err = e
        .okta
        .create_user(&profile("DUP@example.com"), Activation::Stage)
        .await
        .unwrap_err();
    assert!(err.is_duplicate_login(), "{err:?}");
    assert_eq!(err.validation_field(), Some("login"));
    let api = err.api_error().unwrap();
    assert_eq!((api.status, api.error_code.as_str()), (400, "E0000001"));
    assert!(api.request_id.is_some());
    assert_eq!(
        e.fake.request_count("POST", "/api/v1/users"),
        1,
        "validation errors are not retried"
    );

    let rows = e.errors().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row.status_code, row.error_code.as_str()),
        (400, "E0000001")
    );
    let message = row.message.as_deref().unwrap();
    assert!(
        message.contains("Api validation failed: login"),
        "{message}"
    );
    assert!(message.contains("already exists"), "{message}");
    assert!(message.ends_with(" [final]"), "{message}");
    let trace = row.trace.as_deref().unwrap();
    assert!(
        trace.starts_with("POST /api/v1/users?activate=false"),
        "{trace}"
    );
    assert!(
        trace.contains(api.request_id.as_deref().unwrap()),
        "{trace}"
    );
    assert!(trace.contains("errorCauses"), "the body is kept: {trace}");
}

#[tokio::test]
async fn a_bad_profile_is_a_validation_error_naming_the_field() {
    let e = env().await;
    let err = e
        .okta
        .create_user(
            &NewUserProfile::new("valid@example.com", "not-an-email", "A", "B"),
            Activation::Stage,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, OktaError::Validation(_)), "{err:?}");
    assert!(!err.is_duplicate_login());
    assert_eq!(err.validation_field(), Some("email"));
    assert!(err
        .to_string()
        .contains("email: Does not match required pattern"));
}

/// Okta's answer to a property its profile schema lacks (recorded from real Okta):
/// the summary names the object (`newUser`), only the cause names the property. The
/// adapter keeps the cause verbatim and does not take the summary's word for a field.
#[tokio::test]
async fn an_undefined_profile_property_is_refused_with_okta_s_cause() {
    let e = env().await;
    let mut bad = profile("schema@example.com");
    bad.extra.insert("notValid".into(), json!("x"));
    let err = e
        .okta
        .create_user(&bad, Activation::Stage)
        .await
        .unwrap_err();
    assert!(matches!(err, OktaError::Validation(_)), "{err:?}");
    let api = err.api_error().unwrap();
    assert_eq!(
        (api.status, api.error_code.as_str(), api.summary.as_str()),
        (400, "E0000001", "Api validation failed: newUser")
    );
    assert_eq!(
        api.causes,
        ["Property name 'notValid' is not defined in profile"]
    );
    assert_eq!(err.validation_field(), None, "newUser is no field");

    // The same on update, where Okta calls the object `user`.
    let id = e.seed_user("schema@example.com");
    let mut update = ProfileUpdate::default();
    update.extra.insert("notValid".into(), json!("x"));
    let err = e.okta.update_user_profile(&id, &update).await.unwrap_err();
    let api = err.api_error().unwrap();
    assert_eq!(api.summary, "Api validation failed: user");
    assert_eq!(
        api.causes,
        ["Property name 'notValid' is not defined in profile"]
    );

    // Once the org's schema has it, Okta takes it.
    e.fake.define_profile_attribute("notValid");
    let updated = e.okta.update_user_profile(&id, &update).await.unwrap();
    assert_eq!(updated.profile.extra["notValid"], "x");

    let rows = e.errors().await;
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_deref().unwrap()).collect();
    assert_eq!(
        messages,
        [
            "Api validation failed: user (Property name 'notValid' is not defined in profile) [final]",
            "Api validation failed: newUser (Property name 'notValid' is not defined in profile) [final]",
        ],
        "every cause verbatim, marked final"
    );
}

#[tokio::test]
async fn partial_update_changes_only_the_given_fields() {
    let e = env().await;
    let id = e.seed_user("update@example.com");
    let updated = e
        .okta
        .update_user_profile(
            &id,
            &ProfileUpdate {
                last_name: Some("Byron".into()),
                extra: [("nickName".to_owned(), json!("Countess"))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.profile.last_name.as_deref(), Some("Byron"));
    assert_eq!(updated.profile.first_name.as_deref(), Some("Ada"), "kept");
    let stored = e.fake.user(&id).unwrap();
    assert_eq!(stored["profile"]["lastName"], "Byron");
    assert_eq!(stored["profile"]["firstName"], "Ada");
    assert_eq!(stored["profile"]["nickName"], "Countess");
    assert_eq!(e.fake.request_count("POST", "/api/v1/users/{id}"), 1);

    let empty = e
        .okta
        .update_user_profile(&id, &ProfileUpdate::default())
        .await;
    assert!(matches!(empty, Err(OktaError::InvalidInput(_))));
}

#[tokio::test]
async fn deactivation_accepts_200_and_204_and_refuses_a_deprovisioned_user() {
    let e = env().await;
    let a = e.seed_user("a@example.com");
    let b = e.seed_user("b@example.com");

    e.fake.set_deactivate_returns_204(false);
    e.okta.deactivate_user(&a).await.expect("200 {} accepted");
    e.fake.set_deactivate_returns_204(true);
    e.okta.deactivate_user(&b).await.expect("204 accepted");
    for id in [&a, &b] {
        assert_eq!(e.fake.user(id).unwrap()["status"], "DEPROVISIONED");
    }

    let again = e.okta.deactivate_user(&a).await.unwrap_err();
    assert!(matches!(again, OktaError::ForbiddenState(_)), "{again:?}");
    assert_eq!(again.api_error().unwrap().error_code, "E0000038");
    let missing = e
        .okta
        .deactivate_user("00uNOSUCHUSER0000001")
        .await
        .unwrap_err();
    assert!(matches!(missing, OktaError::NotFound(_)), "{missing:?}");
    assert_eq!(
        e.fake
            .request_count("POST", "/api/v1/users/{id}/lifecycle/deactivate"),
        4,
        "no retries on 403/404"
    );
    let codes: Vec<(i16, String)> = e
        .errors()
        .await
        .into_iter()
        .map(|r| (r.status_code, r.error_code))
        .collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.contains(&(403, "E0000038".into())));
    assert!(codes.contains(&(404, "E0000007".into())));
}

// ---- groups ------------------------------------------------------------------------

#[tokio::test]
async fn adds_and_removes_members() {
    let e = env().await;
    let group = e.fake.create_group("EFS Panel");
    let user = e.seed_user("member@example.com");

    e.okta.add_group_member(&group, &user).await.unwrap();
    assert_eq!(e.fake.group_members(&group), vec![user.clone()]);
    e.okta
        .add_group_member(&group, &user)
        .await
        .expect("idempotent");

    let removed = e
        .okta
        .remove_group_member(&group, &user, OnMissing::Fail)
        .await
        .unwrap();
    assert_eq!(removed, Removal::Removed);
    assert!(e.fake.group_members(&group).is_empty());

    // A non-member of an existing group: Okta answers 204.
    let again = e
        .okta
        .remove_group_member(&group, &user, OnMissing::Fail)
        .await
        .unwrap();
    assert_eq!(again, Removal::Removed);

    // No such group: 404, which the caller decides about.
    let missing = "00gNOSUCHGROUP000001";
    let err = e
        .okta
        .remove_group_member(missing, &user, OnMissing::Fail)
        .await
        .unwrap_err();
    assert!(matches!(err, OktaError::NotFound(_)), "{err:?}");
    let gone = e
        .okta
        .remove_group_member(missing, &user, OnMissing::TreatAsRemoved)
        .await
        .unwrap();
    assert_eq!(gone, Removal::AlreadyGone);

    let add = e.okta.add_group_member(missing, &user).await.unwrap_err();
    assert!(matches!(add, OktaError::NotFound(_)));
    assert_eq!(
        e.fake
            .request_count("PUT", "/api/v1/groups/{groupId}/users/{userId}"),
        3,
        "the 404 was not retried"
    );
    // Only the two 404s the caller did not ask to tolerate are failures.
    assert_eq!(e.errors().await.len(), 2);
}

#[tokio::test]
async fn lists_members_across_pages_and_a_users_groups() {
    let e = env_with(fake().await, ssws("test-token"), |c| c.page_size = 3).await;
    let group = e.fake.create_group("Big panel");
    let other = e.fake.create_group("Other panel");
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = e.seed_user(&format!("m{i}@example.com"));
        assert!(e.fake.add_group_member(&group, &id));
        ids.push(id);
    }
    assert!(e.fake.add_group_member(&other, &ids[0]));

    let members = e.okta.list_group_members(&group).await.unwrap();
    assert_eq!(
        members.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        e.fake
            .request_count("GET", "/api/v1/groups/{groupId}/users"),
        3,
        "3 + 3 + 1"
    );
    let queries: Vec<String> = e
        .fake
        .requests()
        .iter()
        .filter(|r| r.route == "/api/v1/groups/{groupId}/users")
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(queries[0], "limit=3");
    assert!(queries[1].contains("after=") && queries[2].contains("after="));
    assert_ne!(queries[1], queries[2]);

    let groups = e.okta.list_user_groups(&ids[0]).await.unwrap();
    let mut names: Vec<&str> = groups.iter().map(|g| g.profile.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["Big panel", "Everyone", "Other panel"]);
    let everyone = groups
        .iter()
        .find(|g| g.profile.name == "Everyone")
        .unwrap();
    assert_eq!(everyone.group_type, OktaGroupType::BuiltIn);
}

// ---- authentication ----------------------------------------------------------------

#[tokio::test]
async fn a_wrong_api_token_is_an_auth_error_that_shows_no_secret() {
    const SECRET: &str = "00WRONGtokenSECRET123456789";
    let e = env_with(fake().await, ssws(SECRET), |_| {}).await;
    let id = e.seed_user("x@example.com");
    let err = e.okta.get_user(&id).await.unwrap_err();
    assert!(matches!(err, OktaError::Auth(_)), "{err:?}");
    assert_eq!(err.api_error().unwrap().error_code, "E0000011");
    assert!(!err.to_string().contains(SECRET));
    assert!(!format!("{err:?}").contains(SECRET));
    assert!(!format!("{:?}", e.okta).contains(SECRET));
    assert_eq!(
        e.fake.request_count("GET", "/api/v1/users/{id}"),
        1,
        "a 401 with an API token is not retried"
    );
    let failure = e.okta.last_auth_failure().expect("remembered");
    assert_eq!(
        (failure.status, failure.error_code.as_str()),
        (401, "E0000011")
    );
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status_code, 401);
    let stored = format!("{:?}", rows[0]);
    assert!(!stored.contains(SECRET), "{stored}");
    assert!(e.okta.status().last_auth_failure.is_some());
    // Repeated, the refusals are counted on that row, which holds no secret either.
    for _ in 0..2 {
        assert!(e.okta.get_user(&id).await.is_err());
    }
    e.okta.flush_error_log().await;
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0]
        .message
        .as_deref()
        .unwrap()
        .contains("[final; ×3 within 60 s"));
    let stored = format!("{rows:?}");
    assert!(!stored.contains(SECRET), "{stored}");
}

#[tokio::test]
async fn oauth_token_is_fetched_once_and_reused() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None, // only Bearer tokens work: proves the client uses OAuth
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let id = e.seed_user("oauth@example.com");
    let group = e.fake.create_group("OAuth panel");
    for _ in 0..3 {
        assert!(e.okta.get_user(&id).await.unwrap().is_some());
    }
    e.okta.add_group_member(&group, &id).await.unwrap();
    assert_eq!(e.okta.list_group_members(&group).await.unwrap().len(), 1);
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 1);
    let token_request = e
        .fake
        .requests()
        .into_iter()
        .find(|r| r.route == "/oauth2/v1/token")
        .unwrap();
    assert_eq!(
        token_request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(e.okta.status().auth_method, "private_key_jwt");
    assert!(e.errors().await.is_empty());
}

#[tokio::test]
async fn oauth_token_is_renewed_before_it_expires() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        access_token_lifetime: Duration::from_secs(2),
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let id = e.seed_user("short@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 1);
    // Renewal is due at 3/4 of the lifetime (1.5 s).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);
    assert!(
        e.fake.requests().iter().all(|r| r.status != Some(401)),
        "renewed before Okta refused it"
    );
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_on_401() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let id = e.seed_user("revoked@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    e.fake.revoke_access_tokens();
    e.okta
        .get_user(&id)
        .await
        .unwrap()
        .expect("renewed and answered");
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);
    let requests = e.fake.requests();
    let refused: Vec<&RecordedRequest> =
        requests.iter().filter(|r| r.status == Some(401)).collect();
    assert_eq!(refused.len(), 1);
    let resent = retries(&requests);
    assert_eq!(resent.len(), 1);
    assert_eq!(
        resent[0].header("x-okta-retry-for"),
        Some(refused[0].request_id.as_str())
    );
    assert!(
        e.okta.last_auth_failure().is_none(),
        "recovered, not a failure"
    );
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].status_code, rows[0].error_code.as_str()),
        (401, "E0000011")
    );
    assert_eq!(
        rows[0].message.as_deref(),
        Some("Invalid token provided [retried with a new access token (attempt 1)]")
    );
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let id = e.seed_user("tokenretry@example.com");
    e.fake.inject(Fault::new(
        "POST",
        "/oauth2/v1/token",
        FaultKind::ServiceUnavailable,
    ));
    e.okta
        .get_user(&id)
        .await
        .unwrap()
        .expect("second token fetch works");
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 1);
    assert!(
        e.okta.last_auth_failure().is_none(),
        "an outage is not an auth failure"
    );
}

#[tokio::test]
async fn a_second_401_after_renewal_is_an_auth_error() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let refused = FaultKind::Response {
        status: 401,
        body: json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided", "errorCauses": []}),
    };
    e.fake
        .inject(Fault::new("GET", "/api/v1/users/", refused).times(2));
    let err = e.okta.get_user("00uWHOEVER000000001").await.unwrap_err();
    assert!(matches!(err, OktaError::Auth(_)), "{err:?}");
    assert_eq!(err.attempts(), 2, "one renewal, then give up");
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 2);
    let failure = e.okta.last_auth_failure().expect("remembered");
    assert_eq!(failure.error_code, "E0000011");
    e.assert_logged(&[
        (
            401,
            "E0000011",
            "Invalid token provided [final (gave up after 2 attempts)]",
        ),
        (
            401,
            "E0000011",
            "Invalid token provided [retried with a new access token (attempt 1)]",
        ),
    ])
    .await;
}

#[tokio::test]
async fn an_unknown_oauth_client_is_an_auth_error() {
    let fake = fake().await;
    let auth = OktaAuth::PrivateKeyJwt(
        PrivateKeyJwt::from_pem(
            "0oaUNKNOWNclient0001",
            FakeOkta::test_client_private_key_pem(),
            None,
            vec!["okta.users.manage".into()],
        )
        .unwrap(),
    );
    let e = env_with(fake, auth, |_| {}).await;
    let err = e.okta.get_user("00u1").await.unwrap_err();
    let api = err.api_error().expect("the token endpoint's answer");
    assert!(matches!(err, OktaError::Auth(_)), "{err:?}");
    assert_eq!(api.error_code, "invalid_client");
    assert_eq!(api.route, "/oauth2/v1/token");
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 0);
    let failure = e.okta.last_auth_failure().unwrap();
    assert_eq!(failure.error_code, "invalid_client");
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].error_code, "invalid_client");
    let trace = rows[0].trace.as_deref().unwrap();
    assert!(trace.starts_with("POST /oauth2/v1/token"), "{trace}");
    assert!(
        trace.contains("while calling: GET /api/v1/users/{id}"),
        "{trace}"
    );
    assert!(
        !trace.contains("client_assertion="),
        "no request body: {trace}"
    );
}

// ---- rate limits and concurrency ---------------------------------------------------

#[tokio::test]
async fn a_429_storm_is_waited_out_using_the_reset_header() {
    let fake = FakeOkta::start(FakeOktaConfig {
        window: Duration::from_secs(2),
        ..FakeOktaConfig::default()
    })
    .await;
    fake.set_bucket_rate_limit(RateLimitBucket::UserGet, 6);
    let e = env_with(fake, ssws("test-token"), |c| c.rate_share = 1.0).await;
    let id = e.seed_user("storm@example.com");

    // efs-iam learns the bucket (6 a window, 5 left)...
    e.okta.get_user(&id).await.unwrap().unwrap();
    // ...then another client of the org uses up the rest behind its back.
    let other = reqwest::Client::new();
    let mut reset = 0u64;
    for _ in 0..5 {
        let r = other
            .get(format!("{}/api/v1/users/{id}", e.fake.base_url()))
            .header("Authorization", "SSWS test-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        reset = r.headers()["x-rate-limit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
    }
    let before = e.fake.requests().len();

    for answer in e.read_user_concurrently(&id, 6).await {
        assert!(answer.unwrap().is_some(), "every call succeeds in the end");
    }

    let ours: Vec<RecordedRequest> = e.fake.requests()[before..].to_vec();
    let refused: Vec<&RecordedRequest> = ours.iter().filter(|r| r.status == Some(429)).collect();
    assert_eq!(
        refused.len(),
        5,
        "the five requests efs-iam thought it had left all hit the exhausted bucket"
    );
    let resent = retries(&ours);
    assert_eq!(resent.len(), refused.len(), "each 429 was retried once");
    for retry in &resent {
        let failed = retry.header("x-okta-retry-for").expect("Retry-For header");
        let original = refused
            .iter()
            .find(|r| r.request_id == failed)
            .expect("Retry-For names a 429 answer");
        assert_eq!(retry.header("x-okta-retry-count"), Some("1"));
        assert_eq!(retry.status, Some(200));
        // Waited Reset − Date + 1 s: past the reset the 429 named, plus the slack.
        let waited = retry
            .received_at
            .duration_since(original.received_at)
            .unwrap();
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
        assert!(
            epoch(retry.received_at) >= Duration::from_secs(reset),
            "retried before the reset"
        );
    }

    // Five identical 429s in one window: one row, written at once, which gets the
    // count when the window closes (here: flushed).
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let first_message = rows[0].message.clone().unwrap();
    assert!(
        first_message.starts_with(
            "API call exceeded rate limit due to too many requests. [rate limit; retried (attempt 1 of 4, retrying in "
        ),
        "{first_message}"
    );
    e.okta.flush_error_log().await;
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1, "still one row: {rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.status_code, row.error_code.as_str()),
        (429, "E0000047")
    );
    let trace = row.trace.as_deref().unwrap();
    assert!(trace.contains("rate limit: limit=6 remaining=0"), "{trace}");
    assert!(
        refused.iter().any(|r| trace.contains(&r.request_id)),
        "{trace}"
    );
    let count_message = row.message.as_deref().unwrap();
    assert!(
        count_message.starts_with(
            "API call exceeded rate limit due to too many requests. [rate limit; retried; ×5 within 60 s from "
        ),
        "{count_message}"
    );
    let bucket = e.bucket(Bucket::UserGet);
    assert_eq!(bucket.rate_limited, 5);
    assert_eq!(bucket.limit, Some(6));
}

#[tokio::test]
async fn a_concurrency_429_backs_off_and_retries() {
    let e = env().await;
    let id = e.seed_user("conc@example.com");
    e.fail_next_user_read(FaultKind::ConcurrencyLimited);
    let started = Instant::now();
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the estimate + 1 s"
    );
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 2);
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .message
        .as_deref()
        .unwrap()
        .contains("concurrency limit"));
    let status = e.okta.status();
    assert_eq!(status.buckets[0].concurrency_limited, 1);
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_cap() {
    let fake = FakeOkta::start(FakeOktaConfig {
        latency: Duration::from_millis(150),
        concurrency_limit: 3, // Okta would answer a 4th concurrent request with 429
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, ssws("test-token"), |c| c.max_concurrency = 3).await;
    let id = e.seed_user("busy@example.com");

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let okta = e.okta.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(okta.status().in_flight);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };
    let started = Instant::now();
    for answer in e.read_user_concurrently(&id, 12).await {
        answer.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max_in_flight = sampler.await.unwrap();

    assert!(max_in_flight <= 3, "max in flight {max_in_flight}");
    assert!(
        max_in_flight >= 2,
        "calls did run in parallel ({max_in_flight})"
    );
    assert!(
        e.fake.requests().iter().all(|r| r.status == Some(200)),
        "no concurrency 429"
    );
    // 12 calls of 150 ms, at most 3 at a time: at least 4 rounds.
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(e.errors().await.is_empty());
}

/// The fake's windows, rebuilt from arrival times: a window starts with the first
/// request after the previous one ended.
fn per_window_counts(requests: &[RecordedRequest], window: Duration) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut start: Option<SystemTime> = None;
    for r in requests {
        match start {
            Some(s) if r.received_at < s + window => *counts.last_mut().unwrap() += 1,
            _ => {
                start = Some(r.received_at);
                counts.push(1);
            }
        }
    }
    counts
}

#[tokio::test]
async fn the_governor_keeps_use_under_the_share() {
    let window = Duration::from_secs(2);
    let fake = FakeOkta::start(FakeOktaConfig {
        window,
        ..FakeOktaConfig::default()
    })
    .await;
    fake.set_bucket_rate_limit(RateLimitBucket::UserGet, 20);
    let e = env_with(fake, ssws("test-token"), |c| c.rate_share = 0.5).await;
    let id = e.seed_user("paced@example.com");

    let started = Instant::now();
    for answer in e.read_user_concurrently(&id, 25).await {
        answer.unwrap().unwrap();
    }
    let elapsed = started.elapsed();

    let requests = e.fake.requests();
    assert_eq!(requests.len(), 25, "no retries were needed");
    assert!(requests.iter().all(|r| r.status == Some(200)), "no 429");
    let counts = per_window_counts(&requests, window);
    assert!(counts.iter().all(|c| *c <= 10), "per window: {counts:?}");
    assert!(counts.len() >= 3, "25 calls at 10 per window: {counts:?}");
    assert!(elapsed >= 2 * window, "{elapsed:?}");

    let bucket = e.bucket(Bucket::UserGet);
    assert_eq!((bucket.limit, bucket.allowance), (Some(20), Some(10)));
    assert!(bucket.paced > 0);
    assert_eq!(bucket.rate_limited, 0);
    assert!(e.errors().await.is_empty());
}

#[tokio::test]
async fn instances_leave_each_other_the_share_through_remaining() {
    // Two efs-iam instances, share 0.5 of a 10-request bucket, not talking to each
    // other. When B has used 5 in a window, A sees Remaining at the reserve (5) and
    // waits for the next window instead of taking what others are owed.
    let window = Duration::from_secs(2);
    let fake = FakeOkta::start(FakeOktaConfig {
        window,
        ..FakeOktaConfig::default()
    })
    .await;
    fake.set_bucket_rate_limit(RateLimitBucket::UserGet, 10);
    let a = env_with(fake.clone(), ssws("test-token"), |_| {}).await;
    let b = env_with(fake.clone(), ssws("test-token"), |_| {}).await;
    let id = a.seed_user("shared@example.com");

    for _ in 0..5 {
        b.okta.get_user(&id).await.unwrap().unwrap();
    }
    let b_window_reset = b.okta.status().buckets[0].reset_at.unwrap();
    let a_started = fake.requests().len();
    for _ in 0..4 {
        a.okta.get_user(&id).await.unwrap().unwrap();
    }
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.status == Some(200)), "no 429");
    let a_requests = &requests[a_started..];
    let in_b_window = a_requests
        .iter()
        .filter(|r| epoch(r.received_at) < Duration::from_secs(b_window_reset.timestamp() as u64))
        .count();
    assert_eq!(
        in_b_window, 1,
        "A sent only its first request (which learns the bucket) into B's window"
    );
    let counts = per_window_counts(&requests, window);
    assert_eq!(counts[0], 6, "per window: {counts:?}");
    let a_bucket = a.okta.status().buckets[0].clone();
    assert!(a_bucket.paced >= 1);
}

// ---- retries -----------------------------------------------------------------------

#[tokio::test]
async fn a_500_is_retried_with_okta_retry_headers() {
    let e = env().await;
    let id = e.seed_user("flaky@example.com");
    e.fail_next_user_read(FaultKind::InternalServerError);
    e.okta
        .get_user(&id)
        .await
        .unwrap()
        .expect("second attempt answers");
    let requests = e.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(500));
    assert_eq!(requests[1].header("x-okta-retry-count"), Some("1"));
    assert_eq!(
        requests[1].header("x-okta-retry-for"),
        Some(requests[0].request_id.as_str())
    );
    let rows = e.errors().await;
    assert_eq!(
        rows.len(),
        1,
        "a 500 is an error received from Okta, even when overcome"
    );
    assert_eq!(
        (rows[0].status_code, rows[0].error_code.as_str()),
        (500, "E0000009")
    );
    assert_eq!(
        rows[0].message.as_deref(),
        Some("Internal Server Error [retried (attempt 1 of 4)]")
    );
    assert!(rows[0]
        .trace
        .as_deref()
        .unwrap()
        .contains(&format!("X-Okta-Request-Id: {}", requests[0].request_id)));
}

#[tokio::test]
async fn a_persistent_500_gives_up_after_the_retries_and_is_logged() {
    let e = env_with(fake().await, ssws("test-token"), |c| c.max_retries = 2).await;
    let group = e.fake.create_group("Down");
    let user = e.seed_user("down@example.com");
    e.fake
        .inject(Fault::new("PUT", "/api/v1/groups/", FaultKind::InternalServerError).times(10));
    let err = e.okta.add_group_member(&group, &user).await.unwrap_err();
    assert!(matches!(err, OktaError::Server(_)), "{err:?}");
    assert_eq!(err.attempts(), 3);
    assert!(err.is_transient());
    assert_eq!(
        e.fake
            .request_count("PUT", "/api/v1/groups/{groupId}/users/{userId}"),
        3
    );
    e.okta.flush_error_log().await;
    let rows = e.errors().await;
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_deref().unwrap()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[1].starts_with("Internal Server Error [retried; ×2 within 60 s from "),
        "the retried answers' row, with their count (flushed): {messages:?}"
    );
    assert_eq!(
        messages[0],
        "Internal Server Error [final (gave up after 3 attempts)]"
    );
    let row = &rows[0];
    assert_eq!(
        (row.status_code, row.error_code.as_str()),
        (500, "E0000009")
    );
    let trace = row.trace.as_deref().unwrap();
    let last = e.fake.requests().last().unwrap().request_id.clone();
    assert!(
        trace.contains(&format!("X-Okta-Request-Id: {last}")),
        "{trace}"
    );
    assert!(trace.contains("attempt: 3"), "{trace}");
    assert!(
        trace.contains(&format!("PUT /api/v1/groups/{group}/users/{user}")),
        "{trace}"
    );
}

#[tokio::test]
async fn a_hang_times_out_and_is_retried() {
    let e = env_with(fake().await, ssws("test-token"), |c| {
        c.timeout = Duration::from_millis(300);
    })
    .await;
    let id = e.seed_user("slow@example.com");
    e.fail_next_user_read(FaultKind::Hang(Duration::from_secs(2)));
    let started = Instant::now();
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not wait for the hang"
    );
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 2);
    let retry = e.fake.requests().into_iter().last().unwrap();
    assert_eq!(retry.header("x-okta-retry-count"), Some("1"));
    assert_eq!(retry.header("x-okta-retry-for"), None, "no answer to name");
}

#[tokio::test]
async fn persistent_timeouts_end_in_a_timeout_error_logged_with_status_0() {
    let e = env_with(fake().await, ssws("test-token"), |c| {
        c.timeout = Duration::from_millis(200);
        c.max_retries = 1;
    })
    .await;
    e.fake.inject(
        Fault::new(
            "GET",
            "/api/v1/users/",
            FaultKind::Hang(Duration::from_secs(1)),
        )
        .times(2),
    );
    let err = e.okta.get_user("00uSLOW").await.unwrap_err();
    assert!(
        matches!(err, OktaError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    let rows = e.errors().await;
    e.assert_logged(&[
        (
            0,
            "timeout",
            "Okta did not answer GET /api/v1/users/{id} in time [final (gave up after 2 attempts)]",
        ),
        (
            0,
            "timeout",
            "Okta did not answer GET /api/v1/users/{id} in time [retried (attempt 1 of 2)]",
        ),
    ])
    .await;
    assert!(rows[0]
        .trace
        .as_deref()
        .unwrap()
        .contains("X-Okta-Request-Id: -"));
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let e = env().await;
    let id = e.seed_user("dropped@example.com");
    e.fail_next_user_read(FaultKind::DropConnection);
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 2);
    assert_eq!(e.fake.pending_faults(), 0);
    let rows = e.errors().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].status_code, rows[0].error_code.as_str()),
        (0, "connection")
    );
    let message = rows[0].message.as_deref().unwrap();
    assert!(
        message.starts_with("could not reach Okta for GET /api/v1/users/{id}: "),
        "{message}"
    );
    assert!(message.ends_with("[retried (attempt 1 of 4)]"), "{message}");
}

/// An Okta incident answers many requests alike: one row for the first answer, which
/// gets the count when the window ends, not a row per answer; answers that differ
/// (another status, another text, final rather than retried) are series of their own.
#[tokio::test]
async fn identical_error_answers_within_a_window_share_one_row() {
    let window = Duration::from_secs(3);
    let e = env_with(fake().await, ssws("test-token"), |c| {
        c.error_log_window = window;
    })
    .await;
    let id = e.seed_user("incident@example.com");
    let started = Instant::now();
    for _ in 0..3 {
        e.fake
            .inject(Fault::new("GET", "/api/v1/users/", FaultKind::InternalServerError).times(2));
        e.okta
            .get_user(&id)
            .await
            .unwrap()
            .expect("the third attempt answers");
    }
    e.fail_next_user_read(FaultKind::ServiceUnavailable);
    e.okta.get_user(&id).await.unwrap().unwrap();
    let rows = e.errors().await;
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_deref().unwrap()).collect();
    assert_eq!(
        messages,
        [
            "Service is in read only mode [retried (attempt 1 of 4)]",
            "Internal Server Error [retried (attempt 1 of 4)]",
        ],
        "six 500s in one row so far, the 503 in its own"
    );

    assert!(
        started.elapsed() < window,
        "the test ran too slowly to tell"
    );
    // The window ends: the count is written without anyone asking.
    tokio::time::sleep((started + window + Duration::from_millis(500)) - Instant::now()).await;
    let rows = e.errors().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let count = rows
        .iter()
        .find(|r| r.message.as_deref().unwrap().contains('×'))
        .expect("the count on the first row");
    let message = count.message.as_deref().unwrap();
    assert!(
        message.starts_with("Internal Server Error [retried; ×6 within 3 s from "),
        "{message}"
    );
    assert_eq!(
        (count.status_code, count.error_code.as_str()),
        (500, "E0000009")
    );
    let last_500 = e
        .fake
        .requests()
        .into_iter()
        .rfind(|r| r.status == Some(500))
        .unwrap();
    let trace = count.trace.as_deref().unwrap();
    assert!(trace.starts_with("6 identical answers from "), "{trace}");
    assert!(
        trace.contains(&format!("X-Okta-Request-Id: {}", last_500.request_id)),
        "the last answer's trace: {trace}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.message.as_deref().unwrap().contains("×1")),
        "a lone answer gets no count row"
    );

    // A later answer opens a new window with a row of its own.
    e.fail_next_user_read(FaultKind::InternalServerError);
    e.okta.get_user(&id).await.unwrap().unwrap();
    e.okta.flush_error_log().await;
    assert_eq!(e.errors().await.len(), 3);
}

// ---- error log robustness and configuration -----------------------------------------

#[tokio::test]
async fn a_failing_error_log_does_not_fail_the_okta_call() {
    let fake = fake().await;
    // A database without the iam_error_log table: every log write fails.
    let db = TestDb::sqlite_with(crate::common::options(), false).await;
    let okta = OktaClient::new(config(&fake, ssws("test-token")), Some(db.store.clone())).unwrap();
    let id = fake.create_user(
        "log@example.com",
        "log@example.com",
        "L",
        "G",
        UserStatus::Active,
    );
    fake.inject(Fault::new(
        "GET",
        "/api/v1/users/",
        FaultKind::RateLimited {
            reset_after: Duration::from_millis(10),
        },
    ));
    assert!(
        okta.get_user(&id).await.unwrap().is_some(),
        "the 429 row failed, the call did not"
    );
    let err = okta
        .create_user(&profile("log@example.com"), Activation::Stage)
        .await
        .unwrap_err();
    assert!(
        err.is_duplicate_login(),
        "the Okta error, not a storage error: {err:?}"
    );
}

#[tokio::test]
async fn long_texts_are_cut_to_the_column_limits() {
    let e = env().await;
    let long = "é".repeat(40_000); // 80,000 bytes
    e.fail_next_user_read(FaultKind::Response {
        status: 400,
        body: json!({
            "errorCode": format!("E{}", "9".repeat(60)),
            "errorSummary": long,
            "errorCauses": [{"errorSummary": "x"}],
        }),
    });
    let err = e.okta.get_user("00u1").await.unwrap_err();
    assert!(matches!(err, OktaError::Validation(_)));
    let rows = e.errors().await;
    let row = &rows[0];
    assert!(row.message.as_deref().unwrap().len() <= 65_535);
    assert_eq!(row.error_code.chars().count(), 36);
    let trace = row.trace.as_deref().unwrap();
    assert!(trace.len() <= 16 * 1024);
    assert!(trace.contains("response body (first"), "{}", &trace[..200]);
}

#[tokio::test]
async fn status_reports_buckets_and_not_configured_is_an_error() {
    let e = env().await;
    let id = e.seed_user("status@example.com");
    e.okta.get_user(&id).await.unwrap();
    let status = e.okta.status();
    assert_eq!(status.auth_method, "api_token");
    assert_eq!(status.in_flight, 0);
    assert_eq!(status.max_concurrency, 10);
    assert!(status.last_success_at.is_some());
    let bucket = &status.buckets[0];
    assert_eq!(bucket.bucket, Bucket::UserGet);
    assert_eq!(bucket.limit, Some(10_000));
    assert_eq!(bucket.remaining, Some(9_999));
    assert!(bucket.reset_at.is_some());
    assert_eq!(bucket.used_in_window, 1);
    let as_json = serde_json::to_value(&status).unwrap();
    assert_eq!(as_json["buckets"][0]["bucket"], "user_get");

    let err = OktaClient::require(None).unwrap_err();
    assert!(matches!(err, OktaError::NotConfigured));
    assert!(err.to_string().contains("EFS_IAM_OKTA_ORG_URL"));
}

// ---- secrets and text in the error log -------------------------------------------

#[tokio::test]
async fn token_endpoint_answers_reach_the_error_log_and_logs_only_redacted() {
    let logs = crate::common::LogCapture::start();
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |c| c.max_retries = 0).await;
    // A DPoP-bound answer (refused), then one efs-iam cannot read: both carry tokens.
    e.fake.inject(Fault::new(
        "POST",
        "/oauth2/v1/token",
        FaultKind::Response {
            status: 200,
            body: json!({"token_type": "DPoP", "access_token": "eyLEAKED.ACCESS.ONE", "id_token": "eyLEAKED.ID.ONE", "expires_in": 3600}),
        },
    ));
    assert!(e.okta.get_user("00uX").await.is_err());
    e.fake.inject(Fault::new(
        "POST",
        "/oauth2/v1/token",
        FaultKind::Response {
            status: 200,
            body: json!({"access_token": "eyLEAKED.ACCESS.TWO", "refresh_token": "LEAKEDREFRESH", "expires_in": "soon"}),
        },
    ));
    assert!(e.okta.get_user("00uY").await.is_err());
    let rows = e.errors().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let text = format!("{:?} {:?}", row.message, row.trace);
        assert!(!text.contains("LEAKED"), "{text}");
        assert!(
            text.contains("[redacted]"),
            "the body is kept, redacted: {text}"
        );
    }
    assert!(!logs.text().contains("LEAKED"), "{}", logs.text());
}

#[tokio::test]
async fn a_nonsensical_token_lifetime_is_clamped_not_a_panic() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, oauth(), |_| {}).await;
    let id = e.seed_user("clamp@example.com");
    // A real token, so the fake accepts it, with an absurd lifetime.
    let request = reqwest::Client::new()
        .post(format!("{}/oauth2/v1/token", e.fake.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "okta.users.manage"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &e.fake.test_client_assertion()),
        ]);
    let real: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    let mut absurd = real.clone();
    absurd["expires_in"] = json!(u64::MAX);
    e.fake.inject(Fault::new(
        "POST",
        "/oauth2/v1/token",
        FaultKind::Response {
            status: 200,
            body: absurd,
        },
    ));
    let fetches_before = e.fake.request_count("POST", "/oauth2/v1/token");
    assert!(e.okta.get_user(&id).await.unwrap().is_some());
    assert!(e.okta.get_user(&id).await.unwrap().is_some());
    assert_eq!(
        e.fake.request_count("POST", "/oauth2/v1/token"),
        fetches_before + 1,
        "fetched once, then cached"
    );
}

/// MariaDB's legacy `utf8` columns refuse 4-byte characters: Okta's texts are stored
/// with them replaced, never dropped.
#[tokio::test]
async fn okta_texts_outside_the_bmp_are_stored_sanitised() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let fake = fake().await;
    let okta = OktaClient::new(config(&fake, ssws("test-token")), Some(db.store.clone()))
        .expect("client builds");
    fake.inject(Fault::new(
        "POST",
        "/api/v1/users",
        FaultKind::Response {
            status: 400,
            body: json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: 😀 name",
                         "errorCauses": [{"errorSummary": "nickName: 🦀 is not allowed"}]}),
        },
    ));
    let profile = NewUserProfile {
        login: "emoji@example.com".into(),
        email: "emoji@example.com".into(),
        first_name: "E".into(),
        last_name: "M".into(),
        extra: Default::default(),
    };
    assert!(okta.create_user(&profile, Activation::Stage).await.is_err());
    let rows = db
        .store
        .query_error_log(&ErrorLogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the row was stored");
    let message = rows[0].message.as_deref().unwrap();
    assert!(message.contains("\u{FFFD} name"), "{message}");
    assert!(
        message.contains("nickName: \u{FFFD} is not allowed"),
        "{message}"
    );
}
