//! The retry policy: what is retried, how long to wait, and the time limits. Validated once by
//! [`RetryPolicyBuilder::build`]; after that nothing in the hot path can fail because of config.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::attempt::Attempt;
use crate::backoff::{Backoff, BackoffSchedule, Jitter, to_fixed};
use crate::error::PolicyError;
use crate::retry_after::RetryAfter;
use crate::time::{UnixTime, duration_to_nanos};

/// The request method, as far as retry safety is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// CONNECT
    Connect,
    /// Any other (extension) method: treated as not idempotent.
    Other,
}

impl Method {
    /// Maps a method token (case-sensitive, as RFC 9110 says) to a [`Method`].
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"POST" => Method::Post,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: sending it twice has the effect of sending it once.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }
}

/// What the machine must know about the request to decide whether replaying it is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The method.
    pub method: Method,
    /// The request carries an `Idempotency-Key` header, so the server deduplicates replays.
    pub has_idempotency_key: bool,
    /// The body can be sent again (buffered bytes or a factory). A streaming body that was
    /// consumed cannot, and the request is then never retried.
    pub body_replayable: bool,
}

impl RequestInfo {
    /// A request with this method, a replayable (or empty) body and no `Idempotency-Key`.
    pub const fn new(method: Method) -> RequestInfo {
        RequestInfo {
            method,
            has_idempotency_key: false,
            body_replayable: true,
        }
    }

    /// Sets whether the request carries an `Idempotency-Key`.
    pub const fn idempotency_key(mut self, present: bool) -> RequestInfo {
        self.has_idempotency_key = present;
        self
    }

    /// Sets whether the body can be sent again.
    pub const fn body_replayable(mut self, replayable: bool) -> RequestInfo {
        self.body_replayable = replayable;
        self
    }
}

/// Why an attempt failed at the transport level. The split that matters is
/// [`TransportErrorKind::reached_server`]: a request that never reached the server can always be
/// re-sent; one that may have been processed only when replaying it is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Name resolution failed. Never sent.
    Dns,
    /// The TCP connection was refused or unreachable. Never sent.
    Connect,
    /// Connecting took longer than the connect timeout. Never sent.
    ConnectTimeout,
    /// The TLS handshake failed. Never sent.
    TlsHandshake,
    /// HTTP/2 `REFUSED_STREAM`, or a GOAWAY naming a stream above this one: the server
    /// promises it did not process the request.
    RefusedStream,
    /// The connection was reset or closed after the request was (perhaps partly) written.
    Reset,
    /// The attempt's deadline passed after the request was written.
    Timeout,
    /// The response could not be parsed, or its body broke off.
    Protocol,
    /// Anything else after the request may have been written.
    Other,
}

impl TransportErrorKind {
    /// Whether the request may have reached the server (and so may have been processed).
    pub fn reached_server(self) -> bool {
        !matches!(
            self,
            TransportErrorKind::Dns
                | TransportErrorKind::Connect
                | TransportErrorKind::ConnectTimeout
                | TransportErrorKind::TlsHandshake
                | TransportErrorKind::RefusedStream
        )
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Dns => "name resolution failed",
            TransportErrorKind::Connect => "connection refused",
            TransportErrorKind::ConnectTimeout => "connect timed out",
            TransportErrorKind::TlsHandshake => "TLS handshake failed",
            TransportErrorKind::RefusedStream => "stream refused by server",
            TransportErrorKind::Reset => "connection reset after the request was sent",
            TransportErrorKind::Timeout => "attempt timed out",
            TransportErrorKind::Protocol => "malformed or truncated response",
            TransportErrorKind::Other => "transport error",
        })
    }
}

/// Looks up response headers for a [`RetryContext`] predicate without tying core to a header
/// type. Implemented for `http::HeaderMap` (feature `http`) and for slices of pairs.
pub trait HeaderLookup {
    /// The first value of header `name` (ASCII case-insensitive).
    fn header(&self, name: &str) -> Option<&[u8]>;
}

fn find_pair<'a>(pairs: &'a [(&str, &[u8])], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

impl HeaderLookup for &[(&str, &[u8])] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        find_pair(self, name)
    }
}

impl<const N: usize> HeaderLookup for [(&str, &[u8]); N] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        find_pair(self, name)
    }
}

