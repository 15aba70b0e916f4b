//! resil-tokio on paused time with an in-memory transport: backoff, Retry-After, attempt
//! timeouts, deadlines and cancellation, without waiting for real.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resil_core::{BreakerState, CircuitBreaker, TripCondition};
use resil_tokio::{
    AsyncTransport, Backoff, Body, BoxFuture, Client, ClientBuilder, ErrorKind, Jitter,
    RequestBody, ResilLayer, ResponseExt, RetryPolicy, TransportError,
};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// What the fake server does with one request.
#[derive(Clone, Debug)]
enum Fake {
    Status(u16, Option<&'static str>),
    Error(resil_core::TransportErrorKind),
    /// Never answers.
    Hang,
    /// A 200 after one poll that finds it not ready, so the attempt's timer gets armed.
    Yielding,
    /// A 200 whose body is one byte after each of these waits (in ms), then its end.
    Trickle(&'static [u64]),
}

/// A body that yields a byte after each wait, on tokio's clock.
struct Trickle {
    waits: VecDeque<u64>,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Trickle {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let Some(&wait) = self.waits.front() else {
            return std::task::Poll::Ready(None);
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(wait))));
        std::task::ready!(timer.as_mut().poll(cx));
        self.timer = None;
        self.waits.pop_front();
        let byte = http_body::Frame::data(bytes::Bytes::from_static(b"x"));
        std::task::Poll::Ready(Some(Ok(byte)))
    }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Fake>>,
    sent: AtomicUsize,
}

impl Script {
    fn new(replies: Vec<Fake>) -> Arc<Script> {
        Arc::new(Script {
            replies: Mutex::new(replies.into()),
            sent: AtomicUsize::new(0),
        })
    }
}

struct FakeTransport(Arc<Script>);

impl AsyncTransport for FakeTransport {
    fn send(
        &self,
        _: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>> {
        self.0.sent.fetch_add(1, Ordering::SeqCst);
        let reply = self
            .0
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Fake::Status(200, None));
        Box::pin(async move {
            match reply {
                Fake::Status(status, retry_after) => {
                    let mut response = http::Response::new(Body::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        u64::MAX,
                    ));
                    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    if let Some(ra) = retry_after {
                        response
                            .headers_mut()
                            .insert("retry-after", ra.parse().unwrap());
                    }
                    Ok(response)
                }
                Fake::Error(kind) => Err(TransportError::new(kind, "injected")),
                Fake::Hang => std::future::pending().await,
                Fake::Yielding => {
                    tokio::task::yield_now().await;
                    Ok(http::Response::new(Body::empty()))
                }
                Fake::Trickle(waits) => Ok(http::Response::new(Body::from_unpin(
                    Trickle {
                        waits: waits.iter().copied().collect(),
                        timer: None,
                    },
                    u64::MAX,
                ))),
            }
        })
    }
}

/// The same script as a tower service, for [`ResilLayer`].
#[derive(Clone)]
struct FakeService(Arc<Script>);

impl tower_service::Service<http::Request<bytes::Bytes>> for FakeService {
    type Response = http::Response<Body>;
    type Error = TransportError;
    type Future = BoxFuture<'static, Result<http::Response<Body>, TransportError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<bytes::Bytes>) -> Self::Future {
        let transport = FakeTransport(self.0.clone());
        Box::pin(async move { transport.send(request.map(RequestBody::from)).await })
    }
}

/// tokio's timer wheel has 1 ms ticks: each timer may fire up to 1 ms after its deadline.
fn assert_waited(elapsed: Duration, expected: Duration, timers: u32) {
    let slack = Duration::from_millis(u64::from(timers));
    assert!(
        elapsed >= expected && elapsed <= expected + slack,
        "waited {elapsed:?}, expected {expected:?} (+ up to {slack:?} of timer ticks)"
    );
}

