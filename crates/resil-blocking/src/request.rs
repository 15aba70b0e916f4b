//! Building one request: URL, query, headers, body, per-request overrides.

use std::io::Read;

use http::Method;
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

impl Client {
    resil_http::request_helpers!(RequestBuilder);

    /// A request with any method.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url)
    }
}

impl RequestBuilder {
    resil_http::request_builder_setters!(draft, body);

    pub(crate) fn new(client: Client, method: Method, url: &str) -> RequestBuilder {
        let draft = RequestDraft::new(client.core(), method, url);
        RequestBuilder {
            client,
            draft,
            body: RequestBody::Empty,
        }
    }

    /// A streamed body, read once: the request is never retried after it was sent.
    pub fn body_reader(mut self, reader: impl Read + Send + 'static) -> Self {
        self.body = RequestBody::Stream(Box::new(reader));
        self
    }

    /// Sends the request, retrying as the policy allows.
    pub fn send(self) -> Result<Response, Error> {
        let body_len = self.body.known_len();
        let (parts, policy) = self.draft.finish(self.client.core(), body_len)?;
        self.client.send_parts(parts, self.body, policy)
    }
}
