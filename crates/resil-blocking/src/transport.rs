//! The driver's contract with its transport: one HTTP exchange, no retries, no policy
//! ([`BlockingTransport`]), and the bodies it carries. The default transport, ureq with
//! resil's speed work, is in the `ureq` module.

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A request body: bytes are sent again on a retry; a reader is read once, so a request with
/// one is never retried once it was sent.
pub type RequestBody = resil_http::RequestBody<Box<dyn Read + Send>>;

/// A response body: a stream with a size limit. Reading past the limit fails instead of
/// filling memory; a body cut short by the server fails instead of looking complete.
///
/// A body the client returned knows its call: when it fails while it is read (cut short,
/// reset, stalled past its attempt's deadline), the call goes on for the rest of it, within
/// the same attempts, deadline and budget, if the policy would have retried the request
/// (never a request that may have been processed and is not idempotent). The next request
/// asks for the rest alone (`Range` with `If-Range`) when the response allowed it
/// (`Accept-Ranges: bytes` and a strong `ETag` or a `Last-Modified`), and only a `206` of the
/// same version, starting where the body stopped, continues it; otherwise it asks for the
/// whole body, which replaces it only if none of it was read yet or the body is
/// [restartable](Body::set_restartable) ([`ResponseExt`](crate::ResponseExt)'s readers of the
/// whole body always are). Bytes are never duplicated or spliced.
pub struct Body {
    reader: Box<dyn Read + Send>,
    limit: u64,
    read: u64,
    /// The call this body answers, for error messages and to go on; kept here rather than in
    /// the response's extensions, which would cost an allocation and a map per call.
    pub(crate) call: Option<Box<crate::client::CallContext>>,
    /// The body may start again from its first byte: its reader drops what it holds.
    restartable: bool,
    /// A read that starts the body again returns nothing (for `read_whole`, which empties
    /// its buffer and reads on) instead of the new body's first bytes.
    pause_at_restart: bool,
    /// The body started again from its first byte since `restarted` last said so.
    restarted: bool,
    /// How the call that went on for the rest of the body gave up, for `read_whole`.
    pub(crate) gave_up: Option<Box<crate::Error>>,
}

impl Body {
    /// A body read from `reader`, failing after `limit` bytes.
    pub fn new(reader: impl Read + Send + 'static, limit: u64) -> Body {
        Body {
            reader: Box::new(reader),
            limit,
            read: 0,
            call: None,
            restartable: false,
            pause_at_restart: false,
            restarted: false,
            gave_up: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::new(io::empty(), 0)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reads up to `max` bytes and puts them back in front, so the body still reads whole;
    /// returns them.
    pub(crate) fn read_prefix(&mut self, max: usize) -> io::Result<Bytes> {
        let mut prefix = Vec::new();
        (&mut *self).take(max as u64).read_to_end(&mut prefix)?;
        let prefix = Bytes::from(prefix);
        let rest = std::mem::replace(&mut self.reader, Box::new(io::empty()));
        self.reader = Box::new(io::Cursor::new(prefix.clone()).chain(rest));
        // The limit counts the prefix again when it is read again.
        self.read = 0;
        Ok(prefix)
    }

    /// Reads and discards up to `max` bytes so the connection can be reused; stops quietly at
    /// an error or at the limit.
    pub(crate) fn drain(&mut self, max: u64) {
        // Small on purpose: error bodies are usually short, and `io::copy` would zero 8 KiB
        // on every call.
        let mut scratch = [0u8; 512];
        let mut left = max;
        while left > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.reader.read(&mut scratch[..want]) {
                Ok(n) if n > 0 => left = left.saturating_sub(n as u64),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => return,
            }
        }
    }
}

impl resil_http::CallBody for Body {
    fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }
    fn label(&self) -> Option<&resil_http::CallLabel> {
        self.call.as_ref().map(|c| &c.label)
    }
}

impl Body {
    /// Lets the body start again from its first byte when it fails and the call that goes
    /// on gets the whole body back (the response allowed no range, or the server ignored
    /// it): for a reader that holds what it read and can drop it, such as one that buffers
    /// before it writes anywhere. After each read, [`restarted`](Self::restarted) says
    /// whether the bytes just read are the body's first. Off by default: a body that fails
    /// after some of it was read goes on only where it stopped.
    pub fn set_restartable(&mut self, restartable: bool) {
        self.restartable = restartable;
    }

    /// Whether the body may start again from its first byte (see
    /// [`set_restartable`](Self::set_restartable)).
    pub fn is_restartable(&self) -> bool {
        self.restartable
    }

    /// Whether the body started again from its first byte since this was last asked: the
    /// bytes of the read just made are its start, and whatever was read before must be
    /// dropped. Only a [restartable](Self::set_restartable) body, or one that failed before
    /// any of it was read, starts again.
    pub fn restarted(&mut self) -> bool {
        std::mem::take(&mut self.restarted)
    }

