//! Fleet-shared breaker and budget state, sans-IO: a fleet of processes learns of an outage
//! once.
//!
//! A [`FleetSync`] sits beside one shared [`CircuitBreaker`] and (optionally) one
//! [`RetryBudget`]. Calls never see it: they use the breaker and budget as always. A driver
//! runs a loop on its own task or thread:
//!
//! 1. At [`poll_timeout`](FleetSync::poll_timeout) (every sync interval, at the end of an open
//!    period, or at once after a trip), take a [`FleetBatch`] with
//!    [`prepare`](FleetSync::prepare): the outcomes counted since the last batch, whether this
//!    process announces an open, asks for or returns the probe lease, and the budget's
//!    deposits and wish for leased retries.
//! 2. Send it to the fleet's store, which applies it atomically and answers a [`FleetReply`]
//!    (resil-redis does this with one Lua script, `EVALSHA`, on Redis).
//! 3. Hand the reply to [`apply`](FleetSync::apply), or report that there was none with
//!    [`failed`](FleetSync::failed): the breaker and budget then go on alone, as without a
//!    fleet, until a later sync succeeds.
//! 4. Drain [`poll_event`](FleetSync::poll_event) for logs and statistics.
//!
//! What the fleet decides, and how:
//!
//! - **Counts.** Each batch carries the closed breaker's calls and failures since the last
//!   one; the store adds them to buckets on *its* clock (Redis server time) and answers the
//!   fleet's totals over the window, so no two hosts' wall clocks are ever compared. The fleet
//!   trips this process's breaker on the same kind of condition the breaker has: a failure
//!   ratio with a minimum of calls, or the processes' runs of failures, each since its own last
//!   success, summed (one process's older success must not end another's run)
//!   ([`FleetTrip`]).
//! - **One bad node does not open everyone's breaker.** A trip needs failures seen by at
//!   least [`min_nodes`](FleetPolicyBuilder::min_nodes) distinct processes (or all of them, in
//!   a smaller fleet): one process with a broken network trips only its own breaker.
//! - **Opens.** A process whose breaker the fleet tripped, or whose probe failed, announces
//!   the open with its remaining time; the store keeps it under a new generation with that
//!   time to live, and every process opens for the *remaining* time it reads back. Durations
//!   come from the store's TTLs, never from comparing clocks across hosts.
//! - **One probe for the fleet.** At the end of an open period a process asks for the probe
//!   lease (`SET NX PX` with a token of its own, for the breaker's open period); the holder
//!   alone half-opens, the others stay open until the lease's end. A lease whose holder died
//!   expires. A probe that passes counts as a recovery for the whole fleet: the others skip
//!   their own probe and start at the first share of a progressive half-open
//!   ([`HalfOpen::Progressive`](crate::HalfOpen): 0.1 %, 1 %, 5 %, 10 %, 25 %, 50 % of calls),
//!   so a thousand processes do not send their full load in one step.
//! - **Budget.** A ratio budget's retries come from the fleet's bucket, applying the same
//!   rule (ratio of first attempts plus a reserve per window) to the fleet's totals: each
//!   process leases a few retries at a time and returns its first attempts as deposits.
//!   Token-bucket and quota budgets stay local.
//! - **The store failing.** A failed sync puts the breaker and budget back on their own
//!   judgement at once (a probe needs no lease, retries follow the local rule); the next
//!   successful sync rejoins. A batch prepared while the store is unreachable carries no
//!   counts: after a reconnect only fresh outcomes are published, never stale ones.
//!
//! [`MemoryStore`] is the store's reference model; the simulator runs on it, the tests below
//! drive fleets through it on a fake clock, and resil-redis checks its Lua script against it.
//!
//! ```
//! use core::time::Duration;
//! use resil_core::{
//!     BreakerState, CallOutcome, CircuitBreaker, FleetPolicy, FleetSync, HalfOpen, Instant,
//!     MemoryStore,
//! };
//! use std::sync::Mutex;
//!
//! let breaker = || {
//!     CircuitBreaker::builder()
//!         .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
//!         .build()
//!         .map(Mutex::new)
//! };
//! let (a, b) = (breaker()?, breaker()?);
//! let policy = FleetPolicy::builder().min_nodes(1).build()?;
//! let (mut sync_a, mut sync_b) = (FleetSync::new(&policy, 1), FleetSync::new(&policy, 2));
//! sync_a.attach(Some(&a), None);
//! sync_b.attach(Some(&b), None);
//! let mut store = MemoryStore::new();
//!
//! // Process a sees five failures; process b has no traffic at all.
//! let mut now = Instant::ZERO;
//! for _ in 0..5 {
//!     let mut guard = a.lock().unwrap();
//!     let permit = guard.try_acquire(now)?;
//!     guard.record(now, permit, CallOutcome::Failure);
//! }
//! assert_eq!(a.lock().unwrap().state(), BreakerState::Open);
//! // a's next sync counts them and, the fleet agreeing, announces the open; b learns of it
//! // at its next sync, one interval later at most.
//! for _ in 0..3 {
//!     now = now + Duration::from_millis(100);
//!     for (sync, breaker) in [(&mut sync_a, &a), (&mut sync_b, &b)] {
//!         let batch = sync.prepare(now, Some(breaker), None);
//!         let reply = store.exchange(now.as_nanos() / 1_000_000, &batch);
//!         sync.apply(now, &reply, Some(breaker), None);
//!     }
//! }
//! assert_eq!(b.lock().unwrap().state(), BreakerState::Open);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use core::fmt;
use core::time::Duration;

