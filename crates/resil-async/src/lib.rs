//! # resil-async
//!
//! The runtime-agnostic async client behind resil's async drivers: one retry loop, driven by
//! [`resil_core`]'s machine, over any [`Runtime`] (clock and timer) and any
//! [`AsyncTransport`]. Use it through a driver: `resil_tokio::Client` (tokio, hyper-util) or
//! `resil_isahc::Client` (isahc, any executor), which are aliases of [`Client`] with their
//! runtime.
//!
//! ## Cancellation
//!
//! Dropping a call's future at any point drops its retry machine, which hands its circuit
//! breaker permit back: a cancelled call counts as neither success nor failure and frees a
//! half-open probe slot at once. Nothing is left running.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod body;
mod client;
mod drive;
mod request;
mod response;
mod resume;
mod runtime;
mod transport;

pub use auth::{AuthError, AuthProvider};
pub use body::{Body, BodyDeadlinePassed, BodyTooLarge, ReadTimedOut};
pub use client::{Client, ClientBuilder};
pub use drive::{AttemptError, Exchange, drive};
pub use request::RequestBuilder;
pub use resil_http::TransportError;
pub use response::ResponseExt;
pub use resume::{Resend, keep_call};
pub use runtime::Runtime;
pub use transport::{
    AsyncTransport, AttemptBudget, RequestBody, TransportSettings, stream_body, unsupported_version,
};

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as transports return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// The core types this crate's API takes or hands out, so one dependency is enough to
// configure a client, implement hooks or a transport, and match on what they report.
pub use http;
pub use resil_http::prelude::*;

/// An error with everything known about the call; see [`resil_http::Error`].
pub type Error = resil_http::Error<Body>;

/// A response: an `http::Response` with a size-limited streaming body.
pub type Response = http::Response<Body>;
