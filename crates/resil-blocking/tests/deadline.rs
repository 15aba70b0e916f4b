//! resil-blocking's timeouts and deadlines: how they are set (builder, environment, the edge
//! values) and what each one ends, against servers on 127.0.0.1 that stall. Backoff waits run
//! on a manual clock; socket timeouts are real and short.

mod common;

use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{Client, Clock, ErrorKind, ResponseExt};
use resil_core::{Backoff, Jitter, RetryPolicy};
use resil_http::EnvConfig;
use resil_tests::{Reply, TestServer, shared_load};

#[test]
fn total_deadline_holds_across_stalled_attempts_and_sleeps() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/stall", vec![Reply::Stall(Duration::from_millis(400))]);
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Backoff::Constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .attempt_timeout(Some(Duration::from_millis(30)))
        .total_timeout(Some(Duration::from_millis(90)))
        .build()
        .unwrap();
    let client = builder(&clock).policy(policy).build().unwrap();
    let start = clock.now();
    let err = client.get(&server.url("/stall")).send().unwrap_err();
    let elapsed = clock.now() - start;
    assert!(
        matches!(err.kind(), ErrorKind::DeadlineExceeded | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.attempts() >= 2 && err.attempts() <= 3, "{err}");
    // The deadline is 90 ms; allow the last socket timeout to overshoot by scheduling slack.
    assert!(elapsed < Duration::from_millis(190), "{elapsed:?}");
}

#[test]
fn a_retried_response_whose_body_stalls_is_given_up_at_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/r", resil_tests::stalled_503_then_ok());
    let client = builder(&ManualClock::new()).build().unwrap();
    let start = std::time::Instant::now();
    let response = client.get(&server.url("/r")).send().unwrap();
    // The 503's body is given up before the retry, at its attempt's 80 ms deadline.
    resil_tests::assert_took(start, Duration::ZERO, Duration::from_secs(1));
    assert_eq!(response.text().unwrap(), "ok");
    assert_eq!(server.hits("/r"), 2);
}

#[test]
fn the_per_read_timeout_ends_an_attempt_long_before_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/slow", vec![Reply::Stall(Duration::from_secs(2)); 4]);
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Constant(Duration::ZERO))
        .attempt_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let from_env =
        EnvConfig::from_lookup(|name| (name == "RESIL_READ_TIMEOUT").then(|| "30ms".into()))
            .unwrap();
    for client in [
        builder(&clock).read_timeout(Duration::from_millis(30)),
        builder(&clock).apply_env(from_env),
    ] {
        let client = client.policy(policy.clone()).build().unwrap();
        let start = std::time::Instant::now();
        let err = client.get(&server.url("/slow")).send().unwrap_err();
        // Each stall ends with a close after 2 s; only the 30 ms read timeout makes it a
        // timeout.
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert_eq!(err.attempts(), 2, "{err}");
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn timeouts_of_duration_max_mean_never_and_panic_nothing() {
    let _load = shared_load();
    let server = resil_tests::ok_twice();
    let client = Client::builder()
        .connect_timeout(Duration::MAX)
        .read_timeout(Duration::MAX)
        .write_timeout(Duration::MAX)
        .pool(4, 4, Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    for _ in 0..2 {
        let response = client.get(&server.url("/ok")).send().unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().unwrap();
    }
    assert_eq!(
        server.connections(),
        1,
        "the second request reused the pooled connection"
    );
}

#[test]
fn a_zero_transport_timeout_is_refused_when_the_client_is_built() {
    for (setting, builder) in [
        (
            "connect_timeout",
            Client::builder().connect_timeout(Duration::ZERO),
        ),
        (
            "read_timeout",
            Client::builder().read_timeout(Duration::ZERO),
        ),
        (
            "write_timeout",
            Client::builder().write_timeout(Duration::ZERO),
        ),
    ] {
        resil_tests::assert_refused_setting(&builder.build().unwrap_err(), setting);
    }
    // The environment cannot ask for it either: a zero duration is not a valid value there.
    for variable in ["RESIL_CONNECT_TIMEOUT", "RESIL_READ_TIMEOUT"] {
        let env = EnvConfig::from_lookup(|name| (name == variable).then(|| "0s".into()));
        let err = env.unwrap_err();
        assert!(err.to_string().contains(variable), "{err}");
    }
}

#[test]
fn environment_settings_apply_and_bad_values_are_named() {
    let _load = shared_load();
    let env = EnvConfig::from_lookup(|name| match name {
        "RESIL_MAX_RETRIES" => Some("1".into()),
        "RESIL_TIMEOUT" => Some("750ms".into()),
        _ => None,
    })
    .unwrap();
    let client = builder(&ManualClock::new()).apply_env(env).build().unwrap();
    assert_eq!(client.policy().max_attempts(), 2);
    assert_eq!(client.policy().total_timeout(), Duration::from_millis(750));
    // A setter called after the environment wins over it: zero is refused at build, so the
    // failure shows which value was kept.
    for variable in ["RESIL_CONNECT_TIMEOUT", "RESIL_READ_TIMEOUT"] {
        let env = EnvConfig::from_lookup(|name| (name == variable).then(|| "5s".into())).unwrap();
        let env_first = Client::builder()
            .apply_env(env.clone())
            .connect_timeout(Duration::ZERO)
            .read_timeout(Duration::ZERO);
        assert!(env_first.build().is_err(), "{variable}");
    }
    let env_last = Client::builder()
        .connect_timeout(Duration::ZERO)
        .read_timeout(Duration::ZERO)
        .apply_env(
            EnvConfig::from_lookup(|name| name.ends_with("_TIMEOUT").then(|| "5s".into())).unwrap(),
        );
    env_last.build().unwrap();
    let err = EnvConfig::from_lookup(|name| (name == "RESIL_TIMEOUT").then(|| "soon".into()))
        .unwrap_err();
    assert!(err.to_string().contains("RESIL_TIMEOUT"), "{err}");
}