use crate::breaker::{BreakerReport, BreakerState, CircuitBreaker, FleetOrder};
use crate::budget::{ONE, RetryBudget, to_ppm};
use crate::error::PolicyError;
use crate::shared::Shared;
use crate::splitmix::mix;
use crate::time::{Instant, duration_to_nanos};

/// Buckets in the fleet's window, as in a breaker's time window.
const BUCKETS: u64 = 10;
/// The longest open period the fleet can order: a longer remaining time read back from the
/// store is garbage, and the sync counts as failed.
pub const MAX_FLEET_OPEN: Duration = Duration::from_secs(3600);

/// When the fleet's counts trip a process's breaker. Either way, failures must come from at
/// least [`min_nodes`](FleetPolicyBuilder::min_nodes) distinct processes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FleetTrip {
    /// This many failures anywhere in the fleet since any process last reported a success.
    ConsecutiveFailures(u32),
    /// Over the fleet's window, at least `min_calls` calls, `ratio` (in `(0, 1]`) of them
    /// failures.
    FailureRatio {
        /// Failure fraction that trips.
        ratio: f64,
        /// Calls in the fleet's window before the ratio counts.
        min_calls: u32,
    },
}

/// How a fleet shares a breaker and budget. Build with [`FleetPolicy::builder`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleetPolicy {
    sync_interval: Duration,
    trip: Option<FleetTrip>,
    min_nodes: u32,
    window: Option<Duration>,
    lease_ttl: Option<Duration>,
    max_lease: u32,
    max_backoff: Duration,
}

impl Default for FleetPolicy {
    fn default() -> Self {
        FleetPolicy {
            sync_interval: Duration::from_millis(100),
            trip: None,
            min_nodes: 3,
            window: None,
            lease_ttl: None,
            max_lease: 20,
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl FleetPolicy {
    /// A builder with the defaults listed on [`FleetPolicyBuilder`].
    pub fn builder() -> FleetPolicyBuilder {
        FleetPolicyBuilder(FleetPolicy::default())
    }

    /// How often a process syncs with its fleet.
    pub fn sync_interval(&self) -> Duration {
        self.sync_interval
    }
}

/// Builds a [`FleetPolicy`]. Defaults: sync every 100 ms; trip on the breaker's own kind of
/// condition (its consecutive failures counted fleet-wide, or its ratio and minimum calls over
/// its window, 10 s for a count window); failures from at least 3 processes (all of them in a
/// smaller fleet); the probe lease lives one open period of the breaker (`open_for`); up to
/// 20 retries leased at once; after a failed sync, retry after one interval, doubling up to
/// 2 s.
#[derive(Clone, Copy, Debug)]
pub struct FleetPolicyBuilder(FleetPolicy);

impl FleetPolicyBuilder {
    /// How often to sync (at least 1 ms). Calls never wait for a sync; a shorter interval
    /// spreads news faster for more store traffic.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.0.sync_interval = interval;
        self
    }

    /// Trips on this condition instead of the breaker's own kind.
    pub fn trip(mut self, trip: FleetTrip) -> Self {
        self.0.trip = Some(trip);
        self
    }

    /// Failures from at least this many distinct processes are needed to trip the fleet (in a
    /// fleet of fewer, failures from all of them). 1 lets any one process's failures trip
    /// everyone.
    pub fn min_nodes(mut self, nodes: u32) -> Self {
        self.0.min_nodes = nodes;
        self
    }

    /// The fleet's counting window for a ratio trip (10 buckets on the store's clock).
    pub fn window(mut self, window: Duration) -> Self {
        self.0.window = Some(window);
        self
    }

    /// How long a probe lease lives if its holder never reports (it dies, or its probe never
    /// ends). Default: the breaker's first open period.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.0.lease_ttl = Some(ttl);
        self
    }

    /// The most retries a process leases from the fleet's bucket at once (at least 1).
    pub fn max_lease(mut self, retries: u32) -> Self {
        self.0.max_lease = retries;
        self
    }

    /// The longest wait between sync attempts while the store cannot be reached.
    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.0.max_backoff = wait;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<FleetPolicy, PolicyError> {
        let p = self.0;
        if p.sync_interval < Duration::from_millis(1) {
            return Err(PolicyError::new(
                "fleet.sync_interval",
                "must be at least 1 ms",
            ));
        }
        if p.min_nodes == 0 {
            return Err(PolicyError::new("fleet.min_nodes", "must be at least 1"));
        }
        match p.trip {
            Some(FleetTrip::ConsecutiveFailures(0)) => {
                return Err(PolicyError::new(
                    "fleet.trip",
                    "consecutive failures must be at least 1",
                ));
            }
            Some(FleetTrip::FailureRatio { ratio, .. }) if !(ratio > 0.0 && ratio <= 1.0) => {
                return Err(PolicyError::new(
                    "fleet.trip",
                    "failure ratio must be in (0, 1]",
                ));
            }
            _ => {}
        }
        if p.window.is_some_and(|w| w < Duration::from_millis(10)) {
            return Err(PolicyError::new("fleet.window", "must be at least 10 ms"));
        }
        if p.lease_ttl
            .is_some_and(|t| t < Duration::from_millis(1) || t > MAX_FLEET_OPEN)
        {
            return Err(PolicyError::new(
                "fleet.lease_ttl",
                "must be between 1 ms and an hour",
            ));
        }
        if p.max_lease == 0 {
            return Err(PolicyError::new("fleet.max_lease", "must be at least 1"));
        }
        if p.max_backoff < p.sync_interval {
            return Err(PolicyError::new(
                "fleet.max_backoff",
                "must be at least the sync interval",
            ));
        }
        Ok(p)
    }
}

/// What a process asks of the fleet's probe lease in a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseRequest {
    /// Nothing.
    #[default]
    None,
    /// Take the lease with this token for `ttl`, unless the fleet is open or another token
    /// holds it (`SET NX PX`).
    Acquire {
        /// This lease's token (unique to the process and the lease).
        token: u64,
        /// How long the lease lives if never returned.
        ttl: Duration,
    },
    /// Return the lease held with this token (if it still is); `passed`: its probe passed,
    /// which counts as a recovery for the fleet.
    Release {
        /// The token it was taken with.
        token: u64,
        /// Whether the probe passed.
        passed: bool,
    },
}

