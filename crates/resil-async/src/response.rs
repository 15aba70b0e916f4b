//! Reading responses: bytes, text, JSON, status checks.

use std::future::Future;

use http_body_util::BodyExt;

use crate::{Error, ErrorKind, Response};

fn context(r: &Response) -> (String, String) {
    r.body()
        .call
        .as_ref()
        .map(|call| (call.0.to_string(), resil_core::redact_url(&call.1)))
        .unwrap_or_else(|| ("-".to_owned(), "-".to_owned()))
}

/// Conveniences on [`Response`] (`http::Response<Body>`).
pub trait ResponseExt: Sized {
    /// The response itself if its status is below 400, otherwise an error carrying it.
    fn error_for_status(self) -> Result<Self, Error>;
    /// The whole body, up to the client's body limit.
    fn bytes(self) -> impl Future<Output = Result<bytes::Bytes, Error>> + Send;
    /// The whole body as UTF-8 text.
    fn text(self) -> impl Future<Output = Result<String, Error>> + Send;
    /// The whole body parsed as JSON.
    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(self) -> impl Future<Output = Result<T, Error>> + Send;
}

impl ResponseExt for Response {
    fn error_for_status(self) -> Result<Self, Error> {
        let status = self.status().as_u16();
        if status < 400 {
            return Ok(self);
        }
        let (method, url) = context(&self);
        Err(Error::new(ErrorKind::Status(status), &method, &url).with_response(Some(self)))
    }

    async fn bytes(self) -> Result<bytes::Bytes, Error> {
        let (method, url) = context(&self);
        match self.into_body().collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => Err(Error::new(ErrorKind::Body, &method, &url).with_source(e)),
        }
    }

    async fn text(self) -> Result<String, Error> {
        let (method, url) = context(&self);
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::new(ErrorKind::Body, &method, &url).with_source(e))
    }

    #[cfg(feature = "json")]
    async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let (method, url) = context(&self);
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Body, &method, &url).with_source(e))
    }
}
