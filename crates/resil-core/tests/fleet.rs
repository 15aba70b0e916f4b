//! Fleets sharing a breaker and budget through `MemoryStore`, on a fake clock: every process
//! runs the real breaker and `FleetSync`; the test is the network, the backend and the store.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Mutex;
use std::time::Duration;

use resil_core::{
    BreakerState, CallOutcome, Cause, CircuitBreaker, FleetBatch, FleetEvent, FleetPolicy,
    FleetReply, FleetSync, FleetTrip, HalfOpen, Instant, LeaseAnswer, LeaseRequest, MAX_FLEET_OPEN,
    MemoryStore, RetryBudget, TripCondition, Window,
};

const MS: Duration = Duration::from_millis(1);

struct Node {
    breaker: Mutex<CircuitBreaker>,
    budget: Mutex<RetryBudget>,
    sync: FleetSync,
    /// A call every this many milliseconds (0: none).
    every: u64,
    /// Still running (a dead process neither calls nor syncs).
    alive: bool,
    /// When its breaker first opened.
    opened_at: Option<Instant>,
    events: Vec<(Instant, FleetEvent)>,
}

struct World {
    now: Instant,
    store: MemoryStore,
    store_up: bool,
    /// The store's clock minus ours: any offset must do.
    store_offset_ms: u64,
    backend_up: bool,
    nodes: Vec<Node>,
    /// Calls that reached the backend while it was down.
    attempts_down: u64,
    /// Half-open periods' first probes that reached the backend, with when.
    probes: Vec<(Instant, usize)>,
    batches: Vec<FleetBatch>,
}

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder()
        .open_for(Duration::from_secs(1))
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .build()
        .unwrap()
}

impl World {
    fn new(rates: &[u64], policy: &FleetPolicy) -> World {
        World::with(rates, policy, breaker)
    }

    fn with(rates: &[u64], policy: &FleetPolicy, make: fn() -> CircuitBreaker) -> World {
        let nodes = rates
            .iter()
            .enumerate()
            .map(|(i, &every)| {
                let breaker = Mutex::new(make());
                let budget = Mutex::new(RetryBudget::finagle());
                let mut sync = FleetSync::new(policy, 1000 + i as u64);
                sync.attach(Some(&breaker), Some(&budget));
                Node {
                    breaker,
                    budget,
                    sync,
                    every,
                    alive: true,
                    opened_at: None,
                    events: Vec::new(),
                }
            })
            .collect();
        World {
            now: Instant::ZERO,
            store: MemoryStore::new(),
            store_up: true,
            store_offset_ms: 1_700_000_000_000,
            backend_up: true,
            nodes,
            attempts_down: 0,
            probes: Vec::new(),
            batches: Vec::new(),
        }
    }

    fn state(&self, i: usize) -> BreakerState {
        self.nodes[i].breaker.lock().unwrap().state()
    }

    /// One call through node `i`'s breaker.
    fn call(&mut self, i: usize) {
        let now = self.now;
        let up = self.backend_up;
        let node = &mut self.nodes[i];
        let mut b = node.breaker.lock().unwrap();
        let before = b.state();
        let Ok(permit) = b.try_acquire(now) else {
            return;
        };
        // A half-open period's first probe (a progressive half-open's later shares are its
        // ramp, not probes).
        if permit.is_probe() && before == BreakerState::Open {
            self.probes.push((now, i));
        }
        if !up {
            self.attempts_down += 1;
        }
        let outcome = if up {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        };
        b.record(now, permit, outcome);
        if b.state() == BreakerState::Open && node.opened_at.is_none() {
            node.opened_at = Some(now);
        }
    }

