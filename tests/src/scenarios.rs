//! The scenario table every driver runs ([`scenarios`], with [`scenario_policy`]): a request,
//! how the server behaves, and what the driver must end with, down to the hooks' [`Transcript`],
//! so the drivers' transcripts can be compared line for line.

use std::sync::Mutex;
use std::time::Duration;

use crate::server::{Reply, TestServer, lock, refused_addr};

/// One row of the scenario table: a request, how the server behaves, and what every driver
/// must do about it (with [`scenario_policy`]-style tiny delays).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name for messages.
    pub name: &'static str,
    /// Request method.
    pub method: &'static str,
    /// Extra request headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The server's replies, in order.
    pub replies: Vec<Reply>,
    /// Whether the URL points at a port where nothing listens.
    pub refused: bool,
    /// What the driver must end with.
    pub expect: Expect,
    /// Requests the server must have seen.
    pub server_hits: usize,
    /// The hooks transcript every driver must produce (see [`Transcript`]).
    pub transcript: Vec<&'static str>,
    /// Hedge after this long (see [`policy`](Self::policy)).
    pub hedge: Option<Duration>,
}

impl Scenario {
    /// The policy to run this scenario with: [`scenario_policy`], hedging if the scenario
    /// does.
    pub fn policy(&self) -> resil_core::RetryPolicy {
        let policy = scenario_policy();
        match self.hedge {
            None => policy,
            Some(delay) => policy
                .with_hedging(Some(resil_core::Hedging::fixed(delay)))
                .unwrap_or_else(|e| panic!("{}: {e}", self.name)),
        }
    }

    /// Starts a server scripted with this scenario's replies at `/s`; returns it and the URL
    /// to call (a port where nothing listens when the scenario wants a refused connection).
    pub fn serve(&self) -> (TestServer, String) {
        let server = TestServer::start();
        server.script("/s", self.replies.clone());
        let url = if self.refused {
            format!("http://{}/s", refused_addr())
        } else {
            server.url("/s")
        };
        (server, url)
    }

    /// The method to send.
    pub fn http_method(&self) -> http::Method {
        http::Method::from_bytes(self.method.as_bytes())
            .unwrap_or_else(|e| panic!("{}: method: {e}", self.name))
    }

    /// Checks a driver's result, its server's hit count and its hooks transcript against the
    /// scenario; `driver` prefixes every message.
    pub fn check<B: std::fmt::Debug>(
        &self,
        driver: &str,
        result: &Result<http::Response<B>, resil_http::Error<B>>,
        server: &TestServer,
        transcript: &Transcript,
    ) {
        let name = self.name;
        match (self.expect, result) {
            (Expect::Response(status), Ok(response)) => {
                assert_eq!(response.status().as_u16(), status, "{driver}: {name}");
            }
            (Expect::Error(kind), Err(e)) => assert!(
                format!("{:?}", e.kind()).starts_with(kind),
                "{driver}: {name}: expected {kind}, got {e} ({:?})",
                e.kind()
            ),
            (want, got) => panic!("{driver}: {name}: expected {want:?}, got {got:?}"),
        }
        assert_eq!(server.hits("/s"), self.server_hits, "{driver}: {name}");
        assert_eq!(transcript.lines(), self.transcript, "{driver}: {name}");
    }
}

/// The outcome a scenario requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A response with this status.
    Response(u16),
    /// An error of this kind (the driver's `ErrorKind` rendered with `{:?}`, prefix match).
    Error(&'static str),
}

/// The policy every driver uses for the scenario table: 4 attempts, a constant 5 ms backoff
/// without jitter, an 80 ms attempt timeout (the one scenario that waits for it stays under
/// ~100 ms of real time) and a 2 s total deadline.
pub fn scenario_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .max_attempts(4)
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .retry_after_spread(0.0)
        .attempt_timeout(Some(Duration::from_millis(80)))
        .total_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap_or_else(|e| panic!("scenario policy: {e}"))
}

/// Hooks that write every callback as one line; drivers are compared line for line.
#[derive(Debug, Default)]
pub struct Transcript(Mutex<Vec<String>>);

impl Transcript {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.0).clone()
    }

    fn push(&self, line: String) {
        lock(&self.0).push(line);
    }
}

