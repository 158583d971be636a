//! What the EFS-sized tables need (issue 15), on both dialects: purges that run in
//! batches delete exactly what the one-statement purges deleted, however many batches
//! it takes (ties on the time column across a batch boundary included), and the
//! listings that read one index per filter (migration 0007) still return every
//! matching row once, in order, legacy values included.

use crate::common::TestDb;
use chrono::{Duration as ChronoDuration, NaiveDateTime, SubsecRound, Utc};
use efs_iam::domain::{PortalId, PortalUserStatus};
use efs_iam::storage::prelude::*;
use efs_iam::storage::*;

crate::backend_matrix!(
    #[tokio::test] sqlite, mysql;
    token_purge_runs_in_batches_and_deletes_exactly_the_expired,
    error_log_purge_runs_in_batches_and_deletes_exactly_the_older,
    error_log_purges_are_leased_and_only_their_holder_ends_them,
    reference_filters_page_through_every_legacy_value,
);

/// More than two purge batches (1,000 rows each).
const MANY: usize = 2_500;

fn at(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Purges the error log before `before` batch by batch, as its worker does: how many
/// entries went, and in how many batches.
pub(crate) async fn purge_error_log(store: &SqlStore, before: NaiveDateTime) -> (u64, usize) {
    let (mut deleted, mut batches, mut after) = (0, 0, None);
    loop {
        let (n, next) = store.purge_error_log_batch(before, after).await.unwrap();
        deleted += n;
        batches += 1;
        match next {
            Some(position) => after = Some(position),
            None => return (deleted, batches),
        }
    }
}

/// Inserts `rows` (SQL value tuples) into `table (columns)`, 500 per statement.
async fn insert(db: &TestDb, table: &str, columns: &str, rows: &[String]) {
    for chunk in rows.chunks(500) {
        db.execute(&format!(
            "INSERT INTO {table} ({columns}) VALUES {}",
            chunk.join(", ")
        ))
        .await;
    }
}

async fn token_purge_runs_in_batches_and_deletes_exactly_the_expired(db: TestDb) {
    let now = Utc::now().trunc_subsecs(0);
    let naive = now.naive_utc();
    let mut rows = Vec::new();
    // Expired: three distinct expiry times, so ties straddle the batch boundaries;
    // one expires exactly now (expired "at or before now").
    for i in 0..MANY {
        let expired = match i % 3 {
            0 => naive - ChronoDuration::hours(2),
            1 => naive - ChronoDuration::minutes(1),
            _ => naive - ChronoDuration::days(30),
        };
        let expired = if i == 7 { naive } else { expired };
        rows.push(format!(
            "(X'01{i:064x}', 'sealed', '{}', '{}')",
            at(expired - ChronoDuration::hours(1)),
            at(expired)
        ));
    }
    // Live rows, interleaved in id order with legacy rows that have no expiry yet.
    for i in 0..1_200 {
        rows.push(format!(
            "(X'02{i:064x}', 'sealed', '{}', '{}')",
            at(naive),
            at(naive + ChronoDuration::seconds(1 + i as i64))
        ));
        rows.push(format!("(X'6c6567{i:08x}', '{{}}', NULL, NULL)"));
    }
    insert(
        &db,
        "iam_token_data",
        "session_id, idp_response, stored_at, expires_at",
        &rows,
    )
    .await;
    let total = (MANY + 2_400) as i64;
    assert_eq!(db.count("SELECT COUNT(*) FROM iam_token_data").await, total);

    let legacy_expiry = now + ChronoDuration::hours(24);
    let purged = db
        .store
        .purge_expired_tokens(now, legacy_expiry)
        .await
        .unwrap();
    assert_eq!(purged, MANY as u64, "every expired row, nothing else");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM iam_token_data").await,
        2_400,
        "the live and the legacy rows stay"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM iam_token_data WHERE expires_at IS NULL")
            .await,
        0,
        "every legacy row (more than one batch of them) got an expiry"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM iam_token_data WHERE expires_at = '{}'",
            at(legacy_expiry.naive_utc())
        ))
        .await,
        1_200
    );
    // Nothing left to do; then, a minute later, the first 60 live rows have expired.
    assert_eq!(
        db.store
            .purge_expired_tokens(now, legacy_expiry)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.store
            .purge_expired_tokens(now + ChronoDuration::seconds(60), legacy_expiry)
            .await
            .unwrap(),
        60
    );
    // A day and a second later everything has expired, legacy rows included.
    assert_eq!(
        db.store
            .purge_expired_tokens(legacy_expiry + ChronoDuration::seconds(1), legacy_expiry)
            .await
            .unwrap(),
        2_340
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM iam_token_data").await, 0);
}

