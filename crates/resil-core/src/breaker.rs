//! The circuit breaker: a plain `&mut self` state machine with lazy timers.
//!
//! Time only moves when a caller passes `now`: Open becomes HalfOpen inside
//! [`CircuitBreaker::try_acquire`] once the open period has passed; abandoned half-open
//! probes are reclaimed, a closed breaker's count interval rolls over and a half-open breaker
//! that waited too long moves on, all the same way. Drivers share one breaker per backend
//! behind a lock ([`Shared`](crate::Shared)) and never hold it across an await. With feature
//! `std`, the clients of resil's drivers skip that lock while the breaker is closed with
//! nothing to count (a consecutive-failures trip and no failure since the last success): the
//! breaker shows that on an atomic beside it, and permits and successes then change nothing
//! in it.

use core::fmt;
use core::time::Duration;

use crate::backoff::{scale, to_fixed};
use crate::budget::{ONE, to_ppm};
use crate::error::PolicyError;
use crate::policy::Cause;
use crate::splitmix::SplitMix64;
use crate::time::{Instant, duration_to_nanos};

/// The breaker's state, and every way it changes (h11-style; a property test beside the
/// breaker holds it to this table: no transition outside it happens, and every row does). The
/// [`BreakerMode`] changes what a state does, not which states there are: a metrics-only
/// breaker makes the same transitions and admits every call, a disabled one stays closed.
///
/// | state | on | when | next state |
/// |---|---|---|---|
/// | Closed | `try_acquire` | | Closed (a permit; past a count interval, counts are cleared first) |
/// | Closed | `record` | the trip condition holds (consecutive failures, or a failure or slow-call ratio over a full enough window), not disabled | Open for the open period |
/// | Closed | `record` | otherwise | Closed |
/// | Open | `try_acquire` | before the open period ends | Open (rejected until then; metrics-only: a permit that counts for nothing) |
/// | Open | `try_acquire` | the open period has ended | HalfOpen (this call is a probe) |
/// | Open | `record`, `release` | (permits of an earlier state count for nothing) | Open |
/// | HalfOpen | `try_acquire` | | HalfOpen (a probe, or rejected while the mode admits none) |
/// | HalfOpen | `try_acquire`, `record` | it has been half-open for `half_open_max_wait` | the state that setting names (Open or Closed) |
/// | HalfOpen | `record` a probe | the half-open mode judges the backend failing (a failed probe; the ratio over its calls; a failing stage) | Open, for a longer period if it grows |
/// | HalfOpen | `record` a probe | the mode judges it recovered (enough successes; the ratio over its calls; the last stage) | Closed |
/// | HalfOpen | `record`, `release` | otherwise | HalfOpen |
/// | Closed, Open, HalfOpen, Isolated | `trip_for`, `trip_until` | | Open for that long |
/// | Closed, Open, HalfOpen | `isolate` | | Isolated |
/// | Isolated | `try_acquire`, `record`, `release`, `isolate` | | Isolated (rejected until reset) |
/// | any | `reset` | | Closed, counts forgotten |
/// | any | `set_mode` | to disabled | Closed, counts forgotten |
/// | any | `set_mode` | otherwise | unchanged |
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

/// How a breaker acts on its state (resilience4j's `METRICS_ONLY` and `DISABLED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerMode {
    /// Rejects calls while open or isolated: a circuit breaker.
    #[default]
    Enforcing,
    /// Counts, trips, half-opens and closes as an enforcing breaker would, and reports those
    /// transitions ([`Transition::enforced`] is false), but admits every call. For trying a
    /// configuration on live traffic before it may reject anything.
    MetricsOnly,
    /// Admits every call and stays closed: outcomes are still counted (the counts can be read,
    /// and an enforcing breaker carries on from them), but nothing trips.
    Disabled,
}

/// A state change, reported for hooks and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When it happened.
    pub at: Instant,
    /// Whether the breaker acts on it: false for a [`BreakerMode::MetricsOnly`] breaker's
    /// transitions, which it reports but never rejects a call for.
    pub enforced: bool,
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
    /// The outcome that opened the circuit, when a recorded call's did (Polly's
    /// `BrokenCircuitException.InnerException`); `None` when it was opened by hand or started
    /// open, or while half-open probes decide.
    pub opened_by: Option<Cause>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.until == Instant::MAX {
            f.write_str("circuit breaker is isolated")?;
        } else {
            write!(f, "circuit breaker is open until {}", self.until)?;
        }
        if let Some(cause) = self.opened_by {
            write!(f, " (opened by {cause})")?;
        }
        Ok(())
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
    /// reached `ratio` (in `(0, 1]`). A `min_calls` above a count window's size is lowered to
    /// it, as resilience4j does: a window of 5 calls never holds 6.
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
    /// A call at least this long is slow (not zero: every call would be slow).
    pub threshold: Duration,
    /// Slow fraction that trips, in `(0, 1]`.
    pub ratio: f64,
}

