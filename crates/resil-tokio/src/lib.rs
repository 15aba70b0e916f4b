//! # resil-tokio
//!
//! An async HTTP client on tokio that survives a flaky world — retries with backoff and
//! jitter (only when replaying is safe), `Retry-After` honoured but bounded, per-attempt
//! timeouts and a total deadline, a circuit breaker, a retry budget, hooks and statistics —
//! and [`ResilLayer`], the same as a tower `Layer`. Every decision is made by
//! [`resil_core`]'s state machine; this crate only does IO (hyper-util by default) and keeps
//! time with `tokio::time`.
//!
//! ```no_run
//! use resil_tokio::{Client, ResponseExt};
//!
//! # async fn run() -> Result<(), resil_tokio::Error> {
//! let client = Client::builder().base_url("http://127.0.0.1:8080/api").build()?;
//! let body = client.get("/users").query(&[("page", "2")]).send().await?.error_for_status()?.text().await?;
//! println!("{body}");
//! # Ok(()) }
//! ```
//!
//! ## Time
//!
//! Every wait is `tokio::time`, so tests run with paused time. A wait of zero is never slept;
//! tokio's timer has 1 ms resolution, so a shorter non-zero wait takes about 1 ms.
//!
//! Each thread keeps the last finished attempt's timer registered with its runtime, and the
//! next attempt there takes it over instead of registering a new one (see [`Timer`]). That
//! spare holds a reference to its runtime's handle (and so its driver) until the thread's
//! next call takes it, or the thread ends. On paused time it is a pending timer: a runtime
//! with nothing else to do auto-advances its clock to that deadline (at most the last
//! attempt's timeout ahead). A spare set for earlier than the next attempt's deadline fires
//! early once, and that attempt then waits on to its own deadline.
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
//! ## Transport
//!
//! [`HyperTransport`] (hyper-util's pooled client; plain HTTP/1.1, HTTP/2 with prior
//! knowledge via `ClientBuilder::http2_prior_knowledge`, and HTTPS with the `rustls` feature)
//! is the default: TCP_NODELAY, a connect timeout, and an idle timeout with the pool
//! timer set (without it hyper-util ignores the idle timeout). It follows no redirects, so
//! credentials never reach another origin. hyper-util has no cap on connections per host;
//! `ClientBuilder::max_connections_per_host` adds one (each connection holds a permit for its
//! lifetime; a call that finds none waits for a pooled connection within its deadline).
//! Implement [`AsyncTransport`] to bring your own client (another TLS stack, say).
//!
//! Proxies come from the environment, read as reqwest reads it (hyper-util's reading of
//! curl's variables): `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`, in either
//! case, and none under CGI (`REQUEST_METHOD` set). `ClientBuilder::proxy(url)` sends every
//! call through one proxy whatever the environment says, and `ClientBuilder::no_proxy` none.
//! Through an `http://` proxy an `http` request is forwarded whole; `https` (and HTTP/2 with
//! prior knowledge) goes through a `CONNECT` tunnel, so TLS runs end to end. Through a
//! `socks5://` proxy everything is tunnelled to an address looked up here (on tokio's
//! blocking pool, as for a direct connection; the first address found), and through a
//! `socks5h://` one to the name, which the proxy looks up. The tunnels are hyper-util's
//! (`Tunnel`, `SocksV5`); the connect timeout bounds reaching the proxy and its handshake
//! together. Credentials in the proxy's URL (`http://user:password@proxy:3128`) are sent to
//! the proxy alone, as `Proxy-Authorization` or as SOCKS5's username and password. A proxy
//! the environment names that this transport does not speak (`https://`, SOCKS4) fails the
//! call at once, never sent and not retried. A proxy that fails follows the rule every resil
//! client follows ([`Proxy`], "When a proxy fails"): one that wants credentials fails the call
//! at once, saying so; one that cannot be reached, hangs up or refuses the tunnel is a failed
//! connection, retried as one, for any method.
//!
//! An attempt whose deadline passes while hyper-util is still connecting counts as timed
//! out, since hyper-util does not tell whether the request had gone out: a POST without an
//! `Idempotency-Key` is then not sent again. resil-blocking and resil-isahc know that nothing
//! was sent and retry it as a connect timeout. A connect refused or failing before the
//! deadline is a connect error here too, retried for any method.
//!
//! ```no_run
//! # use resil_tokio::ResponseExt;
//! # async fn run() -> Result<(), resil_tokio::Error> {
//! // One backend, at most 64 sockets to it however many calls are in flight.
//! let client = resil_tokio::Client::builder()
//!     .base_url("http://127.0.0.1:8080")
//!     .max_connections_per_host(64)
//!     .build()?;
//! let body = client.get("/items").send().await?.text().await?;
//! # let _ = body;
//! # Ok(())
//! # }
//! ```
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
