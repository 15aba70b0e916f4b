//! The checks every driver runs: each driver's test builds its own client and makes the
//! calls its own way; these start the servers, make the calls where the client is async, and
//! hold every driver to the same outcome (`check_*_through` for the async clients, `assert_*`
//! for what all of them must end with), with the inputs each check is defined for.

use std::time::{Duration, Instant};

use crate::server::{Reply, TestServer};

/// Fails unless `start` was between `at_least` and `below` ago.
pub fn assert_took(start: Instant, at_least: Duration, below: Duration) {
    let took = start.elapsed();
    assert!(
        took >= at_least && took < below,
        "took {took:?}, expected {at_least:?} to {below:?}"
    );
}

/// Two attempts of 40 ms each, 5 ms apart: for a connection that hangs
/// ([`UnansweredListener`](crate::server::UnansweredListener)), so the whole call waits ~85 ms.
pub fn connect_hang_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .max_attempts(2)
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .attempt_timeout(Some(Duration::from_millis(40)))
        .build()
        .unwrap_or_else(|e| panic!("connect hang policy: {e}"))
}

/// Checks what every driver must end with under [`connect_hang_policy`]: nothing was sent,
/// so even a POST was tried again, and both attempts ended as connect timeouts.
pub fn assert_connect_hang_retried<B>(err: &resil_http::Error<B>) {
    assert_eq!(
        err.kind(),
        resil_http::ErrorKind::Transport(resil_core::TransportErrorKind::ConnectTimeout),
        "{err}"
    );
    assert_eq!(err.attempts(), 2, "{err}");
}

/// Checks that a client's build failed on a setting's value, naming the setting.
pub fn assert_refused_setting<B>(err: &resil_http::Error<B>, setting: &str) {
    assert_eq!(err.kind(), resil_http::ErrorKind::InvalidConfig, "{err:#}");
    assert!(format!("{err:#}").contains(setting), "{err:#}");
}

/// Checks the framing cases every driver sends to `/length` (see
/// `resil_http::driver::check_request_headers`): a `Content-Length` that is not the body's (`"1"` on
/// a two-byte body, from the request builder and from `execute`; `"3"` on none) and a second
/// `Host` were refused with errors that say so, and only the two requests that declared
/// their body's length (`"2"` on `ab`, buffered and streamed) arrived.
pub fn assert_only_well_framed_requests_sent<B>(
    server: &TestServer,
    refused: [&resil_http::Error<B>; 4],
) {
    let [wrong, built, none, hosts] = refused;
    for short in [wrong, built] {
        assert_refused_setting(short, "Content-Length 1 does not match the body (2 bytes)");
    }
    assert_refused_setting(none, "Content-Length 3 does not match the body (0 bytes)");
    assert_refused_setting(hosts, "Host is given more than once");
    let sent: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| (r.values("content-length"), r.body))
        .collect();
    let framed = (vec!["2".to_owned()], b"ab".to_vec());
    assert_eq!(sent, [framed.clone(), framed]);
}

/// Sends the framing cases of [`assert_only_well_framed_requests_sent`] through an async
/// client (resil-tokio's and resil-isahc's alike) to a server of their own, and checks them.
pub async fn check_framing_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    let url = server.url("/length");
    let post = |length: &str| client.post(&url).header("content-length", length);
    let wrong = post("1").body("ab").send().await.unwrap_err();
    let built = http::Request::post(&url).header("content-length", "1");
    let built = client.execute(built.body("ab").unwrap()).await.unwrap_err();
    let none = client.get(&url).header("content-length", "3").send();
    let none = none.await.unwrap_err();
    post("2").body("ab").send().await.unwrap();
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"ab"));
    post("2").body_stream(stream).send().await.unwrap();
    let hosts = client
        .get(&url)
        .header("host", "a.test")
        .header("host", "b.test");
    let hosts = hosts.send().await.unwrap_err();
    assert_only_well_framed_requests_sent(&server, [&wrong, &built, &none, &hosts]);
}

