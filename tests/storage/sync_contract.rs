//! The sync engine's storage (leases, the unassignment queue, sync jobs): leases, queue claims, dead letters,
//! requeues and batch jobs, on both backends.

use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use efs_iam::domain::PortalUserStatus;
use efs_iam::storage::okta_events::event_state;
use efs_iam::storage::prelude::*;
use efs_iam::storage::*;

use crate::common::TestDb;
use crate::contract::{okta, portal, user};

pub fn secs(n: i64) -> ChronoDuration {
    ChronoDuration::seconds(n)
}

pub fn queued(n: std::ops::RangeInclusive<i32>) -> Vec<NewUnassignment> {
    n.map(|i| NewUnassignment {
        user_id: user(i),
        okta_user_id: okta(&format!("00uq{i}")),
        email: None,
    })
    .collect()
}

pub async fn sync_locks_exclude_and_expire(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    assert!(s.try_lock("user:1", "a", t0, t0 + secs(60)).await.unwrap());
    assert!(
        !s.try_lock("user:1", "b", t0, t0 + secs(60)).await.unwrap(),
        "held"
    );
    assert!(
        s.try_lock("user:2", "b", t0, t0 + secs(60)).await.unwrap(),
        "other names are independent"
    );
    s.unlock("user:1", "b").await.unwrap();
    assert!(
        !s.try_lock("user:1", "c", t0, t0 + secs(60)).await.unwrap(),
        "only the holder can unlock"
    );
    assert!(s.renew_lock("user:1", "a", t0 + secs(120)).await.unwrap());
    assert!(!s.renew_lock("user:1", "b", t0 + secs(120)).await.unwrap());
    // The holder crashed: once its lease has run out, another owner takes over.
    let later = t0 + secs(121);
    assert!(s
        .try_lock("user:1", "b", later, later + secs(60))
        .await
        .unwrap());
    assert!(
        !s.renew_lock("user:1", "a", later + secs(60)).await.unwrap(),
        "the old holder lost it"
    );
    s.unlock("user:1", "a").await.unwrap();
    assert!(!s
        .try_lock("user:1", "c", later, later + secs(1))
        .await
        .unwrap());
    s.unlock("user:1", "b").await.unwrap();
    assert!(s
        .try_lock("user:1", "c", later, later + secs(1))
        .await
        .unwrap());
}

pub async fn sync_locks_one_winner_among_racers(db: TestDb) {
    let s = db.store.clone();
    let t0 = now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.try_lock("login:a@example.com", &format!("o{i}"), t0, t0 + secs(60))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
}

