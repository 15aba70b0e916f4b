//! Reading responses: bytes, text, JSON, status checks.

use std::io::Read;

use crate::Response;
use crate::error::{Error, ErrorKind};

/// Conveniences on [`Response`] (`http::Response<Body>`).
pub trait ResponseExt: Sized {
    /// The response itself if its status is below 400, otherwise an error carrying it.
    fn error_for_status(self) -> Result<Self, Error>;
    /// The whole body, up to the client's body limit. A body cut short fails.
    fn bytes(self) -> Result<Vec<u8>, Error>;
    /// The whole body as UTF-8 text.
    fn text(self) -> Result<String, Error>;
    /// The whole body parsed as JSON.
    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error>;
}

fn context(r: &Response) -> (String, String) {
    r.body()
        .call
        .as_ref()
        .map(|(method, uri)| (method.to_string(), resil_core::redact_url(uri)))
        .unwrap_or_else(|| ("-".to_owned(), "-".to_owned()))
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

    fn bytes(mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        match self.body_mut().read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => {
                let (method, url) = context(&self);
                Err(Error::new(ErrorKind::Body, &method, &url).with_source(e))
            }
        }
    }

    fn text(self) -> Result<String, Error> {
        let (method, url) = context(&self);
        let bytes = self.bytes()?;
        String::from_utf8(bytes)
            .map_err(|e| Error::new(ErrorKind::Body, &method, &url).with_source(e))
    }

    #[cfg(feature = "json")]
    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let (method, url) = context(&self);
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Body, &method, &url).with_source(e))
    }
}