/// How a half-open breaker decides between closing and reopening.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum HalfOpen {
    /// At most this many probes out at once; that many successes in a row close, any
    /// failure (or slow call) reopens (Hystrix, Polly and gobreaker's `MaxRequests`). The
    /// default, with 1.
    Probes(u32),
    /// resilience4j's half-open state: admit `calls` probes, and once all of them are
    /// reported reopen when their failure ratio (or slow-call ratio, with
    /// [`SlowCalls`]) reaches the limit, close otherwise.
    Ratio {
        /// Probes admitted and judged together (`permittedNumberOfCallsInHalfOpenState`).
        calls: u32,
        /// Failure fraction among them that reopens, in `(0, 1]`.
        failure_ratio: f64,
    },
    /// seatbelt's progressive recovery: one probe, then six stages admitting 0.1 %, 1 %, 5 %,
    /// 10 %, 25 % and 50 % of calls, each lasting one break (`open_for`); a stage whose
    /// failure ratio reaches `failure_ratio` reopens, the last one passed closes. A fleet
    /// recovering at once sends its load back in steps, not in one. Which calls probe is
    /// drawn from the breaker's seeded RNG (see
    /// [`open_jitter`](CircuitBreakerBuilder::open_jitter)); a stage that admitted none
    /// admits the first call after it ends, so a quiet client still moves on.
    Progressive {
        /// Failure fraction in a stage that reopens, in `(0, 1]`.
        failure_ratio: f64,
    },
}

/// The probe shares of [`HalfOpen::Progressive`]'s stages after its single probe, as seatbelt
/// has them.
pub const PROGRESSIVE_STAGES: [f64; 6] = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5];

/// What a break-duration function ([`CircuitBreakerBuilder::break_duration`]) sees when the
/// breaker opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakContext {
    /// How many times it reopened from half-open since it last closed: 0 when it trips from
    /// closed (Polly's `HalfOpenAttempts`).
    pub reopens: u32,
    /// Failures among the calls that opened it: in the window (or in a row) when it tripped,
    /// among the probes when it reopened (Polly's `FailureCount`).
    pub failures: u32,
    /// Calls those failures were counted among.
    pub calls: u32,
}

/// A break-duration function: how long to stay open this time (Polly's
/// `BreakDurationGenerator`). A plain `fn`; its answer is capped at the growth cap
/// ([`open_growth`](CircuitBreakerBuilder::open_growth)'s `max_open`), and `open_jitter` is
/// added to it.
pub type BreakDurationFn = fn(&BreakContext) -> Duration;

const BUCKETS: usize = 10;
const MAX_CALL_WINDOW: u32 = 128;

/// Builds a [`CircuitBreaker`]. Defaults: 5 consecutive failures, open 30 s, half-open with 1
/// probe, no growth of the open period (capped at 5 min if it grows), probes abandoned after
/// 30 s, enforcing, starting closed; no count interval, no half-open time limit.
#[derive(Clone, Debug)]
pub struct CircuitBreakerBuilder {
    trip: TripCondition,
    slow: Option<SlowCalls>,
    open_for: Duration,
    open_multiplier: f64,
    max_open: Duration,
    open_jitter: f64,
    break_fn: Option<BreakDurationFn>,
    half_open: HalfOpen,
    probe_timeout: Duration,
    half_open_max_wait: Option<(Duration, BreakerState)>,
    count_interval: Option<Duration>,
    mode: BreakerMode,
    initial: BreakerState,
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
            break_fn: None,
            half_open: HalfOpen::Probes(1),
            probe_timeout: Duration::from_secs(30),
            half_open_max_wait: None,
            count_interval: None,
            mode: BreakerMode::Enforcing,
            initial: BreakerState::Closed,
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
    /// together do not probe together; randomness comes from `seed`, which also picks a
    /// progressive half-open's probes.
    pub fn open_jitter(mut self, fraction: f64, seed: u64) -> Self {
        self.open_jitter = fraction;
        self.seed = seed;
        self
    }

    /// Chooses each open period with `f` (Polly's `BreakDurationGenerator`) instead of
    /// `open_for` and its growth: `f` sees how many times the breaker reopened and the
    /// failures that opened it ([`BreakContext`]). Its answer is capped at `max_open` (from
    /// [`open_growth`](Self::open_growth), 5 min by default); `open_jitter` is added to it.
    /// `open_for` still times a progressive half-open's stages.
    pub fn break_duration(mut self, f: BreakDurationFn) -> Self {
        self.break_fn = Some(f);
        self
    }

