//! `resil sim SCENARIO.toml`: run resil-sim on a scenario file, print the summary, and write
//! an SVG chart of attempts per second by outcome with the breaker state as a band.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use plotters::prelude::*;
use resil_core::{
    Backoff, BreakerState, CircuitBreaker, FleetPolicy, HalfOpen, Jitter, QuotaCosts, RetryBudget,
    RetryPolicy, TransportErrorKind, TripCondition,
};
use resil_sim::{
    Arrivals, Capacity, Failure, FleetSharing, Latency, Outage, RateLimit, Report, Scenario, Scope,
    run as simulate,
};
use serde::Deserialize;

use crate::hedge::HedgeSpec;

/// The scenario file. Durations are in milliseconds unless the key says `_secs`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    seed: u64,
    duration_secs: u64,
    clients: u32,
    /// `fixed`, `poisson` or `at_once`.
    arrivals: String,
    interval_ms: Option<u64>,
    requests_per_client: Option<u32>,
    /// The first `quiet_clients` clients call every `quiet_interval_ms` instead (fixed pace).
    quiet_clients: Option<u32>,
    quiet_interval_ms: Option<u64>,
    policy: PolicyFile,
    breaker: Option<BreakerFile>,
    budget: Option<BudgetFile>,
    /// Run the scenario once per budget kind named here (`finagle`, `aws`, `aws_2026`, `grpc`,
    /// `none`) and compare them; `[budget]` then only gives the scope and gRPC's settings.
    compare_budgets: Option<Vec<String>>,
    /// Run the scenario once per hedge setting named here (`none`, `20ms`, `p97`) and compare
    /// their latency tails; `[policy] hedge` is then ignored.
    compare_hedging: Option<Vec<String>>,
    /// Per-client breakers and budgets shared through a fleet store (resil-redis's model).
    fleet: Option<FleetFile>,
    server: ServerFile,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    /// One way, client to store or back (default 1 ms).
    propagation_ms: Option<u64>,
    /// Default 100 ms, resil-redis's.
    sync_interval_ms: Option<u64>,
    /// Distinct processes whose failures a fleet trip needs (default 3).
    min_nodes: Option<u32>,
    /// Run once with every client alone and once fleet-shared, and compare (default true).
    compare_local: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    max_attempts: Option<u32>,
    /// `exponential`, `constant`, `linear`, `fibonacci` or `decorrelated`.
    backoff: Option<String>,
    base_ms: Option<u64>,
    multiplier: Option<f64>,
    max_delay_ms: Option<u64>,
    /// `none`, `full` or `equal`.
    jitter: Option<String>,
    attempt_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    max_retry_after_ms: Option<u64>,
    retry_statuses: Option<Vec<u16>>,
    /// `none`, a delay (`20ms`) or a percentile of recent latencies (`p97`).
    hedge: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct BreakerFile {
    consecutive_failures: u32,
    open_ms: u64,
    /// `probes` (one probe, the default) or `progressive` (seatbelt's stages, failure ratio
    /// 0.5).
    half_open: Option<String>,
    /// Adds `U(0, f · open_ms)` to each open period, `f` in `[0, 1]`.
    open_jitter: Option<f64>,
    /// `fleet` (default) or `client`.
    scope: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    /// `finagle`, `ratio` (with `ratio`, `min_per_second`), `aws`, `aws_2026`, `quota` (with
    /// `capacity` and the costs), `grpc` or `token_bucket` (with `max_tokens`, `token_ratio`).
    kind: Option<String>,
    ratio: Option<f64>,
    min_per_second: Option<u32>,
    max_tokens: Option<u32>,
    token_ratio: Option<f64>,
    capacity: Option<u32>,
    retry_cost: Option<u32>,
    timeout_cost: Option<u32>,
    throttled_cost: Option<u32>,
    success_refund: Option<u32>,
    scope: Option<String>,
}