    fn sync(&mut self, i: usize) {
        let now = self.now;
        let store_now = now.as_nanos() / 1_000_000 + self.store_offset_ms;
        let node = &mut self.nodes[i];
        let batch = node
            .sync
            .prepare(now, Some(&node.breaker), Some(&node.budget));
        self.batches.push(batch);
        if self.store_up {
            let reply = self.store.exchange(store_now, &batch);
            node.sync
                .apply(now, &reply, Some(&node.breaker), Some(&node.budget));
        } else {
            node.sync
                .failed(now, Some(&node.breaker), Some(&node.budget));
        }
        while let Some(e) = node.sync.poll_event() {
            node.events.push((now, e));
        }
        let b = node.breaker.lock().unwrap();
        if b.state() == BreakerState::Open && node.opened_at.is_none() {
            node.opened_at = Some(now);
        }
    }

    /// Runs the world 1 ms at a time for `d`.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = self.now + MS;
            let ms = self.now.as_nanos() / 1_000_000;
            for i in 0..self.nodes.len() {
                let n = &self.nodes[i];
                if !n.alive {
                    continue;
                }
                // Calls are spread: node i's come at its own phase.
                if n.every > 0 && (ms + i as u64 * 7) % n.every == 0 {
                    self.call(i);
                }
                if self.nodes[i].sync.poll_timeout() <= self.now {
                    self.sync(i);
                }
            }
        }
    }

    fn events(&self, i: usize) -> Vec<FleetEvent> {
        self.nodes[i].events.iter().map(|(_, e)| *e).collect()
    }
}

fn policy() -> FleetPolicy {
    FleetPolicy::builder().build().unwrap()
}

#[test]
fn a_quiet_process_opens_within_one_sync_interval_of_the_first() {
    // Seven busy processes and one that calls once a second.
    let mut w = World::new(&[1, 1, 1, 1, 1, 1, 1, 1000], &policy());
    w.run(Duration::from_secs(2));
    w.backend_up = false;
    w.run(Duration::from_millis(500));
    let first = w.nodes.iter().filter_map(|n| n.opened_at).min().unwrap();
    let quiet = w.nodes[7].opened_at.expect("the quiet process opened");
    assert!(
        quiet - first <= Duration::from_millis(100) + MS,
        "quiet process opened {:?} after the first",
        quiet - first
    );
    assert!(
        w.events(7)
            .iter()
            .any(|e| matches!(e, FleetEvent::Opened { .. } | FleetEvent::Tripped)),
        "{:?}",
        w.events(7)
    );
}

#[test]
fn one_failing_process_does_not_open_the_fleet() {
    let mut w = World::new(&[1, 1, 1, 1], &policy());
    w.run(Duration::from_secs(1));
    // Only process 0's calls fail (its own network is broken): a backend of its own.
    for _ in 0..2000 {
        w.now = w.now + MS;
        {
            let n = &w.nodes[0];
            let mut b = n.breaker.lock().unwrap();
            if let Ok(p) = b.try_acquire(w.now) {
                b.record(w.now, p, CallOutcome::Failure);
            }
        }
        for i in 1..4 {
            w.call(i);
        }
        for i in 0..4 {
            if w.nodes[i].sync.poll_timeout() <= w.now {
                w.sync(i);
            }
        }
    }
    assert_ne!(w.state(0), BreakerState::Closed, "its own breaker trips");
    for i in 1..4 {
        assert_eq!(w.state(i), BreakerState::Closed, "process {i} stays closed");
        assert!(
            !w.events(i)
                .iter()
                .any(|e| matches!(e, FleetEvent::Opened { .. }))
        );
    }
}

#[test]
fn the_fleet_sends_one_probe_per_open_period() {
    let mut w = World::new(&[1; 10], &policy());
    w.run(Duration::from_secs(1));
    w.backend_up = false;
    w.run(Duration::from_secs(10));
    // Every open period (1 s) admits one probe fleet-wide, and only once all are open.
    let all_open = w.nodes.iter().filter_map(|n| n.opened_at).max().unwrap();
    let probes: Vec<_> = w.probes.iter().filter(|(t, _)| *t > all_open).collect();
    assert!(
        (7..=10).contains(&probes.len()),
        "{} probes in ~9 s: {probes:?}",
        probes.len()
    );
    for pair in probes.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(900),
            "two probes within one open period: {pair:?}"
        );
    }
    // Local-only, each of the ten would have probed every period.
    assert!(w.attempts_down < 10 * 30, "{} attempts", w.attempts_down);
}