    /// How many probes half-open admits at once; that many successes close it. The same as
    /// `half_open(HalfOpen::Probes(probes))`.
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.half_open = HalfOpen::Probes(probes);
        self
    }

    /// How half-open decides between closing and reopening; see [`HalfOpen`].
    pub fn half_open(mut self, mode: HalfOpen) -> Self {
        self.half_open = mode;
        self
    }

    /// A probe not reported within this time is presumed abandoned and its slot reclaimed,
    /// so a lost permit can never wedge the breaker half-open.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d;
        self
    }

    /// After `wait` half-open without a decision, go to `then`: [`BreakerState::Open`] (try
    /// again after another break) or [`BreakerState::Closed`] (resilience4j's
    /// `maxWaitDurationInHalfOpenState` and `transitionToStateAfterWaitDuration`). Without it,
    /// half-open waits for its probes (and reclaims lost ones after `probe_timeout`).
    pub fn half_open_max_wait(mut self, wait: Duration, then: BreakerState) -> Self {
        self.half_open_max_wait = Some((wait, then));
        self
    }

    /// While closed, forget the counts every `interval` (gobreaker's `Interval`): the first
    /// call after an interval ends starts a new one, with cleared counts, and calls made in an
    /// earlier interval count for nothing when they end.
    pub fn count_interval(mut self, interval: Duration) -> Self {
        self.count_interval = Some(interval);
        self
    }

    /// How the breaker acts on its state; see [`BreakerMode`]. Change it later with
    /// [`CircuitBreaker::set_mode`].
    pub fn mode(mut self, mode: BreakerMode) -> Self {
        self.mode = mode;
        self
    }

    /// The state to start in (resilience4j's `initialState`): Closed (the default); Open, for
    /// one open period from the first instant the breaker is asked at; HalfOpen, probing from
    /// the first call; or Isolated, until [`reset`](CircuitBreaker::reset).
    pub fn initial_state(mut self, state: BreakerState) -> Self {
        self.initial = state;
        self
    }

    /// Validates the settings; the error names the first bad one. No setting, alone or with
    /// another, builds a breaker that cannot trip or cannot close again (an isolated or
    /// disabled breaker aside, which are meant not to).
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
                let (window, most) = match window {
                    Window::Calls(n) if (1..=MAX_CALL_WINDOW).contains(&n) => {
                        (WindowState::Calls(CallRing::new(n)), n)
                    }
                    Window::Calls(_) => {
                        return Err(PolicyError::new(
                            "trip",
                            "call window must hold 1 to 128 calls",
                        ));
                    }
                    Window::Time(span) if span >= Duration::from_nanos(BUCKETS as u64) => {
                        (WindowState::Time(TimeRing::new(span)), u32::MAX)
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
                    // A count window never holds more calls than its size.
                    min_calls: min_calls.clamp(1, most),
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
            Some(s) if s.threshold.is_zero() => {
                return Err(PolicyError::new(
                    "slow_calls",
                    "a zero threshold makes every call slow, so the breaker could never close",
                ));
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
        let open_for = duration_to_nanos(self.open_for);
        let half_open = match self.half_open {
            HalfOpen::Probes(0) => {
                return Err(PolicyError::new("half_open_probes", "must be at least 1"));
            }
            HalfOpen::Probes(n) => Rule::Probes(n),
            HalfOpen::Ratio { calls: 0, .. } => {
                return Err(PolicyError::new(
                    "half_open",
                    "a ratio half-open must admit at least 1 call",
                ));
            }
            HalfOpen::Ratio {
                calls,
                failure_ratio,
            } if ratio_ok(failure_ratio) => Rule::Ratio {
                calls,
                ratio: to_ppm(failure_ratio),
            },
            HalfOpen::Progressive { failure_ratio } if ratio_ok(failure_ratio) => {
                if open_for == 0 {
                    return Err(PolicyError::new(
                        "half_open",
                        "progressive stages last one open_for: with none, there is no ramp",
                    ));
                }
                Rule::Progressive {
                    ratio: to_ppm(failure_ratio),
                }
            }
            HalfOpen::Ratio { .. } | HalfOpen::Progressive { .. } => {
                return Err(PolicyError::new(
                    "half_open",
                    "failure ratio must be in (0, 1]",
                ));
            }
        };
        if self.probe_timeout.is_zero() {
            return Err(PolicyError::new("probe_timeout", "must not be zero"));
        }
        let max_half_open = match self.half_open_max_wait {
            None => None,
            Some((wait, _)) if wait.is_zero() => {
                return Err(PolicyError::new("half_open_max_wait", "must not be zero"));
            }
            Some((_, BreakerState::HalfOpen | BreakerState::Isolated)) => {
                return Err(PolicyError::new(
                    "half_open_max_wait",
                    "may go on to Open or Closed only",
                ));
            }
            Some((wait, BreakerState::Open))
                if matches!(half_open, Rule::Progressive { .. })
                    && duration_to_nanos(wait)
                        <= open_for.saturating_mul(PROGRESSIVE_STAGES.len() as u64) =>
            {
                return Err(PolicyError::new(
                    "half_open_max_wait",
                    "must be longer than the six stages of a progressive half-open \
                     (6 × open_for), or it reopens before it could close",
                ));
            }
            Some((wait, then)) => Some((duration_to_nanos(wait), then)),
        };
        let count_interval = match self.count_interval {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(PolicyError::new("count_interval", "must not be zero"));
            }
            Some(d) => duration_to_nanos(d),
        };
        if self.mode == BreakerMode::Disabled && self.initial != BreakerState::Closed {
            return Err(PolicyError::new(
                "initial_state",
                "a disabled breaker stays closed",
            ));
        }
        let mut breaker = CircuitBreaker {
            trip,
            slow,
            open_for,
            open_multiplier: self.open_multiplier,
            max_open: duration_to_nanos(self.max_open.max(self.open_for)),
            open_jitter: to_fixed(self.open_jitter),
            break_fn: self.break_fn,
            half_open,
            probe_timeout: duration_to_nanos(self.probe_timeout),
            max_half_open,
            count_interval,
            mode: self.mode,
            rng: SplitMix64(self.seed),
            state: self.initial,
            generation: 0,
            consecutive: 0,
            reopens: 0,
            open_until: Instant::ZERO,
            open_pending: self.initial == BreakerState::Open,
            probes: Probes::default(),
            half_open_since: Instant::ZERO,
            interval_ends: Instant::ZERO,
            latest: Instant::ZERO,
            opened_by: None,
            transitions: TransitionLog::default(),
            #[cfg(target_has_atomic = "64")]
            gate: GateHandle::default(),
            fleet: None,
        };
        if breaker.state == BreakerState::HalfOpen {
            breaker.probes.stage_pending = true;
        }
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
    break_fn: Option<BreakDurationFn>,
    half_open: Rule,
    probe_timeout: u64,
    /// How long half-open may last, and the state after it.
    max_half_open: Option<(u64, BreakerState)>,
    /// Nanoseconds between clearings of a closed breaker's counts; 0 for never.
    count_interval: u64,
    mode: BreakerMode,
    rng: SplitMix64,
    state: BreakerState,
    generation: u32,
    consecutive: u32,
    reopens: u32,
    open_until: Instant,
    /// Started open ([`CircuitBreakerBuilder::initial_state`]): the open period begins at the
    /// first instant the breaker is asked at.
    open_pending: bool,
    probes: Probes,
    half_open_since: Instant,
    /// When a closed breaker's count interval ends ([`Instant::ZERO`]: not started yet).
    interval_ends: Instant,
    /// Latest `now` seen; callers on other threads may pass slightly older readings.
    latest: Instant,
    opened_by: Option<Cause>,
    transitions: TransitionLog,
    #[cfg(target_has_atomic = "64")]
    gate: GateHandle,
    /// What the breaker keeps for a fleet it shares its state with ([`FleetSync`](crate::FleetSync));
    /// `None`, and nothing changes on any path, without one.
    fleet: Option<FleetSide>,
}

/// [`HalfOpen`], validated.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Probes(u32),
    Ratio { calls: u32, ratio: u64 },
    Progressive { ratio: u64 },
}

