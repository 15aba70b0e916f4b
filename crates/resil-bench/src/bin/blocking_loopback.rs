//! Sequential GETs over keep-alive loopback: resil-blocking vs bare ureq vs ureq + backon
//! (and, on the flaky endpoint, a hand-written retry loop), interleaved, client CPU from
//! getrusage, the server in a child process. Method: ../shared/BENCHMARKING.md.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin blocking_loopback
//! taskset -c 0 target/release/blocking_loopback --requests 20000 --rounds 7
//! ```
//!
//! Clients on /ok: bare ureq without timeouts (the baseline), bare ureq with a per-request
//! `timeout_global` (what enforcing a deadline costs with ureq's default resolver), resil's
//! `UreqTransport` alone (the deadline without the retry machine), ureq + backon, and
//! resil-blocking. On /flaky (every 5th request answers 503, zero backoff): a hand-written
//! retry loop (the baseline), backon, resil-blocking.

use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ConstantBuilder};
use resil_bench::{cpu_micros, server_stats, spawn_server};
use resil_core::{Backoff, Jitter, RetryPolicy};

fn main() {
    let (requests, rounds) = resil_bench::requests_and_rounds(20_000, 7);
    #[cfg(feature = "otel")]
    let _otel = resil_bench::install_otel_sdk();
    if let Ok(only) = std::env::var("ONLY") {
        return only_one(&only, requests);
    }
    client(requests, rounds);
}

#[derive(Clone, Copy)]
enum Kind {
    BareUreq,
    UreqTimeout,
    Transport,
    UreqBackon,
    HandLoop,
    Resil,
    ResilLean,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::BareUreq => "ureq 3, bare (no timeouts)",
            Kind::UreqTimeout => "ureq 3, bare + per-request timeout_global (10 s)",
            Kind::Transport => "resil's UreqTransport alone (deadline, no retry machine)",
            Kind::UreqBackon => "ureq 3 + backon (blocking, zero delay)",
            Kind::HandLoop => "ureq 3 + hand-written retry loop",
            Kind::Resil => "resil-blocking",
            Kind::ResilLean => "resil-blocking without breaker and budget",
        }
    }
}

struct Clients {
    agent: ureq::Agent,
    transport: resil_blocking::UreqTransport,
    resil: resil_blocking::Client,
    /// The same loop without the default breaker and budget.
    lean: resil_blocking::Client,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

fn get_ureq(agent: &ureq::Agent, url: &str) -> Result<u16, u16> {
    let mut r = agent.get(url).call().map_err(|_| 0u16)?;
    let status = r.status().as_u16();
    let _ = r.body_mut().read_to_vec();
    if status == 503 {
        Err(status)
    } else {
        Ok(status)
    }
}

/// Runs `n` logical GETs; returns (client CPU µs, wall time).
fn run(kind: Kind, clients: &Clients, url: &str, n: usize) -> (f64, Duration) {
    let cpu = cpu_micros();
    let wall = Instant::now();
    for _ in 0..n {
        let status = match kind {
            Kind::BareUreq => get_ureq(&clients.agent, url).unwrap_or(0),
            Kind::UreqTimeout => {
                let request = http_get(url);
                let request = clients
                    .agent
                    .configure_request(request)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build();
                match clients.agent.run(request) {
                    Ok(mut r) => {
                        let _ = r.body_mut().read_to_vec();
                        r.status().as_u16()
                    }
                    Err(_) => 0,
                }
            }
            Kind::UreqBackon => (|| get_ureq(&clients.agent, url))
                .retry(
                    ConstantBuilder::default()
                        .with_delay(Duration::ZERO)
                        .with_max_times(3),
                )
                .call()
                .unwrap_or(0),
            Kind::Transport => {
                let request = http_get(url).map(|()| resil_blocking::RequestBody::Empty);
                match resil_blocking::BlockingTransport::send(
                    &clients.transport,
                    request,
                    Duration::from_secs(10),
                ) {
                    Ok(mut r) => {
                        let _ = std::io::Read::read_to_end(r.body_mut(), &mut Vec::new());
                        r.status().as_u16()
                    }
                    Err(_) => 0,
                }
            }
            Kind::HandLoop => {
                let mut status = 0;
                for _ in 0..4 {
                    match get_ureq(&clients.agent, url) {
                        Ok(s) => {
                            status = s;
                            break;
                        }
                        Err(s) => status = s,
                    }
                }
                status
            }
            Kind::Resil | Kind::ResilLean => match if matches!(kind, Kind::Resil) {
                &clients.resil
            } else {
                &clients.lean
            }
            .get(url)
            .send()
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = resil_blocking::ResponseExt::bytes(r);
                    status
                }
                Err(_) => 0,
            },
        };
        assert_eq!(status, 200, "{} failed a request to {url}", kind.name());
    }
    ((cpu_micros() - cpu) as f64, wall.elapsed())
}

