//! The rate-limit governor: paces efs-iam's Okta traffic by what Okta's own headers say,
//! and caps requests in flight.
//!
//! Why header-driven rather than a fixed quota: Okta's limits differ per org, SKU,
//! add-on and bucket (the same endpoint has been seen at 50, 300 and 600 a minute in
//! different orgs), windows are not aligned to the minute, and the budget is shared with every
//! other client of the org. So the governor learns each bucket's `X-Rate-Limit-Limit`,
//! `-Remaining` and `-Reset` from the answers and admits a request only while both hold:
//!
//! - efs-iam's own requests in the current window stay below `share × limit` (the
//!   *allowance*, at least 1);
//! - the org-wide `Remaining` stays above `limit − allowance` (the *reserve* left to the
//!   org's other clients).
//!
//! The second rule is what lets several efs-iam instances share one allowance without
//! talking to each other: `Remaining` is org-wide, so each instance sees the others'
//! requests in it and stops when the bucket is down to the reserve. It also means
//! efs-iam yields when other clients have already used more than their part of a
//! window: Okta's 429s hit every client of the bucket, and a background sync can wait
//! better than an interactive login can. A request that has to wait sleeps until the
//! window's reset.
//!
//! Reset times are turned into local deadlines from `Reset − Date` of the answer, not
//! from the local clock, as Okta's official SDKs do: a skewed local clock must not
//! make efs-iam early. Both headers have whole seconds and `Date` is rounded down, so
//! the deadline errs late, never early.
//!
//! Why not the `governor` crate: it implements GCRA over a quota fixed in advance and
//! has no way to follow a window that the server resets, or a remaining count that
//! other clients lower. What is needed here is a small amount of state per bucket,
//! updated from headers; that is this module.
//!
//! Until an answer tells a bucket's figures, the bucket takes one request at a time:
//! at a cold start, so that a hundred queued calls are not all sent before efs-iam
//! learns that the bucket allows fifty; and again at the start of each window, so that
//! `Remaining` shows what other clients have used of it before efs-iam sends its share.
//! The probe costs one round trip per bucket per window.
//!
//! The *early probe*: `Reset` and `Date` have whole seconds, so the deadline computed
//! from them is up to two seconds late: a second in Okta's 60 s window, but a sixth of
//! a scaled-down 6 s test window. So when this instance has used its allowance
//! and the org's other clients have left the reserve untouched (`Remaining` at least the
//! reserve, less the few requests sibling instances had in flight when it was reached:
//! [`Governor::probe_slack`]), one request goes out [`EARLY_PROBE`] before the deadline. If Okta's window has turned, its answer opens
//! the new window at once; if not, it was one request over the share, taken from the
//! reserve, never from the last request before a 429 (with a share of 1.0 there is no
//! reserve and no early probe).
//!
//! The sharing is approximate: instances that send at the same moment do not see each
//! other's requests until the answers come back, so together they can overshoot the
//! share by what they send in that round trip. Okta's own per-token cap (a share of the org's limit per API token)
//! and the 429 handling in `retry` are the backstop.
//!
//! *Background* work (reconciliations, run with [`in_background`]) gets a lower share:
//! half of this instance's allowance per bucket and half of its concurrency slots, so a
//! reconciliation of a large portal can never hold up the syncs and logins EFS-Admin
//! is waiting for.
//!
//! The concurrency cap is a semaphore. A call takes a slot first and only then asks its
//! bucket, so it is counted in the window it is really sent in; while the bucket makes
//! it wait, it gives the slot back, so calls to other buckets are not held up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::DateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::bucket::{Bucket, BucketStatus};

use super::headers::RateHeaders;

/// How long before the local deadline one request may check whether the window has
/// already turned. `Reset` and `Date` have whole seconds, so Okta's window really ends
/// up to two seconds before the deadline computed from them.
const EARLY_PROBE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct BucketState {
    /// An answer about the current window came back (or one without rate-limit
    /// headers, which ends probing for good).
    answered: bool,
    limit: Option<u32>,
    /// Org-wide requests left in the window: Okta's last figure, lowered by every
    /// request admitted since.
    remaining: Option<u32>,
    /// The current window's reset (epoch seconds) and its local deadline.
    reset: Option<(u64, Instant)>,
    /// Reset of the last window that ended locally; answers still carrying it are late
    /// and must not bring that window back.
    ended: Option<u64>,
    /// efs-iam requests admitted in the current window (this instance).
    used: u32,
    /// The window (reset epoch) for which the early probe went out.
    probed_early: Option<u64>,
    in_flight: u32,
    /// After a 429, nobody goes to this bucket before this instant.
    blocked_until: Option<Instant>,
    rate_limited: u64,
    concurrency_limited: u64,
    paced: u64,
}

