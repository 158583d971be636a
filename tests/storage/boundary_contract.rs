//! The managed-user boundary's storage (the managed users, creation marks, bulk
//! adoption runs and items), on both backends.

use std::collections::HashSet;

use chrono::Duration as ChronoDuration;
use efs_iam::domain::PortalUserStatus;
use efs_iam::storage::prelude::*;
use efs_iam::storage::*;

use crate::common::TestDb;
use crate::contract::{okta, portal, user};

pub async fn managed_users_are_recorded_once(db: TestDb) {
    let s = &db.store;
    let t = now();
    let a = okta("00uMANAGEDA");
    assert_eq!(s.managed_okta_user(&a).await.unwrap(), None);
    assert!(s
        .manage_okta_user(&a, ManagedOrigin::Created, "efs-iam", Some("a@x.io"), t)
        .await
        .unwrap());
    assert!(
        !s.manage_okta_user(&a, ManagedOrigin::Adopted, "admin", None, t)
            .await
            .unwrap(),
        "the first record stays"
    );
    let record = s.managed_okta_user(&a).await.unwrap().unwrap();
    assert_eq!(
        (
            record.okta_user_id.as_str(),
            record.origin.as_str(),
            record.managed_by.as_str()
        ),
        ("00uMANAGEDA", "created", "efs-iam")
    );
    // Ids compare exactly: another case is another Okta user.
    assert_eq!(
        s.managed_okta_user(&okta("00umanageda")).await.unwrap(),
        None
    );
    let ids: Vec<_> = ["00uMANAGEDA", "00uOTHER", "00umanageda"]
        .iter()
        .map(|i| okta(i))
        .collect();
    assert_eq!(
        s.managed_among(&ids).await.unwrap(),
        HashSet::from(["00uMANAGEDA".to_owned()])
    );

    // Creation marks: the first attempt's time counts; logins ignore case.
    s.mark_creation("New@X.io", t).await.unwrap();
    s.mark_creation("new@x.io", t + ChronoDuration::seconds(30))
        .await
        .unwrap();
    assert_eq!(s.creation_started("NEW@x.io").await.unwrap(), Some(t));
    s.clear_creation("new@X.IO").await.unwrap();
    assert_eq!(s.creation_started("new@x.io").await.unwrap(), None);
}

pub async fn adoption_runs_list_every_referenced_user_once_and_finish(db: TestDb) {
    let s = &db.store;
    db.seed_efs_users(&[1, 2, 3], &[1, 2, 3]).await;
    s.put_admin_user_reference(user(1), &okta("00uADMIN1"))
        .await
        .unwrap();
    s.put_admin_user_reference(user(2), &okta("00uSHARED"))
        .await
        .unwrap();
    for (u, id) in [(1, "00uSHARED"), (2, "00uPANEL2")] {
        s.put_portal_user_reference(
            portal(4),
            user(u),
            &PortalUserReferenceUpsert {
                okta_user_id: okta(id),
                status: PortalUserStatus::Synced,
                has_data_changes: false,
            },
        )
        .await
        .unwrap();
    }
    s.enqueue_unassignments(
        portal(4),
        &[NewUnassignment {
            user_id: user(3),
            okta_user_id: okta("00uQUEUED3"),
            email: None,
        }],
    )
    .await
    .unwrap();
    let t = now();
    let run = "6e2d0b0e-7a84-4b8e-8f6f-2d3c4b5a6e01";
    s.create_adoption_run(run, false, "ops", t).await.unwrap();
    let until = t + ChronoDuration::seconds(30);
    assert!(
        s.collect_adoption_items(run, "a", t)
            .await
            .unwrap()
            .is_none(),
        "only its holder lists a run"
    );
    let claimed = s.claim_adoption_collection("a", t, until).await.unwrap();
    assert_eq!(claimed.map(|r| r.id), Some(run.to_owned()));
    assert_eq!(
        s.claim_adoption_collection("b", t, until).await.unwrap(),
        None,
        "held by a"
    );
    assert_eq!(
        s.collect_adoption_items(run, "a", t).await.unwrap(),
        Some(4),
        "the distinct ids of the references and the queue"
    );
    let (listed, counts) = s.adoption_run(run).await.unwrap().unwrap();
    assert_eq!((listed.state.as_str(), counts["pending"]), ("checking", 4));

    let items = s.claim_adoption_items("a", t, until, 10).await.unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| !i.dry_run && i.requested_by == "ops"));
    assert!(s
        .claim_adoption_items("b", t, until, 10)
        .await
        .unwrap()
        .is_empty());
    let first = &items[0];
    assert!(
        !s.finish_adoption_item(first.id, "b", ItemVerdict::Adopted, None, None, t)
            .await
            .unwrap(),
        "only the holder records an outcome"
    );
    assert!(s
        .finish_adoption_item(first.id, "a", ItemVerdict::Adopted, None, Some("x@y.z"), t)
        .await
        .unwrap());
    assert!(s
        .finish_adoption_item(
            items[1].id,
            "a",
            ItemVerdict::Refused,
            Some("admin roles"),
            None,
            t
        )
        .await
        .unwrap());
    assert!(s
        .retry_adoption_item(
            items[2].id,
            "a",
            "Okta unavailable",
            t + ChronoDuration::seconds(60)
        )
        .await
        .unwrap());
    assert_eq!(
        s.release_adoption_items(&[items[3].id], "a").await.unwrap(),
        1
    );
    assert!(
        s.finish_adoption_runs(t).await.unwrap().is_empty(),
        "items still pending"
    );

    let later = t + ChronoDuration::seconds(61);
    let again = s
        .claim_adoption_items("b", t, later + ChronoDuration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the released item, not the one backing off");
    assert_eq!(again[0].id, items[3].id);
    let retried = s
        .claim_adoption_items("b", later, later + ChronoDuration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    for item in again.iter().chain(&retried) {
        s.finish_adoption_item(item.id, "b", ItemVerdict::AlreadyManaged, None, None, later)
            .await
            .unwrap();
    }
    assert_eq!(
        s.finish_adoption_runs(later).await.unwrap(),
        vec![run.to_owned()]
    );
    let (done, counts) = s.adoption_run(run).await.unwrap().unwrap();
    assert_eq!(done.state, "succeeded");
    assert_eq!(
        (
            counts["adopted"],
            counts["refused"],
            counts["already_managed"],
            counts["pending"]
        ),
        (1, 1, 2, 0)
    );
    let refused = s
        .adoption_items(run, Some("refused"), None, 10)
        .await
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason.as_deref(), Some("admin roles"));
    let page = s.adoption_items(run, None, None, 2).await.unwrap();
    let rest = s
        .adoption_items(run, None, Some(page[1].id as i32), 10)
        .await
        .unwrap();
    assert_eq!(page.len() + rest.len(), 4);
}
