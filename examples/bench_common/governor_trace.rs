//! A per-window trace of the Okta governors of several efs-iam instances sharing one
//! budget (issue 24): where the budget a drain did not use went.
//!
//! Two sources. The fake Okta's record of every request gives its windows exactly as it
//! counted them (a window starts at the bucket's first request after the previous one
//! ended, as Okta's do), the calls in each and the time between one window's end and
//! the next one's first request, when no instance sent anything. Each instance's
//! `/metrics`, sampled every half second, gives what its governor did: its calls of the
//! bucket, the `X-Rate-Limit-Remaining` it last saw, and its paced calls (those it made
//! wait). Counters are read at a window's edges by linear interpolation between
//! samples, so an instance's calls per window are good to a sample's worth.

use std::time::{Duration, SystemTime};

use fake_okta::RecordedRequest;
use serde::Serialize;

/// How often each instance's `/metrics` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// One reading of one instance's governor figures for the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at: SystemTime,
    pub instance: usize,
    /// `efs_iam_okta_requests_total` of the bucket, every outcome.
    pub calls: f64,
    /// `efs_iam_okta_paced_total` of the bucket: calls the governor made wait.
    pub paced: f64,
    /// `efs_iam_okta_rate_limit_remaining` of the bucket, as last seen.
    pub remaining: Option<f64>,
}

/// Reads the bucket's figures from one instance's Prometheus text.
fn parse(text: &str, bucket: &str) -> (f64, f64, Option<f64>) {
    let label = format!("bucket=\"{bucket}\"");
    let (mut calls, mut paced, mut remaining) = (0.0, 0.0, None);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if !series.contains(&label) {
            continue;
        }
        if series.starts_with("efs_iam_okta_requests_total{") {
            calls += value;
        } else if series.starts_with("efs_iam_okta_paced_total{") {
            paced += value;
        } else if series.starts_with("efs_iam_okta_rate_limit_remaining{") {
            remaining = Some(value);
        }
    }
    (calls, paced, remaining)
}

/// Samples every instance (`bases`: their base URLs) until `stop` says so.
pub fn spawn_sampler(
    bases: Vec<String>,
    bucket: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            for (instance, base) in bases.iter().enumerate() {
                let Ok(res) = http.get(format!("{base}/metrics")).send().await else {
                    continue;
                };
                let Ok(text) = res.text().await else { continue };
                let (calls, paced, remaining) = parse(&text, bucket);
                samples.push(Sample {
                    at: SystemTime::now(),
                    instance,
                    calls,
                    paced,
                    remaining,
                });
            }
        }
        samples
    })
}

/// One of the fake's windows of the bucket, and each instance's part in it.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds from the first window's start.
    pub start_s: f64,
    /// Seconds between the previous window's end and this window's first request: no
    /// window ran then, so none of the budget could be used.
    pub gap_before_s: f64,
    /// Requests the fake counted in the window, and how many it answered 429.
    pub calls: usize,
    pub answered_429: usize,
    /// Seconds from the window's start to its last request.
    pub last_call_s: f64,
    /// Per instance: its calls, paced calls, and the lowest `Remaining` it reported.
    pub instance_calls: Vec<f64>,
    pub instance_paced: Vec<f64>,
    pub instance_min_remaining: Vec<Option<f64>>,
}

fn secs(later: SystemTime, earlier: SystemTime) -> f64 {
    later
        .duration_since(earlier)
        .map(|d| d.as_secs_f64())
        .unwrap_or_else(|e| -e.duration().as_secs_f64())
}

/// A counter of one instance at `at`, linear between the samples around it.
fn counter_at(samples: &[&Sample], at: SystemTime, value: fn(&Sample) -> f64) -> f64 {
    let after = samples.partition_point(|s| s.at <= at);
    match (after.checked_sub(1).map(|i| samples[i]), samples.get(after)) {
        (Some(a), Some(b)) => {
            let span = secs(b.at, a.at);
            let part = if span > 0.0 {
                secs(at, a.at) / span
            } else {
                0.0
            };
            value(a) + (value(b) - value(a)) * part
        }
        (Some(a), None) => value(a),
        (None, Some(b)) => value(b),
        (None, None) => 0.0,
    }
}

