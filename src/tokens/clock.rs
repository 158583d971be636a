//! The vault's notion of "now". Expiry is decided against this clock, never against
//! the wall clock directly, so tests move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};

pub trait Clock: Send + Sync + 'static {
    /// Now, in whole seconds (the SQL `DATETIME` columns hold no fraction).
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(0)
    }
}

/// A clock that only moves when told to: for expiry tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// Starts at the current wall-clock time (so memcached's native expiry and
    /// id_token timestamps minted by the fake Okta still make sense).
    pub fn new() -> Self {
        Self::at(SystemClock.now())
    }

    pub fn at(t: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(t.trunc_subsecs(0))))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += chrono::Duration::from_std(by).expect("duration in range");
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to.trunc_subsecs(0);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