/// The probes of one half-open period (or of a progressive half-open's stage).
#[derive(Clone, Copy, Debug, Default)]
struct Probes {
    /// Probes out and not yet reported.
    out: u32,
    /// Probes reported in this period (or stage).
    calls: u32,
    /// Of those, failures.
    failures: u32,
    /// Of those, slow calls.
    slow: u32,
    /// Of those, failures or slow calls.
    bad: u32,
    last_at: Instant,
    /// A progressive half-open's stage: 0 is the single probe, 1 to 6 the shares.
    stage: u8,
    stage_ends: Instant,
    /// When a progressive stage next admits a call whatever the share drew.
    fallback_at: Instant,
    /// Started half-open ([`CircuitBreakerBuilder::initial_state`]): the period begins at the
    /// first instant the breaker is asked at.
    stage_pending: bool,
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

    /// How the breaker acts on its state.
    pub fn mode(&self) -> BreakerMode {
        self.mode
    }

    /// The outcome of the recorded call that opened the circuit, while it is not closed
    /// (`None` when it was opened by hand or started open).
    pub fn opened_by(&self) -> Option<Cause> {
        self.opened_by
    }

    /// Until when every call will be rejected, as far as the breaker knows: its reopen time
    /// while open, [`Instant::MAX`] while isolated, `None` while it admits calls (always, for a
    /// breaker that is not [`BreakerMode::Enforcing`]). A retry that would wake before then is
    /// refused for certain, so it need not wait.
    pub fn rejects_until(&self) -> Option<Instant> {
        if self.mode != BreakerMode::Enforcing {
            return None;
        }
        match self.state {
            BreakerState::Open if self.open_pending => None,
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
        self.advance(now);
        let verdict = match self.state {
            BreakerState::Closed => return Ok(self.permit(now, false)),
            BreakerState::Isolated => Err(self.rejected(Instant::MAX)),
            BreakerState::Open if now < self.open_until => {
                if let Some(f) = &mut self.fleet {
                    f.rejected = f.rejected.saturating_add(1);
                }
                Err(self.rejected(self.open_until))
            }
            // With a fleet, the open period ends for one process at a time: the one holding
            // the fleet's probe lease.
            BreakerState::Open
                if self
                    .fleet
                    .as_ref()
                    .is_some_and(|f| f.gate == LeaseGate::Wait) =>
            {
                if let Some(f) = &mut self.fleet {
                    f.rejected = f.rejected.saturating_add(1);
                }
                Err(self.rejected(self.open_until))
            }
            BreakerState::Open => {
                if let Some(f) = &mut self.fleet {
                    if f.gate == LeaseGate::Granted {
                        f.gate = LeaseGate::Wait;
                    }
                }
                self.enter(now, BreakerState::HalfOpen);
                self.admit_probe(now)
            }
            BreakerState::HalfOpen => self.admit_probe(now),
        };
        match verdict {
            // A metrics-only breaker admits what it would reject; the call counts for nothing.
            Err(_) if self.mode == BreakerMode::MetricsOnly => Ok(self.permit(now, false)),
            verdict => verdict,
        }
    }

    /// Reports how the call made under `permit` ended. Permits from before the last
    /// transition (or count interval) are ignored.
    pub fn record(&mut self, now: Instant, permit: Permit, outcome: CallOutcome) {
        self.record_outcome(now, permit, outcome, None);
    }

    /// [`record`](Self::record), with the outcome the call ended with: should it open the
    /// circuit, rejections carry it ([`Rejected::opened_by`]).
    pub fn record_with_cause(
        &mut self,
        now: Instant,
        permit: Permit,
        outcome: CallOutcome,
        cause: Cause,
    ) {
        self.record_outcome(now, permit, outcome, Some(cause));
    }

    fn record_outcome(
        &mut self,
        now: Instant,
        permit: Permit,
        outcome: CallOutcome,
        cause: Option<Cause>,
    ) {
        let now = self.observe(now);
        self.advance(now);
        if permit.generation != self.generation {
            return;
        }
        let elapsed = now.saturating_duration_since(permit.acquired_at);
        let slow = self
            .slow
            .is_some_and(|(threshold, _)| duration_to_nanos(elapsed) >= threshold);
        let failure = outcome == CallOutcome::Failure;
        match self.state {
            BreakerState::Closed => self.record_closed(now, failure, slow, cause),
            BreakerState::HalfOpen if permit.probe => self.record_probe(now, failure, slow, cause),
            _ => {}
        }
    }

    /// Hands back a permit whose call was cancelled before it had an outcome: it counts as
    /// neither success nor failure, and frees a half-open probe slot.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation == self.generation && permit.probe {
            self.probes.out = self.probes.out.saturating_sub(1);
        }
    }

    /// Opens the breaker by hand until [`reset`](Self::reset). A manual order: a metrics-only
    /// or disabled breaker becomes enforcing (as resilience4j's transitions leave those
    /// states).
    pub fn isolate(&mut self, now: Instant) {
        self.mode = BreakerMode::Enforcing;
        if self.state != BreakerState::Isolated {
            self.opened_by = None;
            self.enter(now, BreakerState::Isolated);
        }
    }

    /// Opens the breaker by hand for `d` from `now` (resilience4j's
    /// `transitionToOpenStateFor`); then it half-opens as after any open period. A manual
    /// order, like [`isolate`](Self::isolate).
    pub fn trip_for(&mut self, now: Instant, d: Duration) {
        let now = self.observe(now);
        self.trip_until(now, now.saturating_add(d));
    }

    /// Opens the breaker by hand until `until` (resilience4j's `transitionToOpenStateUntil`).
    /// A manual order, like [`isolate`](Self::isolate).
    pub fn trip_until(&mut self, now: Instant, until: Instant) {
        let now = self.observe(now);
        self.mode = BreakerMode::Enforcing;
        self.open_pending = false;
        self.opened_by = None;
        self.open_until = until;
        if self.state == BreakerState::Open {
            self.publish();
        } else {
            self.enter(now, BreakerState::Open);
        }
    }

    /// Closes the breaker by hand and forgets all counts. The mode stays.
    pub fn reset(&mut self, now: Instant) {
        self.reopens = 0;
        self.open_pending = false;
        if self.state != BreakerState::Closed {
            self.enter(now, BreakerState::Closed);
        } else {
            self.clear_counts();
            self.generation = self.generation.wrapping_add(1);
            self.publish();
        }
    }

    /// Changes how the breaker acts on its state (resilience4j's `transitionToDisabledState`
    /// and `transitionToMetricsOnlyState`, and back). Disabling closes it and forgets its
    /// counts; the other changes keep state and counts, so an enforcing breaker takes over
    /// what a metrics-only one saw.
    pub fn set_mode(&mut self, now: Instant, mode: BreakerMode) {
        self.mode = mode;
        if mode == BreakerMode::Disabled {
            self.reopens = 0;
            self.open_pending = false;
            if self.state != BreakerState::Closed {
                self.enter(now, BreakerState::Closed);
                return;
            }
            self.clear_counts();
            self.generation = self.generation.wrapping_add(1);
        }
        self.publish();
    }

    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    /// The lazy timers: a count interval that ended, an initial state that starts now, a
    /// half-open period that lasted too long.
    fn advance(&mut self, now: Instant) {
        match self.state {
            BreakerState::Closed if self.count_interval != 0 => {
                let interval = Duration::from_nanos(self.count_interval);
                if self.interval_ends == Instant::ZERO {
                    self.interval_ends = now.saturating_add(interval);
                } else if now >= self.interval_ends {
                    self.clear_counts();
                    self.generation = self.generation.wrapping_add(1);
                    self.interval_ends = now.saturating_add(interval);
                    self.publish();
                }
            }
            BreakerState::Open if self.open_pending => {
                self.open_pending = false;
                let period = self.open_period(0, 0);
                self.open_until = now.saturating_add(Duration::from_nanos(period));
            }
            BreakerState::HalfOpen => {
                if self.probes.stage_pending {
                    self.probes.stage_pending = false;
                    self.half_open_since = now;
                }
                let Some((wait, then)) = self.max_half_open else {
                    return;
                };
                if now
                    >= self
                        .half_open_since
                        .saturating_add(Duration::from_nanos(wait))
                {
                    if then == BreakerState::Closed {
                        self.close(now);
                    } else {
                        let (failures, calls) = (self.probes.failures, self.probes.calls);
                        self.reopen(now, failures, calls, self.opened_by);
                    }
                }
            }
            _ => {}
        }
    }

    fn permit(&self, now: Instant, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
            acquired_at: now,
        }
    }

    fn rejected(&self, until: Instant) -> Rejected {
        Rejected {
            until,
            opened_by: self.opened_by,
        }
    }

    fn admit_probe(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let limit = match self.half_open {
            Rule::Probes(k) => k,
            Rule::Ratio { calls, .. } => calls.saturating_sub(self.probes.calls),
            Rule::Progressive { .. } if self.probes.stage == 0 => 1,
            Rule::Progressive { .. } => return self.admit_share(now),
        };
        let reclaim_at = self
            .probes
            .last_at
            .saturating_add(Duration::from_nanos(self.probe_timeout));
        if self.probes.out >= limit {
            if now < reclaim_at {
                return Err(self.rejected(reclaim_at));
            }
            // Every probe outlived its timeout: presume them lost and start the judgement
            // over. A new generation makes their late results (if any) count for nothing.
            let stage = self.probes.stage;
            self.probes = Probes {
                stage,
                stage_ends: self.probes.stage_ends,
                fallback_at: self.probes.fallback_at,
                ..Probes::default()
            };
            self.generation = self.generation.wrapping_add(1);
        }
        self.probes.out += 1;
        self.probes.last_at = now;
        Ok(self.permit(now, true))
    }

    /// A progressive stage admits its share of calls, drawn at random, and one call whenever
    /// `fallback_at` has passed (at most one per stage length), so that a quiet client still
    /// gets its probes.
    fn admit_share(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let share = PROGRESSIVE_STAGES[usize::from(self.probes.stage - 1).min(5)];
        // The draw as a fraction of 2^64 against the share as one.
        let admitted = (self.rng.next_value() as f64) < share * 18_446_744_073_709_551_616.0;
        if !admitted {
            if now < self.probes.fallback_at {
                return Err(self.rejected(self.probes.fallback_at));
            }
            self.probes.fallback_at = now.saturating_add(Duration::from_nanos(self.open_for));
        }
        self.probes.out = self.probes.out.saturating_add(1);
        self.probes.last_at = now;
        Ok(self.permit(now, true))
    }

    fn record_closed(&mut self, now: Instant, failure: bool, slow: bool, cause: Option<Cause>) {
        if let Some(f) = &mut self.fleet {
            f.count(failure);
        }
        self.consecutive = if failure {
            self.consecutive.saturating_add(1)
        } else {
            0
        };
        let (trips, failures, calls) = match &mut self.trip {
            Trip::Consecutive(n) => (self.consecutive >= *n, self.consecutive, self.consecutive),
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
                let trips = tally.calls >= *min_calls
                    && (reaches(tally.failures, tally.calls, *ratio)
                        || self
                            .slow
                            .is_some_and(|(_, r)| reaches(tally.slow, tally.calls, r)));
                (trips, tally.failures, tally.calls)
            }
        };
        if trips && self.mode != BreakerMode::Disabled {
            self.reopens = 0;
            self.open(now, failures, calls, cause);
        } else {
            self.publish();
        }
    }

    fn record_probe(&mut self, now: Instant, failure: bool, slow: bool, cause: Option<Cause>) {
        let p = &mut self.probes;
        p.out = p.out.saturating_sub(1);
        p.calls = p.calls.saturating_add(1);
        p.failures = p.failures.saturating_add(u32::from(failure));
        p.slow = p.slow.saturating_add(u32::from(slow));
        p.bad = p.bad.saturating_add(u32::from(failure || slow));
        let (calls, failures, bad) = (p.calls, p.failures, p.bad);
        match self.half_open {
            Rule::Probes(k) => {
                if failure || slow {
                    self.reopen(now, bad, calls, cause);
                } else if calls >= k {
                    self.probe_passed();
                    self.close(now);
                }
            }
            Rule::Ratio { calls: n, ratio } => {
                if calls < n {
                    return;
                }
                let slow_fails = self
                    .slow
                    .is_some_and(|(_, r)| reaches(self.probes.slow, calls, r));
                if reaches(failures, calls, ratio) || slow_fails {
                    self.reopen(now, failures, calls, cause);
                } else {
                    self.probe_passed();
                    self.close(now);
                }
            }
            Rule::Progressive { .. } if self.probes.stage == 0 => {
                if failure || slow {
                    self.reopen(now, bad, calls, cause);
                } else {
                    self.probe_passed();
                    self.next_stage(now);
                }
            }
            Rule::Progressive { ratio } => {
                if now < self.probes.stage_ends {
                    return;
                }
                if reaches(bad, calls, ratio) {
                    self.reopen(now, bad, calls, cause);
                } else if usize::from(self.probes.stage) == PROGRESSIVE_STAGES.len() {
                    self.close(now);
                } else {
                    self.next_stage(now);
                }
            }
        }
    }

    /// A progressive half-open's next stage starts now, with fresh counts.
    fn next_stage(&mut self, now: Instant) {
        let ends = now.saturating_add(Duration::from_nanos(self.open_for));
        self.probes = Probes {
            out: self.probes.out,
            last_at: self.probes.last_at,
            stage: self.probes.stage + 1,
            stage_ends: ends,
            fallback_at: ends,
            ..Probes::default()
        };
    }

    /// Trips (or reopens) for the open period, `failures` of `calls` having opened it.
    fn open(&mut self, now: Instant, failures: u32, calls: u32, cause: Option<Cause>) {
        if let Some(f) = &mut self.fleet {
            f.opened = true;
        }
        let period = self.open_period(failures, calls);
        self.opened_by = cause;
        self.open_until = now.saturating_add(Duration::from_nanos(period));
        self.enter(now, BreakerState::Open);
    }

    fn reopen(&mut self, now: Instant, failures: u32, calls: u32, cause: Option<Cause>) {
        self.reopens = self.reopens.saturating_add(1);
        self.open(now, failures, calls, cause);
    }

    fn close(&mut self, now: Instant) {
        self.reopens = 0;
        self.enter(now, BreakerState::Closed);
    }

    fn open_period(&mut self, failures: u32, calls: u32) -> u64 {
        let period = match self.break_fn {
            Some(f) => {
                let ctx = BreakContext {
                    reopens: self.reopens,
                    failures,
                    calls,
                };
                duration_to_nanos(f(&ctx)).min(self.max_open)
            }
            None => {
                let mut period = self.open_for as f64;
                for _ in 0..self.reopens.min(64) {
                    period *= self.open_multiplier;
                    if period >= self.max_open as f64 {
                        break;
                    }
                }
                (period as u64).min(self.max_open)
            }
        };
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
        self.probes = Probes::default();
        match to {
            BreakerState::Closed => {
                self.clear_counts();
                self.opened_by = None;
                if self.count_interval != 0 {
                    self.interval_ends =
                        now.saturating_add(Duration::from_nanos(self.count_interval));
                }
            }
            BreakerState::HalfOpen => self.half_open_since = now,
            BreakerState::Open | BreakerState::Isolated => {}
        }
        self.transitions.push(Transition {
            from,
            to,
            at: now,
            enforced: self.mode != BreakerMode::MetricsOnly,
        });
        self.publish();
    }

    /// Shows on the gate whether the breaker is quiet (see [`BreakerGate`]). Every change of
    /// state, generation or failure count ends here. A breaker with a count interval is never
    /// quiet: whether a permit's interval has ended is known only under its lock.
    fn publish(&self) {
        #[cfg(target_has_atomic = "64")]
        {
            // With a fleet every outcome is counted for it, so none may skip the lock.
            let quiet = self.state == BreakerState::Closed
                && self.fleet.is_none()
                && self.consecutive == 0
                && matches!(self.trip, Trip::Consecutive(_))
                && self.slow.is_none()
                && self.count_interval == 0;
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

/// Whether the open period may end for this process (see [`CircuitBreaker::apply_fleet`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LeaseGate {
    /// No fleet to ask (never joined, or unreachable): the open period ends as usual.
    #[default]
    Local,
    /// The fleet decides: stay open past the open period until it grants the probe lease.
    Wait,
    /// The fleet granted this process the probe: the open period ends as usual, once.
    Granted,
}

/// What a breaker keeps for its fleet between two syncs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FleetSide {
    counts: FleetCounts,
    gate: LeaseGate,
    /// Calls rejected while open since the last report: demand for a probe.
    rejected: u32,
    /// It opened by its own judgement (a trip, a failed probe) since the last report.
    opened: bool,
    /// A half-open probe (the first, for a progressive half-open) passed since the last report.
    probe_passed: bool,
}

