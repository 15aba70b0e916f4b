//! [`Body`]: a response body every async driver hands out, with a size limit, the attempt's
//! deadline and read timeout over it, and the reads the call asks for (a prefix, a drain).

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use resil_core::TransportErrorKind;
use resil_http::{BodyFailure, Resumed, TransportError};

use crate::resume::KeptCall;
use crate::{BoxError, BoxFuture, Error, Response};

/// A streaming response body with a size limit: past the limit it fails instead of filling
/// memory. Implements `http_body::Body`; [`ResponseExt`](crate::ResponseExt) reads it whole.
///
/// A body the client or the tower layer handed out knows its call: when it fails while it
/// is read (cut short, reset, stalled past its attempt's deadline or the read timeout), the
/// call goes on for the rest of it, within the same attempts, deadline, breaker and budget,
/// if the policy would have retried the request (never one that may have been processed and
/// is not idempotent, nor one whose body was a stream). The next request asks for the rest
/// alone (`Range` with `If-Range`) when the response allowed it (`Accept-Ranges: bytes` and a
/// strong `ETag` or a `Last-Modified`), and only a `206` of the same version that starts where
/// the body stopped continues it; otherwise it asks for the whole body, which replaces it
/// only if none of it was read yet or the body is [restartable](Body::set_restartable)
/// ([`ResponseExt`](crate::ResponseExt)'s readers of the whole body always are). Bytes are never duplicated or spliced.
pub struct Body {
    /// One allocation for the source and all that goes with it, so a response moved through
    /// the call's futures carries a pointer, and naming the call allocates nothing.
    shared: Box<Shared<Source>>,
}

/// What every body source is seen as: `Unpin`, so it is polled in place without a box of
/// its own.
type Source = dyn HttpBody<Data = Bytes, Error = BoxError> + Send + Unpin;

struct Shared<S: ?Sized> {
    limit: u64,
    read: u64,
    /// The call this body answers, for error messages.
    label: Option<resil_http::CallLabel>,
    /// Ends the body at its attempt's deadline, for transports that do not enforce it.
    deadline: Option<BodyDeadline>,
    /// The rest of the call, to go on with if the body fails.
    call: Option<Box<dyn KeptCall>>,
    /// The call going on for the rest of the body.
    going: Option<Going>,
    /// The body may start again from its first byte: its reader drops what it holds.
    restartable: bool,
    /// The body started again from its first byte since the caller last looked.
    restarted: bool,
    source: S,
}

/// A call going on for the rest of a body that failed.
struct Going {
    failure: BodyFailure,
    /// What the body failed with: the error, if the call gives up before sending anything.
    cause: BoxError,
    response: BoxFuture<'static, Result<Response, Error>>,
}

/// An attempt's deadline, and the client's read timeout, over its response body. The timer
/// is made only when the body has to wait for data, so a body that arrives with its head
/// costs no timer.
struct BodyDeadline {
    at: resil_core::Instant,
    /// The longest wait for the next frame, if the client has a read timeout.
    gap: Option<Duration>,
    now: fn() -> resil_core::Instant,
    sleep: fn(resil_core::Instant) -> BoxFuture<'static, ()>,
    /// The running timer, and whether it is the read timeout's rather than the deadline's.
    timer: Option<(BoxFuture<'static, ()>, bool)>,
}

impl BodyDeadline {
    /// The error that ends the body if the wait for data is over.
    fn passed(&mut self, cx: &mut Context<'_>) -> Option<BoxError> {
        let (at, gap, now, sleep) = (self.at, self.gap, self.now, self.sleep);
        let (timer, by_gap) = self.timer.get_or_insert_with(|| {
            match resil_http::driver::read_deadline(gap, now, at) {
                Some(stalled) => (sleep(stalled), true),
                None => (sleep(at), false),
            }
        });
        if timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        Some(if *by_gap {
            Box::new(ReadTimedOut)
        } else {
            Box::new(BodyDeadlinePassed)
        })
    }

    /// Data came: the read timeout starts again at the next wait.
    fn arrived(&mut self) {
        if self.gap.is_some() {
            self.timer = None;
        }
    }
}

/// The attempt's deadline passed while its response body was still arriving.
#[derive(Debug)]
pub struct BodyDeadlinePassed;

impl fmt::Display for BodyDeadlinePassed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the attempt's deadline passed while the body was still arriving")
    }
}

impl StdError for BodyDeadlinePassed {}

/// Nothing arrived within the client's read timeout (see `ClientBuilder::read_timeout`).
#[derive(Debug)]
pub struct ReadTimedOut;

impl fmt::Display for ReadTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nothing arrived within the read timeout")
    }
}

impl StdError for ReadTimedOut {}

