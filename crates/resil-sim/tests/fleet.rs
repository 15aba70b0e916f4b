//! A thousand clients, each with its own breaker and budget, through an outage: alone, and
//! sharing them through a fleet store with a propagation delay.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use resil_core::{CircuitBreaker, FleetPolicy, HalfOpen, RetryBudget};
use resil_sim::{Arrivals, FleetSharing, Outage, Report, Scenario, Scope, run};

const OUTAGE: (u64, u64) = (5, 20);

fn outage(fleet: Option<FleetSharing>) -> Report {
    let mut s = Scenario::new(27);
    s.clients = 1000;
    s.duration = Duration::from_secs(30);
    s.arrivals = Arrivals::Poisson(Duration::from_millis(250));
    // Client 0 calls once every 5 s.
    s.quiet_clients = Some((1, Arrivals::Fixed(Duration::from_secs(5))));
    let breaker = CircuitBreaker::builder()
        .open_for(Duration::from_secs(2))
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .open_jitter(0.1, 7);
    s.breaker = Some((breaker, Scope::PerClient));
    s.budget = Some((RetryBudget::finagle(), Scope::PerClient));
    s.server.outages = vec![Outage {
        start: Duration::from_secs(OUTAGE.0),
        end: Duration::from_secs(OUTAGE.1),
    }];
    s.fleet = fleet;
    run(&s)
}

fn shared() -> FleetSharing {
    FleetSharing::new(
        FleetPolicy::builder().build().unwrap(),
        Duration::from_millis(1),
    )
}

/// Each run is a thousand clients for 30 s: the tests share them.
fn alone() -> Report {
    static RUN: OnceLock<Report> = OnceLock::new();
    RUN.get_or_init(|| outage(None)).clone()
}

fn fleet() -> Report {
    static RUN: OnceLock<Report> = OnceLock::new();
    RUN.get_or_init(|| outage(Some(shared()))).clone()
}

fn probes_in_outage(r: &Report) -> u64 {
    r.seconds[OUTAGE.0 as usize..OUTAGE.1 as usize]
        .iter()
        .map(|s| s.probes)
        .sum()
}

#[test]
fn a_shared_fleet_sends_a_fraction_of_the_attempts_and_one_probe_per_open_period() {
    let (alone, fleet) = (alone(), fleet());
    let attempts = |r: &Report| r.attempts_between(OUTAGE.0 as usize, OUTAGE.1 as usize);
    assert!(
        attempts(&fleet) * 4 <= attempts(&alone),
        "fleet {} vs alone {}",
        attempts(&fleet),
        attempts(&alone)
    );
    // 15 s of outage at 2 s per open period: about 7 probes for the whole fleet, against one
    // per client per period alone.
    let probes = probes_in_outage(&fleet);
    assert!((4..=10).contains(&probes), "{probes} probes for the fleet");
    assert!(
        probes_in_outage(&alone) > 1000,
        "{}",
        probes_in_outage(&alone)
    );
    assert!(fleet.fleet_syncs.0 > 1000 * 200);
}

#[test]
fn the_quiet_client_opens_with_the_fleet_within_one_sync_interval_and_a_round_trip() {
    let (alone, fleet) = (alone(), fleet());
    let start = Duration::from_secs(OUTAGE.0);
    let first = fleet.first_open.iter().flatten().min().copied().unwrap();
    let quiet = fleet.first_open[0].unwrap();
    assert!(first >= start);
    assert!(
        quiet - first <= Duration::from_millis(102),
        "{:?} after the first",
        quiet - first
    );
    // Alone, it needs five failed calls: most of the outage.
    let alone_quiet = alone.first_open[0].unwrap();
    assert!(
        alone_quiet - start > Duration::from_secs(5),
        "{alone_quiet:?}"
    );
}

#[test]
fn with_the_store_down_every_client_judges_alone_and_fleet_runs_replay() {
    let mut sharing = shared();
    sharing.store_outages = vec![Outage {
        start: Duration::ZERO,
        end: Duration::from_secs(60),
    }];
    let (alone, down) = (alone(), outage(Some(sharing)));
    assert_eq!(
        down.attempts, alone.attempts,
        "no store: the same as no fleet"
    );
    assert!(down.fleet_syncs.1 > 0);
    assert_eq!(
        outage(Some(shared())).log_hash,
        fleet().log_hash,
        "same seed, same run"
    );
}
