//! [`ReqwestTransport`]: resil over an existing `reqwest::Client` (feature `reqwest`).

use http_body_util::BodyDataStream;

use resil_async::{AsyncTransport, Body, BoxFuture, RequestBody, TransportError};

/// Runs resil's calls through a `reqwest::Client` you already configured (TLS, proxies,
/// redirect policy, cookies). Build the client with retries off: resil does them.
///
/// ```no_run
/// # async fn run() -> Result<(), resil_tokio::Error> {
/// let reqwest = reqwest::Client::new();
/// let client = resil_tokio::Client::builder()
///     .transport(resil_tokio::ReqwestTransport::new(reqwest))
///     .build()?;
/// let response = client.get("http://127.0.0.1:8080/health").send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Wraps `client`.
    pub fn new(client: reqwest::Client) -> ReqwestTransport {
        ReqwestTransport { client }
    }
}

impl AsyncTransport for ReqwestTransport {
    fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>> {
        Box::pin(async move {
            let request = request.map(|body| match body {
                RequestBody::Empty => reqwest::Body::from(bytes::Bytes::new()),
                RequestBody::Bytes(b) => reqwest::Body::from(b),
                RequestBody::Stream(s) => reqwest::Body::wrap_stream(BodyDataStream::new(s)),
            });
            let request = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::new(resil_core::TransportErrorKind::Other, e))?;
            let response = self.client.execute(request).await.map_err(|e| {
                // reqwest knows whether it was still connecting; the source chain knows the rest.
                let kind = match crate::classify(&e) {
                    resil_core::TransportErrorKind::Other if e.is_connect() => {
                        resil_core::TransportErrorKind::Connect
                    }
                    resil_core::TransportErrorKind::Other if e.is_timeout() => {
                        resil_core::TransportErrorKind::Timeout
                    }
                    kind => kind,
                };
                TransportError::new(kind, e)
            })?;
            let response: http::Response<reqwest::Body> = response.into();
            Ok(response.map(|b| Body::from_unpin(b, u64::MAX)))
        })
    }
}
