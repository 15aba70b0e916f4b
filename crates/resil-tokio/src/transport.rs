//! The default transport (hyper-util's pooled client) and how its errors are classified.

use std::error::Error as StdError;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use resil_async::{
    AsyncTransport, Body, BoxError, BoxFuture, RequestBody, TransportError, TransportSettings,
};
use resil_core::TransportErrorKind;

use crate::connect::{Capped, DnsFailure, HostLimits};
use crate::proxy::{Proxies, ProxyDialer, ProxyError};

/// A transport error classified from its source chain (see [`classify`]).
pub fn classified(source: impl Into<BoxError>) -> TransportError {
    let source = source.into();
    TransportError::new(classify(&*source), source)
}

/// Classifies an error from hyper, hyper-util, h2 or std::io by walking its source chain.
/// Anything not proven to have failed before the request was written counts as "may have
/// been sent".
pub fn classify(error: &(dyn StdError + 'static)) -> TransportErrorKind {
    let mut connecting = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut fallback = TransportErrorKind::Other;
    while let Some(e) = current {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connecting |= client.is_connect();
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return TransportErrorKind::RefusedStream;
            }
            // What h2 found wrong with the server's frames (a head past the header-list
            // limit ends in too many CONTINUATION frames): a malformed response, as HTTP/1's.
            let malformed = [
                h2::Reason::PROTOCOL_ERROR,
                h2::Reason::COMPRESSION_ERROR,
                h2::Reason::FRAME_SIZE_ERROR,
                h2::Reason::ENHANCE_YOUR_CALM,
            ];
            if h2.is_library() && h2.reason().is_some_and(|r| malformed.contains(&r)) {
                return TransportErrorKind::Protocol;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            #[cfg(feature = "rustls")]
            if is_tls(io) {
                return TransportErrorKind::TlsHandshake;
            }
            return match io.kind() {
                Io::ConnectionRefused => TransportErrorKind::Connect,
                Io::TimedOut if connecting => TransportErrorKind::ConnectTimeout,
                Io::TimedOut => TransportErrorKind::Timeout,
                _ if connecting => TransportErrorKind::Connect,
                Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof => TransportErrorKind::Reset,
                // A response resil's framing check refused (see `connect::CappedIo`).
                Io::InvalidData => TransportErrorKind::Protocol,
                _ => TransportErrorKind::Other,
            };
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            fallback = if hyper.is_timeout() {
                TransportErrorKind::Timeout
            } else if hyper.is_parse() {
                TransportErrorKind::Protocol
            } else if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                TransportErrorKind::Reset
            } else {
                fallback
            };
        }
        if e.is::<DnsFailure>() {
            return TransportErrorKind::Dns;
        }
        if let Some(proxy) = e.downcast_ref::<ProxyError>() {
            return proxy.kind();
        }
        // Connectors other than this crate's (reqwest's, yours) only say it in words.
        if e.to_string().starts_with("dns error") {
            return TransportErrorKind::Dns;
        }
        current = e.source();
    }
    if connecting {
        TransportErrorKind::Connect
    } else {
        fallback
    }
}

/// Whether a rustls error is inside `io`: TLS errors travel inside (possibly nested)
/// io::Errors, whose `source()` skips the error they wrap.
#[cfg(feature = "rustls")]
fn is_tls(io: &std::io::Error) -> bool {
    let mut inner = io.get_ref();
    while let Some(e) = inner {
        if e.is::<rustls::Error>() {
            return true;
        }
        inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
    }
    false
}

/// What the pooled client connects with: TCP (to the destination, or to its proxy), wrapped
/// in TLS for `https` URLs when the `rustls` feature is on.
#[cfg(not(feature = "rustls"))]
type Dialer = ProxyDialer;
#[cfg(feature = "rustls")]
type Dialer = hyper_rustls::HttpsConnector<ProxyDialer>;
type Connector = Capped<Dialer>;

