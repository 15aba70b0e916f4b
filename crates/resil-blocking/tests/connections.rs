//! resil-blocking's connections: reused after a retried response, checked before the pool
//! hands them out again, TLS on an https URL, and a hundred threads sharing one client.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{Client, ResponseExt};
use resil_core::{Backoff, RetryPolicy};
use resil_tests::{Reply, TestServer, exclusive_load, shared_load};

#[test]
fn connection_is_reused_after_a_retried_response() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/reuse",
        vec![Reply::body(503, "busy, try again"), Reply::status(200)],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    client.get(&server.url("/reuse")).send().unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].connection, requests[1].connection,
        "the 503 body was drained"
    );
}

/// A server that answers every request on every connection with a 2-byte 200. On the first
/// connection it then waits for the test's go-ahead (so the client has read its answer) and
/// does `after_first`. It reports which connection (0, 1, …) each request arrived on.
fn pool_check_server(
    after_first: fn(&mut std::net::TcpStream),
) -> (
    String,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<usize>,
) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (seen, arrivals) = std::sync::mpsc::channel();
    let (go, go_ahead) = std::sync::mpsc::channel::<()>();
    let mut go_ahead = Some(go_ahead);
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            let go_ahead = go_ahead.take();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    head.clear();
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                    if let Some(go_ahead) = &go_ahead {
                        if go_ahead.recv().is_err() {
                            return;
                        }
                        after_first(&mut stream);
                    }
                    if seen.send(connection).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, go, arrivals)
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_reused_even_for_a_post() {
    // A POST written onto a connection the server has closed would fail as "may have been
    // sent" and could not be retried: the pool's check must find the close first.
    let (url, go, arrivals) = pool_check_server(|stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    let client = Client::builder().build().unwrap();
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    go.send(()).unwrap();
    assert_eq!(arrivals.recv().unwrap(), 0, "after the server's close");
    let response = client.post(&url).body("x").send().unwrap();
    assert_eq!(response.text().unwrap(), "ok");
    assert_eq!(
        arrivals.recv().unwrap(),
        1,
        "the POST went on a new connection"
    );
    assert_eq!(client.stats().attempts, 2, "and was never replayed");
}

#[test]
fn a_pooled_connection_with_bytes_nobody_asked_for_is_not_reused() {
    let (url, go, arrivals) = pool_check_server(|stream| {
        use std::io::Write;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    });
    let client = Client::builder().build().unwrap();
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    go.send(()).unwrap();
    assert_eq!(arrivals.recv().unwrap(), 0, "after the stray bytes");
    // The stray response must not be read as the answer to the next request.
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    assert_eq!(arrivals.recv().unwrap(), 1);
    // A connection that stays quiet is reused.
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    assert_eq!(arrivals.recv().unwrap(), 1);
}

#[cfg(feature = "rustls")]
#[test]
fn an_https_url_speaks_tls_over_the_tcp_connection() {
    // resil builds the connector chain itself (its own TCP connection under ureq's rustls):
    // what reaches the server must be a TLS handshake, not plain HTTP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let first_bytes = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut record = [0u8; 3];
        stream.read_exact(&mut record).unwrap();
        record
    });
    let clock = ManualClock::new();
    let err = builder(&clock)
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .unwrap_err();
    // A handshake record (22) of TLS 1.x (3, x).
    assert_eq!(first_bytes.join().unwrap()[..2], [22, 3], "{err}");
}

#[test]
fn hundred_threads_fifty_requests_each_are_all_accounted_for() {
    let _alone = exclusive_load();
    let server = TestServer::start();
    // Roughly one request in five gets a 503.
    server.handle("/load", |_, n| {
        if n % 5 == 0 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    // No breaker (five 503s in a row would open it and turn this into a breaker test) and a
    // generous attempt timeout, so every attempt is answered and the server's count is exact.
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(5)))
        .attempt_timeout(Some(Duration::from_secs(10)))
        .total_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let client = builder(&ManualClock::new())
        .policy(policy)
        .no_breaker()
        .build()
        .unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..100 {
            let (client, ok, failed, url) = (&client, &ok, &failed, server.url("/load"));
            scope.spawn(move || {
                for _ in 0..50 {
                    match client.get(&url).send() {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            });
        }
    });
    let stats = client.stats();
    let (ok, failed) = (
        ok.load(Ordering::SeqCst) as u64,
        failed.load(Ordering::SeqCst) as u64,
    );
    assert_eq!(ok + failed, 5000);
    assert_eq!(stats.requests, 5000);
    assert_eq!(stats.successes, ok);
    assert_eq!(stats.failures, failed);
    assert_eq!(stats.attempts, server.hits("/load") as u64);
    assert_eq!(stats.attempts, 5000 + stats.total_retries());
    assert!(stats.total_retries() >= 900, "{stats:?}");
}
