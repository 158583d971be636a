//! Reconciliation of one portal: its Okta group against its references.
//!
//! | finding | meaning | repair |
//! |---|---|---|
//! | missing member | a reference (not deprovisioned) names an Okta user outside the group | add to the group |
//! | extra member | a group member no live reference of the portal names (a deactivated Okta user counts as not live) | remove from the group |
//! | stale reference | the referenced Okta user is gone or deprovisioned | set the reference's status to `deprovisioned` |
//!
//! Safety: every change is decided from complete reads. The group's member list is
//! read in full (any failed page fails the whole reconciliation before anything is
//! changed), and so are the portal's references. A user whose own lookup fails is
//! reported under `errors` and left alone. A dry run only reports.

use std::collections::{HashMap, HashSet};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{SyncEngine, SyncError};
use crate::domain::{PortalId, PortalUserStatus};
use crate::okta::{ListBound, OktaError, OktaGroupMember, OktaUserStatus, OnMissing};
use crate::storage::{PortalUserReference, PortalUserReferencePatch, PortalUserReferenceQuery};

/// Entries listed per finding; the counts are always complete.
pub const MAX_LISTED: usize = 1000;
/// Okta lookups in flight during a reconciliation.
const LOOKUPS: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconcileReport {
    pub portal_id: i32,
    pub group_id: String,
    /// `true`: nothing was changed.
    pub dry_run: bool,
    /// Members of the Okta group.
    pub okta_members: usize,
    /// The portal's references (newest per user).
    pub references: usize,
    /// References without an Okta user id (never synced, or failed before one existed).
    pub unlinked_references: usize,
    pub counts: ReconcileCounts,
    /// At most 1000 of each; see `counts`.
    pub missing_members: Vec<MissingMember>,
    pub extra_members: Vec<ExtraMember>,
    pub stale_references: Vec<StaleReference>,
    /// Users whose lookup or repair failed; nothing was changed for them.
    pub errors: Vec<ReconcileError>,
    /// What was changed (all zero on a dry run).
    pub repaired: Repaired,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconcileCounts {
    pub missing_members: usize,
    pub extra_members: usize,
    pub stale_references: usize,
    pub errors: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Repaired {
    /// Users added to the group.
    pub added: usize,
    /// Users removed from the group.
    pub removed: usize,
    /// References set to `deprovisioned`.
    pub marked_deprovisioned: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MissingMember {
    pub user_id: i32,
    pub okta_user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExtraMember {
    pub okta_user_id: String,
    pub login: String,
    /// EFS user of a reference to this Okta user, if any.
    pub user_id: Option<i32>,
    /// `no_reference`, `reference_deprovisioned` (the portal user was deprovisioned)
    /// or `okta_user_deprovisioned` (deactivated in Okta; its reference is stale).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StaleReference {
    pub user_id: i32,
    pub okta_user_id: String,
    /// `okta_user_gone` or `okta_user_deprovisioned`.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconcileError {
    pub user_id: Option<i32>,
    pub okta_user_id: String,
    pub error: String,
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

/// Newest reference per user (legacy data may hold several).
fn newest_per_user(refs: Vec<PortalUserReference>) -> Vec<PortalUserReference> {
    let mut by_user: HashMap<Option<i32>, PortalUserReference> = HashMap::new();
    for r in refs {
        match by_user.get(&r.user_id) {
            Some(existing) if existing.id > r.id => {}
            _ => {
                by_user.insert(r.user_id, r);
            }
        }
    }
    let mut out: Vec<_> = by_user.into_values().collect();
    out.sort_by_key(|r| r.id);
    out
}

/// What a reconciliation does to a member of the portal's group.
#[derive(Clone, Copy)]
enum Repair {
    Add,
    Remove,
}

/// A failure of a repair: the EFS user (when there is one), the Okta user, why.
type RepairFailure = (Option<i32>, String, String);

impl SyncEngine {
    /// Adds or removes `members` (EFS user id, Okta user id), each only if efs-iam
    /// manages it, at most [`LOOKUPS`] at once; how many were done, failures pushed.
    async fn repair_members(
        &self,
        group: &str,
        members: Vec<(Option<i32>, String)>,
        repair: Repair,
        failures: &mut Vec<RepairFailure>,
    ) -> usize {
        let outcomes: Vec<_> = stream::iter(members)
            .map(|(user_id, okta_id)| async move {
                let r = match self.boundary.check_may_change_id(&okta_id).await {
                    Ok(()) => match repair {
                        Repair::Add => self.okta.add_group_member(group, &okta_id).await,
                        Repair::Remove => self
                            .okta
                            .remove_group_member(group, &okta_id, OnMissing::TreatAsRemoved)
                            .await
                            .map(drop),
                    }
                    .map_err(|e| e.to_string()),
                    Err(refused) => Err(refused.to_string()),
                };
                (user_id, okta_id, r)
            })
            .buffer_unordered(LOOKUPS)
            .collect()
            .await;
        let mut done = 0;
        for (user_id, okta_id, r) in outcomes {
            match r {
                Ok(()) => done += 1,
                Err(e) => failures.push((user_id, okta_id, e)),
            }
        }
        done
    }

    /// Every reference of the portal, in pages.
    async fn all_references(
        &self,
        portal: PortalId,
    ) -> Result<Vec<PortalUserReference>, SyncError> {
        let mut refs = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .references
                .list_portal_user_references(
                    portal,
                    &PortalUserReferenceQuery {
                        after_id: after,
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            refs.extend(page);
        }
        Ok(refs)
    }

    /// Compares the portal's Okta group with its references and reports (dry run) or
    /// repairs the differences.
    #[tracing::instrument(skip(self), fields(portal = portal.get()), err(level = "info"))]
    pub async fn reconcile(
        &self,
        portal: PortalId,
        dry_run: bool,
    ) -> Result<ReconcileReport, SyncError> {
        let group = self.portal_group(portal).await?;
        let refs = self.all_references(portal).await?;
        // The group should hold about the referenced users: twice that, plus headroom,
        // is as far as the listing goes. A run that passes it fails (nothing removed).
        let (headroom, deadline) = self.reconcile_bound;
        let max_items = refs.len().saturating_mul(2).saturating_add(headroom);
        let bound = ListBound {
            max_items,
            max_pages: max_items / 100 + 10,
            deadline,
        };
        let members: Vec<OktaGroupMember> =
            match self.okta.list_group_members_within(&group, bound).await {
                Ok(m) => m,
                Err(OktaError::NotFound(_)) => {
                    return Err(SyncError::GroupNotFound {
                        portal: portal.get(),
                        group_id: group,
                    })
                }
                Err(e) => return Err(SyncError::from_okta(e)),
            };
        let refs = newest_per_user(refs);

        let mut report = ReconcileReport {
            portal_id: portal.get(),
            group_id: group.clone(),
            dry_run,
            okta_members: members.len(),
            references: refs.len(),
            unlinked_references: 0,
            counts: ReconcileCounts::default(),
            missing_members: Vec::new(),
            extra_members: Vec::new(),
            stale_references: Vec::new(),
            errors: Vec::new(),
            repaired: Repaired::default(),
        };
        let member_by_id: HashMap<&str, &OktaGroupMember> =
            members.iter().map(|m| (m.id.as_str(), m)).collect();

        // Okta ids a live reference of this portal names (they belong in the group),
        // and the EFS user of each deprovisioned reference.
        let mut live: HashSet<String> = HashSet::new();
        let mut deprovisioned_ref: HashMap<String, i32> = HashMap::new();
        let mut missing: Vec<(i32, String)> = Vec::new();
        let mut stale: Vec<(i32, String, &'static str)> = Vec::new();
        let mut to_look_up: Vec<(i32, String)> = Vec::new();
        for r in &refs {
            let (Some(user_id), Some(okta_id)) =
                (r.user_id, r.okta_user_id.clone().filter(|s| !s.is_empty()))
            else {
                report.unlinked_references += 1;
                continue;
            };
            if r.status() == Some(PortalUserStatus::Deprovisioned) {
                deprovisioned_ref.insert(okta_id, user_id);
                continue;
            }
            live.insert(okta_id.clone());
            match member_by_id.get(okta_id.as_str()) {
                Some(m) if m.status == OktaUserStatus::Deprovisioned => {
                    stale.push((user_id, okta_id, "okta_user_deprovisioned"));
                }
                Some(_) => {}
                None => to_look_up.push((user_id, okta_id)),
            }
        }

        // References outside the group: is the Okta user still there?
        // Only the status is kept of each user found: there may be thousands.
        let looked_up: Vec<_> = stream::iter(to_look_up)
            .map(|(user_id, okta_id)| async move {
                let found = self.okta.get_user(&okta_id).await;
                (user_id, okta_id, found.map(|u| u.map(|u| u.status)))
            })
            .buffer_unordered(LOOKUPS)
            .collect()
            .await;
        for (user_id, okta_id, found) in looked_up {
            match found {
                Ok(None) => stale.push((user_id, okta_id, "okta_user_gone")),
                Ok(Some(OktaUserStatus::Deprovisioned)) => {
                    stale.push((user_id, okta_id, "okta_user_deprovisioned"))
                }
                Ok(Some(_)) => missing.push((user_id, okta_id)),
                Err(e) => {
                    report.counts.errors += 1;
                    push_capped(
                        &mut report.errors,
                        ReconcileError {
                            user_id: Some(user_id),
                            okta_user_id: okta_id,
                            error: e.to_string(),
                        },
                    );
                }
            }
        }
        missing.sort();
        stale.sort();
        // A stale reference does not keep its (deprovisioned) Okta user in the group.
        let stale_users: HashMap<String, i32> = stale
            .iter()
            .map(|(user_id, okta_id, _)| (okta_id.clone(), *user_id))
            .collect();
        let mut extra: Vec<(&OktaGroupMember, Option<i32>, &'static str)> = members
            .iter()
            .filter(|m| !live.contains(&m.id) || stale_users.contains_key(&m.id))
            .map(
                |m| match (stale_users.get(&m.id), deprovisioned_ref.get(&m.id)) {
                    (Some(user), _) => (m, Some(*user), "okta_user_deprovisioned"),
                    (None, Some(user)) => (m, Some(*user), "reference_deprovisioned"),
                    (None, None) => (m, None, "no_reference"),
                },
            )
            .collect();
        extra.sort_by(|a, b| a.0.id.cmp(&b.0.id));

        report.counts.missing_members = missing.len();
        report.counts.stale_references = stale.len();
        report.counts.extra_members = extra.len();
        for (user_id, okta_id) in &missing {
            push_capped(
                &mut report.missing_members,
                MissingMember {
                    user_id: *user_id,
                    okta_user_id: okta_id.clone(),
                },
            );
        }
        for (user_id, okta_id, reason) in &stale {
            push_capped(
                &mut report.stale_references,
                StaleReference {
                    user_id: *user_id,
                    okta_user_id: okta_id.clone(),
                    reason: (*reason).to_owned(),
                },
            );
        }
        for (m, user_id, reason) in &extra {
            push_capped(
                &mut report.extra_members,
                ExtraMember {
                    okta_user_id: m.id.clone(),
                    login: m.profile.login.clone(),
                    user_id: *user_id,
                    reason: (*reason).to_owned(),
                },
            );
        }
        if dry_run {
            return Ok(report);
        }

        let mut failures = Vec::new();
        let group = group.as_str();
        let missing = missing.into_iter().map(|(u, id)| (Some(u), id)).collect();
        report.repaired.added = self
            .repair_members(group, missing, Repair::Add, &mut failures)
            .await;
        // Someone else's user in the portal's group is reported, never removed (the
        // boundary check in `repair_members`).
        let extra = extra.iter().map(|(m, u, _)| (*u, m.id.clone())).collect();
        report.repaired.removed = self
            .repair_members(group, extra, Repair::Remove, &mut failures)
            .await;
        for (user_id, okta_id, _) in stale {
            let Ok(user) = crate::domain::EfsUserId::new(user_id) else {
                failures.push((Some(user_id), okta_id, "not a valid EFS user id".into()));
                continue;
            };
            let patch = PortalUserReferencePatch {
                status: Some(PortalUserStatus::Deprovisioned),
                ..Default::default()
            };
            match self
                .references
                .patch_portal_user_reference(portal, user, &patch)
                .await
            {
                Ok(_) => report.repaired.marked_deprovisioned += 1,
                Err(e) => failures.push((Some(user_id), okta_id, e.to_string())),
            }
        }
        for (user_id, okta_user_id, error) in failures {
            report.counts.errors += 1;
            push_capped(
                &mut report.errors,
                ReconcileError {
                    user_id,
                    okta_user_id,
                    error,
                },
            );
        }
        tracing::info!(
            added = report.repaired.added,
            removed = report.repaired.removed,
            marked_deprovisioned = report.repaired.marked_deprovisioned,
            errors = report.counts.errors,
            "portal reconciled"
        );
        Ok(report)
    }
}