impl resil_http::Hooks for Transcript {
    fn on_request(&self, _: &resil_http::CallInfo<'_>, attempt: resil_core::Attempt) {
        self.push(format!("send {}", attempt.number()));
    }
    fn on_retry(&self, _: &resil_http::CallInfo<'_>, r: &resil_http::RetryInfo) {
        self.push(format!(
            "retry {} ({}) in {:?}",
            r.after.number(),
            r.cause,
            r.delay
        ));
    }
    fn on_success(&self, _: &resil_http::CallInfo<'_>, attempt: resil_core::Attempt, status: u16) {
        self.push(format!("done {} {status}", attempt.number()));
    }
    fn on_failure(&self, _: &resil_http::CallInfo<'_>, g: &resil_core::GiveUp) {
        self.push(format!("fail {:?}", g.reason));
    }
    fn on_breaker(&self, _: &resil_http::CallInfo<'_>, t: resil_core::Transition) {
        self.push(format!("breaker {} -> {}", t.from, t.to));
    }
    fn on_redirect(&self, _: &resil_http::CallInfo<'_>, r: &resil_http::RedirectInfo) {
        match r.refused {
            None => self.push(format!("redirect {} {}", r.hop, r.status)),
            Some(why) => self.push(format!("redirect {} {} refused: {why}", r.hop, r.status)),
        }
    }
    fn on_hedge(&self, _: &resil_http::CallInfo<'_>, h: &resil_http::HedgeInfo) {
        match *h {
            resil_http::HedgeInfo::Sent { attempt } => {
                self.push(format!("hedge {}", attempt.number()));
            }
            resil_http::HedgeInfo::Won { attempt } => {
                self.push(format!("hedge {} won", attempt.number()));
            }
            resil_http::HedgeInfo::Cancelled { attempt, lost } => {
                let why = if lost { "lost" } else { "timed out" };
                self.push(format!("cancel {} ({why})", attempt.number()));
            }
            _ => {}
        }
    }
}