/// The default transport: hyper-util's pooled client (plain HTTP/1.1, HTTP/2 with prior
/// knowledge via `ClientBuilder::http2_prior_knowledge`, and HTTPS with the `rustls`
/// feature), with TCP_NODELAY, a connect timeout, and an idle timeout with the pool timer set
/// (without it hyper-util ignores the idle timeout). It follows no redirects: the client
/// does, by resil-core's rules, so credentials never reach another origin. hyper-util has no cap on connections per host;
/// `ClientBuilder::max_connections_per_host` adds one (each connection holds a permit for its
/// lifetime; a call that finds none waits for a pooled connection within its deadline).
/// Implement [`AsyncTransport`] to bring your own client (another TLS stack, say).
///
/// Proxies ([`TransportSettings::proxy`], read when the transport is made) come from the
/// environment by default, read as reqwest reads it (hyper-util's reading of
/// curl's variables): `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`, in either
/// case, and none under CGI (`REQUEST_METHOD` set). `ClientBuilder::proxy(url)` sends every
/// call through one proxy whatever the environment says, and `ClientBuilder::no_proxy` none.
/// Through an `http://` proxy an `http` request is forwarded whole; `https` (and HTTP/2 with
/// prior knowledge) goes through a `CONNECT` tunnel, so TLS runs end to end. Through a
/// `socks5://` proxy everything is tunnelled to an address looked up here (on tokio's
/// blocking pool, as for a direct connection; the first address found), and through a
/// `socks5h://` one to the name, which the proxy looks up. The tunnels are hyper-util's
/// (`Tunnel`, `SocksV5`); the connect timeout bounds reaching the proxy and its handshake
/// together. Credentials in the proxy's URL (`http://user:password@proxy:3128`) are sent to
/// the proxy alone, as `Proxy-Authorization` or as SOCKS5's username and password. A proxy
/// the environment names that this transport does not speak (`https://`, SOCKS4) fails the
/// call at once, never sent and not retried. A proxy that fails follows the rule every resil
/// client follows ([`Proxy`](resil_http::Proxy), "When a proxy fails"): one that wants credentials fails the call
/// at once, saying so; one that cannot be reached, hangs up or refuses the tunnel is a failed
/// connection, retried as one, for any method.
///
/// An attempt whose deadline passes while hyper-util is still connecting counts as timed
/// out, since hyper-util does not tell whether the request had gone out: a POST without an
/// `Idempotency-Key` is then not sent again. resil-blocking and resil-isahc know that nothing
/// was sent and retry it as a connect timeout. A connect refused or failing before the
/// deadline is a connect error here too, retried for any method.
///
/// ```no_run
/// # use resil_tokio::ResponseExt;
/// # async fn run() -> Result<(), resil_tokio::Error> {
/// // One backend, at most 64 sockets to it however many calls are in flight.
/// let client = resil_tokio::Client::builder()
///     .base_url("http://127.0.0.1:8080")
///     .max_connections_per_host(64)
///     .build()?;
/// let body = client.get("/items").send().await?.text().await?;
/// # let _ = body;
/// # Ok(())
/// # }
/// ```
///
/// Without the `rustls` feature it speaks plain HTTP/1.1 and
/// [`check_request`](AsyncTransport::check_request) refuses `https` URLs: the client asks it
/// before every attempt, and a caller of [`send`](AsyncTransport::send) should too, since
/// hyper-util's own refusal reads as a failed connection. With it, `https` URLs go through
/// rustls (Mozilla's roots by default, or your own [`rustls::ClientConfig`] via
/// [`HyperTransport::with_tls`]) and HTTP/2 is used when the server offers it by ALPN. With
/// [`TransportSettings::http2_prior_knowledge`] it speaks HTTP/2 only, over plain TCP too.
///
/// Responses do not carry hyper-util's `HttpInfo` (the connection's addresses) in their
/// extensions: hyper-util would copy it into a map allocated for every response.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    client: HyperClient<Connector, UnsyncBoxBody<Bytes, BoxError>>,
    /// Whether plain `http` requests go out over HTTP/1, so the transport can set their
    /// `Host` (hyper-util would format `host:port` on every request to a non-default port).
    http1_in_clear: bool,
    /// The proxies, when plain `http` requests may be forwarded through one (and may need
    /// its credentials).
    forwarding: Option<Arc<Proxies>>,
}