/// The budget of kind `kind`, the rest of its settings from `b`; `None` for `none`.
fn budget(kind: &str, b: &BudgetFile) -> Result<Option<RetryBudget>, String> {
    let aws = QuotaCosts::AWS_STANDARD;
    let budget = match kind {
        "none" => return Ok(None),
        "finagle" => Ok(RetryBudget::finagle()),
        "ratio" => RetryBudget::ratio(
            b.ratio.unwrap_or(0.2),
            b.min_per_second.unwrap_or(10),
            Duration::from_secs(10),
        ),
        "aws" => Ok(RetryBudget::aws_standard()),
        "aws_2026" => Ok(RetryBudget::aws_standard_2026()),
        "quota" => RetryBudget::quota(
            b.capacity.unwrap_or(500),
            QuotaCosts {
                retry: b.retry_cost.unwrap_or(aws.retry),
                timeout: b.timeout_cost.unwrap_or(aws.timeout),
                throttled: b.throttled_cost.unwrap_or(aws.throttled),
                success: b.success_refund.unwrap_or(aws.success),
            },
        ),
        "grpc" => RetryBudget::grpc(b.max_tokens.unwrap_or(10), b.token_ratio.unwrap_or(0.1)),
        "token_bucket" => {
            RetryBudget::token_bucket(b.max_tokens.unwrap_or(10), b.token_ratio.unwrap_or(0.1))
        }
        other => {
            return Err(format!(
                "budget kind {other:?} is not finagle, ratio, aws, aws_2026, quota, grpc, \
                 token_bucket or none"
            ));
        }
    };
    budget.map(Some).map_err(|e| format!("budget: {e}"))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    latency_ms: Option<u64>,
    latency_max_ms: Option<u64>,
    /// A slow tail on top of `latency_ms`: this share of answers takes `slow_ms`...
    slow_fraction: Option<f64>,
    slow_ms: Option<u64>,
    /// ...and this share `slowest_ms`.
    slowest_fraction: Option<f64>,
    slowest_ms: Option<u64>,
    failure_probability: Option<f64>,
    /// `503` (any status) or `reset`, `refused`, `stall`.
    failure: Option<String>,
    outages: Option<Vec<[u64; 2]>>,
    recovery_secs: Option<u64>,
    rate_limit_per_second: Option<u32>,
    rate_limit_retry_after_secs: Option<u64>,
    workers: Option<u32>,
    max_queue_wait_ms: Option<u64>,
    optimistic_concurrency: Option<bool>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Sets the scenario's hedging from a `hedge` setting (`none` takes it away).
fn hedge(s: &mut Scenario, spec: &str) -> Result<(), String> {
    let spec = HedgeSpec::parse(spec)?;
    let (hedging, sketch) = match spec.hedging(None) {
        Some((hedging, sketch)) => (Some(hedging), Some(sketch)),
        None => (None, None),
    };
    if let Some(sketch) = sketch {
        sketch.build().map_err(|e| format!("policy.hedge: {e}"))?;
    }
    s.policy = s
        .policy
        .with_hedging(hedging)
        .map_err(|e| format!("policy.hedge: {e}"))?;
    s.sketch = sketch;
    Ok(())
}

fn scope(s: Option<&str>) -> Result<Scope, String> {
    match s.unwrap_or("fleet") {
        "fleet" => Ok(Scope::Fleet),
        "client" => Ok(Scope::PerClient),
        other => Err(format!("scope must be fleet or client, not {other:?}")),
    }
}

fn scenario(file: &File) -> Result<Scenario, String> {
    let mut s = Scenario::new(file.seed);
    s.duration = Duration::from_secs(file.duration_secs);
    s.clients = file.clients;
    s.requests_per_client = file.requests_per_client;
    let interval = ms(file.interval_ms.unwrap_or(1_000));
    if let Some(n) = file.quiet_clients {
        let every = ms(file.quiet_interval_ms.unwrap_or(5_000)).max(Duration::from_millis(1));
        s.quiet_clients = Some((n.min(file.clients), Arrivals::Fixed(every)));
    }
    s.arrivals = match file.arrivals.as_str() {
        "fixed" => Arrivals::Fixed(interval),
        "poisson" => Arrivals::Poisson(interval),
        "at_once" => Arrivals::AtOnce,
        other => {
            return Err(format!(
                "arrivals must be fixed, poisson or at_once, not {other:?}"
            ));
        }
    };
    let p = &file.policy;
    let base = ms(p.base_ms.unwrap_or(100));
    let backoff = match p.backoff.as_deref().unwrap_or("exponential") {
        "exponential" => Backoff::Exponential {
            base,
            multiplier: p.multiplier.unwrap_or(2.0),
        },
        "constant" => Backoff::Constant(base),
        "linear" => Backoff::Linear {
            initial: base,
            step: base,
        },
        "fibonacci" => Backoff::Fibonacci { base },
        "decorrelated" => Backoff::DecorrelatedJitter { base },
        other => return Err(format!("policy.backoff {other:?} is not a backoff")),
    };
    let jitter = match p.jitter.as_deref().unwrap_or("full") {
        "none" => Jitter::None,
        "full" => Jitter::Full,
        "equal" => Jitter::Equal,
        other => {
            return Err(format!(
                "policy.jitter {other:?} is not none, full or equal"
            ));
        }
    };
    let mut policy = RetryPolicy::builder()
        .max_attempts(p.max_attempts.unwrap_or(4))
        .backoff(backoff)
        .jitter(jitter)
        .max_delay(ms(p.max_delay_ms.unwrap_or(20_000)))
        .attempt_timeout(Some(ms(p.attempt_timeout_ms.unwrap_or(10_000))))
        .total_timeout(Some(ms(p.total_timeout_ms.unwrap_or(30_000))))
        .max_retry_after(ms(p.max_retry_after_ms.unwrap_or(60_000)));
    if let Some(statuses) = &p.retry_statuses {
        policy = policy.retry_statuses(statuses);
    }
    s.policy = policy.build().map_err(|e| format!("policy: {e}"))?;
    if let Some(spec) = &p.hedge {
        hedge(&mut s, spec)?;
    }
    if let Some(b) = &file.breaker {
        let half_open = match b.half_open.as_deref().unwrap_or("probes") {
            "probes" => HalfOpen::Probes(1),
            "progressive" => HalfOpen::Progressive { failure_ratio: 0.5 },
            other => {
                return Err(format!(
                    "breaker.half_open {other:?} is not probes or progressive"
                ));
            }
        };
        let mut builder = CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(b.consecutive_failures))
            .open_for(ms(b.open_ms))
            .half_open(half_open);
        if let Some(f) = b.open_jitter {
            builder = builder.open_jitter(f, file.seed);
        }
        builder
            .clone()
            .build()
            .map_err(|e| format!("breaker: {e}"))?;
        s.breaker = Some((builder, scope(b.scope.as_deref())?));
    }
    if let Some(b) = &file.budget {
        let kind = b.kind.as_deref().unwrap_or("finagle");
        if let Some(budget) = budget(kind, b)? {
            s.budget = Some((budget, scope(b.scope.as_deref())?));
        }
    }
    let v = &file.server;
    let lo = ms(v.latency_ms.unwrap_or(10));
    s.server.latency = match (v.latency_max_ms, v.slow_fraction, v.slowest_fraction) {
        (_, slow, slowest) if slow.is_some() || slowest.is_some() => {
            let (slow, slowest) = (slow.unwrap_or(0.0), slowest.unwrap_or(0.0));
            if !(0.0..=1.0).contains(&slow)
                || !(0.0..=1.0).contains(&slowest)
                || slow + slowest > 1.0
            {
                return Err(
                    "server.slow_fraction and slowest_fraction must be in [0, 1] and add \
                     up to at most 1"
                        .to_owned(),
                );
            }
            Latency::SlowTail {
                fast: lo,
                slow: ms(v.slow_ms.unwrap_or(50)),
                slow_fraction: slow,
                slowest: ms(v.slowest_ms.unwrap_or(500)),
                slowest_fraction: slowest,
            }
        }
        (Some(hi), _, _) => Latency::Uniform(lo, ms(hi)),
        (None, _, _) => Latency::Constant(lo),
    };
    let p = v.failure_probability.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&p) {
        return Err("server.failure_probability must be in [0, 1]".to_owned());
    }
    s.server.failure_probability = p;
    s.server.failure = match v.failure.as_deref().unwrap_or("503") {
        "reset" => Failure::Error(TransportErrorKind::Reset),
        "refused" => Failure::Error(TransportErrorKind::Connect),
        "stall" => Failure::Stall,
        status => Failure::Status(
            status
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or(format!(
                    "server.failure {status:?} is not a status, reset, refused or stall"
                ))?,
        ),
    };
    s.server.outages = v
        .outages
        .iter()
        .flatten()
        .map(|[start, end]| Outage {
            start: Duration::from_secs(*start),
            end: Duration::from_secs(*end),
        })
        .collect();
    s.server.recovery = Duration::from_secs(v.recovery_secs.unwrap_or(0));
    s.server.rate_limit = v.rate_limit_per_second.map(|per_second| RateLimit {
        per_second,
        retry_after: Duration::from_secs(v.rate_limit_retry_after_secs.unwrap_or(1)),
    });
    s.server.capacity = v.workers.map(|workers| Capacity {
        workers,
        max_queue_wait: ms(v.max_queue_wait_ms.unwrap_or(100)),
    });
    s.server.optimistic_concurrency = v.optimistic_concurrency.unwrap_or(false);
    if let Some(f) = &file.fleet {
        let mut policy = FleetPolicy::builder();
        if let Some(i) = f.sync_interval_ms {
            policy = policy.sync_interval(ms(i));
        }
        if let Some(n) = f.min_nodes {
            policy = policy.min_nodes(n);
        }
        let policy = policy.build().map_err(|e| format!("fleet: {e}"))?;
        let propagation = ms(f.propagation_ms.unwrap_or(1));
        if propagation > Duration::from_secs(60) {
            return Err("fleet.propagation_ms must be at most 60000".to_owned());
        }
        s.fleet = Some(FleetSharing::new(policy, propagation));
    }
    check_size(&s)?;
    Ok(s)
}

