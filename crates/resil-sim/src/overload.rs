//! Overload: a fleet offering more than a server can take, and what its clients' retries,
//! budgets and limiters make of it.
//!
//! The server serves `capacity` attempts per second from a token bucket with a queue in front
//! (a GCRA: the bucket's next free turn moves on by 1/capacity per served attempt). An attempt
//! whose turn comes within `queue` waits for it, so latency rises with load; beyond that the
//! server rejects it at once with 429 and `Retry-After` or a bare 503, and each rejection costs
//! it `reject_cost` of a served attempt. Clients start calls on independent Poisson arrivals
//! offering `offered` × capacity in all, each call with a total deadline; each client has its
//! own breaker, budget and limiter (a process each), or shares the fleet's (one process with
//! many tasks, see [`OverloadScenario::shared`]).
//!
//! ```
//! use std::time::Duration;
//! use resil_sim::{OverloadClient, OverloadScenario, run_overload};
//!
//! let mut scenario = OverloadScenario::new(7);
//! scenario.clients = 100;
//! scenario.capacity = 500.0;
//! scenario.duration = Duration::from_secs(10);
//! scenario.warmup = Duration::from_secs(2);
//! let bare = run_overload(&scenario, &OverloadClient::NoRetries);
//! // Offered 3×: about a third is served, the rest rejected.
//! assert!(bare.goodput(&scenario) > 0.6 && bare.goodput(&scenario) < 1.0);
//! assert_eq!(run_overload(&scenario, &OverloadClient::NoRetries), bare, "same seed, same run");
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use resil_core::{
    Action, Attempt, CircuitBreaker, CircuitBreakerBuilder, Event, Input, Instant, Method,
    RequestInfo, ResponseHead, RetryAfter, RetryBudget, RetryMachine, RetryPolicy, UnixTime,
};

use crate::limiters::{LimiterKind, SimLimiter};

/// How the server says no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// `429 Too Many Requests` with `Retry-After` of this many whole seconds.
    TooManyRequests {
        /// The `Retry-After`, in seconds.
        retry_after_secs: u64,
    },
    /// `503 Service Unavailable` without `Retry-After`.
    Unavailable,
}

/// A server with limited capacity and a fleet offering more than it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct OverloadScenario {
    /// Seeds arrivals and every machine's jitter.
    pub seed: u64,
    /// How long calls arrive.
    pub duration: Duration,
    /// Seconds at the start left out of the steady figures (shorter than `duration`, or
    /// there are none).
    pub warmup: Duration,
    /// Clients, each with its own breaker, budget and limiter unless `shared`.
    pub clients: u32,
    /// Attempts the server serves per second.
    pub capacity: f64,
    /// Calls offered per second, as a multiple of `capacity`.
    pub offered: f64,
    /// How far ahead the server queues an attempt before rejecting it.
    pub queue: Duration,
    /// Service time of an attempt once its turn comes.
    pub latency: Duration,
    /// What a rejection looks like.
    pub rejection: Rejection,
    /// What one rejection costs the server, as a fraction of a served attempt.
    pub reject_cost: f64,
    /// Each call's total deadline.
    pub deadline: Duration,
    /// One breaker, budget and limiter for the whole fleet instead of one per client.
    pub shared: bool,
}

impl OverloadScenario {
    /// 1,000 clients offering 3× a capacity of 2,000 per second for 60 s (10 s warm-up), a
    /// 25 ms queue, 1 ms service, `429` with `Retry-After: 1`, rejections costing a tenth of a
    /// request, a 2 s deadline per call, a breaker, budget and limiter per client.
    pub fn new(seed: u64) -> OverloadScenario {
        OverloadScenario {
            seed,
            duration: Duration::from_secs(60),
            warmup: Duration::from_secs(10),
            clients: 1000,
            capacity: 2000.0,
            offered: 3.0,
            queue: Duration::from_millis(25),
            latency: Duration::from_millis(1),
            rejection: Rejection::TooManyRequests {
                retry_after_secs: 1,
            },
            reject_cost: 0.1,
            deadline: Duration::from_secs(2),
            shared: false,
        }
    }

    /// Calls the fleet starts, on average: the size of a run, to check before running it.
    pub fn expected_calls(&self) -> u64 {
        let calls = self.capacity * self.offered * self.duration.as_secs_f64();
        if calls.is_finite() && calls > 0.0 {
            calls as u64
        } else {
            0
        }
    }
}

