//! The pluggable async transport: one exchange, no policy; the request body it sends and the
//! settings of a runtime's default one.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::{Body, BoxError, BoxFuture};

/// A request body: bytes are replayed on every retry; a stream is sent once and the request
/// is then never retried.
pub type RequestBody = resil_http::RequestBody<UnsyncBoxBody<Bytes, BoxError>>;

/// A request body that streams `body` (any `http_body::Body` of `Bytes`), read once.
pub fn stream_body<B>(body: B) -> RequestBody
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    RequestBody::Stream(body.map_err(Into::into).boxed_unsync())
}

use resil_http::TransportError;

/// One HTTP exchange without retries; implement it to bring your own client. Error statuses
/// must come back as responses. The client enforces the attempt deadline by dropping the
/// future, so a transport needs no timeout of its own, but must stop its work when dropped.
pub trait AsyncTransport: Send + Sync {
    /// Whether [`send`](Self::send) itself ends the exchange with
    /// [`TransportErrorKind::Timeout`](resil_core::TransportErrorKind::Timeout) once the request's
    /// [`AttemptBudget`] has run out. Then the client sets no timer of its own per attempt (on
    /// some runtimes a timer wakes another thread). Default `false`: the client enforces it.
    fn enforces_deadline(&self) -> bool {
        false
    }

    /// Sends `request`; the response body is still to be read.
    fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>>;

    /// Refuses a request this transport cannot send as it stands, such as a header value its
    /// HTTP library cannot carry. The client asks before every [`send`](Self::send), once the
    /// attempt's headers are complete (credentials and request id included); an error ends the
    /// call, unsent and not retried, as an
    /// [`InvalidConfig`](resil_http::ErrorKind::InvalidConfig) error whose cause it is.
    /// Default: every request can be sent.
    fn check_request(&self, request: &http::Request<RequestBody>) -> Result<(), BoxError> {
        let _ = request;
        Ok(())
    }
}

/// Why a transport that speaks HTTP/1.0 and 1.1, and HTTP/2 where it is negotiated over TLS
/// or, in clear, known beforehand (`http2_in_clear`: prior knowledge), cannot send a request
/// at the version it asks for; for [`AsyncTransport::check_request`]. hyper-util fails such a
/// request as an attempt that reached nobody, curl ignores its version.
#[inline]
pub fn unsupported_version(
    request: &http::Request<RequestBody>,
    http2_in_clear: bool,
) -> Option<String> {
    match request.version() {
        http::Version::HTTP_10 | http::Version::HTTP_11 => None,
        _ => other_version(request, http2_in_clear),
    }
}

#[inline(never)]
fn other_version(request: &http::Request<RequestBody>, http2_in_clear: bool) -> Option<String> {
    let version = request.version();
    match version {
        http::Version::HTTP_10 | http::Version::HTTP_11 => None,
        http::Version::HTTP_2
            if http2_in_clear || request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) =>
        {
            None
        }
        http::Version::HTTP_2 => Some(format!(
            "the request asks for {version:?}, which this client speaks over plain TCP only \
             with `http2_prior_knowledge`"
        )),
        other => Some(format!(
            "the request asks for {other:?}, which this client does not speak"
        )),
    }
}

/// The time left for this attempt, in the extensions of every request sent to a transport
/// that [enforces the deadline](AsyncTransport::enforces_deadline) (and only there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptBudget(pub Duration);

/// Settings for a runtime's default transport. A timeout longer than
/// [`MAX_TIMEOUT`](resil_http::driver::MAX_TIMEOUT) (one year; `Duration::MAX` for "never") counts as
/// that long.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// TCP connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Idle connections kept per host (default 256). Under load a client has more attempts
    /// in flight than under a light one; connections beyond the cap are closed when they come
    /// back and opened again on the next burst, so a low cap (it was 32) churned thousands of
    /// connections in the overload benchmark where hyper-util, which keeps any number, opened
    /// a hundred. The idle timeout still closes what a quiet client does not need.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Speak HTTP/2 from the first byte, without negotiating (h2c "prior knowledge" over
    /// plain TCP): for backends known to speak it. Off by default: HTTP/1.1, or HTTP/2 when a
    /// TLS server offers it.
    pub http2_prior_knowledge: bool,
    /// Most connections open to one host (scheme, host and port) at once, idle ones
    /// included; a request that would need another waits for a pooled connection to come
    /// free, within its attempt's deadline. `None` (default): hyper-util opens as many as
    /// there are requests in flight; curl caps at `max_idle_per_host`. Zero counts as one.
    pub max_connections_per_host: Option<usize>,
    /// Longest response head accepted, status line and headers (default 64 KiB, as
    /// resil-blocking's); a longer one fails the attempt as a
    /// [`Protocol`](resil_core::TransportErrorKind::Protocol) error. hyper caps an HTTP/2 header list
    /// at it and reads an HTTP/1 head in a buffer this large (at least 8 KiB), checked
    /// between reads of the socket, so a head that completes in the read that crosses the
    /// bound (at most twice it) is still taken. curl's limits are its own (100 KiB a header
    /// line, 300 KiB a head) and apply to resil-isahc instead.
    pub max_response_header_size: usize,
    /// Where connections go: through the environment's proxies (default), straight to every
    /// server, or through one proxy (see [`Proxy`](resil_http::Proxy)).
    pub proxy: resil_http::Proxy,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            connect_timeout: Some(Duration::from_secs(5)),
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(90),
            http2_prior_knowledge: false,
            max_connections_per_host: None,
            max_response_header_size: 64 * 1024,
            proxy: resil_http::Proxy::FromEnv,
        }
    }
}
