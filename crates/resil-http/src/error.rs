//! The error every driver returns: what went wrong, on which call, with the last response.

use std::borrow::ToOwned;
use std::boxed::Box;
use std::fmt;
use std::string::String;

use resil_core::{Cause, GiveUp, GiveUpReason, RedirectRefusal, TransportErrorKind};

use crate::url::{UrlError, redact_url};

/// A boxed error, as transports and sources carry them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a transport could not complete one exchange, every driver's: `kind` tells the retry
/// machine whether the request may have reached the server, `source` is the transport's own
/// error.
#[derive(Debug)]
pub struct TransportError {
    kind: TransportErrorKind,
    source: BoxError,
}

impl TransportError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: TransportErrorKind, source: impl Into<BoxError>) -> TransportError {
        TransportError {
            kind,
            source: source.into(),
        }
    }

    /// The kind, as the retry policy sees it.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The transport's own error. A call's error holds this as its cause, with the kind
    /// beside it, so the kind is not told twice.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for TransportError {
    /// The kind; the transport's own error is the [`source`](core::error::Error::source),
    /// which `{:#}` appends (with its causes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if f.alternate() {
            write_causes(f, Some(&*self.source))?;
        }
        Ok(())
    }
}

impl core::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// An error with everything known about the call: method, URL (credentials redacted),
/// attempts, the last status, and the last response (body type `B`) when there was one.
/// Drivers alias it with their body: `resil_blocking::Error`, `resil_tokio::Error`.
pub struct Error<B> {
    kind: ErrorKind,
    method: String,
    url: String,
    attempts: u32,
    /// Boxed: an error is made once per failed call, and a `Result` carrying it inline would
    /// be larger than clippy's `result_large_err` allows.
    give_up: Option<Box<GiveUp>>,
    response: Option<Box<http::Response<B>>>,
    source: Option<BoxError>,
}

impl<B> Error<B> {
    /// An error of `kind` on the call `method url` (pass the URL already redacted; `"-"` for
    /// both when the error belongs to no call, e.g. a client configuration that is invalid).
    pub fn new(kind: ErrorKind, method: &str, url: &str) -> Error<B> {
        Error {
            kind,
            method: method.to_owned(),
            url: url.to_owned(),
            attempts: 0,
            give_up: None,
            response: None,
            source: None,
        }
    }

    /// Counts the attempts the call made (the last hop's, after redirects).
    pub(crate) fn set_attempts(&mut self, attempts: u32) {
        self.attempts = attempts;
    }

    /// Adds the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Error<B> {
        self.source = Some(source.into());
        self
    }

    /// Attaches the last response.
    pub fn with_response(mut self, response: Option<http::Response<B>>) -> Error<B> {
        self.response = response.map(Box::new);
        self
    }

    /// The same error with its response's body converted by `f` (for layers that wrap a
    /// body while the call runs).
    pub fn map_body<C>(self, f: impl FnOnce(B) -> C) -> Error<C> {
        Error {
            kind: self.kind,
            method: self.method,
            url: self.url,
            attempts: self.attempts,
            give_up: self.give_up,
            response: self.response.map(|r| Box::new(r.map(f))),
            source: self.source,
        }
    }

    /// The error for a retry machine that gave up.
    pub fn gave_up(give_up: GiveUp, method: &str, url: &str) -> Error<B> {
        let mut e = Error::new(ErrorKind::from_give_up(&give_up), method, url);
        e.attempts = give_up.attempts;
        e.give_up = Some(Box::new(give_up));
        e
    }

    /// The error for a response body that failed while it was read, given how the call that
    /// went on for the rest of it ended (`self`): when that call gave up before sending
    /// anything (no attempts or time left, a request that may not be replayed), the body's
    /// own failure is what went wrong, so the error is a [`Body`](ErrorKind::Body) error
    /// caused by `cause`, still saying why nothing followed; when a later attempt failed,
    /// that attempt's error is the answer.
    pub fn after_body_failure(self, attempts_before: u32, cause: impl Into<BoxError>) -> Error<B> {
        if self.attempts > attempts_before {
            return self;
        }
        Error {
            kind: ErrorKind::Body,
            source: Some(cause.into()),
            ..self
        }
    }

    /// The category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The request method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL, with any credentials replaced by `[redacted]`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Attempts sent (0 when the breaker rejected the call or the request was invalid).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the retry machine gave up, when it did.
    pub fn give_up(&self) -> Option<&GiveUp> {
        self.give_up.as_deref()
    }

    /// The status of the last response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.give_up.as_deref().and_then(|g| g.last) {
            Some(Cause::Status(s)) => Some(s),
            _ => self.response.as_ref().map(|r| r.status().as_u16()),
        }
    }

    /// The last response, if there was one (its body is still unread).
    pub fn response(&self) -> Option<&http::Response<B>> {
        self.response.as_deref()
    }

    /// Takes the last response out of the error.
    pub fn into_response(self) -> Option<http::Response<B>> {
        self.response.map(|r| *r)
    }
}

