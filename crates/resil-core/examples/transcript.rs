//! Runs a few failure scenarios through resil-core's retry machine on a fake clock and prints
//! what the machine decided, step by step.
//!
//! `cargo run -p resil-core --features std --example transcript [SEED]`

use core::time::Duration;
use std::process::ExitCode;
use std::sync::Mutex;

use resil_core::{
    Action, CircuitBreaker, Event, Input, Instant, Method, RequestInfo, ResponseHead, RetryAfter,
    RetryMachine, RetryPolicy, TransportErrorKind, TripCondition,
};

/// How the simulated server answers one attempt.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    WithRetryAfter(u16, &'static str),
    Error(TransportErrorKind),
    Stall,
}

const LATENCY: Duration = Duration::from_millis(12);

fn run(
    title: &str,
    policy: &RetryPolicy,
    request: RequestInfo,
    script: &[Reply],
    seed: u64,
    breaker: Option<&Mutex<CircuitBreaker>>,
    start: Instant,
) {
    println!("\n== {title}");
    let mut now = start;
    let mut machine = RetryMachine::new(policy, request, now, seed);
    if let Some(b) = breaker {
        machine = machine.with_breaker(b);
    }
    let mut replies = script.iter().copied();
    loop {
        let action = machine.poll_action();
        let at = now.saturating_duration_since(start);
        match action {
            Action::Send { attempt, deadline } => {
                println!(
                    "{at:>9.3?}  send {attempt} (abandon after {:?})",
                    deadline - now
                );
                match replies.next().unwrap_or(Reply::Status(200)) {
                    Reply::Status(s) => {
                        now = now + LATENCY;
                        println!("{:>9.3?}    <- {s}", now - start);
                        let head = ResponseHead::new(s);
                        machine.handle_input(now, Input::Response { attempt, head });
                    }
                    Reply::WithRetryAfter(s, value) => {
                        now = now + LATENCY;
                        println!("{:>9.3?}    <- {s}, Retry-After: {value}", now - start);
                        let head = ResponseHead::new(s)
                            .with_retry_after(RetryAfter::parse(value.as_bytes()), None);
                        machine.handle_input(now, Input::Response { attempt, head });
                    }
                    Reply::Error(kind) => {
                        now = now + LATENCY;
                        println!("{:>9.3?}    <- error: {kind}", now - start);
                        machine.handle_input(now, Input::Error { attempt, kind });
                    }
                    Reply::Stall => {
                        now = deadline;
                        println!("{:>9.3?}    .. no answer by the deadline", now - start);
                        machine.handle_input(now, Input::Timer);
                    }
                }
            }
            Action::Sleep { until } => {
                now = until;
                machine.handle_input(now, Input::Timer);
            }
            // This policy does not hedge: one attempt at a time, none cancelled.
            Action::Cancel { attempt } => println!("{at:>9.3?}  cancel {attempt}"),
            Action::Done { attempt } => {
                println!("{at:>9.3?}  done: {attempt}'s response goes to the caller");
                break;
            }
            Action::Fail(give_up) => {
                println!("{at:>9.3?}  fail: {give_up}");
                break;
            }
        }
        while let Some(event) = machine.poll_event() {
            match event {
                Event::RetryScheduled {
                    cause,
                    delay,
                    retry_after,
                    ..
                } => match retry_after {
                    Some(ra) => println!(
                        "             retry after {delay:.3?} ({cause}; server asked for {ra:?})"
                    ),
                    None => println!("             retry after {delay:.3?} ({cause})"),
                },
                Event::Breaker(t) => println!("             breaker: {} -> {}", t.from, t.to),
                _ => {}
            }
        }
    }
}

fn main() -> ExitCode {
    let seed = match std::env::args().nth(1).map(|s| s.parse::<u64>()) {
        None => 2026,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("usage: transcript [SEED]  (SEED must be a whole number: {e})");
            return ExitCode::from(2);
        }
    };
    let policy = RetryPolicy::default();
    println!(
        "resil-core: one retry policy (4 attempts, exponential 100 ms x2, full jitter, 10 s per attempt, 30 s total), seed {seed}"
    );
    let get = RequestInfo::new(Method::Get);
    let t0 = Instant::ZERO;
    run(
        "GET: 503, 503, 200",
        &policy,
        get,
        &[Reply::Status(503), Reply::Status(503), Reply::Status(200)],
        seed,
        None,
        t0,
    );
    run(
        "GET: 429 with Retry-After: 2 is honoured, never shortened",
        &policy,
        get,
        &[Reply::WithRetryAfter(429, "2"), Reply::Status(200)],
        seed,
        None,
        t0,
    );
    run(
        "GET: Retry-After: 999999 is beyond the 60 s cap, so give up at once and return the 503",
        &policy,
        get,
        &[Reply::WithRetryAfter(503, "999999")],
        seed,
        None,
        t0,
    );
    run(
        "POST: connection refused never reached the server, so it is retried",
        &policy,
        RequestInfo::new(Method::Post),
        &[
            Reply::Error(TransportErrorKind::Connect),
            Reply::Status(201),
        ],
        seed,
        None,
        t0,
    );
    run(
        "POST: reset after the request was written may have been processed: not replayed",
        &policy,
        RequestInfo::new(Method::Post),
        &[Reply::Error(TransportErrorKind::Reset)],
        seed,
        None,
        t0,
    );
    let Ok(short) = RetryPolicy::builder()
        .attempt_timeout(Some(Duration::from_secs(2)))
        .total_timeout(Some(Duration::from_secs(5)))
        .build()
    else {
        return ExitCode::FAILURE;
    };
    run(
        "GET: stalls against a 2 s attempt timeout and a 5 s deadline",
        &short,
        get,
        &[Reply::Stall, Reply::Stall, Reply::Stall],
        seed,
        None,
        t0,
    );
    let Ok(breaker) = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(3))
        .open_for(Duration::from_secs(30))
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let breaker = Mutex::new(breaker);
    let Ok(once) = RetryPolicy::builder().max_attempts(1).build() else {
        return ExitCode::FAILURE;
    };
    for (i, reply) in [503, 503, 503, 503].into_iter().enumerate() {
        run(
            &format!(
                "call {} to a failing backend through a shared breaker",
                i + 1
            ),
            &once,
            get,
            &[Reply::Status(reply)],
            seed,
            Some(&breaker),
            Instant::from_secs(i as u64),
        );
    }
    run(
        "30 s later: the half-open probe succeeds",
        &once,
        get,
        &[Reply::Status(200)],
        seed,
        Some(&breaker),
        Instant::from_secs(40),
    );
    ExitCode::SUCCESS
}
