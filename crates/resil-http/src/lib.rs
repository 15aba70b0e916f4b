//! # resil-http
//!
//! The IO-free half every resil HTTP client shares: one call's bookkeeping ([`Call`]), the
//! error a call ends with ([`Error`]), a client's settings checked once ([`ClientConfig`]),
//! the request a builder collects ([`RequestDraft`]), hooks and statistics ([`Hooks`],
//! [`Stats`]), the `RESIL_*` environment ([`EnvConfig`]) and the link through which a client
//! shares its breaker and budget with a fleet of processes ([`FleetLink`]).
//!
//! **You want a driver, not this crate**, unless you are writing one: `resil-blocking`
//! (ureq), `resil-tokio` (hyper-util, tower) or `resil-isahc` (curl, any executor). Each
//! re-exports what its API takes and returns ([`prelude`]).
//!
//! The decisions are `resil-core`'s pure machines; this crate turns `http` requests and
//! responses into their inputs and their actions into [`Step`]s. It does no IO: no socket,
//! no sleep, no thread. A driver owns a clock and a transport and runs one loop over
//! [`Call::poll_step`]; what only drivers need (building each attempt's request, the checks
//! before sending, timeouts as HTTP libraries take them) is in [`driver`]. The [`guide`]
//! shows a whole driver on a fake network.
//!
//! Dependencies: `resil-core` (the machines), `http` (the request and response types every
//! Rust HTTP library shares), `bytes` (shared request-id bytes), and `tracing` behind its
//! feature (the ecosystem's structured-logging facade).
//!
//! ## Features
//!
//! - `tracing`: the [`Observer`] also emits `tracing` events.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attempt;
mod body;
mod builder;
mod call;
mod config;
mod draft;
mod env;
mod error;
mod fleet;
pub mod guide;
mod headers;
mod observe;
mod origins;
pub mod otel;
mod proxy;
mod redirect;
mod resume;
mod telemetry;
mod time;
mod url;

pub use attempt::AttemptId;
pub use body::RequestBody;
pub use call::{Call, CallBody, CallLabel, Step};
pub use config::{ClientConfig, ClientCore, OriginLimiter, SharedLimiter};
pub use draft::RequestDraft;
pub use env::{EnvConfig, EnvError, TransportEnv};
pub use error::{BoxError, ConfigError, Error, ErrorKind, IncompleteBody, TransportError};
pub use fleet::{FleetLink, FleetMember, FleetMembership};
pub use headers::BearerToken;
pub use observe::{
    BodyFailure, CallInfo, HedgeInfo, Hooks, Observer, RedirectInfo, RetryInfo, RetryReason, Stats,
    StatsSnapshot,
};
pub use proxy::Proxy;
pub use redirect::RedirectError;
pub use resume::{CannotResume, ContentDecoded, ResumeError, ResumePoint, Resumed};
pub use url::UrlError;

/// What only a driver needs: the request each attempt sends, the checks before sending,
/// `Host` and credentials, timeouts as HTTP libraries take them, and the wall clock.
pub mod driver {
    pub use crate::call::DRAIN_LIMIT;
    pub use crate::error::{auth_error, body_failure_kind, unsendable_request, write_causes};
    pub use crate::headers::{
        check_request_headers, fill_host_header, is_sensitive_header, redacted_headers,
        remember_last, response_framing_problem,
    };
    pub use crate::proxy::check_proxy_url;
    pub use crate::time::{MAX_TIMEOUT, attempt_budget, library_timeout, read_deadline, unix_now};
    pub use crate::url::{form_urlencode, take_url_credentials};
}

/// The names a driver crate re-exports at its root, so one dependency is enough to configure
/// a client, implement hooks or a transport, and match on what they report. Drivers add
/// their own `Error` (this crate's [`Error`] with their body) beside them.
pub mod prelude {
    pub use crate::{
        BearerToken, CallInfo, ClientConfig, ConfigError, EnvConfig, EnvError, ErrorKind,
        FleetLink, HedgeInfo, Hooks, IncompleteBody, Proxy, RedirectError, RedirectInfo, RetryInfo,
        RetryReason, SharedLimiter, StatsSnapshot, TransportError,
    };
    pub use resil_core::{
        AdaptiveRateLimiter, AdaptiveThrottle, Admission, ConcurrencyLimiter, CurrentLimit,
        LimitAlgorithm, LocalRejection, QuotaPacer, RateLimiter,
    };
    pub use resil_core::{
        Attempt, AttemptOutcome, Backoff, BreakerState, Cause, CircuitBreaker,
        CircuitBreakerBuilder, GiveUp, GiveUpReason, HedgeDelay, Hedging, Jitter, LatencySketch,
        PolicyError, RedirectPolicy, RedirectRefusal, RetryBudget, RetryContext, RetryPolicy,
        RetryPolicyBuilder, SlowCalls, Transition, TransportErrorKind, TransportErrorKinds,
        TripCondition, Window,
    };
}

/// What the builder macros name, from wherever they are expanded.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use http::Method;
    #[cfg(feature = "otel")]
    pub use opentelemetry::metrics::Meter;
    pub use resil_core::{
        BreakerState, CircuitBreaker, CircuitBreakerBuilder, CurrentLimit, Hedging, LatencySketch,
        RedirectPolicy, RetryBudget, RetryPolicy,
    };
}

#[cfg(test)]
mod tests;