impl FleetSide {
    fn count(&mut self, failure: bool) {
        let c = &mut self.counts;
        c.calls = c.calls.saturating_add(1);
        if failure {
            c.failures = c.failures.saturating_add(1);
            c.trailing_failures = c.trailing_failures.saturating_add(1);
        } else {
            c.successes = c.successes.saturating_add(1);
            c.trailing_failures = 0;
        }
    }
}

/// Outcomes a closed breaker counted since the last report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FleetCounts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) successes: u32,
    /// Failures after the last success (all of them without a success).
    pub(crate) trailing_failures: u32,
}

/// What a fleet-shared breaker tells its [`FleetSync`](crate::FleetSync) before each sync.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BreakerReport {
    pub(crate) counts: FleetCounts,
    pub(crate) state: BreakerState,
    /// Until when it is open (meaningful while open).
    pub(crate) open_until: Instant,
    pub(crate) rejected: u32,
    pub(crate) opened: bool,
    pub(crate) probe_passed: bool,
    /// Whether it is still waiting for the probe lease it was granted.
    pub(crate) granted: bool,
}

/// What a [`FleetSync`](crate::FleetSync) tells a fleet-shared breaker after each sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FleetOrder {
    /// Whether the fleet can be asked (its store answered) or not (local judgement only).
    Connected(bool),
    /// The fleet is open until then: open (or stay open at least) until `until`.
    OpenUntil(Instant),
    /// Another process holds the probe lease until then: stay open at least that long.
    Hold(Instant),
    /// The fleet's probe lease is this process's: its open period may end.
    GrantProbe,
    /// The lease granted went back unused: wait for the fleet again.
    Revoke,
    /// A probe passed somewhere in the fleet: leave open without a probe of its own, for the
    /// first share of a progressive half-open, or closed for the other half-open modes.
    Recovered,
    /// The fleet's counts trip the breaker, as its own would.
    Trip,
}

