//! What resil-tokio's loopback tests share: a plain hyper-util client for the tower layer to
//! wrap, an empty GET for it, and the check on a body read cut at its attempt's deadline.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use resil_tests::assert_took;

/// A body read that began at `start` with an 80 ms attempt budget failed at its deadline.
pub fn assert_body_ended_at_the_deadline(start: std::time::Instant, err: &resil_tokio::Error) {
    assert_took(start, Duration::from_millis(75), Duration::from_millis(700));
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body, "{err}");
    assert!(format!("{err:#}").contains("deadline"), "{err:#}");
}

pub fn plain_hyper() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>()
}

pub fn empty_get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
