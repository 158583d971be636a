//! The error-log purge worker: a purge asked for through the API is done outside the
//! request, in paced batches, and survives its holder stopping half-way.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use efs_iam::storage::now;
use efs_iam::storage::prelude::*;
use efs_iam::sync::ErrorLogPurgeWorker;
use tokio_util::sync::CancellationToken;

use crate::common::TestDb;
use crate::helpers::settings;

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] sqlite, mysql;
    a_purge_stopped_half_way_is_finished_by_the_next_holder,
    a_purge_that_keeps_failing_is_retried_then_ends_failed_with_the_reason,
    a_holder_that_lost_its_lease_mid_purge_stops_and_leaves_the_purge_to_the_new_one,
);

const OLD: usize = 2_500;

fn worker(
    db: &TestDb,
    owner: &str,
    pause: Duration,
    cancel: CancellationToken,
) -> ErrorLogPurgeWorker {
    let mut s = settings(db, None);
    s.sync.lease = Duration::from_secs(2);
    ErrorLogPurgeWorker::new(&db.store, s.sync, owner.into(), cancel).with_pause(pause)
}

async fn insert_entries(db: &TestDb, at: NaiveDateTime, n: usize, what: &str) {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{}', '{what} #{i}', 429, 'E0000047')",
                (at + ChronoDuration::seconds(i as i64 / 10)).format("%Y-%m-%d %H:%M:%S")
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        db.execute(&format!(
            "INSERT INTO iam_error_log (created_at, message, status_code, error_code) VALUES {}",
            chunk.join(", ")
        ))
        .await;
    }
}

/// An instance stopping (shutdown) during a purge hands it back with its progress; the
/// next holder deletes the rest, and only what is older than the bound goes.
async fn a_purge_stopped_half_way_is_finished_by_the_next_holder(db: TestDb) {
    let t = now();
    let bound = t - ChronoDuration::days(1);
    insert_entries(&db, bound - ChronoDuration::days(30), OLD, "old").await;
    insert_entries(&db, bound, 10, "at or after the bound").await;
    let id = "00000000-0000-4000-8000-0000000000aa";
    db.store
        .create_error_log_purge(id, bound, "ops", t)
        .await
        .unwrap();

    // The first holder pauses long between batches and is stopped after its first.
    let stop = CancellationToken::new();
    let first = Arc::new(worker(&db, "first", Duration::from_secs(30), stop.clone()));
    let step = tokio::spawn({
        let first = first.clone();
        async move { first.run_once().await.unwrap() }
    });
    let mut progress = 0;
    for _ in 0..200 {
        progress = db.store.error_log_purge(id).await.unwrap().unwrap().deleted;
        if progress > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(progress, 1_000, "one batch, then the pause");
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), step)
        .await
        .expect("the pause ends at shutdown")
        .unwrap();
    assert!(
        stopped.claimed && stopped.released && !stopped.succeeded,
        "{stopped:?}"
    );
    assert_eq!(stopped.deleted, 1_000);
    let handed_back = db.store.error_log_purge(id).await.unwrap().unwrap();
    assert_eq!(
        (handed_back.state.as_str(), handed_back.deleted),
        ("pending", 1_000)
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM iam_error_log").await,
        (OLD - 1_000 + 10) as i64
    );

    let next = worker(&db, "next", Duration::ZERO, CancellationToken::new());
    let done = next.run_once().await.unwrap();
    assert!(done.succeeded && !done.released, "{done:?}");
    assert_eq!(done.deleted, (OLD - 1_000) as u64);
    let purge = db.store.error_log_purge(id).await.unwrap().unwrap();
    assert_eq!(
        (purge.state.as_str(), purge.deleted, purge.attempts),
        ("succeeded", OLD as i64, 2)
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM iam_error_log").await, 10);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM iam_error_log WHERE message LIKE 'old%'")
            .await,
        0
    );
    assert!(
        !next.run_once().await.unwrap().claimed,
        "nothing left to do"
    );
}