/// Clients, server workers: each costs memory before the run starts.
const MAX_PARTIES: u32 = 1_000_000;
/// About ten seconds of simulation on one core.
const MAX_LOGICAL_REQUESTS: u64 = 20_000_000;

/// A run this command finishes in seconds, not one that exhausts memory or never ends.
fn check_size(s: &Scenario) -> Result<(), String> {
    if s.clients > MAX_PARTIES {
        return Err(format!(
            "clients = {}: resil sim runs at most {MAX_PARTIES}",
            s.clients
        ));
    }
    if let Some(c) = s.server.capacity.filter(|c| c.workers > MAX_PARTIES) {
        return Err(format!(
            "server.workers = {}: at most {MAX_PARTIES}",
            c.workers
        ));
    }
    let requests = s.expected_logical_requests();
    if requests > MAX_LOGICAL_REQUESTS {
        return Err(format!(
            "the scenario starts about {requests} logical requests and resil sim runs at most \
             {MAX_LOGICAL_REQUESTS}: lower clients or duration_secs, raise interval_ms, or set \
             requests_per_client"
        ));
    }
    Ok(())
}

/// One line of the chart: label, colour, and the value it plots for a second.
type Series = (&'static str, RGBColor, fn(&resil_sim::Second) -> u64);

/// Attempts per second by outcome as lines, the breaker's non-closed seconds as a band.
fn chart(report: &Report, title: &str, path: &Path) -> Result<(), String> {
    let seconds = report.seconds.len().max(1);
    let top = report
        .seconds
        .iter()
        .map(|s| s.attempts.max(s.ok + s.failed).max(s.rejected))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("simulated second")
        .y_desc("per second")
        .draw()
        .map_err(|e| e.to_string())?;
    let band = RGBColor(255, 200, 120).mix(0.35);
    chart
        .draw_series(
            report
                .seconds
                .iter()
                .enumerate()
                .filter(|(_, s)| s.breaker != BreakerState::Closed)
                .map(|(i, _)| {
                    Rectangle::new([(i as f64, 0.0), (i as f64 + 1.0, top)], band.filled())
                }),
        )
        .map_err(|e| e.to_string())?
        .label("breaker not closed")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], band.filled()));
    let series: [Series; 4] = [
        ("attempts sent", BLUE, |s| s.attempts),
        ("answered ok", RGBColor(0, 140, 0), |s| s.ok),
        ("answered failed", RED, |s| s.failed),
        ("rejected by breaker", RGBColor(120, 120, 120), |s| {
            s.rejected
        }),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                report
                    .seconds
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64 + 0.5, value(s) as f64)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// The most budgets one comparison runs (each run is a whole scenario).
const MAX_COMPARED: usize = 6;

