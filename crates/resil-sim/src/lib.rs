//! # resil-sim
//!
//! Deterministic discrete-event simulation of client fleets running resil-core's real retry
//! machines — with shared circuit breakers and retry budgets — against simulated servers with
//! faults: independent failures, outages with slow recovery, latency distributions, limited
//! capacity with queueing and load shedding, rate limits answering 429 + `Retry-After`,
//! optimistic-concurrency conflicts, and scripted timelines. Per-client breakers and budgets can
//! be shared through a fleet store with a propagation delay ([`FleetSharing`]), running
//! resil-core's `FleetSync` against its `MemoryStore` as resil-redis runs it against Redis.
//!
//! The clock is a number that jumps to the next event, so a simulated hour takes
//! milliseconds, and the same [`Scenario`] (seed included) gives the same [`Report`], down to
//! the hash of the event log.
//!
//! ```
//! use std::time::Duration;
//! use resil_sim::{Scenario, run};
//!
//! let mut scenario = Scenario::new(42);
//! scenario.clients = 20;
//! scenario.duration = Duration::from_secs(30);
//! scenario.server.failure_probability = 0.2;
//! let report = run(&scenario);
//! assert_eq!(report.logical_requests, 20 * 30);
//! assert!(report.amplification() > 1.1 && report.amplification() < 1.3);
//! assert_eq!(run(&scenario).log_hash, report.log_hash, "same seed, same run");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod engine;
mod limiters;
mod overload;
mod report;
mod scenario;
mod schedule;

pub use engine::run;
pub use limiters::LimiterKind;
pub use overload::{
    OverloadClient, OverloadReport, OverloadScenario, OverloadSecond, Rejection, run_overload,
};
pub use report::{Report, SECONDS_KEPT, Second};
pub use scenario::{
    Arrivals, Capacity, Failure, FleetSharing, Latency, Outage, RateLimit, Scenario, Scope,
    ServerProfile,
};