impl BucketState {
    fn roll_over_if_due(&mut self, now: Instant) {
        if let Some((epoch, deadline)) = self.reset {
            if now >= deadline {
                self.ended = Some(epoch);
                self.reset = None;
                self.remaining = None;
                self.used = 0;
                // Probe the new window: its first answer tells how much of it other
                // clients (other efs-iam instances included) have already used.
                self.answered = false;
            }
        }
        if self.blocked_until.is_some_and(|b| now >= b) {
            self.blocked_until = None;
        }
    }
}

enum Decision {
    Admit,
    WaitUntil(Instant),
    /// The window ended locally and this instance already used the allowance of the
    /// next one, but no answer has told the new reset yet.
    WaitForAnswer,
}

tokio::task_local! {
    static BACKGROUND: ();
}

/// Runs `work` with background priority for its Okta calls (module docs).
pub async fn in_background<F: std::future::Future>(work: F) -> F::Output {
    BACKGROUND.scope((), work).await
}

fn is_background() -> bool {
    BACKGROUND.try_with(|_| ()).is_ok()
}

pub(crate) struct Governor {
    share: f64,
    max_concurrency: usize,
    slots: Arc<Semaphore>,
    /// The part of the slots background work may take.
    background_slots: Arc<Semaphore>,
    buckets: Mutex<HashMap<Bucket, BucketState>>,
    changed: Notify,
    /// The furthest ahead of the local clock a `Reset` is believed (see
    /// [`Governor::with_reset_horizon`]).
    horizon: Duration,
}

/// The default of [`Governor::with_reset_horizon`]: Okta's windows are a minute long;
/// the second minute is room for the two clocks to differ.
pub(crate) const RESET_HORIZON: Duration = Duration::from_secs(120);

/// A request's permission to go: a concurrency slot and a place in its bucket's
/// in-flight count, both given back on drop.
pub(crate) struct Admission {
    governor: Arc<Governor>,
    bucket: Bucket,
    _slot: OwnedSemaphorePermit,
    _background_slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut buckets = self.governor.buckets.lock().unwrap();
        if let Some(st) = buckets.get_mut(&self.bucket) {
            st.in_flight = st.in_flight.saturating_sub(1);
        }
    }
}

