//! # resil-tokio
//!
//! An async HTTP client on tokio whose calls survive a flaky network and a struggling
//! server, and [`ResilLayer`], the same around any tower service.
//!
//! ```no_run
//! use resil_tokio::{Client, ResponseExt};
//!
//! # async fn run() -> Result<(), resil_tokio::Error> {
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080/api")
//!     .build()?;
//! let body = client
//!     .get("/users")
//!     .query(&[("page", "2")])
//!     .send()
//!     .await?
//!     .error_for_status()?
//!     .text()
//!     .await?;
//! println!("{body}");
//! # Ok(()) }
//! ```
//!
//! ## What resil decides for you
//!
//! Every decision is [`resil_core`]'s state machine's, the same in every resil driver; this
//! crate only does the IO (hyper-util by default, [`HyperTransport`]) and keeps time with
//! `tokio::time`.
//!
//! | | by default |
//! |---|---|
//! | retried | 408, 429, 500, 502, 503, 504 and transport errors; 4 attempts in all |
//! | not replayed | a POST or PATCH that may have reached the server (unless it carries an `Idempotency-Key` or the policy opts in); a streamed body once sent |
//! | waits | exponential backoff from 100 ms, full jitter, capped at 20 s; `Retry-After` a floor under it, honoured up to 60 s, never past the deadline |
//! | bodies that break off | read whole ([`ResponseExt`]): asked for again within the call's attempts and deadline; read as a stream: resumed with `Range` where the response allows it (see [`Body`]); the tower layer's too |
//! | malformed framing | refused, never retried: a chunk size with a sign, a space, `0x` or more than 16 hex digits, `Content-Length` beside `Transfer-Encoding`, lengths that disagree. hyper 1.x takes a size of more than 16 digits that fits; the client checks its own connections with resil-core's [`Http1Framing`](resil_core::Http1Framing) (the tower layer's belong to the inner service) |
//! | time limits | 10 s per attempt (reading the body included), 30 s per call |
//! | circuit breaker | one per client: open for 30 s after 5 failures in a row, then one probe |
//! | retry budget | retries at most 20 % of calls, plus 10 per second |
//! | credentials | from an [`AuthProvider`] on every attempt; after a 401, refreshed once and the attempt sent once more; URL credentials become `Authorization: Basic` |
//! | redirects | followed up to 10 hops by resil (hyper-util follows none), credentials never to another origin, never `https` to `http` (see [`RedirectPolicy`]); the tower layer follows too |
//! | errors | one sentence with method, URL (credentials redacted), attempts and the last status; the last response rides along |
//!
//! All of it is configured on [`ClientBuilder`], and per request on [`RequestBuilder`].
//!
//! ## Features
//!
//! - `rustls`: HTTPS in the default transport (hyper-rustls with the ring provider and
//!   Mozilla's roots; [`HyperTransport::with_tls`] takes your own `rustls::ClientConfig`),
//!   and HTTP/2 when the server offers it by ALPN. Without it, a call to an `https` URL is
//!   refused before anything is sent ([`ErrorKind::InvalidConfig`], saying the feature is
//!   needed), never sent in plain text.
//! - `reqwest`: [`ReqwestTransport`], to keep an existing `reqwest::Client`.
//! - `json`: [`RequestBuilder::json`] and [`ResponseExt::json`] with serde.
//! - `tracing`: `tracing` events for attempts, retries, outcomes and breaker transitions.
//!
//! ## Time
//!
//! Every wait is `tokio::time`, so tests run with paused time. A wait of zero is never slept;
//! tokio's timer has 1 ms resolution, so a shorter non-zero wait takes about 1 ms (and each
//! thread recycles its attempt timers: see [`Timer`]).
//!
//! The per-attempt timeout covers the whole exchange, reading the body included (as with
//! reqwest's `timeout`): a body still arriving at its attempt's deadline fails with
//! [`BodyDeadlinePassed`]. The timer for that is made only if the body has to wait for data.
//! [`ClientBuilder::read_timeout`](resil_async::ClientBuilder::read_timeout) bounds each wait
//! for data instead (the head, then every piece of the body): an attempt given minutes for a
//! large download still fails within seconds of a stall, with [`ReadTimedOut`]. The tower
//! layer has the same setting, [`ResilLayer::read_timeout`]; `RESIL_READ_TIMEOUT` sets both.
//!
//! ## Cancellation
//!
//! Dropping a call's future at any point drops its retry machine, which hands its circuit
//! breaker permit back: a cancelled call counts as neither success nor failure and frees a
//! half-open probe slot at once. Nothing is left running.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connect;
mod layer;
mod proxy;
#[cfg(feature = "reqwest")]
mod reqwest_transport;
mod runtime;
mod transport;

pub use layer::{ResilLayer, ResilService};
#[cfg(feature = "reqwest")]
pub use reqwest_transport::ReqwestTransport;
pub use runtime::{Timer, Tokio};
pub use transport::{HyperTransport, classified, classify};

pub use resil_async::{
    AsyncTransport, AuthError, AuthProvider, BearerToken, Body, BodyDeadlinePassed, BodyTooLarge,
    BoxError, BoxFuture, Error, ReadTimedOut, RequestBody, Response, ResponseExt, TransportError,
    TransportSettings, stream_body,
};
// The core types this crate's API takes or hands out, so one dependency is enough to
// configure a client, implement hooks or a transport, and match on what they report.
pub use http;
pub use resil_http::prelude::*;

/// The resilient async client on tokio (see [`resil_async::Client`]).
pub type Client = resil_async::Client<Tokio>;
/// Configures a [`Client`].
pub type ClientBuilder = resil_async::ClientBuilder<Tokio>;
/// A request being built.
pub type RequestBuilder = resil_async::RequestBuilder<Tokio>;
