//! What resil-blocking's loopback tests share: a clock on which waits cost nothing, and a
//! client builder on it with the scenario policy.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resil_blocking::{Client, ClientBuilder, Clock};
use resil_core::{Instant, UnixTime};
use resil_tests::scenario_policy;

/// Real time plus whatever the client "slept": waits cost nothing, time still moves forward.
#[derive(Debug)]
pub struct ManualClock {
    jumped: AtomicU64,
    wall_origin: u64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            jumped: AtomicU64::new(0),
            wall_origin: 1_700_000_000,
        })
    }

    pub fn slept(&self) -> Duration {
        Duration::from_nanos(self.jumped.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + self.slept()
    }
    fn wall(&self) -> UnixTime {
        UnixTime(self.wall_origin + self.now().as_nanos() / 1_000_000_000)
    }
    fn sleep(&self, d: Duration) {
        self.jumped.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

/// A client on `clock` with the scenario policy and a fixed seed.
pub fn builder(clock: &Arc<ManualClock>) -> ClientBuilder {
    Client::builder()
        .policy(scenario_policy())
        .clock(clock.clone())
        .seed(7)
}