/// What every client runs: resil-core's retry machine configured one way.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OverloadClient {
    /// One attempt per call.
    NoRetries,
    /// The default retry policy, no breaker, no budget, no limiter.
    RetriesOnly,
    /// The default retry policy and the default retry budget.
    RetriesAndBudget,
    /// What resil's clients do with nothing configured (`resil_http::ClientConfig`'s
    /// defaults): the default policy, breaker, budget and adaptive throttle.
    Defaults,
    /// The defaults with this limiter instead of the throttle (as a builder's `limiter`).
    Limiter(LimiterKind),
}

impl OverloadClient {
    /// A short name for tables and file names.
    pub fn name(&self) -> String {
        match self {
            OverloadClient::NoRetries => "no retries".into(),
            OverloadClient::RetriesOnly => "retries only".into(),
            OverloadClient::RetriesAndBudget => "retries + budget".into(),
            OverloadClient::Defaults => "defaults".into(),
            OverloadClient::Limiter(kind) => kind.name().into(),
        }
    }

    /// The client named `name` (`no_retries`, `retries`, `budget`, `defaults`, or a limiter:
    /// see [`LimiterKind::parse`]).
    pub fn parse(name: &str) -> Option<OverloadClient> {
        Some(match name {
            "no_retries" => OverloadClient::NoRetries,
            "retries" => OverloadClient::RetriesOnly,
            "budget" => OverloadClient::RetriesAndBudget,
            "defaults" => OverloadClient::Defaults,
            other => OverloadClient::Limiter(LimiterKind::parse(other)?),
        })
    }

    fn policy(&self) -> RetryPolicy {
        match self {
            OverloadClient::NoRetries => RetryPolicy::builder()
                .max_attempts(1)
                .build()
                .unwrap_or_default(),
            _ => RetryPolicy::default(),
        }
    }

    fn has_breaker(&self) -> bool {
        matches!(self, OverloadClient::Defaults | OverloadClient::Limiter(_))
    }

    fn has_budget(&self) -> bool {
        !matches!(
            self,
            OverloadClient::NoRetries | OverloadClient::RetriesOnly
        )
    }
}

/// One simulated second of an overload run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OverloadSecond {
    /// Calls that ended with a 200 in this second.
    pub ok: u64,
    /// Attempts that reached the server.
    pub attempts: u64,
    /// Attempts the server rejected.
    pub rejected: u64,
    /// Attempts a limiter refused before sending (calls given up locally).
    pub local_rejections: u64,
    /// The client's limit at the end of the second (client 0's, or the fleet's), in the
    /// limiter's unit ([`LimiterKind::unit`]); `None` without a limiter or while it limits
    /// nothing.
    pub limit: Option<f64>,
}

/// What an overload run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OverloadReport {
    /// Calls started.
    pub calls: u64,
    /// Calls that ended with a 200 within their deadline.
    pub succeeded: u64,
    /// Attempts that reached the server.
    pub attempts: u64,
    /// Attempts the server rejected.
    pub rejected: u64,
    /// Calls given up by a limiter before sending.
    pub local_rejections: u64,
    /// Calls given up because the breaker was open.
    pub circuit_open: u64,
    /// Breaker openings (client 0's, or the fleet's).
    pub breaker_opened: u64,
    /// Per second.
    pub seconds: Vec<OverloadSecond>,
    /// Median latency of the successes after the warm-up.
    pub p50: Duration,
    /// 99th percentile latency of the successes after the warm-up.
    pub p99: Duration,
}

impl OverloadReport {
    fn steady(&self, scenario: &OverloadScenario) -> &[OverloadSecond] {
        let from = scenario.warmup.as_secs() as usize;
        let to = (scenario.duration.as_secs() as usize).min(self.seconds.len());
        self.seconds.get(from..to).unwrap_or(&[])
    }

    /// Successes per second after the warm-up, as a fraction of capacity.
    pub fn goodput(&self, scenario: &OverloadScenario) -> f64 {
        let steady = self.steady(scenario);
        let ok: u64 = steady.iter().map(|s| s.ok).sum();
        ok as f64 / steady.len().max(1) as f64 / scenario.capacity
    }

    /// Server rejections per success after the warm-up.
    pub fn rejections_per_success(&self, scenario: &OverloadScenario) -> f64 {
        let steady = self.steady(scenario);
        let ok: u64 = steady.iter().map(|s| s.ok).sum();
        let rejected: u64 = steady.iter().map(|s| s.rejected).sum();
        rejected as f64 / ok.max(1) as f64
    }

