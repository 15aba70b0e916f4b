//! What resil-blocking puts on the wire: request ids, the host, agent and accept headers, a
//! base URL, query and form, the framing of bodies, HTTP versions and every method helper.

mod common;

use common::{ManualClock, builder};
use resil_tests::{Reply, TestServer, shared_load};

#[test]
fn a_caller_request_id_is_forwarded_and_a_default_client_adds_none() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/id", vec![Reply::status(500), Reply::status(200)]);
    server.script("/plain", vec![Reply::status(503), Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client
        .get(&server.url("/id"))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    client.get(&server.url("/plain")).send().unwrap();
    let ids = |path: &str| -> Vec<Option<String>> {
        server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.header("x-request-id").map(str::to_owned))
            .collect()
    };
    assert_eq!(
        ids("/id"),
        [Some("abc-123".to_owned()), Some("abc-123".to_owned())]
    );
    let plain = ids("/plain");
    assert_eq!(plain.len(), 2);
    assert!(
        plain.iter().all(Option::is_none),
        "an id nobody asked for was sent"
    );
}

/// The values of `host`, `user-agent` and `accept`, in that order, each as often as sent.
fn identity_headers(request: &resil_tests::Recorded) -> [Vec<String>; 3] {
    ["host", "user-agent", "accept"].map(|name| request.values(name))
}

#[test]
fn every_request_names_its_host_agent_and_accept_once_and_the_callers_own_win() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/h", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client.get(&server.url("/h")).send().unwrap();
    let port = server.addr().port();
    let credentials = format!("http://user:pw@127.0.0.1:{port}/h");
    client.get(&credentials).send().unwrap();
    client
        .get(&server.url("/h"))
        .header("host", "api.example")
        .header("user-agent", "mine/1")
        .header("accept", "application/json")
        .send()
        .unwrap();
    let seen: Vec<_> = server.requests().iter().map(identity_headers).collect();
    let own = || {
        [
            vec![format!("127.0.0.1:{port}")],
            vec![format!("resil/{}", env!("CARGO_PKG_VERSION"))],
            vec!["*/*".to_owned()],
        ]
    };
    let callers = [
        vec!["api.example".to_owned()],
        vec!["mine/1".to_owned()],
        vec!["application/json".to_owned()],
    ];
    assert_eq!(seen, [own(), own(), callers]);
}

#[test]
fn a_user_agent_that_is_no_header_value_is_left_out_not_a_panic() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/h", vec![Reply::status(200)]);
    let settings = resil_blocking::UreqSettings {
        user_agent: "two\nlines".to_owned(),
        ..Default::default()
    };
    let client = builder(&ManualClock::new())
        .transport(resil_blocking::UreqTransport::new(&settings).unwrap())
        .build()
        .unwrap();
    assert_eq!(client.get(&server.url("/h")).send().unwrap().status(), 200);
    let [_, agents, _] = identity_headers(&server.requests()[0]);
    assert!(agents.is_empty(), "{agents:?}");
}

#[test]
fn base_url_default_headers_and_query() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/api/users", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new())
        .base_url(&server.url("/api"))
        .default_header("x-team", "core")
        .default_header("user-agent", "resil-test")
        .build()
        .unwrap();
    client
        .get("users")
        .header("user-agent", "mine")
        .query(&[("q", "a b&c"), ("page", "2")])
        .send()
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/users?q=a+b%26c&page=2");
    assert_eq!(r.header("x-team"), Some("core"));
    assert_eq!(r.header("user-agent"), Some("mine"));
}

#[test]
fn form_body_is_encoded() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/form", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client
        .put(&server.url("/form"))
        .form(&[("a", "1 2"), ("b", "é")])
        .send()
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.body, b"a=1+2&b=%C3%A9");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

#[test]
fn a_wrong_content_length_or_a_second_host_is_refused_before_anything_is_sent() {
    let _load = shared_load();
    let server = TestServer::start();
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = server.url("/length");
    let post = |length: &str| client.post(&url).header("content-length", length);
    let wrong = post("1").body("ab").send().unwrap_err();
    let built = http::Request::post(&url).header("content-length", "1");
    let built = client.execute(built.body("ab").unwrap()).unwrap_err();
    let none = client
        .get(&url)
        .header("content-length", "3")
        .send()
        .unwrap_err();
    post("2").body("ab").send().unwrap();
    post("2")
        .body_reader(std::io::Cursor::new(b"ab"))
        .send()
        .unwrap();
    let hosts = client
        .get(&url)
        .header("host", "a.test")
        .header("host", "b.test");
    let hosts = hosts.send().unwrap_err();
    resil_tests::assert_only_well_framed_requests_sent(&server, [&wrong, &built, &none, &hosts]);
}

#[test]
fn a_post_put_or_patch_without_a_body_declares_content_length_zero() {
    let _load = shared_load();
    // ureq alone sends them as an empty chunked body.
    let server = TestServer::start();
    server.script("/empty", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = server.url("/empty");
    for (method, built_whole) in resil_tests::BODILESS_REQUESTS {
        let method: http::Method = method.parse().unwrap();
        let sent = if built_whole {
            let request = http::Request::builder().method(method).uri(&url);
            client.execute(request.body(()).unwrap())
        } else {
            client.request(method, &url).send()
        };
        assert_eq!(sent.unwrap().status(), 200);
    }
    resil_tests::assert_empty_bodies_declared(&server);
}

#[test]
fn a_version_ureq_cannot_send_is_refused_before_the_attempt() {
    let _load = shared_load();
    // ureq alone sends each as HTTP/1.1.
    let server = TestServer::start();
    server.script("/v", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    for (version, sent) in resil_tests::REQUEST_VERSIONS {
        let mut request = http::Request::get(server.url("/v")).body(()).unwrap();
        *request.version_mut() = version;
        let result = client.execute(request).map(|r| r.status());
        resil_tests::assert_version_outcome(version, sent, result);
    }
    assert_eq!(server.hits("/v"), 2);
}

#[test]
fn every_method_helper_sends_its_method_and_options_is_retried_as_idempotent() {
    let server = TestServer::start();
    server.script("/m", vec![Reply::status(503), Reply::status(204)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let response = client.options(&server.url("/m")).send().unwrap();
    assert_eq!(response.status(), 204);
    let helpers = [
        client.get(&server.url("/m")),
        client.post(&server.url("/m")),
        client.put(&server.url("/m")),
        client.patch(&server.url("/m")),
        client.delete(&server.url("/m")),
        client.head(&server.url("/m")),
    ];
    for request in helpers {
        request.send().unwrap();
    }
    assert_eq!(
        resil_tests::methods_seen(&server),
        resil_tests::HELPER_METHODS
    );
}
