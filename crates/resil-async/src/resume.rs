//! A response body that goes on after it fails while it is read: what it keeps of its call,
//! and how it asks for the rest. resil-http's [`ResumePoint`] decides what a server's answer
//! is worth; [`Body`](crate::Body) reads.

use resil_core::{Instant, TransportErrorKind};
use resil_http::{BodyFailure, CallLabel, ResumePoint};

use crate::{BoxFuture, Error, Response};

/// What sends a call's request again for a response body that goes on after it failed
/// while it was read (see [`Body`](crate::Body)): the client, or resil-tokio's tower service
/// with the request's body. Whoever runs [`drive`](crate::drive) and hands the response out
/// gives it one with [`keep_call`].
pub trait Resend: Send + 'static {
    /// Whether the request's body can be sent again (not after a stream).
    fn replayable(&self) -> bool;

    /// Sends `request` (the call's last request, asking for the rest of the body) as a call
    /// that goes on after `failure`: started with
    /// [`ClientCore::resume_call`](resil_http::ClientCore::resume_call), run by
    /// [`drive`](crate::drive), its response given a [`keep_call`] in turn.
    fn resend(
        &self,
        request: http::request::Parts,
        failure: BodyFailure,
    ) -> BoxFuture<'static, Result<Response, Error>>;
}

/// What a body keeps of the call it answers. Its method and URL are the body's label.
struct Kept<X> {
    /// The rest of the request's head.
    head: http::request::Parts,
    point: ResumePoint,
    attempts: u32,
    deadline: Instant,
    resend: X,
}

/// A kept call, whatever sends it again.
pub(crate) trait KeptCall: Send {
    /// Where its body can be picked up.
    fn point(&self) -> &ResumePoint;

    /// The call that goes on for the rest of the body after it failed with `kind` at byte
    /// `at_byte`, and what it starts from; `None` when the request cannot be sent again.
    fn go_on(
        &self,
        label: &CallLabel,
        kind: TransportErrorKind,
        at_byte: u64,
    ) -> Option<(BodyFailure, BoxFuture<'static, Result<Response, Error>>)>;
}

impl<X: Resend> KeptCall for Kept<X> {
    fn point(&self) -> &ResumePoint {
        &self.point
    }

    fn go_on(
        &self,
        label: &CallLabel,
        kind: TransportErrorKind,
        at_byte: u64,
    ) -> Option<(BodyFailure, BoxFuture<'static, Result<Response, Error>>)> {
        if !self.resend.replayable() {
            return None;
        }
        let failure = BodyFailure {
            attempts: self.attempts,
            deadline: self.deadline,
            kind,
            at_byte,
            ranged: self.point.ranges() && at_byte > 0,
        };
        let mut request = self.head.clone();
        request.method = label.method().clone();
        request.uri = label.uri().clone();
        self.point.ask(&mut request.headers, at_byte);
        Some((failure, self.resend.resend(request, failure)))
    }
}

/// Keeps with `response`'s body the call that got it (its attempts and deadline so far, the
/// rest of its request's head after [`drive`](crate::drive) took the method and URL, and
/// what sends it again), so the body can go on if it fails.
pub fn keep_call<X: Resend>(
    response: &mut Response,
    attempts: u32,
    deadline: Instant,
    head: http::request::Parts,
    resend: X,
) {
    let point = ResumePoint::of_response(response);
    response.body_mut().keep_call(Box::new(Kept {
        head,
        point,
        attempts,
        deadline,
        resend,
    }));
}
