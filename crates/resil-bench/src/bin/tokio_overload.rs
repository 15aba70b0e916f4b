//! Overload: a loopback server of capacity C offered 3C, and what each client gets out of it.
//!
//! The server (hyper, a child process on a current-thread runtime, so its CPU is not the
//! client's) serves C requests per second from a token bucket that refills one request every
//! 1/C with a queue in front of it: a request whose turn comes within `QUEUE` (25 ms) waits for
//! it, which adds latency; beyond that it is rejected with `429` and `Retry-After: 1`
//! (`/429`), or `503` without `Retry-After` (`/503`). A rejection is not free: it costs the
//! server a tenth of a request's capacity (the bucket's next turn moves on by 0.1/C), so a
//! storm of rejected retries eats into what the server can serve.
//!
//! 16 client tasks offer 3C calls per second open loop (each task issues a call every
//! 16/(3C) s on a fixed schedule, whatever earlier calls are doing), each call with a 2 s
//! deadline, for `DURATION` (default 20 s). One row per client:
//!
//! - hyper-util, no retries (the bare client);
//! - resil-tokio, retries only (no breaker, no budget, no limiter);
//! - resil-tokio, retries and the default `RetryBudget` (no breaker, no limiter);
//! - resil-tokio, `Client::builder()` untouched (the shipped defaults), and with an AIMD
//!   `ConcurrencyLimiter` instead of the default throttle, or after it;
//! - tower `LoadShed` + `ConcurrencyLimit(n)` over hyper-util, for each `n` in `LIMITS`;
//! - resil-core's `RetryMachine` driven by a plain loop over hyper-util with the default
//!   policy, breaker and budget (`machine`), and the same with each resil limiter, built with
//!   its defaults and told nothing about C (`limiter-adaptive_rate`, `limiter-throttle`,
//!   `limiter-aimd`, `limiter-gradient`, `limiter-quota`, and the throttle and AIMD together,
//!   `limiter-throttle+aimd`): the drivers' builders do not take
//!   limiters yet, and this loop is what each driver does with its machine;
//!
//! Reported per row: steady goodput (successes per second after the warm-up, `WARMUP`,
//! default a quarter of the run, as a fraction of C), server rejections per success in the
//! same window, server attempts per call (whole run, after the last call ended), p50 and p99
//! latency of the successes in the window, client CPU per success (getrusage of this process,
//! whole run: the server is another process) and new connections (accepted by the server).
//!
//! ```sh
//! cargo build --release -p resil-bench --bin tokio_overload
//! taskset -c 0 target/release/tokio_overload                   # both modes, every row, 20 s each
//! DURATION=5s MODE=429 ONLY=defaults target/release/tokio_overload
//! ```
//!
//! Environment: `CAPACITY` (C, requests/s, default 2000), `DURATION` / `WARMUP` (`20s`,
//! `500ms`, or seconds), `MODE` (`429`, `503` or `both`), `ONLY` (a comma-separated list of
//! row keys: `hyper`, `retries`, `budget`, `defaults`, `builder-aimd`, `builder-throttle+aimd`,
//! `tower-<n>`, `machine`,
//! `limiter-<kind>`),
//! `LIMITS` (tower's static limits to try, default `4,8,16`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resil_bench::cpu_micros;
use resil_core::{
    Action, AdaptiveRateLimiter, AdaptiveThrottle, Admission, CircuitBreaker, ConcurrencyLimiter,
    Input, LimitAlgorithm, LimiterRef, Method, QuotaPacer, RequestInfo, ResponseHead, RetryAfter,
    RetryBudget, RetryMachine, RetryPolicy, Shared, TransportErrorKind, UnixTime,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};

/// How far ahead of now the server still queues a request (its queue, in time).
const QUEUE: Duration = Duration::from_millis(25);
/// What one rejection costs the server, as a fraction of one request.
const REJECT_COST: f64 = 0.1;
/// Client tasks issuing calls.
const TASKS: usize = 16;
/// Offered load, as a multiple of C.
const OFFERED: f64 = 3.0;
/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// The server.

