//! The circuit breaker: a plain `&mut self` state machine with lazy timers.
//!
//! Time only moves when a caller passes `now`: Open becomes HalfOpen inside
//! [`CircuitBreaker::try_acquire`] once the open period has passed, and abandoned half-open
//! probes are reclaimed the same way. Drivers share one breaker per backend behind a lock
//! ([`Shared`](crate::Shared)) and never hold it across an await. With feature `std`, the
//! clients of resil's drivers skip that lock while the breaker is closed with nothing to count
//! (a consecutive-failures trip and no failure since the last success): the breaker shows that
//! on an atomic beside it, and permits and successes then change nothing in it.

use core::fmt;
use core::time::Duration;

use crate::backoff::{scale, to_fixed};
use crate::budget::{ONE, to_ppm};
use crate::error::PolicyError;
use crate::splitmix::SplitMix64;
use crate::time::{Instant, duration_to_nanos};

/// The breaker's state, and every way it changes (h11-style; a property test beside the
/// breaker holds it to this table: no transition outside it happens, and every row does):
///
/// | state | on | when | next state |
/// |---|---|---|---|
/// | Closed | `try_acquire` | | Closed (a permit) |
/// | Closed | `record` | the trip condition holds (consecutive failures, or a failure or slow-call ratio over a full enough window) | Open for the open period |
/// | Closed | `record` | otherwise | Closed |
/// | Open | `try_acquire` | before the open period ends | Open (rejected until then) |
/// | Open | `try_acquire` | the open period has ended | HalfOpen (this call is a probe) |
/// | Open | `record`, `release` | (permits of an earlier state count for nothing) | Open |
/// | HalfOpen | `try_acquire` | | HalfOpen (a probe, or rejected while all probes are out) |
/// | HalfOpen | `record` a probe | failure or slow | Open, for a longer period if it grows |
/// | HalfOpen | `record` a probe | success, and enough probes succeeded | Closed |
/// | HalfOpen | `record`, `release` | otherwise | HalfOpen |
/// | Closed, Open, HalfOpen | `isolate` | | Isolated |
/// | Isolated | `try_acquire`, `record`, `release`, `isolate` | | Isolated (rejected until reset) |
/// | any | `reset` | | Closed, counts forgotten |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A limited number of probe calls decide whether to close or reopen.
    HalfOpen,
    /// Opened by hand ([`CircuitBreaker::isolate`]); stays open until [`CircuitBreaker::reset`].
    Isolated,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Isolated => "isolated",
        })
    }
}

/// A state change, reported for hooks and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When it happened.
    pub at: Instant,
}

/// Permission to make one call; hand it back with [`CircuitBreaker::record`] or
/// [`CircuitBreaker::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a permit must be recorded or released"]
pub struct Permit {
    generation: u32,
    probe: bool,
    acquired_at: Instant,
}

impl Permit {
    /// Whether this permit is one of the half-open probes.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The permit without its time, as a retry machine keeps it while its attempt is out (the
    /// machine knows when it sent the attempt).
    pub(crate) fn hold(self) -> HeldPermit {
        HeldPermit {
            generation: self.generation,
            probe: self.probe,
        }
    }
}

/// A [`Permit`] without its acquisition time: 8 bytes in a retry machine instead of 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldPermit {
    generation: u32,
    probe: bool,
}

impl HeldPermit {
    /// The permit a closed breaker of this generation gives.
    #[cfg(target_has_atomic = "64")]
    pub(crate) fn closed(generation: u32) -> HeldPermit {
        HeldPermit {
            generation,
            probe: false,
        }
    }

    /// The permit again, taken at `acquired_at`.
    pub(crate) fn permit(self, acquired_at: Instant) -> Permit {
        Permit {
            generation: self.generation,
            probe: self.probe,
            acquired_at,
        }
    }

    /// Whether it is one of the half-open probes.
    #[cfg(target_has_atomic = "64")]
    pub(crate) fn is_probe(self) -> bool {
        self.probe
    }