/// The requests [`assert_empty_bodies_declared`] expects, each without a body: a method and
/// whether it goes through `execute` (a request built whole) rather than the builder.
pub const BODILESS_REQUESTS: [(&str, bool); 6] = [
    ("POST", false),
    ("PUT", false),
    ("PATCH", false),
    ("GET", false),
    ("DELETE", false),
    ("POST", true),
];

/// Checks what `server` received for [`BODILESS_REQUESTS`], in order: the methods that give
/// content a meaning declare `Content-Length: 0` (RFC 9110 §8.6), `GET` and `DELETE` no
/// length, and none is chunked.
pub fn assert_empty_bodies_declared(server: &TestServer) {
    let seen: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| {
            let framing = [r.values("content-length"), r.values("transfer-encoding")];
            (r.method, framing, r.body.len())
        })
        .collect();
    let expected: Vec<_> = BODILESS_REQUESTS
        .iter()
        .map(|&(method, _)| {
            let length = matches!(method, "POST" | "PUT" | "PATCH").then(|| "0".to_owned());
            (method.to_owned(), [length.into_iter().collect(), vec![]], 0)
        })
        .collect();
    assert_eq!(seen, expected);
}

/// Sends [`BODILESS_REQUESTS`] through an async client to a server of its own and checks them
/// with [`assert_empty_bodies_declared`].
pub async fn check_empty_bodies_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    server.script("/empty", vec![Reply::status(200)]);
    let url = server.url("/empty");
    for (method, built_whole) in BODILESS_REQUESTS {
        let method: http::Method = method.parse().unwrap();
        let sent = if built_whole {
            let request = http::Request::builder().method(method).uri(&url);
            client.execute(request.body(()).unwrap()).await
        } else {
            client.request(method, &url).send().await
        };
        assert_eq!(sent.unwrap().status(), 200);
    }
    assert_empty_bodies_declared(&server);
}

/// `server`'s URL for `path` with credentials in it (`me`, `p@ss` escaped), as
/// [`assert_url_credentials_sent_as_basic`] expects them.
pub fn url_with_credentials(server: &TestServer, path: &str) -> String {
    server.url(path).replacen("http://", "http://me:p%40ss@", 1)
}

/// Checks that every request `server` saw carried the credentials of
/// [`url_with_credentials`] as `Authorization: Basic` (`me:p@ss`), and only there.
pub fn assert_url_credentials_sent_as_basic(server: &TestServer, requests: usize) {
    let seen = server.requests();
    assert_eq!(seen.len(), requests);
    for request in seen {
        assert_eq!(request.values("authorization"), ["Basic bWU6cEBzcw=="]);
        assert_eq!(request.values("host"), [server.addr().to_string()]);
    }
}

/// Sends a GET to a URL with credentials in it through an async client, built by the request
/// builder and whole, and checks them with [`assert_url_credentials_sent_as_basic`].
pub async fn check_url_credentials_through<R: resil_async::Runtime>(
    client: &resil_async::Client<R>,
) {
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let url = url_with_credentials(&server, "/creds");
    client.get(&url).send().await.unwrap();
    let built = http::Request::get(&url).body(()).unwrap();
    client.execute(built).await.unwrap();
    assert_url_credentials_sent_as_basic(&server, 2);
}