/// The server's capacity: a token bucket of one request every `per_request`, with a queue of
/// `QUEUE` in front of it (a GCRA: `next` is the bucket's next free turn).
#[derive(Debug)]
struct Capacity {
    next: Instant,
    per_request: Duration,
    reject_cost: Duration,
    queue: Duration,
}

impl Capacity {
    fn new(per_second: f64, now: Instant) -> Capacity {
        Capacity {
            next: now,
            per_request: Duration::from_secs_f64(1.0 / per_second),
            reject_cost: Duration::from_secs_f64(REJECT_COST / per_second),
            queue: QUEUE,
        }
    }

    /// The turn of a request arriving at `now`, or `None`: rejected (which costs a little).
    fn admit(&mut self, now: Instant) -> Option<Instant> {
        let turn = self.next.max(now);
        if turn - now <= self.queue {
            self.next = turn + self.per_request;
            Some(turn)
        } else {
            self.next += self.reject_cost;
            None
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    ok: u64,
    rejected: u64,
    connections: u64,
}

struct ServerState {
    capacity: Mutex<Capacity>,
    counters: Mutex<Counters>,
}

type ServerBody = http_body_util::Full<Bytes>;

async fn handle(
    state: Arc<ServerState>,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<ServerBody>, std::convert::Infallible> {
    let now = Instant::now();
    let turn = state
        .capacity
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(now);
    let counters = || state.counters.lock().unwrap_or_else(|e| e.into_inner());
    let response = match turn {
        Some(turn) => {
            if turn > now {
                tokio::time::sleep_until(turn).await;
            }
            counters().ok += 1;
            http::Response::new(Full::new(Bytes::from_static(b"ok")))
        }
        None => {
            counters().rejected += 1;
            let mut response = http::Response::new(Full::new(Bytes::new()));
            if request.uri().path() == "/503" {
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            } else {
                *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            }
            response
        }
    };
    Ok(response)
}

/// The child process: serves `/429` and `/503` at `capacity` per second on one port and
/// `ok rejected connections` on another (so reading the counters opens no connection the
/// first port counts); prints both ports; exits when stdin closes.
fn server(capacity: f64) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("server runtime: {e}");
            std::process::exit(1);
        }
    };
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    runtime.block_on(async move {
        let state = Arc::new(ServerState {
            capacity: Mutex::new(Capacity::new(capacity, Instant::now())),
            counters: Mutex::new(Counters::default()),
        });
        let (Ok(listener), Ok(stats)) = (
            tokio::net::TcpListener::bind("127.0.0.1:0").await,
            tokio::net::TcpListener::bind("127.0.0.1:0").await,
        ) else {
            eprintln!("server: cannot bind on 127.0.0.1");
            std::process::exit(1);
        };
        let port = |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
        println!("{} {}", port(&listener), port(&stats));
        let stats_state = state.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = stats.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let body = {
                    let c = stats_state
                        .counters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    format!("{} {} {}", c.ok, c.rejected, c.connections)
                };
                let _ = stream.write_all(body.as_bytes()).await;
            }
        });
        while let Ok((stream, _)) = listener.accept().await {
            state
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .connections += 1;
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| handle(state.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

#[derive(Clone, Copy, Debug, Default)]
struct ServerStats {
    ok: u64,
    rejected: u64,
    connections: u64,
}

async fn server_stats(port: u16) -> ServerStats {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return ServerStats::default();
    };
    let _ = stream.write_all(b"stats\r\n\r\n").await;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    ServerStats {
        ok: it.next().unwrap_or(0),
        rejected: it.next().unwrap_or(0),
        connections: it.next().unwrap_or(0),
    }
}

/// A fresh server for one row (a clean bucket and clean counters): the child, its serving
/// port and its stats port.
fn spawn_server(capacity: f64) -> (std::process::Child, u16, u16) {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("current exe");
    let mut child = std::process::Command::new(exe)
        .arg("--server")
        .arg(capacity.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ports");
    let mut ports = line.split_whitespace().map(|p| p.parse().unwrap_or(0));
    let (serve, stats) = (ports.next().unwrap_or(0), ports.next().unwrap_or(0));
    assert!(serve != 0 && stats != 0, "the server printed {line:?}");
    (child, serve, stats)
}

// ---------------------------------------------------------------------------------------------
// The clients.

type Hyper = HyperClient<HttpConnector, Empty<Bytes>>;
type Shed = tower::load_shed::LoadShed<tower::limit::ConcurrencyLimit<Hyper>>;

/// A client under test: one call returns whether it succeeded (a 200 within its deadline).
#[derive(Clone)]
enum Client {
    Hyper(Hyper),
    Resil(resil_tokio::Client),
    Tower(Shed),
    Machine(Arc<MachineClient>),
}

/// A limiter as the retry machine shares it.
type SharedLimiter = Arc<dyn Shared<dyn Admission + Send> + Send + Sync>;

/// resil-core's `RetryMachine` driven by a plain loop over hyper-util (pooled as resil-tokio
/// pools), with the default policy, breaker and budget and limiters: the limiter rows, until
/// the drivers' builders take limiters. The loop is what every resil driver does: carry out `Send` and
/// `Sleep`, feed back responses, errors and timers.
struct MachineClient {
    hyper: Hyper,
    policy: RetryPolicy,
    breaker: Mutex<CircuitBreaker>,
    budget: Mutex<RetryBudget>,
    limiters: Vec<SharedLimiter>,
    seed: AtomicU64,
}

/// The machines' clock: nanoseconds since the first reading.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn machine_now() -> resil_core::Instant {
    resil_core::Instant::from_nanos(
        u64::try_from(Instant::now().duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX),
    )
}

fn tokio_at(at: resil_core::Instant) -> Instant {
    let nanos = at.as_nanos().min(u64::MAX / 2);
    epoch() + Duration::from_nanos(nanos)
}

impl MachineClient {
    fn new(limiters: Vec<SharedLimiter>) -> MachineClient {
        MachineClient {
            hyper: resil_pool_client(),
            policy: RetryPolicy::default(),
            breaker: Mutex::new(CircuitBreaker::builder().build().expect("default breaker")),
            budget: Mutex::new(RetryBudget::default()),
            limiters,
            seed: AtomicU64::new(1),
        }
    }

    async fn call(&self, url: &str) -> bool {
        let start = machine_now();
        let limiters: Vec<LimiterRef<'_>> = self.limiters.iter().map(|l| &**l as _).collect();
        let mut machine = RetryMachine::new(
            &self.policy,
            RequestInfo::new(Method::Get),
            start,
            self.seed.fetch_add(1, Ordering::Relaxed),
        )
        .with_deadline(start + DEADLINE)
        .with_breaker(&self.breaker)
        .with_budget(&self.budget);
        if !limiters.is_empty() {
            machine = machine.with_limiters(&limiters);
        }
        let mut ok = false;
        loop {
            match machine.poll_action() {
                Action::Send { attempt, deadline } => {
                    let request = http::Request::get(url).body(Empty::new()).expect("request");
                    let answer =
                        tokio::time::timeout_at(tokio_at(deadline), self.hyper.request(request))
                            .await;
                    let input = match answer {
                        Ok(Ok(response)) => {
                            let status = response.status().as_u16();
                            let retry_after = response
                                .headers()
                                .get(http::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok())
                                .map(|s| RetryAfter::Delay(Duration::from_secs(s)));
                            let read = response.into_body().collect().await.is_ok();
                            ok = status == 200 && read;
                            let wall = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs());
                            Input::Response {
                                attempt,
                                head: ResponseHead::new(status)
                                    .with_retry_after(retry_after, Some(UnixTime(wall))),
                            }
                        }
                        Ok(Err(e)) => Input::Error {
                            attempt,
                            kind: if e.is_connect() {
                                TransportErrorKind::Connect
                            } else {
                                TransportErrorKind::Other
                            },
                        },
                        Err(_) => Input::Timer,
                    };
                    machine.handle_input(machine_now(), input);
                }
                Action::Sleep { until } => {
                    tokio::time::sleep_until(tokio_at(until)).await;
                    machine.handle_input(machine_now(), Input::Timer);
                }
                Action::Cancel { .. } => {}
                Action::Done { .. } => return ok,
                Action::Fail(_) => return false,
            }
        }
    }
}

