//! The sync engine's settings (`EFS_IAM_SYNC_*`), flattened into
//! the service's settings (`config.rs`).

use std::time::Duration;

use clap::Args;

use crate::domain::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct SyncSettings {
    /// Run the background workers (unassignment queue, batch sync jobs) in this
    /// instance. They only run when Okta is configured; several instances may run them
    /// against one database.
    #[arg(long = "sync-worker", env = "EFS_IAM_SYNC_WORKER", default_value_t = true,
          action = clap::ArgAction::Set, global = true)]
    pub worker: bool,

    /// How long an idle worker waits before looking for work again (new work submitted
    /// through this instance wakes it at once).
    #[arg(long = "sync-poll-interval", env = "EFS_IAM_SYNC_POLL_INTERVAL", default_value = "5s",
          value_parser = parse_duration, global = true)]
    pub poll_interval: Duration,

    /// Queue rows or job items a worker claims per step.
    #[arg(long = "sync-batch-size", env = "EFS_IAM_SYNC_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub batch_size: u32,

    /// Users a worker syncs (or removes from groups) at once; Okta requests in flight
    /// are capped separately by EFS_IAM_OKTA_MAX_CONCURRENCY.
    #[arg(long = "sync-concurrency", env = "EFS_IAM_SYNC_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=256), global = true)]
    pub concurrency: u32,

    /// Attempts per queue row or job item before it becomes a dead letter (queue) or a
    /// failed item (job). Errors only Okta's side can fix count; data errors fail at once.
    #[arg(long = "sync-max-attempts", env = "EFS_IAM_SYNC_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub max_attempts: u32,

    /// Wait before the first retry of a failed row; doubles with each attempt.
    #[arg(long = "sync-backoff-base", env = "EFS_IAM_SYNC_BACKOFF_BASE", default_value = "30s",
          value_parser = parse_duration, global = true)]
    pub backoff_base: Duration,

    /// Longest wait between two attempts of a row.
    #[arg(long = "sync-backoff-max", env = "EFS_IAM_SYNC_BACKOFF_MAX", default_value = "60m",
          value_parser = parse_duration, global = true)]
    pub backoff_max: Duration,

    /// How long a claim (queue row, job item, reconciliation run, per-user lock) stays
    /// with an instance without being renewed: how long a crashed instance's work waits
    /// before another takes it over. A live holder renews its claims every third of
    /// this while the work runs, however long it takes.
    #[arg(long = "sync-lease", env = "EFS_IAM_SYNC_LEASE", default_value = "30s",
          value_parser = parse_lease, global = true)]
    pub lease: Duration,

    /// This instance's name in leases (`locked_by`), at most 48 characters. Default:
    /// host name, process id and a random suffix, unique per start.
    #[arg(long = "sync-instance-id", env = "EFS_IAM_SYNC_INSTANCE_ID",
          value_parser = parse_instance_id, global = true)]
    pub instance_id: Option<String>,

    /// How often every linked portal (one with `okta_group_id`) is reconciled with its
    /// Okta group, by one instance at a time; `0` switches the schedule off. A run
    /// reports drift, or repairs it where the portal's `reconcile_mode` is `repair`.
    #[arg(long = "reconcile-interval", env = "EFS_IAM_RECONCILE_INTERVAL", default_value = "6h",
          value_parser = parse_interval, global = true)]
    pub reconcile_interval: Duration,

    /// Members a reconciliation reads from a portal's Okta group beyond twice the
    /// portal's references before it gives up (the run fails, nobody is removed): an
    /// Okta, or a proxy, that lists page after page cannot hold a run for ever.
    #[arg(
        long = "reconcile-member-headroom",
        env = "EFS_IAM_RECONCILE_MEMBER_HEADROOM",
        default_value_t = 10_000,
        global = true
    )]
    pub reconcile_member_headroom: usize,

    /// Longest a reconciliation reads a group's member list; then the run fails and
    /// nobody is removed.
    #[arg(long = "reconcile-read-timeout", env = "EFS_IAM_RECONCILE_READ_TIMEOUT",
          default_value = "10m", value_parser = parse_duration, global = true)]
    pub reconcile_read_timeout: Duration,

    /// How long processed, ignored and superseded Okta events are kept after they were
    /// received; the event worker purges older ones in batches, hourly. Pending and
    /// failed events stay until handled.
    #[arg(long = "okta-event-retention", env = "EFS_IAM_OKTA_EVENT_RETENTION",
          default_value = "30d", value_parser = parse_duration, global = true)]
    pub okta_event_retention: Duration,

    /// Activate users efs-iam creates in Okta (`activate=true`: Okta emails an
    /// activation link, as Okta's own API default does); `false` creates them STAGED,
    /// without email.
    #[arg(long = "sync-activate-users", env = "EFS_IAM_SYNC_ACTIVATE_USERS", default_value_t = true,
          action = clap::ArgAction::Set, global = true)]
    pub activate_users: bool,
}

