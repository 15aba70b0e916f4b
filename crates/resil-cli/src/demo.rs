//! `resil demo`: the same workload through resil-blocking and resil-tokio, each against its
//! own embedded server on 127.0.0.1 that misbehaves on purpose, then a side-by-side summary.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use resil_core::{Backoff, CircuitBreaker, Jitter, RetryPolicy, Transition, TripCondition};
use resil_http::{CallInfo, Hooks, RetryReason, StatsSnapshot};
use resil_tests::{Reply, TestServer};

/// When each embedded server is down, relative to its start.
const OUTAGE: std::ops::Range<Duration> = Duration::from_millis(800)..Duration::from_millis(1_600);
/// Each worker starts one logical request per this interval.
const PACE: Duration = Duration::from_millis(50);

/// Records breaker transitions with their time since the workload started.
struct Transitions(Mutex<Vec<(Duration, Transition)>>, Instant);

impl Hooks for Transitions {
    fn on_breaker(&self, _: &CallInfo<'_>, t: Transition) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.1.elapsed(), t));
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

fn policy() -> Option<RetryPolicy> {
    RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(25)))
        .jitter(Jitter::Full)
        .attempt_timeout(Some(Duration::from_millis(250)))
        .total_timeout(Some(Duration::from_secs(5)))
        .max_retry_after(Duration::from_secs(2))
        .build()
        .ok()
}

fn breaker() -> Option<Arc<Mutex<CircuitBreaker>>> {
    CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(8))
        .open_for(Duration::from_millis(300))
        .build()
        .ok()
        .map(|b| Arc::new(Mutex::new(b)))
}

/// What one client's run produced.
struct Summary {
    stats: StatsSnapshot,
    succeeded: u64,
    latencies: Vec<Duration>,
    transitions: Vec<(Duration, Transition)>,
    wall: Duration,
    server_requests: usize,
    server_connections: usize,
}

impl Summary {
    fn percentile(&self, p: f64) -> Duration {
        self.latencies
            .get(((self.latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    }
}

fn progress(requests: u32, quiet: bool, label: &'static str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(requests))
    };
    if let Ok(style) = ProgressStyle::with_template("{prefix:>9} {bar:40} {pos}/{len} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.set_prefix(label);
    bar
}

/// One run's embedded server, start time and breaker-transition log.
struct Stage {
    server: TestServer,
    started: Instant,
    transitions: Arc<Transitions>,
}

impl Stage {
    fn start() -> Stage {
        let server = TestServer::start();
        let started = Instant::now();
        server.handle("/api/items", move |_, n| misbehave(n, started.elapsed()));
        let transitions = Arc::new(Transitions(Mutex::default(), started));
        Stage {
            server,
            started,
            transitions,
        }
    }

    fn summary(
        self,
        stats: StatsSnapshot,
        succeeded: u64,
        mut latencies: Vec<Duration>,
    ) -> Summary {
        latencies.sort();
        Summary {
            stats,
            succeeded,
            latencies,
            transitions: self
                .transitions
                .0
                .lock()
                .map(|t| t.clone())
                .unwrap_or_default(),
            wall: self.started.elapsed(),
            server_requests: self.server.requests().len(),
            server_connections: self.server.connections(),
        }
    }
}

fn run_blocking(requests: u32, workers: u32, seed: u64, quiet: bool) -> Result<Summary, String> {
    let stage = Stage::start();
    let client = resil_blocking::Client::builder()
        // Its server is this process's own, on loopback, where no proxy could reach it.
        .no_proxy()
        .base_url(&stage.server.url("/api"))
        .policy(policy().ok_or("invalid demo policy")?)
        .breaker(breaker().ok_or("invalid demo breaker")?)
        .no_budget()
        .hooks(stage.transitions.clone())
        .seed(seed)
        .build()
        .map_err(|e| format!("{e:#}"))?;
    let bar = progress(requests, quiet, "blocking");
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::new());
    let succeeded = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                use resil_blocking::ResponseExt;
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
                    succeeded.fetch_add(u64::from(ok), Ordering::SeqCst);
                    latencies
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(start.elapsed());
                    bar.inc(1);
                    std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                }
            });
        }
    });
    bar.finish_and_clear();
    let latencies = latencies.into_inner().unwrap_or_default();
    Ok(stage.summary(client.stats(), succeeded.into_inner(), latencies))
}