/// The fleet's ratio-budget rule, applied by the store to the fleet's totals: over the last
/// `window`, leased retries ≤ `ratio_ppm`/10⁶ · first attempts + `reserve_micro`/10⁶.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetRule {
    /// Retries earned per first attempt, in parts per million.
    pub ratio_ppm: u64,
    /// Retries granted per window whatever the traffic, in millionths of a retry.
    pub reserve_micro: u64,
    /// The window (10 buckets on the store's clock).
    pub window: Duration,
}

/// What one process publishes in one sync: the values a store applies atomically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetBatch {
    /// The process (unique in the fleet for its lifetime).
    pub node: u64,
    /// Calls the closed breaker counted since the last batch.
    pub calls: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Of those, successes (a success ends this process's run of failures).
    pub successes: u32,
    /// Failures after the last success (all failures when there was no success).
    pub trailing_failures: u32,
    /// This process sees the backend failing: its own recent calls reach the trip ratio, or
    /// its breaker is open.
    pub failing: bool,
    /// Open the fleet for this long (if it is not open already).
    pub announce_open: Option<Duration>,
    /// The probe lease.
    pub lease: LeaseRequest,
    /// First attempts since the last batch (the fleet's bucket earns from them).
    pub deposits: u32,
    /// Retries to lease from the fleet's bucket.
    pub want_retries: u32,
    /// The budget rule, when the budget is shared.
    pub budget: Option<BudgetRule>,
    /// The fleet's counting window (10 buckets on the store's clock).
    pub window: Duration,
    /// How long the store keeps what it holds for this fleet after its last write; nothing
    /// outlives it.
    pub keep: Duration,
}

/// The fleet's open period, as the store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetOpen {
    /// Increases with every open the store accepts.
    pub generation: u64,
    /// Its time to live.
    pub remaining: Duration,
}

/// What the store answered about the probe lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseAnswer {
    /// Nothing was asked, or it was returned.
    #[default]
    None,
    /// The lease is this process's.
    Granted,
    /// Another process holds it for this long still (or the fleet is open).
    Held {
        /// Its time to live.
        remaining: Duration,
    },
}

/// What the store answered to one batch: the fleet's view after applying it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetReply {
    /// Calls in the fleet's window.
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Processes that synced within the window.
    pub nodes: u32,
    /// Of those, processes whose last batch said `failing`.
    pub failing_nodes: u32,
    /// Failures in the live processes' runs, each since that process's own last success.
    pub streak_failures: u64,
    /// Processes whose run is not empty.
    pub streak_nodes: u32,
    /// The fleet's open period, if it is open.
    pub open: Option<FleetOpen>,
    /// Probes that passed (a counter; only its increases mean anything).
    pub recoveries: u64,
    /// The probe lease.
    pub lease: LeaseAnswer,
    /// Retries leased to this process.
    pub retries: u32,
    /// The store held garbage for this fleet and replaced it.
    pub repaired: bool,
}

/// What happened in a [`FleetSync`], for logs and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetEvent {
    /// The store could not be reached (the first failed sync after a good one): the breaker
    /// and budget judge alone until it can.
    Degraded,
    /// A sync succeeded again after [`Degraded`](Self::Degraded).
    Rejoined,
    /// The fleet's counts tripped this process's breaker.
    Tripped,
    /// This process opened the fleet for this long.
    Announced {
        /// The open period.
        period: Duration,
    },
    /// The fleet opened this process's breaker for this long.
    Opened {
        /// The time left of the fleet's open period.
        remaining: Duration,
    },
    /// This process holds the probe lease.
    ProbeGranted,
    /// Another process's probe passed: this breaker leaves open without probing.
    Recovered,
    /// The store held garbage for this fleet, and replaced it.
    Repaired,
}