fn parse_lease(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s (leases are stored in whole seconds)".into());
    }
    Ok(d)
}

/// A duration of at least 1 s, or `0` for off.
fn parse_interval(raw: &str) -> Result<Duration, String> {
    if raw.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = parse_duration(raw)?;
    if d < Duration::from_secs(1) {
        return Err("must be 0 (off) or at least 1s".into());
    }
    Ok(d)
}

fn parse_instance_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 48 {
        return Err("must be 1 to 48 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err("may contain only ASCII letters, digits and - _ . :".into());
    }
    Ok(id.to_owned())
}

impl SyncSettings {
    /// The configured instance id, or `host-pid-random`, cut to fit `locked_by`.
    pub fn resolve_instance_id(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                    .take(32)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "efs-iam".into());
        let suffix: String = (0..6).map(|_| fastrand::alphanumeric()).collect();
        format!("{host}-{}-{suffix}", std::process::id())
    }

    /// Wait before the attempt after `attempts` failures: base × 2^(attempts−1), capped,
    /// plus up to 10 % jitter so rows failed together do not return together.
    /// When the next attempt after `attempts` failed ones may start: the backoff from
    /// now, rounded up to the whole second the database keeps, so that no attempt comes
    /// early (a second cut off would make a 1 s backoff anything from 0 to 1 s).
    pub fn retry_at(&self, attempts: u32) -> chrono::NaiveDateTime {
        use chrono::{DurationRound, TimeDelta};
        let wait = chrono::Duration::from_std(self.backoff(attempts)).unwrap_or(TimeDelta::MAX);
        let at = chrono::Utc::now()
            .naive_utc()
            .checked_add_signed(wait)
            .unwrap_or(chrono::NaiveDateTime::MAX);
        let second = TimeDelta::seconds(1);
        match at.duration_trunc(second) {
            Ok(t) if t < at => t + second,
            Ok(t) => t,
            Err(_) => at,
        }
    }

    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let base = self.backoff_base.saturating_mul(1u32 << exp);
        let capped = base.min(self.backoff_max.max(self.backoff_base));
        let jitter_ms = (capped.as_millis() as u64 / 10).max(1);
        capped + Duration::from_millis(fastrand::u64(0..jitter_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        sync: SyncSettings,
    }

    fn settings(args: &[&str]) -> Result<SyncSettings, clap::Error> {
        TestCli::try_parse_from(std::iter::once("efs-iam").chain(args.iter().copied()))
            .map(|c| c.sync)
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert!(s.worker);
        assert!(s.activate_users);
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.max_attempts, 8);
        assert_eq!(s.lease, Duration::from_secs(30));
        let id = s.resolve_instance_id();
        assert!(id.len() <= 48, "{id}");
        assert_ne!(id, s.resolve_instance_id(), "unique per start");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(settings(&["--sync-lease=500ms"]).is_err());
        assert!(settings(&["--sync-batch-size=0"]).is_err());
        assert!(settings(&["--sync-instance-id=a b"]).is_err());
        assert!(settings(&["--sync-instance-id=efs-iam-1"]).is_ok());
    }

    #[test]
    fn a_retry_never_comes_before_its_backoff() {
        let s = settings(&["--sync-backoff-base=1s", "--sync-backoff-max=5s"]).unwrap();
        for _ in 0..20 {
            let before = chrono::Utc::now().naive_utc();
            let at = s.retry_at(1);
            assert_eq!(at.and_utc().timestamp_subsec_nanos(), 0, "whole seconds");
            assert!(
                at - before >= chrono::TimeDelta::seconds(1),
                "{at} vs {before}"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = settings(&["--sync-backoff-base=1s", "--sync-backoff-max=5s"]).unwrap();
        let ms = |a| s.backoff(a).as_millis();
        assert!((1000..1100).contains(&ms(1)));
        assert!((2000..2200).contains(&ms(2)));
        assert!((4000..4400).contains(&ms(3)));
        assert!((5000..5500).contains(&ms(4)));
        assert!((5000..5500).contains(&ms(40)));
    }
}
