//! Clients of every driver in one fleet on a real Redis (a `redis-server` per test), and
//! Redis failing under them: killed and restarted, paused, holding garbage, never there.
//! No call may fail or wait because of it.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use resil_blocking::{BreakerState, CircuitBreaker, ResponseExt, RetryPolicy, TripCondition};
use resil_core::HalfOpen;
use resil_redis::{FleetPolicy, RedisFleet};
use resil_tests::{RedisServer, Reply, TestServer};

fn breaker(open_for: Duration) -> Arc<Mutex<CircuitBreaker>> {
    let b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(5))
        .open_for(open_for)
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .build()
        .unwrap();
    Arc::new(Mutex::new(b))
}

fn once() -> RetryPolicy {
    RetryPolicy::builder().max_attempts(1).build().unwrap()
}

fn fleet(redis: &str, name: &str, min_nodes: u32) -> RedisFleet {
    let policy = FleetPolicy::builder().min_nodes(min_nodes).build().unwrap();
    RedisFleet::builder(redis, name)
        .policy(policy)
        .build()
        .unwrap()
}

fn blocking(server: &TestServer, redis: &str, name: &str) -> resil_blocking::Client {
    resil_blocking::Client::builder()
        .base_url(&server.url(""))
        .no_proxy()
        .policy(once())
        .breaker(breaker(Duration::from_secs(2)))
        .fleet(fleet(redis, name, 1))
        .build()
        .unwrap()
}

/// Waits (for real: a sync thread and a real Redis are at work) until `done`, at most `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// Warnings seen by a `tracing` subscriber of this test binary.
fn warnings() -> &'static Mutex<Vec<String>> {
    static SEEN: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(Vec::new()));
    INSTALLED.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(Warnings);
    });
    seen
}

struct Warnings;

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        warnings().lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warned(fleet: &str, what: &str) -> usize {
    warnings()
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(&format!("fleet=\"{fleet}\"")) && w.contains(what))
        .count()
}

#[test]
fn a_trip_in_one_driver_opens_every_drivers_breaker() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/down", vec![Reply::status(500)]);
    let url = redis.url();
    let name = "drivers";
    let failing = blocking(&server, &url, name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tokio_client = rt.block_on(async {
        resil_tokio::Client::builder()
            .base_url(&server.url(""))
            .no_proxy()
            .policy(once())
            .breaker(breaker(Duration::from_secs(2)))
            .fleet(fleet(&url, name, 1))
            .build()
            .unwrap()
    });
    let isahc_client = resil_isahc::Client::builder()
        .base_url(&server.url(""))
        .no_proxy()
        .policy(once())
        .breaker(breaker(Duration::from_secs(2)))
        .fleet(fleet(&url, name, 1))
        .build()
        .unwrap();
    // Let every client's first sync find the fleet.
    assert!(wait_for(Duration::from_secs(5), || {
        [failing.stats(), tokio_client.stats(), isahc_client.stats()]
            .iter()
            .all(|s| s.fleet_syncs > 0)
    }));
    for _ in 0..5 {
        let _ = failing.get("/down").send();
    }
    assert_eq!(
        failing.breaker().unwrap().lock().unwrap().state(),
        BreakerState::Open
    );
    let opened = Instant::now();
    let state = |c: &Arc<Mutex<CircuitBreaker>>| c.lock().unwrap().state();
    assert!(wait_for(Duration::from_secs(2), || {
        state(tokio_client.breaker().unwrap()) == BreakerState::Open
            && state(isahc_client.breaker().unwrap()) == BreakerState::Open
    }));
    // One wake-up and one sync interval, with room for a loaded machine.
    assert!(
        opened.elapsed() < Duration::from_millis(1000),
        "{:?}",
        opened.elapsed()
    );
    let hits = server.hits("/down");
    let e = rt.block_on(tokio_client.get("/down").send()).unwrap_err();
    assert!(e.to_string().contains("circuit breaker is open"), "{e}");
    let e = futures_lite::future::block_on(isahc_client.get("/down").send()).unwrap_err();
    assert!(e.to_string().contains("circuit breaker is open"), "{e}");
    assert_eq!(server.hits("/down"), hits, "neither reached the server");
    assert_eq!(tokio_client.stats().fleet_opens, 1);
    assert_eq!(isahc_client.stats().fleet_opens, 1);
}

/// Calls `/ok` in a loop for `d`, checking that every one succeeds, none within the bound a
/// call may wait on account of the fleet; `during` runs once, a third of the way in.
fn calls_go_on(client: &resil_blocking::Client, d: Duration, mut during: impl FnMut()) -> usize {
    let start = Instant::now();
    let mut calls = 0;
    let mut done = false;
    while start.elapsed() < d {
        if !done && start.elapsed() > d / 3 {
            during();
            done = true;
        }
        let t = Instant::now();
        let r = client.get("/ok").send();
        let took = t.elapsed();
        assert!(r.is_ok_and(|r| r.status() == 200), "call {calls} failed");
        // A loopback call takes well under a millisecond; the fleet adds no wait. 100 ms is
        // the room a loaded 2-core machine needs.
        assert!(
            took < Duration::from_millis(100),
            "call {calls} took {took:?}"
        );
        calls += 1;
    }
    calls
}