/// The fleet's side of the breaker: only [`FleetSync`](crate::FleetSync) calls these.
impl CircuitBreaker {
    /// Starts keeping counts for a fleet. From now on every outcome takes the breaker's lock
    /// (the quiet gate stays shut), so that successes are counted too.
    pub(crate) fn enable_fleet(&mut self) {
        if self.fleet.is_none() {
            self.fleet = Some(FleetSide::default());
            self.publish();
        }
    }

    /// The trip condition, for a fleet's default: (consecutive failures) or (ratio in ppm,
    /// minimum calls, time window span in nanoseconds if time-based).
    pub(crate) fn trip_shape(&self) -> Result<u32, (u64, u32, Option<u64>)> {
        match &self.trip {
            Trip::Consecutive(n) => Ok(*n),
            Trip::Ratio {
                ratio,
                min_calls,
                window,
            } => {
                let span = match window {
                    WindowState::Calls(_) => None,
                    WindowState::Time(ring) => {
                        Some(ring.bucket_nanos.saturating_mul(BUCKETS as u64))
                    }
                };
                Err((*ratio, *min_calls, span))
            }
        }
    }

    /// The first open period (`open_for`).
    pub(crate) fn first_open_period(&self) -> Duration {
        Duration::from_nanos(self.open_for)
    }

