//! Hedged requests that every driver runs ([`HedgeWorld`]): a slow first answer hedged and
//! beaten, a fast one never hedged, a POST never hedged, a fast 503 that does not beat a slow
//! 200. Each case's answers say who won (the body names the attempt that sent it), so no case
//! measures time.

use std::time::Duration;

use crate::server::{Reply, TestServer};

/// The hedge delay every driver's client uses here.
pub const HEDGE_AFTER: Duration = Duration::from_millis(40);

/// How long a slow answer takes: long past the hedge, well inside the attempt timeout.
pub const SLOW: Duration = Duration::from_millis(600);

/// A latency sketch that lets every hedge here through (the default caps hedges at 5 % of
/// requests, which a handful of test calls would exceed).
pub fn open_sketch() -> std::sync::Arc<std::sync::Mutex<resil_core::LatencySketch>> {
    let sketch = resil_core::LatencySketch::builder()
        .max_extra_load(1.0)
        .hedge_burst(100)
        .build()
        .unwrap_or_else(|e| panic!("sketch: {e}"));
    std::sync::Arc::new(std::sync::Mutex::new(sketch))
}

/// The policy every driver's client uses here: hedge after [`HEDGE_AFTER`], attempts of 5 s.
pub fn hedge_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .hedge(resil_core::Hedging::fixed(HEDGE_AFTER))
        .attempt_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap_or_else(|e| panic!("hedge policy: {e}"))
}

/// One hedging case.
#[derive(Clone, Debug)]
pub struct HedgeCase {
    /// Name for messages.
    pub name: &'static str,
    /// The method.
    pub method: http::Method,
    /// The URL.
    pub url: String,
    /// The body the call must end with.
    pub body: &'static str,
    /// Requests the server must have seen.
    pub requests: usize,
    /// Hedges the client must count for this case.
    pub hedges: u64,
}

/// A server scripted with every case, each on its own path.
#[derive(Debug)]
pub struct HedgeWorld {
    /// The server.
    pub server: TestServer,
}

impl HedgeWorld {
    /// Starts the server.
    pub fn start() -> HedgeWorld {
        let server = TestServer::start();
        let slow = |body| Reply::late(SLOW, Reply::body(200, body));
        server.script(
            "/hedge/beaten",
            vec![slow("first"), Reply::body(200, "hedge")],
        );
        server.script("/hedge/fast", vec![Reply::body(200, "first")]);
        server.script(
            "/hedge/post",
            vec![slow("first"), Reply::body(200, "hedge")],
        );
        server.script(
            "/hedge/fast-503",
            vec![
                Reply::late(SLOW / 2, Reply::body(200, "first")),
                Reply::status(503),
                slow("third"),
            ],
        );
        HedgeWorld { server }
    }

    /// Every case.
    pub fn cases(&self) -> Vec<HedgeCase> {
        let case = |name, path: &str, body, requests, hedges| HedgeCase {
            name,
            method: http::Method::GET,
            url: self.server.url(path),
            body,
            requests,
            hedges,
        };
        vec![
            case(
                "a slow first answer is hedged and beaten",
                "/hedge/beaten",
                "hedge",
                2,
                1,
            ),
            case(
                "a fast answer is never hedged",
                "/hedge/fast",
                "first",
                1,
                0,
            ),
            HedgeCase {
                method: http::Method::POST,
                ..case("a POST is never hedged", "/hedge/post", "first", 1, 0)
            },
            // The hedge's fast 503 sends the next hedge at once; the first's 200 still wins.
            case(
                "a fast 503 does not beat a slow 200",
                "/hedge/fast-503",
                "first",
                3,
                2,
            ),
        ]
    }

    /// Checks what `case` ended with (its body, or the error) and the requests the server saw.
    pub fn check(&self, driver: &str, case: &HedgeCase, result: Result<String, String>) {
        let name = case.name;
        match result {
            Ok(body) => assert_eq!(body, case.body, "{driver}: {name}"),
            Err(e) => panic!("{driver}: {name}: {e}"),
        }
        let path = case.url.rsplit_once("/hedge/").map_or("", |(_, p)| p);
        let hits = self.server.hits(&format!("/hedge/{path}"));
        assert_eq!(hits, case.requests, "{driver}: {name}");
    }
}
