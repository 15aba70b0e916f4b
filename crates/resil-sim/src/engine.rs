//! The discrete-event loop: a fake clock that jumps to the next event, real retry machines,
//! a simulated server. Nothing here decides about retries; the machines do.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use resil_core::{
    Action, Attempt, BreakerState, CircuitBreaker, Event, FleetBatch, FleetReply, FleetSync,
    GiveUpReason, Input, Instant, LatencySketch, MemoryStore, Method, RequestInfo, ResponseHead,
    RetryAfter, RetryBudget, RetryMachine, Shared, TransportErrorKind, UnixTime,
};

use crate::report::Report;
use crate::scenario::{Arrivals, Failure, FleetSharing, Latency, Scenario, Scope, ServerProfile};

/// What the server did with one attempt, decided when it is sent (or, for optimistic
/// concurrency, when it completes).
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    RateLimited,
    Error(TransportErrorKind),
    /// Commit if the resource is still at this version.
    Commit(u64),
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrival {
        client: u32,
    },
    Complete {
        req: u32,
        attempt: Attempt,
        reply: Reply,
    },
    Timer {
        req: u32,
    },
    /// A client's fleet sync is due: its batch leaves for the store.
    FleetSync {
        client: u32,
    },
    /// The batch reaches the store.
    FleetAtStore {
        client: u32,
    },
    /// The store's answer (or the lack of one) reaches the client.
    FleetAnswer {
        client: u32,
    },
}

/// The fleet's side of a run: one `FleetSync` per client, one store.
struct Fleet<'s> {
    sharing: &'s FleetSharing,
    store: MemoryStore,
    syncs: Vec<FleetSync>,
    /// When each client's next sync is scheduled (`u64::MAX`: none).
    sync_at: Vec<u64>,
    in_flight: Vec<Option<FleetBatch>>,
    answers: Vec<Option<FleetReply>>,
    /// A breaker transition asked for a sync while one was out.
    wake: Vec<bool>,
}

/// The store's clock is its own: an origin far from the clients' shows that no two clocks are
/// ever compared.
const STORE_ORIGIN_MS: u64 = 1_700_000_000_000;

impl Fleet<'_> {
    fn store_up(&self, now: u64) -> bool {
        !self
            .sharing
            .store_outages
            .iter()
            .any(|o| (nanos(o.start)..nanos(o.end)).contains(&now))
    }
}

type Scheduled = crate::schedule::Scheduled<Ev>;

struct Request<'a> {
    machine: RetryMachine<'a>,
    client: u32,
    started: u64,
    timer_at: Option<u64>,
    /// When each attempt out gets its reply, for those that get one before their deadline
    /// (a hedging call has several out).
    replies: [Option<(u32, u64)>; 4],
}

impl Request<'_> {
    fn reply_at(&self) -> Option<u64> {
        self.replies.iter().flatten().map(|(_, at)| *at).min()
    }

    fn forget_reply(&mut self, attempt: u32) {
        for slot in &mut self.replies {
            if slot.is_some_and(|(a, _)| a == attempt) {
                *slot = None;
            }
        }
    }

    fn expect_reply(&mut self, attempt: u32, at: u64) {
        if let Some(slot) = self.replies.iter_mut().find(|s| s.is_none()) {
            *slot = Some((attempt, at));
        }
    }
}

/// The server's mutable state.
struct Server<'s> {
    profile: &'s ServerProfile,
    workers: BinaryHeap<Reverse<u64>>,
    tokens: f64,
    refilled_at: u64,
    version: u64,
    base_failure: f64,
    timeline_next: usize,
}

const WALL_ORIGIN: u64 = 1_700_000_000;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How long the server takes to refuse an attempt it will not serve.
const MILLISECOND: u64 = 1_000_000;