#[test]
fn after_the_fleets_probe_passes_the_others_ramp_without_probing() {
    let mut w = World::new(&[1; 5], &policy());
    w.run(Duration::from_secs(1));
    w.backend_up = false;
    w.run(Duration::from_secs(3));
    w.backend_up = true;
    let probes_before = w.probes.len();
    w.run(Duration::from_millis(1300));
    assert_eq!(
        w.probes.len() - probes_before,
        1,
        "one probe for the recovery"
    );
    for i in 0..5 {
        assert_eq!(w.state(i), BreakerState::HalfOpen, "process {i} ramps");
    }
    let recovered = (0..5)
        .filter(|&i| w.events(i).contains(&FleetEvent::Recovered))
        .count();
    assert_eq!(recovered, 4, "all but the prober learned it from the fleet");
    // The progressive stages close every breaker in time.
    w.run(Duration::from_secs(8));
    for i in 0..5 {
        assert_eq!(w.state(i), BreakerState::Closed, "process {i}");
    }
}

#[test]
fn a_lease_whose_holder_died_expires() {
    let mut w = World::new(&[1; 3], &policy());
    w.run(Duration::from_secs(1));
    w.backend_up = false;
    w.run(Duration::from_millis(1500));
    // Kill whoever holds the lease, right after it was granted and before it probes.
    let holder = loop {
        w.now = w.now + MS;
        let mut found = None;
        for i in 0..3 {
            if w.nodes[i].sync.poll_timeout() <= w.now {
                w.sync(i);
                if w.events(i).last() == Some(&FleetEvent::ProbeGranted) {
                    found = Some(i);
                    break;
                }
            }
            w.call(i);
        }
        if let Some(i) = found {
            break i;
        }
    };
    w.nodes[holder].alive = false;
    let killed_at = w.now;
    let probes_before = w.probes.len();
    w.run(Duration::from_millis(2500));
    let next = w.probes[probes_before..]
        .first()
        .copied()
        .expect("a later probe");
    assert_ne!(next.1, holder);
    // It waited for the lease's time to live (the 1 s open period), no longer than a sync
    // interval past it.
    let waited = next.0 - killed_at;
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_millis(1300),
        "{waited:?}"
    );
}

#[test]
fn an_unreachable_store_leaves_each_process_to_itself_and_it_rejoins() {
    let mut w = World::new(&[1, 1, 1], &policy());
    w.run(Duration::from_secs(1));
    w.store_up = false;
    w.backend_up = false;
    w.run(Duration::from_secs(3));
    // Each breaker tripped and probes on its own: no lease to wait for.
    for i in 0..3 {
        let n = w.probes.iter().filter(|(_, p)| *p == i).count();
        assert!(n >= 2, "process {i} probed {n} times alone");
        let degraded = w
            .events(i)
            .iter()
            .filter(|e| **e == FleetEvent::Degraded)
            .count();
        assert_eq!(degraded, 1, "said once");
    }
    w.store_up = true;
    w.backend_up = true;
    w.run(Duration::from_secs(3));
    for i in 0..3 {
        assert!(w.events(i).contains(&FleetEvent::Rejoined));
        assert!(w.nodes[i].sync.is_connected());
    }
}