    /// The breaker generation that issued it.
    #[cfg(target_has_atomic = "64")]
    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

/// What a breaker shows without its lock. While it is closed with no failure counted and
/// nothing else to count (a consecutive-failures trip, no slow-call ratio), taking a permit
/// and reporting a success change nothing in it: a retry machine then does both here, and
/// only a failure, or a breaker in any other condition, takes the lock. Clients sharing one
/// breaker share its gate.
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
pub struct BreakerGate(core::sync::atomic::AtomicU64);

#[cfg(target_has_atomic = "64")]
impl BreakerGate {
    /// The breaker's generation while it is quiet as above; `None` otherwise.
    pub fn quiet_generation(&self) -> Option<u32> {
        let word = self.0.load(core::sync::atomic::Ordering::Acquire);
        // The generation was shifted in from a u32.
        (word & 1 == 1).then_some((word >> 1) as u32)
    }
}

/// A breaker's handle on its gate; a cloned breaker gets a gate of its own.
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
struct GateHandle(alloc::sync::Arc<BreakerGate>);

#[cfg(target_has_atomic = "64")]
impl Clone for GateHandle {
    fn clone(&self) -> Self {
        let word = self.0.0.load(core::sync::atomic::Ordering::Acquire);
        GateHandle(alloc::sync::Arc::new(BreakerGate(
            core::sync::atomic::AtomicU64::new(word),
        )))
    }
}

/// The breaker refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The earliest time a call may be admitted ([`Instant::MAX`] while isolated).
    pub until: Instant,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.until == Instant::MAX {
            f.write_str("circuit breaker is isolated")
        } else {
            write!(f, "circuit breaker is open until {}", self.until)
        }
    }
}

impl core::error::Error for Rejected {}

/// How a call ended, as the breaker counts it. The retry policy decides which
/// (see [`RetryPolicy::is_failure`](crate::RetryPolicy::is_failure)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The backend did its job.
    Success,
    /// The backend failed or did not answer.
    Failure,
}

/// When the breaker trips from Closed to Open.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum TripCondition {
    /// After this many failures in a row.
    ConsecutiveFailures(u32),
    /// When, over the window, at least `min_calls` calls were made and the failure ratio
    /// reached `ratio` (in `(0, 1]`).
    FailureRatio {
        /// Failure fraction that trips.
        ratio: f64,
        /// Calls needed in the window before the ratio counts.
        min_calls: u32,
        /// The rolling window.
        window: Window,
    },
}

/// A rolling window of recent calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last `n` calls (1 ≤ n ≤ 128).
    Calls(u32),
    /// Calls in the last span of time, kept in 10 buckets.
    Time(Duration),
}

/// Trip also when this fraction of the window's calls took at least `threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowCalls {
    /// A call at least this long is slow.
    pub threshold: Duration,
    /// Slow fraction that trips, in `(0, 1]`.
    pub ratio: f64,
}

const BUCKETS: usize = 10;
const MAX_CALL_WINDOW: u32 = 128;

/// Builds a [`CircuitBreaker`]. Defaults: 5 consecutive failures, open 30 s, 1 probe, no
/// growth of the open period, probes abandoned after 30 s.
#[derive(Clone, Debug)]
pub struct CircuitBreakerBuilder {
    trip: TripCondition,
    slow: Option<SlowCalls>,
    open_for: Duration,
    open_multiplier: f64,
    max_open: Duration,
    open_jitter: f64,
    probes: u32,
    probe_timeout: Duration,
    seed: u64,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        CircuitBreakerBuilder {
            trip: TripCondition::ConsecutiveFailures(5),
            slow: None,
            open_for: Duration::from_secs(30),
            open_multiplier: 1.0,
            max_open: Duration::from_secs(300),
            open_jitter: 0.0,
            probes: 1,
            probe_timeout: Duration::from_secs(30),
            seed: 0,
        }
    }
}

impl CircuitBreakerBuilder {
    /// When to trip.
    pub fn trip(mut self, trip: TripCondition) -> Self {
        self.trip = trip;
        self
    }

    /// Trip on slow calls too (needs a [`TripCondition::FailureRatio`] window).
    pub fn slow_calls(mut self, slow: SlowCalls) -> Self {
        self.slow = Some(slow);
        self
    }