impl Server<'_> {
    fn latency(&self, rng: &mut ChaCha8Rng) -> u64 {
        match self.profile.latency {
            Latency::Constant(d) => nanos(d),
            Latency::Uniform(lo, hi) => {
                let (lo, hi) = (nanos(lo), nanos(hi).max(nanos(lo)));
                lo + ((u128::from(rng.next_u64()) * (u128::from(hi - lo) + 1)) >> 64) as u64
            }
            Latency::Exponential(mean) => exponential(rng, nanos(mean)),
            Latency::SlowTail {
                fast,
                slow,
                slow_fraction,
                slowest,
                slowest_fraction,
            } => {
                let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                if draw < slowest_fraction {
                    nanos(slowest)
                } else if draw < slowest_fraction + slow_fraction {
                    nanos(slow)
                } else {
                    nanos(fast)
                }
            }
        }
    }

    fn failure_probability(&mut self, now: u64) -> f64 {
        while let Some((at, p)) = self.profile.timeline.get(self.timeline_next) {
            if nanos(*at) > now {
                break;
            }
            self.base_failure = *p;
            self.timeline_next += 1;
        }
        let mut p = self.base_failure;
        for outage in &self.profile.outages {
            let (start, end) = (nanos(outage.start), nanos(outage.end));
            if (start..end).contains(&now) {
                return 1.0;
            }
            let recovery = nanos(self.profile.recovery);
            if recovery > 0 && now >= end && now < end.saturating_add(recovery) {
                let left = 1.0 - (now - end) as f64 / recovery as f64;
                p = p.max(p + (1.0 - p) * left);
            }
        }
        p
    }

    /// Decides one attempt sent at `now`: (when it completes, what it gets), or `None` for
    /// an attempt that never gets an answer.
    fn admit(&mut self, now: u64, rng: &mut ChaCha8Rng) -> Option<(u64, Reply)> {
        if let Some(limit) = self.profile.rate_limit {
            let rate = f64::from(limit.per_second);
            self.tokens = (self.tokens + (now - self.refilled_at) as f64 / 1e9 * rate).min(rate);
            self.refilled_at = now;
            if self.tokens < 1.0 {
                return Some((now.saturating_add(MILLISECOND), Reply::RateLimited));
            }
            self.tokens -= 1.0;
        }
        let service = self.latency(rng);
        let mut done = now.saturating_add(service);
        if let Some(cap) = self.profile.capacity {
            let free_at = self.workers.peek().map_or(now, |Reverse(t)| *t);
            let start = free_at.max(now);
            if start - now > nanos(cap.max_queue_wait) {
                return Some((now.saturating_add(MILLISECOND), Reply::Status(503)));
            }
            self.workers.pop();
            done = start.saturating_add(service);
            self.workers.push(Reverse(done));
        }
        if self.profile.optimistic_concurrency {
            return Some((done, Reply::Commit(self.version)));
        }
        let p = self.failure_probability(now);
        let fails = p > 0.0 && unit(rng) < p;
        if !fails {
            return Some((done, Reply::Status(200)));
        }
        match self.profile.failure {
            Failure::Status(s) => Some((done, Reply::Status(s))),
            Failure::Error(k) => Some((done, Reply::Error(k))),
            Failure::Stall => None,
        }
    }
}

/// FNV-1a over the event log: a fingerprint that must not change between runs.
struct LogHash(u64);

