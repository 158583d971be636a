//! [`RetryPolicy`]: how often and how long the [`Caller`](super::call) retries (the
//! rules themselves are in `call.rs`'s module docs).

use std::time::Duration;

use backon::ExponentialBuilder;

/// Retry knobs.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: ExponentialBuilder,
    pub rate_limit_jitter: Duration,
    pub max_rate_limit_wait: Duration,
}

/// Up to `max`, uniformly: spreads instances that were refused at the same instant.
pub(super) fn jitter(max: Duration) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=max_ms))
    }
}
