//! Building one request: URL, query, headers, body, per-request overrides.

use bytes::Bytes;
use http::Method;
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

impl<R: Runtime> Client<R> {
    resil_http::request_helpers!(RequestBuilder<R>);

    /// A request with any method.
    #[inline]
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder<R> {
        RequestBuilder::new(self.clone(), method, url)
    }
}

impl<R: Runtime> RequestBuilder<R> {
    resil_http::request_builder_setters!(draft, body);

    #[inline]
    pub(crate) fn new(client: Client<R>, method: Method, url: &str) -> RequestBuilder<R> {
        let draft = RequestDraft::new(client.core(), method, url);
        RequestBuilder {
            client,
            draft,
            body: RequestBody::Empty,
        }
    }

    /// A streamed body (any `http_body::Body` of `Bytes`), sent once: the request is never
    /// retried after it was sent.
    pub fn body_stream<B>(mut self, body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<crate::BoxError>,
    {
        self.body = crate::stream_body(body);
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
        Client::send_parts(self.client, finished, self.body, None)
    }
}
