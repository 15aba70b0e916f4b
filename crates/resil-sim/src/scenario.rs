//! What to simulate: a fleet of clients, their policy, and a server with faults.

use std::time::Duration;

use resil_core::{
    CircuitBreakerBuilder, FleetPolicy, RetryBudget, RetryPolicy, TransportErrorKind,
};

/// One simulation run. Same scenario (seed included), same report, bit for bit.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Seeds every random choice: arrivals, latencies, failures, jitter.
    pub seed: u64,
    /// Simulated time during which new logical requests arrive; in-flight ones may finish
    /// later.
    pub duration: Duration,
    /// Number of clients.
    pub clients: u32,
    /// How each client issues logical requests.
    pub arrivals: Arrivals,
    /// Stop each client after this many logical requests.
    pub requests_per_client: Option<u32>,
    /// The retry policy every client uses.
    pub policy: RetryPolicy,
    /// A circuit breaker, and whether the fleet shares one or each client has its own.
    pub breaker: Option<(CircuitBreakerBuilder, Scope)>,
    /// A retry budget, and whether it is shared or per client.
    pub budget: Option<(RetryBudget, Scope)>,
    /// The server the fleet calls.
    pub server: ServerProfile,
    /// Each client's own breaker and budget ([`Scope::PerClient`]) shared through a fleet
    /// store, as resil-redis shares them: `None` for breakers and budgets that never hear of
    /// each other.
    pub fleet: Option<FleetSharing>,
    /// The first `n` clients send at this pace instead of `arrivals` (quiet processes, which
    /// alone take long to see an outage).
    pub quiet_clients: Option<(u32, Arrivals)>,
    /// The latency sketch each client keeps when the policy hedges (`None`: the defaults).
    pub sketch: Option<resil_core::LatencySketchBuilder>,
}

/// Per-client breakers and budgets shared through a store, with the delay a sync takes: each
/// client runs resil-core's [`FleetSync`](resil_core::FleetSync) against one
/// [`MemoryStore`](resil_core::MemoryStore) (the model of resil-redis's script), so the
/// simulated fleet follows the same rules as a real one.
#[derive(Clone, Debug)]
pub struct FleetSharing {
    /// How the fleet shares (sync interval, trip condition, minimum processes).
    pub policy: FleetPolicy,
    /// One way, from a client to the store or back: a sync's answer arrives twice this after
    /// it left.
    pub propagation: Duration,
    /// Periods in which the store cannot be reached: syncs fail, and each client judges alone.
    pub store_outages: Vec<Outage>,
}

impl FleetSharing {
    /// Sharing under `policy` with a one-way delay of `propagation`, the store always up.
    pub fn new(policy: FleetPolicy, propagation: Duration) -> FleetSharing {
        FleetSharing {
            policy,
            propagation,
            store_outages: Vec::new(),
        }
    }
}

/// Whether a breaker or budget is one for the fleet or one per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One shared by every client.
    Fleet,
    /// One per client.
    PerClient,
}

/// When a client starts its next logical request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrivals {
    /// Every `interval`, with a random phase per client.
    Fixed(Duration),
    /// A Poisson process with this mean interval.
    Poisson(Duration),
    /// All at time zero: `requests_per_client` each (one when it is not set), e.g. a
    /// contention race.
    AtOnce,
}

/// How long the server takes to answer one attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always this long.
    Constant(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// Exponential with this mean.
    Exponential(Duration),
    /// `fast` but for a slow tail: a `slow_fraction` of answers take `slow`, and a
    /// `slowest_fraction` take `slowest` (a replica that stalls: "The Tail at Scale").
    SlowTail {
        /// The common answer.
        fast: Duration,
        /// The slow answer.
        slow: Duration,
        /// Its share, in [0, 1].
        slow_fraction: f64,
        /// The slowest answer.
        slowest: Duration,
        /// Its share, in [0, 1].
        slowest_fraction: f64,
    },
}

/// How a failed attempt fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A response with this status.
    Status(u16),
    /// A transport error.
    Error(TransportErrorKind),
    /// No answer at all: the attempt runs into its timeout.
    Stall,
}

