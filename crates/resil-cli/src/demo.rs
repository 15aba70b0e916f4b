//! `resil demo`: a workload through resil-blocking against an embedded server on 127.0.0.1
//! that misbehaves on purpose, then a summary of what resil did about it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use resil_blocking::{Client, ResponseExt};
use resil_core::{
    Backoff, CallInfo, CircuitBreaker, Hooks, Jitter, RetryPolicy, RetryReason, Transition,
    TripCondition,
};
use resil_tests::{Reply, TestServer};

/// When the embedded server is down, relative to its start.
const OUTAGE: std::ops::Range<Duration> = Duration::from_millis(800)..Duration::from_millis(1_600);
/// Each client thread starts one logical request per this interval.
const PACE: Duration = Duration::from_millis(50);

/// Counts breaker transitions for the summary.
#[derive(Default)]
struct Transitions(Mutex<Vec<(Duration, Transition)>>, Option<Instant>);

impl Hooks for Transitions {
    fn on_breaker(&self, _: &CallInfo<'_>, t: Transition) {
        let at = self.1.map_or(Duration::ZERO, |s| s.elapsed());
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((at, t));
    }
}

/// The server's behaviour for its n-th request: mostly fine, with every kind of trouble.
fn misbehave(n: usize, since_start: Duration) -> Reply {
    if OUTAGE.contains(&since_start) {
        return Reply::status(503);
    }
    match n {
        n if n % 41 == 7 => Reply::with_header(429, "retry-after", "1"),
        n if n % 23 == 5 => Reply::Reset,
        n if n % 37 == 11 => Reply::Stall(Duration::from_millis(400)),
        n if n % 9 == 4 => Reply::status(503),
        n if n % 31 == 3 => Reply::status(502),
        _ => Reply::body(200, "{\"ok\":true}"),
    }
}

pub fn run(requests: u32, threads: u32, seed: u64, quiet: bool) -> ExitCode {
    let server = TestServer::start();
    let started = Instant::now();
    server.handle("/api/items", move |_, n| misbehave(n, started.elapsed()));
    let policy = match RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(25)))
        .jitter(Jitter::Full)
        .attempt_timeout(Some(Duration::from_millis(250)))
        .total_timeout(Some(Duration::from_secs(5)))
        .max_retry_after(Duration::from_secs(2))
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("resil demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let breaker = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(8))
        .open_for(Duration::from_millis(300))
        .build();
    let Ok(breaker) = breaker else {
        return ExitCode::FAILURE;
    };
    let transitions = Arc::new(Transitions(Mutex::default(), Some(started)));
    let client = Client::builder()
        .base_url(&server.url("/api"))
        .policy(policy)
        .breaker(Arc::new(Mutex::new(breaker)))
        .no_budget()
        .hooks(transitions.clone())
        .seed(seed)
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("resil demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "resil demo: {requests} GETs from {threads} threads to an embedded server on {} that answers\n\
         503/502, 429 + Retry-After: 1, resets connections, stalls past the 250 ms attempt timeout,\n\
         and is down from {:?} to {:?}.",
        server.addr(),
        OUTAGE.start,
        OUTAGE.end
    );
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(requests))
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} logical requests ({elapsed})")
    {
        bar.set_style(style);
    }
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::new());
    let succeeded = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut slot = Instant::now();
                while next.fetch_add(1, Ordering::SeqCst) < u64::from(requests) {
                    // Paced, so the workload runs through the outage and the recovery.
                    slot += PACE;
                    let start = Instant::now();
                    let ok = client
                        .get("items")
                        .send()
                        .and_then(|r| r.error_for_status())
                        .and_then(|r| r.text())
                        .is_ok();
                    if ok {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    }
                    latencies
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(start.elapsed());
                    bar.inc(1);
                    std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                }
            });
        }
    });
    bar.finish_and_clear();
    let wall = started.elapsed();
    let stats = client.stats();
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let transitions = transitions.0.lock().map(|t| t.clone()).unwrap_or_default();
    let succeeded = succeeded.into_inner();

    println!("\n| blocking client (resil-blocking over ureq) | |");
    println!("|---|---|");
    println!("| logical requests | {} |", stats.requests);
    println!(
        "| attempts sent | {} ({:.2} per request) |",
        stats.attempts,
        stats.attempts as f64 / stats.requests.max(1) as f64
    );
    for reason in [
        RetryReason::ServerError,
        RetryReason::TooManyRequests,
        RetryReason::Transport,
        RetryReason::Timeout,
        RetryReason::NotSent,
    ] {
        println!("| retries after {reason} | {} |", stats.retries_for(reason));
    }
    println!("| Retry-After honoured | {} |", stats.retry_after_honoured);
    println!(
        "| rejected by the open breaker | {} |",
        stats.breaker_rejections
    );
    println!("| breaker transitions | {} |", transitions.len());
    println!(
        "| success rate | {:.1} % ({succeeded} of {requests}) |",
        100.0 * succeeded as f64 / f64::from(requests.max(1))
    );
    println!("| latency p50 / p99 | {:?} / {:?} |", pct(0.5), pct(0.99));
    println!(
        "| time spent in backoff (all threads) | {:?} |",
        stats.backoff
    );
    println!("| wall time | {wall:.2?} |");
    for (at, t) in transitions.iter().take(12) {
        println!("  breaker {} -> {} at {at:.2?}", t.from, t.to);
    }
    println!(
        "\nThe server saw {} requests on {} connections.",
        server.requests().len(),
        server.connections()
    );
    ExitCode::SUCCESS
}