    /// How long the breaker stays open the first time.
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = d;
        self
    }

    /// Each reopen straight from half-open multiplies the open period by this (≥ 1), up to
    /// `max_open`.
    pub fn open_growth(mut self, multiplier: f64, max_open: Duration) -> Self {
        self.open_multiplier = multiplier;
        self.max_open = max_open;
        self
    }

    /// Adds `U(0, f · period)` to each open period (`f` in `[0, 1]`) so breakers opened
    /// together do not probe together; randomness comes from `seed`.
    pub fn open_jitter(mut self, fraction: f64, seed: u64) -> Self {
        self.open_jitter = fraction;
        self.seed = seed;
        self
    }

    /// How many probes half-open admits at once; that many successes close it.
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// A probe not reported within this time is presumed abandoned and its slot reclaimed,
    /// so a lost permit can never wedge the breaker half-open.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<CircuitBreaker, PolicyError> {
        let ratio_ok = |r: f64| r > 0.0 && r <= 1.0;
        let trip = match self.trip {
            TripCondition::ConsecutiveFailures(0) => {
                return Err(PolicyError::new(
                    "trip",
                    "consecutive failures must be at least 1",
                ));
            }
            TripCondition::ConsecutiveFailures(n) => Trip::Consecutive(n),
            TripCondition::FailureRatio {
                ratio,
                min_calls,
                window,
            } => {
                if !ratio_ok(ratio) {
                    return Err(PolicyError::new("trip", "failure ratio must be in (0, 1]"));
                }
                let window = match window {
                    Window::Calls(n) if (1..=MAX_CALL_WINDOW).contains(&n) => {
                        WindowState::Calls(CallRing::new(n))
                    }
                    Window::Calls(_) => {
                        return Err(PolicyError::new(
                            "trip",
                            "call window must hold 1 to 128 calls",
                        ));
                    }
                    Window::Time(span) if span >= Duration::from_nanos(BUCKETS as u64) => {
                        WindowState::Time(TimeRing::new(span))
                    }
                    Window::Time(_) => {
                        return Err(PolicyError::new(
                            "trip",
                            "time window must be at least 10 ns",
                        ));
                    }
                };
                Trip::Ratio {
                    ratio: to_ppm(ratio),
                    min_calls: min_calls.max(1),
                    window,
                }
            }
        };
        let slow = match self.slow {
            None => None,
            Some(_) if matches!(trip, Trip::Consecutive(_)) => {
                return Err(PolicyError::new(
                    "slow_calls",
                    "needs a failure-ratio trip condition with a window",
                ));
            }
            Some(s) if !ratio_ok(s.ratio) => {
                return Err(PolicyError::new("slow_calls", "ratio must be in (0, 1]"));
            }
            Some(s) => Some((duration_to_nanos(s.threshold), to_ppm(s.ratio))),
        };
        if !(self.open_multiplier.is_finite() && self.open_multiplier >= 1.0) {
            return Err(PolicyError::new(
                "open_growth",
                "multiplier must be finite and at least 1.0",
            ));
        }
        if !(0.0..=1.0).contains(&self.open_jitter) {
            return Err(PolicyError::new(
                "open_jitter",
                "fraction must be in [0, 1]",
            ));
        }
        if self.probes == 0 {
            return Err(PolicyError::new("half_open_probes", "must be at least 1"));
        }
        if self.probe_timeout.is_zero() {
            return Err(PolicyError::new("probe_timeout", "must not be zero"));
        }
        let breaker = CircuitBreaker {
            trip,
            slow,
            open_for: duration_to_nanos(self.open_for),
            open_multiplier: self.open_multiplier,
            max_open: duration_to_nanos(self.max_open.max(self.open_for)),
            open_jitter: to_fixed(self.open_jitter),
            probes: self.probes,
            probe_timeout: duration_to_nanos(self.probe_timeout),
            rng: SplitMix64(self.seed),
            state: BreakerState::Closed,
            generation: 0,
            consecutive: 0,
            reopens: 0,
            open_until: Instant::ZERO,
            probes_in_flight: 0,
            probe_successes: 0,
            last_probe_at: Instant::ZERO,
            latest: Instant::ZERO,
            transitions: TransitionLog::default(),
            #[cfg(target_has_atomic = "64")]
            gate: GateHandle::default(),
        };
        breaker.publish();
        Ok(breaker)
    }
}