impl fmt::Display for FleetEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetEvent::Degraded => {
                f.write_str("fleet store unreachable: breaker and budget judge locally")
            }
            FleetEvent::Rejoined => f.write_str("fleet store reachable again: rejoined the fleet"),
            FleetEvent::Tripped => f.write_str("the fleet's failures tripped the breaker"),
            FleetEvent::Announced { period } => write!(f, "opened the fleet for {period:?}"),
            FleetEvent::Opened { remaining } => {
                write!(f, "the fleet opened the breaker for {remaining:?}")
            }
            FleetEvent::ProbeGranted => f.write_str("holds the fleet's probe lease"),
            FleetEvent::Recovered => f.write_str("a probe elsewhere in the fleet passed"),
            FleetEvent::Repaired => f.write_str("the fleet store held garbage; replaced"),
        }
    }
}

/// The trip condition, resolved against the breaker.
#[derive(Clone, Copy, Debug)]
enum TripRule {
    Consecutive(u64),
    Ratio { ratio: u64, min_calls: u64 },
}

/// This process's own recent outcomes, over the fleet's window on its own clock: whether it
/// sees the backend failing.
#[derive(Clone, Debug)]
struct OwnWindow {
    bucket_nanos: u64,
    ticks: [u64; BUCKETS as usize],
    calls: [u32; BUCKETS as usize],
    failures: [u32; BUCKETS as usize],
}

impl OwnWindow {
    fn new(window: u64) -> OwnWindow {
        OwnWindow {
            bucket_nanos: (window / BUCKETS).max(1),
            ticks: [u64::MAX; BUCKETS as usize],
            calls: [0; BUCKETS as usize],
            failures: [0; BUCKETS as usize],
        }
    }

    fn push(&mut self, now: Instant, calls: u32, failures: u32) {
        let tick = now.as_nanos() / self.bucket_nanos;
        let slot = (tick % BUCKETS) as usize;
        if self.ticks[slot] != tick {
            self.ticks[slot] = tick;
            self.calls[slot] = 0;
            self.failures[slot] = 0;
        }
        self.calls[slot] = self.calls[slot].saturating_add(calls);
        self.failures[slot] = self.failures[slot].saturating_add(failures);
    }

    fn reaches(&self, now: Instant, ratio: u64) -> bool {
        let tick = now.as_nanos() / self.bucket_nanos;
        let (mut calls, mut failures) = (0u64, 0u64);
        for i in 0..BUCKETS as usize {
            if self.ticks[i] != u64::MAX && tick.saturating_sub(self.ticks[i]) < BUCKETS {
                calls += u64::from(self.calls[i]);
                failures += u64::from(self.failures[i]);
            }
        }
        reaches(failures, calls, ratio)
    }
}

/// The sans-IO machine that shares one breaker (and budget) with a fleet. Its driver takes a
/// batch with [`prepare`](Self::prepare) at [`poll_timeout`](Self::poll_timeout), sends it to
/// the store, and hands the answer to [`apply`](Self::apply) (or reports
/// [`failed`](Self::failed)).
#[derive(Clone, Debug)]
pub struct FleetSync {
    policy: FleetPolicy,
    node: u64,
    trip: TripRule,
    window: u64,
    lease_ttl: Duration,
    budget_rule: Option<BudgetRule>,
    has_breaker: bool,
    /// The last sync succeeded.
    connected: bool,
    /// A failed sync was reported since the last good one.
    degraded: bool,
    failed_in_row: u32,
    next_at: Instant,
    own: OwnWindow,
    /// The fleet open generation this process applied last.
    applied_open: u64,
    /// The recovery counter at the last reply (`None` until a reply after a failure).
    recoveries: Option<u64>,
    /// The probe lease this process holds: its token, and when it was granted.
    holding: Option<(u64, Instant)>,
    lease_seq: u64,
    /// What the batch in flight asked for.
    asked: LeaseRequest,
    announced: bool,
    /// This breaker opened by its own judgement and the fleet has not been told.
    open_unannounced: bool,
    /// Announce in the next batch, which is due at once.
    announce_next: bool,
    /// The breaker's open period is the fleet's (ordered by it, or announced to it): its
    /// probe's failure reopens the fleet. A process open on its own evidence alone (one bad
    /// node) probes through the lease too, but its failures stay its own.
    fleet_opened: bool,
    /// The breaker as the last report showed it.
    last: Option<BreakerReport>,
    /// Retries spent from the lease in the last interval.
    spent: u32,
    events: VecDeque<FleetEvent>,
}

impl FleetSync {
    /// A machine for the process `node` (a number unique in the fleet, e.g. random). Give it
    /// its breaker and budget with [`attach`](Self::attach).
    pub fn new(policy: &FleetPolicy, node: u64) -> FleetSync {
        let window = duration_to_nanos(policy.window.unwrap_or(Duration::from_secs(10)));
        FleetSync {
            policy: *policy,
            node,
            trip: TripRule::Consecutive(5),
            window,
            lease_ttl: policy.lease_ttl.unwrap_or(Duration::from_secs(30)),
            budget_rule: None,
            has_breaker: false,
            connected: false,
            degraded: false,
            failed_in_row: 0,
            next_at: Instant::ZERO,
            own: OwnWindow::new(window),
            applied_open: 0,
            recoveries: None,
            holding: None,
            lease_seq: 0,
            asked: LeaseRequest::None,
            announced: false,
            open_unannounced: false,
            announce_next: false,
            fleet_opened: false,
            last: None,
            spent: 0,
            events: VecDeque::new(),
        }
    }