    /// Takes what happened since the last report.
    pub(crate) fn take_fleet_report(&mut self, now: Instant) -> BreakerReport {
        let now = self.observe(now);
        self.advance(now);
        let side = self.fleet.as_mut().map(core::mem::take).unwrap_or_default();
        if let Some(f) = &mut self.fleet {
            f.gate = side.gate;
        }
        BreakerReport {
            counts: side.counts,
            state: self.state,
            open_until: self.open_until,
            rejected: side.rejected,
            opened: side.opened,
            probe_passed: side.probe_passed,
            granted: side.gate == LeaseGate::Granted,
        }
    }

    /// Carries out what the fleet decided. A disabled or isolated breaker ignores every order
    /// but [`FleetOrder::Connected`].
    pub(crate) fn apply_fleet(&mut self, now: Instant, order: FleetOrder) {
        let now = self.observe(now);
        let Some(side) = self.fleet.as_mut() else {
            return;
        };
        if let FleetOrder::Connected(up) = order {
            side.gate = match (up, side.gate) {
                (false, _) => LeaseGate::Local,
                (true, LeaseGate::Granted) => LeaseGate::Granted,
                (true, _) => LeaseGate::Wait,
            };
            return;
        }
        if self.mode == BreakerMode::Disabled || self.state == BreakerState::Isolated {
            return;
        }
        match order {
            FleetOrder::Connected(_) => {}
            FleetOrder::OpenUntil(until) => {
                self.open_pending = false;
                if self.state == BreakerState::Open {
                    self.open_until = self.open_until.max(until);
                    self.publish();
                } else {
                    self.opened_by = None;
                    self.open_until = until;
                    self.enter(now, BreakerState::Open);
                }
            }
            FleetOrder::Hold(until) => {
                if self.state == BreakerState::Open {
                    self.open_until = self.open_until.max(until);
                }
            }
            FleetOrder::GrantProbe => side.gate = LeaseGate::Granted,
            FleetOrder::Revoke => {
                if side.gate == LeaseGate::Granted {
                    side.gate = LeaseGate::Wait;
                }
            }
            FleetOrder::Recovered => {
                if self.state != BreakerState::Open {
                    return;
                }
                if let Rule::Progressive { .. } = self.half_open {
                    self.enter(now, BreakerState::HalfOpen);
                    self.next_stage(now);
                } else {
                    self.close(now);
                }
            }
            FleetOrder::Trip => {
                if self.state == BreakerState::Closed {
                    self.reopens = 0;
                    let (failures, calls) = (self.consecutive, self.consecutive);
                    self.open(now, failures, calls, None);
                }
            }
        }
    }

