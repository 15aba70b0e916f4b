//! Calls through resil-blocking that fail, and what their errors say: statuses, bad input,
//! URLs no call can reach, refused connections and response heads past the limit.

mod common;

use common::{ManualClock, builder};
use resil_blocking::{Client, ErrorKind, ResponseExt};
use resil_tests::{Reply, TestServer, shared_load};

#[test]
fn error_for_status_and_error_messages() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/missing", vec![Reply::body(404, "nope")]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client
        .get(&server.url("/missing"))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Status(404));
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: server answered with status 404",
            server.url("/missing")
        )
    );

    server.script("/down", vec![Reply::status(503)]);
    let err = client.get(&server.url("/down")).send().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: gave up after 4 attempts: all attempts were used (last: status 503)",
            server.url("/down")
        )
    );
    assert_eq!(err.response().unwrap().status(), 503);

    // Credentials leave the URL for `Authorization` before the call starts.
    let with_credentials = format!("http://user:hunter2@{}/down", server.addr());
    let err = client.get(&with_credentials).send().unwrap_err();
    let url = server.url("/down");
    assert!(
        err.to_string().starts_with(&format!("GET {url}: ")),
        "{err}"
    );
    assert!(
        !err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{err:?}"
    );
    let err = client
        .get(&server.url("/down?access_token=hunter2&page=1"))
        .send()
        .unwrap_err();
    assert!(
        err.to_string().contains("access_token=[redacted]&page=1"),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn invalid_input_gives_clear_errors_not_panics() {
    let _load = shared_load();
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client.get("/relative").send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    assert_eq!(
        err.to_string(),
        "GET /relative: invalid URL `/relative`: relative URL and no base URL is set"
    );
    let err = client.get("ftp://127.0.0.1/x").send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    let err = client
        .get("http://127.0.0.1/")
        .header("bad header", "v")
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = Client::builder().base_url("not a url").build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        format!("{err:#}").starts_with("invalid configuration: "),
        "no call, so no method and URL before it: {err}"
    );
    let err = Client::builder()
        .default_header("x", "bad\nvalue")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn a_request_built_whole_with_a_url_no_call_can_reach_is_refused_before_any_attempt() {
    let client = Client::builder().build().unwrap();
    for url in ["/relative", "ftp://127.0.0.1/x", "http://127.0.0.1:99999/"] {
        let request = http::Request::get(url).body(()).unwrap();
        let error = client.execute(request).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{url}: {error}");
        assert_eq!(error.attempts(), 0, "{url}");
    }
    assert_eq!(client.stats().attempts, 0);
}

#[test]
fn a_refused_connection_tells_each_cause_once() {
    let url = format!("http://{}/x", resil_tests::refused_addr());
    let client = builder(&ManualClock::new()).max_retries(0).build().unwrap();
    let err = client.get(&url).send().unwrap_err();
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn huge_response_head_is_refused() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/huge", vec![Reply::HugeHead(200 * 1024)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client.get(&server.url("/huge")).send().unwrap_err();
    resil_tests::assert_head_refused(&err);
}
