//! Building one request: URL, query, headers, body, per-request overrides.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use resil_core::RetryPolicy;
use resil_http::RequestDraft;

use crate::transport::RequestBody;
use crate::{Body, Client, Error, Response, Runtime};

/// A request being built; nothing is sent until [`send`](RequestBuilder::send). Mistakes are
/// reported by `send`, with the method and URL. All but the body is resil-core's
/// [`RequestDraft`], shared with the blocking client.
pub struct RequestBuilder<R> {
    client: Client<R>,
    draft: RequestDraft<Body>,
    body: RequestBody,
}

impl<R> std::fmt::Debug for RequestBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("draft", &self.draft)
            .finish_non_exhaustive()
    }
}

impl<R: crate::Runtime> RequestBuilder<R> {
    #[inline]
    pub(crate) fn new(client: Client<R>, method: Method, url: &str) -> RequestBuilder<R> {
        let draft = RequestDraft::new(client.core(), method, url);
        RequestBuilder {
            client,
            draft,
            body: RequestBody::Empty,
        }
    }

    /// Adds a header (appended). The transport frames the body itself;
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

    /// A body of bytes, replayed on every retry.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = RequestBody::Bytes(body.into());
        self
    }

    /// A streamed body, sent once: the request is never retried after it was sent.
    pub fn body_stream(mut self, body: RequestBody) -> Self {
        self.body = body;
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
    ///
    /// The future holds the whole call (about 1.7 KiB) and is not boxed: a box that size
    /// costs more per call than moving it into the `.await` that runs it. Box it yourself
    /// (`Box::pin`) to keep many calls in a collection or hand one through many layers.
    #[inline]
    pub fn send(self) -> impl Future<Output = Result<Response, Error>> + Send + 'static
    where
        R: Runtime,
    {
        // Finished before the future is made, so the future does not carry the builder.
        let finished = self.draft.finish(self.client.core(), self.body.known_len());
        Client::send_parts(self.client, finished, self.body)
    }
}