fn run_tokio(requests: u32, workers: u32, seed: u64, quiet: bool) -> Result<Summary, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let stage = Stage::start();
        let client = resil_tokio::Client::builder()
            .no_proxy()
            .base_url(&stage.server.url("/api"))
            .policy(policy().ok_or("invalid demo policy")?)
            .breaker(breaker().ok_or("invalid demo breaker")?)
            .no_budget()
            .hooks(stage.transitions.clone())
            .seed(seed)
            .build()
            .map_err(|e| format!("{e:#}"))?;
        let bar = progress(requests, quiet, "tokio");
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..workers.max(1) {
            let (client, next, bar) = (client.clone(), next.clone(), bar.clone());
            tasks.push(tokio::spawn(async move {
                use resil_tokio::ResponseExt;
                let mut done = Vec::new();
                let mut slot = tokio::time::Instant::now();
                while next.fetch_add(1, Ordering::SeqCst) < u64::from(requests) {
                    slot += PACE;
                    let start = Instant::now();
                    let ok = match client
                        .get("items")
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                    {
                        Ok(r) => r.text().await.is_ok(),
                        Err(_) => false,
                    };
                    done.push((ok, start.elapsed()));
                    bar.inc(1);
                    tokio::time::sleep_until(slot).await;
                }
                done
            }));
        }
        let mut latencies = Vec::new();
        let mut succeeded = 0;
        for task in tasks {
            for (ok, latency) in task.await.map_err(|e| e.to_string())? {
                succeeded += u64::from(ok);
                latencies.push(latency);
            }
        }
        bar.finish_and_clear();
        Ok(stage.summary(client.stats(), succeeded, latencies))
    })
}

/// Requests and workers of the tail-latency section.
const TAIL_REQUESTS: usize = 2_000;
const TAIL_WORKERS: usize = 16;

/// The tail server's answer to its n-th request: at once, but 2 % after 50 ms and 0.2 %
/// after 300 ms (a replica that stalls now and then).
fn slow_tail(n: usize) -> Reply {
    let ok = Reply::body(200, "{\"ok\":true}");
    match n % 500 {
        123 => Reply::late(Duration::from_millis(300), ok),
        k if k % 50 == 7 => Reply::late(Duration::from_millis(50), ok),
        _ => ok,
    }
}

/// One tail run: every latency (sorted) and the client's counts.
struct Tail {
    latencies: Vec<Duration>,
    stats: StatsSnapshot,
}

impl Tail {
    fn at(&self, p: f64) -> Duration {
        let rank = ((self.latencies.len() as f64 * p).ceil() as usize).max(1);
        self.latencies.get(rank - 1).copied().unwrap_or_default()
    }
}

/// [`TAIL_REQUESTS`] GETs through resil-tokio to a server with a slow tail, hedged at p97
/// of recent latencies (after 5 ms until there are enough) or not.
fn run_tail(hedged: bool, seed: u64) -> Result<Tail, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = TestServer::start();
        server.handle("/api/tail", |_, n| slow_tail(n));
        let mut builder = resil_tokio::Client::builder()
            .no_proxy()
            .base_url(&server.url("/api"))
            .seed(seed);
        if hedged {
            let sketch = resil_core::LatencySketch::builder()
                .hedge_quantile(0.97)
                .build()
                .map_err(|e| e.to_string())?;
            builder = builder
                .hedge(resil_core::Hedging::adaptive().fallback(Duration::from_millis(5)))
                .latency_sketch(Arc::new(Mutex::new(sketch)));
        }
        let client = builder.build().map_err(|e| format!("{e:#}"))?;
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..TAIL_WORKERS {
            let (client, next) = (client.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                use resil_tokio::ResponseExt;
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < TAIL_REQUESTS as u64 {
                    let start = Instant::now();
                    if let Ok(r) = client.get("tail").send().await {
                        let _ = r.text().await;
                    }
                    latencies.push(start.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.map_err(|e| e.to_string())?);
        }
        latencies.sort();
        Ok(Tail {
            latencies,
            stats: client.stats(),
        })
    })
}