/// Checks an async client's bound on response heads: one of 60 KiB is read, one of 200 KiB
/// (past every driver's limit) fails the attempt as a malformed response, not retried.
pub async fn check_response_head_limit_through<R: resil_async::Runtime>(
    client: &resil_async::Client<R>,
) {
    let server = TestServer::start();
    server.script("/head60", vec![Reply::HugeHead(60 * 1024)]);
    server.script("/head200", vec![Reply::HugeHead(200 * 1024)]);
    let ok = client.get(&server.url("/head60")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let err = client
        .get(&server.url("/head200"))
        .send()
        .await
        .unwrap_err();
    assert_head_refused(&err);
    assert_eq!(server.hits("/head200"), 1);
}

/// Checks the error for a response head past the client's limit: a malformed response, not
/// retried.
pub fn assert_head_refused<B>(err: &resil_http::Error<B>) {
    let protocol = resil_http::ErrorKind::Transport(resil_core::TransportErrorKind::Protocol);
    assert_eq!(err.kind(), protocol, "{err:#}");
    assert_eq!(err.attempts(), 1, "{err:#}");
}

/// The versions a request may ask for, and whether a client without HTTP/2 prior knowledge
/// sends it to an `http` URL (the others are refused unsent).
pub const REQUEST_VERSIONS: [(http::Version, bool); 5] = [
    (http::Version::HTTP_09, false),
    (http::Version::HTTP_10, true),
    (http::Version::HTTP_11, true),
    (http::Version::HTTP_2, false),
    (http::Version::HTTP_3, false),
];

/// Checks one of [`REQUEST_VERSIONS`]' outcomes: a 200, or a refusal before anything was
/// sent that names the version.
pub fn assert_version_outcome<B>(
    version: http::Version,
    sent: bool,
    result: Result<http::StatusCode, resil_http::Error<B>>,
) {
    match result {
        Ok(status) => {
            assert!(sent, "{version:?} was sent");
            assert_eq!(status, 200);
        }
        Err(err) => {
            assert!(!sent, "{version:?}: {err:#}");
            assert_refused_setting(&err, &format!("the request asks for {version:?}"));
            assert_eq!(err.attempts(), 0, "{err:#}");
        }
    }
}

/// Sends a GET at each of [`REQUEST_VERSIONS`] through an async client without HTTP/2 prior
/// knowledge and checks the outcomes; only the ones sent reach the server.
pub async fn check_versions_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    server.script("/v", vec![Reply::status(200)]);
    for (version, sent) in REQUEST_VERSIONS {
        let mut request = http::Request::get(server.url("/v")).body(()).unwrap();
        *request.version_mut() = version;
        let result = client.execute(request).await.map(|r| r.status());
        assert_version_outcome(version, sent, result);
    }
    assert_eq!(server.hits("/v"), 2);
}

/// Two backends for the per-origin breaker tests: `down` answers 500, `up` 200.
pub fn down_and_up() -> (TestServer, TestServer) {
    let (down, up) = (TestServer::start(), TestServer::start());
    // A 500, not a 503: with limiters (the default) a bare 503 is back pressure, not a
    // breaker failure.
    down.script("/", vec![Reply::status(500)]);
    up.script("/", vec![Reply::status(200)]);
    (down, up)
}

/// A breaker that opens after two failures in a row, for [`down_and_up`].
pub fn trips_after_two() -> resil_core::CircuitBreakerBuilder {
    resil_core::CircuitBreaker::builder().trip(resil_core::TripCondition::ConsecutiveFailures(2))
}

/// The outcomes a client without retries and with [`trips_after_two`] gives for three calls
/// to `down` and then one to `up`: 500, 500, refused, then `up`'s answer, which is 200 with
/// a breaker per origin and refused with one breaker for both. Only sent calls reach `down`.
pub fn assert_breaker_scope(
    outcomes: &[Result<u16, resil_http::ErrorKind>],
    down: &TestServer,
    per_origin: bool,
) {
    let open = Err(resil_http::ErrorKind::CircuitOpen);
    let up = if per_origin { Ok(200) } else { open };
    assert_eq!(outcomes, [Ok(500), Ok(500), open, up]);
    assert_eq!(down.hits("/"), 2);
}