/// One budget's run in a comparison, and how it did.
struct Compared {
    kind: String,
    report: Report,
    /// Seconds from the outage's end until a second with 99 % of its answered attempts ok.
    recovered_after: Option<usize>,
}

/// Runs `base` once per budget kind in `kinds` and prints a table: attempts per logical
/// request, attempts per second during the outage, success, how soon after the outage the
/// backend answered well again (the first second in which 99 % of the attempts it answered were
/// answered well, while calls still arrive; "never" if none), and retries the budget refused.
/// The chart plots attempts per second, a line per budget.
fn compare_budgets(
    file: &File,
    base: Scenario,
    kinds: &[String],
    name: &str,
    out: &Path,
) -> Result<ExitCode, String> {
    if kinds.is_empty() || kinds.len() > MAX_COMPARED {
        return Err(format!(
            "compare_budgets names 1 to {MAX_COMPARED} budget kinds"
        ));
    }
    let settings = file.budget.as_ref();
    let scope = scope(settings.and_then(|b| b.scope.as_deref()))?;
    let outage = base
        .server
        .outages
        .iter()
        .map(|o| (o.start.as_secs() as usize, o.end.as_secs() as usize))
        .max_by_key(|(_, end)| *end);
    let mut runs = Vec::new();
    for kind in kinds {
        let mut s = base.clone();
        s.budget = budget(kind, settings.unwrap_or(&BudgetFile::default()))?.map(|b| (b, scope));
        let report = simulate(&s);
        // Only while calls still arrive: once they stop, any backend recovers.
        let last = s.duration.as_secs() as usize;
        let recovered_after = outage.and_then(|(_, end)| {
            report
                .seconds
                .iter()
                .take(last)
                .skip(end)
                .position(|second| {
                    let answered = second.ok + second.failed;
                    answered > 0 && second.ok * 100 >= answered * 99 && second.rejected == 0
                })
        });
        runs.push(Compared {
            kind: kind.clone(),
            report,
            recovered_after,
        });
    }
    say!("scenario           {name}");
    say!(
        "budget      logical requests  attempts/request  attempts/s in outage  success  \
         recovered  refused"
    );
    for run in &runs {
        let r = &run.report;
        let in_outage = outage.map_or(0.0, |(start, end)| {
            r.attempts_between(start, end) as f64 / (end - start).max(1) as f64
        });
        let recovered = run
            .recovered_after
            .map_or("never".to_owned(), |s| format!("+{s} s"));
        let refused = r.give_ups.get("budget exhausted").copied().unwrap_or(0);
        say!(
            "{:<11} {:>16}  {:>16.3}  {:>20.0}  {:>6.1} %  {:>9}  {:>7}",
            run.kind,
            r.logical_requests,
            r.amplification(),
            in_outage,
            100.0 * r.success_rate(),
            recovered,
            refused
        );
    }
    match comparison_chart(&runs, outage, name, out) {
        Ok(()) => {
            say!("chart              {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            note!("resil sim: writing {}: {e}", out.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs `base` once per hedge setting and prints each run's latency tail and extra attempts;
/// the chart plots p50, p99, p99.9 and the slowest request, a line per setting.
fn compare_hedging(
    base: Scenario,
    settings: &[String],
    name: &str,
    out: &Path,
) -> Result<ExitCode, String> {
    if settings.is_empty() || settings.len() > MAX_COMPARED {
        return Err(format!(
            "compare_hedging names 1 to {MAX_COMPARED} hedge settings"
        ));
    }
    let mut runs = Vec::new();
    for spec in settings {
        let mut s = base.clone();
        hedge(&mut s, spec)?;
        runs.push((spec.clone(), simulate(&s)));
    }
    say!("scenario           {name}");
    say!("hedge     p50 ms   p99 ms   p99.9 ms   max ms   attempts/request   hedges   won");
    let msf = |d: Duration| d.as_secs_f64() * 1e3;
    for (spec, r) in &runs {
        say!(
            "{:<8} {:>7.2}  {:>7.2}  {:>9.2}  {:>7.2}  {:>17.4}  {:>7}  {:>4}",
            spec,
            msf(r.p50),
            msf(r.p99),
            msf(r.p999),
            msf(r.max),
            r.amplification(),
            r.hedges,
            r.hedge_wins
        );
    }
    match tail_chart(&runs, name, out) {
        Ok(()) => {
            say!("chart              {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            note!("resil sim: writing {}: {e}", out.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Latency at p50, p99, p99.9 and the slowest request (milliseconds, log scale), a line per
/// hedge setting.
fn tail_chart(runs: &[(String, Report)], title: &str, path: &Path) -> Result<(), String> {
    let points =
        |r: &Report| [r.p50, r.p99, r.p999, r.max].map(|d| (d.as_secs_f64() * 1e3).max(0.01));
    let top = runs
        .iter()
        .flat_map(|(_, r)| points(r))
        .fold(1.0f64, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let labels = ["p50", "p99", "p99.9", "max"];
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.2f64..3.2f64, (0.01f64..top).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            let i = x.round() as usize;
            labels.get(i).copied().unwrap_or("").to_owned()
        })
        .x_desc("latency percentile")
        .y_desc("milliseconds (log)")
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, RGBColor(0, 140, 0), RED, MAGENTA, BLACK, CYAN];
    for ((spec, report), color) in runs.iter().zip(colors) {
        let series: Vec<(f64, f64)> = points(report)
            .into_iter()
            .enumerate()
            .map(|(i, ms)| (i as f64, ms))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("hedge {spec}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Runs `base` with every client alone and again with the fleet sharing their breakers and
/// budgets, and prints what the issue asks of a fleet: attempts that reached the server during
/// the outage, half-open probes during it and at the recovery (from the outage's end until
/// the last breaker closed), when the first and the quiet client (client 0) opened, and how
/// long after the outage the median and the last breaker closed. The chart plots attempts per second.
fn compare_fleet_sharing(base: Scenario, name: &str, out: &Path) -> Result<ExitCode, String> {
    if base
        .breaker
        .as_ref()
        .is_none_or(|(_, s)| *s != Scope::PerClient)
    {
        return Err("a fleet shares per-client breakers: set breaker.scope = \"client\"".into());
    }
    let (start, end) = base
        .server
        .outages
        .iter()
        .map(|o| (o.start, o.end))
        .max_by_key(|(_, end)| *end)
        .ok_or("a fleet comparison needs an outage (server.outages)")?;
    let (from, to) = (start.as_secs() as usize, end.as_secs() as usize);
    let mut alone = base.clone();
    alone.fleet = None;
    let mut runs = Vec::new();
    for (kind, s) in [("local-only", alone), ("fleet-shared", base)] {
        let report = simulate(&s);
        runs.push(Compared {
            kind: kind.to_owned(),
            report,
            recovered_after: None,
        });
    }
    let ms =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()));
    say!("scenario           {name}");
    say!(
        "state          attempts in outage  probes in outage  probes at recovery  \
         first open  quiet open  closed (median / last)  syncs (failed)"
    );
    for run in &runs {
        let r = &run.report;
        let probes = |a: usize, b: usize| -> u64 {
            r.seconds.iter().take(b).skip(a).map(|s| s.probes).sum()
        };
        let mut closes: Vec<Duration> = r.last_close.iter().flatten().copied().collect();
        closes.sort_unstable();
        let closed_by = closes.last().copied().filter(|c| *c >= end);
        let median = closes.get(closes.len() / 2).copied().filter(|c| *c >= end);
        let after = |c: Option<Duration>| {
            c.map_or("never".to_owned(), |c| {
                format!("+{:.1} s", (c - end).as_secs_f64())
            })
        };
        let recovery_end = closed_by.map_or(r.seconds.len(), |c| c.as_secs() as usize + 1);
        let first = r
            .first_open
            .iter()
            .flatten()
            .filter(|t| **t >= start)
            .min()
            .copied();
        let quiet = r.first_open.first().copied().flatten();
        say!(
            "{:<13} {:>19}  {:>16}  {:>18}  {:>10}  {:>10}  {:>23}  {} ({})",
            run.kind,
            r.attempts_between(from, to),
            probes(from, to),
            probes(to, recovery_end),
            ms(first.map(|t| t - start)),
            ms(quiet.filter(|t| *t >= start).map(|t| t - start)),
            format!("{} / {}", after(median), after(closed_by)),
            r.fleet_syncs.0,
            r.fleet_syncs.1
        );
    }
    say!(
        "logical requests   {} (each run; open times from the outage's start, client 0 is \
         the quiet one)",
        runs[0].report.logical_requests
    );
    match comparison_chart(&runs, Some((from, to)), name, out) {
        Ok(()) => {
            say!("chart              {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            note!("resil sim: writing {}: {e}", out.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Attempts per second, a line per budget, the outage as a band.
fn comparison_chart(
    runs: &[Compared],
    outage: Option<(usize, usize)>,
    title: &str,
    path: &Path,
) -> Result<(), String> {
    let seconds = runs
        .iter()
        .map(|r| r.report.seconds.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = runs
        .iter()
        .flat_map(|r| r.report.seconds.iter().map(|s| s.attempts))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("simulated second")
        .y_desc("attempts per second")
        .draw()
        .map_err(|e| e.to_string())?;
    if let Some((start, end)) = outage {
        let band = RGBColor(255, 200, 120).mix(0.35);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start as f64, 0.0), (end as f64, top)],
                band.filled(),
            )))
            .map_err(|e| e.to_string())?
            .label("outage")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], band.filled()));
    }
    let colors = [BLUE, RGBColor(0, 140, 0), RED, MAGENTA, BLACK, CYAN];
    for (run, color) in runs.iter().zip(colors) {
        chart
            .draw_series(LineSeries::new(
                run.report
                    .seconds
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64 + 0.5, s.attempts as f64)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(run.kind.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

pub fn run(path: &Path, svg: Option<&Path>, client: Option<&str>) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            note!("resil sim: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if crate::overload::is_overload(&text) {
        return crate::overload::run(path, &text, svg, client);
    }
    if client.is_some() {
        note!("resil sim: --client is for overload scenarios (an [overload] table)");
        return ExitCode::from(2);
    }
    let file: File = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            note!("resil sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
    });
    let scenario = match scenario(&file) {
        Ok(s) => s,
        Err(e) => {
            note!("resil sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let out = svg
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.with_extension("svg"));
    let compare_fleet = file
        .fleet
        .as_ref()
        .is_some_and(|f| f.compare_local.unwrap_or(true));
    if compare_fleet && file.compare_budgets.is_none() && file.compare_hedging.is_none() {
        return compare_fleet_sharing(scenario, &name, &out).unwrap_or_else(|e| {
            note!("resil sim: {}: {e}", path.display());
            ExitCode::from(2)
        });
    }
    if let Some(settings) = &file.compare_hedging {
        return compare_hedging(scenario, settings, &name, &out).unwrap_or_else(|e| {
            note!("resil sim: {}: {e}", path.display());
            ExitCode::from(2)
        });
    }
    if let Some(kinds) = &file.compare_budgets {
        return compare_budgets(&file, scenario, kinds, &name, &out).unwrap_or_else(|e| {
            note!("resil sim: {}: {e}", path.display());
            ExitCode::from(2)
        });
    }
    let report = simulate(&scenario);
    say!("scenario           {name}");
    say!("{report}");
    match chart(&report, &name, &out) {
        Ok(()) => {
            say!("chart              {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            note!("resil sim: writing {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