/// The tail-latency section: the same GETs hedged and not, side by side.
fn tail_section(seed: u64) -> Result<(), String> {
    let plain = run_tail(false, seed)?;
    let hedged = run_tail(true, seed)?;
    say!(
        "\nTail latency: {TAIL_REQUESTS} GETs from {TAIL_WORKERS} tasks through resil-tokio to a server that answers at once\n\
         but 2 % after 50 ms and 0.2 % after 300 ms, without and with hedging (at p97 of recent latencies)."
    );
    say!("\n| | no hedging | hedging |");
    say!("|---|---|---|");
    let row = |name: &str, f: &dyn Fn(&Tail) -> String| {
        say!("| {name} | {} | {} |", f(&plain), f(&hedged));
    };
    row("tail latency p50 / p99 / p99.9", &|t| {
        format!(
            "{:.1?} / {:.1?} / {:.1?}",
            t.at(0.5),
            t.at(0.99),
            t.at(0.999)
        )
    });
    row("tail attempts per request", &|t| {
        format!(
            "{:.3}",
            t.stats.attempts as f64 / t.stats.requests.max(1) as f64
        )
    });
    row("hedges sent / won", &|t| {
        format!("{} / {}", t.stats.hedges, t.stats.hedge_wins)
    });
    Ok(())
}

pub fn run(requests: u32, workers: u32, seed: u64, quiet: bool) -> ExitCode {
    say!(
        "resil demo: {requests} GETs from {workers} workers, through the blocking and then the tokio client,\n\
         each to its own embedded server on 127.0.0.1 that answers 503/502, 429 + Retry-After: 1,\n\
         resets connections, stalls past the 250 ms attempt timeout, and is down from {:?} to {:?}.",
        OUTAGE.start,
        OUTAGE.end
    );
    let runs = run_blocking(requests, workers, seed, quiet)
        .and_then(|b| run_tokio(requests, workers, seed, quiet).map(|t| [b, t]));
    let [b, t] = match runs {
        Ok(runs) => runs,
        Err(e) => {
            note!("resil demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let row =
        |name: &str, f: &dyn Fn(&Summary) -> String| say!("| {name} | {} | {} |", f(&b), f(&t));
    say!("\n| | resil-blocking (ureq) | resil-tokio (hyper-util) |");
    say!("|---|---|---|");
    row("logical requests", &|s| s.stats.requests.to_string());
    row("attempts sent", &|s| {
        format!(
            "{} ({:.2} per request)",
            s.stats.attempts,
            s.stats.attempts as f64 / s.stats.requests.max(1) as f64
        )
    });
    for reason in [
        RetryReason::ServerError,
        RetryReason::TooManyRequests,
        RetryReason::Transport,
        RetryReason::Timeout,
    ] {
        row(&format!("retries after {reason}"), &|s| {
            s.stats.retries_for(reason).to_string()
        });
    }
    row("Retry-After honoured", &|s| {
        s.stats.retry_after_honoured.to_string()
    });
    row("rejected by the open breaker", &|s| {
        s.stats.breaker_rejections.to_string()
    });
    row("breaker transitions", &|s| s.transitions.len().to_string());
    row("success rate", &|s| {
        format!(
            "{:.1} % ({} of {})",
            100.0 * s.succeeded as f64 / f64::from(requests.max(1)),
            s.succeeded,
            requests
        )
    });
    row("latency p50 / p99", &|s| {
        format!("{:.1?} / {:.1?}", s.percentile(0.5), s.percentile(0.99))
    });
    row("time in backoff (all workers)", &|s| {
        format!("{:.2?}", s.stats.backoff)
    });
    row("server saw requests / connections", &|s| {
        format!("{} / {}", s.server_requests, s.server_connections)
    });
    row("wall time", &|s| format!("{:.2?}", s.wall));
    for (name, s) in [("blocking", &b), ("tokio", &t)] {
        let story: Vec<String> = s
            .transitions
            .iter()
            .take(8)
            .map(|(at, tr)| format!("{} at {at:.2?}", tr.to))
            .collect();
        if story.is_empty() {
            say!("{name} breaker: stayed closed");
        } else {
            say!("{name} breaker: {}", story.join(", "));
        }
    }
    if let Err(e) = tail_section(seed) {
        note!("resil demo: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = crate::overload::demo_section(seed) {
        note!("resil demo: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
