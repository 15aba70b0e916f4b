//! Building one request: URL, query, headers, body, per-request overrides.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use resil_core::RetryPolicy;
use resil_http::RequestDraft;

use crate::Error;
use crate::transport::RequestBody;
use crate::{Client, Response};

/// A request being built; nothing is sent until [`send`](RequestBuilder::send). Mistakes
/// (a bad header, an invalid URL) are reported by `send`, with the method and URL. All but
/// the body is resil-core's [`RequestDraft`], shared with the async clients.
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    draft: RequestDraft<crate::Body>,
    body: RequestBody,
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, url: &str) -> RequestBuilder {
        let draft = RequestDraft::new(client.core(), method, url);
        RequestBuilder {
            client,
            draft,
            body: RequestBody::Empty,
        }
    }

    /// Adds a header (appended: a name may repeat). The transport frames the body itself;
    /// a `Content-Length` that is not the body's length makes `send` fail before anything is
    /// sent.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.draft.header(name, value);
        self
    }

    /// Adds query parameters, percent-encoded.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.draft.query(pairs);
        self
    }

    /// A body of bytes; sent again on every retry.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = RequestBody::Bytes(body.into());
        self
    }

    /// A streamed body, read once: the request is never retried after it was sent.
    pub fn body_reader(mut self, reader: impl Read + Send + 'static) -> Self {
        self.body = RequestBody::Reader(Box::new(reader));
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.draft.content_type("application/x-www-form-urlencoded");
        self.body =
            RequestBody::Bytes(resil_http::driver::form_urlencode(pairs.iter().copied()).into());
        self
    }

    /// A JSON body.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.draft.content_type("application/json");
                self.body = RequestBody::Bytes(bytes.into());
            }
            Err(e) => self.draft.invalid(format!("JSON body: {e}")),
        }
        self
    }

    /// A retry policy for this request only.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.draft.policy(policy);
        self
    }

    /// A total deadline for this request only.
    pub fn timeout(mut self, total: Duration) -> Self {
        self.draft.timeout(total);
        self
    }

    /// Sends the request, retrying as the policy allows.
    pub fn send(self) -> Result<Response, Error> {
        let body_len = self.body.known_len();
        let (parts, policy) = self.draft.finish(self.client.core(), body_len)?;
        self.client.send_parts(parts, self.body, policy)
    }
}