/// What the machine needs from a response head.
#[derive(Clone, Copy)]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: u16,
    /// The parsed `Retry-After`, if the response had a valid one.
    pub retry_after: Option<RetryAfter>,
    /// Wall-clock time when the response arrived; needed only for an HTTP-date `Retry-After`
    /// (without it a date is ignored).
    pub wall_clock: Option<UnixTime>,
    /// All headers, for a `retry_if` predicate.
    pub headers: Option<&'a dyn HeaderLookup>,
    /// A bounded prefix of the body, if the driver was asked to buffer one for `retry_if`.
    pub body_prefix: Option<&'a [u8]>,
}

impl<'a> ResponseHead<'a> {
    /// A head with only a status.
    pub const fn new(status: u16) -> ResponseHead<'a> {
        ResponseHead {
            status,
            retry_after: None,
            wall_clock: None,
            headers: None,
            body_prefix: None,
        }
    }

    /// Adds a `Retry-After` value and the wall-clock time it is relative to.
    pub const fn with_retry_after(
        mut self,
        retry_after: Option<RetryAfter>,
        wall_clock: Option<UnixTime>,
    ) -> ResponseHead<'a> {
        self.retry_after = retry_after;
        self.wall_clock = wall_clock;
        self
    }

    /// Adds header access for `retry_if`.
    pub const fn with_headers(mut self, headers: &'a dyn HeaderLookup) -> ResponseHead<'a> {
        self.headers = Some(headers);
        self
    }

    /// Adds a body prefix for `retry_if`.
    pub const fn with_body_prefix(mut self, prefix: &'a [u8]) -> ResponseHead<'a> {
        self.body_prefix = Some(prefix);
        self
    }
}

impl fmt::Debug for ResponseHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("wall_clock", &self.wall_clock)
            .field("has_headers", &self.headers.is_some())
            .field("body_prefix_len", &self.body_prefix.map(<[u8]>::len))
            .finish()
    }
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug)]
pub enum AttemptOutcome<'a> {
    /// A response head arrived.
    Response(ResponseHead<'a>),
    /// The transport failed.
    Error(TransportErrorKind),
}

/// What ended an attempt, in short: the status, or the transport error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A response with this status.
    Status(u16),
    /// A transport error.
    Error(TransportErrorKind),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Status(s) => write!(f, "status {s}"),
            Cause::Error(k) => write!(f, "{k}"),
        }
    }
}

impl AttemptOutcome<'_> {
    /// The outcome in short: its status, or its transport error.
    pub fn cause(&self) -> Cause {
        match self {
            AttemptOutcome::Response(head) => Cause::Status(head.status),
            AttemptOutcome::Error(kind) => Cause::Error(*kind),
        }
    }
}

/// What a `retry_if` predicate sees.
#[derive(Clone, Copy, Debug)]
pub struct RetryContext<'a> {
    /// The attempt that just ended.
    pub attempt: Attempt,
    /// The request's method.
    pub method: Method,
    /// How it ended.
    pub outcome: AttemptOutcome<'a>,
}

impl RetryContext<'_> {
    /// The response status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            AttemptOutcome::Response(head) => Some(head.status),
            AttemptOutcome::Error(_) => None,
        }
    }

    /// A response header, if there was a response and the driver supplied headers.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self.outcome {
            AttemptOutcome::Response(head) => head.headers?.header(name),
            AttemptOutcome::Error(_) => None,
        }
    }

    /// The buffered body prefix, if any.
    pub fn body_prefix(&self) -> Option<&[u8]> {
        match self.outcome {
            AttemptOutcome::Response(head) => head.body_prefix,
            AttemptOutcome::Error(_) => None,
        }
    }
}

/// The four kinds of retry urllib3's `Retry` counts apart (`connect=`, `read=`, `status=`,
/// `other=`), so a policy can bound each beside the total
/// ([`RetryPolicyBuilder::kind_retries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryKind {
    /// After a transport error before the request reached the server
    /// ([`TransportErrorKind::reached_server`] is false: DNS, connect, TLS handshake, refused
    /// stream).
    Connect,
    /// After the request was sent and the answer broke off: reset, timeout, malformed response.
    Read,
    /// After a response whose status the policy retries (or `retry_if` did).
    Status,
    /// After any other transport error ([`TransportErrorKind::Other`]).
    Other,
}

impl RetryKind {
    /// The kind of a retry after `cause`.
    pub fn of(cause: Cause) -> RetryKind {
        match cause {
            Cause::Status(_) => RetryKind::Status,
            Cause::Error(TransportErrorKind::Other) => RetryKind::Other,
            Cause::Error(kind) if !kind.reached_server() => RetryKind::Connect,
            Cause::Error(_) => RetryKind::Read,
        }
    }