#[test]
fn redis_killed_and_restarted_mid_run_fails_no_call() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    let mut redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    let client = blocking(&server, &redis.url(), "killed");
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_syncs
        > 0));
    let calls = calls_go_on(&client, Duration::from_millis(1500), || redis.kill());
    assert!(calls > 100);
    let s = client.stats();
    assert_eq!(s.fleet_degraded, 1, "said once: {s}");
    assert!(s.fleet_sync_failures >= 1);
    assert_eq!(warned("killed", "unreachable"), 1);
    redis.restart();
    let synced = s.fleet_syncs;
    calls_go_on(&client, Duration::from_millis(300), || {});
    assert!(
        wait_for(Duration::from_secs(5), || client.stats().fleet_syncs
            > synced),
        "rejoined: {}",
        client.stats()
    );
    assert_eq!(warned("killed", "rejoined"), 1);
}

#[test]
fn a_paused_redis_delays_no_call() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    let client = blocking(&server, &redis.url(), "paused");
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_syncs
        > 0));
    calls_go_on(&client, Duration::from_millis(1500), || {
        redis.pause(Duration::from_millis(1200))
    });
    assert!(client.stats().fleet_degraded >= 1, "{}", client.stats());
    let synced = client.stats().fleet_syncs;
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_syncs
        > synced));
}

#[test]
fn a_redis_busy_with_debug_sleep_delays_no_call() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    let client = blocking(&server, &redis.url(), "sleepy");
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_syncs
        > 0));
    let sleeper = redis.addr();
    calls_go_on(&client, Duration::from_millis(1500), || {
        // DEBUG SLEEP blocks the server (every client) for that long.
        std::thread::spawn(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(sleeper).unwrap();
            s.write_all(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$1\r\n1\r\n")
                .unwrap();
            let mut buf = [0u8; 16];
            let _ = std::io::Read::read(&mut s, &mut buf);
        });
    });
    assert!(client.stats().fleet_degraded >= 1, "{}", client.stats());
}

#[test]
fn garbage_under_a_key_fails_no_call_and_is_replaced() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    let client = blocking(&server, &redis.url(), "junk");
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_syncs
        > 0));
    calls_go_on(&client, Duration::from_millis(600), || {
        redis
            .command(&["SET", "resil:{junk}:window", "\u{1}garbage"])
            .unwrap();
        redis
            .command(&["SET", "resil:{junk}:open", "not:a:number"])
            .unwrap();
    });
    assert!(wait_for(Duration::from_secs(5), || warned(
        "junk", "garbage"
    ) >= 1));
    assert_eq!(client.stats().fleet_sync_failures, 0);
    assert_eq!(
        client.breaker().unwrap().lock().unwrap().state(),
        BreakerState::Closed
    );
    assert_eq!(
        redis.command(&["TYPE", "resil:{junk}:window"]).unwrap(),
        "+hash"
    );
}

#[test]
fn without_redis_the_breaker_opens_and_probes_alone() {
    if !resil_tests::redis_available() {
        return;
    }
    warnings(); // the subscriber, before any thread of this test logs
    // Nothing listens there: every sync fails, from the first.
    let refused = resil_tests::refused_addr();
    let url = format!("redis://{refused}/0");
    let server = TestServer::start();
    server.script("/down", vec![Reply::status(500)]);
    let client = resil_blocking::Client::builder()
        .base_url(&server.url(""))
        .no_proxy()
        .policy(once())
        .breaker(breaker(Duration::from_millis(300)))
        .fleet(fleet(&url, "absent", 1))
        .build()
        .unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = client.get("/down").send();
        assert!(t.elapsed() < Duration::from_millis(100));
    }
    assert_eq!(
        client.breaker().unwrap().lock().unwrap().state(),
        BreakerState::Open
    );
    assert!(wait_for(Duration::from_secs(5), || client
        .stats()
        .fleet_degraded
        == 1));
    std::thread::sleep(Duration::from_millis(350));
    let hits = server.hits("/down");
    let _ = client.get("/down").send();
    assert_eq!(
        server.hits("/down"),
        hits + 1,
        "a probe with no lease to wait for"
    );
    let e = client.get("/down").send().unwrap_err();
    assert!(e.to_string().contains("circuit breaker is open"), "{e}");
    assert!(client.get("/down").send().is_err());
    let _ = client.get("/ok").send().map(|r| r.text());
}
