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
/// of the body first, so nothing is formatted unless an error is built). A body that fails
/// goes on as [`Body`](crate::Body) says, and may start again: what was gathered is then
/// dropped. A call that gave up going on is the error itself.
async fn read_all(mut r: Response) -> (Result<bytes::Bytes, Error>, Option<CallLabel>) {
    let body = r.body_mut();
    body.set_restartable(true);
    // One chunk (the common case) is handed out as it is; more are joined at the end.
    let mut chunks: Vec<bytes::Bytes> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let label = body.take_label();
                let error = match e.downcast::<resil_http::Error<()>>() {
                    Ok(gave_up) => gave_up.map_body(|()| crate::Body::empty()),
                    Err(e) => call_error(ErrorKind::Body, label.as_ref(), e),
                };
                return (Err(error), None);
            }
        };
        if body.restarted() {
            chunks.clear();
        }
        if let Ok(data) = frame.into_data() {
            if !data.is_empty() {
                chunks.push(data);
            }
        }
    }
    let label = body.take_label();
    let whole = match chunks.len() {
        0 => bytes::Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    };
    (Ok(whole), label)
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