/// GETs through `client`, which must succeed after one retry of a timed-out attempt, having
/// waited `expected` on the paused clock.
async fn assert_one_timeout_retry(client: &Client, expected: Duration, timers: u32) {
    let start = Instant::now();
    client.get("/x").send().await.unwrap();
    assert_waited(start.elapsed(), expected, timers);
    assert_eq!(
        client.stats().retries_for(resil_http::RetryReason::Timeout),
        1
    );
}

fn client(script: &Arc<Script>, policy: RetryPolicy) -> Client {
    Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .policy(policy)
        .seed(1)
        .build()
        .unwrap()
}

fn plain() -> resil_core::RetryPolicyBuilder {
    RetryPolicy::builder()
        .jitter(Jitter::None)
        .retry_after_spread(0.0)
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_on_paused_time() {
    let script = Script::new(vec![Fake::Status(503, Some("2")), Fake::Status(200, None)]);
    let client = client(&script, plain().build().unwrap());
    let start = Instant::now();
    let response = client.get("/x").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_waited(start.elapsed(), Duration::from_secs(2), 1);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test(start_paused = true)]
async fn backoff_then_success_and_zero_waits_are_not_slept() {
    let script = Script::new(vec![
        Fake::Status(503, None),
        Fake::Status(502, None),
        Fake::Status(200, None),
    ]);
    let client = client(
        &script,
        plain()
            .backoff(Backoff::exponential(Duration::from_millis(100)))
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    client.get("/x").send().await.unwrap();
    assert_waited(start.elapsed(), Duration::from_millis(300), 2);
    let script = Script::new(vec![Fake::Status(503, None), Fake::Status(200, None)]);
    let zero = client_with(
        &script,
        plain()
            .backoff(Backoff::Constant(Duration::ZERO))
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    zero.get("/x").send().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "no timer for a zero wait");
}

fn client_with(script: &Arc<Script>, policy: RetryPolicy) -> Client {
    client(script, policy)
}

#[tokio::test(start_paused = true)]
async fn hung_attempt_times_out_then_retries() {
    let script = Script::new(vec![Fake::Hang, Fake::Status(200, None)]);
    let policy = plain()
        .backoff(Backoff::Constant(Duration::from_millis(10)))
        .attempt_timeout(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    assert_one_timeout_retry(&client(&script, policy), Duration::from_millis(3_010), 2).await;
}

#[tokio::test(start_paused = true)]
async fn total_deadline_holds_across_hung_attempts_and_sleeps() {
    let script = Script::new(vec![Fake::Hang; 10]);
    let policy = plain()
        .max_attempts(10)
        .backoff(Backoff::Constant(Duration::from_millis(500)))
        .attempt_timeout(Some(Duration::from_secs(2)))
        .total_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    let client = client(&script, policy);
    let start = Instant::now();
    let err = client.get("/x").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    // The total deadline holds, give or take the timer's 1 ms tick.
    assert!(
        start.elapsed() <= Duration::from_secs(5) + Duration::from_millis(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(script.sent.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn post_is_not_replayed_after_reset_but_is_after_refused() {
    let script = Script::new(vec![Fake::Error(resil_core::TransportErrorKind::Reset)]);
    let client = client(&script, plain().build().unwrap());
    let err = client.post("/pay").body("x").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotReplayed);
    let script = Script::new(vec![
        Fake::Error(resil_core::TransportErrorKind::Connect),
        Fake::Status(201, None),
    ]);
    let client = client_with(&script, plain().build().unwrap());
    assert_eq!(
        client.post("/pay").body("x").send().await.unwrap().status(),
        201
    );
}

/// A call dropped while holding the half-open probe frees it at once: the breaker is not
/// wedged and the next caller probes.
#[tokio::test(start_paused = true)]
async fn cancelled_probe_does_not_wedge_the_breaker() {
    let breaker = Arc::new(Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .open_for(Duration::from_secs(10))
            .probe_timeout(Duration::from_secs(3600))
            .build()
            .unwrap(),
    ));
    let script = Script::new(vec![
        Fake::Status(500, None),
        Fake::Hang,
        Fake::Status(200, None),
    ]);
    let client = Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .policy(plain().max_attempts(1).build().unwrap())
        .breaker(breaker.clone())
        .build()
        .unwrap();
    assert!(client.get("/x").send().await.is_err());
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    // The probe hangs; the caller gives up on it after 1 s (dropping the future).
    let probe = tokio::time::timeout(Duration::from_secs(1), client.get("/x").send()).await;
    assert!(probe.is_err(), "the probe was cancelled");
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::HalfOpen);
    // Without the release this would be rejected until the probe timeout (an hour).
    let next = client.get("/x").send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Closed);
}

/// Dropping a call mid-backoff leaves nothing running and counts nothing against the breaker.
#[tokio::test(start_paused = true)]
async fn cancelled_during_backoff_leaks_nothing() {
    let script = Script::new(vec![Fake::Status(500, None), Fake::Status(200, None)]);
    let client = client(
        &script,
        plain()
            .backoff(Backoff::Constant(Duration::from_secs(5)))
            .build()
            .unwrap(),
    );
    let call = tokio::time::timeout(Duration::from_secs(1), client.get("/x").send()).await;
    assert!(call.is_err());
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        script.sent.load(Ordering::SeqCst),
        1,
        "no attempt after the drop"
    );
    let stats = client.stats();
    assert_eq!((stats.requests, stats.successes, stats.failures), (1, 0, 0));
    assert_eq!(
        client
            .breaker()
            .unwrap()
            .lock()
            .unwrap()
            .consecutive_failures(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn unauthorized_refreshes_once() {
    let script = Script::new(vec![Fake::Status(401, None), Fake::Status(200, None)]);
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    let client = Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .auth(resil_tokio::BearerToken::new("old", move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, resil_tokio::AuthError>("new".to_owned())
            }
        }))
        .build()
        .unwrap();
    assert_eq!(client.get("/me").send().await.unwrap().status(), 200);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(script.sent.load(Ordering::SeqCst), 2);
}

/// A refresh still running at the attempt's deadline is dropped and the 401 is the answer,
/// as with isahc (whose attempts have no client timer).
#[tokio::test(start_paused = true)]
async fn a_token_refresh_that_never_ends_is_cut_at_the_attempt_deadline() {
    let script = Script::new(vec![Fake::Status(401, None)]);
    let client = Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .policy(
            plain()
                .attempt_timeout(Some(Duration::from_secs(2)))
                .build()
                .unwrap(),
        )
        .auth(resil_tokio::BearerToken::new("old", || {
            std::future::pending::<Result<String, resil_tokio::AuthError>>()
        }))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let response = client.get("/me").send().await.unwrap();
    assert_eq!(response.status(), 401);
    // tokio's timer may round up by its 1 ms tick.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_millis(2_002),
        "{took:?}"
    );
    assert_eq!(script.sent.load(Ordering::SeqCst), 1);
}

#[test]
fn a_calls_future_stays_small_enough_to_move() {
    // The call's future is returned unboxed (a box this large costs glibc's slow allocation
    // path on every call), so callers move it once or twice; its size (~1.7 KiB) is watched
    // here. Keeping a copy of the request head twice took it to 2.2 KiB.
    let client = Client::builder().build().unwrap();
    let call = client.get("http://127.0.0.1:9/").send();
    let size = std::mem::size_of_val(&call);
    assert!(size <= 2048, "{size} bytes");
}

/// A client of one attempt cut at `timeout`, whose calls are answered (after one poll that
/// finds no answer yet, so the attempt's timer gets armed), hang, are answered, and hang.
fn twice_answered_then_hung(timeout: Duration) -> Client {
    let script = Script::new(vec![Fake::Yielding, Fake::Hang, Fake::Yielding, Fake::Hang]);
    let policy = plain()
        .max_attempts(1)
        .attempt_timeout(Some(timeout))
        .build()
        .unwrap();
    client(&script, policy)
}

/// One call whose only attempt hangs; how long it took and how it failed.
async fn time_a_hung_call(client: &Client, total: Option<Duration>) -> (Duration, ErrorKind) {
    let start = Instant::now();
    let mut request = client.get("/hang");
    if let Some(total) = total {
        request = request.timeout(total);
    }
    let err = request.send().await.unwrap_err();
    (start.elapsed(), err.kind())
}

/// With a client from [`twice_answered_then_hung`] (3 s timeout): a call leaves its timer,
/// and the next attempts take it over for a later deadline (the usual case) and for an
/// earlier one (a shorter per-request timeout).
async fn later_then_earlier_deadline(client: Client) {
    client.get("/ok").send().await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let (waited, kind) = time_a_hung_call(&client, None).await;
    // Up to two timer ticks: the kept timer fires at its own deadline first.
    assert_waited(waited, Duration::from_secs(3), 2);
    assert_eq!(kind, ErrorKind::Timeout);
    client.get("/ok").send().await.unwrap();
    let (waited, kind) = time_a_hung_call(&client, Some(Duration::from_millis(500))).await;
    assert_waited(waited, Duration::from_millis(500), 1);
    assert_eq!(kind, ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_timer_left_by_one_call_still_times_the_next() {
    // Outside a task (`block_on`'s own future) the kept timer is polled on every wait.
    later_then_earlier_deadline(twice_answered_then_hung(Duration::from_secs(3))).await;
}

#[tokio::test(start_paused = true)]
async fn a_task_keeps_its_timer_registered_from_call_to_call() {
    // In a task the timer knows whose waker it holds, so it is not polled again.
    tokio::spawn(later_then_earlier_deadline(twice_answered_then_hung(
        Duration::from_secs(3),
    )))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_kept_timer_that_fires_early_waits_on_to_its_own_deadline() {
    use resil_async::Runtime;
    use resil_tokio::Tokio;
    tokio::spawn(async {
        let start = Instant::now();
        // Polled once, then dropped before its deadline: kept for the next wait.
        let mut first = Box::pin(Tokio::sleep_until(Tokio::now() + Duration::from_secs(3)));
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        drop(first);
        tokio::time::advance(Duration::from_secs(1)).await;
        // Takes the kept timer, which fires a second before this deadline.
        Tokio::sleep_until(Tokio::now() + Duration::from_secs(3)).await;
        assert_waited(start.elapsed(), Duration::from_secs(4), 2);
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timer_kept_by_one_task_wakes_the_next_task_that_takes_it() {
    // The kept timer holds the waker of the task that finished with it; another task must
    // hand it its own, or its attempt would never time out.
    let client = twice_answered_then_hung(Duration::from_secs(3));
    let first = client.clone();
    tokio::spawn(async move { first.get("/ok").send().await.unwrap() })
        .await
        .unwrap();
    let (waited, kind) = tokio::spawn(async move {
        // Bounds a timer that never fires, so a wrong timer fails the test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(60), time_a_hung_call(&client, None))
            .await
            .expect("the attempt's deadline never fired")
    })
    .await
    .unwrap();
    assert_waited(waited, Duration::from_secs(3), 1);
    assert_eq!(kind, ErrorKind::Timeout);
}

/// A current-thread runtime with paused time, as `#[tokio::test(start_paused = true)]` makes.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_timer_left_by_another_runtime_is_not_used() {
    // A thread may run one runtime after another (`block_on`), and a runtime may be gone: a
    // timer kept from runtime `a` would not fire while `b` waits, or would panic when polled
    // once `a` has shut down.
    let client = twice_answered_then_hung(Duration::from_secs(2));
    let guarded = |client: Client| async move {
        // Bounds a timer that never fires, so a wrong timer fails the test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(60), async {
            time_a_hung_call(&client, None).await
        })
        .await
        .expect("the attempt's deadline never fired")
    };
    let a = paused_runtime();
    a.block_on(client.get("/ok").send()).unwrap();
    let (waited, kind) = paused_runtime().block_on(guarded(client.clone()));
    assert_waited(waited, Duration::from_secs(2), 1);
    assert_eq!(kind, ErrorKind::Timeout);
    a.block_on(client.get("/ok").send()).unwrap();
    drop(a);
    let (waited, kind) = paused_runtime().block_on(guarded(client));
    assert_waited(waited, Duration::from_secs(2), 1);
    assert_eq!(kind, ErrorKind::Timeout);
}

/// A body read that failed on the read timeout.
/// Reads the body of the response `sending` yields (a byte, then a 1.5 s stall): it must
/// fail on the 1 s read timeout when the stall has lasted it, 1.5 s in.
async fn assert_body_read_times_out(
    sending: impl Future<Output = Result<resil_tokio::Response, resil_tokio::Error>>,
) {
    let start = Instant::now();
    let err = sending.await.unwrap().text().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body, "{err:#}");
    assert!(
        std::error::Error::source(&err).is_some_and(|e| e.is::<resil_tokio::ReadTimedOut>()),
        "{err:#}"
    );
    assert_waited(start.elapsed(), Duration::from_millis(1_500), 2);
}

/// Attempts that may take 10 s, retried at once.
fn reading_policy() -> RetryPolicy {
    plain()
        .backoff(Backoff::Constant(Duration::ZERO))
        .attempt_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap()
}

/// [`reading_policy`] with no retry: a body that fails while it is read fails the read.
fn one_attempt() -> RetryPolicy {
    plain()
        .max_attempts(1)
        .attempt_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap()
}

fn reading_within(script: &Arc<Script>, read_timeout: Duration) -> Client {
    reading(script, |builder| builder.read_timeout(read_timeout))
}

/// A client on [`reading_policy`], with `read` setting how it reads.
fn reading(script: &Arc<Script>, read: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Client {
    let builder = Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .policy(reading_policy());
    read(builder).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_head_that_does_not_come_within_the_read_timeout_ends_the_attempt() {
    // Set on the builder, then read from the environment.
    for from_env in [false, true] {
        let script = Script::new(vec![Fake::Hang, Fake::Status(200, None)]);
        let client = reading(&script, |builder| {
            if from_env {
                builder.apply_env(env("RESIL_READ_TIMEOUT", "1s"))
            } else {
                builder.read_timeout(Duration::from_secs(1))
            }
        });
        // At the read timeout, not at the 10 s attempt timeout.
        assert_one_timeout_retry(&client, Duration::from_secs(1), 1).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_may_take_long_but_not_stall_past_the_read_timeout() {
    // Four bytes 900 ms apart: 3.6 s in all, each within a 1 s read timeout.
    let script = Script::new(vec![Fake::Trickle(&[900, 900, 900, 900])]);
    let client = reading_within(&script, Duration::from_secs(1));
    let start = Instant::now();
    let text = client.get("/x").send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "xxxx");
    assert_waited(start.elapsed(), Duration::from_millis(3_600), 4);

    // A byte, then a 1.5 s stall: with no attempt left, the read fails.
    let script = Script::new(vec![Fake::Trickle(&[500, 1_500])]);
    let client = reading(&script, |builder| {
        builder
            .read_timeout(Duration::from_secs(1))
            .policy(one_attempt())
    });
    assert_body_read_times_out(client.get("/x").send()).await;

    // With attempts left, the whole body is asked for again (the script's next is "ok").
    let script = Script::new(vec![Fake::Trickle(&[500, 1_500])]);
    let client = reading_within(&script, Duration::from_secs(1));
    let start = Instant::now();
    let text = client.get("/x").send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "ok");
    assert_waited(start.elapsed(), Duration::from_millis(1_500), 2);
    assert_eq!(script.sent.load(Ordering::SeqCst), 2);
}

fn env(variable: &'static str, value: &'static str) -> resil_tokio::EnvConfig {
    resil_tokio::EnvConfig::from_lookup(|name| (name == variable).then(|| value.into())).unwrap()
}

#[tokio::test]
async fn a_timeout_set_after_the_environment_wins_over_it() {
    // Zero is refused at build, so whether a build fails shows which value was kept.
    for (variable, later) in [
        (
            "RESIL_READ_TIMEOUT",
            Client::builder()
                .apply_env(env("RESIL_READ_TIMEOUT", "5s"))
                .read_timeout(Duration::ZERO),
        ),
        (
            "RESIL_CONNECT_TIMEOUT",
            Client::builder()
                .apply_env(env("RESIL_CONNECT_TIMEOUT", "5s"))
                .connect_timeout(Duration::ZERO),
        ),
    ] {
        let err = later.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{variable}: {err:#}");
    }
    let env_later = Client::builder()
        .read_timeout(Duration::ZERO)
        .connect_timeout(Duration::ZERO)
        .apply_env(env("RESIL_READ_TIMEOUT", "5s"))
        .apply_env(env("RESIL_CONNECT_TIMEOUT", "5s"));
    env_later.build().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_has_the_clients_read_timeout() {
    let request = || {
        http::Request::get("http://fake.invalid/x")
            .body(bytes::Bytes::new())
            .unwrap()
    };

    // A hung head is retried at the read timeout, here read from the environment.
    let script = Script::new(vec![Fake::Hang, Fake::Status(200, None)]);
    let mut config = resil_tokio::ClientConfig::default();
    config.policy(reading_policy());
    config.apply_env(env("RESIL_READ_TIMEOUT", "1s"));
    let mut service = ResilLayer::from_config(config)
        .unwrap()
        .layer(FakeService(script.clone()));
    let start = Instant::now();
    let response = service.call(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_waited(start.elapsed(), Duration::from_secs(1), 1);
    assert_eq!(script.sent.load(Ordering::SeqCst), 2);

    // A body may trickle, but not stall past it.
    let layer = ResilLayer::new(reading_policy())
        .read_timeout(Duration::from_secs(1))
        .unwrap();
    let script = Script::new(vec![Fake::Trickle(&[900, 900])]);
    let mut service = layer.clone().layer(FakeService(script));
    let text = service.call(request()).await.unwrap().text().await.unwrap();
    assert_eq!(text, "xx");
    let script = Script::new(vec![Fake::Trickle(&[500, 1_500])]);
    let once = ResilLayer::new(one_attempt())
        .read_timeout(Duration::from_secs(1))
        .unwrap();
    let mut service = once.layer(FakeService(script));
    assert_body_read_times_out(service.call(request())).await;

    let err = ResilLayer::new(reading_policy())
        .read_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[tokio::test]
async fn a_zero_read_or_connect_timeout_is_refused_when_the_client_is_built() {
    for (setting, builder) in [
        (
            "read_timeout",
            Client::builder().read_timeout(Duration::ZERO),
        ),
        (
            "connect_timeout",
            Client::builder().connect_timeout(Duration::ZERO),
        ),
    ] {
        resil_tests::assert_refused_setting(&builder.build().unwrap_err(), setting);
    }
}

/// A rate limiter's wait is slept on tokio's clock before the attempt goes, and counted.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_waits_for_its_turn_on_paused_time() {
    let script = Script::new(vec![Fake::Status(200, None)]);
    let limiter = resil_tokio::RateLimiter::builder()
        .rate(0.5)
        .burst(1)
        .build()
        .unwrap();
    let client = Client::builder()
        .transport(FakeTransport(script.clone()))
        .base_url("http://fake.invalid")
        .policy(plain().build().unwrap())
        .limiter(Arc::new(Mutex::new(limiter)))
        .seed(1)
        .build()
        .unwrap();
    let start = Instant::now();
    client.get("/x").send().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "the first goes at once");
    client.get("/x").send().await.unwrap();
    assert_waited(start.elapsed(), Duration::from_secs(2), 1);
    let stats = client.stats();
    assert_eq!(stats.limiter_waits, 1);
    assert_eq!(stats.limiter_wait, Duration::from_secs(2));
    assert_eq!(script.sent.load(Ordering::SeqCst), 2);
}
