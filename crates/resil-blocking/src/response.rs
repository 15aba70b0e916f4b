//! Reading responses: bytes, text, JSON, status checks.

use crate::Response;
use crate::{Error, ErrorKind};

/// Conveniences on [`Response`] (`http::Response<Body>`).
pub trait ResponseExt: Sized {
    /// The response itself if its status is below 400, otherwise an error carrying it.
    fn error_for_status(self) -> Result<Self, Error>;
    /// The whole body, up to the client's body limit. A body cut short fails.
    fn bytes(self) -> Result<Vec<u8>, Error>;
    /// The whole body as UTF-8 text; a body that is not UTF-8 is an `ErrorKind::Decode` error.
    fn text(self) -> Result<String, Error>;
    /// The whole body parsed as JSON; a body that does not parse into `T` is an
    /// `ErrorKind::Decode` error.
    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error>;
}

/// The whole body, going on after a failure if the call can (see [`Body`](crate::Body));
/// a read error names the call (built only then), and a call that gave up going on is the
/// error itself.
fn read_all(r: &mut Response) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    match r.body_mut().read_whole(&mut out) {
        Ok(()) => Ok(out),
        Err(e) => match r.body_mut().gave_up.take() {
            Some(gave_up) => Err(*gave_up),
            None => Err(call_error(r, ErrorKind::Body, e)),
        },
    }
}

/// An error of `kind` on `r`'s call: `Body` for a read that failed, `Decode` for a body that
/// arrived whole but is not UTF-8, or not the JSON asked for.
fn call_error(
    r: &Response,
    kind: ErrorKind,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::for_call(kind, r.body().call.as_ref().map(|c| &c.label)).with_source(source)
}

impl ResponseExt for Response {
    fn error_for_status(self) -> Result<Self, Error> {
        Error::for_status(self)
    }

    fn bytes(mut self) -> Result<Vec<u8>, Error> {
        read_all(&mut self)
    }

    fn text(mut self) -> Result<String, Error> {
        let bytes = read_all(&mut self)?;
        String::from_utf8(bytes).map_err(|e| call_error(&self, ErrorKind::Decode, e))
    }

    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(mut self) -> Result<T, Error> {
        let bytes = read_all(&mut self)?;
        serde_json::from_slice(&bytes).map_err(|e| call_error(&self, ErrorKind::Decode, e))
    }
}