impl HyperTransport {
    /// A transport with these settings. Needs a tokio runtime when used. Fails if the proxy
    /// URL is not one (see [`check_proxy_url`](resil_http::driver::check_proxy_url)), or if the TLS
    /// provider cannot offer rustls' default protocol versions (ring always can).
    pub fn new(settings: &TransportSettings) -> Result<HyperTransport, BoxError> {
        let proxies = Proxies::of(&settings.proxy)?;
        #[cfg(not(feature = "rustls"))]
        let connector = dialer(settings, &proxies);
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer(settings, &proxies));
        Ok(HyperTransport::with_connector(settings, connector, proxies))
    }

    /// A transport whose TLS is `tls` (your roots, client certificates, protocol versions).
    /// Its ALPN list must be empty (an error otherwise): `h2` and `http/1.1` are set here.
    #[cfg(feature = "rustls")]
    pub fn with_tls(
        settings: &TransportSettings,
        tls: rustls::ClientConfig,
    ) -> Result<HyperTransport, BoxError> {
        if !tls.alpn_protocols.is_empty() {
            return Err("the rustls ClientConfig must have no ALPN protocols: \
                        resil sets h2 and http/1.1"
                .into());
        }
        let proxies = Proxies::of(&settings.proxy)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer(settings, &proxies));
        Ok(HyperTransport::with_connector(settings, connector, proxies))
    }

    fn with_connector(
        settings: &TransportSettings,
        dialer: Dialer,
        proxies: Option<Arc<Proxies>>,
    ) -> HyperTransport {
        let connector = Capped {
            dialer,
            per_host: settings
                .max_connections_per_host
                .map(|n| Arc::new(HostLimits::new(n.max(1)))),
        };
        let client = HyperClient::builder(TokioExecutor::new())
            // hyper-util's idle sweep panics adding `Duration::MAX` ("never") to its clock.
            .pool_idle_timeout(resil_http::driver::library_timeout(settings.idle_timeout))
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .http2_only(settings.http2_prior_knowledge)
            // hyper's defaults are ~400 KiB for HTTP/1 and 16 KiB for HTTP/2; it panics on a
            // buffer below 8 KiB.
            .http1_max_buf_size(settings.max_response_header_size.max(8 * 1024))
            .http2_max_header_list_size(
                u32::try_from(settings.max_response_header_size).unwrap_or(u32::MAX),
            )
            .build(connector);
        let http1_in_clear = !settings.http2_prior_knowledge;
        HyperTransport {
            client,
            http1_in_clear,
            forwarding: proxies.filter(|_| http1_in_clear),
        }
    }
}

fn dialer(settings: &TransportSettings, proxies: &Option<Arc<Proxies>>) -> ProxyDialer {
    ProxyDialer::new(settings, proxies.clone())
}

impl AsyncTransport for HyperTransport {
    /// Refuses an `https` URL without the `rustls` feature (hyper-util's connector would call
    /// it a failed connection, which reads as retryable) and a version hyper-util would refuse
    /// once the attempt had begun (see [`unsupported_version`](resil_async::unsupported_version)).
    /// [`send`](Self::send) does not ask again: a caller of its own asks first.
    #[inline]
    fn check_request(&self, request: &http::Request<RequestBody>) -> Result<(), BoxError> {
        #[cfg(not(feature = "rustls"))]
        if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
            return Err("an https URL needs resil-tokio's `rustls` feature".into());
        }
        match resil_async::unsupported_version(request, !self.http1_in_clear) {
            Some(problem) => Err(problem.into()),
            None => Ok(()),
        }
    }

    fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>> {
        let (mut parts, body) = request.into_parts();
        // Over TLS the protocol is chosen by ALPN, and HTTP/2 names the host otherwise.
        if self.http1_in_clear
            && parts.uri.scheme() == Some(&http::uri::Scheme::HTTP)
            && parts.version <= http::Version::HTTP_11
        {
            resil_http::driver::fill_host_header(&mut parts.headers, &parts.uri);
            if let Some(proxies) = &self.forwarding {
                add_proxy_authorization(&mut parts, proxies);
            }
        }
        // Started here rather than inside the boxed future, so the box holds hyper-util's
        // future (a pointer) instead of the whole request.
        let sending = self
            .client
            .request(http::Request::from_parts(parts, into_http_body(body)));
        Box::pin(async move {
            let response = sending.await.map_err(classified)?;
            // The client sets the real limit before handing the response over.
            Ok(response.map(|b| Body::from_unpin(b, u64::MAX)))
        })
    }
}

/// The credentials of the proxy a plain `http` request is forwarded through, unless the
/// request carries its own.
#[inline(never)]
fn add_proxy_authorization(parts: &mut http::request::Parts, proxies: &Proxies) {
    if let Some(credentials) = proxies.forward_authorization(&parts.uri) {
        let name = http::header::PROXY_AUTHORIZATION;
        parts.headers.entry(name).or_insert(credentials);
    }
}

/// A request body as hyper sends it.
fn into_http_body(body: RequestBody) -> UnsyncBoxBody<Bytes, BoxError> {
    match body {
        RequestBody::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        RequestBody::Bytes(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        RequestBody::Stream(s) => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::connect::MarkedResolver;
    use tower_service::Service;

    /// A name with a NUL byte fails inside the lookup without asking any server.
    #[tokio::test]
    async fn a_failed_lookup_is_classified_as_dns_by_its_type() {
        let mut resolver = MarkedResolver::new();
        let literal = resolver.call("127.0.0.1".parse().unwrap()).await.unwrap();
        assert_eq!(literal.count(), 1);
        let err = resolver
            .call("bad\0name".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(super::classify(&err), resil_core::TransportErrorKind::Dns);
        assert!(!err.to_string().starts_with("dns error"), "{err}");
    }
}