impl<B> fmt::Display for Error<B> {
    /// `{}` says what went wrong at this level only, so reporters that walk
    /// [`source`](core::error::Error::source) (anyhow, eyre, tracing) print each cause once;
    /// `{:#}` appends every cause, `: `-separated, for a one-line message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (self.method.as_str(), self.url.as_str()) != ("-", "-") {
            write!(f, "{} {}: ", self.method, self.url)?;
        }
        if let Some(g) = &self.give_up {
            write!(f, "{g}")?;
        } else if let Some(url_error) = self.url_error() {
            // It names the URL and its problem itself ("invalid URL `x`: ...").
            write!(f, "{url_error}")?;
        } else {
            match self.kind {
                ErrorKind::Status(s) => write!(f, "server answered with status {s}"),
                ErrorKind::Body => f.write_str("reading the response body failed"),
                ErrorKind::Decode => f.write_str("the response body could not be decoded"),
                ErrorKind::InvalidConfig => f.write_str("invalid configuration"),
                ErrorKind::InvalidUrl => f.write_str("invalid URL"),
                ErrorKind::Auth => f.write_str("could not obtain credentials"),
                ErrorKind::Redirect(_) => f.write_str("redirect not followed"),
                ErrorKind::Transport(k) => write!(f, "{k}"),
                other => write!(f, "{other:?}"),
            }?;
        }
        if f.alternate() {
            write_causes(f, core::error::Error::source(self))?;
        }
        Ok(())
    }
}

/// Writes `: cause` for `first` and every cause after it: how resil's errors render `{:#}`
/// (their `{}` leaves the causes to [`source`](core::error::Error::source)).
pub fn write_causes(
    f: &mut fmt::Formatter<'_>,
    first: Option<&(dyn core::error::Error + 'static)>,
) -> fmt::Result {
    let mut cause = first;
    while let Some(e) = cause {
        write!(f, ": {e}")?;
        cause = e.source();
    }
    Ok(())
}

impl<B> Error<B> {
    /// The source when it is a [`UrlError`](UrlError), which this error's `Display`
    /// shows in place of its own words, so it is not a cause of its own.
    fn url_error(&self) -> Option<&UrlError> {
        if self.give_up.is_some() {
            return None;
        }
        self.source.as_deref()?.downcast_ref::<UrlError>()
    }
}

impl<B> fmt::Debug for Error<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("attempts", &self.attempts)
            .field("give_up", &self.give_up)
            .field("status", &self.status())
            .field("source", &self.source)
            .finish()
    }
}

impl<B> core::error::Error for Error<B> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        if self.url_error().is_some() {
            return None;
        }
        self.source
            .as_deref()
            .map(|e| e as &(dyn core::error::Error + 'static))
    }
}

/// How a response body that failed while it was read failed, as an attempt's outcome: a
/// stall (an `io::Error` of kind `TimedOut` or `WouldBlock` in its chain) is a
/// [`Timeout`](TransportErrorKind::Timeout), a body that is not valid HTTP (`InvalidData` or
/// `InvalidInput`: a bad chunk size, say) is a [`Protocol`](TransportErrorKind::Protocol)
/// error, not retried by default; anything else (a cut, a reset) is a
/// [`Reset`](TransportErrorKind::Reset). The head came, so the request reached the server.
pub fn body_failure_kind(error: &(dyn core::error::Error + 'static)) -> TransportErrorKind {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    return TransportErrorKind::Timeout;
                }
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    return TransportErrorKind::Protocol;
                }
                _ => {}
            }
        }
        cause = e.source();
    }
    TransportErrorKind::Reset
}

/// A response body that ended before all of it arrived: the connection closed (or the
/// stream was cut) short of its `Content-Length` or final chunk. Drivers put it in front of
/// their client's own error, whose wording varies ("Peer disconnected", "error reading a
/// body from connection", curl's "Transferred a partial file"), so every driver says the
/// same thing; the client's error is its [`source`](core::error::Error::source).
#[derive(Debug)]
pub struct IncompleteBody(BoxError);

impl IncompleteBody {
    /// Marks `cause` as a body cut short.
    pub fn new(cause: impl Into<BoxError>) -> IncompleteBody {
        IncompleteBody(cause.into())
    }

    /// `error` marked as a body cut short if an `io::ErrorKind::UnexpectedEof` is anywhere in
    /// its chain (how std readers, ureq and hyper report one), otherwise `error` as it is.
    pub fn mark(error: BoxError) -> BoxError {
        let mut cause: Option<&(dyn core::error::Error + 'static)> = Some(&*error);
        while let Some(e) = cause {
            if e.is::<IncompleteBody>() {
                return error;
            }
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
            {
                return Box::new(IncompleteBody(error));
            }
            cause = e.source();
        }
        error
    }
}

impl fmt::Display for IncompleteBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response ended before its whole body arrived")
    }
}