    /// Every kind, in [`index`](Self::index) order.
    pub(crate) const ALL: [RetryKind; 4] = [
        RetryKind::Connect,
        RetryKind::Read,
        RetryKind::Status,
        RetryKind::Other,
    ];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RetryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetryKind::Connect => "connect",
            RetryKind::Read => "read",
            RetryKind::Status => "status",
            RetryKind::Other => "other",
        })
    }
}

/// What a delay function ([`RetryPolicyBuilder::delay_fn`]) sees before a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelayContext {
    /// The attempt that just failed (the first retry follows attempt 1).
    pub attempt: Attempt,
    /// How it failed.
    pub cause: Cause,
    /// The server's `Retry-After`, as a wait from now, when the response had one the policy
    /// honours (at most `max_retry_after`, or clamped to it).
    pub retry_after: Option<Duration>,
    /// What the policy itself would wait: the `Retry-After` (with its spread), or the jittered
    /// backoff.
    pub policy_delay: Duration,
}

/// A delay function: the wait before a retry, or `None` to keep the policy's own
/// ([`DelayContext::policy_delay`]). A plain `fn`, so a policy stays `Copy`-cheap to share.
pub type DelayFn = fn(&DelayContext) -> Option<Duration>;

/// `retry_if`: `Some(true)` retries, `Some(false)` does not, `None` defers to the status and
/// error-kind sets. The idempotency gate still applies after it.
pub type RetryPredicate = dyn Fn(&RetryContext<'_>) -> Option<bool> + Send + Sync;

/// A set of HTTP status codes (100–599), as a bitset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// No status.
    pub const EMPTY: StatusSet = StatusSet([0; 10]);

    /// The set of the given codes; fails on a code outside 100–599.
    pub fn from_codes(codes: &[u16]) -> Result<StatusSet, PolicyError> {
        for &code in codes {
            if !(100..=599).contains(&code) {
                return Err(PolicyError::new(
                    "statuses",
                    "status codes must be in 100..=599",
                ));
            }
        }
        Ok(StatusSet::of_valid(codes))
    }

    /// The set of codes already known to be in 100..=599 (the built-in defaults).
    const fn of_valid(codes: &[u16]) -> StatusSet {
        let mut set = StatusSet::EMPTY;
        let mut i = 0;
        while i < codes.len() {
            let code = codes[i];
            set.0[(code / 64) as usize] |= 1 << (code % 64);
            i += 1;
        }
        set
    }

    /// Every code in `range` (clamped to 100–599).
    pub fn with_range(mut self, range: core::ops::RangeInclusive<u16>) -> StatusSet {
        for code in (*range.start()).max(100)..=(*range.end()).min(599) {
            self.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
        self
    }

    /// Whether `code` is in the set (any code outside 100–599 is not).
    pub fn contains(&self, code: u16) -> bool {
        code < 640 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries((100..=599).filter(|&c| self.contains(c)))
            .finish()
    }
}

/// A set of [`TransportErrorKind`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TransportErrorKinds(u16);

impl TransportErrorKinds {
    /// Transient transport failures: everything but TLS handshake, protocol and "other"
    /// errors, which rarely go away by themselves.
    pub const TRANSIENT: TransportErrorKinds = TransportErrorKinds(
        TransportErrorKind::Dns.bit()
            | TransportErrorKind::Connect.bit()
            | TransportErrorKind::ConnectTimeout.bit()
            | TransportErrorKind::RefusedStream.bit()
            | TransportErrorKind::Reset.bit()
            | TransportErrorKind::Timeout.bit(),
    );
    /// Every kind.
    pub const ALL: TransportErrorKinds = TransportErrorKinds(u16::MAX);
    /// No kind.
    pub const NONE: TransportErrorKinds = TransportErrorKinds(0);

    /// The set of the given kinds.
    pub fn of(kinds: &[TransportErrorKind]) -> TransportErrorKinds {
        TransportErrorKinds(kinds.iter().fold(0, |acc, k| acc | k.bit()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: TransportErrorKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// The policy's verdict on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Classification {
    /// A final response: hand it over.
    Final,
    /// Worth another attempt, if everything else allows it.
    Retryable,
    /// A transport error that is not worth retrying.
    Fatal,
}

/// A validated retry policy. Cheap to clone (the predicate is shared); borrowed by every
/// [`RetryMachine`](crate::RetryMachine) that runs under it.
///
/// Defaults ([`RetryPolicy::builder`]), with where they come from:
///
/// | setting | default |
/// |---|---|
/// | `max_attempts` (first try included) | 4, i.e. 3 retries (urllib3) |
/// | `backoff` | exponential, 100 ms × 2 (AWS SDK) |
/// | `max_delay` | 20 s |
/// | `jitter` | full (AWS "Exponential Backoff and Jitter") |
/// | retryable statuses | 408, 429, 500, 502, 503, 504 |
/// | retryable errors | [`TransportErrorKinds::TRANSIENT`] |
/// | breaker failure statuses | 408, 429, 500–599 |
/// | `attempt_timeout` / `total_timeout` | 10 s / 30 s (.NET standard resilience handler) |
/// | `max_retry_after` | 60 s, and never past the deadline |
/// | `max_wait` (any one sleep) | unbounded beyond the caps above |
/// | `retry_after_spread` | 0.1: wait `d + U(0, 0.1·d)` so a herd told the same `d` spreads out |
/// | `retry_after_exact` | off: a `Retry-After` is a floor; the wait is the longer of it and the backoff |
/// | `respect_retry_after` | true |
/// | `back_pressure_trips_breaker` | false: a 429 or a `Retry-After` (and, with limiters, a 503) is no breaker failure |
/// | `kind_retries` (connect, read, status, other) | unbounded beyond `max_attempts` |
/// | `delay_fn` | none: the backoff and `Retry-After` decide |
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) schedule: BackoffSchedule,
    pub(crate) retry_statuses: StatusSet,
    pub(crate) failure_statuses: StatusSet,
    pub(crate) retry_errors: TransportErrorKinds,
    pub(crate) retry_if: Option<Arc<RetryPredicate>>,
    pub(crate) body_prefix: u32,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) attempt_timeout: u64,
    pub(crate) total_timeout: u64,
    pub(crate) max_wait: u64,
    pub(crate) max_retry_after: u64,
    pub(crate) clamp_retry_after: bool,
    pub(crate) retry_after_spread: u64,
    pub(crate) retry_after_exact: bool,
    pub(crate) respect_retry_after: bool,
    /// Back pressure (429, 503, `Retry-After`) counts toward the breaker even when limiters
    /// take it.
    pub(crate) back_pressure_trips_breaker: bool,
    /// The most retries of each [`RetryKind`], [`NO_LIMIT`] where unbounded.
    pub(crate) kind_limits: [u16; 4],
    pub(crate) delay_fn: Option<DelayFn>,
    pub(crate) hedging: Option<crate::hedge::Hedging>,
}

impl RetryPolicy {
    /// How the policy hedges, if it does.
    pub fn hedging(&self) -> Option<&crate::hedge::Hedging> {
        self.hedging.as_ref()
    }
}

/// A [`RetryPolicy::kind_limits`] entry without a bound.
pub(crate) const NO_LIMIT: u16 = u16::MAX;

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("schedule", &self.schedule)
            .field("retry_statuses", &self.retry_statuses)
            .field("failure_statuses", &self.failure_statuses)
            .field("retry_errors", &self.retry_errors)
            .field("retry_if", &self.retry_if.is_some())
            .field("retry_non_idempotent", &self.retry_non_idempotent)
            .field(
                "attempt_timeout",
                &Duration::from_nanos(self.attempt_timeout),
            )
            .field("total_timeout", &Duration::from_nanos(self.total_timeout))
            .field("max_wait", &Duration::from_nanos(self.max_wait))
            .field(
                "max_retry_after",
                &Duration::from_nanos(self.max_retry_after),
            )
            .field("clamp_retry_after", &self.clamp_retry_after)
            .field("respect_retry_after", &self.respect_retry_after)
            .field(
                "back_pressure_trips_breaker",
                &self.back_pressure_trips_breaker,
            )
            .field("kind_limits", &self.kind_limits)
            .field("delay_fn", &self.delay_fn.is_some())
            .field("hedging", &self.hedging)
            .finish()
    }
}