impl Governor {
    pub(crate) fn new(share: f64, max_concurrency: usize) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            share: share.clamp(f64::MIN_POSITIVE, 1.0),
            max_concurrency,
            slots: Arc::new(Semaphore::new(max_concurrency)),
            background_slots: Arc::new(Semaphore::new((max_concurrency / 2).max(1))),
            buckets: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            horizon: RESET_HORIZON,
        }
    }

    /// No answer's `Reset` is believed further ahead of the local clock than
    /// `horizon`, whatever it says (ten years, `u64::MAX`): a lying header can close a
    /// bucket, or freeze its window's identity, for `horizon` at most, and no time
    /// arithmetic can overflow.
    pub(crate) fn with_reset_horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon.max(Duration::from_secs(1));
        self
    }

    /// How far below the reserve `Remaining` may be with the early probe still going
    /// out: what several instances had in flight when the reserve was reached lands
    /// after it (the approximate sharing, module docs), so `Remaining` ends a little
    /// below the reserve without any other client having touched it. Without this,
    /// instances sharing a budget never probed early and each window began a second
    /// late (BENCHMARKS.md, issue 24). At most this instance's concurrency and 1 % of
    /// the reserve, so other clients that really use the reserve still stop it.
    fn probe_slack(&self, reserve: u32) -> u32 {
        (reserve / 100).min(u32::try_from(self.max_concurrency).unwrap_or(u32::MAX))
    }

    fn allowance(&self, limit: u32) -> u32 {
        ((f64::from(limit) * self.share).floor() as u32).clamp(1, limit.max(1))
    }

    fn decide(&self, st: &mut BucketState, now: Instant, background: bool) -> Decision {
        st.roll_over_if_due(now);
        if let Some(until) = st.blocked_until {
            return Decision::WaitUntil(until);
        }
        if !st.answered && st.in_flight > 0 {
            return Decision::WaitForAnswer;
        }
        if let (true, Some(limit)) = (background, st.limit.filter(|l| *l > 0)) {
            // Half the allowance, counted the same way: what is left of it stays for
            // the foreground, and no early probe.
            let share = (self.allowance(limit) / 2).max(1);
            let left_for_foreground = limit - share;
            if st.used >= share || st.remaining.is_some_and(|left| left <= left_for_foreground) {
                return match st.reset {
                    Some((_, deadline)) => Decision::WaitUntil(deadline),
                    None => Decision::WaitForAnswer,
                };
            }
        }
        if let Some(limit) = st.limit.filter(|l| *l > 0) {
            let allowance = self.allowance(limit);
            let reserve = limit - allowance;
            let exhausted =
                st.used >= allowance || st.remaining.is_some_and(|left| left <= reserve);
            if exhausted {
                let Some((epoch, deadline)) = st.reset else {
                    return Decision::WaitForAnswer;
                };
                // The org's other clients have not touched their reserve, so one
                // request can check whether the window has turned already (module
                // docs, "early probe").
                let slack = self.probe_slack(reserve);
                let org_has_room = st
                    .remaining
                    .is_some_and(|left| left > 0 && left.saturating_add(slack) >= reserve);
                if !org_has_room || st.probed_early == Some(epoch) {
                    return if st.probed_early == Some(epoch) && st.in_flight > 0 {
                        Decision::WaitForAnswer
                    } else {
                        Decision::WaitUntil(deadline)
                    };
                }
                let early = deadline.checked_sub(EARLY_PROBE).unwrap_or(now);
                if now < early {
                    return Decision::WaitUntil(early);
                }
                if st.in_flight > 0 {
                    return Decision::WaitForAnswer;
                }
                st.probed_early = Some(epoch);
            }
        }
        st.used += 1;
        st.remaining = st.remaining.map(|r| r.saturating_sub(1));
        st.in_flight += 1;
        Decision::Admit
    }

    /// Waits until a concurrency slot is free and the bucket has room for one more
    /// efs-iam request.
    pub(crate) async fn admit(self: &Arc<Self>, bucket: Bucket) -> Admission {
        let mut counted_as_paced = false;
        let background = is_background();
        loop {
            let background_slot = match background {
                true => Some(
                    self.background_slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the governor never closes its semaphore"),
                ),
                false => None,
            };
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the governor never closes its semaphore");
            let decision = {
                let mut buckets = self.buckets.lock().unwrap();
                let st = buckets.entry(bucket).or_default();
                let decision = self.decide(st, Instant::now(), background);
                if !matches!(decision, Decision::Admit) && !counted_as_paced {
                    st.paced += 1;
                    counted_as_paced = true;
                }
                decision
            };
            match decision {
                Decision::Admit => {
                    return Admission {
                        governor: self.clone(),
                        bucket,
                        _slot: slot,
                        _background_slot: background_slot,
                    }
                }
                Decision::WaitUntil(deadline) => {
                    drop(slot);
                    drop(background_slot);
                    tracing::debug!(
                        ?bucket,
                        wait_ms = deadline
                            .saturating_duration_since(Instant::now())
                            .as_millis() as u64,
                        "Okta bucket share used up; pacing until the window resets"
                    );
                    tokio::time::sleep_until(deadline.into()).await;
                }
                Decision::WaitForAnswer => {
                    drop(slot);
                    drop(background_slot);
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), self.changed.notified())
                            .await;
                }
            }
        }
    }

    /// Learns from an answer and its rate-limit headers (if it had them).
    pub(crate) fn observe(&self, bucket: Bucket, rate: Option<&RateHeaders>, date: Option<u64>) {
        let believed = rate.map(|r| self.believable(r));
        let rate = believed.as_ref();
        let deadline = rate.map(|r| Instant::now() + r.until_reset(date).min(self.horizon));
        let mut buckets = self.buckets.lock().unwrap();
        let st = buckets.entry(bucket).or_default();
        if rate.is_none() {
            st.answered = true;
        }
        if let (Some(rate), Some(deadline)) = (rate.filter(|r| !r.is_concurrency()), deadline) {
            if st.ended.is_none_or(|ended| rate.reset > ended) {
                st.answered = true;
                st.limit = Some(rate.limit);
                match st.reset {
                    Some((current, _)) if rate.reset < current => {}
                    Some((current, _)) if rate.reset == current => {
                        st.remaining = Some(
                            st.remaining
                                .map_or(rate.remaining, |r| r.min(rate.remaining)),
                        );
                    }
                    // Okta's window turned before the local deadline (the early probe
                    // found it): take the new window. Of this instance's requests only
                    // those not yet answered can count in it.
                    Some(_) => {
                        st.reset = Some((rate.reset, deadline));
                        st.remaining = Some(rate.remaining);
                        st.used = st.in_flight;
                    }
                    // A first answer: `used` is kept, which errs on the careful side.
                    None => {
                        st.reset = Some((rate.reset, deadline));
                        st.remaining = Some(rate.remaining);
                    }
                }
            }
        }
        drop(buckets);
        self.changed.notify_waiters();
    }

    /// `rate` with its `Reset` no further ahead of the local clock than the horizon.
    fn believable(&self, rate: &RateHeaders) -> RateHeaders {
        let local = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        RateHeaders {
            reset: rate.reset.min(local.saturating_add(self.horizon.as_secs())),
            ..*rate
        }
    }

    /// Notes a 429, which does not count against this instance's allowance (Okta does
    /// not count it either). A rate-limit 429 also closes the bucket for everyone until
    /// `wait` has passed; a concurrency 429 is about the whole org, not this bucket, so
    /// only the call that got it waits.
    pub(crate) fn record_429(&self, bucket: Bucket, concurrency: bool, wait: Duration) {
        let mut buckets = self.buckets.lock().unwrap();
        let st = buckets.entry(bucket).or_default();
        st.used = st.used.saturating_sub(1);
        if concurrency {
            st.concurrency_limited += 1;
            return;
        }
        st.rate_limited += 1;
        st.remaining = Some(0);
        let until = Instant::now() + wait.min(self.horizon);
        st.blocked_until = Some(st.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Requests in flight across all buckets.
    pub(crate) fn in_flight(&self) -> usize {
        self.max_concurrency - self.slots.available_permits()
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    pub(crate) fn share(&self) -> f64 {
        self.share
    }

    pub(crate) fn snapshot(&self) -> Vec<BucketStatus> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        let mut out: Vec<BucketStatus> = buckets
            .iter_mut()
            .map(|(bucket, st)| {
                st.roll_over_if_due(now);
                BucketStatus {
                    bucket: *bucket,
                    limit: st.limit,
                    remaining: st.remaining,
                    reset_at: st
                        .reset
                        .and_then(|(epoch, _)| DateTime::from_timestamp(epoch as i64, 0)),
                    allowance: st.limit.filter(|l| *l > 0).map(|l| self.allowance(l)),
                    used_in_window: st.used,
                    in_flight: st.in_flight,
                    rate_limited: st.rate_limited,
                    concurrency_limited: st.concurrency_limited,
                    paced: st.paced,
                }
            })
            .collect();
        out.sort_by_key(|b| b.bucket);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds `offset` from one fixed "now" of the test run: the governor
    /// believes no `Reset` further than its horizon ahead of the local clock, so the
    /// headers must be about now (and equal offsets must give equal times).
    fn at(offset: i64) -> u64 {
        static NOW: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
        NOW.saturating_add_signed(offset)
    }

    fn rate(limit: u32, remaining: u32, reset: u64) -> RateHeaders {
        RateHeaders {
            limit,
            remaining,
            reset,
        }
    }

    #[test]
    fn allowance_is_the_share_of_the_limit() {
        let g = Governor::new(0.5, 4);
        assert_eq!(g.allowance(20), 10);
        assert_eq!(g.allowance(1), 1);
        assert_eq!(Governor::new(1.0, 1).allowance(7), 7);
    }

    #[test]
    fn own_use_stops_at_the_allowance() {
        let g = Governor::new(0.5, 4);
        let now = Instant::now();
        g.observe(Bucket::UserGet, Some(&rate(4, 4, at(0))), Some(at(-10)));
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::UserGet).unwrap();
        assert!(matches!(g.decide(st, now, false), Decision::Admit));
        assert!(matches!(g.decide(st, now, false), Decision::Admit));
        match g.decide(st, now, false) {
            Decision::WaitUntil(t) => assert!(t >= now + Duration::from_secs(9) - EARLY_PROBE),
            _ => panic!("third request must wait for the reset"),
        }
        // The first window's requests came back; after the local deadline a new
        // window opens, with one probe first.
        st.in_flight = 0;
        let later = now + Duration::from_secs(11);
        assert!(matches!(g.decide(st, later, false), Decision::Admit));
        assert_eq!(st.used, 1);
        assert!(matches!(
            g.decide(st, later, false),
            Decision::WaitForAnswer
        ));
    }

    #[test]
    fn other_clients_use_counts_through_remaining() {
        // Limit 10, share 0.5: the reserve for others is 5. Okta says 6 are left (others
        // used 4), so efs-iam may send one more, not five.
        let g = Governor::new(0.5, 4);
        let now = Instant::now();
        g.observe(Bucket::Groups, Some(&rate(10, 6, at(0))), Some(at(-10)));
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::Groups).unwrap();
        assert!(matches!(g.decide(st, now, false), Decision::Admit));
        assert!(matches!(g.decide(st, now, false), Decision::WaitUntil(_)));
    }

    #[test]
    fn late_answers_do_not_revive_an_ended_window() {
        let g = Governor::new(1.0, 4);
        g.observe(Bucket::UserGet, Some(&rate(5, 0, at(0))), Some(at(0)));
        {
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.get_mut(&Bucket::UserGet).unwrap();
            // Deadline is "now" (reset == date): the window ends at once.
            assert!(matches!(
                g.decide(st, Instant::now() + Duration::from_millis(1), false),
                Decision::Admit
            ));
        }
        g.observe(Bucket::UserGet, Some(&rate(5, 0, at(0))), Some(at(-1)));
        let buckets = g.buckets.lock().unwrap();
        let st = &buckets[&Bucket::UserGet];
        assert_eq!(st.remaining, None, "the old window's figure is ignored");
    }

    #[test]
    fn a_new_bucket_takes_one_request_until_it_answers() {
        let g = Governor::new(0.5, 10);
        let now = Instant::now();
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.entry(Bucket::Groups).or_default();
        assert!(matches!(g.decide(st, now, false), Decision::Admit));
        assert!(matches!(g.decide(st, now, false), Decision::WaitForAnswer));
        drop(buckets);
        // An answer without rate-limit headers still ends the probing.
        g.observe(Bucket::Groups, None, None);
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::Groups).unwrap();
        assert!(matches!(g.decide(st, now, false), Decision::Admit));
    }

    #[test]
    fn a_429_blocks_the_bucket_and_is_not_counted_as_use() {
        let g = Governor::new(1.0, 4);
        let now = Instant::now();
        {
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.entry(Bucket::UserWrite).or_default();
            assert!(matches!(g.decide(st, now, false), Decision::Admit));
        }
        g.record_429(Bucket::UserWrite, false, Duration::from_secs(5));
        let snap = g.snapshot();
        assert_eq!(snap[0].rate_limited, 1);
        assert_eq!(snap[0].used_in_window, 0);
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::UserWrite).unwrap();
        assert!(matches!(
            g.decide(st, Instant::now(), false),
            Decision::WaitUntil(_)
        ));
    }

    #[test]
    fn one_early_probe_per_window_and_a_turned_window_opens_at_once() {
        let g = Governor::new(0.5, 4);
        let now = Instant::now();
        // Limit 4, share 0.5: allowance 2, reserve 2; the deadline is 10 s away.
        g.observe(Bucket::UserGet, Some(&rate(4, 4, at(10))), Some(at(0)));
        {
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.get_mut(&Bucket::UserGet).unwrap();
            assert!(matches!(g.decide(st, now, false), Decision::Admit));
            assert!(matches!(g.decide(st, now, false), Decision::Admit));
            st.in_flight = 0;
            let near = now + Duration::from_millis(9_200);
            assert!(matches!(g.decide(st, now, false), Decision::WaitUntil(t) if t <= near));
            // Within a second of the deadline: exactly one probe goes.
            assert!(matches!(g.decide(st, near, false), Decision::Admit));
            assert!(matches!(g.decide(st, near, false), Decision::WaitForAnswer));
        }
        // Its answer shows a new window: it opens now, counting only unanswered calls.
        g.observe(Bucket::UserGet, Some(&rate(4, 3, at(20))), Some(at(10)));
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::UserGet).unwrap();
        assert_eq!(
            st.used, 1,
            "the probe, still in flight, counts in the new window"
        );
        st.in_flight = 0;
        assert!(matches!(
            g.decide(st, now + Duration::from_millis(9_300), false),
            Decision::Admit
        ));
    }

    #[test]
    fn no_early_probe_when_others_use_the_reserve_or_there_is_none() {
        for (share, remaining) in [(0.5, 1), (1.0, 2)] {
            let g = Governor::new(share, 4);
            let now = Instant::now();
            g.observe(
                Bucket::UserGet,
                Some(&rate(4, remaining, at(10))),
                Some(at(0)),
            );
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.get_mut(&Bucket::UserGet).unwrap();
            while matches!(g.decide(st, now, false), Decision::Admit) {}
            st.in_flight = 0;
            let near = now + Duration::from_millis(9_500);
            assert!(
                matches!(g.decide(st, near, false), Decision::WaitUntil(t) if t >= now + Duration::from_secs(10)),
                "share {share}, remaining {remaining}: wait for the deadline itself"
            );
        }
    }

    /// Instances sharing a budget stop a few requests past the reserve (what they had
    /// in flight); that is not other clients using it, so the early probe still goes.
    /// Further below, it does not.
    #[test]
    fn sibling_instances_overshooting_the_reserve_still_probe_early() {
        for (remaining, probes) in [(5_990, true), (5_968, true), (5_900, false)] {
            // Limit 12,000, share 0.5: allowance and reserve 6,000; slack 32.
            let g = Governor::new(0.5, 32);
            let now = Instant::now();
            g.observe(
                Bucket::Groups,
                Some(&rate(12_000, remaining, at(10))),
                Some(at(0)),
            );
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.get_mut(&Bucket::Groups).unwrap();
            let near = now + Duration::from_millis(9_200);
            assert!(matches!(g.decide(st, now, false), Decision::WaitUntil(_)));
            let decision = g.decide(st, near, false);
            assert_eq!(
                matches!(decision, Decision::Admit),
                probes,
                "remaining {remaining}"
            );
        }
    }

    /// Background work stops at half the allowance; the foreground still has the rest.
    #[test]
    fn background_work_leaves_half_the_allowance_to_the_foreground() {
        let g = Governor::new(0.5, 4);
        let now = Instant::now();
        // Limit 20, share 0.5: allowance 10, of which background may use 5.
        g.observe(Bucket::Groups, Some(&rate(20, 20, at(60))), Some(at(0)));
        let mut buckets = g.buckets.lock().unwrap();
        let st = buckets.get_mut(&Bucket::Groups).unwrap();
        let mut background = 0;
        while matches!(g.decide(st, now, true), Decision::Admit) {
            background += 1;
            assert!(background <= 10);
        }
        assert_eq!(background, 5);
        assert!(matches!(g.decide(st, now, true), Decision::WaitUntil(_)));
        let mut foreground = 0;
        while matches!(g.decide(st, now, false), Decision::Admit) {
            foreground += 1;
            assert!(foreground <= 10);
        }
        assert_eq!(foreground, 5, "the rest of the allowance");
    }

    #[tokio::test]
    async fn in_background_marks_the_calls_of_its_task_only() {
        assert!(!is_background());
        assert!(in_background(async { is_background() }).await);
        assert!(!is_background());
    }
}

/// No header values, however wrong, panic the governor or close a bucket beyond its
/// horizon.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_header_closes_a_bucket_past_the_horizon(limit in any::<u32>(), remaining in any::<u32>(),
                                                      reset in any::<u64>(), date in proptest::option::of(any::<u64>()),
                                                      wait_secs in any::<u64>(), concurrency in any::<bool>()) {
            let g = Governor::new(0.5, 4);
            let before = Instant::now();
            g.observe(Bucket::UserGet, Some(&RateHeaders { limit, remaining, reset }), date);
            g.record_429(Bucket::UserGet, concurrency, Duration::from_secs(wait_secs));
            let mut buckets = g.buckets.lock().unwrap();
            let st = buckets.get_mut(&Bucket::UserGet).unwrap();
            let horizon = Instant::now() + RESET_HORIZON + Duration::from_secs(1);
            if let Some(blocked) = st.blocked_until {
                prop_assert!(blocked <= horizon);
            }
            if let Some((_, deadline)) = st.reset {
                prop_assert!(deadline <= horizon);
            }
            if let Decision::WaitUntil(t) = g.decide(st, before, false) {
                prop_assert!(t <= horizon);
            }
        }
    }
}
