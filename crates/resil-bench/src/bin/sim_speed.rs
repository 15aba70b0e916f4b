//! Simulated attempts per second of wall time, on one core.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin sim_speed
//! taskset -c 0 target/release/sim_speed
//! ```

use std::time::{Duration, Instant};

use resil_core::{CircuitBreaker, RetryBudget, RetryPolicy};
use resil_sim::{Arrivals, Latency, Scenario, Scope, run};

fn main() {
    let mut scenario = Scenario::new(1);
    scenario.clients = 1_000;
    scenario.duration = Duration::from_secs(20);
    scenario.arrivals = Arrivals::Poisson(Duration::from_millis(10));
    scenario.policy = RetryPolicy::default();
    scenario.breaker = Some((CircuitBreaker::builder(), Scope::PerClient));
    scenario.budget = Some((RetryBudget::default(), Scope::Fleet));
    scenario.server.failure_probability = 0.2;
    scenario.server.latency = Latency::Exponential(Duration::from_millis(20));
    let mut rates = Vec::new();
    let mut attempts = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let report = run(&scenario);
        let wall = start.elapsed();
        attempts = report.attempts;
        rates.push(report.attempts as f64 / wall.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{} simulated attempts per run (1,000 clients x 100 req/s x 20 s, 20 % failures, per-client breakers, shared budget)",
        attempts
    );
    println!(
        "simulated attempts per second of wall time: median {:.0}, min {:.0}, max {:.0} (5 runs)",
        rates[2], rates[0], rates[4]
    );
}