pub async fn unassignment_claims_lease_and_complete(db: TestDb) {
    let s = &db.store;
    s.enqueue_unassignments(portal(1), &queued(1..=5))
        .await
        .unwrap();
    db.execute(
        "INSERT INTO iam_portal_user_group_unassignment_queue (user_id, uuid, email, created_at) \
         VALUES (99, NULL, 'legacy@example.com', '2020-01-01 00:00:00')",
    )
    .await;
    let t0 = now();
    assert_eq!(s.dead_letter_unroutable_unassignments(t0).await.unwrap(), 1);
    assert_eq!(
        s.dead_letter_unroutable_unassignments(t0).await.unwrap(),
        0,
        "already dead"
    );

    let a = s
        .claim_unassignments("a", t0, t0 + secs(60), 3)
        .await
        .unwrap();
    assert_eq!(a.len(), 3);
    assert!(a.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!(a[0].okta_user_id.as_deref(), Some("00uq1"));
    assert_eq!(a[0].portal_id, Some(1));
    let b = s
        .claim_unassignments("b", t0, t0 + secs(60), 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 2);
    assert!(s
        .claim_unassignments("c", t0, t0 + secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    let stats = s.unassignment_queue_stats(t0).await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.due,
            stats.in_progress,
            stats.dead,
            stats.dead_without_portal
        ),
        (5, 0, 5, 1, 1)
    );
    assert!(stats.oldest_pending_at.is_some());

    // a: one done, one failed with backoff, one dead letter.
    assert!(
        !s.complete_unassignment(a[0].id, "b").await.unwrap(),
        "only the lease holder completes a row"
    );
    assert!(s.complete_unassignment(a[0].id, "a").await.unwrap());
    assert!(!s.complete_unassignment(a[0].id, "a").await.unwrap());
    assert!(s
        .fail_unassignment(a[1].id, "a", 1, "HTTP 500", Some(t0 + secs(30)), None)
        .await
        .unwrap());
    assert!(
        !s.fail_unassignment(a[2].id, "b", 1, "not mine", None, None)
            .await
            .unwrap(),
        "only the lease holder records a failure"
    );
    assert!(s
        .fail_unassignment(a[2].id, "a", 5, "gave up", None, Some(t0))
        .await
        .unwrap());

    // b crashed: its lease runs out and its rows are due again, with a's backoff row
    // once its time has come.
    let later = t0 + secs(61);
    let c = s
        .claim_unassignments("c", later, later + secs(60), 10)
        .await
        .unwrap();
    let ids: Vec<i32> = c.iter().map(|u| u.id).collect();
    assert_eq!(ids, vec![a[1].id, b[0].id, b[1].id]);
    let retried = &c[0];
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(s.release_unassignments(&ids, "c").await.unwrap(), 3);
    assert_eq!(
        s.release_unassignments(&ids, "c").await.unwrap(),
        0,
        "released already"
    );
    let dead = s.list_dead_unassignments(false, None, 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
    assert!(dead[1].last_error.as_deref().unwrap().contains("portal_id"));
    let legacy = s.list_dead_unassignments(true, None, 10).await.unwrap();
    assert_eq!(legacy.len(), 1);
    assert_eq!(legacy[0].portal_id, None);
    let counts = s.unassignment_counts(portal(1)).await.unwrap();
    assert_eq!((counts.pending, counts.dead), (3, 1));
}

pub async fn unassignment_requeue_dead_letters(db: TestDb) {
    let s = &db.store;
    s.enqueue_unassignments(portal(1), &queued(1..=4))
        .await
        .unwrap();
    s.enqueue_unassignments(portal(2), &queued(5..=5))
        .await
        .unwrap();
    db.execute(
        "INSERT INTO iam_portal_user_group_unassignment_queue (user_id, uuid, created_at) \
         VALUES (98, NULL, '2020-01-01 00:00:00')",
    )
    .await;
    let t0 = now();
    let all = s
        .claim_unassignments("w", t0, t0 + secs(60), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    for u in &all[..3] {
        s.fail_unassignment(u.id, "w", 8, "dead", None, Some(t0))
            .await
            .unwrap();
    }
    s.fail_unassignment(all[4].id, "w", 8, "dead", None, Some(t0))
        .await
        .unwrap();
    db.execute(
        "INSERT INTO iam_portal_user_group_unassignment_queue (user_id, uuid, created_at) \
         VALUES (97, X'303075713937', '2020-01-01 00:00:00')",
    )
    .await;
    s.dead_letter_unroutable_unassignments(t0).await.unwrap();
    let legacy = s.list_dead_unassignments(true, None, 10).await.unwrap();
    assert_eq!(legacy.len(), 2);
    let (no_uuid, with_uuid) = (legacy[0].id, legacy[1].id);
    assert_eq!(legacy[1].okta_user_id.as_deref(), Some("00uq97"));

    let out = s
        .requeue_unassignments(
            portal(1),
            Some(&[all[0].id, all[3].id, all[4].id, no_uuid, with_uuid, 999_999]),
        )
        .await
        .unwrap();
    assert_eq!(out.requeued, 2, "{out:?}");
    assert_eq!(
        out.skipped,
        vec![
            (all[3].id, RequeueSkip::NotDead),
            (all[4].id, RequeueSkip::OtherPortal),
            (no_uuid, RequeueSkip::NoOktaUserId),
            (999_999, RequeueSkip::NotFound),
        ]
    );
    // The legacy row now belongs to portal 1 and is due, with a fresh attempt count.
    let later = t0 + secs(61);
    let due = s
        .claim_unassignments("w2", later, later + secs(60), 10)
        .await
        .unwrap();
    let due_ids: HashSet<i32> = due.iter().map(|u| u.id).collect();
    assert_eq!(
        due_ids,
        HashSet::from([all[0].id, all[3].id, with_uuid]),
        "{due:?}"
    );
    let legacy_row = due.iter().find(|u| u.id == with_uuid).unwrap();
    assert_eq!(legacy_row.portal_id, Some(1));
    assert_eq!(legacy_row.attempts, 0);

    // Everything dead in a portal at once.
    let out = s.requeue_unassignments(portal(1), None).await.unwrap();
    assert_eq!(out.requeued, 2, "all[1], all[2]");
    assert_eq!(s.unassignment_counts(portal(1)).await.unwrap().dead, 0);
    assert_eq!(s.unassignment_counts(portal(2)).await.unwrap().dead, 1);
}

/// Several claimers racing over one queue: every row is handed out exactly once.
pub async fn unassignment_claims_never_overlap(db: TestDb) {
    let s = db.store.clone();
    s.enqueue_unassignments(portal(3), &queued(1..=300))
        .await
        .unwrap();
    let t0 = now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let batch = s
                    .claim_unassignments(&owner, t0, t0 + secs(300), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.iter().map(|u| u.id));
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<i32> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "no row handed out twice");
    assert_eq!(unique.len(), 300, "every row handed out");
}

pub async fn portal_sync_failure_is_recorded(db: TestDb) {
    db.seed_efs_users(&[], &[11, 12]).await;
    let s = &db.store;
    s.mark_portal_sync_failed(portal(5), user(11), None, PortalUserStatus::Failed)
        .await
        .unwrap();
    let r = s
        .portal_user_reference(portal(5), user(11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), Some(PortalUserStatus::Failed));
    assert_eq!(r.okta_user_id, None);
    assert_eq!(r.has_data_changes, Some(true));

    let kept = PortalUserReferenceUpsert {
        okta_user_id: okta("00ukeep"),
        status: PortalUserStatus::Synced,
        has_data_changes: false,
    };
    for p in [5, 6] {
        s.put_portal_user_reference(portal(p), user(12), &kept)
            .await
            .unwrap();
    }
    s.mark_portal_sync_failed(portal(5), user(12), None, PortalUserStatus::Failed)
        .await
        .unwrap();
    let r = s
        .portal_user_reference(portal(5), user(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), Some(PortalUserStatus::Failed));
    assert_eq!(r.okta_user_id.as_deref(), Some("00ukeep"));
    assert_eq!(r.has_data_changes, Some(false));
    let of_user = s.portal_references_of_user(user(12)).await.unwrap();
    assert_eq!(of_user.len(), 2);
    assert_eq!(of_user[0].portal_id, Some(6), "newest first");
    s.mark_portal_sync_failed(
        portal(6),
        user(12),
        Some(&okta("00unew")),
        PortalUserStatus::Deprovisioned,
    )
    .await
    .unwrap();
    let r = s
        .portal_user_reference(portal(6), user(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), Some(PortalUserStatus::Deprovisioned));
    assert_eq!(r.okta_user_id.as_deref(), Some("00unew"));
}

pub async fn efs_users_are_checked_where_efs_has_them(db: TestDb) {
    db.seed_efs_users(&[3], &[4]).await;
    let s = &db.store;
    assert!(s
        .efs_user_exists(EfsUserKind::Admin, user(3))
        .await
        .unwrap());
    assert!(s
        .efs_user_exists(EfsUserKind::Panelist, user(4))
        .await
        .unwrap());
    let missing = s
        .efs_user_exists(EfsUserKind::Admin, user(4))
        .await
        .unwrap();
    assert_eq!(
        missing,
        !db.is_mysql(),
        "MariaDB knows, SQLite has no EFS core"
    );
}

fn item(user_id: i32) -> NewSyncJobItem {
    NewSyncJobItem {
        user_id: user(user_id),
        profile: format!(r#"{{"login":"u{user_id}@example.com"}}"#),
    }
}

pub async fn sync_jobs_claim_record_and_finish(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    let job = NewSyncJob {
        id: uuid::Uuid::new_v4().to_string(),
        portal: portal(9),
        items: (1..=1203).map(item).collect(),
    };
    s.create_sync_job(&job, t0).await.unwrap();
    let (stored, counts) = s.sync_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.portal_id, 9);
    assert_eq!(stored.total, 1203);
    assert_eq!(stored.finished_at, None);
    assert_eq!(
        counts,
        SyncJobCounts {
            pending: 1203,
            ..Default::default()
        }
    );
    assert!(s.sync_job("no-such-job").await.unwrap().is_none());

    let a = s.claim_sync_items("a", t0, t0 + secs(60), 2).await.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].user_id, a[0].portal_id), (1, 9));
    assert_eq!(a[0].job_id, job.id);
    assert_eq!(a[0].profile, r#"{"login":"u1@example.com"}"#);
    let created = ItemResult::Succeeded {
        outcome: "created".into(),
        okta_user_id: "00uNEW".into(),
    };
    assert!(s
        .finish_sync_item(a[0].id, "a", &created, t0)
        .await
        .unwrap());
    assert!(
        !s.finish_sync_item(a[0].id, "a", &created, t0)
            .await
            .unwrap(),
        "a finished item stays finished"
    );
    assert!(s
        .retry_sync_item(a[1].id, "a", 1, "HTTP 503", t0 + secs(30))
        .await
        .unwrap());

    // The rest, by a second worker; the retried item waits for its time.
    let mut b = Vec::new();
    loop {
        let batch = s
            .claim_sync_items("b", t0, t0 + secs(60), 500)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        b.extend(batch);
    }
    assert_eq!(b.len(), 1201);
    let (_, counts) = s.sync_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (counts.pending, counts.succeeded, counts.retrying),
        (1202, 1, 1)
    );
    let stats = s.sync_job_stats(t0).await.unwrap();
    assert_eq!(
        (
            stats.unfinished_jobs,
            stats.pending_items,
            stats.in_progress_items
        ),
        (1, 1202, 1201)
    );
    for (n, it) in b.iter().enumerate() {
        let result = if n % 2 == 0 {
            ItemResult::Succeeded {
                outcome: "linked".into(),
                okta_user_id: format!("00u{n}"),
            }
        } else {
            ItemResult::Failed {
                error_type: "okta-validation-failed".into(),
                error: "email: Does not match required pattern".into(),
                field: Some("email".into()),
                okta_user_id: None,
            }
        };
        assert!(s.finish_sync_item(it.id, "b", &result, t0).await.unwrap());
    }
    assert!(s.finish_sync_jobs(t0).await.unwrap().is_empty(), "one left");
    let later = t0 + secs(31);
    let c = s
        .claim_sync_items("c", later, later + secs(60), 10)
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].attempts, 1);
    assert_eq!(s.release_sync_items(&[c[0].id], "c").await.unwrap(), 1);
    let c = s
        .claim_sync_items("d", later, later + secs(60), 10)
        .await
        .unwrap();
    s.finish_sync_item(
        c[0].id,
        "d",
        &ItemResult::Failed {
            error_type: "okta-unavailable".into(),
            error: "gave up".into(),
            field: None,
            okta_user_id: None,
        },
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        s.finish_sync_jobs(later).await.unwrap(),
        vec![job.id.clone()]
    );
    assert!(s.finish_sync_jobs(later).await.unwrap().is_empty());
    let (stored, counts) = s.sync_job(&job.id).await.unwrap().unwrap();
    assert!(stored.finished_at.is_some());
    assert_eq!(counts.pending, 0);
    assert_eq!(counts.succeeded + counts.failed, 1203);

    let failed = s
        .sync_job_items(
            &job.id,
            &SyncJobItemQuery {
                state: Some(ItemState::Failed),
                after_seq: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].seq, 1, "the retried item, then the odd ones");
    assert_eq!(failed[0].error_type.as_deref(), Some("okta-unavailable"));
    assert_eq!(failed[0].attempts, 2);
    assert_eq!(failed[1].error_field.as_deref(), Some("email"));
    let page = s
        .sync_job_items(
            &job.id,
            &SyncJobItemQuery {
                state: None,
                after_seq: Some(1200),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|i| i.seq).collect::<Vec<_>>(),
        vec![1201, 1202]
    );
    assert_eq!(page[1].user_id, 1203);

    let far: NaiveDateTime = later + secs(3600);
    assert_eq!(s.purge_sync_jobs(later).await.unwrap(), 0, "not older");
    assert_eq!(s.purge_sync_jobs(far).await.unwrap(), 1);
    assert!(s.sync_job(&job.id).await.unwrap().is_none());
}

