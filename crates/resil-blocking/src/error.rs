//! The one error type of resil-blocking.

use std::fmt;
use std::time::Duration;

use resil_core::{Cause, GiveUp, GiveUpReason};

use crate::Response;

/// What went wrong, in categories a caller can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The transport failed and no retry followed (connection refused, reset, DNS, TLS, …).
    Transport(resil_core::ErrorKind),
    /// An attempt timed out and no retry followed.
    Timeout,
    /// The final response had a failure status (after retries, or from
    /// [`ResponseExt::error_for_status`](crate::ResponseExt::error_for_status)).
    Status(u16),
    /// The circuit breaker is open: no request was sent.
    CircuitOpen,
    /// The retry budget refused another retry.
    BudgetExhausted,
    /// Another attempt would not fit in the total deadline.
    DeadlineExceeded,
    /// The server's `Retry-After` asked for longer than the policy allows.
    RetryAfterTooLong(Duration),
    /// The request may have been processed and is not idempotent, so it was not replayed.
    NotReplayed,
    /// The request body was a stream and cannot be sent again.
    BodyNotReplayable,
    /// Reading the response body failed, it was cut short, or it exceeded the size limit.
    Body,
    /// The client or request configuration is invalid.
    InvalidConfig,
    /// The URL is invalid, or relative without a base URL.
    InvalidUrl,
    /// Authentication headers could not be obtained or refreshed.
    Auth,
}

/// An error with everything known about the call: method, URL (credentials redacted),
/// attempts, the last status, and the last response when there was one.
pub struct Error {
    kind: ErrorKind,
    method: String,
    url: String,
    attempts: u32,
    give_up: Option<GiveUp>,
    response: Option<Box<Response>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, method: &str, url: &str) -> Error {
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

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_response(mut self, response: Option<Response>) -> Error {
        self.response = response.map(Box::new);
        self
    }

    /// The error for a machine that gave up.
    pub(crate) fn gave_up(give_up: GiveUp, method: &str, url: &str) -> Error {
        let kind = match give_up.reason {
            GiveUpReason::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            GiveUpReason::RetryAfterTooLong { requested } => {
                ErrorKind::RetryAfterTooLong(requested)
            }
            GiveUpReason::NonIdempotent => ErrorKind::NotReplayed,
            GiveUpReason::BodyNotReplayable => ErrorKind::BodyNotReplayable,
            GiveUpReason::BudgetExhausted => ErrorKind::BudgetExhausted,
            GiveUpReason::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            _ => match give_up.last {
                Some(Cause::Status(s)) => ErrorKind::Status(s),
                Some(Cause::Error(resil_core::ErrorKind::Timeout)) => ErrorKind::Timeout,
                Some(Cause::Error(k)) => ErrorKind::Transport(k),
                None => ErrorKind::Transport(resil_core::ErrorKind::Other),
            },
        };
        let mut e = Error::new(kind, method, url);
        e.attempts = give_up.attempts;
        e.give_up = Some(give_up);
        e
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
        self.give_up.as_ref()
    }

    /// The status of the last response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.give_up.and_then(|g| g.last) {
            Some(Cause::Status(s)) => Some(s),
            _ => self.response.as_ref().map(|r| r.status().as_u16()),
        }
    }

    /// The last response, if there was one (its body is still unread).
    pub fn response(&self) -> Option<&Response> {
        self.response.as_deref()
    }

    /// Takes the last response out of the error.
    pub fn into_response(self) -> Option<Response> {
        self.response.map(|r| *r)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.method, self.url)?;
        if let Some(g) = &self.give_up {
            return write!(f, "{g}");
        }
        match self.kind {
            ErrorKind::Status(s) => write!(f, "server answered with status {s}"),
            ErrorKind::Body => f.write_str("reading the response body failed"),
            ErrorKind::InvalidConfig => f.write_str("invalid configuration"),
            ErrorKind::InvalidUrl => f.write_str("invalid URL"),
            ErrorKind::Auth => f.write_str("could not obtain credentials"),
            ErrorKind::Transport(k) => write!(f, "{k}"),
            other => write!(f, "{other:?}"),
        }?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
