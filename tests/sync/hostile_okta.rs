//! An Okta (or whatever answers in its place) that lies: rate-limit headers naming a
//! reset years away or past `u64::MAX`, a member listing that never ends. efs-iam
//! believes none of it past a stated bound, and nothing panics.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::TestDb;
use crate::helpers::*;
use crate::okta_env::*;
use efs_iam::storage::ErrorLogStore;
use fake_okta::{Fault, FaultKind, UserStatus};
use serde_json::Value;

/// A `Reset` ten years ahead, then one at `u64::MAX`, each on an answer that also says
/// `Remaining: 0`: the bucket is closed for the horizon (here 2 s) at most, every call
/// goes through, nothing panics.
#[tokio::test]
async fn a_reset_years_ahead_closes_a_bucket_for_the_horizon_at_most() {
    let e = env_with(fake().await, ssws("test-token"), |c| {
        c.max_rate_limit_wait = Duration::from_secs(2);
    })
    .await;
    let id = e.seed_user("liar@example.com");
    let ten_years = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 365 * 24 * 3600;
    for reset in [ten_years, u64::MAX] {
        e.fake.inject(Fault::new(
            "GET",
            "/api/v1/users/",
            FaultKind::LyingRateHeaders {
                remaining: 0,
                reset,
            },
        ));
        e.okta
            .get_user(&id)
            .await
            .unwrap()
            .expect("the lying answer itself is fine");
        let started = Instant::now();
        e.okta.get_user(&id).await.unwrap().expect("answered");
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(4),
            "reset {reset}: waited {waited:?}"
        );
        let bucket = e
            .okta
            .status()
            .buckets
            .into_iter()
            .find(|b| b.bucket.as_str() == "user_get")
            .unwrap();
        let shown = serde_json::to_value(&bucket).unwrap();
        let reset_at = shown["reset_at"].as_str().unwrap_or_default().to_owned();
        assert!(
            !reset_at.starts_with("2036") && !reset_at.starts_with("+"),
            "{shown}"
        );
    }
}

/// A member listing whose every page links another: a repair run stops at its bound
/// (twice the references plus the headroom), fails saying why, removes no one, and the
/// error log has the row.
#[tokio::test]
async fn an_endless_listing_fails_its_run_within_the_bound_and_removes_no_one() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Endless portal");
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.reconcile_member_headroom = 500;
        s.sync.max_attempts = 1;
    })
    .await;
    app.link_portal(21, &group).await;
    let member = seed_efs_user(&db, &okta, "member@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &member);
    okta.inject(
        Fault::new(
            "GET",
            &format!("/api/v1/groups/{group}/users"),
            FaultKind::EndlessPages,
        )
        .times(100_000),
    );
    let started = Instant::now();
    let run = reconcile_and_wait(&app, 21).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("past its bound"), "{run}");
    let pages = okta.request_count("GET", "/api/v1/groups/{groupId}/users");
    assert!(pages <= 4, "read {pages} pages for a bound of 500 members");
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        0,
        "nobody removed"
    );
    okta.clear_faults();
    assert_eq!(okta.group_members(&group), vec![member]);
    let rows = db
        .store
        .query_error_log(&efs_iam::storage::ErrorLogQuery {
            text: Some("past its bound".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (_, status) = app.get("/api/v1/sync/status").await;
    let failed: Vec<&Value> = status["reconciliation"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["portal_id"] == 21)
        .collect();
    assert_eq!(failed.len(), 1, "{status}");
}