#[test]
fn after_a_reconnect_only_fresh_counts_are_published() {
    let mut w = World::new(&[1], &policy());
    w.run(Duration::from_millis(500));
    w.store_up = false;
    w.run(Duration::from_secs(5));
    let calls_while_down: u32 = w.batches.iter().rev().take(3).map(|b| b.calls).sum();
    assert_eq!(
        calls_while_down, 0,
        "batches prepared while down carry no counts"
    );
    w.store_up = true;
    let before = w.batches.len();
    w.run(Duration::from_secs(3));
    // The first batch after the store came back is the reconnect (no counts: they may span
    // seconds); then each carries one interval's worth.
    let after = &w.batches[before..];
    assert_eq!(after[0].calls, 0);
    assert!(after[1..].iter().all(|b| b.calls <= 101), "{:?}", after[1]);
}

#[test]
fn a_ratio_breaker_trips_on_the_fleets_ratio_and_minimum_calls() {
    // Each process alone never gets 40 calls in its 1 s window; the fleet of 5 does.
    let ratio = || {
        CircuitBreaker::builder()
            .trip(TripCondition::FailureRatio {
                ratio: 0.5,
                min_calls: 40,
                window: Window::Time(Duration::from_secs(1)),
            })
            .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
            .build()
            .unwrap()
    };
    let mut w = World::with(&[40; 5], &policy(), ratio);
    w.backend_up = false;
    w.run(Duration::from_millis(1500));
    for i in 0..5 {
        assert_eq!(w.state(i), BreakerState::Open, "process {i}");
        assert!(w.events(i).iter().any(|e| matches!(
            e,
            FleetEvent::Tripped | FleetEvent::Opened { .. } | FleetEvent::Announced { .. }
        )));
    }
}

#[test]
fn open_periods_come_from_the_stores_time_to_live_whatever_its_clock() {
    for offset in [0, 5, 1_700_000_000_000, u64::MAX / 4] {
        let mut w = World::new(&[1, 1, 1, 0], &policy());
        w.store_offset_ms = offset;
        w.run(Duration::from_secs(1));
        w.backend_up = false;
        w.run(Duration::from_millis(300));
        let quiet = w.nodes[3].breaker.lock().unwrap().rejects_until();
        let until = quiet.expect("the idle process is open");
        let left = until - w.now;
        assert!(
            left > Duration::from_millis(600) && left <= Duration::from_secs(1),
            "offset {offset}: {left:?} left"
        );
    }
}

#[test]
fn a_garbage_reply_counts_as_a_failed_sync() {
    let b = Mutex::new(breaker());
    let mut sync = FleetSync::new(&policy(), 7);
    sync.attach(Some(&b), None);
    let now = Instant::from_secs(1);
    let _ = sync.prepare(now, Some(&b), None);
    let mut reply = FleetReply::default();
    reply.open = Some(resil_core::FleetOpen {
        generation: 3,
        remaining: MAX_FLEET_OPEN + MS,
    });
    sync.apply(now, &reply, Some(&b), None);
    assert_eq!(sync.poll_event(), Some(FleetEvent::Degraded));
    assert_eq!(b.lock().unwrap().state(), BreakerState::Closed);
    assert!(!sync.is_connected());
}

#[test]
fn the_store_answers_each_lease_to_one_token_at_a_time() {
    let mut store = MemoryStore::new();
    let ask = |token| {
        let mut b = FleetBatch::default();
        b.lease = LeaseRequest::Acquire {
            token,
            ttl: Duration::from_secs(1),
        };
        b.window = Duration::from_secs(10);
        b.keep = Duration::from_secs(20);
        b
    };
    assert_eq!(store.exchange(100, &ask(1)).lease, LeaseAnswer::Granted);
    assert_eq!(
        store.exchange(400, &ask(2)).lease,
        LeaseAnswer::Held {
            remaining: Duration::from_millis(700)
        }
    );
    assert_eq!(store.exchange(500, &ask(1)).lease, LeaseAnswer::Granted);
    assert_eq!(
        store.exchange(1100, &ask(2)).lease,
        LeaseAnswer::Granted,
        "expired"
    );
    let mut release = FleetBatch::default();
    release.lease = LeaseRequest::Release {
        token: 1,
        passed: true,
    };
    let r = store.exchange(1200, &release);
    assert_eq!(r.lease, LeaseAnswer::None);
    assert_eq!(
        store.exchange(1300, &ask(3)).lease,
        LeaseAnswer::Held {
            remaining: Duration::from_millis(800)
        },
        "a stale token does not free another's lease"
    );
}

