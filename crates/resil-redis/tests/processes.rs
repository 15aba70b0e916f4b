//! Clients in separate processes sharing one breaker through a real Redis: this test binary
//! runs itself again as each process of the fleet.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use resil_blocking::{BreakerState, CircuitBreaker, RetryPolicy, TripCondition};
use resil_core::HalfOpen;
use resil_redis::{FleetPolicy, RedisFleet};
use resil_tests::{RedisServer, Reply, TestServer, finish_child, is_child, spawn_child};

const CHILD: &str = "fleet_process";
/// How long each process calls.
const RUN: Duration = Duration::from_secs(4);
const OPEN_FOR: Duration = Duration::from_secs(1);

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One process of the fleet: calls `/down` every `EVERY_MS` for `RUN`, and prints when its
/// breaker opened (wall clock, to compare across processes) and how many calls it sent.
#[test]
fn fleet_process() {
    if !resil_tests::redis_available() {
        return;
    }
    if !is_child(CHILD) {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap();
    let every = Duration::from_millis(var("EVERY_MS").parse().unwrap());
    let breaker = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(5))
        .open_for(OPEN_FOR)
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .build()
        .unwrap();
    let breaker = Arc::new(Mutex::new(breaker));
    let policy = FleetPolicy::builder().build().unwrap(); // failures from 3 processes
    let client = resil_blocking::Client::builder()
        .base_url(&var("SERVER"))
        .no_proxy()
        .policy(RetryPolicy::builder().max_attempts(1).build().unwrap())
        .breaker(breaker.clone())
        .fleet(
            RedisFleet::builder(&var("REDIS"), "processes")
                .policy(policy)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // Start together: at the wall-clock instant the parent chose.
    let start_at: u64 = var("START_AT").parse().unwrap();
    while wall_ms() < start_at {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let mut opened_at = None;
    let mut sent = 0;
    while start.elapsed() < RUN {
        let before = client.stats().attempts;
        let _ = client.get("/down").send();
        sent += client.stats().attempts - before;
        // Watch the breaker between calls too: the fleet opens it without a call.
        let next = Instant::now() + every;
        loop {
            if opened_at.is_none() && breaker.lock().unwrap().state() != BreakerState::Closed {
                opened_at = Some(wall_ms());
            }
            if Instant::now() >= next {
                break;
            }
            std::thread::sleep(Duration::from_millis(2).min(every));
        }
    }
    println!("opened_at={} sent={sent}", opened_at.unwrap_or(0));
    println!("stats: {}", client.stats());
}

#[test]
fn processes_share_one_breaker_through_redis() {
    if !resil_tests::redis_available() {
        return;
    }
    if is_child(CHILD) {
        return;
    }
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/down", vec![Reply::status(500)]);
    let start_at = (wall_ms() + 1500).to_string();
    let (redis_url, server_url) = (redis.url(), server.url(""));
    // Three busy processes and one that calls twice a second.
    let children: Vec<_> = ["2", "2", "2", "500"]
        .iter()
        .map(|every| {
            spawn_child(
                CHILD,
                &[
                    ("REDIS", &redis_url),
                    ("SERVER", &server_url),
                    ("EVERY_MS", every),
                    ("START_AT", &start_at),
                    ("NO_PROXY", "127.0.0.0/8,127.*,localhost"),
                ],
            )
        })
        .collect();
    let outputs: Vec<String> = children.into_iter().map(finish_child).collect();
    let field = |out: &str, name: &str| -> u64 {
        // The harness may print `test fleet_process ... ` before it on the same line.
        let line = out
            .lines()
            .find_map(|l| l.split_once("opened_at="))
            .unwrap()
            .1;
        format!("opened_at={line}")
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let opened: Vec<u64> = outputs.iter().map(|o| field(o, "opened_at")).collect();
    assert!(
        opened.iter().all(|t| *t > 0),
        "every process opened: {outputs:?}"
    );
    let first = *opened.iter().min().unwrap();
    // The quiet process, which alone would need five calls (2.5 s) to open, opens with the
    // fleet: a sync interval after the first, with room for a loaded machine.
    assert!(
        opened[3] - first < 400,
        "quiet process opened {} ms after the first: {outputs:?}",
        opened[3] - first
    );
    // Alone, each of the four would send its five failures and then a probe every open
    // period (about 3 each): ~32. Shared: the busy ones' failures, then one probe per open
    // period for the whole fleet.
    let hits = server.hits("/down");
    assert!(
        hits <= 3 * 5 + 1 + 5,
        "{hits} calls reached the server: {outputs:?}"
    );
}