/// A circuit breaker shared by everything that calls one backend.
///
/// ```
/// use core::time::Duration;
/// use resil_core::{BreakerState, CallOutcome, CircuitBreaker, Instant};
///
/// let mut breaker = CircuitBreaker::builder()
///     .open_for(Duration::from_secs(30))
///     .build()?;
/// let t0 = Instant::ZERO;
/// for _ in 0..5 {
///     let permit = breaker.try_acquire(t0)?;
///     breaker.record(t0, permit, CallOutcome::Failure);
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.try_acquire(t0).is_err());
/// // 30 s later the next caller is admitted as the half-open probe.
/// let probe = breaker.try_acquire(t0 + Duration::from_secs(30))?;
/// breaker.record(t0 + Duration::from_secs(31), probe, CallOutcome::Success);
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    trip: Trip,
    slow: Option<(u64, u64)>,
    open_for: u64,
    open_multiplier: f64,
    max_open: u64,
    open_jitter: u64,
    probes: u32,
    probe_timeout: u64,
    rng: SplitMix64,
    state: BreakerState,
    generation: u32,
    consecutive: u32,
    reopens: u32,
    open_until: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    last_probe_at: Instant,
    /// Latest `now` seen; callers on other threads may pass slightly older readings.
    latest: Instant,
    transitions: TransitionLog,
    #[cfg(target_has_atomic = "64")]
    gate: GateHandle,
}

// One breaker per backend: an inline window beats a pointer chase on every record.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Trip {
    Consecutive(u32),
    Ratio {
        ratio: u64,
        min_calls: u32,
        window: WindowState,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum WindowState {
    Calls(CallRing),
    Time(TimeRing),
}

/// Counts in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    calls: u32,
    failures: u32,
    slow: u32,
}

/// The outcomes of the last `capacity` calls as bits.
#[derive(Clone, Debug)]
struct CallRing {
    failures: u128,
    slow: u128,
    next: u32,
    len: u32,
    capacity: u32,
}

impl CallRing {
    fn new(capacity: u32) -> CallRing {
        CallRing {
            failures: 0,
            slow: 0,
            next: 0,
            len: 0,
            capacity,
        }
    }

    fn push(&mut self, failure: bool, slow: bool) {
        let bit = 1u128 << self.next;
        self.failures = (self.failures & !bit) | if failure { bit } else { 0 };
        self.slow = (self.slow & !bit) | if slow { bit } else { 0 };
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    fn tally(&self) -> Tally {
        Tally {
            calls: self.len,
            failures: self.failures.count_ones(),
            slow: self.slow.count_ones(),
        }
    }

    fn clear(&mut self) {
        *self = CallRing::new(self.capacity);
    }
}

/// Per-bucket counts over a span of time; a bucket is reused once its slot comes round again.
#[derive(Clone, Debug)]
struct TimeRing {
    bucket_nanos: u64,
    ticks: [u64; BUCKETS],
    counts: [Tally; BUCKETS],
}

impl TimeRing {
    fn new(span: Duration) -> TimeRing {
        TimeRing {
            bucket_nanos: (duration_to_nanos(span) / BUCKETS as u64).max(1),
            ticks: [u64::MAX; BUCKETS],
            counts: [Tally::default(); BUCKETS],
        }
    }

    fn push(&mut self, now: Instant, failure: bool, slow: bool) {
        let tick = now.as_nanos() / self.bucket_nanos;
        let slot = (tick % BUCKETS as u64) as usize;
        if self.ticks[slot] != tick {
            self.ticks[slot] = tick;
            self.counts[slot] = Tally::default();
        }
        let c = &mut self.counts[slot];
        c.calls = c.calls.saturating_add(1);
        c.failures = c.failures.saturating_add(u32::from(failure));
        c.slow = c.slow.saturating_add(u32::from(slow));
    }

    fn tally(&self, now: Instant) -> Tally {
        let tick = now.as_nanos() / self.bucket_nanos;
        let mut sum = Tally::default();
        for (t, c) in self.ticks.iter().zip(&self.counts) {
            if *t != u64::MAX && tick.saturating_sub(*t) < BUCKETS as u64 {
                sum.calls = sum.calls.saturating_add(c.calls);
                sum.failures = sum.failures.saturating_add(c.failures);
                sum.slow = sum.slow.saturating_add(c.slow);
            }
        }
        sum
    }

