//! One storage contract, run on SQLite always and on MariaDB when `TEST_MYSQL_URL` is
//! set (required under `EFS_IAM_REQUIRE_MYSQL=1`). Each test gets a fresh database.

use crate::boundary_contract::*;
use crate::common::TestDb;
use crate::sync_contract::*;
use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use efs_iam::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus, SettingKey};
use efs_iam::storage::prelude::*;
use efs_iam::storage::*;

crate::backend_matrix!(
    #[tokio::test] sqlite, mysql;
    ready_after_migrations,
    settings_round_trip,
    settings_keys_fold_case,
    admin_reference_upsert_and_delete,
    portal_reference_upsert_patch_delete,
    portal_reference_list_filters_and_pages,
    reverse_lookup_spans_admin_and_portals,
    concurrent_upserts_leave_one_row,
    error_log_record_query_purge,
    error_log_text_search_is_literal,
    unassignments_enqueue_in_chunks_and_count,
    unassignment_counts_are_exact_up_to_their_cap,
    dead_letters_are_listed_in_queue_order_page_by_page,
    tokens_put_get_replace_delete,
    tokens_legacy_rows_subjects_and_purge,
    // The sync engine (storage_contract/sync.rs).
    sync_locks_exclude_and_expire,
    sync_locks_one_winner_among_racers,
    unassignment_claims_lease_and_complete,
    unassignment_requeue_dead_letters,
    unassignment_claims_never_overlap,
    portal_sync_failure_is_recorded,
    efs_users_are_checked_where_efs_has_them,
    sync_jobs_claim_record_and_finish,
    leases_are_renewed_by_their_holder_only,
    reconcile_runs_claim_finish_and_list,
    okta_event_leases_are_renewed_and_finished_by_their_holder_only,
    old_finished_okta_events_are_purged_and_uuids_compare_exactly,
    // The managed-user boundary (boundary_contract.rs).
    managed_users_are_recorded_once,
    adoption_runs_list_every_referenced_user_once_and_finish,
);

pub fn portal(n: i32) -> PortalId {
    PortalId::new(n).unwrap()
}
pub fn user(n: i32) -> EfsUserId {
    EfsUserId::new(n).unwrap()
}
pub fn okta(s: &str) -> OktaUserId {
    OktaUserId::parse(s).unwrap()
}
fn key(s: &str) -> SettingKey {
    SettingKey::parse(s).unwrap()
}

async fn ready_after_migrations(db: TestDb) {
    db.store.check_ready().await.expect("ready");
    let stats = db.store.pool_stats();
    assert!(stats.size >= 1);
}