/// A head that stalls past the read timeout ends its attempt as a timeout.
impl From<ReadTimedOut> for TransportError {
    fn from(stalled: ReadTimedOut) -> TransportError {
        TransportError::new(TransportErrorKind::Timeout, stalled)
    }
}

impl Body {
    /// A body from any `http_body::Body`, failing after `limit` bytes. A source that is
    /// `Unpin` (hyper's `Incoming`, most streams) saves an allocation through
    /// [`from_unpin`](Self::from_unpin).
    pub fn new<B>(body: B, limit: u64) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body::from_unpin(Box::pin(body), limit)
    }

    /// A body from an `Unpin` `http_body::Body`, failing after `limit` bytes.
    pub fn from_unpin<B>(body: B, limit: u64) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        Body::from_source(body.map_err(Into::into), limit)
    }

    fn from_source<S>(source: S, limit: u64) -> Body
    where
        S: HttpBody<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
    {
        Body {
            shared: Box::new(Shared {
                limit,
                read: 0,
                label: None,
                deadline: None,
                call: None,
                going: None,
                restartable: false,
                restarted: false,
                source,
            }),
        }
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::from_unpin(Empty::<Bytes>::new(), 0)
    }

    /// Names the call this body answers (`method url`, credentials redacted when shown) in
    /// its read errors.
    pub fn name_call(&mut self, method: http::Method, uri: http::Uri) {
        self.shared.label = Some(resil_http::CallLabel::new(method, uri));
    }

    /// The call's name, taken out (for an error raised once the body is gone).
    pub(crate) fn take_label(&mut self) -> Option<resil_http::CallLabel> {
        self.shared.label.take()
    }

    /// Keeps the call this body answers, to go on with if the body fails.
    pub(crate) fn keep_call(&mut self, call: Box<dyn KeptCall>) {
        self.shared.call = Some(call);
    }

    /// Lets the body start again from its first byte when it fails and the call that goes
    /// on gets the whole body back (the response allowed no range, or the server ignored
    /// it): for a reader that holds what it read and can drop it, as
    /// [`ResponseExt`](crate::ResponseExt)'s readers of the whole body do. After each frame,
    /// [`restarted`](Self::restarted) says whether it is the body's first. Off by default:
    /// a body that fails after some of it was read goes on only where it stopped.
    pub fn set_restartable(&mut self, restartable: bool) {
        self.shared.restartable = restartable;
    }

    /// Whether the body started again from its first byte since this was last asked: the
    /// frame just read is its start, and whatever was read before must be dropped.
    pub fn restarted(&mut self) -> bool {
        std::mem::take(&mut self.shared.restarted)
    }

    /// Goes on after the body failed with `cause`: starts the call for the rest, or hands
    /// the error back when there is none to go on with.
    fn go_on(&mut self, cause: BoxError) -> Result<(), BoxError> {
        let this = &mut *self.shared;
        let (Some(call), Some(label)) = (this.call.as_deref(), this.label.as_ref()) else {
            return Err(cause);
        };
        if this.read > this.limit || cause.is::<BodyTooLarge>() {
            return Err(cause);
        }
        if !call.point().may_go_on(this.read, this.restartable) {
            return Err(Box::new(resil_http::CannotResume::new(this.read, cause)));
        }
        let kind = if cause.is::<ReadTimedOut>() || cause.is::<BodyDeadlinePassed>() {
            TransportErrorKind::Timeout
        } else {
            resil_http::driver::body_failure_kind(&*cause)
        };
        let Some((failure, response)) = call.go_on(label, kind, this.read) else {
            return Err(cause);
        };
        this.going = Some(Going {
            failure,
            cause,
            response,
        });
        Ok(())
    }

    /// Waits for the call going on: its response continues the body or starts it again
    /// (its source, deadline and call replace this body's), or the read fails, with the
    /// call's error when it gave up (as a `resil_http::Error<()>`), or with why the response
    /// cannot continue the body.
    fn poll_going(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let Some(going) = self.shared.going.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let Poll::Ready(result) = going.response.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let Some(Going { failure, cause, .. }) = self.shared.going.take() else {
            return Poll::Ready(Ok(()));
        };
        let response = match result {
            Ok(response) => response,
            Err(gave_up) => {
                let gave_up = gave_up.after_body_failure(failure.attempts, cause);
                return Poll::Ready(Err(Box::new(gave_up.map_body(drop))));
            }
        };
        let this = &mut *self.shared;
        let Some(call) = this.call.as_deref() else {
            return Poll::Ready(Err(cause));
        };
        let resumed = call.point().continues(
            this.read,
            this.restartable,
            response.status(),
            response.headers(),
        );
        let restart = match resumed {
            Ok(resumed) => resumed == Resumed::Restart,
            Err(e) => return Poll::Ready(Err(Box::new(e))),
        };
        let mut next = response.into_body();
        std::mem::swap(&mut self.shared, &mut next.shared);
        let (old, new) = (&mut *next.shared, &mut *self.shared);
        new.limit = old.limit;
        new.restartable = old.restartable;
        if restart {
            new.restarted = true;
        } else {
            new.read = old.read;
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the body at `at` (with [`BodyDeadlinePassed`]) or `gap` without data (with
    /// [`ReadTimedOut`]), on the clock `now` and the timer `sleep` (see
    /// [`with_read_timeout`](Self::with_read_timeout)).
    pub(crate) fn set_deadline_on(
        &mut self,
        at: resil_core::Instant,
        gap: Option<Duration>,
        now: fn() -> resil_core::Instant,
        sleep: fn(resil_core::Instant) -> BoxFuture<'static, ()>,
    ) {
        self.shared.deadline = Some(BodyDeadline {
            at,
            gap,
            now,
            sleep,
            timer: None,
        });
    }

    /// Reads frames until at least `max` bytes (or the end) and puts them back in front, so
    /// the body still reads whole; returns what was read (trailers read early are dropped).
    /// A stall past the deadline or read timeout is a [`Timeout`](TransportErrorKind::Timeout),
    /// any other failure as [`body_failure_kind`](resil_http::driver::body_failure_kind) says:
    /// the head came, so the request reached the server either way.
    pub async fn read_prefix(&mut self, max: usize) -> Result<Bytes, TransportError> {
        let mut prefix = bytes::BytesMut::new();
        while prefix.len() < max {
            // Through this body's own limit, deadline and read timeout.
            match self.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        prefix.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) if e.is::<ReadTimedOut>() || e.is::<BodyDeadlinePassed>() => {
                    return Err(TransportError::new(TransportErrorKind::Timeout, e));
                }
                Some(Err(e)) => {
                    let kind = resil_http::driver::body_failure_kind(&*e);
                    return Err(TransportError::new(kind, e));
                }
                None => break,
            }
        }
        let prefix = prefix.freeze();
        let mut rest = std::mem::replace(self, Body::empty());
        let shared = &mut rest.shared;
        let (limit, read, label, deadline, call) = (
            shared.limit,
            // The prefix is counted again when it is read out of the new body.
            shared.read.saturating_sub(prefix.len() as u64),
            shared.label.take(),
            shared.deadline.take(),
            shared.call.take(),
        );
        *self = Body {
            shared: Box::new(Shared {
                limit,
                read,
                label,
                deadline,
                call,
                going: None,
                restartable: false,
                restarted: false,
                source: Prefixed {
                    head: Some(prefix.clone()),
                    rest,
                },
            }),
        };
        Ok(prefix)
    }

    /// Reads and discards up to `max` bytes so the connection can be reused; stops at an
    /// error, the limit or the deadline.
    pub async fn drain(&mut self, max: u64) {
        let mut seen = 0u64;
        while seen < max {
            match self.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len() as u64),
                _ => return,
            }
        }
    }
}