impl Default for RetryPolicy {
    /// The defaults in the table above (the test `defaults_build_and_match_the_design_table`
    /// checks they equal what the builder produces).
    fn default() -> RetryPolicy {
        let b = RetryPolicyBuilder::default();
        RetryPolicy {
            max_attempts: b.max_attempts,
            schedule: BackoffSchedule::DEFAULT,
            retry_statuses: b.retry_statuses,
            failure_statuses: b.failure_statuses,
            retry_errors: b.retry_errors,
            retry_if: None,
            body_prefix: 0,
            retry_non_idempotent: false,
            attempt_timeout: 10_000_000_000,
            total_timeout: 30_000_000_000,
            max_wait: u64::MAX,
            max_retry_after: 60_000_000_000,
            clamp_retry_after: false,
            retry_after_spread: to_fixed(0.1),
            retry_after_exact: false,
            respect_retry_after: true,
            back_pressure_trips_breaker: false,
            kind_limits: [NO_LIMIT; 4],
            delay_fn: None,
            hedging: None,
        }
    }
}

impl RetryPolicy {
    /// The largest body prefix a policy may ask drivers to read before deciding.
    pub const MAX_BODY_PREFIX: usize = 64 * 1024;

    /// Statuses retried by default: timeouts, rate limiting and the transient 5xx.
    pub const DEFAULT_RETRY_STATUSES: &[u16] = &[408, 429, 500, 502, 503, 504];