async fn settings_round_trip(db: TestDb) {
    let s = &db.store;
    let created = s
        .put_portal_settings(
            portal(1),
            &[
                (key("okta_client_id"), Some("0oa1".into())),
                (key("okta_group_id"), None),
            ],
        )
        .await
        .unwrap();
    let new = SettingWrite {
        created: true,
        previous: None,
    };
    assert_eq!(created, vec![new.clone(), new]);
    let replaced = s
        .put_portal_settings(portal(1), &[(key("okta_client_id"), Some("0oa2".into()))])
        .await
        .unwrap();
    assert_eq!(
        replaced,
        vec![SettingWrite {
            created: false,
            previous: Some("0oa1".into())
        }]
    );
    let one = s
        .portal_setting(portal(1), &key("okta_client_id"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.value.as_deref(), Some("0oa2"));
    let null = s
        .portal_setting(portal(1), &key("okta_group_id"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(null.value, None);
    assert!(s
        .portal_setting(portal(2), &key("okta_client_id"))
        .await
        .unwrap()
        .is_none());
    let all = s.portal_settings(portal(1)).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        s.delete_portal_setting(portal(1), &key("okta_client_id"))
            .await
            .unwrap(),
        Some(Some("0oa2".into())),
        "the value deleted"
    );
    assert_eq!(
        s.delete_portal_setting(portal(1), &key("okta_client_id"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.portal_settings(portal(1)).await.unwrap().len(), 1);
}

async fn settings_keys_fold_case(db: TestDb) {
    let s = &db.store;
    s.put_portal_settings(portal(3), &[(key("Okta_Client_Id"), Some("a".into()))])
        .await
        .unwrap();
    let created = s
        .put_portal_settings(portal(3), &[(key("okta_client_id"), Some("b".into()))])
        .await
        .unwrap();
    assert!(!created[0].created, "same key in another case updates");
    assert_eq!(created[0].previous.as_deref(), Some("a"));
    let row = s
        .portal_setting(portal(3), &key("OKTA_CLIENT_ID"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.value.as_deref(), Some("b"));
    assert_eq!(s.portal_settings(portal(3)).await.unwrap().len(), 1);
}

async fn admin_reference_upsert_and_delete(db: TestDb) {
    db.seed_efs_users(&[7], &[]).await;
    let s = &db.store;
    assert!(s.admin_user_reference(user(7)).await.unwrap().is_none());
    let (r, created) = s
        .put_admin_user_reference(user(7), &okta("00ua"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(r.okta_user_id.as_deref(), Some("00ua"));
    assert_eq!(r.user_id, Some(7));
    let (r2, created) = s
        .put_admin_user_reference(user(7), &okta("00ub0oNGTSWTBKOLGLNR"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(r2.id, r.id);
    assert_eq!(r2.okta_user_id.as_deref(), Some("00ub0oNGTSWTBKOLGLNR"));
    assert_eq!(r2.created_at, r.created_at);
    let got = s.admin_user_reference(user(7)).await.unwrap().unwrap();
    assert_eq!(got, r2);
    assert_eq!(s.delete_admin_user_reference(user(7)).await.unwrap(), 1);
    assert!(s.admin_user_reference(user(7)).await.unwrap().is_none());
    assert_eq!(s.delete_admin_user_reference(user(7)).await.unwrap(), 0);
    if db.is_mysql() {
        // The seed's foreign key to EFS's users table holds.
        let err = s
            .put_admin_user_reference(user(999), &okta("00ux"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::UnknownEfsUser), "{err:?}");
    }
}

async fn portal_reference_upsert_patch_delete(db: TestDb) {
    db.seed_efs_users(&[], &[11]).await;
    let s = &db.store;
    let upsert = PortalUserReferenceUpsert {
        okta_user_id: okta("00u11"),
        status: PortalUserStatus::Pending,
        has_data_changes: false,
    };
    let (r, created) = s
        .put_portal_user_reference(portal(5), user(11), &upsert)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(r.status(), Some(PortalUserStatus::Pending));
    assert_eq!(r.has_data_changes, Some(false));
    let patched = s
        .patch_portal_user_reference(
            portal(5),
            user(11),
            &PortalUserReferencePatch {
                has_data_changes: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.has_data_changes, Some(true));
    assert_eq!(patched.status(), Some(PortalUserStatus::Pending));
    assert_eq!(patched.okta_user_id.as_deref(), Some("00u11"));
    let (r2, created) = s
        .put_portal_user_reference(
            portal(5),
            user(11),
            &PortalUserReferenceUpsert {
                status: PortalUserStatus::Synced,
                ..upsert.clone()
            },
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(r2.id, r.id);
    assert_eq!(r2.status_code, Some(1));
    assert_eq!(r2.has_data_changes, Some(false));
    assert!(s
        .patch_portal_user_reference(portal(6), user(11), &PortalUserReferencePatch::default())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.delete_portal_user_reference(portal(5), user(11))
            .await
            .unwrap(),
        1
    );
    assert!(s
        .portal_user_reference(portal(5), user(11))
        .await
        .unwrap()
        .is_none());
    if db.is_mysql() {
        let err = s
            .put_portal_user_reference(portal(5), user(12), &upsert)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::UnknownEfsUser), "{err:?}");
    }
}

async fn portal_reference_list_filters_and_pages(db: TestDb) {
    let ids: Vec<i32> = (100..130).collect();
    db.seed_efs_users(&[], &ids).await;
    let s = &db.store;
    for (i, id) in ids.iter().enumerate() {
        s.put_portal_user_reference(
            portal(9),
            user(*id),
            &PortalUserReferenceUpsert {
                okta_user_id: okta(&format!("00u{id}")),
                status: if i % 3 == 0 {
                    PortalUserStatus::Failed
                } else {
                    PortalUserStatus::Synced
                },
                has_data_changes: i % 2 == 0,
            },
        )
        .await
        .unwrap();
    }
    // Another portal's references never show.
    s.put_portal_user_reference(
        portal(10),
        user(100),
        &PortalUserReferenceUpsert {
            okta_user_id: okta("00uother"),
            status: PortalUserStatus::Failed,
            has_data_changes: true,
        },
    )
    .await
    .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_portal_user_references(
                portal(9),
                &PortalUserReferenceQuery {
                    after_id: after,
                    limit: 7,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().id);
        seen.extend(page.into_iter().map(|r| r.user_id.unwrap()));
    }
    assert_eq!(seen, ids, "every reference once, in order");

    let failed_changed = s
        .list_portal_user_references(
            portal(9),
            &PortalUserReferenceQuery {
                status: Some(PortalUserStatus::Failed),
                has_data_changes: Some(true),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expected: Vec<i32> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0 && i % 2 == 0)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        failed_changed
            .iter()
            .map(|r| r.user_id.unwrap())
            .collect::<Vec<_>>(),
        expected
    );
    let unchanged = s
        .list_portal_user_references(
            portal(9),
            &PortalUserReferenceQuery {
                has_data_changes: Some(false),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unchanged.len(), 15);
}

async fn reverse_lookup_spans_admin_and_portals(db: TestDb) {
    db.seed_efs_users(&[1], &[2, 3]).await;
    let s = &db.store;
    let person = okta("00uPERSON");
    s.put_admin_user_reference(user(1), &person).await.unwrap();
    for (p, u) in [(20, 2), (21, 3)] {
        s.put_portal_user_reference(
            portal(p),
            user(u),
            &PortalUserReferenceUpsert {
                okta_user_id: person.clone(),
                status: PortalUserStatus::Synced,
                has_data_changes: false,
            },
        )
        .await
        .unwrap();
    }
    let (admins, portal_users) = s.references_to_okta_user(&person).await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(
        portal_users
            .iter()
            .map(|r| r.portal_id.unwrap())
            .collect::<Vec<_>>(),
        vec![20, 21]
    );
    let (a, p) = s.references_to_okta_user(&okta("00uNOBODY")).await.unwrap();
    assert!(a.is_empty() && p.is_empty());
}

async fn concurrent_upserts_leave_one_row(db: TestDb) {
    db.seed_efs_users(&[42], &[42]).await;
    let s = db.store.clone();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = okta(&format!("00uc{i}"));
            s.put_admin_user_reference(user(42), &id).await.unwrap();
            s.put_portal_settings(portal(42), &[(key("okta_group_id"), Some(format!("g{i}")))])
                .await
                .unwrap();
            s.put_portal_user_reference(
                portal(42),
                user(42),
                &PortalUserReferenceUpsert {
                    okta_user_id: id,
                    status: PortalUserStatus::Synced,
                    has_data_changes: false,
                },
            )
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut admin_rows = 0;
    let mut portal_rows = 0;
    for i in 0..12 {
        let (a, p) = s
            .references_to_okta_user(&okta(&format!("00uc{i}")))
            .await
            .unwrap();
        admin_rows += a.len();
        portal_rows += p.len();
    }
    assert_eq!(
        admin_rows, 1,
        "one admin reference row after racing upserts"
    );
    assert_eq!(
        portal_rows, 1,
        "one portal reference row after racing upserts"
    );
    assert_eq!(s.portal_settings(portal(42)).await.unwrap().len(), 1);
}

async fn error_log_record_query_purge(db: TestDb) {
    let s = &db.store;
    let mut ids = Vec::new();
    for i in 0..25 {
        let e = s
            .record_error(&NewErrorLogEntry {
                message: Some(format!("Okta said no #{i}")),
                status_code: if i % 5 == 0 { 429 } else { 400 },
                trace: Some("POST /api/v1/users".into()),
                error_code: if i % 5 == 0 {
                    "E0000047".into()
                } else {
                    "E0000001".into()
                },
            })
            .await
            .unwrap();
        ids.push(e.id);
    }
    let one = s.error_log_entry(ids[3]).await.unwrap().unwrap();
    assert_eq!(one.message.as_deref(), Some("Okta said no #3"));
    assert_eq!(one.status_code, 400);
    assert!(s.error_log_entry(999_999).await.unwrap().is_none());

    // Newest first, pages by keyset without gaps or repeats.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .query_error_log(&ErrorLogQuery {
                before,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some((last.created_at, last.id));
        seen.extend(page.iter().map(|e| e.id));
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let limited = s
        .query_error_log(&ErrorLogQuery {
            status_code: Some(429),
            error_code: Some("E0000047".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 5);
    let now = Utc::now().naive_utc().trunc_subsecs(0);
    let future = s
        .query_error_log(&ErrorLogQuery {
            since: Some(now + ChronoDuration::hours(1)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    let past = s
        .query_error_log(&ErrorLogQuery {
            until: Some(now + ChronoDuration::hours(1)),
            since: Some(now - ChronoDuration::hours(1)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(past.len(), 25);

    let purge = crate::scale_contract::purge_error_log;
    assert_eq!(purge(s, now - ChronoDuration::hours(1)).await.0, 0);
    assert_eq!(purge(s, now + ChronoDuration::hours(1)).await.0, 25);
    assert!(s.error_log_entry(ids[0]).await.unwrap().is_none());
}

async fn error_log_text_search_is_literal(db: TestDb) {
    let s = &db.store;
    for message in ["100% failed", "1000 failed", "a_b", "axb", "it's !bang"] {
        s.record_error(&NewErrorLogEntry {
            message: Some(message.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let find = |text: &str| {
        let q = ErrorLogQuery {
            text: Some(text.into()),
            limit: 10,
            ..Default::default()
        };
        async move {
            s.query_error_log(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.message.unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("0%").await, vec!["100% failed"]);
    assert_eq!(find("a_b").await, vec!["a_b"]);
    assert_eq!(find("!bang").await, vec!["it's !bang"]);
    assert_eq!(
        find("FAILED").await.len(),
        2,
        "case-insensitive like the MySQL collation"
    );
}

async fn unassignments_enqueue_in_chunks_and_count(db: TestDb) {
    let s = &db.store;
    let users: Vec<NewUnassignment> = (1..=1234)
        .map(|i| NewUnassignment {
            user_id: user(i),
            okta_user_id: okta(&format!("00uq{i}")),
            email: Some(format!("p{i}@example.com")),
        })
        .collect();
    assert_eq!(
        s.enqueue_unassignments(portal(7), &users).await.unwrap(),
        1234
    );
    s.enqueue_unassignments(portal(8), &users[..3])
        .await
        .unwrap();
    let counts = s.unassignment_counts(portal(7)).await.unwrap();
    assert_eq!(
        counts,
        UnassignmentCounts {
            pending: 1234,
            dead: 0,
            pending_capped: false,
            dead_capped: false,
        }
    );

    let mut seen = 0;
    let mut after = None;
    loop {
        let page = s
            .list_unassignments(
                portal(7),
                &UnassignmentQuery {
                    state: Some(UnassignmentState::Pending),
                    after_id: after,
                    limit: 500,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for u in &page {
            seen += 1;
            assert_eq!(u.portal_id, Some(7));
            assert_eq!(u.attempts, 0);
            assert_eq!(u.okta_user_id, Some(format!("00uq{}", u.user_id.unwrap())));
        }
    }
    assert_eq!(seen, 1234);
    let dead = s
        .list_unassignments(
            portal(7),
            &UnassignmentQuery {
                state: Some(UnassignmentState::Dead),
                after_id: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(dead.is_empty());
}

/// A portal's counts are exact up to the cap; one row more and the count says the cap
/// with the flag that makes it a lower bound.
async fn unassignment_counts_are_exact_up_to_their_cap(db: TestDb) {
    use efs_iam::storage::unassignment_queue::COUNT_CAP;
    let s = &db.store;
    let cap = i32::try_from(COUNT_CAP).unwrap();
    let users: Vec<NewUnassignment> = (1..=cap + 1)
        .map(|i| NewUnassignment {
            user_id: user(i),
            okta_user_id: okta(&format!("00uc{i}")),
            email: None,
        })
        .collect();
    s.enqueue_unassignments(portal(9), &users[..users.len() - 1])
        .await
        .unwrap();
    s.enqueue_unassignments(portal(10), &users).await.unwrap();

    let at_cap = s.unassignment_counts(portal(9)).await.unwrap();
    assert_eq!((at_cap.pending, at_cap.pending_capped), (COUNT_CAP, false));
    let over = s.unassignment_counts(portal(10)).await.unwrap();
    assert_eq!((over.pending, over.pending_capped), (COUNT_CAP, true));
    assert_eq!((over.dead, over.dead_capped), (0, false));
}

/// A portal's dead letters come in queue order, page by page, without its pending rows
/// (their page is chosen from the (portal_id, dead_at) index alone).
async fn dead_letters_are_listed_in_queue_order_page_by_page(db: TestDb) {
    let s = &db.store;
    s.enqueue_unassignments(portal(11), &queued(1..=9))
        .await
        .unwrap();
    let t0 = now();
    let claimed = s
        .claim_unassignments("a", t0, t0 + secs(60), 9)
        .await
        .unwrap();
    let mut dead: Vec<i32> = Vec::new();
    // Every other row dies, the later ones first: dead_at does not follow queue order.
    for (n, row) in claimed.iter().enumerate().rev() {
        let dies = n % 2 == 0;
        let at = t0 - secs(n as i64);
        assert!(s
            .fail_unassignment(row.id, "a", 5, "gave up", None, dies.then_some(at))
            .await
            .unwrap());
        if dies {
            dead.push(row.id);
        }
    }
    dead.sort_unstable();
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_unassignments(
                portal(11),
                &UnassignmentQuery {
                    state: Some(UnassignmentState::Dead),
                    after_id: after,
                    limit: 2,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|u| u.dead_at.is_some()));
        after = page.last().map(|u| u.id);
        listed.extend(page.iter().map(|u| u.id));
    }
    assert_eq!(listed, dead);
}

/// The SQL token records under the vault: opaque values keyed by the hashed id, with
/// the legacy raw id as a fallback that every write removes.
async fn tokens_put_get_replace_delete(db: TestDb) {
    let t = &db.store;
    let now = Utc::now().trunc_subsecs(0);
    let later = now + ChronoDuration::hours(1);
    let hashed: &[u8] = &[1u8; 33];
    let legacy: &[u8] = b"sess-1,abc";
    let key = TokenKey {
        hashed,
        legacy: Some(legacy),
    };
    let record = |value| NewTokenRecord {
        value,
        stored_at: now,
        expires_at: later,
        subject: None,
    };
    assert!(t.get_token(key).await.unwrap().is_none());
    t.put_token(key, &record("v1")).await.unwrap();
    t.put_token(key, &record("v2")).await.unwrap();
    let got = t.get_token(key).await.unwrap().unwrap();
    assert_eq!(got.idp_response.as_deref(), Some("v2"));
    assert!(!got.legacy_key);
    if t.token_backend().starts_with("sql") {
        assert_eq!(got.stored_at, Some(now.naive_utc()));
        assert_eq!(got.expires_at, Some(later.naive_utc()));
    }
    let other_hashed: &[u8] = &[2u8; 33];
    let other = TokenKey {
        hashed: other_hashed,
        legacy: None,
    };
    t.put_token(other, &record("{}")).await.unwrap();
    assert!(t.delete_token(key).await.unwrap());
    assert!(!t.delete_token(key).await.unwrap());
    assert!(t.get_token(key).await.unwrap().is_none());
    assert!(t.get_token(other).await.unwrap().is_some());
}

async fn tokens_legacy_rows_subjects_and_purge(db: TestDb) {
    let t = &db.store;
    let now = Utc::now().trunc_subsecs(0);
    // A legacy row under the raw id (`raw-1`, as bytes) is found through the fallback...
    let pool_exec = |sql: &'static str| {
        let db = &db;
        async move {
            match db.store.db() {
                efs_iam::storage::sql::Db::Sqlite(s) => {
                    sqlx::query(sql).execute(s).await.unwrap();
                }
                efs_iam::storage::sql::Db::MySql(s) => {
                    sqlx::query(sql).execute(s).await.unwrap();
                }
            }
        }
    };
    pool_exec("INSERT INTO iam_token_data (session_id, idp_response) VALUES (X'7261772d31', 'old'), (X'7261772d31', 'newer')").await;
    let hashed: &[u8] = &[1u8; 33];
    let key = TokenKey {
        hashed,
        legacy: Some(b"raw-1"),
    };
    let got = t.get_token(key).await.unwrap().unwrap();
    assert_eq!(got.idp_response.as_deref(), Some("newer"));
    assert!(got.legacy_key);
    assert_eq!((got.stored_at, got.expires_at), (None, None));
    // ...and a write replaces every legacy duplicate.
    t.put_token(
        key,
        &NewTokenRecord {
            value: "sealed",
            stored_at: now,
            expires_at: now + ChronoDuration::seconds(10),
            subject: Some(b"subject-a"),
        },
    )
    .await
    .unwrap();
    let got = t.get_token(key).await.unwrap().unwrap();
    assert_eq!(got.idp_response.as_deref(), Some("sealed"));
    assert!(!got.legacy_key);
    let rows = t.scan_tokens(0, 100).await.unwrap().unwrap();
    assert_eq!(rows.len(), 1, "the raw rows are gone");

    // Subjects: one delete removes every session of the subject.
    for i in 2..5u8 {
        let h = [i; 33];
        t.put_token(
            TokenKey {
                hashed: &h,
                legacy: None,
            },
            &NewTokenRecord {
                value: "x",
                stored_at: now,
                expires_at: now + ChronoDuration::hours(1),
                subject: Some(if i == 4 { b"subject-b" } else { b"subject-a" }),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(t.delete_subject_tokens(b"subject-a").await.unwrap(), 3);
    assert_eq!(t.delete_subject_tokens(b"subject-a").await.unwrap(), 0);
    assert_eq!(t.scan_tokens(0, 100).await.unwrap().unwrap().len(), 1);

    // Purge: legacy rows get an expiry first, expired rows go.
    pool_exec("INSERT INTO iam_token_data (session_id, idp_response) VALUES (X'7261772d32', NULL)")
        .await;
    let purged = t
        .purge_expired_tokens(
            now + ChronoDuration::hours(2),
            now + ChronoDuration::hours(3),
        )
        .await
        .unwrap();
    assert_eq!(purged, 1, "the subject-b row expired");
    let rows = t.scan_tokens(0, 100).await.unwrap().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].expires_at,
        Some((now + ChronoDuration::hours(3)).naive_utc())
    );
    // Rewrites only apply to an unchanged row.
    let row = rows[0].clone();
    assert!(t
        .rewrite_token(&row, &[9u8; 33], "resealed", now + ChronoDuration::hours(1))
        .await
        .unwrap());
    assert!(!t
        .rewrite_token(&row, &[9u8; 33], "again", now + ChronoDuration::hours(1))
        .await
        .unwrap());
}
