//! [`IsahcTransport`]: one exchange through isahc's `HttpClient`, and adapters between
//! isahc's `AsyncRead` bodies and `http_body` bodies.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncRead;
use http_body::{Body as HttpBody, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use isahc::config::{Configurable, RedirectPolicy};
use resil_async::{
    AsyncTransport, AttemptBudget, Body, BoxError, BoxFuture, RequestBody, TransportError,
    TransportSettings,
};
use resil_core::TransportErrorKind;
use resil_http::Proxy;

/// The default transport: an isahc `HttpClient` with a connect timeout, a cap of idle
/// connections per host, TCP_NODELAY, HTTP/2 where the server offers it, no redirects (the
/// client follows them, by resil-core's rules) and no `Expect: 100-continue`.
///
/// Proxies are curl's: the ones the environment names, as curl reads it (`http_proxy` in
/// lower case only, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), or
/// [`TransportSettings::proxy`]. Through an `http://` proxy a plain `http` request is
/// forwarded whole and anything else tunnelled with `CONNECT`; through a `socks5://` proxy
/// every request is tunnelled to an address curl looked up, through a `socks5h://` one to the
/// name. A proxy that fails follows [`Proxy`]'s rule ("When a proxy fails") but for one
/// exception (see [`classify`]): a proxy that wants credentials is a connect failure here,
/// retried, since isahc keeps nothing that tells it from another refusal.
///
/// curl refuses bodies framed against RFC 9112 (a chunk size with a sign, a space, `0x` or
/// more than 16 hex digits), but reports some of them with the code a reset has
/// (`CURLE_RECV_ERROR`), and isahc 2 keeps only the code: those are retried (and refused
/// again) where the others are protocol errors. curl decodes gzip, deflate and brotli: a body
/// it decoded is marked [`ContentDecoded`](resil_http::ContentDecoded) and never resumes with a
/// range (its offsets would count decoded bytes); it starts again instead.
#[derive(Clone, Debug)]
pub struct IsahcTransport {
    client: isahc::HttpClient,
    /// Whether HTTP/2 may be asked for over plain TCP (curl ignores a request's version).
    http2_in_clear: bool,
}

impl IsahcTransport {
    /// A transport with these settings.
    pub fn new(settings: &TransportSettings) -> Result<IsahcTransport, BoxError> {
        let mut builder = isahc::HttpClient::builder()
            .redirect_policy(RedirectPolicy::None)
            // curl would otherwise send `Expect: 100-continue` with large or streamed bodies
            // and wait up to 1 s for a server that never answers it, inside the attempt's
            // budget; the other drivers send no `Expect` either.
            .expect_continue(false)
            .tcp_nodelay()
            .max_connections_per_host(
                settings
                    .max_connections_per_host
                    .unwrap_or(settings.max_idle_per_host)
                    .max(1),
            )
            .connection_cache_size(settings.max_idle_per_host.max(1) * 4);
        if let Some(t) = settings.connect_timeout {
            // curl refuses a `Duration::MAX` ("never") on every request.
            builder = builder.connect_timeout(resil_http::driver::library_timeout(t));
        }
        if settings.http2_prior_knowledge {
            builder = builder.version_negotiation(isahc::config::VersionNegotiation::http2());
        }
        match &settings.proxy {
            // curl reads the proxy variables unless told otherwise.
            Proxy::FromEnv => {}
            Proxy::Url(url) => {
                // An empty no-proxy list overrides NO_PROXY: every host goes through it.
                let only = resil_http::driver::check_proxy_url(url)?;
                builder = builder
                    .proxy(Some(only))
                    .proxy_blacklist(Vec::<String>::new());
            }
            _ => builder = builder.proxy(None),
        }
        Ok(IsahcTransport {
            client: builder.build()?,
            http2_in_clear: settings.http2_prior_knowledge,
        })
    }

    /// Wraps an `HttpClient` you configured (keep its redirects off, or same-origin only).
    /// Its version negotiation is yours: a request may ask for HTTP/2 over plain TCP.
    pub fn from_client(client: isahc::HttpClient) -> IsahcTransport {
        IsahcTransport {
            client,
            http2_in_clear: true,
        }
    }
}

/// Why curl cannot send a request with these headers: isahc hands curl each header as text
/// and panics on a value with bytes outside visible ASCII (obs-text, such as UTF-8 or Latin-1
/// bytes), which `http` allows and hyper and ureq send as they are.
fn unsendable_header(headers: &http::HeaderMap) -> Option<String> {
    let (name, _) = headers.iter().find(|(_, value)| value.to_str().is_err())?;
    Some(format!(
        "header {:?} has bytes outside visible ASCII, which curl cannot send",
        name.as_str()
    ))
}

/// Whether curl decodes this response's body (isahc asks for gzip, deflate and brotli and
/// has curl decode them): then its bytes are not the server's.
fn decodes(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// curl's code for data past one of its size limits (curl 8.6; the curl crate names none;
/// its integer type differs by platform).
const CURLE_TOO_LARGE: i64 = 100;

/// curl's code for a SOCKS (or HAProxy) handshake that failed, whatever the reason: refused,
/// credentials refused, no method acceptable, or the proxy hung up (curl 7.73; the curl crate
/// names none).
const CURLE_PROXY: i64 = 97;

/// Classifies an isahc error for the retry machine: only failures to connect (to the server,
/// or through its proxy) and to resolve a name prove the request was never sent.
///
/// A proxy that fails follows [`Proxy`]'s rule ("When a proxy fails"), with its exception:
/// curl says a tunnel was refused (`CONNECT` answered with anything but 2xx) without the
/// status, and a SOCKS handshake failed without why, and isahc 2 keeps neither curl's error
/// text nor the `CONNECT` status, so a proxy that wants credentials reads as any other
/// refusal here: a connect failure, retried.
pub fn classify(error: &isahc::Error) -> TransportErrorKind {
    use isahc::error::ErrorKind as K;
    match error.kind() {
        // Also a tunnel the proxy refused, 407 included (curl's `CURLE_COULDNT_CONNECT`).
        K::ConnectionFailed => TransportErrorKind::Connect,
        K::NameResolution => TransportErrorKind::Dns,
        // curl learns the local address when it has connected; without one, nothing was sent.
        K::Timeout if error.local_addr().is_none() => TransportErrorKind::ConnectTimeout,
        K::Timeout => TransportErrorKind::Timeout,
        K::BadServerCertificate
        | K::BadClientCertificate
        | K::TlsEngine
        | K::InvalidTlsConfiguration => TransportErrorKind::TlsHandshake,
        K::ProtocolViolation => TransportErrorKind::Protocol,
        // A response head past curl's limits (isahc calls it unknown): a malformed response,
        // as the other drivers report one past theirs.
        _ if curl_cause(error).is_some_and(|e| i64::from(e.code()) == CURLE_TOO_LARGE) => {
            TransportErrorKind::Protocol
        }
        // isahc refuses a head line curl let through but `http` cannot hold (a status outside
        // 100-999, a header name with a space) by failing curl's write callback: a malformed
        // response, as ureq and hyper call it, not a reset to retry.
        K::Io if curl_cause(error).is_some_and(curl::Error::is_write_error) => {
            TransportErrorKind::Protocol
        }
        // curl learns the local address once connected, a proxy's tunnel included: a
        // connection broken before then is a proxy that hung up on the tunnel request.
        K::Io
            if error.local_addr().is_none()
                && curl_cause(error).is_some_and(|e| e.is_recv_error() || e.is_send_error()) =>
        {
            TransportErrorKind::Connect
        }
        _ if curl_cause(error).is_some_and(|e| i64::from(e.code()) == CURLE_PROXY) => {
            TransportErrorKind::Connect
        }
        K::Io => match std::error::Error::source(error)
            .and_then(|e| e.downcast_ref::<io::Error>())
            .map(io::Error::kind)
        {
            Some(io::ErrorKind::ConnectionRefused) => TransportErrorKind::Connect,
            _ => TransportErrorKind::Reset,
        },
        _ => TransportErrorKind::Other,
    }
}

impl AsyncTransport for IsahcTransport {
    /// curl enforces the attempt's budget on its own thread (a per-request timeout), so the
    /// client needs no async-io timer per attempt.
    fn enforces_deadline(&self) -> bool {
        true
    }

    /// Refuses a header value curl cannot be handed, and a version curl would not honour (see
    /// [`unsupported_version`](resil_async::unsupported_version)): it ignores a request's.
    fn check_request(&self, request: &http::Request<RequestBody>) -> Result<(), BoxError> {
        let problem = unsendable_header(request.headers())
            .or_else(|| resil_async::unsupported_version(request, self.http2_in_clear));
        problem.map_or(Ok(()), |problem| Err(problem.into()))
    }

    fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>> {
        // The client has asked `check_request`; a direct caller may not have.
        if let Err(problem) = self.check_request(&request) {
            return Box::pin(std::future::ready(Err(TransportError::new(
                TransportErrorKind::Other,
                problem,
            ))));
        }
        let budget = request.extensions().get::<AttemptBudget>().map(|b| b.0);
        let (parts, body) = request.into_parts();
        let mut builder = http::Request::builder()
            .method(parts.method)
            .uri(parts.uri)
            .version(parts.version);
        if let Some(headers) = builder.headers_mut() {
            *headers = parts.headers;
        }
        if let Some(budget) = budget {
            builder = builder.timeout(budget);
        }
        let body = match body {
            RequestBody::Empty => isahc::AsyncBody::empty(),
            // Read from the shared bytes rather than copied into a `Vec` on every attempt.
            RequestBody::Bytes(b) => {
                let len = b.len() as u64;
                isahc::AsyncBody::from_reader_sized(futures_lite::io::Cursor::new(b), len)
            }
            RequestBody::Stream(s) => isahc::AsyncBody::from_reader(StreamReader {
                inner: Mutex::new((s, Bytes::new())),
            }),
        };
        let request = builder.body(body);
        Box::pin(async move {
            let request = request.map_err(|e| TransportError::new(TransportErrorKind::Other, e))?;
            let response = self
                .client
                .send_async(request)
                .await
                .map_err(|e| TransportError::new(classify(&e), e))?;
            let mut response = response;
            if decodes(response.headers()) {
                response.extensions_mut().insert(resil_http::ContentDecoded);
            }
            Ok(response.map(|body| {
                Body::from_unpin(
                    ReadBody {
                        reader: body,
                        buf: BytesMut::new(),
                        chunk: FIRST_CHUNK,
                    },
                    u64::MAX,
                )
            }))
        })
    }
}

/// The first read's buffer: most bodies a retrying client sees are small, and the buffer
/// must be zeroed before `poll_read` may fill it.
const FIRST_CHUNK: usize = 512;
/// The largest buffer a read gets; it grows to this while reads keep filling it.
const MAX_CHUNK: usize = 64 * 1024;

/// isahc's response body (`AsyncRead`) as an `http_body::Body`. Each frame is split off the
/// read buffer without a copy; the buffer doubles while reads fill it.
struct ReadBody {
    reader: isahc::AsyncBody,
    buf: BytesMut,
    chunk: usize,
}

impl HttpBody for ReadBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.buf.len() < this.chunk {
            // Zeroes only the bytes not zeroed before (what a split left is kept).
            this.buf.resize(this.chunk, 0);
        }
        match Pin::new(&mut this.reader).poll_read(cx, &mut this.buf) {
            Poll::Ready(Ok(0)) => Poll::Ready(None),
            Poll::Ready(Ok(n)) => {
                if n == this.chunk {
                    this.chunk = (this.chunk * 2).min(MAX_CHUNK);
                }
                Poll::Ready(Some(Ok(Frame::data(this.buf.split_to(n).freeze()))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(cut_short(e)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The curl error under an isahc error, if curl's.
fn curl_cause(error: &isahc::Error) -> Option<&curl::Error> {
    std::error::Error::source(error).and_then(|cause| cause.downcast_ref::<curl::Error>())
}

/// isahc reports a body cut short as an `io::Error` around its own error ("unknown error")
/// around curl's `CURLE_PARTIAL_FILE`; give it the kind std readers use for one, so the
/// client says what happened (`resil_http::IncompleteBody`).
fn cut_short(e: io::Error) -> io::Error {
    let partial = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<isahc::Error>())
        .and_then(curl_cause)
        .is_some_and(curl::Error::is_partial_file);
    if partial {
        io::Error::new(io::ErrorKind::UnexpectedEof, e)
    } else {
        e
    }
}

/// A streamed request body as the `AsyncRead + Sync` isahc wants. The lock is never
/// contended (one reader); it only makes the unsynchronised body `Sync`.
struct StreamReader {
    inner: Mutex<(UnsyncBoxBody<Bytes, BoxError>, Bytes)>,
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (body, pending) = &mut *guard;
        loop {
            if !pending.is_empty() {
                let n = pending.len().min(out.len());
                out[..n].copy_from_slice(&pending.split_to(n));
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        *pending = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
