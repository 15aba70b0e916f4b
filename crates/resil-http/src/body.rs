//! [`RequestBody`]: what a request sends, in every driver: bytes are sent again on a retry;
//! a stream (`S`, the driver's own kind) is read once, so its request is never retried after
//! it started.

use std::fmt;
use std::string::String;
use std::vec::Vec;

use bytes::Bytes;

/// A request body. Drivers name it with their stream: `resil_blocking::RequestBody` reads
/// from an `io::Read`, `resil_tokio::RequestBody` and `resil_isahc::RequestBody` from an
/// `http_body::Body`.
pub enum RequestBody<S> {
    /// No body.
    Empty,
    /// Buffered bytes (cheap to clone for every attempt).
    Bytes(Bytes),
    /// A stream, read once.
    Stream(S),
}

impl<S> RequestBody<S> {
    /// Whether the body can be sent more than once.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream(_))
    }

    /// The body's length in bytes, if known before it is sent (not for a stream).
    pub fn known_len(&self) -> Option<u64> {
        match self {
            RequestBody::Empty => Some(0),
            RequestBody::Bytes(b) => u64::try_from(b.len()).ok(),
            RequestBody::Stream(_) => None,
        }
    }

    /// The body one attempt sends: a copy of the bytes (two reference counts), or the stream
    /// itself, moved out (it can only be sent once; the next attempt would send nothing, and
    /// the call never makes one).
    pub fn take_for_attempt(&mut self) -> RequestBody<S> {
        match self {
            RequestBody::Empty => RequestBody::Empty,
            RequestBody::Bytes(b) => RequestBody::Bytes(b.clone()),
            RequestBody::Stream(_) => std::mem::replace(self, RequestBody::Empty),
        }
    }
}

impl<S> RequestBody<S> {
    /// What a call keeps of its body once sent, to send it again if the response's body
    /// fails while it is read: the bytes (or nothing) when the body was `replayable`
    /// (what [`is_replayable`](Self::is_replayable) said before the first attempt took it);
    /// `None` after a stream, which went out once.
    pub fn kept<T>(self, replayable: bool) -> Option<RequestBody<T>> {
        match self {
            RequestBody::Bytes(b) if replayable => Some(RequestBody::Bytes(b)),
            RequestBody::Empty if replayable => Some(RequestBody::Empty),
            _ => None,
        }
    }

    /// A copy of a kept body for one more call: its bytes (two reference counts).
    pub fn again<T>(&self) -> RequestBody<T> {
        match self {
            RequestBody::Bytes(b) => RequestBody::Bytes(b.clone()),
            _ => RequestBody::Empty,
        }
    }
}

impl<S> fmt::Debug for RequestBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            RequestBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl<S> From<Bytes> for RequestBody<S> {
    fn from(b: Bytes) -> Self {
        RequestBody::Bytes(b)
    }
}

impl<S> From<Vec<u8>> for RequestBody<S> {
    fn from(b: Vec<u8>) -> Self {
        RequestBody::Bytes(b.into())
    }
}

impl<S> From<String> for RequestBody<S> {
    fn from(s: String) -> Self {
        RequestBody::Bytes(s.into())
    }
}

impl<S> From<&'static str> for RequestBody<S> {
    fn from(s: &'static str) -> Self {
        RequestBody::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl<S> From<()> for RequestBody<S> {
    fn from((): ()) -> Self {
        RequestBody::Empty
    }
}