#[test]
fn the_fleets_budget_bounds_every_processes_retries_together() {
    // Ten processes, a 20 % + 10/s budget over 10 s: the fleet leases at most 20 % of its
    // first attempts plus 100, whoever asks.
    let mut w = World::new(&[10; 10], &policy());
    let mut granted = 0u64;
    let mut first_attempts = 0u64;
    for step in 0..5000u64 {
        w.now = w.now + MS;
        for i in 0..10 {
            if (step + i as u64) % 10 == 0 {
                let mut b = w.nodes[i].budget.lock().unwrap();
                b.record_attempt(w.now, None, true);
                first_attempts += 1;
                while b.try_withdraw_after(w.now, Cause::Status(503)) {
                    granted += 1;
                }
            }
            if w.nodes[i].sync.poll_timeout() <= w.now {
                w.sync(i);
            }
        }
    }
    let bound = first_attempts / 5 + 100 + 10 * 20;
    assert!(granted <= bound, "{granted} retries > {bound}");
    assert!(granted >= first_attempts / 5, "{granted} retries");
}

#[test]
fn a_process_with_a_lease_of_retries_keeps_them_when_the_store_goes() {
    let mut w = World::new(&[1], &policy());
    w.run(Duration::from_millis(300));
    let leased = w.nodes[0].budget.lock().unwrap().available(w.now);
    assert!(leased > 0);
    w.store_up = false;
    w.run(Duration::from_millis(200));
    // Back on the local rule: 20 % of its first attempts + 10/s.
    let local = w.nodes[0].budget.lock().unwrap().available(w.now);
    assert!(local >= 100, "{local}");
}

#[test]
fn a_fleet_trip_condition_can_be_set_apart_from_the_breakers() {
    let policy = FleetPolicy::builder()
        .trip(FleetTrip::ConsecutiveFailures(50))
        .min_nodes(2)
        .build()
        .unwrap();
    let mut w = World::new(&[1, 1, 0], &policy);
    w.backend_up = false;
    w.run(Duration::from_millis(150));
    // 5 local failures trip both busy ones; the fleet saw ~10 failures in a row: not 50.
    assert_eq!(w.state(2), BreakerState::Closed);
    assert!(FleetPolicy::builder().min_nodes(0).build().is_err());
    assert!(
        FleetPolicy::builder()
            .sync_interval(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        FleetPolicy::builder()
            .trip(FleetTrip::FailureRatio {
                ratio: 1.5,
                min_calls: 1
            })
            .build()
            .is_err()
    );
}

#[test]
fn one_processes_older_success_does_not_end_anothers_run_of_failures() {
    // Three busy processes' batches for the same interval: successes, then five failures
    // each (the outage began mid-interval). Each run counts; the fleet's is fifteen.
    let mut store = MemoryStore::new();
    let batch = |node, successes, trailing| {
        let mut b = FleetBatch::default();
        b.node = node;
        b.window = Duration::from_secs(10);
        b.keep = Duration::from_secs(20);
        b.calls = successes + trailing;
        b.failures = trailing;
        b.successes = successes;
        b.trailing_failures = trailing;
        b.failing = trailing > 0;
        b
    };
    let mut reply = FleetReply::default();
    for node in 1..=3 {
        reply = store.exchange(1_000, &batch(node, 100, 5));
    }
    assert_eq!((reply.streak_failures, reply.streak_nodes), (15, 3));
    // A success ends only its own process's run.
    let reply = store.exchange(1_050, &batch(2, 1, 0));
    assert_eq!((reply.streak_failures, reply.streak_nodes), (10, 2));
}