/// A holder whose lease ran out half-way (its heartbeat stalled) and was taken over
/// stops at its next batch: the new holder finishes the purge, the old one neither
/// records progress nor ends or hands back what it no longer holds.
async fn a_holder_that_lost_its_lease_mid_purge_stops_and_leaves_the_purge_to_the_new_one(
    db: TestDb,
) {
    let t = now();
    let bound = t - ChronoDuration::days(1);
    insert_entries(&db, bound - ChronoDuration::days(30), OLD, "old").await;
    let id = "00000000-0000-4000-8000-0000000000cc";
    db.store
        .create_error_log_purge(id, bound, "ops", t)
        .await
        .unwrap();

    let old = Arc::new(worker(
        &db,
        "old holder",
        Duration::from_secs(3),
        CancellationToken::new(),
    ));
    let step = tokio::spawn({
        let old = old.clone();
        async move { old.run_once().await.unwrap() }
    });
    for _ in 0..200 {
        if db.store.error_log_purge(id).await.unwrap().unwrap().deleted > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its lease runs out and passes on (as when its heartbeat could not reach the
    // database in time; in one statement, so that no renewal slips in between), and
    // another instance claims the purge and finishes it while the old holder pauses.
    db.execute(
        "UPDATE efs_iam_error_log_purge \
         SET locked_by = 'someone else', locked_until = '2000-01-01 00:00:00'",
    )
    .await;
    let new = worker(&db, "new holder", Duration::ZERO, CancellationToken::new());
    let done = new.run_once().await.unwrap();
    assert!(done.claimed && done.succeeded, "{done:?}");
    assert_eq!(done.deleted, (OLD - 1_000) as u64);

    let stopped = tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("the old holder stops after its pause")
        .unwrap();
    assert!(
        stopped.claimed && stopped.released && !stopped.succeeded && !stopped.failed,
        "{stopped:?}"
    );
    assert_eq!(stopped.deleted, 1_000, "nothing after it lost the lease");
    let purge = db.store.error_log_purge(id).await.unwrap().unwrap();
    assert_eq!(
        (purge.state.as_str(), purge.deleted, purge.attempts),
        ("succeeded", OLD as i64, 2),
        "the old holder's release or progress did not touch the new holder's result"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM iam_error_log").await, 0);
}

/// A purge the database refuses is handed back with the reason and retried after a
/// backoff, up to `EFS_IAM_SYNC_MAX_ATTEMPTS`; then it ends `failed`, the reason kept.
async fn a_purge_that_keeps_failing_is_retried_then_ends_failed_with_the_reason(db: TestDb) {
    let id = "00000000-0000-4000-8000-0000000000bb";
    db.store
        .create_error_log_purge(id, now(), "ops", now())
        .await
        .unwrap();
    db.execute("DROP TABLE iam_error_log").await;
    let mut s = settings(&db, None);
    s.sync.max_attempts = 2;
    s.sync.backoff_base = Duration::from_millis(10);
    s.sync.backoff_max = Duration::from_millis(10);
    let worker = ErrorLogPurgeWorker::new(&db.store, s.sync, "w".into(), CancellationToken::new())
        .with_pause(Duration::ZERO);

    let first = worker.run_once().await.unwrap();
    assert!(first.released && !first.failed, "{first:?}");
    let waiting = db.store.error_log_purge(id).await.unwrap().unwrap();
    assert_eq!((waiting.state.as_str(), waiting.attempts), ("pending", 1));
    assert!(
        !waiting.error.clone().unwrap_or_default().is_empty(),
        "the reason is kept"
    );
    // Held back until the retry time (whole seconds in the database).
    let mut last = worker.run_once().await.unwrap();
    for _ in 0..50 {
        if last.claimed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = worker.run_once().await.unwrap();
    }
    assert!(last.failed && !last.released, "{last:?}");
    let failed = db.store.error_log_purge(id).await.unwrap().unwrap();
    assert_eq!((failed.state.as_str(), failed.attempts), ("failed", 2));
    assert!(
        !failed.error.clone().unwrap_or_default().is_empty(),
        "{failed:?}"
    );
    assert!(failed.finished_at.is_some());
    assert!(
        !worker.run_once().await.unwrap().claimed,
        "a failed purge is not retried"
    );
}