    /// Attempts that reached the server per call.
    pub fn attempts_per_call(&self) -> f64 {
        self.attempts as f64 / self.calls.max(1) as f64
    }

    fn second(&mut self, index: usize) -> Option<&mut OverloadSecond> {
        if index >= crate::SECONDS_KEPT {
            return None;
        }
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, OverloadSecond::default());
        }
        self.seconds.get_mut(index)
    }
}

/// The server's capacity: a GCRA token bucket with a queue.
struct Bucket {
    next: u64,
    per_attempt: u64,
    reject_cost: u64,
    queue: u64,
    latency: u64,
}

impl Bucket {
    /// When an attempt arriving at `now` is answered, and whether it was served.
    fn admit(&mut self, now: u64) -> (u64, bool) {
        let turn = self.next.max(now);
        if turn - now <= self.queue {
            self.next = turn.saturating_add(self.per_attempt);
            (turn.saturating_add(self.latency), true)
        } else {
            self.next = self.next.saturating_add(self.reject_cost);
            (now.saturating_add(MILLISECOND), false)
        }
    }
}

const MILLISECOND: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
const WALL_ORIGIN: u64 = 1_700_000_000;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrival {
        client: u32,
    },
    Complete {
        req: u32,
        attempt: Attempt,
        ok: bool,
    },
    Timer {
        req: u32,
    },
    Sample,
}

type Scheduled = crate::schedule::Scheduled<Ev>;

struct Call<'a> {
    machine: RetryMachine<'a>,
    client: u32,
    started: u64,
    timer_at: Option<u64>,
    reply_at: Option<u64>,
}