/// Bytes already read, then the rest of the body (its source: the limit and deadline are
/// the new body's).
struct Prefixed {
    head: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(head) = self.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut self.rest.shared.source).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.as_ref().is_none_or(Bytes::is_empty) && self.rest.shared.source.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.shared.source.size_hint();
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        hint.set_lower(hint.lower() + head);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + head);
        }
        hint
    }
}

/// The body exceeded its size limit.
#[derive(Debug)]
pub struct BodyTooLarge(pub u64);

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response body exceeds the {}-byte limit", self.0)
    }
}

impl StdError for BodyTooLarge {}

impl resil_http::CallBody for Body {
    fn set_limit(&mut self, limit: u64) {
        self.shared.limit = limit;
    }
    fn label(&self) -> Option<&resil_http::CallLabel> {
        self.shared.label.as_ref()
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.shared.going.is_some() {
                match self.poll_going(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let this = &mut *self.shared;
            let failed = match Pin::new(&mut this.source).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.read += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if this.read > this.limit {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(this.limit)))));
                    }
                    if let Some(deadline) = &mut this.deadline {
                        deadline.arrived();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Pending => match this.deadline.as_mut().and_then(|d| d.passed(cx)) {
                    Some(ended) => ended,
                    None => return Poll::Pending,
                },
                // hyper's "error reading a body from connection" has an `UnexpectedEof`
                // beneath it when the body was cut short; say so in the words every driver
                // uses.
                Poll::Ready(Some(Err(e))) => resil_http::IncompleteBody::mark(e),
                done => return done,
            };
            if this.call.is_none() {
                return Poll::Ready(Some(Err(failed)));
            }
            if let Err(e) = self.go_on(failed) {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.going.is_none() && self.shared.source.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.shared.source.size_hint()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("limit", &self.shared.limit)
            .field("read", &self.shared.read)
            .finish_non_exhaustive()
    }
}