/// The fake's windows of the requests `in_bucket` selects, with each instance's part.
pub fn windows(
    records: &[RecordedRequest],
    in_bucket: impl Fn(&RecordedRequest) -> bool,
    window: Duration,
    samples: &[Sample],
    instances: usize,
) -> Vec<Window> {
    let mut times: Vec<(SystemTime, bool)> = records
        .iter()
        .filter(|r| in_bucket(r))
        .map(|r| (r.received_at, r.status == Some(429)))
        .collect();
    times.sort_by_key(|(at, _)| *at);
    let per_instance: Vec<Vec<&Sample>> = (0..instances)
        .map(|i| samples.iter().filter(|s| s.instance == i).collect())
        .collect();
    let Some(&(first, _)) = times.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut previous_end: Option<SystemTime> = None;
    while i < times.len() {
        let start = times[i].0;
        let end = start + window;
        let from = i;
        while i < times.len() && times[i].0 < end {
            i += 1;
        }
        let in_window = &times[from..i];
        let mut instance_calls = Vec::new();
        let mut instance_paced = Vec::new();
        let mut instance_min_remaining = Vec::new();
        for s in &per_instance {
            instance_calls
                .push(counter_at(s, end, |s| s.calls) - counter_at(s, start, |s| s.calls));
            instance_paced
                .push(counter_at(s, end, |s| s.paced) - counter_at(s, start, |s| s.paced));
            instance_min_remaining.push(
                s.iter()
                    .filter(|x| x.at >= start && x.at < end)
                    .filter_map(|x| x.remaining)
                    .reduce(f64::min),
            );
        }
        out.push(Window {
            start_s: secs(start, first),
            gap_before_s: previous_end.map_or(0.0, |e| secs(start, e).max(0.0)),
            calls: in_window.len(),
            answered_429: in_window.iter().filter(|(_, r)| *r).count(),
            last_call_s: in_window.last().map_or(0.0, |(at, _)| secs(*at, start)),
            instance_calls,
            instance_paced,
            instance_min_remaining,
        });
        previous_end = Some(end);
    }
    out
}

/// Where the budget went: the Markdown trace and its summary.
pub fn print_markdown(windows: &[Window], allowance: f64, window: Duration) {
    let Some(last) = windows.last() else {
        println!("(no requests in the bucket)");
        return;
    };
    let instances = last.instance_calls.len();
    let names: Vec<String> = (0..instances).map(|i| format!("#{i}")).collect();
    println!(
        "| window | starts at s | gap before s | calls (of {allowance:.0}) | used | last call at s | calls per instance ({}) | min Remaining seen ({}) | paced calls ({}) | 429s |",
        names.join(" / "),
        names.join(" / "),
        names.join(" / ")
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let join = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for (n, w) in windows.iter().enumerate() {
        let remaining = w
            .instance_min_remaining
            .iter()
            .map(|r| r.map_or("-".to_owned(), |r| format!("{r:.0}")))
            .collect::<Vec<_>>()
            .join(" / ");
        println!(
            "| {} | {:.1} | {:.2} | {} | {:.0} % | {:.1} | {} | {} | {} | {} |",
            n + 1,
            w.start_s,
            w.gap_before_s,
            w.calls,
            100.0 * w.calls as f64 / allowance,
            w.last_call_s,
            join(&w.instance_calls),
            remaining,
            join(&w.instance_paced),
            w.answered_429
        );
    }
    // The last window is cut short by the end of the work: the summary leaves it out.
    let full = &windows[..windows.len() - 1];
    if full.is_empty() {
        return;
    }
    let span = window.as_secs_f64();
    let elapsed: f64 = full.iter().map(|w| w.gap_before_s + span).sum();
    let calls: usize = full.iter().map(|w| w.calls).sum();
    let gaps: f64 = full.iter().map(|w| w.gap_before_s).sum();
    let budget = allowance * full.len() as f64;
    let unused_in_windows = budget - calls as f64;
    let ideal = allowance / span * elapsed;
    println!();
    println!(
        "Over the {} full windows ({elapsed:.0} s): {calls} calls of a budget of {:.0} at \
         {:.2} calls/s = **{:.1} %**. Lost: {:.1} % to gaps between windows ({gaps:.1} s in \
         all, {:.2} s per window on average, when no window ran because no instance sent a \
         request), {:.1} % to allowance left unused inside windows ({unused_in_windows:.0} calls).",
        full.len(),
        ideal,
        allowance / span,
        100.0 * calls as f64 / ideal,
        100.0 * (ideal - budget) / ideal,
        gaps / full.len() as f64,
        100.0 * unused_in_windows / ideal,
    );
}