    /// Starts sharing `breaker` and `budget`: the breaker counts every outcome for the fleet
    /// from now on (its lock-free quiet path is off), and the fleet's trip condition, window
    /// and lease time default to the breaker's. A budget is shared if it is a ratio budget;
    /// another kind stays local ([`shares_budget`](Self::shares_budget) says which).
    pub fn attach(
        &mut self,
        breaker: Option<&dyn Shared<CircuitBreaker>>,
        budget: Option<&dyn Shared<RetryBudget>>,
    ) {
        if let Some(breaker) = breaker {
            self.has_breaker = true;
            breaker.with_mut(&mut |b| {
                b.enable_fleet();
                let (trip, span) = match b.trip_shape() {
                    Ok(n) => (TripRule::Consecutive(u64::from(n)), None),
                    Err((ratio, min_calls, span)) => (
                        TripRule::Ratio {
                            ratio,
                            min_calls: u64::from(min_calls),
                        },
                        span,
                    ),
                };
                self.trip = trip;
                if self.policy.window.is_none() {
                    if let Some(span) = span {
                        self.window = span.max(10_000_000);
                    }
                }
                if self.policy.lease_ttl.is_none() {
                    let open_for = b.first_open_period();
                    self.lease_ttl = open_for.clamp(Duration::from_millis(1), MAX_FLEET_OPEN);
                }
            });
            self.trip = match self.policy.trip {
                Some(FleetTrip::ConsecutiveFailures(n)) => TripRule::Consecutive(u64::from(n)),
                Some(FleetTrip::FailureRatio { ratio, min_calls }) => TripRule::Ratio {
                    ratio: to_ppm(ratio),
                    min_calls: u64::from(min_calls),
                },
                None => self.trip,
            };
            self.own = OwnWindow::new(self.window);
        }
        if let Some(budget) = budget {
            budget.with_mut(&mut |b| {
                if let Some((ratio_ppm, reserve_micro, window)) = b.fleet_rule() {
                    b.enable_fleet();
                    self.budget_rule = Some(BudgetRule {
                        ratio_ppm,
                        reserve_micro,
                        window: Duration::from_nanos(window),
                    });
                }
            });
        }
    }

    /// Whether the budget given to [`attach`](Self::attach) is shared (a ratio budget).
    pub fn shares_budget(&self) -> bool {
        self.budget_rule.is_some()
    }

    /// Whether the last sync succeeded.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// When to sync next: one interval after the last sync, the end of the breaker's open
    /// period if sooner (to ask for the probe lease), or now after a trip to announce; while
    /// the store cannot be reached, after a backoff.
    pub fn poll_timeout(&self) -> Instant {
        self.next_at
    }

    /// The oldest unreported event.
    pub fn poll_event(&mut self) -> Option<FleetEvent> {
        self.events.pop_front()
    }

    /// The batch to publish now; the breaker's counts and the budget's deposits are taken.
    pub fn prepare(
        &mut self,
        now: Instant,
        breaker: Option<&dyn Shared<CircuitBreaker>>,
        budget: Option<&dyn Shared<RetryBudget>>,
    ) -> FleetBatch {
        let mut batch = FleetBatch {
            node: self.node,
            window: Duration::from_nanos(self.window),
            budget: self.budget_rule,
            keep: self.keep(),
            ..FleetBatch::default()
        };
        self.asked = LeaseRequest::None;
        self.announced = false;
        if let (Some(breaker), true) = (breaker, self.has_breaker) {
            let mut report = None;
            breaker.with_mut(&mut |b| report = Some(b.take_fleet_report(now)));
            if let Some(r) = report {
                let granted_before = r.granted;
                self.prepare_breaker(now, &r, &mut batch);
                self.last = Some(r);
                if granted_before && self.holding.is_none() {
                    breaker.with_mut(&mut |b| b.apply_fleet(now, FleetOrder::Revoke));
                }
            }
        }
        if let (Some(budget), Some(_)) = (budget, self.budget_rule) {
            let mut report = Default::default();
            budget.with_mut(&mut |b| report = b.take_fleet_report());
            self.spent = report.spent;
            if !self.degraded {
                batch.deposits = report.deposits;
                // Enough for two intervals at the last interval's pace, at least a few.
                let target = report
                    .spent
                    .saturating_mul(2)
                    .clamp(4, self.policy.max_lease)
                    .min(self.policy.max_lease);
                if report.tokens < target.div_ceil(2) {
                    batch.want_retries = target - report.tokens;
                }
            }
        }
        batch
    }

