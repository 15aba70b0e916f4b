//! Hedged requests through the blocking client: each attempt on a thread of its own, the first
//! good answer returned, the rest dropped (the cases in `resil_tests::HedgeWorld`).

use resil_blocking::{Client, ResponseExt};
use resil_tests::{HedgeWorld, hedge_policy, open_sketch, shared_load};

#[test]
fn hedge_cases_through_the_blocking_client() {
    let _load = shared_load();
    let world = HedgeWorld::start();
    for case in world.cases() {
        // A client each, so each case's counts are its own.
        let client = Client::builder()
            .policy(hedge_policy())
            .latency_sketch(open_sketch())
            .no_proxy()
            .build()
            .unwrap();
        let result = client
            .request(case.method.clone(), &case.url)
            .send()
            .and_then(|r| r.text())
            .map_err(|e| format!("{e:#}"));
        world.check("blocking", &case, result);
        let stats = client.stats();
        assert_eq!(stats.hedges, case.hedges, "{}: {stats}", case.name);
    }
}

/// A hedge wins while the first attempt's server still holds its request: the loser's socket
/// is shut down at once, not held until its 60 s attempt timeout (the server, which would
/// wait 20 s for it, sees it close).
#[test]
fn a_cancelled_attempt_closes_its_connection_at_once() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    fn read_head(stream: &TcpStream) {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow-then-fast", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (first, _) = listener.accept().unwrap();
        read_head(&first);
        let (mut second, _) = listener.accept().unwrap();
        read_head(&second);
        second
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nwon")
            .unwrap();
        // The first attempt's request stays unanswered; its client side must go away.
        first
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = [0u8; 64];
        match (&first).read(&mut rest) {
            Ok(0) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            other => Err(format!(
                "the cancelled attempt's connection stayed open: {other:?}"
            )),
        }
    });
    let policy = resil_core::RetryPolicy::builder()
        .hedge(resil_core::Hedging::fixed(Duration::from_millis(10)))
        .max_attempts(2)
        .attempt_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).no_proxy().build().unwrap();
    let body = client.get(&url).send().and_then(|r| r.text()).unwrap();
    assert_eq!(body, "won");
    server.join().unwrap().unwrap();
    let stats = client.stats();
    assert_eq!((stats.hedges, stats.cancelled), (1, 1), "{stats}");
}