    fn clear(&mut self) {
        self.ticks = [u64::MAX; BUCKETS];
    }
}

/// The last few transitions, oldest dropped first.
#[derive(Clone, Debug, Default)]
struct TransitionLog {
    items: [Option<Transition>; 4],
    head: u8,
    len: u8,
    total: u64,
}

impl TransitionLog {
    fn push(&mut self, t: Transition) {
        let cap = self.items.len() as u8;
        let slot = (self.head + self.len) % cap;
        self.items[usize::from(slot)] = Some(t);
        if self.len == cap {
            self.head = (self.head + 1) % cap;
        } else {
            self.len += 1;
        }
        self.total += 1;
    }

    fn pop(&mut self) -> Option<Transition> {
        if self.len == 0 {
            return None;
        }
        let t = self.items[usize::from(self.head)].take();
        self.head = (self.head + 1) % self.items.len() as u8;
        self.len -= 1;
        t
    }
}

impl CircuitBreaker {
    /// A builder with the defaults listed on [`CircuitBreakerBuilder`].
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// The state as last seen (Open turns HalfOpen only on the next [`try_acquire`](Self::try_acquire)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Until when every call will be rejected, as far as the breaker knows: its reopen time
    /// while open, [`Instant::MAX`] while isolated, `None` while it admits calls. A retry
    /// that would wake before then is refused for certain, so it need not wait.
    pub fn rejects_until(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open => Some(self.open_until),
            BreakerState::Isolated => Some(Instant::MAX),
            BreakerState::Closed | BreakerState::HalfOpen => None,
        }
    }

    /// Failures in a row while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Transitions since the breaker was built.
    pub fn transitions_total(&self) -> u64 {
        self.transitions.total
    }

    /// The oldest unreported transition (the last four are kept).
    pub fn poll_transition(&mut self) -> Option<Transition> {
        self.transitions.pop()
    }