    fn prepare_breaker(&mut self, now: Instant, r: &BreakerReport, batch: &mut FleetBatch) {
        let c = r.counts;
        self.own.push(now, c.calls, c.failures);
        if self.degraded {
            // A batch prepared while the store is unreachable may follow a long gap: its
            // counts are stale by the time it arrives. Publish none; the next batch carries
            // fresh ones.
            if r.opened {
                self.open_unannounced = true;
            }
            return;
        }
        batch.calls = c.calls;
        batch.failures = c.failures;
        batch.successes = c.successes;
        batch.trailing_failures = c.trailing_failures;
        let ratio = match self.trip {
            TripRule::Ratio { ratio, .. } => ratio,
            TripRule::Consecutive(_) => ONE / 2,
        };
        batch.failing = r.state != BreakerState::Closed || self.own.reaches(now, ratio);
        let open_left = r.open_until.saturating_duration_since(now);
        if r.opened {
            self.open_unannounced = true;
        }
        if r.state != BreakerState::Open {
            self.open_unannounced = false;
            self.announce_next = false;
        }
        if r.state == BreakerState::Closed
            || (r.state == BreakerState::HalfOpen && self.holding.is_none())
        {
            self.fleet_opened = false;
        }
        // The probe lease: return it once its probe ended, or if it went unused.
        if let Some((token, granted_at)) = self.holding {
            let unused = r.state == BreakerState::Open
                && r.granted
                && now >= granted_at.saturating_add(self.policy.sync_interval * 2)
                && now >= r.open_until;
            // Passed; or failed (it reopened), went unused, was overtaken by a fleet open, or
            // the breaker closed without it.
            let ended = r.opened
                || unused
                || (r.state == BreakerState::Open && !r.granted)
                || r.state == BreakerState::Closed;
            let release = if r.probe_passed {
                Some(true)
            } else {
                ended.then_some(false)
            };
            if let Some(passed) = release {
                batch.lease = LeaseRequest::Release { token, passed };
                self.holding = None;
                if r.opened && self.fleet_opened {
                    // The fleet's probe failed: the fleet reopens with this process.
                    self.announce_next = true;
                }
            }
        } else if self.connected
            && r.state == BreakerState::Open
            && now >= r.open_until
            && r.rejected > 0
        {
            self.lease_seq = self.lease_seq.wrapping_add(1);
            let token = mix(self.node ^ mix(self.lease_seq)) | 1;
            batch.lease = LeaseRequest::Acquire {
                token,
                ttl: self.lease_ttl,
            };
        }
        if self.open_unannounced && self.announce_next && r.state == BreakerState::Open {
            if !open_left.is_zero() {
                batch.announce_open = Some(open_left);
                self.announced = true;
                self.fleet_opened = true;
            }
            self.open_unannounced = false;
            self.announce_next = false;
        }
        self.asked = batch.lease;
    }

    /// Applies the store's answer to the batch from the last [`prepare`](Self::prepare).
    pub fn apply(
        &mut self,
        now: Instant,
        reply: &FleetReply,
        breaker: Option<&dyn Shared<CircuitBreaker>>,
        budget: Option<&dyn Shared<RetryBudget>>,
    ) {
        let open = reply.open.filter(|o| !o.remaining.is_zero());
        let garbage = open.is_some_and(|o| o.remaining > MAX_FLEET_OPEN)
            || matches!(reply.lease, LeaseAnswer::Held { remaining } if remaining > MAX_FLEET_OPEN)
            || reply.retries > self.policy.max_lease;
        if garbage {
            self.failed(now, breaker, budget);
            return;
        }
        if self.degraded {
            self.degraded = false;
            self.events.push_back(FleetEvent::Rejoined);
        }
        self.connected = true;
        self.failed_in_row = 0;
        if reply.repaired {
            self.events.push_back(FleetEvent::Repaired);
        }
        let mut orders: [Option<FleetOrder>; 4] =
            [Some(FleetOrder::Connected(true)), None, None, None];
        let mut push = |order: FleetOrder| {
            if let Some(slot) = orders.iter_mut().find(|o| o.is_none()) {
                *slot = Some(order);
            }
        };
        if self.announced {
            if let Some(period) = self.last_announce_period(now) {
                self.events.push_back(FleetEvent::Announced { period });
            }
        }
        match reply.lease {
            LeaseAnswer::Granted if matches!(self.asked, LeaseRequest::Acquire { .. }) => {
                if let LeaseRequest::Acquire { token, .. } = self.asked {
                    self.holding = Some((token, now));
                    push(FleetOrder::GrantProbe);
                    self.events.push_back(FleetEvent::ProbeGranted);
                }
            }
            LeaseAnswer::Held { remaining } if open.is_none() => {
                push(FleetOrder::Hold(now.saturating_add(remaining)));
            }
            _ => {}
        }
        let last_state = self.last.map(|r| r.state);
        if let Some(o) = open {
            if o.generation != self.applied_open {
                self.applied_open = o.generation;
                self.fleet_opened = true;
                push(FleetOrder::OpenUntil(now.saturating_add(o.remaining)));
                if !self.announced {
                    self.events.push_back(FleetEvent::Opened {
                        remaining: o.remaining,
                    });
                }
            }
        } else {
            let recovered = self.recoveries.is_some_and(|r| reply.recoveries > r);
            if recovered && self.holding.is_none() && last_state == Some(BreakerState::Open) {
                push(FleetOrder::Recovered);
                self.events.push_back(FleetEvent::Recovered);
            } else if self.has_breaker && self.trips(reply) {
                match last_state {
                    Some(BreakerState::Closed) => {
                        push(FleetOrder::Trip);
                        self.events.push_back(FleetEvent::Tripped);
                        self.open_unannounced = true;
                        self.announce_next = true;
                    }
                    Some(BreakerState::Open) if self.open_unannounced => {
                        self.announce_next = true;
                    }
                    _ => {}
                }
            }
        }
        self.recoveries = Some(reply.recoveries);
        if let (Some(breaker), true) = (breaker, self.has_breaker) {
            breaker.with_mut(&mut |b| {
                for order in orders.iter().flatten() {
                    b.apply_fleet(now, *order);
                }
            });
            if let Some(mut r) = self.last {
                breaker.with_mut(&mut |b| {
                    r.state = b.state();
                    r.open_until = b.rejects_until().unwrap_or(r.open_until);
                });
                self.last = Some(r);
            }
        }
        if let (Some(budget), Some(_)) = (budget, self.budget_rule) {
            budget.with_mut(&mut |b| b.apply_fleet(Some(reply.retries)));
        }
        self.schedule(now);
    }