impl LogHash {
    fn add(&mut self, values: &[u64]) {
        for v in values {
            for b in v.to_le_bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
}

/// Runs the scenario to completion (arrivals stop at `duration`; in-flight requests finish).
pub fn run(scenario: &Scenario) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    let policy = &scenario.policy;
    let scopes = |scope: Scope| match scope {
        Scope::Fleet => 1,
        Scope::PerClient => scenario.clients.max(1) as usize,
    };
    let breakers: Vec<Mutex<CircuitBreaker>> = match &scenario.breaker {
        Some((builder, scope)) => (0..scopes(*scope))
            .map(|_| builder.clone().build().map(Mutex::new))
            .collect::<Result<_, _>>()
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // A hedging policy's latency sketch: one per client, as each process keeps its own.
    let sketch = || {
        scenario
            .sketch
            .and_then(|b| b.build().ok())
            .unwrap_or_default()
    };
    let sketches: Vec<Mutex<LatencySketch>> = if policy.hedging().is_some() {
        (0..scenario.clients.max(1))
            .map(|_| Mutex::new(sketch()))
            .collect()
    } else {
        Vec::new()
    };
    let budgets: Vec<Mutex<RetryBudget>> = match &scenario.budget {
        Some((budget, scope)) => (0..scopes(*scope))
            .map(|_| Mutex::new(budget.clone()))
            .collect(),
        None => Vec::new(),
    };
    // Each client's own breaker and budget, shared through the store.
    let per_client = |n: usize| n > 1 || scenario.clients == 1;
    let mut fleet = scenario
        .fleet
        .as_ref()
        .filter(|_| per_client(breakers.len()) || per_client(budgets.len()))
        .map(|sharing| {
            let n = scenario.clients as usize;
            let syncs = (0..n)
                .map(|i| {
                    let mut sync = FleetSync::new(&sharing.policy, i as u64 + 1);
                    let breaker = breakers.get(i).filter(|_| per_client(breakers.len()));
                    let budget = budgets.get(i).filter(|_| per_client(budgets.len()));
                    sync.attach(
                        breaker.map(|b| b as &dyn Shared<CircuitBreaker>),
                        budget.map(|b| b as &dyn Shared<RetryBudget>),
                    );
                    sync
                })
                .collect();
            Fleet {
                sharing,
                store: MemoryStore::new(),
                syncs,
                sync_at: vec![u64::MAX; n],
                in_flight: vec![None; n],
                answers: vec![None; n],
                wake: vec![false; n],
            }
        });
    let fleet_breaker = |i: u32| {
        breakers
            .get(i as usize)
            .filter(|_| per_client(breakers.len()))
            .map(|b| b as &dyn Shared<CircuitBreaker>)
    };
    let fleet_budget = |i: u32| {
        budgets
            .get(i as usize)
            .filter(|_| per_client(budgets.len()))
            .map(|b| b as &dyn Shared<RetryBudget>)
    };
    let mut server = Server {
        profile: &scenario.server,
        workers: (0..scenario.server.capacity.map_or(0, |c| c.workers))
            .map(|_| Reverse(0))
            .collect(),
        tokens: scenario
            .server
            .rate_limit
            .map_or(0.0, |r| f64::from(r.per_second)),
        refilled_at: 0,
        version: 0,
        base_failure: scenario.server.failure_probability,
        timeline_next: 0,
    };
    let end_of_arrivals = nanos(scenario.duration);
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Reverse<Scheduled>>, at: u64, ev: Ev| {
        seq += 1;
        heap.push(Reverse(Scheduled { at, seq, ev }));
    };
    let clients = if scenario.request_limit() == Some(0) {
        0
    } else {
        scenario.clients
    };
    if let Some(f) = &mut fleet {
        // Processes start at different times, so their syncs are out of step. Drawn from an
        // RNG of their own: the calls' draws are those of a run without a fleet.
        let mut phases = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x0066_6c65_6574);
        let interval = nanos(f.sharing.policy.sync_interval()).max(1);
        for client in 0..clients {
            let at = ((u128::from(phases.next_u64()) * u128::from(interval)) >> 64) as u64;
            f.sync_at[client as usize] = at;
            push(&mut heap, at, Ev::FleetSync { client });
        }
    }
    for client in 0..clients {
        let first = match scenario.arrivals_of(client) {
            Arrivals::Fixed(d) => {
                let d = nanos(d).max(1);
                ((u128::from(rng.next_u64()) * u128::from(d)) >> 64) as u64
            }
            Arrivals::Poisson(mean) => exponential(&mut rng, nanos(mean)),
            Arrivals::AtOnce => 0,
        };
        push(&mut heap, first, Ev::Arrival { client });
    }

    let mut report = Report::default();
    let mut hash = LogHash(0xcbf2_9ce4_8422_2325);
    let mut requests: Vec<Option<Request<'_>>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut issued = vec![0u32; scenario.clients as usize];
    let mut latencies: Vec<u64> = Vec::new();
    let mut breaker_state = BreakerState::Closed;

    while let Some(Reverse(Scheduled { at: now, ev, .. })) = heap.pop() {
        let second = (now / 1_000_000_000) as usize;
        let touched: Option<u32> = match ev {
            Ev::Arrival { client } => {
                hash.add(&[now, 1, u64::from(client)]);
                let count = &mut issued[client as usize];
                *count = count.saturating_add(1);
                let more = scenario.request_limit().is_none_or(|n| *count < n);
                if more {
                    let next = match scenario.arrivals_of(client) {
                        Arrivals::Fixed(d) => Some(now.saturating_add(nanos(d).max(1))),
                        Arrivals::Poisson(mean) => {
                            Some(now.saturating_add(exponential(&mut rng, nanos(mean))))
                        }
                        Arrivals::AtOnce => Some(now),
                    };
                    if let Some(next) = next.filter(|t| *t < end_of_arrivals) {
                        push(&mut heap, next, Ev::Arrival { client });
                    }
                }
                let pick = |len: usize| match len {
                    0 => None,
                    1 => Some(0),
                    _ => Some(client as usize),
                };
                let mut machine = RetryMachine::new(
                    policy,
                    RequestInfo::new(Method::Get),
                    Instant::from_nanos(now),
                    rng.next_u64(),
                );
                if let Some(i) = pick(breakers.len()) {
                    machine = machine.with_breaker(&breakers[i]);
                }
                if let Some(i) = pick(budgets.len()) {
                    machine = machine.with_budget(&budgets[i]);
                }
                if let Some(i) = pick(sketches.len()) {
                    machine = machine.with_latency(&sketches[i]);
                }
                let request = Request {
                    machine,
                    client,
                    started: now,
                    timer_at: None,
                    replies: [None; 4],
                };
                report.logical_requests += 1;
                let id = match free.pop() {
                    Some(id) => {
                        requests[id as usize] = Some(request);
                        id
                    }
                    None => {
                        requests.push(Some(request));
                        (requests.len() - 1) as u32
                    }
                };
                Some(id)
            }
            Ev::FleetSync { client } => {
                let c = client as usize;
                let Some(f) = fleet.as_mut().filter(|f| f.sync_at[c] == now) else {
                    continue;
                };
                f.sync_at[c] = u64::MAX;
                // Syncs would go on for ever: they stop once no call arrives or is out.
                if now >= end_of_arrivals && requests.len() == free.len() {
                    continue;
                }
                if f.in_flight[c].is_some() {
                    f.wake[c] = true;
                    continue;
                }
                hash.add(&[now, 6, u64::from(client)]);
                let batch = f.syncs[c].prepare(
                    Instant::from_nanos(now),
                    fleet_breaker(client),
                    fleet_budget(client),
                );
                f.in_flight[c] = Some(batch);
                let at = now.saturating_add(nanos(f.sharing.propagation));
                push(&mut heap, at, Ev::FleetAtStore { client });
                None
            }
            Ev::FleetAtStore { client } => {
                let c = client as usize;
                let Some(f) = fleet.as_mut() else { continue };
                let Some(batch) = f.in_flight[c] else {
                    continue;
                };
                f.answers[c] = f
                    .store_up(now)
                    .then(|| f.store.exchange(STORE_ORIGIN_MS + now / 1_000_000, &batch));
                let at = now.saturating_add(nanos(f.sharing.propagation));
                push(&mut heap, at, Ev::FleetAnswer { client });
                None
            }
            Ev::FleetAnswer { client } => {
                let c = client as usize;
                let Some(f) = fleet.as_mut() else { continue };
                f.in_flight[c] = None;
                let t = Instant::from_nanos(now);
                let (breaker, budget) = (fleet_breaker(client), fleet_budget(client));
                match f.answers[c].take() {
                    Some(reply) => {
                        hash.add(&[now, 7, u64::from(client), 1]);
                        f.syncs[c].apply(t, &reply, breaker, budget);
                        report.fleet_syncs.0 += 1;
                    }
                    None => {
                        hash.add(&[now, 7, u64::from(client), 0]);
                        f.syncs[c].failed(t, breaker, budget);
                        report.fleet_syncs.0 += 1;
                        report.fleet_syncs.1 += 1;
                    }
                }
                while f.syncs[c].poll_event().is_some() {}
                // What the fleet did to the breaker (calls report what they did).
                if let Some(b) = breaker {
                    let mut moved = Vec::new();
                    b.with_mut(&mut |b| {
                        while let Some(t) = b.poll_transition() {
                            moved.push(t);
                        }
                    });
                    for t in moved {
                        let at = Duration::from_nanos(now);
                        report.breaker_moved(client, at, t.from, t.to, false);
                        if client == 0 {
                            breaker_state = t.to;
                            report.transitions.push((at, t.from, t.to));
                        }
                    }
                }
                let mut next = f.syncs[c].poll_timeout().as_nanos().max(now);
                if std::mem::take(&mut f.wake[c]) && f.syncs[c].is_connected() {
                    next = now;
                }
                f.sync_at[c] = next;
                push(&mut heap, next, Ev::FleetSync { client });
                None
            }
            Ev::Complete {
                req,
                attempt,
                reply,
            } => {
                let Some(Some(r)) = requests.get_mut(req as usize) else {
                    continue;
                };
                r.forget_reply(attempt.number());
                let (code, head_status) = match reply {
                    Reply::Status(s) => (u64::from(s), Some(s)),
                    Reply::RateLimited => (429, Some(429)),
                    Reply::Error(_) => (1, None),
                    Reply::Commit(version) if version == server.version => {
                        server.version += 1;
                        (200, Some(200))
                    }
                    Reply::Commit(_) => (409, Some(409)),
                };
                hash.add(&[now, 2, u64::from(req), u64::from(attempt.number()), code]);
                if let Some(bucket) = report.second(second) {
                    match head_status {
                        Some(s) if s < 400 => bucket.ok += 1,
                        _ => bucket.failed += 1,
                    }
                }
                let input = match (reply, head_status) {
                    (Reply::Error(kind), _) => Input::Error { attempt, kind },
                    (Reply::RateLimited, _) => {
                        let secs = scenario
                            .server
                            .rate_limit
                            .map_or(1, |l| l.retry_after.as_secs());
                        let head = ResponseHead::new(429).with_retry_after(
                            Some(RetryAfter::Delay(Duration::from_secs(secs))),
                            Some(UnixTime(WALL_ORIGIN + now / 1_000_000_000)),
                        );
                        Input::Response { attempt, head }
                    }
                    (_, status) => Input::Response {
                        attempt,
                        head: ResponseHead::new(status.unwrap_or(500)),
                    },
                };
                r.machine.handle_input(Instant::from_nanos(now), input);
                Some(req)
            }
            Ev::Timer { req } => {
                let Some(Some(r)) = requests.get_mut(req as usize) else {
                    continue;
                };
                if r.timer_at != Some(now) {
                    continue;
                }
                r.timer_at = None;
                hash.add(&[now, 3, u64::from(req)]);
                r.machine
                    .handle_input(Instant::from_nanos(now), Input::Timer);
                Some(req)
            }
        };
        let Some(req) = touched else { continue };

        // Carry out the machine's actions until it waits or finishes.
        while let Some(Some(r)) = requests.get_mut(req as usize) {
            let action = r.machine.poll_action();
            while let Some(event) = r.machine.poll_event() {
                match event {
                    Event::RetryScheduled { retry_after, .. } => {
                        report.retries += 1;
                        if retry_after.is_some() {
                            report.retry_after_honoured += 1;
                        }
                    }
                    Event::Breaker(t) => {
                        let at = Duration::from_nanos(now);
                        let owner = if breakers.len() > 1 { r.client } else { 0 };
                        report.breaker_moved(owner, at, t.from, t.to, true);
                        if owner == 0 {
                            breaker_state = t.to;
                            report.transitions.push((at, t.from, t.to));
                        }
                        // A trip is published at once, as a client's call wakes its link.
                        if let Some(f) = fleet.as_mut() {
                            let c = r.client as usize;
                            if f.in_flight[c].is_some() {
                                f.wake[c] = true;
                            } else if f.syncs[c].is_connected() && f.sync_at[c] > now {
                                f.sync_at[c] = now;
                                push(&mut heap, now, Ev::FleetSync { client: r.client });
                            }
                        }
                    }
                    Event::GaveUp(g) => {
                        *report.give_ups.entry(reason_name(g.reason)).or_default() += 1
                    }
                    Event::HedgeSent { .. } => report.hedges += 1,
                    Event::HedgeWon { .. } => report.hedge_wins += 1,
                    Event::Cancelled { .. } => report.cancelled += 1,
                    _ => {}
                }
            }
            match action {
                Action::Send { attempt, deadline } => {
                    report.attempts += 1;
                    if let Some(bucket) = report.second(second) {
                        bucket.attempts += 1;
                    }
                    hash.add(&[now, 4, u64::from(req), u64::from(attempt.number())]);
                    if let Some((done, reply)) = server.admit(now, &mut rng) {
                        // A reply after the deadline still loads the server; the machine
                        // ignores it as the answer of an abandoned attempt.
                        push(
                            &mut heap,
                            done,
                            Ev::Complete {
                                req,
                                attempt,
                                reply,
                            },
                        );
                        if done < deadline.as_nanos() {
                            r.expect_reply(attempt.number(), done);
                        }
                    }
                }
                // The server still does the work; the machine ignores the late reply.
                Action::Cancel { attempt } => {
                    hash.add(&[now, 5, u64::from(req), u64::from(attempt.number())]);
                    r.forget_reply(attempt.number());
                }
                Action::Sleep { until } => {
                    let until = until.as_nanos();
                    // The reply comes before the deadline: it wakes the machine, and a timer
                    // would only sit in the heap (a million of them at 100k requests/s).
                    if r.reply_at().is_some_and(|t| t <= until) {
                        break;
                    }
                    if r.timer_at != Some(until) && until != u64::MAX {
                        r.timer_at = Some(until);
                        push(&mut heap, until, Ev::Timer { req });
                    }
                    break;
                }
                Action::Done { .. } => {
                    report.succeeded += 1;
                    report.completion = report.completion.max(Duration::from_nanos(now));
                    latencies.push(now - r.started);
                    requests[req as usize] = None;
                    free.push(req);
                    break;
                }
                Action::Fail(g) => {
                    report.failed += 1;
                    if matches!(g.reason, GiveUpReason::CircuitOpen { .. }) {
                        if let Some(bucket) = report.second(second) {
                            bucket.rejected += 1;
                        }
                    }
                    latencies.push(now - r.started);
                    requests[req as usize] = None;
                    free.push(req);
                    break;
                }
            }
        }
        if let Some(bucket) = report.second(second) {
            bucket.breaker = breaker_state;
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
    report.p999 = pct(0.999);
    report.max = latencies
        .last()
        .map_or(Duration::ZERO, |n| Duration::from_nanos(*n));
    report.log_hash = hash.0;
    report
}

/// A uniform draw in [0, 1) from the top 53 bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn exponential(rng: &mut ChaCha8Rng, mean: u64) -> u64 {
    (-(1.0 - unit(rng)).ln() * mean as f64) as u64
}

fn reason_name(reason: GiveUpReason) -> &'static str {
    match reason {
        GiveUpReason::AttemptsExhausted => "attempts exhausted",
        GiveUpReason::KindExhausted { .. } => "kind retries exhausted",
        GiveUpReason::DeadlineExceeded => "deadline",
        GiveUpReason::RetryAfterTooLong { .. } => "retry-after too long",
        GiveUpReason::NotRetryable => "not retryable",
        GiveUpReason::NonIdempotent => "non-idempotent",
        GiveUpReason::BodyNotReplayable => "body not replayable",
        GiveUpReason::BudgetExhausted => "budget exhausted",
        GiveUpReason::CircuitOpen { .. } => "circuit open",
        _ => "other",
    }
}