impl Client {
    fn call(&self, url: Arc<str>) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        match self.clone() {
            Client::Hyper(client) => Box::pin(async move {
                let request = http::Request::get(&*url)
                    .body(Empty::new())
                    .expect("request");
                let call = async {
                    match client.request(request).await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            ok && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    }
                };
                tokio::time::timeout(DEADLINE, call).await.unwrap_or(false)
            }),
            Client::Resil(client) => Box::pin(async move {
                match client.get(&url).timeout(DEADLINE).send().await {
                    Ok(response) => {
                        let ok = response.status() == 200;
                        ok && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                }
            }),
            Client::Machine(client) => Box::pin(async move { client.call(&url).await }),
            Client::Tower(mut service) => Box::pin(async move {
                let call = async {
                    // LoadShed is always ready; it fails the call at once when the limit is
                    // reached instead of queueing it.
                    if std::future::poll_fn(|cx| service.poll_ready(cx))
                        .await
                        .is_err()
                    {
                        return false;
                    }
                    let request = http::Request::get(&*url)
                        .body(Empty::new())
                        .expect("request");
                    match service.call(request).await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            ok && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    }
                };
                tokio::time::timeout(DEADLINE, call).await.unwrap_or(false)
            }),
        }
    }
}

/// A row: its key (for `ONLY`), its name in the table, and how to build its client (inside
/// the row's runtime: hyper-util's pool and resil-tokio's transport belong to it).
struct Row {
    key: String,
    name: String,
    make: Box<dyn Fn() -> Client>,
}