    /// The sync failed: no answer in time, or an answer that was not one. The breaker and
    /// budget judge alone until a sync succeeds.
    pub fn failed(
        &mut self,
        now: Instant,
        breaker: Option<&dyn Shared<CircuitBreaker>>,
        budget: Option<&dyn Shared<RetryBudget>>,
    ) {
        if !self.degraded {
            self.degraded = true;
            self.events.push_back(FleetEvent::Degraded);
        }
        self.connected = false;
        self.recoveries = None;
        // A lease this process held expires in the store by itself.
        self.holding = None;
        self.announce_next = false;
        if let (Some(breaker), true) = (breaker, self.has_breaker) {
            breaker.with_mut(&mut |b| b.apply_fleet(now, FleetOrder::Connected(false)));
        }
        if let (Some(budget), Some(_)) = (budget, self.budget_rule) {
            budget.with_mut(&mut |b| b.apply_fleet(None));
        }
        self.failed_in_row = self.failed_in_row.saturating_add(1);
        let doubling = 1u32 << self.failed_in_row.saturating_sub(1).min(16);
        let wait = self
            .policy
            .sync_interval
            .saturating_mul(doubling)
            .min(self.policy.max_backoff);
        self.next_at = now.saturating_add(wait);
    }

    /// Whether the fleet's view trips a closed breaker.
    fn trips(&self, reply: &FleetReply) -> bool {
        let k = self.policy.min_nodes.min(reply.nodes.max(1));
        match self.trip {
            TripRule::Consecutive(n) => reply.streak_failures >= n && reply.streak_nodes >= k,
            TripRule::Ratio { ratio, min_calls } => {
                reply.calls >= min_calls
                    && reaches(reply.failures, reply.calls, ratio)
                    && reply.failing_nodes >= k
            }
        }
    }

    fn last_announce_period(&self, now: Instant) -> Option<Duration> {
        self.last
            .map(|r| r.open_until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn schedule(&mut self, now: Instant) {
        let mut next = now.saturating_add(self.policy.sync_interval);
        if let Some(r) = self.last {
            if r.state == BreakerState::Open && r.open_until > now && r.open_until < next {
                next = r.open_until;
            }
        }
        if self.announce_next {
            next = now;
        }
        self.next_at = next;
    }

    /// How long the store keeps a fleet's keys after their last write.
    fn keep(&self) -> Duration {
        let budget = self.budget_rule.map_or(Duration::ZERO, |b| b.window);
        let longest = Duration::from_nanos(self.window)
            .max(self.lease_ttl)
            .max(budget)
            .max(Duration::from_secs(1));
        longest.saturating_mul(2)
    }
}

/// Whether `count` of `calls` reaches `ratio` (parts per million); never for no count.
fn reaches(count: u64, calls: u64, ratio: u64) -> bool {
    count > 0 && u128::from(count) * u128::from(ONE) >= u128::from(calls) * u128::from(ratio)
}

/// A reference model of the fleet's store: the rules resil-redis's Lua script applies, in
/// Rust, on a clock the caller passes (milliseconds, the store's own). The simulator runs
/// fleets on it; resil-redis checks its script against it.
///
/// Everything it holds expires [`FleetBatch::keep`] after its last write, as the script's
/// keys do.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// Per bucket: (tick, calls, failures).
    window: [(u64, u64, u64); BUCKETS as usize],
    /// Each process's run of failures since its own last success.
    streak: BTreeMap<u64, u64>,
    nodes: BTreeMap<u64, u64>,
    failing: BTreeMap<u64, u64>,
    /// (generation, expires at).
    open: Option<(u64, u64)>,
    generation: u64,
    /// (token, expires at).
    lease: Option<(u64, u64)>,
    recoveries: u64,
    /// Per bucket: (tick, first attempts, leased retries).
    budget: [(u64, u64, u64); BUCKETS as usize],
    /// The last write.
    touched: Option<u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore {
            window: [(u64::MAX, 0, 0); BUCKETS as usize],
            budget: [(u64::MAX, 0, 0); BUCKETS as usize],
            ..MemoryStore::default()
        }
    }

    /// Forgets everything, as a store restarted without persistence does.
    pub fn clear(&mut self) {
        *self = MemoryStore::new();
    }