async fn error_log_purge_runs_in_batches_and_deletes_exactly_the_older(db: TestDb) {
    let cutoff = Utc::now().naive_utc().trunc_subsecs(0) - ChronoDuration::days(180);
    let mut rows = Vec::new();
    // Older than the cutoff, inserted newest first (ids against time order), with ties.
    for i in 0..MANY {
        let created = cutoff - ChronoDuration::seconds(1 + (MANY - i) as i64 / 7);
        rows.push(format!("('{}', 'old #{i}', 429, 'E0000047')", at(created)));
    }
    // At the cutoff (kept: `before` is exclusive) and after it.
    rows.push(format!("('{}', 'at the cutoff', 500, '')", at(cutoff)));
    for i in 0..150 {
        rows.push(format!(
            "('{}', 'new #{i}', 400, 'E0000001')",
            at(cutoff + ChronoDuration::minutes(i))
        ));
    }
    insert(
        &db,
        "iam_error_log",
        "created_at, message, status_code, error_code",
        &rows,
    )
    .await;

    assert_eq!(purge_error_log(&db.store, cutoff).await, (MANY as u64, 3));
    assert_eq!(db.count("SELECT COUNT(*) FROM iam_error_log").await, 151);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM iam_error_log WHERE message LIKE 'old%'")
            .await,
        0
    );
    assert_eq!(purge_error_log(&db.store, cutoff).await, (0, 1));
    assert_eq!(
        purge_error_log(&db.store, cutoff + ChronoDuration::seconds(1)).await,
        (2, 1),
        "the row at the cutoff and the first new one"
    );
}

/// Pages of `limit` through one filter: every id once, in order.
async fn walk(db: &TestDb, portal: PortalId, query: PortalUserReferenceQuery) -> Vec<i32> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .store
            .list_portal_user_references(
                portal,
                &PortalUserReferenceQuery {
                    after_id: after,
                    ..query.clone()
                },
            )
            .await
            .unwrap();
        assert!(page.len() <= query.limit as usize);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|r| r.id));
    }
    seen
}

