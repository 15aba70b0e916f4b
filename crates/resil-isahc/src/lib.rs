//! # resil-isahc
//!
//! resil's async client on [isahc](https://docs.rs/isahc) (curl): retries with backoff and
//! jitter (only when replaying is safe), `Retry-After`, deadlines, a circuit breaker, a retry
//! budget, hooks and statistics — decided by [`resil_core`], executed by curl. It needs no
//! particular executor: curl does its IO on isahc's own thread and timers come from
//! `async-io`, so the same client works under tokio, async-std, smol or a bare `block_on`.
//!
//! ```no_run
//! use resil_isahc::{Client, ResponseExt};
//!
//! # fn main() -> Result<(), resil_isahc::Error> {
//! futures_lite::future::block_on(async {
//!     let client = Client::builder().base_url("http://127.0.0.1:8080/api").build()?;
//!     let body = client.get("/users").send().await?.error_for_status()?.text().await?;
//!     println!("{body}");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! The default transport ([`IsahcTransport`]) uses isahc 2's statically built libcurl
//! (rustls, HTTP/2), a connect timeout, a per-host connection cap and TCP_NODELAY. curl
//! follows no redirects: resil follows them by the rules every driver shares (see
//! [`RedirectPolicy`]), so credentials never reach
//! another origin. curl enforces each attempt's
//! deadline over the whole exchange, reading the body included; a deadline that passes
//! before the connection is up is a `ConnectTimeout` (nothing was sent, so any method may
//! retry it), as in resil-blocking.
//!
//! Unlike the other drivers, it keeps isahc's default of asking for compressed responses
//! (`Accept-Encoding`) and decoding them: bodies arrive decoded, the body limit counts decoded
//! bytes, and a body that does not decode is an error that is not retried. A response head
//! curl accepts but `http` cannot hold (status 099, a header name with a space) is a
//! `Protocol` error, as ureq and hyper report it.
//!
//! Two things curl does with requests that the other drivers do not:
//! - A request header value with bytes outside visible ASCII (UTF-8 or Latin-1 text, which
//!   `http` allows and hyper and ureq send as they are) cannot be handed to curl; isahc
//!   panics on one. The client refuses such a request before sending it, as
//!   [`ErrorKind::InvalidConfig`] (see [`AsyncTransport::check_request`]).
//! - A `POST` with a body and no `Content-Type` goes out with curl's default,
//!   `application/x-www-form-urlencoded`. isahc can only replace it with an empty value, so
//!   set the body's real type.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod runtime;
mod transport;

pub use runtime::AsyncIo;
pub use transport::{IsahcTransport, classify};

pub use resil_async::{
    AsyncTransport, AuthError, AuthProvider, BearerToken, Body, BodyDeadlinePassed, BodyTooLarge,
    BoxError, BoxFuture, Error, ReadTimedOut, RequestBody, Response, ResponseExt, TransportError,
    TransportSettings, stream_body,
};
// The core types this crate's API takes or hands out, so one dependency is enough to
// configure a client, implement hooks or a transport, and match on what they report.
pub use http;
pub use resil_http::prelude::*;

/// The resilient async client on isahc (see [`resil_async::Client`]).
pub type Client = resil_async::Client<AsyncIo>;
/// Configures a [`Client`].
pub type ClientBuilder = resil_async::ClientBuilder<AsyncIo>;
/// A request being built.
pub type RequestBuilder = resil_async::RequestBuilder<AsyncIo>;