    /// A builder holding the defaults listed on [`RetryPolicy`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// Attempts in total, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff schedule.
    pub fn schedule(&self) -> &BackoffSchedule {
        &self.schedule
    }

    /// Bytes of each response body drivers read before deciding, for `retry_if` (0: none).
    pub fn body_prefix_len(&self) -> usize {
        self.body_prefix as usize
    }

    /// The per-attempt timeout (`Duration::MAX` when unbounded).
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_nanos(self.attempt_timeout)
    }

    /// The total deadline across attempts and sleeps (`Duration::MAX` when unbounded).
    pub fn total_timeout(&self) -> Duration {
        Duration::from_nanos(self.total_timeout)
    }

    /// This policy with other time limits and attempt count, validated like the builder does
    /// (`None` means unbounded). Drivers use it for per-client and per-request overrides.
    pub fn with_limits(
        &self,
        total_timeout: Option<Duration>,
        attempt_timeout: Option<Duration>,
        max_attempts: u32,
    ) -> Result<RetryPolicy, PolicyError> {
        if max_attempts == 0 {
            return Err(PolicyError::new("max_attempts", "must be at least 1"));
        }
        if attempt_timeout == Some(Duration::ZERO) {
            return Err(PolicyError::new("attempt_timeout", "must not be zero"));
        }
        if total_timeout == Some(Duration::ZERO) {
            return Err(PolicyError::new("total_timeout", "must not be zero"));
        }
        if let Some(hedging) = &self.hedging {
            hedging.check(max_attempts)?;
        }
        let nanos_or_max = |d: Option<Duration>| d.map_or(u64::MAX, duration_to_nanos);
        Ok(RetryPolicy {
            max_attempts,
            total_timeout: nanos_or_max(total_timeout),
            attempt_timeout: nanos_or_max(attempt_timeout),
            ..self.clone()
        })
    }

    /// The same policy hedging as `hedging` says (`None`: not at all), checked as
    /// [`RetryPolicyBuilder::hedge`] is.
    pub fn with_hedging(
        &self,
        hedging: Option<crate::hedge::Hedging>,
    ) -> Result<RetryPolicy, PolicyError> {
        if let Some(h) = &hedging {
            h.check(self.max_attempts)?;
            if self.body_prefix > 0 {
                return Err(PolicyError::new(
                    "hedge",
                    "a policy that reads a body prefix (retry_if_body_prefix) cannot hedge",
                ));
            }
        }
        Ok(RetryPolicy {
            hedging,
            ..self.clone()
        })
    }

    /// Whether the circuit breaker should count this outcome as a failure: transport errors
    /// always, responses when their status is in the failure set (by default 408, 429, 5xx;
    /// other 4xx are the caller's fault, not the backend's).
    pub fn is_failure(&self, outcome: &AttemptOutcome<'_>) -> bool {
        match outcome {
            AttemptOutcome::Response(head) => self.failure_statuses.contains(head.status),
            AttemptOutcome::Error(_) => true,
        }
    }

    pub(crate) fn classify(&self, ctx: &RetryContext<'_>) -> Classification {
        if let Some(verdict) = self.retry_if.as_ref().and_then(|p| p(ctx)) {
            return match (verdict, ctx.outcome) {
                (true, _) => Classification::Retryable,
                (false, AttemptOutcome::Response(_)) => Classification::Final,
                (false, AttemptOutcome::Error(_)) => Classification::Fatal,
            };
        }
        match ctx.outcome {
            AttemptOutcome::Response(head) if self.retry_statuses.contains(head.status) => {
                Classification::Retryable
            }
            AttemptOutcome::Response(_) => Classification::Final,
            AttemptOutcome::Error(kind) if self.retry_errors.contains(kind) => {
                Classification::Retryable
            }
            AttemptOutcome::Error(_) => Classification::Fatal,
        }
    }

    /// Whether replaying `request` after `outcome` is safe.
    pub(crate) fn may_replay(&self, request: &RequestInfo, outcome: &AttemptOutcome<'_>) -> bool {
        let never_reached = matches!(outcome, AttemptOutcome::Error(k) if !k.reached_server());
        never_reached
            || request.method.is_idempotent()
            || request.has_idempotency_key
            || self.retry_non_idempotent
    }
}