/// Runs `client` on every member of the fleet against the scenario's server.
pub fn run_overload(scenario: &OverloadScenario, client: &OverloadClient) -> OverloadReport {
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    let policy = client.policy();
    let clients = scenario.clients.max(1);
    let owners = if scenario.shared { 1 } else { clients };
    let breakers: Vec<Mutex<CircuitBreaker>> = if client.has_breaker() {
        (0..owners)
            .filter_map(|_| {
                CircuitBreakerBuilder::default()
                    .build()
                    .ok()
                    .map(Mutex::new)
            })
            .collect()
    } else {
        Vec::new()
    };
    let budgets: Vec<Mutex<RetryBudget>> = if client.has_budget() {
        (0..owners)
            .map(|_| Mutex::new(RetryBudget::default()))
            .collect()
    } else {
        Vec::new()
    };
    let kind = match client {
        OverloadClient::Limiter(kind) => Some(*kind),
        OverloadClient::Defaults => Some(LimiterKind::Throttle),
        _ => None,
    };
    let limiters: Vec<SimLimiter> = match kind {
        Some(kind) => (0..owners)
            .filter_map(|i| kind.build(scenario.seed ^ u64::from(i)))
            .collect(),
        None => Vec::new(),
    };
    let limiter_refs: Vec<Vec<resil_core::LimiterRef<'_>>> =
        limiters.iter().map(|l| l.shared()).collect();
    let owner = |client: u32| if scenario.shared { 0 } else { client as usize };

    let mut bucket = Bucket {
        next: 0,
        per_attempt: (1e9 / scenario.capacity.max(1e-3)) as u64,
        reject_cost: (1e9 * scenario.reject_cost.clamp(0.0, 1e3) / scenario.capacity.max(1e-3))
            as u64,
        queue: nanos(scenario.queue),
        latency: nanos(scenario.latency),
    };
    let end = nanos(scenario.duration);
    let mean_gap = (1e9 * f64::from(clients) / (scenario.capacity * scenario.offered).max(1e-6))
        .min(u64::MAX as f64 / 4.0) as u64;
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Reverse<Scheduled>>, at: u64, ev: Ev| {
        seq += 1;
        heap.push(Reverse(Scheduled { at, seq, ev }));
    };
    for client in 0..clients {
        let first = exponential(&mut rng, mean_gap);
        push(&mut heap, first, Ev::Arrival { client });
    }
    if !limiters.is_empty() {
        push(&mut heap, SECOND, Ev::Sample);
    }

    let mut report = OverloadReport::default();
    let mut calls: Vec<Option<Call<'_>>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut latencies: Vec<u64> = Vec::new();
    let warmup = nanos(scenario.warmup);
    let deadline = scenario.deadline;

    while let Some(Reverse(Scheduled { at: now, ev, .. })) = heap.pop() {
        let second = (now / SECOND) as usize;
        let req = match ev {
            Ev::Sample => {
                // The limit as it stands at the end of the second that just ended.
                if let Some(limiter) = limiters.first() {
                    let limit = limiter.limit(Instant::from_nanos(now));
                    if let Some(s) = report.second(second.saturating_sub(1)) {
                        s.limit = limit;
                    }
                }
                if now < end.saturating_add(nanos(deadline)) {
                    push(&mut heap, now.saturating_add(SECOND), Ev::Sample);
                }
                continue;
            }
            Ev::Arrival { client: c } => {
                let next = now.saturating_add(exponential(&mut rng, mean_gap));
                if next < end {
                    push(&mut heap, next, Ev::Arrival { client: c });
                }
                let mut machine = RetryMachine::new(
                    &policy,
                    RequestInfo::new(Method::Get),
                    Instant::from_nanos(now),
                    rng.next_u64(),
                )
                .with_deadline(Instant::from_nanos(now.saturating_add(nanos(deadline))));
                if let Some(b) = breakers.get(owner(c)) {
                    machine = machine.with_breaker(b);
                }
                if let Some(b) = budgets.get(owner(c)) {
                    machine = machine.with_budget(b);
                }
                if let Some(l) = limiter_refs.get(owner(c)) {
                    machine = machine.with_limiters(l);
                }
                report.calls += 1;
                let call = Call {
                    machine,
                    client: c,
                    started: now,
                    timer_at: None,
                    reply_at: None,
                };
                match free.pop() {
                    Some(id) => {
                        calls[id as usize] = Some(call);
                        id
                    }
                    None => {
                        calls.push(Some(call));
                        (calls.len() - 1) as u32
                    }
                }
            }
            Ev::Complete { req, attempt, ok } => {
                let Some(Some(call)) = calls.get_mut(req as usize) else {
                    continue;
                };
                call.reply_at = None;
                let head = if ok {
                    ResponseHead::new(200)
                } else {
                    match scenario.rejection {
                        Rejection::TooManyRequests { retry_after_secs } => ResponseHead::new(429)
                            .with_retry_after(
                                Some(RetryAfter::Delay(Duration::from_secs(retry_after_secs))),
                                Some(UnixTime(WALL_ORIGIN + now / SECOND)),
                            ),
                        Rejection::Unavailable => ResponseHead::new(503),
                    }
                };
                call.machine
                    .handle_input(Instant::from_nanos(now), Input::Response { attempt, head });
                req
            }
            Ev::Timer { req } => {
                let Some(Some(call)) = calls.get_mut(req as usize) else {
                    continue;
                };
                if call.timer_at != Some(now) {
                    continue;
                }
                call.timer_at = None;
                call.machine
                    .handle_input(Instant::from_nanos(now), Input::Timer);
                req
            }
        };

        while let Some(Some(call)) = calls.get_mut(req as usize) {
            let action = call.machine.poll_action();
            while let Some(event) = call.machine.poll_event() {
                if let Event::Breaker(t) = event {
                    if t.to == resil_core::BreakerState::Open && owner(call.client) == 0 {
                        report.breaker_opened += 1;
                    }
                }
            }
            match action {
                Action::Send { attempt, deadline } => {
                    report.attempts += 1;
                    let (at, ok) = bucket.admit(now);
                    if !ok {
                        report.rejected += 1;
                    }
                    if let Some(s) = report.second(second) {
                        s.attempts += 1;
                        s.rejected += u64::from(!ok);
                    }
                    push(&mut heap, at, Ev::Complete { req, attempt, ok });
                    if at < deadline.as_nanos() {
                        call.reply_at = Some(at);
                    }
                }
                Action::Cancel { .. } => call.reply_at = None,
                Action::Sleep { until } => {
                    let until = until.as_nanos();
                    if call.reply_at.is_some_and(|t| t <= until) {
                        break;
                    }
                    if call.timer_at != Some(until) && until != u64::MAX {
                        call.timer_at = Some(until);
                        push(&mut heap, until, Ev::Timer { req });
                    }
                    break;
                }
                Action::Done { .. } => {
                    report.succeeded += 1;
                    if let Some(s) = report.second(second) {
                        s.ok += 1;
                    }
                    if now >= warmup && now < end {
                        latencies.push(now - call.started);
                    }
                    calls[req as usize] = None;
                    free.push(req);
                    break;
                }
                Action::Fail(g) => {
                    match g.reason {
                        resil_core::GiveUpReason::CircuitOpen { .. } => report.circuit_open += 1,
                        reason if crate::limiters::is_local_rejection(reason) => {
                            report.local_rejections += 1;
                            if let Some(s) = report.second(second) {
                                s.local_rejections += 1;
                            }
                        }
                        _ => {}
                    }
                    calls[req as usize] = None;
                    free.push(req);
                    break;
                }
            }
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(Duration::ZERO, |n| Duration::from_nanos(*n))
    };
    report.p50 = pct(0.5);
    report.p99 = pct(0.99);
    report
}

/// A uniform draw in [0, 1) from the top 53 bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn exponential(rng: &mut ChaCha8Rng, mean: u64) -> u64 {
    (-(1.0 - unit(rng)).ln() * mean as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LimiterKind;

    fn small() -> OverloadScenario {
        let mut s = OverloadScenario::new(3);
        s.clients = 50;
        s.capacity = 200.0;
        s.duration = Duration::from_secs(20);
        s.warmup = Duration::from_secs(5);
        s
    }

    #[test]
    fn a_bare_fleet_at_three_times_capacity_gets_what_rejections_leave() {
        let s = small();
        let r = run_overload(&s, &OverloadClient::NoRetries);
        // g = C − 0.1·r and g + r = 3C: g = 0.78 C, r/g = 2.86.
        let g = r.goodput(&s);
        assert!((0.72..0.84).contains(&g), "goodput {g}");
        let rps = r.rejections_per_success(&s);
        assert!((2.5..3.3).contains(&rps), "rejections per success {rps}");
        assert!((r.attempts_per_call() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn retrying_every_rejection_serves_less_than_not_retrying() {
        let s = small();
        let bare = run_overload(&s, &OverloadClient::NoRetries).goodput(&s);
        let retries = run_overload(&s, &OverloadClient::RetriesOnly);
        assert!(
            retries.goodput(&s) < bare,
            "{} vs {bare}",
            retries.goodput(&s)
        );
        assert!(retries.attempts_per_call() > 1.5);
    }

    #[test]
    fn the_bucket_queues_within_its_queue_and_then_rejects_at_a_cost() {
        let mut b = Bucket {
            next: 0,
            per_attempt: MILLISECOND,
            reject_cost: MILLISECOND / 10,
            queue: 25 * MILLISECOND,
            latency: 0,
        };
        for i in 0..26 {
            assert_eq!(b.admit(0), (i * MILLISECOND, true));
        }
        assert_eq!(b.admit(0), (MILLISECOND, false));
        assert_eq!(b.next, 26 * MILLISECOND + MILLISECOND / 10);
    }

    #[test]
    fn an_aimd_limit_shared_by_one_process_finds_capacity_without_being_told() {
        // As in the loopback benchmark: one process, 2,000/s (a limit near 50 in flight).
        let mut s = small();
        s.shared = true;
        s.capacity = 2000.0;
        let r = run_overload(&s, &OverloadClient::Limiter(LimiterKind::Aimd));
        assert!(r.goodput(&s) > 0.95, "goodput {}", r.goodput(&s));
        assert!(
            r.rejections_per_success(&s) < 0.1,
            "rejections per success {}",
            r.rejections_per_success(&s)
        );
        assert!(r.local_rejections > 0);
        assert!(
            r.seconds.iter().any(|s| s.limit.is_some()),
            "the limit is charted"
        );
    }

    #[test]
    fn a_concurrency_limit_per_small_client_never_binds_but_a_throttle_does() {
        // 50 clients with about 0.03 attempts in flight each: a limit of 1 is never reached.
        let s = small();
        let aimd = run_overload(&s, &OverloadClient::Limiter(LimiterKind::Aimd));
        let budget = run_overload(&s, &OverloadClient::RetriesAndBudget);
        assert!(aimd.goodput(&s) < 0.85, "goodput {}", aimd.goodput(&s));
        let throttle = run_overload(&s, &OverloadClient::Limiter(LimiterKind::Throttle));
        assert!(throttle.goodput(&s) > budget.goodput(&s));
        assert!(throttle.rejections_per_success(&s) < budget.rejections_per_success(&s));
    }

    #[test]
    fn same_seed_same_run() {
        let s = small();
        let a = run_overload(&s, &OverloadClient::Defaults);
        assert_eq!(a, run_overload(&s, &OverloadClient::Defaults));
    }
}