/// A period in which every attempt fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// Start, from the beginning of the run.
    pub start: Duration,
    /// End.
    pub end: Duration,
}

/// Limited concurrency with a bounded queue: an attempt that would wait longer than
/// `max_queue_wait` for a worker is refused at once with 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Attempts served at the same time.
    pub workers: u32,
    /// Longest wait for a worker before the server sheds the attempt.
    pub max_queue_wait: Duration,
}

/// A token-bucket rate limit answering 429 with `Retry-After` when exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts admitted per second (also the burst).
    pub per_second: u32,
    /// The `Retry-After` sent with each 429 (whole seconds on the wire).
    pub retry_after: Duration,
}

/// The simulated server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerProfile {
    /// Service time of one attempt.
    pub latency: Latency,
    /// Independent probability that an attempt fails (outside outages).
    pub failure_probability: f64,
    /// How failures fail.
    pub failure: Failure,
    /// Periods where everything fails.
    pub outages: Vec<Outage>,
    /// After an outage the failure probability falls back linearly over this long.
    pub recovery: Duration,
    /// Limited capacity, if any.
    pub capacity: Option<Capacity>,
    /// A rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Optimistic concurrency on one resource: an attempt commits only if no other attempt
    /// committed while it ran, otherwise it gets 409 (AWS's contention experiment).
    pub optimistic_concurrency: bool,
    /// Scripted changes of `failure_probability` at given times.
    pub timeline: Vec<(Duration, f64)>,
}

impl Default for ServerProfile {
    fn default() -> Self {
        ServerProfile {
            latency: Latency::Constant(Duration::from_millis(10)),
            failure_probability: 0.0,
            failure: Failure::Status(503),
            outages: Vec::new(),
            recovery: Duration::ZERO,
            capacity: None,
            rate_limit: None,
            optimistic_concurrency: false,
            timeline: Vec::new(),
        }
    }
}

impl Scenario {
    /// A scenario with the default policy, one client, one request per second for 60 s, and a
    /// healthy server; change what the experiment needs.
    pub fn new(seed: u64) -> Scenario {
        Scenario {
            seed,
            duration: Duration::from_secs(60),
            clients: 1,
            arrivals: Arrivals::Fixed(Duration::from_secs(1)),
            requests_per_client: None,
            policy: RetryPolicy::default(),
            breaker: None,
            budget: None,
            server: ServerProfile::default(),
            fleet: None,
            quiet_clients: None,
            sketch: None,
        }
    }

    /// How client `client` issues logical requests.
    pub fn arrivals_of(&self, client: u32) -> Arrivals {
        match self.quiet_clients {
            Some((n, quiet)) if client < n => quiet,
            _ => self.arrivals,
        }
    }

    /// The most logical requests each client starts: `requests_per_client`, or one when
    /// every request arrives at once; `None` when only the duration ends them.
    pub(crate) fn request_limit(&self) -> Option<u32> {
        match (self.requests_per_client, self.arrivals) {
            (None, Arrivals::AtOnce) => Some(1),
            (limit, _) => limit,
        }
    }

    /// How many logical requests the fleet will start, on average for Poisson arrivals: the
    /// size of the run, to check before [`run`](crate::run) (the work and memory grow with it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use resil_sim::{Arrivals, Scenario};
    ///
    /// let mut s = Scenario::new(1);
    /// s.clients = 200;
    /// s.duration = Duration::from_secs(60);
    /// s.arrivals = Arrivals::Fixed(Duration::from_millis(500));
    /// assert_eq!(s.expected_logical_requests(), 24_000);
    /// ```
    pub fn expected_logical_requests(&self) -> u64 {
        let window = self.duration.as_nanos();
        let by_time = match self.arrivals {
            Arrivals::AtOnce => u128::MAX,
            // The first arrival has a random phase within one interval.
            Arrivals::Fixed(d) => window.div_ceil(d.as_nanos().max(1)),
            Arrivals::Poisson(mean) => window / mean.as_nanos().max(1),
        };
        let per_client = self
            .request_limit()
            .map_or(by_time, |limit| by_time.min(u128::from(limit)));
        u64::try_from(per_client.saturating_mul(u128::from(self.clients))).unwrap_or(u64::MAX)
    }
}