impl core::error::Error for IncompleteBody {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The error for a request whose credentials could not be added.
pub fn auth_error<B>(parts: &http::request::Parts, source: impl Into<BoxError>) -> Error<B> {
    error_on(ErrorKind::Auth, parts, source)
}

/// The error for a request its transport cannot send as it stands (a header value the HTTP
/// library cannot carry, say): [`InvalidConfig`](ErrorKind::InvalidConfig), never
/// retried.
pub fn unsendable_request<B>(
    parts: &http::request::Parts,
    source: impl Into<BoxError>,
) -> Error<B> {
    error_on(ErrorKind::InvalidConfig, parts, source)
}

/// An error of `kind` on the call `parts` describes (its URL redacted), caused by `source`.
pub(crate) fn error_on<B>(
    kind: ErrorKind,
    parts: &http::request::Parts,
    source: impl Into<BoxError>,
) -> Error<B> {
    Error::new(kind, parts.method.as_str(), &redact_url(&parts.uri)).with_source(source)
}

/// What went wrong with a call, in categories a caller can act on; every driver's error type
/// reports one of these. (What failed in one exchange is a [`TransportErrorKind`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The transport failed and no retry followed (connection refused, reset, DNS, TLS, …).
    Transport(resil_core::TransportErrorKind),
    /// An attempt timed out and no retry followed.
    Timeout,
    /// The final response had a failure status (after retries, or from `error_for_status`).
    Status(u16),
    /// The circuit breaker is open: no request was sent.
    CircuitOpen,
    /// The retry budget refused another retry.
    BudgetExhausted,
    /// A client-side limiter refused the attempt (overload control): nothing was sent for
    /// it. The reason says which limiter and why.
    RejectedLocally(resil_core::LocalRejection),
    /// Another attempt would not fit in the total deadline.
    DeadlineExceeded,
    /// The server's `Retry-After` asked for longer than the policy allows.
    RetryAfterTooLong(core::time::Duration),
    /// The request may have been processed and is not idempotent, so it was not replayed.
    NotReplayed,
    /// The request body was a stream and cannot be sent again.
    BodyNotReplayable,
    /// Reading the response body failed, it was cut short, or it exceeded the size limit.
    Body,
    /// The response body arrived whole but could not be decoded: not UTF-8 (`text`) or not
    /// the JSON asked for (`json`).
    Decode,
    /// The client or request configuration is invalid.
    InvalidConfig,
    /// The URL is invalid, or relative without a base URL.
    InvalidUrl,
    /// Authentication headers could not be obtained or refreshed.
    Auth,
    /// A redirect the call would not follow (the cause names the chain); the 3xx is the
    /// last response.
    Redirect(RedirectRefusal),
}

impl ErrorKind {
    /// The kind for a retry machine that gave up.
    pub fn from_give_up(give_up: &GiveUp) -> ErrorKind {
        match give_up.reason {
            GiveUpReason::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            GiveUpReason::RetryAfterTooLong { requested } => {
                ErrorKind::RetryAfterTooLong(requested)
            }
            GiveUpReason::NonIdempotent => ErrorKind::NotReplayed,
            GiveUpReason::BodyNotReplayable => ErrorKind::BodyNotReplayable,
            GiveUpReason::BudgetExhausted => ErrorKind::BudgetExhausted,
            GiveUpReason::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            GiveUpReason::RejectedLocally(why) => ErrorKind::RejectedLocally(why),
            _ => match give_up.last {
                Some(Cause::Status(s)) => ErrorKind::Status(s),
                Some(Cause::Error(resil_core::TransportErrorKind::Timeout)) => ErrorKind::Timeout,
                Some(Cause::Error(k)) => ErrorKind::Transport(k),
                None => ErrorKind::Transport(resil_core::TransportErrorKind::Other),
            },
        }
    }
}

/// A client's configuration that cannot be used: the setting and what is wrong with it,
/// found when the client is built (never on a call). Every driver's `build` turns it into
/// its [`Error`], with no call to name.
#[derive(Debug)]
pub struct ConfigError {
    kind: ErrorKind,
    source: BoxError,
}

impl ConfigError {
    /// An [`InvalidConfig`](ErrorKind::InvalidConfig) error: `problem` names the setting.
    pub fn invalid(problem: impl Into<BoxError>) -> ConfigError {
        ConfigError {
            kind: ErrorKind::InvalidConfig,
            source: problem.into(),
        }
    }

    /// An [`InvalidUrl`](ErrorKind::InvalidUrl) error for the base URL.
    pub(crate) fn url(problem: UrlError) -> ConfigError {
        ConfigError {
            kind: ErrorKind::InvalidUrl,
            source: Box::new(problem),
        }
    }

    /// [`InvalidConfig`](ErrorKind::InvalidConfig), or
    /// [`InvalidUrl`](ErrorKind::InvalidUrl) for the base URL.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    /// The problem, naming the setting: `{}` and `{:#}` alike, as it has no cause beneath.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl<B> From<ConfigError> for Error<B> {
    fn from(e: ConfigError) -> Error<B> {
        Error::new(e.kind, "-", "-").with_source(e.source)
    }
}