/// Builds a [`RetryPolicy`]; every setting is checked in [`build`](RetryPolicyBuilder::build).
#[derive(Clone)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Duration,
    retry_statuses: StatusSet,
    failure_statuses: StatusSet,
    retry_errors: TransportErrorKinds,
    retry_if: Option<Arc<RetryPredicate>>,
    body_prefix: usize,
    retry_non_idempotent: bool,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    max_wait: Option<Duration>,
    max_retry_after: Duration,
    clamp_retry_after: bool,
    retry_after_spread: f64,
    retry_after_exact: bool,
    respect_retry_after: bool,
    back_pressure_trips_breaker: bool,
    kind_limits: [Option<u32>; 4],
    delay_fn: Option<DelayFn>,
    hedging: Option<crate::hedge::Hedging>,
    error: Option<PolicyError>,
}

impl fmt::Debug for RetryPolicyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl Default for RetryPolicyBuilder {
    fn default() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            max_attempts: 4,
            backoff: Backoff::exponential(Duration::from_millis(100)),
            jitter: Jitter::Full,
            max_delay: Duration::from_secs(20),
            retry_statuses: StatusSet::of_valid(RetryPolicy::DEFAULT_RETRY_STATUSES),
            failure_statuses: StatusSet::of_valid(&[408, 429]).with_range(500..=599),
            retry_errors: TransportErrorKinds::TRANSIENT,
            retry_if: None,
            body_prefix: 0,
            retry_non_idempotent: false,
            attempt_timeout: Some(Duration::from_secs(10)),
            total_timeout: Some(Duration::from_secs(30)),
            max_wait: None,
            max_retry_after: Duration::from_secs(60),
            clamp_retry_after: false,
            retry_after_spread: 0.1,
            retry_after_exact: false,
            respect_retry_after: true,
            back_pressure_trips_breaker: false,
            kind_limits: [None; 4],
            delay_fn: None,
            hedging: None,
            error: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// Attempts in total, the first included (must be at least 1; 1 disables retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Retries after the first attempt: `max_retries(3)` is `max_attempts(4)`.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_attempts = retries.saturating_add(1);
        self
    }

    /// The backoff formula.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The jitter applied to the backoff formula.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The largest computed backoff (before `max_wait`).
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// Replaces the retryable statuses (each in 100..=599).
    pub fn retry_statuses(mut self, codes: &[u16]) -> Self {
        match StatusSet::from_codes(codes) {
            Ok(set) => self.retry_statuses = set,
            Err(_) => self.fail("retry_statuses", "status codes must be in 100..=599"),
        }
        self
    }

    /// Replaces the statuses the circuit breaker counts as failures.
    pub fn failure_statuses(mut self, codes: &[u16]) -> Self {
        match StatusSet::from_codes(codes) {
            Ok(set) => self.failure_statuses = set,
            Err(_) => self.fail("failure_statuses", "status codes must be in 100..=599"),
        }
        self
    }

    /// Replaces the retryable transport error kinds.
    pub fn retry_errors(mut self, kinds: TransportErrorKinds) -> Self {
        self.retry_errors = kinds;
        self
    }

    /// A predicate consulted before the status and error sets; see [`RetryPredicate`].
    pub fn retry_if<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&RetryContext<'_>) -> Option<bool> + Send + Sync + 'static,
    {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Has drivers read up to `bytes` of every response's body before deciding, so a
    /// [`retry_if`](Self::retry_if) predicate can look at it
    /// ([`RetryContext::body_prefix`]); the caller still reads the whole body. At most 64 KiB;
    /// 0 (the default) reads nothing early. The read counts against the attempt's deadline.
    pub fn retry_if_body_prefix(mut self, bytes: usize) -> Self {
        self.body_prefix = bytes;
        self
    }

    /// Opt in to replaying POST, PATCH and other non-idempotent requests even when they may
    /// have been processed. Off by default: prefer an `Idempotency-Key`.
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.retry_non_idempotent = yes;
        self
    }

    /// Abandon one attempt after this long (`None`: no per-attempt limit). Must not be zero.
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The deadline for the whole call, attempts and sleeps included (`None`: none). Must not
    /// be zero.
    pub fn total_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// The longest single sleep, whether from backoff or `Retry-After` (`None`: no extra cap).
    pub fn max_wait(mut self, max: Option<Duration>) -> Self {
        self.max_wait = max;
        self
    }

    /// The longest `Retry-After` honoured; a longer ask gives up at once and returns that
    /// response, unless [`clamp_retry_after`](Self::clamp_retry_after) is set.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Wait the capped time instead of giving up when `Retry-After` asks for too long.
    pub fn clamp_retry_after(mut self, clamp: bool) -> Self {
        self.clamp_retry_after = clamp;
        self
    }

    /// Extra random wait after a `Retry-After`, as a fraction of it (`d + U(0, f·d)`, never
    /// past the caps); 0 adds none. In `[0, 1]`.
    pub fn retry_after_spread(mut self, fraction: f64) -> Self {
        self.retry_after_spread = fraction;
        self
    }

    /// Waits exactly what `Retry-After` asks (plus its spread), even when it asks for less
    /// than the backoff would wait. Off by default: the server's ask is a floor, and the wait
    /// is the longer of it and the backoff, so a server that always answers `Retry-After: 0`
    /// cannot turn the retries into a tight loop.
    pub fn retry_after_exact(mut self, exact: bool) -> Self {
        self.retry_after_exact = exact;
        self
    }

    /// Whether to wait what a `Retry-After` asks (urllib3's `respect_retry_after_header`).
    /// Off, the header is ignored and the backoff decides, as if the response had none.
    pub fn respect_retry_after(mut self, respect: bool) -> Self {
        self.respect_retry_after = respect;
        self
    }

    /// Whether a server's back pressure counts toward the circuit breaker's failures (when
    /// its status is a failure status). Off by default: a 429 or any response with
    /// `Retry-After` counts as a success for the breaker, since the server answered, and so
    /// does a bare 503 when the machine has limiters
    /// ([`RetryMachine::with_limiters`](crate::RetryMachine::with_limiters)), which take the
    /// back pressure instead. The breaker is for a backend that fails or does not answer:
    /// transport errors, timeouts, other 5xx (and a bare 503 without limiters). On, the
    /// breaker counts all of them.
    ///
    /// Why off: under overload most answers can be 429 or 503 while the backend still serves
    /// at capacity, and counting them opens the breaker (five in a row are enough by
    /// default), so the client gets nothing from a backend that is serving. The retry
    /// schedule still honours `Retry-After` (jittered above it) and the retry budget still
    /// counts these retries.
    pub fn back_pressure_trips_breaker(mut self, yes: bool) -> Self {
        self.back_pressure_trips_breaker = yes;
        self
    }

    /// At most `retries` retries after failures of `kind` (urllib3's `connect=`, `read=`,
    /// `status=`, `other=`), on top of `max_attempts` for all kinds together (urllib3's
    /// `total=`). 0 retries no failure of that kind; at most 255. A call that would need
    /// another gives up with [`GiveUpReason::KindExhausted`](crate::GiveUpReason::KindExhausted).
    ///
    /// ```
    /// use resil_core::{RetryKind, RetryPolicy};
    ///
    /// // urllib3's Retry(total=5, connect=2, read=0): never re-send after a read error.
    /// let policy = RetryPolicy::builder()
    ///     .max_retries(5)
    ///     .kind_retries(RetryKind::Connect, 2)
    ///     .kind_retries(RetryKind::Read, 0)
    ///     .build()?;
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn kind_retries(mut self, kind: RetryKind, retries: u32) -> Self {
        self.kind_limits[kind.index()] = Some(retries);
        self
    }

    /// Chooses each retry's wait (Polly's `DelayGenerator`, resilience4j's
    /// `IntervalBiFunction`): `f` sees the failed attempt, how it failed, the server's
    /// `Retry-After` and the policy's own delay ([`DelayContext`]), and answers a wait or `None`
    /// to keep the policy's. Its answer is still bounded as any wait is: at most `max_delay`
    /// (and `max_wait`); after a `Retry-After`, never shorter than the server asked and never
    /// longer than `max_retry_after`; a wait past the total deadline gives up.
    ///
    /// ```
    /// use core::time::Duration;
    /// use resil_core::{Cause, DelayContext, RetryPolicy};
    ///
    /// // Wait longer after 429 than after anything else.
    /// fn by_status(ctx: &DelayContext) -> Option<Duration> {
    ///     (ctx.cause == Cause::Status(429)).then(|| ctx.policy_delay * 4)
    /// }
    /// let policy = RetryPolicy::builder().delay_fn(by_status).build()?;
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn delay_fn(mut self, f: DelayFn) -> Self {
        self.delay_fn = Some(f);
        self
    }

    /// Hedges the request when it is slower than usual (see [`Hedging`](crate::Hedging) for
    /// the rules): another copy goes out while the first is still in flight, the first good
    /// answer wins and the rest are cancelled. Off by default. A delay of zero, more
    /// attempts in flight than `max_attempts` or than [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT)
    /// are refused by [`build`](Self::build).
    ///
    /// ```
    /// use core::time::Duration;
    /// use resil_core::{Hedging, RetryPolicy};
    ///
    /// let policy = RetryPolicy::builder()
    ///     .hedge(Hedging::adaptive().fallback(Duration::from_millis(50)))
    ///     .build()?;
    /// assert!(RetryPolicy::builder().hedge(Hedging::fixed(Duration::ZERO)).build().is_err());
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn hedge(mut self, hedging: crate::hedge::Hedging) -> Self {
        self.hedging = Some(hedging);
        self
    }

    fn fail(&mut self, field: &'static str, problem: &'static str) {
        self.error.get_or_insert(PolicyError::new(field, problem));
    }

    /// Validates every setting; the error names the first bad one.
    pub fn build(self) -> Result<RetryPolicy, PolicyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.max_attempts == 0 {
            return Err(PolicyError::new("max_attempts", "must be at least 1"));
        }
        if self.attempt_timeout == Some(Duration::ZERO) {
            return Err(PolicyError::new("attempt_timeout", "must not be zero"));
        }
        if self.total_timeout == Some(Duration::ZERO) {
            return Err(PolicyError::new("total_timeout", "must not be zero"));
        }
        if !(0.0..=1.0).contains(&self.retry_after_spread) {
            return Err(PolicyError::new("retry_after_spread", "must be in [0, 1]"));
        }
        if self.body_prefix > RetryPolicy::MAX_BODY_PREFIX {
            return Err(PolicyError::new(
                "retry_if_body_prefix",
                "must be at most 64 KiB",
            ));
        }
        let mut kind_limits = [NO_LIMIT; 4];
        for (limit, retries) in kind_limits.iter_mut().zip(self.kind_limits) {
            let Some(retries) = retries else { continue };
            *limit = match u8::try_from(retries) {
                Ok(n) => u16::from(n),
                Err(_) => {
                    return Err(PolicyError::new(
                        "kind_retries",
                        "at most 255 retries of one kind; max_attempts bounds more",
                    ));
                }
            };
        }
        if let Some(hedging) = &self.hedging {
            hedging.check(self.max_attempts)?;
            if self.body_prefix > 0 {
                // Several answers would each hold their body back for `retry_if`.
                return Err(PolicyError::new(
                    "hedge",
                    "a policy that reads a body prefix (retry_if_body_prefix) cannot hedge",
                ));
            }
        }
        let schedule = BackoffSchedule::new(self.backoff, self.jitter, self.max_delay)?;
        let nanos_or_max = |d: Option<Duration>| d.map_or(u64::MAX, duration_to_nanos);
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            schedule,
            retry_statuses: self.retry_statuses,
            failure_statuses: self.failure_statuses,
            retry_errors: self.retry_errors,
            retry_if: self.retry_if,
            body_prefix: self.body_prefix as u32,
            retry_non_idempotent: self.retry_non_idempotent,
            attempt_timeout: nanos_or_max(self.attempt_timeout),
            total_timeout: nanos_or_max(self.total_timeout),
            max_wait: nanos_or_max(self.max_wait),
            max_retry_after: duration_to_nanos(self.max_retry_after),
            clamp_retry_after: self.clamp_retry_after,
            retry_after_spread: to_fixed(self.retry_after_spread),
            retry_after_exact: self.retry_after_exact,
            respect_retry_after: self.respect_retry_after,
            back_pressure_trips_breaker: self.back_pressure_trips_breaker,
            kind_limits,
            delay_fn: self.delay_fn,
            hedging: self.hedging,
        })
    }
}