    /// Applies `batch` at `now_ms` on the store's clock and answers the fleet's view.
    pub fn exchange(&mut self, now_ms: u64, batch: &FleetBatch) -> FleetReply {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.expire(now_ms);
        let keep = ms(batch.keep).max(1);
        if self
            .touched
            .is_some_and(|t| now_ms >= t.saturating_add(keep))
        {
            // Every key but the open period and the lease (which have their own time to
            // live) expired.
            *self = MemoryStore {
                open: self.open,
                lease: self.lease,
                ..MemoryStore::new()
            };
        }
        let window = ms(batch.window).max(BUCKETS);
        let bucket = window / BUCKETS;
        let node = batch.node;
        // Counters start at the store's time, so that they grow across a lost state.
        if self.generation == 0 {
            self.generation = now_ms;
        }
        if self.recoveries == 0 {
            self.recoveries = now_ms;
        }
        // Who synced, and who sees failures.
        self.nodes.insert(node, now_ms);
        if batch.failing {
            self.failing.insert(node, now_ms);
        } else {
            self.failing.remove(&node);
        }
        if now_ms >= window {
            let horizon = now_ms - window;
            self.nodes.retain(|_, t| *t > horizon);
            self.failing.retain(|_, t| *t > horizon);
        }
        // The window's buckets.
        let tick = now_ms / bucket;
        let slot = (tick % BUCKETS) as usize;
        if self.window[slot].0 != tick {
            self.window[slot] = (tick, 0, 0);
        }
        self.window[slot].1 += u64::from(batch.calls);
        self.window[slot].2 += u64::from(batch.failures);
        // Each process's run since its own last success: batches cover the same interval,
        // so one process's success must not end another's run (it may be older).
        if batch.successes > 0 {
            if batch.trailing_failures > 0 {
                self.streak.insert(node, u64::from(batch.trailing_failures));
            } else {
                self.streak.remove(&node);
            }
        } else if batch.failures > 0 {
            *self.streak.entry(node).or_default() += u64::from(batch.failures);
        }
        // The probe lease returned.
        if let LeaseRequest::Release { token, passed } = batch.lease {
            if self.lease.is_some_and(|(t, _)| t == token) {
                self.lease = None;
            }
            if passed {
                self.recoveries += 1;
                self.reset_counts();
            }
        }
        // An open announced.
        if let Some(period) = batch.announce_open {
            if self.open.is_none() && ms(period) > 0 {
                self.generation += 1;
                self.open = Some((self.generation, now_ms + ms(period)));
                self.reset_counts();
            }
        }
        // The probe lease asked for.
        let lease = match batch.lease {
            LeaseRequest::Acquire { token, ttl } => match (self.open, self.lease) {
                (Some((_, until)), _) => LeaseAnswer::Held {
                    remaining: Duration::from_millis(until - now_ms),
                },
                (None, Some((t, _))) if t == token => LeaseAnswer::Granted,
                (None, Some((_, until))) => LeaseAnswer::Held {
                    remaining: Duration::from_millis(until - now_ms),
                },
                (None, None) => {
                    self.lease = Some((token, now_ms + ms(ttl).max(1)));
                    LeaseAnswer::Granted
                }
            },
            _ => LeaseAnswer::None,
        };
        // The budget.
        let mut retries = 0;
        if let Some(rule) = batch.budget {
            let span = ms(rule.window).max(BUCKETS);
            let btick = now_ms / (span / BUCKETS);
            let bslot = (btick % BUCKETS) as usize;
            if self.budget[bslot].0 != btick {
                self.budget[bslot] = (btick, 0, 0);
            }
            self.budget[bslot].1 += u64::from(batch.deposits);
            let (mut deposits, mut leased) = (0u64, 0u64);
            for (t, d, l) in self.budget {
                if t != u64::MAX && btick.saturating_sub(t) < BUCKETS {
                    deposits += d;
                    leased += l;
                }
            }
            let earned = deposits * rule.ratio_ppm + rule.reserve_micro;
            let left = earned.saturating_sub(leased * ONE) / ONE;
            retries = u32::try_from(left.min(u64::from(batch.want_retries))).unwrap_or(0);
            self.budget[bslot].2 += u64::from(retries);
        }
        let (mut calls, mut failures) = (0, 0);
        for (t, c, f) in self.window {
            if t != u64::MAX && tick.saturating_sub(t) < BUCKETS {
                calls += c;
                failures += f;
            }
        }
        self.streak.retain(|n, _| self.nodes.contains_key(n));
        self.touched = Some(now_ms);
        FleetReply {
            calls,
            failures,
            nodes: self.nodes.len() as u32,
            failing_nodes: self.failing.len() as u32,
            streak_failures: self.streak.values().sum(),
            streak_nodes: self.streak.values().filter(|r| **r > 0).count() as u32,
            open: self.open.map(|(generation, until)| FleetOpen {
                generation,
                remaining: Duration::from_millis(until - now_ms),
            }),
            recoveries: self.recoveries,
            lease,
            retries,
            repaired: false,
        }
    }

    fn expire(&mut self, now_ms: u64) {
        if self.open.is_some_and(|(_, until)| until <= now_ms) {
            self.open = None;
        }
        if self.lease.is_some_and(|(_, until)| until <= now_ms) {
            self.lease = None;
        }
    }

    /// Counts from before an open or a recovery must not trip anyone after it.
    fn reset_counts(&mut self) {
        self.window = [(u64::MAX, 0, 0); BUCKETS as usize];
        self.streak.clear();
        self.failing.clear();
    }
}
