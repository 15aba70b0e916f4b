//! The default transport (hyper-util's pooled client) and how its errors are classified.

use std::error::Error as StdError;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use resil_async::{
    AsyncTransport, Body, BoxError, BoxFuture, RequestBody, TransportError, TransportSettings,
};
use resil_core::ErrorKind;

/// A transport error classified from its source chain (see [`classify`]).
pub fn classified(source: impl Into<BoxError>) -> TransportError {
    let source = source.into();
    TransportError::new(classify(&*source), source)
}

/// Classifies an error from hyper, hyper-util, h2 or std::io by walking its source chain.
/// Anything not proven to have failed before the request was written counts as "may have
/// been sent".
pub fn classify(error: &(dyn StdError + 'static)) -> ErrorKind {
    let mut connecting = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut fallback = ErrorKind::Other;
    while let Some(e) = current {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connecting |= client.is_connect();
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return ErrorKind::RefusedStream;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            #[cfg(feature = "rustls")]
            if is_tls(io) {
                return ErrorKind::TlsHandshake;
            }
            return match io.kind() {
                Io::ConnectionRefused => ErrorKind::Connect,
                Io::TimedOut if connecting => ErrorKind::ConnectTimeout,
                Io::TimedOut => ErrorKind::Timeout,
                _ if connecting => ErrorKind::Connect,
                Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof => ErrorKind::Reset,
                _ => ErrorKind::Other,
            };
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            fallback = if hyper.is_timeout() {
                ErrorKind::Timeout
            } else if hyper.is_parse() {
                ErrorKind::Protocol
            } else if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                ErrorKind::Reset
            } else {
                fallback
            };
        }
        if e.to_string().starts_with("dns error") {
            return ErrorKind::Dns;
        }
        current = e.source();
    }
    if connecting {
        ErrorKind::Connect
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

/// What the pooled client connects with: TCP, wrapped in TLS for `https` URLs when the
/// `rustls` feature is on.
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;
#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The default transport: hyper-util's pooled client, TCP_NODELAY, a connect timeout, and an
/// idle timeout that is actually enforced (hyper-util ignores it without a pool timer). It
/// does not follow redirects, so credentials never travel to another origin.
///
/// Without the `rustls` feature it speaks plain HTTP/1.1 and fails `https` URLs with a
/// connect error. With it, `https` URLs go through rustls (Mozilla's roots by default, or
/// your own [`rustls::ClientConfig`] via [`HyperTransport::with_tls`]) and HTTP/2 is used
/// when the server offers it by ALPN. With
/// [`TransportSettings::http2_prior_knowledge`] it speaks HTTP/2 only, over plain TCP too.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    client: HyperClient<Connector, UnsyncBoxBody<Bytes, BoxError>>,
}

impl HyperTransport {
    /// A transport with these settings. Needs a tokio runtime when used. Fails only if the
    /// TLS provider cannot offer rustls' default protocol versions (ring always can).
    pub fn new(settings: &TransportSettings) -> Result<HyperTransport, BoxError> {
        #[cfg(not(feature = "rustls"))]
        let connector = tcp(settings);
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp(settings));
        Ok(HyperTransport::with_connector(settings, connector))
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
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp(settings));
        Ok(HyperTransport::with_connector(settings, connector))
    }

    fn with_connector(settings: &TransportSettings, connector: Connector) -> HyperTransport {
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(settings.idle_timeout)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .http2_only(settings.http2_prior_knowledge)
            .build(connector);
        HyperTransport { client }
    }
}

fn tcp(settings: &TransportSettings) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(settings.connect_timeout);
    // With TLS, `https` URLs pass through this connector to the TLS layer around it; without,
    // they fail here instead of going out in plain text.
    connector.enforce_http(!cfg!(feature = "rustls"));
    connector
}

impl AsyncTransport for HyperTransport {
    fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> BoxFuture<'_, Result<http::Response<Body>, TransportError>> {
        let request = request.map(RequestBody::into_http_body);
        Box::pin(async move {
            let response = self.client.request(request).await.map_err(classified)?;
            // The client sets the real limit before handing the response over.
            Ok(response.map(|b| Body::new(b, u64::MAX)))
        })
    }
}
