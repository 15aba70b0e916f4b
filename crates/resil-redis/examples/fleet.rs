//! Two clients sharing one breaker through Redis, as two processes of a service would: the
//! first calls a backend that is down until its breaker trips; the second, which has made no
//! call at all, is opened by the fleet within a sync interval.
//!
//! Starts nothing itself: give it a Redis URL (and, optionally, the backend to call; by
//! default 127.0.0.1:1, where nothing listens, so every call fails).
//!
//! ```sh
//! redis-server --port 6399 --save "" --appendonly no &
//! cargo run -p resil-redis --example fleet -- redis://127.0.0.1:6399/0
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resil_blocking::{BreakerState, CircuitBreaker, Client, RetryPolicy};
use resil_core::HalfOpen;
use resil_redis::{FleetPolicy, RedisFleet};

/// A client's breaker, watched from outside.
type SharedBreaker = Arc<Mutex<CircuitBreaker>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let redis = args.next().ok_or("usage: fleet REDIS_URL [BACKEND_URL]")?;
    let backend = args.next().unwrap_or_else(|| "http://127.0.0.1:1".into());
    // A fleet of two: failures from both are not needed to open it (min_nodes 1), so one
    // process's trip opens the other.
    let policy = FleetPolicy::builder().min_nodes(1).build()?;
    let fleet = RedisFleet::builder(&redis, "resil-example")
        .policy(policy)
        .build()?;
    let client = || -> Result<(Client, SharedBreaker), Box<dyn std::error::Error>> {
        let breaker = CircuitBreaker::builder()
            .open_for(Duration::from_secs(5))
            .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
            .build()?;
        let breaker = Arc::new(Mutex::new(breaker));
        let client = Client::builder()
            .base_url(&backend)
            .no_proxy()
            .policy(RetryPolicy::builder().max_attempts(1).build()?)
            .breaker(breaker.clone())
            .fleet(fleet.clone())
            .build()?;
        Ok((client, breaker))
    };
    let (busy, _) = client()?;
    let (quiet, quiet_breaker) = client()?;
    let state = || {
        quiet_breaker
            .lock()
            .map(|b| b.state())
            .unwrap_or(BreakerState::Closed)
    };

    // Both clients' first sync.
    let start = Instant::now();
    while busy.stats().fleet_syncs == 0 || quiet.stats().fleet_syncs == 0 {
        if start.elapsed() > Duration::from_secs(3) {
            println!("Redis at {redis} did not answer: each client judges alone.");
            println!("busy: {}", busy.stats());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("both clients joined the fleet {:?}", fleet.name());

    for _ in 0..5 {
        if let Err(e) = busy.get("/").send() {
            println!("busy client: {e}");
        }
    }
    let tripped = Instant::now();
    while state() != BreakerState::Open && tripped.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "quiet client's breaker: {} after {:?}, without a call of its own",
        state(),
        tripped.elapsed()
    );
    match quiet.get("/").send() {
        Err(e) => println!("quiet client: {e}"),
        Ok(r) => println!("quiet client: {}", r.status()),
    }
    println!("busy:  {}", busy.stats());
    println!("quiet: {}", quiet.stats());
    Ok(())
}
