//! # resil-blocking
//!
//! A blocking HTTP client whose calls survive a flaky network and a struggling server.
//!
//! ```no_run
//! use resil_blocking::{Client, ResponseExt};
//!
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080/api")
//!     .build()?;
//! let body = client
//!     .get("/users")
//!     .query(&[("page", "2")])
//!     .send()?
//!     .error_for_status()?
//!     .text()?;
//! println!("{body}");
//! # Ok::<(), resil_blocking::Error>(())
//! ```
//!
//! ## What resil decides for you
//!
//! Every decision is [`resil_core`]'s state machine's, the same in every resil driver; this
//! crate only does the IO (over [ureq](https://docs.rs/ureq) 3) and sleeps.
//!
//! | | by default |
//! |---|---|
//! | retried | 408, 429, 500, 502, 503, 504 and transport errors; 4 attempts in all |
//! | not replayed | a POST or PATCH that may have reached the server (unless it carries an `Idempotency-Key` or the policy opts in); a [`body_reader`](RequestBuilder::body_reader) stream once sent |
//! | waits | exponential backoff from 100 ms, full jitter, capped at 20 s; `Retry-After` a floor under it, honoured up to 60 s, never past the deadline |
//! | bodies that break off | read whole ([`ResponseExt`]): asked for again within the call's attempts and deadline; read as a stream: resumed with `Range` where the response allows it (see [`Body`]) |
//! | malformed framing | refused, never retried: see [Framing](#framing) |
//! | time limits | 10 s per attempt (reading the body included), 30 s per call |
//! | circuit breaker | one per client: open for 30 s after 5 failures in a row, then one probe |
//! | retry budget | retries at most 20 % of calls, plus 10 per second |
//! | credentials | from an [`AuthProvider`] on every attempt; after a 401, refreshed once and the attempt sent once more; URL credentials become `Authorization: Basic` |
//! | redirects | followed up to 10 hops, credentials never to another origin, never `https` to `http` (see [Redirects](#redirects)) |
//! | errors | one sentence with method, URL (credentials redacted), attempts and the last status; the last response rides along |
//!
//! All of it is configured on [`ClientBuilder`], and per request on [`RequestBuilder`].
//!
//! ## Features
//!
//! - `rustls` (default): HTTPS through ureq's rustls.
//! - `json`: [`RequestBuilder::json`] and [`ResponseExt::json`] with serde.
//! - `tracing`: `tracing` events for every attempt, retry, outcome and breaker transition.
//!
//! ## Time
//!
//! The per-attempt timeout covers the whole exchange, reading the body included (as with
//! reqwest's `timeout`), on whichever thread reads it; a connect the deadline cuts short is a
//! `ConnectTimeout` (nothing was sent, so any method may retry it). The total deadline covers
//! attempts and sleeps. Sleeps use `std::thread::sleep` (typically accurate to well under a
//! millisecond on Linux); a wait of zero is never slept. A [`Clock`] of your own (a fake one
//! in tests) replaces the system's.
//!
//! ## Framing
//!
//! A response framed against RFC 9112 is a protocol error: a chunk size with a sign, a space,
//! `0x` or more than 16 hex digits, chunk data not followed by CRLF, `Content-Length` beside
//! `Transfer-Encoding`, or lengths that disagree. ureq-proto 0.7 (the latest) reads a chunk
//! size with `u64::from_str_radix` after trimming it, so it takes `+5`, ` 5` and
//! `00000000000000005` for 5; resil runs resil-core's [`Http1Framing`](resil_core::Http1Framing)
//! over the plaintext of every connection of its [`UreqTransport`] and fails the read that
//! brings such a line. A transport of your own is checked only by its parser.
//!
//! ## Redirects
//!
//! Followed by resil-core's rules, the same in every driver (see
//! [`RedirectPolicy`]): up to 10 hops; a 303 (or a 301/302 after
//! POST) becomes a GET without its body; 307/308 keep method and body, or return the 3xx when
//! the body was a stream; `Authorization`, `Cookie`, `Proxy-Authorization` and the headers you
//! name ([`ClientBuilder::sensitive_header`]) are dropped on any hop to another origin and
//! stay dropped; never from `https` to `http`, never to another scheme; a loop or a long chain
//! fails naming the chain. Each hop is a new attempt for hooks and statistics, counted apart
//! from retries; the total deadline covers the chain. [`ClientBuilder::max_redirects`]`(0)`
//! returns every 3xx as it is.
//!
//! ## Connections
//!
//! The default transport ([`UreqTransport`]) is ureq's, with resil's own TCP connection under
//! ureq's TLS and proxy connectors: before a pooled connection carries another request, it
//! peeks once (`MSG_PEEK | MSG_DONTWAIT`, through [socket2](https://docs.rs/socket2) and
//! [libc](https://docs.rs/libc) on Unix) where ureq switches the socket to non-blocking mode,
//! reads and switches back. [`BlockingTransport`] takes a client of your own.
//!
//! Environment variables (`RESIL_TIMEOUT`, `RESIL_ATTEMPT_TIMEOUT`, `RESIL_CONNECT_TIMEOUT`,
//! `RESIL_READ_TIMEOUT`, `RESIL_MAX_RETRIES`, `RESIL_BASE_URL`) apply only through
//! [`ClientBuilder::from_env`], over what was set before it; a setter called after it wins.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod cancel;
mod client;
mod request;
mod response;
mod transport;
mod ureq;

use std::sync::OnceLock;

pub use auth::{AuthError, AuthProvider};
pub use client::{Client, ClientBuilder, Clock, SystemClock};
pub use request::RequestBuilder;
pub use response::ResponseExt;
pub use transport::{BlockingTransport, Body, RequestBody, TransportError};
pub use ureq::{UreqSettings, UreqTransport};

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