/// A live holder's heartbeat keeps its rows and items; nobody else's renewal does.
pub async fn leases_are_renewed_by_their_holder_only(db: TestDb) {
    let s = &db.store;
    s.enqueue_unassignments(portal(1), &queued(1..=3))
        .await
        .unwrap();
    let t0 = now();
    // a holds the lease to 30 s and renews it to 90 s: at 60 s it is still a's, at
    // 91 s b may take over.
    let (after_first_lease, after_renewal) = (t0 + secs(60), t0 + secs(91));
    let rows = s
        .claim_unassignments("a", t0, t0 + secs(30), 10)
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        s.renew_unassignment_leases(&ids, "x", t0 + secs(300))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.renew_unassignment_leases(&ids, "a", t0 + secs(90))
            .await
            .unwrap(),
        3
    );
    assert!(
        s.claim_unassignments("b", after_first_lease, after_first_lease + secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed: still a's"
    );
    let taken = s
        .claim_unassignments("b", after_renewal, after_renewal + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 3, "a stopped renewing: b takes over");
    assert_eq!(
        s.renew_unassignment_leases(&ids, "a", after_renewal + secs(30))
            .await
            .unwrap(),
        0,
        "a lost them"
    );
    assert!(!s.complete_unassignment(ids[0], "a").await.unwrap());
    assert!(s.complete_unassignment(ids[0], "b").await.unwrap());

    let job = NewSyncJob {
        id: uuid::Uuid::new_v4().to_string(),
        portal: portal(9),
        items: (1..=2).map(item).collect(),
    };
    s.create_sync_job(&job, t0).await.unwrap();
    let items = s
        .claim_sync_items("a", t0, t0 + secs(30), 10)
        .await
        .unwrap();
    let item_ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    assert_eq!(
        s.renew_sync_item_leases(&item_ids, "x", t0 + secs(300))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.renew_sync_item_leases(&item_ids, "a", t0 + secs(90))
            .await
            .unwrap(),
        2
    );
    assert!(s
        .claim_sync_items("b", after_first_lease, after_first_lease + secs(30), 10)
        .await
        .unwrap()
        .is_empty());
}