    /// Reads the whole body into `out`, going on after a failure as the type's docs say;
    /// `out` is emptied when the body starts again from its first byte.
    pub(crate) fn read_whole(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.restartable = true;
        self.pause_at_restart = true;
        loop {
            self.read_to_end(out)?;
            if !self.restarted() {
                return Ok(());
            }
            out.clear();
        }
    }

    /// One read, through the limit.
    fn read_limited(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read > self.limit {
            return Err(too_large(self.limit));
        }
        // Ask for one byte more than the limit allows, to tell "exactly at the limit" from
        // "over it".
        let room =
            usize::try_from((self.limit - self.read).saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.reader.read(&mut buf[..want]).map_err(cut_short)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(n)
    }

    /// Goes on after `error` ended the body at byte `self.read`: a new request for the rest
    /// (or the whole, when nothing was read), answered by the call; `Ok(true)` when the body
    /// started again from its first byte. The error stays the caller's when there is no call
    /// to go on with, or it gives up.
    fn go_on(&mut self, error: io::Error) -> io::Result<bool> {
        let Some(context) = self.call.as_deref() else {
            return Err(error);
        };
        let kind = resil_http::driver::body_failure_kind(&error);
        // Past the limit, or a request body that went out once: nothing to go on with.
        if self.read > self.limit || context.body.is_none() {
            return Err(error);
        }
        if !context.point.may_go_on(self.read, self.restartable) {
            let cannot = resil_http::CannotResume::new(self.read, error);
            return Err(io::Error::new(io::ErrorKind::InvalidData, cannot));
        }
        let failure = resil_http::BodyFailure {
            attempts: context.attempts,
            deadline: context.deadline,
            kind,
            at_byte: self.read,
            ranged: context.point.ranges() && self.read > 0,
        };
        let response = match context.go_on(&failure) {
            Ok(response) => response,
            Err(gave_up) => {
                let kind = error.kind();
                let gave_up = gave_up.after_body_failure(failure.attempts, error);
                let said = format!("{gave_up:#}");
                self.gave_up = Some(Box::new(gave_up));
                return Err(io::Error::new(kind, said));
            }
        };
        let resumed = context.point.continues(
            self.read,
            self.restartable,
            response.status(),
            response.headers(),
        );
        let restart = match resumed {
            Ok(resumed) => resumed == resil_http::Resumed::Restart,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let next = response.into_body();
        self.reader = next.reader;
        self.call = next.call;
        if restart {
            self.read = 0;
        }
        Ok(restart)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.read_limited(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) if self.call.is_some() && self.read <= self.limit => {
                    if self.go_on(e)? {
                        self.restarted = true;
                        if self.pause_at_restart {
                            // `read_whole` empties its buffer and reads on.
                            return Ok(0);
                        }
                    }
                }
                done => return done,
            }
        }
    }
}

/// A reader that ends early reports `UnexpectedEof` (ureq: "Peer disconnected"); the error
/// then says so in the words every driver uses.
fn cut_short(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            resil_http::IncompleteBody::new(e),
        )
    } else {
        e
    }
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("response body exceeds the {limit}-byte limit"),
    )
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("limit", &self.limit)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

pub use resil_http::TransportError;

/// One HTTP exchange without retries: bring your own client by implementing this.
///
/// `timeout` is what is left of the attempt: the transport must give up (with
/// [`TransportErrorKind::Timeout`](resil_core::TransportErrorKind::Timeout), or [`ConnectTimeout`](resil_core::TransportErrorKind::ConnectTimeout) while connecting) once it has
/// passed. Error statuses must come back as responses, not errors, so `Retry-After` is not lost.
pub trait BlockingTransport: Send + Sync {
    /// Sends `request` and returns the response head with its body still to be read.
    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError>;

    /// Refuses a request this transport cannot send as it stands, such as a header value its
    /// HTTP library will not write. The client asks before every [`send`](Self::send), once
    /// the attempt's headers are complete (credentials and request id included); an error
    /// ends the call, unsent and not retried, as an
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) error whose cause it is. Default:
    /// every request can be sent.
    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = request;
        Ok(())
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for Arc<T> {
    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError> {
        (**self).send(request, timeout)
    }

    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        (**self).check_request(request)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::Body;

    #[test]
    fn unlimited_body_reads_everything() {
        let mut body = Body::new(&b"all of it"[..], u64::MAX);
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert_eq!(out, "all of it");
    }

    #[test]
    fn body_at_exactly_the_limit_is_fine_and_one_more_byte_fails() {
        let mut out = Vec::new();
        Body::new(&b"1234"[..], 4).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"1234");
        let err = Body::new(&b"12345"[..], 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("4-byte limit"), "{err}");
    }
}
