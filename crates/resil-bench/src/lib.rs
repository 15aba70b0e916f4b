//! Shared pieces of the loopback benchmarks (`src/bin/*_loopback.rs`): a minimal keep-alive
//! HTTP/1.1 server run as a child process (so its CPU is not the client's), the client's CPU
//! clock, and medians.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static FLAKY: AtomicU64 = AtomicU64::new(0);
static TAIL: AtomicU64 = AtomicU64::new(0);

/// How long the server sleeps before answering the `n`th request to `/tail`: 2 % of answers
/// take 50 ms and 0.2 % take 500 ms, the rest none, drawn per request from a fixed seed (so
/// every client meets the same sequence of slow answers in arrival order).
pub fn tail_delay(n: u64) -> std::time::Duration {
    let draw = resil_core::rand::mix(n ^ 0x7461_696c) % 1000;
    std::time::Duration::from_millis(match draw {
        0..2 => 500,
        2..22 => 50,
        _ => 0,
    })
}

/// Runs the server: prints its port, serves `/ok`, `/flaky` (every 5th answer a 503 with an
/// empty body), `/tail` (a slow tail, see [`tail_delay`]) and `/stats`, and exits when stdin
/// closes. Binaries call it on `--server`.
pub fn server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().expect("flush");
    // Exit when the parent closes our stdin.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    for stream in listener.incoming().flatten() {
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        std::thread::spawn(move || serve(stream));
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut header = String::new();
        loop {
            header.clear();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
        }
        let response: Vec<u8> = match path.as_str() {
            "/stats" => {
                let body = format!(
                    "{} {}",
                    REQUESTS.load(Ordering::Relaxed),
                    CONNECTIONS.load(Ordering::Relaxed)
                );
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            "/flaky" if FLAKY.fetch_add(1, Ordering::Relaxed) % 5 == 0 => {
                REQUESTS.fetch_add(1, Ordering::Relaxed);
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec()
            }
            "/tail" => {
                REQUESTS.fetch_add(1, Ordering::Relaxed);
                let delay = tail_delay(TAIL.fetch_add(1, Ordering::Relaxed));
                if !delay.is_zero() {
                    // Only this connection waits: the slow replica of a fan-out service.
                    std::thread::sleep(delay);
                }
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
            }
            _ => {
                REQUESTS.fetch_add(1, Ordering::Relaxed);
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
            }
        };
        if writer.write_all(&response).is_err() || path == "/stats" {
            // /stats is read to the end by `server_stats`: close after answering it.
            return;
        }
    }
}

/// Client CPU time (user + system) of this whole process, in microseconds.
pub fn cpu_micros() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the whole struct we point it at; it was zeroed before.
    #[allow(unsafe_code)]
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The median (the upper middle one for even lengths).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Asks the server for (requests served, connections accepted).
pub fn server_stats(base: &str) -> (u64, u64) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect for stats");
    write!(
        stream,
        "GET /stats HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("stats request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("stats response");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let mut it = body
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Starts this binary as the server (a child process, so its CPU is not the client's);
/// returns it and its base URL.
pub fn spawn_server() -> (std::process::Child, String) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .arg("--server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut port = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    (child, format!("http://127.0.0.1:{}", port.trim()))
}

/// The command line of a loopback benchmark: when the binary was started as the server, runs
/// [`server`] (which exits when stdin closes); otherwise returns `(requests, rounds)` from
/// `--requests N` and `--rounds N`.
pub fn requests_and_rounds(default_requests: usize, default_rounds: usize) -> (usize, usize) {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--server") {
        server();
        std::process::exit(0);
    }
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        arg("--requests", default_requests),
        arg("--rounds", default_rounds),
    )
}

/// Measures `n` clients in `rounds` interleaved rounds, rotating their order every round so
/// none always runs first or last. `run(i)` runs client `i` once and returns the requests it
/// made, its client CPU in µs and its wall time. Returns each client's per-round CPU µs per
/// request and requests per second, for [`print_rounds`].
pub fn interleaved_rounds(
    n: usize,
    rounds: usize,
    mut run: impl FnMut(usize) -> (usize, f64, std::time::Duration),
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut cpu = vec![Vec::new(); n];
    let mut rps = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let (count, micros, wall) = run(i);
            cpu[i].push(micros / count as f64);
            rps[i].push(count as f64 / wall.as_secs_f64());
        }
    }
    (cpu, rps)
}

/// Prints a markdown table of clients measured in interleaved rounds: the medians of CPU
/// µs per request and of requests per second, and the medians of their per-round ratios to
/// the first client (the baseline, measured next to each of the others).
pub fn print_rounds(names: &[&str], cpu: &[Vec<f64>], rps: &[Vec<f64>]) {
    let ratio = |series: &[Vec<f64>], i: usize| {
        median(
            series[i]
                .iter()
                .zip(&series[0])
                .map(|(a, b)| a / b)
                .collect(),
        )
    };
    println!("| client | µs CPU / request | × baseline | req/s | × baseline |");
    println!("|---|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        println!(
            "| {name} | {:.2} | {:.3} | {:.0} | {:.3} |",
            median(cpu[i].clone()),
            ratio(cpu, i),
            median(rps[i].clone()),
            ratio(rps, i)
        );
    }
}

/// With the `otel` feature and `OTEL_SDK=1` in the environment: installs the OpenTelemetry SDK
/// as an application would (a global `tracing` subscriber with tracing-opentelemetry over an
/// SDK tracer provider, a global meter provider, the W3C propagator), every exporter a no-op,
/// so what is measured is resil's instrumentation and the SDK's recording, not an export.
/// Keep the guard for the run.
#[cfg(feature = "otel")]
pub fn install_otel_sdk() -> Option<impl Sized> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Debug)]
    struct NoSpans;
    impl opentelemetry_sdk::trace::SpanExporter for NoSpans {
        fn export(
            &self,
            _: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send
        {
            std::future::ready(Ok(()))
        }
    }
    struct NoMetrics;
    impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for NoMetrics {
        fn export(
            &self,
            _: &opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send
        {
            std::future::ready(Ok(()))
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(
            &self,
            _: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
            opentelemetry_sdk::metrics::Temporality::Cumulative
        }
    }

    if std::env::var_os("OTEL_SDK").is_none_or(|v| v != "1") {
        return None;
    }
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(NoSpans)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench"));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(NoMetrics)
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    Some((tracer_provider, meter_provider))
}
