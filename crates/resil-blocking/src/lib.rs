//! # resil-blocking
//!
//! A blocking HTTP client that survives a flaky world: retries with exponential backoff and
//! jitter (only when replaying is safe), `Retry-After` honoured but bounded, per-attempt
//! timeouts and a total deadline, a circuit breaker, a retry budget, hooks and statistics.
//! Every decision is made by [`resil_core`]'s state machine; this crate only does IO (over
//! [ureq](https://docs.rs/ureq) 3 by default) and sleeps.
//!
//! ```no_run
//! use resil_blocking::{Client, ResponseExt};
//!
//! let client = Client::builder().base_url("http://127.0.0.1:8080/api").build()?;
//! let body = client
//!     .get("/users")
//!     .query(&[("page", "2")])
//!     .send()? // retried on 408/429/5xx and transport errors, Retry-After honoured
//!     .error_for_status()?
//!     .text()?;
//! println!("{body}");
//! # Ok::<(), resil_blocking::Error>(())
//! ```
//!
//! ## What a call does
//!
//! 1. Joins the URL to the base URL and adds default headers (and, if the client
//!    [generates request ids](ClientBuilder::generate_request_ids), an `x-request-id` that
//!    is the same on every attempt).
//! 2. Asks the circuit breaker; an open breaker fails at once, without a connection.
//! 3. Sends the attempt with credentials from the [`AuthProvider`]; a 401 refreshes them once
//!    and resends once.
//! 4. Feeds the response or error to the retry machine and does what it says: return the
//!    response, sleep and resend, or fail with an [`Error`] that carries the last response.
//!
//! POST and PATCH are retried only when the request never reached the server, carries an
//! `Idempotency-Key`, or the policy opts in. Bodies given as bytes are replayed on every
//! attempt; a [`body_reader`](RequestBuilder::body_reader) stream is never retried after it
//! was sent.
//!
//! ## Redirects
//!
//! Like resil-tokio and resil-isahc, the client returns a 3xx response as it is: following it
//! is the caller's choice. [`ClientBuilder::max_redirects`] lets the default transport follow
//! them, without `Authorization` or `Cookie` on any hop.
//!
//! ## Timeouts
//!
//! The per-attempt timeout covers the whole exchange, reading the body included (as with
//! reqwest's `timeout`), on whichever thread reads it; a connect the deadline cuts short is a
//! `ConnectTimeout` (nothing was sent, so any method may retry it). The total deadline covers
//! attempts and sleeps. Sleeps use `std::thread::sleep` (typically accurate to well under a
//! millisecond on Linux); a wait of zero is never slept.
//!
//! ## Features
//!
//! - `rustls` (default): HTTPS through ureq's rustls.
//! - `json`: [`RequestBuilder::json`] and [`ResponseExt::json`] with serde.
//! - `tracing`: `tracing` events for every attempt, retry, outcome and breaker transition.
//!
//! ## Connections
//!
//! The default transport is ureq's, with resil's own TCP connection under ureq's TLS and
//! proxy connectors. It differs from ureq's in one place: before a pooled connection carries
//! another request, ureq checks that the server has not closed it by switching the socket to
//! non-blocking mode, reading and switching back (three system calls); resil peeks once with
//! `MSG_PEEK | MSG_DONTWAIT`. On Unix that call goes through [socket2](https://docs.rs/socket2)
//! (the standard safe socket crate, which tokio, hyper-util and curl build on) with the flag
//! constants from [libc](https://docs.rs/libc); elsewhere it switches the socket as ureq does.
//!
//! Environment variables (`RESIL_TIMEOUT`, `RESIL_ATTEMPT_TIMEOUT`, `RESIL_CONNECT_TIMEOUT`,
//! `RESIL_READ_TIMEOUT`, `RESIL_MAX_RETRIES`, `RESIL_BASE_URL`) apply only through
//! [`ClientBuilder::from_env`], over what was set before it; a setter called after it wins.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod client;
mod request;
mod response;
mod tcp;
mod transport;

use std::sync::OnceLock;

pub use auth::{AuthError, AuthProvider};
pub use client::{Client, ClientBuilder, Clock, SystemClock};
pub use request::RequestBuilder;
pub use response::ResponseExt;
pub use transport::{
    BlockingTransport, Body, RequestBody, TransportError, UreqSettings, UreqTransport,
};

// The core types this crate's API takes or hands out, so one dependency is enough to
// configure a client, implement hooks or a transport, and match on what they report.
pub use http;
pub use resil_http::prelude::*;

/// A response: an `http::Response` whose body streams with a size limit.
pub type Response = http::Response<Body>;

/// An error with everything known about the call; see [`resil_http::Error`].
pub type Error = resil_http::Error<Body>;

fn default_client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(Client::new)
}

/// A GET through a shared default client.
pub fn get(url: &str) -> RequestBuilder {
    default_client().get(url)
}

/// A POST through a shared default client.
pub fn post(url: &str) -> RequestBuilder {
    default_client().post(url)
}

/// A PUT through a shared default client.
pub fn put(url: &str) -> RequestBuilder {
    default_client().put(url)
}

/// A PATCH through a shared default client.
pub fn patch(url: &str) -> RequestBuilder {
    default_client().patch(url)
}

/// A DELETE through a shared default client.
pub fn delete(url: &str) -> RequestBuilder {
    default_client().delete(url)
}

/// A HEAD through a shared default client.
pub fn head(url: &str) -> RequestBuilder {
    default_client().head(url)
}

/// The workspace README's examples (core and blocking), compiled as doctests so they cannot
/// rot. Here because this crate sees both.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