fn http_get(url: &str) -> ureq::http::Request<()> {
    let mut request = ureq::http::Request::new(());
    *request.uri_mut() = url.parse().expect("url");
    request
}

fn client(requests: usize, rounds: usize) {
    let (mut child, base) = spawn_server();
    let zero_backoff = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::ZERO))
        .jitter(Jitter::None)
        .build()
        .expect("policy");
    let default_clients = Clients {
        agent: agent(),
        transport: resil_blocking::UreqTransport::new(&resil_blocking::UreqSettings::default())
            .expect("default settings"),
        resil: resil_blocking::Client::new(),
        lean: lean(RetryPolicy::default()),
    };
    let flaky_clients = Clients {
        agent: agent(),
        transport: resil_blocking::UreqTransport::new(&resil_blocking::UreqSettings::default())
            .expect("default settings"),
        resil: resil_blocking::Client::builder()
            .policy(zero_backoff.clone())
            .no_budget()
            .build()
            .expect("client"),
        lean: lean(zero_backoff.clone()),
    };
    for (endpoint, clients, kinds) in [
        (
            "/ok",
            &default_clients,
            vec![
                Kind::BareUreq,
                Kind::UreqTimeout,
                Kind::Transport,
                Kind::UreqBackon,
                Kind::Resil,
                Kind::ResilLean,
            ],
        ),
        (
            "/flaky",
            &flaky_clients,
            vec![
                Kind::HandLoop,
                Kind::UreqBackon,
                Kind::Resil,
                Kind::ResilLean,
            ],
        ),
    ] {
        let url = format!("{base}{endpoint}");
        // Warm-up: connections, page faults, caches.
        for kind in &kinds {
            run(*kind, clients, &url, requests / 4);
        }
        let n = kinds.len();
        let (before_requests, before_connections) = server_stats(&base);
        let (cpu, rps) = resil_bench::interleaved_rounds(n, rounds, |i| {
            let (c, w) = run(kinds[i], clients, &url, requests);
            (requests, c, w)
        });
        let (after_requests, after_connections) = server_stats(&base);
        println!(
            "\n{endpoint}: {requests} sequential logical requests x {rounds} rounds per client, interleaved"
        );
        println!(
            "server saw {} attempts on {} new connections ({:.3} attempts per logical request)",
            after_requests - before_requests,
            after_connections - before_connections,
            (after_requests - before_requests) as f64 / (n * rounds * requests) as f64
        );
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        resil_bench::print_rounds(&names, &cpu, &rps);
    }
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Profiling aid (`ONLY=bare|transport|resil|ids|lean`): one client against /ok, nothing
/// else, for `strace -c` or callgrind (`ids`: the default client generating request ids).
fn only_one(which: &str, requests: usize) {
    let (mut child, base) = spawn_server();
    let url = format!("{base}/ok");
    let clients = Clients {
        agent: agent(),
        transport: resil_blocking::UreqTransport::new(&resil_blocking::UreqSettings::default())
            .expect("default settings"),
        resil: if which == "ids" {
            resil_blocking::Client::builder()
                .generate_request_ids(true)
                .build()
                .expect("client")
        } else {
            resil_blocking::Client::new()
        },
        lean: lean(RetryPolicy::default()),
    };
    let kind = match which {
        "resil" | "ids" => Kind::Resil,
        "lean" => Kind::ResilLean,
        "transport" => Kind::Transport,
        _ => Kind::BareUreq,
    };
    let (c, _) = run(kind, &clients, &url, requests);
    eprintln!("{which}: {:.2} µs/request", c / requests as f64);
    drop(child.stdin.take());
    let _ = child.wait();
}

/// resil-blocking without the defaults that cost per call: breaker and budget.
fn lean(policy: RetryPolicy) -> resil_blocking::Client {
    resil_blocking::Client::builder()
        .policy(policy)
        .no_breaker()
        .no_budget()
        .build()
        .expect("lean client")
}
