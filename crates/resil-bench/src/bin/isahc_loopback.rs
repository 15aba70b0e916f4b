//! Sequential loopback GETs through isahc: resil-isahc vs bare isahc, interleaved, client CPU
//! from getrusage (isahc's curl thread included), the server in a child process.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin isahc_loopback
//! taskset -c 0 target/release/isahc_loopback --requests 20000 --rounds 5
//! ```

use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use futures_lite::future::block_on;
use resil_bench::{cpu_micros, server_stats, spawn_server};

fn main() {
    let (requests, rounds) = resil_bench::requests_and_rounds(20_000, 5);
    let (mut child, base) = spawn_server();
    let url = format!("{base}/ok");
    let bare = isahc::HttpClient::new().expect("isahc");
    let resil = resil_isahc::Client::new().expect("resil-isahc");
    let run = |resil_client: bool, n: usize| -> (f64, Duration) {
        let cpu = cpu_micros();
        let wall = Instant::now();
        block_on(async {
            for _ in 0..n {
                let status = if resil_client {
                    match resil.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                            status
                        }
                        Err(_) => 0,
                    }
                } else {
                    match bare.get_async(&url).await {
                        Ok(mut r) => {
                            let mut sink = Vec::new();
                            let _ = r.body_mut().read_to_end(&mut sink).await;
                            r.status().as_u16()
                        }
                        Err(_) => 0,
                    }
                };
                assert_eq!(status, 200);
            }
        });
        ((cpu_micros() - cpu) as f64, wall.elapsed())
    };
    // Profiling aid: `ONLY=bare|resil` runs one client once.
    if let Ok(only) = std::env::var("ONLY") {
        let (c, _) = run(only == "resil", requests);
        eprintln!("{only}: {:.2} µs CPU/request", c / requests as f64);
        drop(child.stdin.take());
        let _ = child.wait();
        return;
    }
    run(false, requests / 4);
    run(true, requests / 4);
    let (before, before_conns) = server_stats(&base);
    let (cpu, rps) = resil_bench::interleaved_rounds(2, rounds, |i| {
        let (c, w) = run(i == 1, requests);
        (requests, c, w)
    });
    let (after, after_conns) = server_stats(&base);
    println!(
        "/ok: {requests} sequential GETs x {rounds} rounds per client; server saw {} attempts ({:.3} per request) on {} new connections",
        after - before,
        (after - before) as f64 / (2 * rounds * requests) as f64,
        after_conns - before_conns
    );
    resil_bench::print_rounds(&["isahc 2, bare", "resil-isahc"], &cpu, &rps);
    drop(child.stdin.take());
    let _ = child.wait();
}