async fn reference_filters_page_through_every_legacy_value(db: TestDb) {
    // Legacy has_data_changes values: NULL (false), and other non-zero values than 1
    // (true), interleaved with 0 and 1; statuses 0-3, NULL and an unknown 7.
    let flags = [
        "0", "1", "NULL", "2", "0", "-1", "1", "NULL", "0", "1", "127",
    ];
    let statuses = ["1", "1", "0", "2", "NULL", "1", "3", "7", "2", "1", "1"];
    let users: Vec<i32> = (1..=66).collect();
    db.seed_efs_users(&[], &users).await;
    let mut rows = Vec::new();
    for user in &users {
        let i = *user as usize % flags.len();
        let portal = if user % 5 == 0 { 8 } else { 7 };
        rows.push(format!(
            "({portal}, {user}, '00u{user}', {}, {})",
            statuses[i], flags[i]
        ));
    }
    insert(
        &db,
        "iam_portal_user_reference",
        "portal_id, user_id, uuid, status, has_data_changes",
        &rows,
    )
    .await;
    let portal = PortalId::new(7).unwrap();
    let all: Vec<(i32, Option<i64>, Option<i64>)> = {
        // `+ 0` reads TINYINT as a plain integer on MariaDB too.
        let sql = "SELECT id, status + 0, has_data_changes + 0 FROM iam_portal_user_reference \
                   WHERE portal_id = 7 ORDER BY id";
        match db.store.db() {
            efs_iam::storage::sql::Db::MySql(p) => sqlx::query_as(sql).fetch_all(p).await,
            efs_iam::storage::sql::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap()
    };
    let expect = |status: Option<i64>, changed: Option<bool>| -> Vec<i32> {
        all.iter()
            .filter(|(_, s, _)| status.is_none() || *s == status)
            .filter(|(_, _, c)| match changed {
                None => true,
                Some(true) => c.is_some_and(|c| c != 0),
                Some(false) => c.is_none_or(|c| c == 0),
            })
            .map(|(id, _, _)| *id)
            .collect()
    };
    for status in [
        None,
        Some(PortalUserStatus::Synced),
        Some(PortalUserStatus::Pending),
        Some(PortalUserStatus::Failed),
        Some(PortalUserStatus::Deprovisioned),
    ] {
        for changed in [None, Some(true), Some(false)] {
            for limit in [1, 3, 50] {
                let got = walk(
                    &db,
                    portal,
                    PortalUserReferenceQuery {
                        status,
                        has_data_changes: changed,
                        after_id: None,
                        limit,
                    },
                )
                .await;
                assert_eq!(
                    got,
                    expect(status.map(|s| i64::from(s.code())), changed),
                    "status {status:?}, has_data_changes {changed:?}, limit {limit}"
                );
            }
        }
    }
    // The legacy values are there to be found.
    assert!(!expect(None, Some(true)).is_empty() && !expect(None, Some(false)).is_empty());
}

/// A purge asked for through the API is a leased row like queue rows: one holder at a
/// time, taken over once its lease runs out (with its progress), ended or handed back
/// only by its holder, forgotten once it ended long enough ago.
async fn error_log_purges_are_leased_and_only_their_holder_ends_them(db: TestDb) {
    let s = &db.store;
    let t0 = now();
    let before = t0 - ChronoDuration::days(30);
    let (first, second) = (
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
    );
    let created = s
        .create_error_log_purge(first, before, "ops", t0)
        .await
        .unwrap();
    s.create_error_log_purge(second, before, "ops", t0 + ChronoDuration::seconds(1))
        .await
        .unwrap();
    let stored = s.error_log_purge(first).await.unwrap().unwrap();
    assert_eq!(created, stored, "the purge as stored");
    assert_eq!(
        (
            stored.state.as_str(),
            stored.purge_before,
            stored.requested_by.as_str(),
            stored.deleted
        ),
        ("pending", before, "ops", 0)
    );

    let lease = ChronoDuration::seconds(30);
    let a = s
        .claim_error_log_purge("a", t0, t0 + lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.id.as_str(), a.state.as_str(), a.attempts),
        (first, "running", 1)
    );
    let b = s
        .claim_error_log_purge("b", t0, t0 + lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.id, second, "a held purge is nobody else's");
    assert!(s
        .claim_error_log_purge("c", t0, t0 + lease)
        .await
        .unwrap()
        .is_none());

    assert!(s
        .count_error_log_purge_progress(first, "a", 1_000)
        .await
        .unwrap());
    assert!(
        !s.count_error_log_purge_progress(first, "b", 7)
            .await
            .unwrap(),
        "not b's"
    );
    assert!(!s
        .renew_error_log_purge(first, "b", t0 + lease)
        .await
        .unwrap());
    assert!(s
        .renew_error_log_purge(first, "a", t0 + lease)
        .await
        .unwrap());

    assert!(s
        .renew_error_log_purge(second, "b", t0 + lease * 3)
        .await
        .unwrap());
    // a dies: once its lease ran out, c takes the purge over, its progress kept.
    let later = t0 + lease + ChronoDuration::seconds(1);
    let c = s
        .claim_error_log_purge("c", later, later + lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.id.as_str(), c.attempts, c.deleted), (first, 2, 1_000));
    assert!(
        !s.finish_error_log_purge(first, "a", None, later)
            .await
            .unwrap(),
        "a lost it"
    );
    assert!(s
        .count_error_log_purge_progress(first, "c", 500)
        .await
        .unwrap());
    assert!(s
        .finish_error_log_purge(first, "c", None, later)
        .await
        .unwrap());
    let done = s.error_log_purge(first).await.unwrap().unwrap();
    assert_eq!(
        (
            done.state.as_str(),
            done.deleted,
            done.finished_at,
            done.error
        ),
        ("succeeded", 1_500, Some(later), None)
    );
    assert!(s
        .claim_error_log_purge("d", later, later + lease)
        .await
        .unwrap()
        .is_none());

    // b hands its purge back after a failure, held back until a retry time.
    let retry = later + ChronoDuration::seconds(10);
    assert!(s
        .release_error_log_purge(second, "b", Some("database gone"), Some(retry))
        .await
        .unwrap());
    let waiting = s.error_log_purge(second).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state.as_str(), waiting.error.as_deref()),
        ("pending", Some("database gone"))
    );
    assert!(
        s.claim_error_log_purge("d", later, later + lease)
            .await
            .unwrap()
            .is_none(),
        "held back"
    );
    let d = s
        .claim_error_log_purge("d", retry + ChronoDuration::seconds(1), retry + lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.id.as_str(), d.attempts), (second, 2));
    assert!(s
        .finish_error_log_purge(second, "d", Some("gave up"), retry)
        .await
        .unwrap());
    let failed = s.error_log_purge(second).await.unwrap().unwrap();
    assert_eq!(
        (failed.state.as_str(), failed.error.as_deref()),
        ("failed", Some("gave up"))
    );

    // Ended purges are forgotten after their retention; a running one never.
    let third = "00000000-0000-4000-8000-000000000003";
    s.create_error_log_purge(third, before, "ops", t0)
        .await
        .unwrap();
    s.claim_error_log_purge("e", retry, retry + lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.forget_error_log_purges(later).await.unwrap(),
        0,
        "none ended before"
    );
    assert_eq!(
        s.forget_error_log_purges(retry + ChronoDuration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert!(s.error_log_purge(first).await.unwrap().is_none());
    assert_eq!(
        s.error_log_purge(third).await.unwrap().unwrap().state,
        "running"
    );
}
