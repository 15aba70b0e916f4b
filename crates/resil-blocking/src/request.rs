//! Building one request: URL, query, headers, body, per-request overrides.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use resil_core::RetryPolicy;

use crate::error::{Error, ErrorKind};
use crate::transport::RequestBody;
use crate::{Client, Response};

/// A request being built; nothing is sent until [`send`](RequestBuilder::send). Mistakes
/// (a bad header, an invalid URL) are reported by `send`, with the method and URL.
pub struct RequestBuilder {
    client: Client,
    method: Method,
    /// Resolved when the builder is made, so `send` does not copy the URL string; if it is
    /// invalid, `error` says so and this is `/`.
    uri: http::Uri,
    query: Vec<(String, String)>,
    headers: http::HeaderMap,
    body: RequestBody,
    policy: Option<RetryPolicy>,
    timeout: Option<Duration>,
    error: Option<Error>,
}

// By hand: headers may hold credentials and the URL a password.
impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &resil_core::redact_url(&self.uri))
            .finish_non_exhaustive()
    }
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, url: &str) -> RequestBuilder {
        let (uri, error) = match client.resolve_url(&method, url) {
            Ok(uri) => (uri, None),
            Err(e) => (http::Uri::default(), Some(e)),
        };
        RequestBuilder {
            client,
            method,
            uri,
            query: Vec::new(),
            headers: http::HeaderMap::new(),
            body: RequestBody::Empty,
            policy: None,
            timeout: None,
            error,
        }
    }

    fn invalid(&mut self, what: String) {
        if self.error.is_none() {
            let url = resil_core::redact_url(&self.uri);
            self.error = Some(
                Error::new(ErrorKind::InvalidConfig, self.method.as_str(), &url).with_source(what),
            );
        }
    }

    /// Adds a header (appended: a name may repeat).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.invalid(format!("header {name:?} is not a valid header")),
        }
        self
    }

    /// Adds query parameters, percent-encoded.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
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
        let encoded = resil_core::form_urlencode(pairs.iter().copied());
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.body = RequestBody::Bytes(encoded.into());
        self
    }

    /// A JSON body.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = RequestBody::Bytes(bytes.into());
            }
            Err(e) => self.invalid(format!("JSON body: {e}")),
        }
        self
    }

    /// A retry policy for this request only.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// A total deadline for this request only.
    pub fn timeout(mut self, total: Duration) -> Self {
        self.timeout = Some(total);
        self
    }

    /// Sends the request, retrying as the policy allows.
    pub fn send(self) -> Result<Response, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut uri = self.uri;
        if !self.query.is_empty() {
            let extra = resil_core::form_urlencode(
                self.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let sep = if uri.query().is_some() { "&" } else { "?" };
            let with_query = format!("{uri}{sep}{extra}");
            uri = with_query.parse().map_err(|e| {
                Error::new(
                    ErrorKind::InvalidUrl,
                    self.method.as_str(),
                    &resil_core::redact_url_str(&with_query),
                )
                .with_source(e)
            })?;
        }
        let mut request = http::Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        let (parts, ()) = request.into_parts();
        let policy = match (self.policy, self.timeout) {
            (p, None) => p,
            (p, Some(total)) => {
                let base = p.unwrap_or_else(|| self.client.policy().clone());
                let attempt = base.attempt_timeout();
                let unbounded = Duration::from_nanos(u64::MAX);
                Some(
                    base.with_limits(
                        Some(total),
                        (attempt != unbounded).then_some(attempt),
                        base.max_attempts(),
                    )
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidConfig,
                            self.method.as_str(),
                            &resil_core::redact_url(&parts.uri),
                        )
                        .with_source(e)
                    })?,
                )
            }
        };
        self.client.send_parts(parts, self.body, policy)
    }
}