/// The scenario table; run it with [`scenario_policy`].
pub fn scenarios() -> Vec<Scenario> {
    let get = |name, replies: Vec<Reply>, expect, hits, transcript| Scenario {
        name,
        method: "GET",
        headers: Vec::new(),
        replies,
        refused: false,
        expect,
        server_hits: hits,
        transcript,
        hedge: None,
    };
    // A response no driver may read as anything but malformed: final, whatever the method.
    let malformed = |name, raw: &'static [u8]| {
        let protocol = Expect::Error("Transport(Protocol)");
        get(
            name,
            vec![Reply::Raw(raw)],
            protocol,
            1,
            vec!["send 1", "fail NotRetryable"],
        )
    };
    vec![
        get(
            "503, 503, 200",
            vec![
                Reply::status(503),
                Reply::status(503),
                Reply::body(200, "ok"),
            ],
            Expect::Response(200),
            3,
            vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "retry 2 (status 503) in 5ms",
                "send 3",
                "done 3 200",
            ],
        ),
        get(
            "always 500",
            vec![Reply::status(500)],
            Expect::Error("Status(500)"),
            4,
            vec![
                "send 1",
                "retry 1 (status 500) in 5ms",
                "send 2",
                "retry 2 (status 500) in 5ms",
                "send 3",
                "retry 3 (status 500) in 5ms",
                "send 4",
                "fail AttemptsExhausted",
            ],
        ),
        get(
            "404 is final",
            vec![Reply::status(404)],
            Expect::Response(404),
            1,
            vec!["send 1", "done 1 404"],
        ),
        get(
            "a redirect without a Location is returned",
            vec![Reply::status(302)],
            Expect::Response(302),
            1,
            vec!["send 1", "done 1 302"],
        ),
        get(
            "a redirect is followed, as a hop of its own",
            vec![
                Reply::with_header(302, "location", "/s?hop=2"),
                Reply::body(200, "ok"),
            ],
            Expect::Response(200),
            2,
            vec!["send 1", "redirect 1 302", "send 1", "done 1 200"],
        ),
        get(
            "Retry-After: 0 is a floor under the backoff, not a tight loop",
            vec![
                Reply::with_header(503, "retry-after", "0"),
                Reply::with_header(503, "retry-after", "0"),
                Reply::body(200, "ok"),
            ],
            Expect::Response(200),
            3,
            vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "retry 2 (status 503) in 5ms",
                "send 3",
                "done 3 200",
            ],
        ),
        get(
            "a retry, then a redirect",
            vec![
                Reply::status(503),
                Reply::with_header(307, "location", "/s?hop=2"),
                Reply::body(200, "ok"),
            ],
            Expect::Response(200),
            3,
            vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "redirect 1 307",
                "send 1",
                "done 1 200",
            ],
        ),
        get(
            "a redirect loop fails",
            vec![
                Reply::with_header(301, "location", "/s?loop"),
                Reply::with_header(301, "location", "/s"),
            ],
            Expect::Error("Redirect(Loop)"),
            2,
            vec![
                "send 1",
                "redirect 1 301",
                "send 1",
                "redirect 2 301 refused: a redirect loop",
            ],
        ),
        get(
            "a redirect to file: fails",
            vec![Reply::with_header(302, "location", "file:///etc/passwd")],
            Expect::Error("Redirect(UnsupportedScheme)"),
            1,
            vec![
                "send 1",
                "redirect 1 302 refused: a redirect to a scheme other than http and https",
            ],
        ),
        get(
            "Retry-After beyond the cap",
            vec![Reply::with_header(503, "retry-after", "999999")],
            Expect::Error("RetryAfterTooLong"),
            1,
            vec!["send 1", "fail RetryAfterTooLong { requested: 999999s }"],
        ),
        malformed(
            "a Content-Length that is no number is malformed, not a body",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nab",
        ),
        malformed(
            "Content-Length beside Transfer-Encoding is malformed (RFC 9112 6.3)",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        ),
        malformed(
            "two different Content-Lengths are malformed",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        ),
        malformed(
            "a Content-Length list that disagrees with itself is malformed",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!",
        ),
        malformed(
            "a status outside 100-999 is malformed, not a reset",
            b"HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok",
        ),
        malformed(
            "a header name with a space is malformed, not a reset",
            b"HTTP/1.1 200 OK\r\nbad name: x\r\ncontent-length: 2\r\n\r\nok",
        ),
        get(
            "GET reset, then 200",
            vec![Reply::Reset, Reply::status(200)],
            Expect::Response(200),
            2,
            vec![
                "send 1",
                "retry 1 (connection reset after the request was sent) in 5ms",
                "send 2",
                "done 2 200",
            ],
        ),
        Scenario {
            name: "POST reset after the request was written",
            method: "POST",
            headers: Vec::new(),
            replies: vec![Reply::Reset, Reply::status(200)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
            hedge: None,
        },
        Scenario {
            name: "POST with Idempotency-Key, 503 then 201",
            method: "POST",
            headers: vec![("idempotency-key", "k-42")],
            replies: vec![Reply::status(503), Reply::status(201)],
            refused: false,
            expect: Expect::Response(201),
            server_hits: 2,
            transcript: vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "done 2 201",
            ],
            hedge: None,
        },
        Scenario {
            name: "POST 503 without a key is not replayed",
            method: "POST",
            headers: Vec::new(),
            replies: vec![Reply::status(503), Reply::status(201)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
            hedge: None,
        },
        Scenario {
            name: "a method of an HTTP extension (WebDAV) is sent, and not replayed",
            method: "PROPFIND",
            headers: Vec::new(),
            replies: vec![Reply::status(503), Reply::status(207)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
            hedge: None,
        },
        Scenario {
            name: "POST to a refused port is retried until attempts run out",
            method: "POST",
            headers: Vec::new(),
            replies: Vec::new(),
            refused: true,
            expect: Expect::Error("Transport(Connect)"),
            server_hits: 0,
            transcript: vec![
                "send 1",
                "retry 1 (connection refused) in 5ms",
                "send 2",
                "retry 2 (connection refused) in 5ms",
                "send 3",
                "retry 3 (connection refused) in 5ms",
                "send 4",
                "fail AttemptsExhausted",
            ],
            hedge: None,
        },
        Scenario {
            hedge: Some(Duration::from_millis(20)),
            ..get(
                "a slow answer is hedged and the hedge wins",
                vec![
                    Reply::late(Duration::from_millis(500), Reply::status(200)),
                    Reply::status(200),
                ],
                Expect::Response(200),
                2,
                vec![
                    "send 1",
                    "send 2",
                    "hedge 2",
                    "done 2 200",
                    "hedge 2 won",
                    "cancel 1 (lost)",
                ],
            )
        },
        Scenario {
            method: "POST",
            hedge: Some(Duration::from_millis(20)),
            ..get(
                "a POST is never hedged",
                vec![Reply::late(Duration::from_millis(50), Reply::status(200))],
                Expect::Response(200),
                1,
                vec!["send 1", "done 1 200"],
            )
        },
        get(
            "stall past the attempt timeout, then 200",
            vec![Reply::Stall(Duration::from_secs(1)), Reply::status(200)],
            Expect::Response(200),
            2,
            vec![
                "send 1",
                "retry 1 (attempt timed out) in 5ms",
                "send 2",
                "done 2 200",
            ],
        ),
    ]
}