fn run(portal_id: i32) -> NewReconcileRun {
    NewReconcileRun {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        portal: portal(portal_id),
        dry_run: false,
        kind: "manual",
    }
}

/// Reconciliation runs: claimed with a lease, renewed, finished or released by their
/// holder only, taken over when the lease runs out, listed newest first.
pub async fn reconcile_runs_claim_finish_and_list(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    let (first, second, other) = (run(1), run(1), run(2));
    s.create_reconcile_run(&first, t0).await.unwrap();
    s.create_reconcile_run(&second, t0 + secs(1)).await.unwrap();
    s.create_reconcile_run(&other, t0 + secs(2)).await.unwrap();
    let stored = s.reconcile_run(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state.as_str(), stored.attempts, stored.portal_id),
        ("pending", 0, 1)
    );
    assert!(s.reconcile_run("no-such-run").await.unwrap().is_none());

    let a = s
        .claim_reconcile_runs("a", t0 + secs(3), t0 + secs(33), 1)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, first.id, "oldest first");
    assert_eq!((a[0].state.as_str(), a[0].attempts), ("running", 1));
    assert!(a[0].started_at.is_some());
    assert!(!s
        .renew_reconcile_run(&first.id, "x", t0 + secs(300))
        .await
        .unwrap());
    assert!(s
        .renew_reconcile_run(&first.id, "a", t0 + secs(90))
        .await
        .unwrap());
    let b = s
        .claim_reconcile_runs("b", t0 + secs(60), t0 + secs(90), 10)
        .await
        .unwrap();
    let b_ids: HashSet<&str> = b.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        b_ids,
        HashSet::from([second.id.as_str(), other.id.as_str()]),
        "a's renewed run is not taken"
    );

    let report = RunOutcome::Succeeded {
        report: r#"{"portal_id":1}"#.into(),
    };
    assert!(!s
        .finish_reconcile_run(&first.id, "b", &report, t0 + secs(61))
        .await
        .unwrap());
    assert!(s
        .finish_reconcile_run(&first.id, "a", &report, t0 + secs(61))
        .await
        .unwrap());
    let done = s.reconcile_run(&first.id).await.unwrap().unwrap();
    assert_eq!(done.state, "succeeded");
    assert_eq!(done.report.as_deref(), Some(r#"{"portal_id":1}"#));
    assert!(done.finished_at.is_some());

    let failed = RunOutcome::Failed {
        error_type: "okta-group-not-found".into(),
        error: "no such group".into(),
    };
    assert!(s
        .finish_reconcile_run(&other.id, "b", &failed, t0 + secs(62))
        .await
        .unwrap());
    let gone = s.reconcile_run(&other.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.state.as_str(), gone.error_type.as_deref()),
        ("failed", Some("okta-group-not-found"))
    );

    // Handed back, with a reason, not to be taken before its time.
    assert!(s
        .release_reconcile_run(&second.id, "b", Some("portal busy"), t0 + secs(120))
        .await
        .unwrap());
    assert!(s
        .claim_reconcile_runs("c", t0 + secs(100), t0 + secs(130), 10)
        .await
        .unwrap()
        .is_empty());
    let again = s
        .claim_reconcile_runs("c", t0 + secs(121), t0 + secs(150), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].error.as_deref(), Some("portal busy"));

    // c dies: its lease runs out and d takes the run over.
    let taken = s
        .claim_reconcile_runs("d", t0 + secs(151), t0 + secs(180), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(!s
        .finish_reconcile_run(&second.id, "c", &report, t0 + secs(152))
        .await
        .unwrap());

    let all = s.list_reconcile_runs(None, None, 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![other.id.as_str(), second.id.as_str(), first.id.as_str()]
    );
    let page = s
        .list_reconcile_runs(Some(portal(1)), None, 1)
        .await
        .unwrap();
    assert_eq!(page[0].id, second.id);
    let next = s
        .list_reconcile_runs(
            Some(portal(1)),
            Some((page[0].created_at, page[0].id.clone())),
            10,
        )
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, first.id);
    let latest = s.latest_reconcile_runs(&[1, 2, 3], false).await.unwrap();
    let mut latest: Vec<(i32, &str)> = latest
        .iter()
        .map(|r| (r.portal_id, r.id.as_str()))
        .collect();
    latest.sort();
    assert_eq!(
        latest,
        vec![(1, second.id.as_str()), (2, other.id.as_str())]
    );
    // What the latest run found: portal 1's newest run is still running, so its latest
    // finished one is the first.
    let finished = s.latest_reconcile_runs(&[1, 2, 3], true).await.unwrap();
    let finished: Vec<(i32, &str)> = finished
        .iter()
        .map(|r| (r.portal_id, r.id.as_str()))
        .collect();
    assert_eq!(
        finished,
        vec![(1, first.id.as_str()), (2, other.id.as_str())]
    );
}

