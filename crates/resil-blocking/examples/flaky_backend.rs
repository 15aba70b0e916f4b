//! resil-blocking against a backend that misbehaves on purpose: what is retried, what is
//! not, how `Retry-After` and a shared circuit breaker play out, and what the hooks and
//! statistics report.
//!
//! ```sh
//! cargo run -p resil-blocking --example flaky_backend
//! ```
//!
//! The backend is resil's loopback test server (127.0.0.1, a port of its own): each path
//! answers from a script, and it counts the connections it accepts.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resil_blocking::{
    Attempt, Backoff, CallInfo, CircuitBreaker, Client, GiveUp, Hooks, Jitter, ResponseExt,
    RetryInfo, RetryPolicy, Transition, TripCondition,
};
use resil_tests::{Reply, TestServer};

/// Hooks that narrate each call; every driver reports the same events.
struct Narrate;

impl Hooks for Narrate {
    fn on_request(&self, call: &CallInfo<'_>, attempt: Attempt) {
        println!("   {attempt}: {} {}", call.method, call.url);
    }
    fn on_retry(&self, _: &CallInfo<'_>, retry: &RetryInfo) {
        let asked = match retry.retry_after {
            Some(wait) => format!(", the server asked for {wait:?}"),
            None => String::new(),
        };
        println!(
            "   {} ended with {}: retry in {:?}{asked}",
            retry.after, retry.cause, retry.delay
        );
    }
    fn on_success(&self, _: &CallInfo<'_>, attempt: Attempt, status: u16) {
        println!("   {attempt} answered {status}");
    }
    fn on_failure(&self, _: &CallInfo<'_>, give_up: &GiveUp) {
        println!("   gave up: {give_up}");
    }
    fn on_breaker(&self, _: &CallInfo<'_>, transition: Transition) {
        println!(
            "   circuit breaker: {} -> {}",
            transition.from, transition.to
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let server = TestServer::start();
    // Short waits so the tour runs in about a second; the defaults are 100 ms doubling to 20 s.
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .backoff(Backoff::exponential(Duration::from_millis(20)))
        .jitter(Jitter::Full)
        .attempt_timeout(Some(Duration::from_millis(300)))
        .build()?;
    // One breaker for the backend, shared by every client that calls it.
    let breaker = Arc::new(Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(3))
            .open_for(Duration::from_millis(200))
            .build()?,
    ));
    let client = Client::builder()
        .base_url(&server.url("/"))
        .policy(policy)
        .breaker(Arc::clone(&breaker))
        .hooks(Narrate)
        .build()?;

    println!("1. GET answered 503, 503, then 200");
    server.script(
        "/flaky",
        vec![
            Reply::status(503),
            Reply::status(503),
            Reply::body(200, "hello"),
        ],
    );
    let body = client.get("/flaky").send()?.error_for_status()?.text()?;
    println!("   body: {body:?}\n");

    println!("2. GET answered 429 with Retry-After: 1, then 200");
    server.script(
        "/limited",
        vec![
            Reply::with_header(429, "retry-after", "1"),
            Reply::body(200, "ok"),
        ],
    );
    let start = Instant::now();
    let status = client.get("/limited").send()?.status();
    println!("   {status} after {:?}\n", start.elapsed());

    println!("3. POST whose connection is reset after the request was sent");
    server.script("/orders", vec![Reply::Reset, Reply::body(201, "created")]);
    match client.post("/orders").body(r#"{"item":1}"#).send() {
        Ok(response) => println!("   unexpected: {}", response.status()),
        // The server may have created the order: resil does not send it twice.
        Err(error) => println!("   error: {error:#}\n"),
    }

    println!("4. The same POST with an Idempotency-Key: safe to replay");
    server.script("/orders", vec![Reply::Reset, Reply::body(201, "created")]);
    let status = client
        .post("/orders")
        .header("idempotency-key", "order-1")
        .body(r#"{"item":1}"#)
        .send()?
        .status();
    println!("   {status}\n");

    println!("5. A backend that is down, two clients, one breaker");
    server.script("/down", vec![Reply::status(503)]);
    let other = Client::builder()
        .base_url(&server.url("/"))
        .max_retries(0)
        .breaker(Arc::clone(&breaker))
        .hooks(Narrate)
        .build()?;
    if let Err(error) = client.get("/down").send() {
        println!("   first client: {error:#}");
    }
    let connections = server.connections();
    if let Err(error) = other.get("/down").send() {
        println!("   second client: {error:#}");
    }
    println!(
        "   new connections for the rejected call: {}\n",
        server.connections() - connections
    );

    println!("6. After the open time the breaker lets one probe through");
    std::thread::sleep(Duration::from_millis(250));
    server.script("/down", vec![Reply::body(200, "back")]);
    let body = other.get("/down").send()?.text()?;
    println!("   body: {body:?}, breaker {}\n", lock(&breaker).state());

    println!("first client, all told: {}", client.stats());
    Ok(())
}

fn lock(breaker: &Mutex<CircuitBreaker>) -> std::sync::MutexGuard<'_, CircuitBreaker> {
    breaker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