    /// Asks to make one call at `now`.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let now = self.observe(now);
        match self.state {
            BreakerState::Closed => Ok(self.permit(now, false)),
            BreakerState::Isolated => Err(Rejected {
                until: Instant::MAX,
            }),
            BreakerState::Open if now < self.open_until => Err(Rejected {
                until: self.open_until,
            }),
            BreakerState::Open => {
                self.enter(now, BreakerState::HalfOpen);
                self.admit_probe(now)
            }
            BreakerState::HalfOpen => self.admit_probe(now),
        }
    }

    /// Reports how the call made under `permit` ended. Permits from before the last
    /// transition are ignored.
    pub fn record(&mut self, now: Instant, permit: Permit, outcome: CallOutcome) {
        if permit.generation != self.generation {
            return;
        }
        let now = self.observe(now);
        let elapsed = now.saturating_duration_since(permit.acquired_at);
        let slow = self
            .slow
            .is_some_and(|(threshold, _)| duration_to_nanos(elapsed) >= threshold);
        let failure = outcome == CallOutcome::Failure;
        match self.state {
            BreakerState::Closed => self.record_closed(now, failure, slow),
            BreakerState::HalfOpen if permit.probe => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
                if failure || slow {
                    self.reopen(now);
                } else {
                    self.probe_successes += 1;
                    if self.probe_successes >= self.probes {
                        self.reopens = 0;
                        self.enter(now, BreakerState::Closed);
                    }
                }
            }
            _ => {}
        }
    }

    /// Hands back a permit whose call was cancelled before it had an outcome: it counts as
    /// neither success nor failure, and frees a half-open probe slot.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation == self.generation && permit.probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    /// Opens the breaker by hand until [`reset`](Self::reset).
    pub fn isolate(&mut self, now: Instant) {
        if self.state != BreakerState::Isolated {
            self.enter(now, BreakerState::Isolated);
        }
    }

    /// Closes the breaker by hand and forgets all counts.
    pub fn reset(&mut self, now: Instant) {
        self.reopens = 0;
        if self.state != BreakerState::Closed {
            self.enter(now, BreakerState::Closed);
        } else {
            self.clear_counts();
            self.generation = self.generation.wrapping_add(1);
            self.publish();
        }
    }

    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    fn permit(&self, now: Instant, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
            acquired_at: now,
        }
    }

    fn admit_probe(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let reclaim_at = self
            .last_probe_at
            .saturating_add(Duration::from_nanos(self.probe_timeout));
        if self.probes_in_flight >= self.probes {
            if now < reclaim_at {
                return Err(Rejected { until: reclaim_at });
            }
            // Every probe outlived its timeout: presume them lost. A new generation makes
            // their late results (if any) count for nothing.
            self.probes_in_flight = 0;
            self.probe_successes = 0;
            self.generation = self.generation.wrapping_add(1);
        }
        self.probes_in_flight += 1;
        self.last_probe_at = now;
        Ok(self.permit(now, true))
    }

    fn record_closed(&mut self, now: Instant, failure: bool, slow: bool) {
        self.consecutive = if failure {
            self.consecutive.saturating_add(1)
        } else {
            0
        };
        let trips = match &mut self.trip {
            Trip::Consecutive(n) => self.consecutive >= *n,
            Trip::Ratio {
                ratio,
                min_calls,
                window,
            } => {
                let tally = match window {
                    WindowState::Calls(ring) => {
                        ring.push(failure, slow);
                        ring.tally()
                    }
                    WindowState::Time(ring) => {
                        ring.push(now, failure, slow);
                        ring.tally(now)
                    }
                };
                let reaches = |count: u32, ratio: u64| {
                    u128::from(count) * u128::from(ONE)
                        >= u128::from(tally.calls) * u128::from(ratio)
                };
                tally.calls >= *min_calls
                    && ((tally.failures > 0 && reaches(tally.failures, *ratio))
                        || self
                            .slow
                            .is_some_and(|(_, r)| tally.slow > 0 && reaches(tally.slow, r)))
            }
        };
        if trips {
            self.reopens = 0;
            self.enter(now, BreakerState::Open);
        } else {
            self.publish();
        }
    }

    fn reopen(&mut self, now: Instant) {
        self.reopens = self.reopens.saturating_add(1);
        self.enter(now, BreakerState::Open);
    }

    fn open_period(&mut self) -> u64 {
        let mut period = self.open_for as f64;
        for _ in 0..self.reopens.min(64) {
            period *= self.open_multiplier;
            if period >= self.max_open as f64 {
                break;
            }
        }
        let period = (period as u64).min(self.max_open);
        if self.open_jitter == 0 {
            return period;
        }
        let extra = scale(period, self.open_jitter);
        period.saturating_add(crate::backoff::uniform(&mut self.rng, extra))
    }

    fn enter(&mut self, now: Instant, to: BreakerState) {
        let from = self.state;
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        match to {
            BreakerState::Open => {
                let period = self.open_period();
                self.open_until = now.saturating_add(Duration::from_nanos(period));
            }
            BreakerState::Closed => self.clear_counts(),
            BreakerState::HalfOpen | BreakerState::Isolated => {}
        }
        self.transitions.push(Transition { from, to, at: now });
        self.publish();
    }

    /// Shows on the gate whether the breaker is quiet (see [`BreakerGate`]). Every change of
    /// state, generation or failure count ends here.
    fn publish(&self) {
        #[cfg(target_has_atomic = "64")]
        {
            let quiet = self.state == BreakerState::Closed
                && self.consecutive == 0
                && matches!(self.trip, Trip::Consecutive(_))
                && self.slow.is_none();
            let word = if quiet {
                u64::from(self.generation) << 1 | 1
            } else {
                0
            };
            self.gate
                .0
                .0
                .store(word, core::sync::atomic::Ordering::Release);
        }
    }

    /// The gate retry machines read instead of taking this breaker's lock (see
    /// [`RetryMachine::with_breaker_gate`](crate::RetryMachine::with_breaker_gate)).
    #[cfg(target_has_atomic = "64")]
    pub fn gate(&self) -> alloc::sync::Arc<BreakerGate> {
        self.gate.0.clone()
    }

    fn clear_counts(&mut self) {
        self.consecutive = 0;
        if let Trip::Ratio { window, .. } = &mut self.trip {
            match window {
                WindowState::Calls(ring) => ring.clear(),
                WindowState::Time(ring) => ring.clear(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    //! The table on [`BreakerState`], held by a property test.
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::time::Duration;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::{BreakerState, CallOutcome, CircuitBreaker, Permit, TripCondition, Window};
    use crate::time::Instant;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum On {
        Acquire,
        Record,
        Release,
        Isolate,
        Reset,
    }

    use BreakerState::{Closed, HalfOpen, Isolated, Open};

    /// The table, row by row (the "when" column is not told apart).
    const TABLE: &[(BreakerState, On, BreakerState)] = &[
        (Closed, On::Acquire, Closed),
        (Closed, On::Record, Open),
        (Closed, On::Record, Closed),
        (Open, On::Acquire, Open),
        (Open, On::Acquire, HalfOpen),
        (Open, On::Record, Open),
        (Open, On::Release, Open),
        (HalfOpen, On::Acquire, HalfOpen),
        (HalfOpen, On::Record, Open),
        (HalfOpen, On::Record, Closed),
        (HalfOpen, On::Record, HalfOpen),
        (HalfOpen, On::Release, HalfOpen),
        (Closed, On::Isolate, Isolated),
        (Open, On::Isolate, Isolated),
        (HalfOpen, On::Isolate, Isolated),
        (Isolated, On::Acquire, Isolated),
        (Isolated, On::Record, Isolated),
        (Isolated, On::Release, Isolated),
        (Isolated, On::Isolate, Isolated),
        (Closed, On::Reset, Closed),
        (Open, On::Reset, Closed),
        (HalfOpen, On::Reset, Closed),
        (Isolated, On::Reset, Closed),
    ];

    /// Releasing in a closed breaker changes nothing and is not a row of the table.
    fn run(words: &[u64], seen: &mut Vec<(BreakerState, On, BreakerState)>) {
        let mut words = words.iter().copied();
        let mut next = move |n: u64| words.next().unwrap_or(0) % n;
        let trip = if next(2) == 0 {
            TripCondition::ConsecutiveFailures(1 + next(3) as u32)
        } else {
            TripCondition::FailureRatio {
                ratio: 0.5,
                min_calls: 2,
                window: Window::Calls(4),
            }
        };
        let mut breaker = CircuitBreaker::builder()
            .trip(trip)
            .open_for(Duration::from_secs(10))
            .half_open_probes(1 + next(2) as u32)
            .build()
            .unwrap();
        let mut now = Instant::ZERO;
        let mut held: Vec<Permit> = Vec::new();
        for _ in 0..30 {
            now = now + Duration::from_secs(next(4) * 4);
            let before = breaker.state();
            let on = match next(10) {
                0..=3 => {
                    if let Ok(permit) = breaker.try_acquire(now) {
                        held.push(permit);
                    }
                    On::Acquire
                }
                4..=7 if !held.is_empty() => {
                    let permit = held.swap_remove(next(held.len() as u64) as usize);
                    let outcome = [CallOutcome::Success, CallOutcome::Failure][next(2) as usize];
                    breaker.record(now, permit, outcome);
                    On::Record
                }
                8 if !held.is_empty() => {
                    breaker.release(held.swap_remove(0));
                    if before == Closed {
                        continue;
                    }
                    On::Release
                }
                9 if next(4) == 0 => {
                    breaker.isolate(now);
                    On::Isolate
                }
                9 if next(3) == 0 => {
                    breaker.reset(now);
                    On::Reset
                }
                _ => continue,
            };
            let row = (before, on, breaker.state());
            assert!(
                TABLE.contains(&row),
                "a transition outside the table: {row:?}"
            );
            if !seen.contains(&row) {
                seen.push(row);
            }
        }
    }

    #[test]
    fn every_transition_is_in_the_table_and_every_row_happens() {
        let seen = RefCell::new(Vec::new());
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(any::<u64>(), 60..120), |words| {
                run(&words, &mut seen.borrow_mut());
                Ok(())
            })
            .unwrap();
        let missing: Vec<_> = TABLE
            .iter()
            .filter(|row| !seen.borrow().contains(row))
            .collect();
        assert!(missing.is_empty(), "rows that never happened: {missing:?}");
    }
}