pub async fn okta_event_leases_are_renewed_and_finished_by_their_holder_only(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    let events: Vec<NewOktaEvent> = (1..=3)
        .map(|i| NewOktaEvent {
            uuid: format!("evt-{i}"),
            event_type: "user.lifecycle.deactivate".into(),
            published: t0 - secs(10 - i),
            payload: "{}".into(),
        })
        .collect();
    assert_eq!(s.store_okta_events(&events, t0).await.unwrap(), 3);
    assert_eq!(
        s.store_okta_events(&events, t0).await.unwrap(),
        0,
        "a redelivery stores nothing"
    );
    // a holds the lease to 30 s and renews it to 90 s: at 60 s it is still a's, at
    // 91 s b may take over.
    let (after_first_lease, after_renewal) = (t0 + secs(60), t0 + secs(91));
    let claimed = s
        .claim_okta_events("a", t0, t0 + secs(30), 10)
        .await
        .unwrap();
    let uuids: Vec<String> = claimed.iter().map(|e| e.uuid.clone()).collect();
    assert_eq!(uuids, ["evt-1", "evt-2", "evt-3"], "oldest published first");
    assert_eq!(
        s.renew_okta_event_leases(&uuids, "x", t0 + secs(300))
            .await
            .unwrap(),
        0,
        "not x's to renew"
    );
    assert_eq!(
        s.renew_okta_event_leases(&uuids, "a", t0 + secs(90))
            .await
            .unwrap(),
        3
    );
    assert!(
        s.claim_okta_events("b", after_first_lease, after_first_lease + secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed: still a's"
    );
    let taken = s
        .claim_okta_events("b", after_renewal, after_renewal + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 3, "a stopped renewing: b takes over");
    assert_eq!(
        s.renew_okta_event_leases(&uuids, "a", after_renewal + secs(30))
            .await
            .unwrap(),
        0,
        "a lost its leases"
    );
    assert!(!s
        .finish_okta_event("evt-1", "a", event_state::IGNORED, "late", after_renewal)
        .await
        .unwrap());
    assert!(s
        .finish_okta_event("evt-1", "b", event_state::IGNORED, "done", after_renewal)
        .await
        .unwrap());
    let finished = s.okta_event("evt-1").await.unwrap().unwrap();
    assert_eq!(
        (finished.state.as_str(), finished.outcome.as_deref()),
        (event_state::IGNORED, Some("done"))
    );
}

/// The retention purge removes exactly the processed, ignored and superseded events
/// received before its bound, in batches; pending and failed ones stay. Okta's event
/// ids compare exactly: two that differ only in case are two events.
pub async fn old_finished_okta_events_are_purged_and_uuids_compare_exactly(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    let old = t0 - chrono::TimeDelta::days(40);
    let event = |uuid: &str, published| NewOktaEvent {
        uuid: uuid.into(),
        event_type: "user.lifecycle.deactivate".into(),
        published,
        payload: "{}".into(),
    };
    let states = [
        ("old-processed", event_state::PROCESSED),
        ("old-ignored", event_state::IGNORED),
        ("old-superseded", event_state::SUPERSEDED),
        ("old-failed", event_state::FAILED),
        ("old-pending", event_state::PENDING),
    ];
    let olds: Vec<NewOktaEvent> = states.iter().map(|(u, _)| event(u, old)).collect();
    assert_eq!(s.store_okta_events(&olds, old).await.unwrap(), 5);
    assert_eq!(
        s.store_okta_events(&[event("new-processed", t0)], t0)
            .await
            .unwrap(),
        1
    );
    let claimed = s
        .claim_okta_events("w", t0, t0 + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 6);
    for (uuid, state) in states
        .iter()
        .copied()
        .chain([("new-processed", event_state::PROCESSED)])
    {
        if state != event_state::PENDING {
            assert!(s
                .finish_okta_event(uuid, "w", state, "done", t0)
                .await
                .unwrap());
        }
    }
    let bound = t0 - chrono::TimeDelta::days(30);
    assert_eq!(s.purge_okta_events(bound, 2).await.unwrap(), 2, "a batch");
    assert_eq!(s.purge_okta_events(bound, 2).await.unwrap(), 1);
    assert_eq!(s.purge_okta_events(bound, 2).await.unwrap(), 0);
    let mut left: Vec<String> = s
        .list_okta_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    left.sort();
    assert_eq!(left, ["new-processed", "old-failed", "old-pending"]);

    let cased = [event("Evt-Case-1", t0), event("evt-case-1", t0)];
    assert_eq!(s.store_okta_events(&cased, t0).await.unwrap(), 2);
    assert!(s.okta_event("EVT-CASE-1").await.unwrap().is_none());
    assert_eq!(
        s.okta_event("Evt-Case-1").await.unwrap().unwrap().uuid,
        "Evt-Case-1"
    );
}