fn resil_row(
    key: &str,
    name: &str,
    configure: impl Fn(resil_tokio::ClientBuilder) -> resil_tokio::ClientBuilder + 'static,
) -> Row {
    Row {
        key: key.to_owned(),
        name: name.to_owned(),
        make: Box::new(move || {
            Client::Resil(
                configure(resil_tokio::Client::builder())
                    .build()
                    .expect("resil client"),
            )
        }),
    }
}

fn hyper_client() -> Hyper {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// hyper-util pooled as resil-tokio's default transport pools (`TransportSettings`'s idle
/// connections per host and idle timeout), so the machine rows open the connections
/// resil-tokio would (bare hyper-util keeps every idle connection).
fn resil_pool_client() -> Hyper {
    let settings = resil_tokio::TransportSettings::default();
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .build_http()
}

/// A limiter row: the machine row with one limiter, built with its defaults (told nothing
/// about C).
fn limiter_row(key: &str, name: &str, make: fn() -> Vec<SharedLimiter>) -> Row {
    Row {
        key: format!("limiter-{key}"),
        name: format!("… + {name}"),
        make: Box::new(move || Client::Machine(Arc::new(MachineClient::new(make())))),
    }
}

fn aimd() -> SharedLimiter {
    Arc::new(Mutex::new(
        ConcurrencyLimiter::builder()
            .algorithm(LimitAlgorithm::aimd())
            .build()
            .expect("limiter"),
    ))
}

fn throttle() -> SharedLimiter {
    Arc::new(Mutex::new(
        AdaptiveThrottle::builder().build().expect("limiter"),
    ))
}

/// One row per resil limiter.
fn limiter_rows() -> Vec<Row> {
    vec![
        limiter_row(
            "adaptive_rate",
            "`AdaptiveRateLimiter` (AWS adaptive)",
            || {
                vec![Arc::new(Mutex::new(
                    AdaptiveRateLimiter::builder().build().expect("limiter"),
                ))]
            },
        ),
        limiter_row("throttle", "`AdaptiveThrottle` (SRE, K = 2)", || {
            vec![throttle()]
        }),
        limiter_row("aimd", "`ConcurrencyLimiter` AIMD", || vec![aimd()]),
        limiter_row("gradient", "`ConcurrencyLimiter` gradient", || {
            vec![Arc::new(Mutex::new(
                ConcurrencyLimiter::builder()
                    .algorithm(LimitAlgorithm::gradient())
                    .build()
                    .expect("limiter"),
            ))]
        }),
        limiter_row("quota", "`QuotaPacer`", || {
            vec![Arc::new(Mutex::new(
                QuotaPacer::builder().build().expect("limiter"),
            ))]
        }),
        limiter_row(
            "throttle+aimd",
            "`AdaptiveThrottle` then AIMD `ConcurrencyLimiter`",
            || vec![throttle(), aimd()],
        ),
    ]
}

fn rows(limits: &[usize]) -> Vec<Row> {
    let mut rows = vec![
        Row {
            key: "hyper".into(),
            name: "hyper-util, no retries".into(),
            make: Box::new(|| Client::Hyper(hyper_client())),
        },
        resil_row(
            "retries",
            "resil-tokio, retries only (no breaker, budget or limiter)",
            |b| b.no_breaker().no_budget().no_limiters(),
        ),
        resil_row(
            "budget",
            "resil-tokio, retries + default `RetryBudget` (no breaker or limiter)",
            |b| b.no_breaker().no_limiters(),
        ),
        resil_row(
            "defaults",
            "resil-tokio, `Client::builder()` defaults",
            |b| b,
        ),
        resil_row(
            "builder-aimd",
            "resil-tokio, `.limiter(AIMD ConcurrencyLimiter)` (instead of the default throttle)",
            |b| b.limiter(aimd()),
        ),
        resil_row(
            "builder-throttle+aimd",
            "resil-tokio, `.limiter(AdaptiveThrottle).limiter(AIMD)`",
            |b| b.limiter(throttle()).limiter(aimd()),
        ),
    ];
    rows.push(Row {
        key: "machine".into(),
        name: "resil-core `RetryMachine` over hyper-util: default policy, breaker, budget".into(),
        make: Box::new(|| Client::Machine(Arc::new(MachineClient::new(Vec::new())))),
    });
    rows.extend(limiter_rows());
    for &limit in limits {
        rows.push(Row {
            key: format!("tower-{limit}"),
            name: format!("tower `LoadShed` + `ConcurrencyLimit({limit})` over hyper-util"),
            make: Box::new(move || {
                Client::Tower(
                    ServiceBuilder::new()
                        .load_shed()
                        .concurrency_limit(limit)
                        .service(hyper_client()),
                )
            }),
        });
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// One run.

struct Settings {
    capacity: f64,
    duration: Duration,
    warmup: Duration,
}

#[derive(Debug)]
struct Outcome {
    goodput: f64,
    rejections_per_success: f64,
    attempts_per_call: f64,
    p50: Duration,
    p99: Duration,
    cpu_per_success: f64,
    connections: u64,
}

/// A finished call: when it ended (from the start of the run), how long it took, whether it
/// succeeded.
type Done = (Duration, Duration, bool);

fn run(row: &Row, mode: &str, settings: &Settings) -> Outcome {
    let (mut child, serve, stats) = spawn_server(settings.capacity);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url: Arc<str> = format!("http://127.0.0.1:{serve}/{mode}").into();
    let cpu = cpu_micros();
    let outcome = runtime.block_on(async {
        let client = (row.make)();
        let done: Arc<Mutex<Vec<Done>>> = Arc::default();
        let start = Instant::now();
        let end = start + settings.duration;
        let period = Duration::from_secs_f64(TASKS as f64 / (OFFERED * settings.capacity));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut at = start + period.mul_f64(task as f64 / TASKS as f64);
                while at < end {
                    tokio::time::sleep_until(at).await;
                    let (call, done) = (client.call(url.clone()), done.clone());
                    calls.push(tokio::spawn(async move {
                        let began = Instant::now();
                        let ok = call.await;
                        let ended = Instant::now();
                        done.lock().unwrap_or_else(|e| e.into_inner()).push((
                            ended - start,
                            ended - began,
                            ok,
                        ));
                    }));
                    at += period;
                }
                for call in calls {
                    let _ = call.await;
                }
            }));
        }
        tokio::time::sleep_until(start + settings.warmup).await;
        let warm = server_stats(stats).await;
        tokio::time::sleep_until(end).await;
        let steady = server_stats(stats).await;
        for task in tasks {
            let _ = task.await;
        }
        let last = server_stats(stats).await;
        let done = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
        (warm, steady, last, done)
    });
    let cpu = (cpu_micros() - cpu) as f64;
    drop(runtime);
    drop(child.stdin.take());
    let _ = child.wait();
    let (warm, steady, last, done) = outcome;
    let window = settings.duration - settings.warmup;
    let mut latencies: Vec<Duration> = done
        .iter()
        .filter(|(ended, _, ok)| *ok && *ended >= settings.warmup && *ended < settings.duration)
        .map(|(_, latency, _)| *latency)
        .collect();
    latencies.sort_unstable();
    let in_window = latencies.len() as u64;
    let successes = done.iter().filter(|(_, _, ok)| *ok).count() as f64;
    let calls = done.len() as u64;
    Outcome {
        goodput: in_window as f64 / window.as_secs_f64() / settings.capacity,
        rejections_per_success: (steady.rejected - warm.rejected) as f64 / in_window.max(1) as f64,
        attempts_per_call: (last.ok + last.rejected) as f64 / calls.max(1) as f64,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_per_success: cpu / successes.max(1.0),
        connections: last.connections,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    if d.is_zero() {
        "—".into()
    } else if d < Duration::from_millis(10) {
        format!("{:.1}", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.0}", d.as_secs_f64() * 1e3)
    }
}

