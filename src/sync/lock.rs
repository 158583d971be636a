//! Serialises the sync of one user across requests, workers and instances, so that
//! concurrent or retried calls for one EFS user end with one Okta user.
//!
//! Two layers:
//!
//! - **In process:** one async mutex per lock name. Twenty identical requests to one
//!   instance queue here, in order, without touching the database.
//! - **Across instances:** a row in `efs_iam_sync_lock` (a lease with the holder's
//!   name), taken by insert and given back by delete. A holder that crashes leaves a
//!   row that others may take over once `locked_until` has passed; a live holder renews
//!   it every third of the lease. Waiters poll with a growing pause.
//!
//! Why not MySQL's `GET_LOCK`: it belongs to a connection, which would then have to be
//! held through the Okta calls (starving the pool), and SQLite has nothing like it.
//!
//! Names are taken in sorted order, so two callers that need overlapping sets (a user
//! and a login) cannot deadlock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::heartbeat::Heartbeat;
use super::SyncError;
use crate::storage::{now, LeaseStore};

/// The longest a caller waits for a lock before giving up with [`SyncError::Busy`].
pub const MAX_WAIT: Duration = Duration::from_secs(20);

pub struct UserLocks {
    store: Arc<dyn LeaseStore>,
    instance: String,
    lease: Duration,
    local: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
    counter: AtomicU64,
}

/// Held locks; given back by [`LockGuard::release`] (or, as a fallback, on drop).
pub struct LockGuard {
    store: Arc<dyn LeaseStore>,
    owner: String,
    names: Vec<String>,
    _local: Vec<OwnedMutexGuard<()>>,
    heartbeat: Option<Heartbeat>,
    released: bool,
}

impl UserLocks {
    pub fn new(store: Arc<dyn LeaseStore>, instance: String, lease: Duration) -> Self {
        Self {
            store,
            instance,
            lease: lease.max(Duration::from_secs(1)),
            local: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    fn local_mutex(&self, name: &str) -> Arc<AsyncMutex<()>> {
        let mut map = self.local.lock().unwrap();
        if let Some(m) = map.get(name).and_then(Weak::upgrade) {
            return m;
        }
        // Forget names nobody holds any more, so the map does not grow without bound.
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let m = Arc::new(AsyncMutex::new(()));
        map.insert(name.to_owned(), Arc::downgrade(&m));
        m
    }

    /// Takes every named lock, waiting up to `max_wait` in all.
    pub async fn acquire(
        &self,
        names: &[String],
        max_wait: Duration,
    ) -> Result<LockGuard, SyncError> {
        let mut names: Vec<String> = names.to_vec();
        names.sort();
        names.dedup();
        let deadline = Instant::now() + max_wait;
        let owner = format!(
            "{}#{}",
            self.instance,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let mut guard = LockGuard {
            store: self.store.clone(),
            owner: owner.clone(),
            names: Vec::new(),
            _local: Vec::new(),
            heartbeat: None,
            released: false,
        };
        for name in &names {
            let mutex = self.local_mutex(name);
            let local = tokio::time::timeout_at(deadline.into(), mutex.lock_owned())
                .await
                .map_err(|_| SyncError::Busy)?;
            guard._local.push(local);
            let mut pause = Duration::from_millis(10);
            loop {
                let t = now();
                let until = t + chrono::Duration::from_std(self.lease).unwrap_or_default();
                if self.store.try_lock(name, &owner, t, until).await? {
                    guard.names.push(name.clone());
                    break;
                }
                if Instant::now() + pause > deadline {
                    guard.release().await;
                    return Err(SyncError::Busy);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
        let (store, held) = (self.store.clone(), guard.names.clone());
        guard.heartbeat = Some(Heartbeat::start("sync locks", self.lease, move |until| {
            let (store, owner, held) = (store.clone(), owner.clone(), held.clone());
            async move {
                for name in &held {
                    anyhow::ensure!(
                        store.renew_lock(name, &owner, until).await?,
                        "sync lock {name} lost to another holder"
                    );
                }
                Ok(())
            }
        }));
        Ok(guard)
    }
}

impl LockGuard {
    /// Gives the locks back.
    pub async fn release(mut self) {
        self.release_inner().await;
    }

    async fn release_inner(&mut self) {
        self.heartbeat = None;
        for name in std::mem::take(&mut self.names) {
            if let Err(e) = self.store.unlock(&name, &self.owner).await {
                // The lease runs out by itself; others wait at most that long.
                tracing::warn!(lock = %name, error = %e, "could not give back a sync lock");
            }
        }
        self.released = true;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.heartbeat = None;
        if self.released || self.names.is_empty() {
            return;
        }
        // Dropped without release (a cancelled request): give the rows back in the
        // background; the in-process mutexes are released with this guard.
        let store = self.store.clone();
        let owner = self.owner.clone();
        let names = std::mem::take(&mut self.names);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for name in names {
                    let _ = store.unlock(&name, &owner).await;
                }
            });
        }
    }
}