/// Makes the calls of [`assert_breaker_scope`] through an async client built by `build` (with
/// no retries, and the breaker given) and checks them, per origin and with one breaker.
pub async fn check_breaker_scope_through<R: resil_async::Runtime>(
    build: impl Fn(resil_async::ClientBuilder<R>) -> resil_async::ClientBuilder<R>,
) {
    for per_origin in [true, false] {
        let (down, up) = down_and_up();
        let builder = build(resil_async::Client::<R>::builder().max_retries(0));
        let builder = if per_origin {
            builder.breaker_per_origin(trips_after_two())
        } else {
            let breaker = trips_after_two().build().unwrap();
            builder.breaker(std::sync::Arc::new(std::sync::Mutex::new(breaker)))
        };
        let client = builder.build().unwrap();
        let mut outcomes = Vec::new();
        for url in [down.url("/"), down.url("/"), down.url("/"), up.url("/")] {
            let sent = client.get(&url).send().await;
            outcomes.push(
                sent.map(|r| r.status().as_u16())
                    .or_else(|e| e.response().map(|r| r.status().as_u16()).ok_or(e.kind())),
            );
        }
        assert_breaker_scope(&outcomes, &down, per_origin);
    }
}

/// Checks that `err` tells each cause once: no message in its `source()` chain repeats the
/// next one (so anyhow, eyre and tracing print each once), and `{:#}` is the chain on one
/// line. Returns that line.
pub fn assert_causes_told_once<B>(err: &resil_http::Error<B>) -> String {
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    for pair in chain.windows(2) {
        assert!(!pair[0].contains(&pair[1]), "told twice: {chain:?}");
    }
    let line = format!("{err:#}");
    assert_eq!(line, chain.join(": "));
    line
}

/// Checks a `text()` or `json()` failure: a decode error that tells its cause once, and
/// whose one-line form has `cause` right after the error's own words.
pub fn assert_decode_error<B>(err: &resil_http::Error<B>, cause: &str) {
    assert_eq!(err.kind(), resil_http::ErrorKind::Decode, "{err:#}");
    let line = assert_causes_told_once(err);
    assert!(
        line.contains(&format!("could not be decoded: {cause}")),
        "{line}"
    );
}

/// Methods in the order `every_method_helper_sends_its_method…` (in each driver's tests)
/// sends them: OPTIONS answered 503 then retried, then one request per other helper.
pub const HELPER_METHODS: [&str; 8] = [
    "OPTIONS", "OPTIONS", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
];

/// The methods `server` saw, in order.
pub fn methods_seen(server: &TestServer) -> Vec<String> {
    server.requests().into_iter().map(|r| r.method).collect()
}

/// A server whose `/ok` answers `200 ok` twice, on one keep-alive connection if the client
/// reuses it.
pub fn ok_twice() -> TestServer {
    let server = TestServer::start();
    server.script("/ok", vec![Reply::body(200, "ok"), Reply::body(200, "ok")]);
    server
}

/// An async client (resil-tokio's or resil-isahc's) with every timeout `Duration::MAX`
/// ("never") and idle connections kept as long.
pub fn never_timing_out<R: resil_async::Runtime>() -> resil_async::ClientBuilder<R> {
    resil_async::Client::<R>::builder()
        .connect_timeout(Duration::MAX)
        .pool(4, Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .timeout(Duration::MAX)
}

/// A policy whose `retry_if` reads a 16-byte body prefix and retries a response whose body
/// starts with `{"errors"` (a GraphQL-style failure inside a 200), and asserts the prefix it
/// sees is bounded.
pub fn error_body_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .retry_if_body_prefix(16)
        .retry_if(|ctx| {
            let prefix = ctx.body_prefix()?;
            assert!(
                prefix.len() <= 16,
                "the prefix is bounded: {}",
                prefix.len()
            );
            prefix.starts_with(br#"{"errors""#).then_some(true)
        })
        .build()
        .unwrap_or_else(|e| panic!("error body policy: {e}"))
}

/// A 200 whose body is an error, then a 200 with `ok_body`: what [`error_body_policy`]
/// retries once.
pub fn error_body_replies(ok_body: &str) -> Vec<Reply> {
    vec![
        Reply::body(200, r#"{"errors":[{"message":"try again"}]}"#),
        Reply::body(200, ok_body),
    ]
}