/// `20s`, `500ms` or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn env_or<T>(name: &str, parse: impl Fn(&str) -> Option<T>, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => parse(&value).unwrap_or_else(|| {
            eprintln!("{name}={value:?} is not understood; using the default");
            default
        }),
        Err(_) => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--server") {
        let capacity = args
            .get(2)
            .and_then(|c| c.parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c > 0.0)
            .unwrap_or(2000.0);
        server(capacity);
        return;
    }
    let capacity = env_or(
        "CAPACITY",
        |v| v.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 1.0),
        2000.0,
    );
    let duration = env_or("DURATION", parse_duration, Duration::from_secs(20));
    let warmup = env_or("WARMUP", parse_duration, duration / 4).min(duration / 2);
    let modes: Vec<&str> = match std::env::var("MODE").as_deref() {
        Ok("429") => vec!["429"],
        Ok("503") => vec!["503"],
        _ => vec!["429", "503"],
    };
    let limits: Vec<usize> = env_or(
        "LIMITS",
        |v| {
            v.split(',')
                .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
                .collect()
        },
        vec![4, 8, 16],
    );
    let only: Option<Vec<String>> = std::env::var("ONLY")
        .ok()
        .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect());
    let settings = Settings {
        capacity,
        duration,
        warmup,
    };
    let rows: Vec<Row> = rows(&limits)
        .into_iter()
        .filter(|row| only.as_ref().is_none_or(|keys| keys.contains(&row.key)))
        .collect();
    for mode in modes {
        let rejection = if mode == "429" {
            "429 with `Retry-After: 1`"
        } else {
            "503 without `Retry-After`"
        };
        println!(
            "\nC = {capacity}/s, offered {OFFERED}C by {TASKS} open-loop tasks for {duration:?} \
             (steady window after {warmup:?}), {DEADLINE:?} per call; beyond the server's \
             {QUEUE:?} queue: {rejection}"
        );
        println!(
            "| client | goodput (× C) | server rejections / success | attempts / call | p50 ms | p99 ms | µs client CPU / success | new connections |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for row in &rows {
            let o = run(row, mode, &settings);
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} | {} |",
                row.name,
                o.goodput,
                o.rejections_per_success,
                o.attempts_per_call,
                ms(o.p50),
                ms(o.p99),
                o.cpu_per_success,
                o.connections,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_queues_within_its_queue_and_rejects_beyond_it() {
        let now = Instant::now();
        let mut capacity = Capacity::new(1000.0, now);
        // 1 ms per request, a 25 ms queue: 26 requests at once get turns 0..=25 ms.
        for i in 0..26u64 {
            assert_eq!(capacity.admit(now), Some(now + Duration::from_millis(i)));
        }
        assert_eq!(capacity.admit(now), None);
        // The rejection cost the bucket a tenth of a turn.
        assert_eq!(capacity.next, now + Duration::from_micros(26_100));
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
