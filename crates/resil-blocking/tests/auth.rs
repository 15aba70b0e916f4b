//! Credentials through resil-blocking: an auth provider, the 401 that refreshes its token,
//! credentials that cannot be sent, redirects to another origin, and URL credentials.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ManualClock, builder};
use resil_blocking::{AuthError, AuthProvider, BearerToken, ErrorKind, ResponseExt};
use resil_tests::{Reply, TestServer, shared_load};

#[test]
fn unauthorized_refreshes_the_token_once_and_retries_once() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/me", |r, _| match r.header("authorization") {
        Some("Bearer fresh") => Reply::body(200, "me"),
        _ => Reply::status(401),
    });
    server.script("/never", vec![Reply::status(401)]);
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    let auth = BearerToken::new("stale", move || -> Result<String, AuthError> {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok("fresh".to_owned())
    });
    let client = builder(&ManualClock::new()).auth(auth).build().unwrap();
    assert_eq!(
        client
            .get(&server.url("/me"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "me"
    );
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let tokens: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens,
        [
            Some("Bearer stale".to_owned()),
            Some("Bearer fresh".to_owned())
        ]
    );

    // A server that keeps refusing: one refresh, one resend, then the 401 is the answer.
    let response = client.get(&server.url("/never")).send().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.hits("/never"), 2);
    assert_eq!(refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn failing_auth_provider_is_an_auth_error() {
    let _load = shared_load();
    struct Broken;
    impl AuthProvider for Broken {
        fn authorize(&self, _: &mut http::HeaderMap) -> Result<(), AuthError> {
            Err("token store unavailable".into())
        }
        fn refresh(&self) -> Result<(), AuthError> {
            Ok(())
        }
    }
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).auth(Broken).build().unwrap();
    let err = client.get(&server.url("/x")).send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(
        format!("{err:#}").contains("token store unavailable"),
        "{err}"
    );
    assert_eq!(server.hits("/x"), 0);
}

#[test]
fn credentials_ureq_will_not_write_are_refused_unsent_not_reported_as_a_bad_response() {
    let _load = shared_load();
    struct Latin1;
    impl AuthProvider for Latin1 {
        fn authorize(&self, headers: &mut http::HeaderMap) -> Result<(), AuthError> {
            let value = http::HeaderValue::from_bytes(b"Basic caf\xe9")?;
            headers.insert(http::header::AUTHORIZATION, value);
            Ok(())
        }
        fn refresh(&self) -> Result<(), AuthError> {
            Ok(())
        }
    }
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).auth(Latin1).build().unwrap();
    let err = client.get(&server.url("/x")).send().unwrap_err();
    let refused = "header \"authorization\" has bytes outside visible ASCII";
    resil_tests::assert_refused_setting(&err, refused);
    let plain = builder(&ManualClock::new()).build().unwrap();
    let mut request = http::Request::get(server.url("/x")).body(()).unwrap();
    let value = http::HeaderValue::from_bytes(b"Basic caf\xe9").unwrap();
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value);
    resil_tests::assert_refused_setting(&plain.execute(request).unwrap_err(), refused);
    assert_eq!(server.hits("/x"), 0);
}

#[test]
fn authorization_is_not_forwarded_to_another_origin_on_redirect() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landing", vec![Reply::body(200, "landed")]);
    let origin = TestServer::start();
    origin.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landing"))],
    );
    let client = builder(&ManualClock::new())
        .auth(BearerToken::new(
            "secret",
            || -> Result<String, AuthError> { Ok("secret".into()) },
        ))
        .max_redirects(5)
        .build()
        .unwrap();
    let body = client
        .get(&origin.url("/go"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "landed");
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer secret")
    );
    let landed = &other.requests()[0];
    assert_eq!(
        landed.header("authorization"),
        None,
        "credentials leaked across origins"
    );
    // The hop names its own origin: resil leaves `Host` to ureq when it follows redirects.
    let landed_host = format!("127.0.0.2:{}", other.addr().port());
    assert_eq!(landed.header("host"), Some(landed_host.as_str()));
}

#[test]
fn credentials_in_the_url_are_sent_as_basic_authorization() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = resil_tests::url_with_credentials(&server, "/creds");
    client.get(&url).send().unwrap();
    client
        .execute(http::Request::get(&url).body(()).unwrap())
        .unwrap();
    resil_tests::assert_url_credentials_sent_as_basic(&server, 2);
}