    fn probe_passed(&mut self) {
        if let Some(f) = &mut self.fleet {
            f.probe_passed = true;
        }
    }
}

/// Whether `count` of `calls` reaches `ratio` (parts per million); never for no count.
fn reaches(count: u32, calls: u32, ratio: u64) -> bool {
    count > 0 && u128::from(count) * u128::from(ONE) >= u128::from(calls) * u128::from(ratio)
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

    use super::{
        BreakerMode, BreakerState, CallOutcome, CircuitBreaker, HalfOpen, Permit, TripCondition,
        Window,
    };
    use crate::time::Instant;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum On {
        Acquire,
        Record,
        Release,
        Isolate,
        Reset,
        TripFor,
        SetMode,
    }

    use BreakerState::{Closed, HalfOpen as Half, Isolated, Open};

    /// The table, row by row (the "when" column is not told apart).
    const TABLE: &[(BreakerState, On, BreakerState)] = &[
        (Closed, On::Acquire, Closed),
        (Closed, On::Record, Open),
        (Closed, On::Record, Closed),
        (Open, On::Acquire, Open),
        (Open, On::Acquire, Half),
        (Open, On::Record, Open),
        (Open, On::Release, Open),
        (Half, On::Acquire, Half),
        (Half, On::Acquire, Open),
        (Half, On::Acquire, Closed),
        (Half, On::Record, Open),
        (Half, On::Record, Closed),
        (Half, On::Record, Half),
        (Half, On::Release, Half),
        (Closed, On::TripFor, Open),
        (Open, On::TripFor, Open),
        (Half, On::TripFor, Open),
        (Isolated, On::TripFor, Open),
        (Closed, On::Isolate, Isolated),
        (Open, On::Isolate, Isolated),
        (Half, On::Isolate, Isolated),
        (Isolated, On::Acquire, Isolated),
        (Isolated, On::Record, Isolated),
        (Isolated, On::Release, Isolated),
        (Isolated, On::Isolate, Isolated),
        (Closed, On::Reset, Closed),
        (Open, On::Reset, Closed),
        (Half, On::Reset, Closed),
        (Isolated, On::Reset, Closed),
        (Closed, On::SetMode, Closed),
        (Open, On::SetMode, Open),
        (Half, On::SetMode, Half),
        (Isolated, On::SetMode, Isolated),
        (Open, On::SetMode, Closed),
        (Half, On::SetMode, Closed),
        (Isolated, On::SetMode, Closed),
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
        let half_open = match next(4) {
            0 => HalfOpen::Probes(1),
            1 => HalfOpen::Probes(2),
            2 => HalfOpen::Ratio {
                calls: 2,
                failure_ratio: 0.5,
            },
            _ => HalfOpen::Progressive { failure_ratio: 0.5 },
        };
        let mode = [BreakerMode::Enforcing, BreakerMode::MetricsOnly][next(2) as usize];
        let mut builder = CircuitBreaker::builder()
            .trip(trip)
            .open_for(Duration::from_secs(10))
            .half_open(half_open)
            .mode(mode);
        if next(3) == 0 {
            let then = [Open, Closed][next(2) as usize];
            builder = builder.half_open_max_wait(Duration::from_secs(70), then);
        }
        if next(3) == 0 {
            builder = builder.count_interval(Duration::from_secs(8));
        }
        let mut breaker = builder.build().unwrap();
        let mut now = Instant::ZERO;
        let mut held: Vec<Permit> = Vec::new();
        for _ in 0..30 {
            now = now + Duration::from_secs(next(4) * 4);
            let before = breaker.state();
            let on = match next(12) {
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
                10 if next(3) == 0 => {
                    breaker.trip_for(now, Duration::from_secs(next(3) * 6));
                    On::TripFor
                }
                11 if next(2) == 0 => {
                    let modes = [
                        BreakerMode::Enforcing,
                        BreakerMode::MetricsOnly,
                        BreakerMode::Disabled,
                    ];
                    breaker.set_mode(now, modes[next(3) as usize]);
                    On::SetMode
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
