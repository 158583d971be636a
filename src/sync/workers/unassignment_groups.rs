//! The portals' Okta groups as the unassignment worker sees them: each claimed
//! portal's group (or why it has none), whether Okta has a group (a 404 from a removal
//! means no such user *or* no such group), and the portals whose group is missing, for
//! `/sync/status`, the metrics and the error log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::PortalId;
use crate::okta::{OktaClient, OktaError};
use crate::storage::{
    ErrorLogStore, NewErrorLogEntry, PortalGroup, PortalSettingsStore, StorageError, Unassignment,
};
use crate::sync::SyncStorage;

/// How long an answer to "does this group exist?" is reused.
pub const GROUP_CHECK_TTL: Duration = Duration::from_secs(30);

/// A portal whose `okta_group_id` names no group Okta has, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MissingGroup {
    pub portal_id: i32,
    pub group_id: String,
    pub checked_at: DateTime<Utc>,
}

pub(super) struct PortalGroups {
    portal_settings: Arc<dyn PortalSettingsStore>,
    error_log: Arc<dyn ErrorLogStore>,
    okta: OktaClient,
    /// group id → (when asked, whether Okta has it)
    checks: tokio::sync::Mutex<HashMap<String, (Instant, bool)>>,
    /// portal → its missing group, for `/sync/status` (until a check finds it again).
    missing: Mutex<BTreeMap<i32, MissingGroup>>,
}

impl PortalGroups {
    pub(super) fn new<S: SyncStorage>(store: &Arc<S>, okta: OktaClient) -> Self {
        Self {
            portal_settings: store.clone(),
            error_log: store.clone(),
            okta,
            checks: tokio::sync::Mutex::new(HashMap::new()),
            missing: Mutex::new(BTreeMap::new()),
        }
    }

    /// Portals whose `okta_group_id` names no group Okta has, as this instance last saw.
    pub(super) fn missing_groups(&self) -> Vec<MissingGroup> {
        self.missing.lock().unwrap().values().cloned().collect()
    }

    /// Okta confirmed the portal's group (it removed a member of it, or said it exists).
    pub(super) fn found(&self, portal: i32) {
        self.missing.lock().unwrap().remove(&portal);
    }

    /// Each claimed portal's Okta group, or why there is none.
    pub(super) async fn groups_of(
        &self,
        rows: &[Unassignment],
    ) -> Result<HashMap<i32, Result<String, String>>, StorageError> {
        let mut groups = HashMap::new();
        for portal in rows.iter().filter_map(|r| r.portal_id) {
            if groups.contains_key(&portal) {
                continue;
            }
            let group = match PortalId::new(portal) {
                Ok(p) => match self.portal_settings.portal_group(p).await? {
                    PortalGroup::Linked(g) => Ok(g.as_str().to_owned()),
                    PortalGroup::NotLinked => Err(format!(
                        "portal {portal} has no okta_group_id setting; set it, then requeue"
                    )),
                    PortalGroup::Malformed(v) => Err(format!(
                        "okta-group-not-found: the okta_group_id of portal {portal} ({v:?}) is \
                         no Okta group id; correct the setting, then requeue"
                    )),
                },
                Err(_) => Err(format!("portal id {portal} is not valid")),
            };
            groups.insert(portal, group);
        }
        Ok(groups)
    }

    /// Whether Okta has the group; asked at most once per [`GROUP_CHECK_TTL`]. The
    /// lock is held across the question, so the rows of a step that all got a 404 at
    /// once wait for one answer instead of each asking.
    pub(super) async fn exists(&self, group: &str) -> Result<bool, OktaError> {
        let mut checks = self.checks.lock().await;
        if let Some((at, exists)) = checks.get(group) {
            if at.elapsed() < GROUP_CHECK_TTL {
                return Ok(*exists);
            }
        }
        let exists = self.okta.get_group(group).await?.is_some();
        checks.insert(group.to_owned(), (Instant::now(), exists));
        Ok(exists)
    }

    /// One error-log row per portal whose group is missing, and the status list.
    pub(super) async fn report_missing(&self, missing: BTreeMap<i32, (String, usize)>) {
        let checked_at = Utc::now();
        for (portal, (group, rows)) in missing {
            self.missing.lock().unwrap().insert(
                portal,
                MissingGroup {
                    portal_id: portal,
                    group_id: group.clone(),
                    checked_at,
                },
            );
            let message = format!(
                "portal {portal}: okta_group_id {group} names no group in Okta; {rows} \
                 unassignment(s) of this step failed and wait (retried, then kept as dead \
                 letters); correct the setting, then requeue"
            );
            let entry = NewErrorLogEntry::new(404, "efs-iam:okta-group-not-found", &message, None);
            if let Err(e) = self.error_log.record_error(&entry).await {
                tracing::warn!(error = %e, "could not write the missing group to the error log");
            }
        }
        metrics::gauge!("efs_iam_portals_missing_okta_group")
            .set(self.missing.lock().unwrap().len() as f64);
    }
}
