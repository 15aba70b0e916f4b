//! Reading responses: bytes, text, JSON, status checks.

use std::future::Future;

use http_body_util::BodyExt;

use resil_http::CallLabel;

use crate::{BoxError, Error, ErrorKind, Response};

/// Conveniences on [`Response`] (`http::Response<Body>`).
pub trait ResponseExt: Sized {
    /// The response itself if its status is below 400, otherwise an error carrying it.
    fn error_for_status(self) -> Result<Self, Error>;
    /// The whole body, up to the client's body limit.
    fn bytes(self) -> impl Future<Output = Result<bytes::Bytes, Error>> + Send;
    /// The whole body as UTF-8 text; a body that is not UTF-8 is an `ErrorKind::Decode` error.
    fn text(self) -> impl Future<Output = Result<String, Error>> + Send;
    /// The whole body parsed as JSON; a body that does not parse into `T` is an
    /// `ErrorKind::Decode` error.
    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send;
}

/// The whole body, and the call's label for an error raised after it was read (taken out
/// of the body first, so nothing is formatted unless an error is built).
async fn read_all(mut r: Response) -> (Result<bytes::Bytes, Error>, Option<CallLabel>) {
    let label = r.body_mut().take_label();
    match r.into_body().collect().await {
        Ok(collected) => (Ok(collected.to_bytes()), label),
        Err(e) => (Err(call_error(ErrorKind::Body, label.as_ref(), e)), None),
    }
}

fn call_error(kind: ErrorKind, label: Option<&CallLabel>, source: impl Into<BoxError>) -> Error {
    Error::for_call(kind, label).with_source(source)
}

impl ResponseExt for Response {
    fn error_for_status(self) -> Result<Self, Error> {
        Error::for_status(self)
    }

    async fn bytes(self) -> Result<bytes::Bytes, Error> {
        read_all(self).await.0
    }

    async fn text(self) -> Result<String, Error> {
        let (bytes, label) = read_all(self).await;
        // `Vec::from` reuses the buffer when the bytes are not shared.
        String::from_utf8(Vec::from(bytes?))
            .map_err(|e| call_error(ErrorKind::Decode, label.as_ref(), e))
    }

    #[cfg(feature = "json")]
    async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let (bytes, label) = read_all(self).await;
        serde_json::from_slice(&bytes?)
            .map_err(|e| call_error(ErrorKind::Decode, label.as_ref(), e))
    }
}
