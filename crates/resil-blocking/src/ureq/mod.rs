//! [`UreqTransport`]: the default transport, ureq 3 with resil's own speed work fenced off
//! here (each measured in `BENCHMARKS.md`): a TCP connection whose liveness check is one
//! `recv(MSG_PEEK | MSG_DONTWAIT)` ([`tcp`]), IP literals answered without ureq's
//! thread-per-lookup resolver ([`resolve`]), socket timeouts left alone when they barely
//! change ([`timeouts`]), and the attempt's deadline carried to ureq's connectors through the
//! calling thread ([`deadline`]). All of it builds on `ureq::unversioned`, outside ureq's
//! semver promise, which is why ureq is pinned to 3.5. Proxy failures are marked for
//! [`classify`] in [`proxy`].

mod deadline;
mod framing;
mod proxy;
mod resolve;
mod tcp;
mod timeouts;

use std::io;
use std::time::Duration;

use ::ureq::unversioned::transport::{ConnectProxyConnector, Connector, SocksConnector};
use resil_core::TransportErrorKind;
use resil_http::driver::library_timeout;

use crate::transport::{BlockingTransport, Body, RequestBody, TransportError};
use deadline::{AttemptDeadline, Deadline, DeadlineConnector, DeadlineReader};
use proxy::{ProxyFailure, ProxyStage};
use resolve::{LiteralFirstResolver, LookupFailed};
use tcp::TcpConnector;
use timeouts::SteadyTimeouts;

/// Settings of the default ureq transport. A timeout longer than
/// [`MAX_TIMEOUT`](resil_http::driver::MAX_TIMEOUT) (one year; `Duration::MAX` for "never") counts as
/// that long.
#[derive(Clone, Debug)]
pub struct UreqSettings {
    /// Connect timeout (TCP and TLS).
    pub connect_timeout: Option<Duration>,
    /// Longest wait for one read from the socket.
    pub read_timeout: Option<Duration>,
    /// Longest wait for one write to the socket.
    pub write_timeout: Option<Duration>,
    /// Idle connections kept in the pool.
    pub max_idle_connections: usize,
    /// Idle connections kept per host.
    pub max_idle_connections_per_host: usize,
    /// How long an idle connection is kept.
    pub max_idle_age: Duration,
    /// Largest response head accepted.
    pub max_response_header_size: usize,
    /// `User-Agent` sent unless the request sets one (empty, or not a valid header value:
    /// none is sent).
    pub user_agent: String,
    /// Where connections go (see [`Proxy`](resil_http::Proxy)): through the proxy the
    /// environment names, as ureq reads it (the first of `ALL_PROXY`, `HTTPS_PROXY`,
    /// `HTTP_PROXY` that is set, and `NO_PROXY`; the default), straight to every server, or
    /// through one proxy. Every request goes through a tunnel: `CONNECT` through an `http://`
    /// proxy, SOCKS5 through a `socks5://` one (to an address looked up here, the first
    /// found) or a `socks5h://` one (to the name); ureq also speaks to the `https://` and
    /// SOCKS4 proxies the environment may name. A proxy that fails follows
    /// [`Proxy`](resil_http::Proxy)'s rule ("When a proxy fails"). ureq dials a SOCKS proxy
    /// with its own TCP connection, not this crate's (a pooled one is checked with ureq's
    /// three system calls).
    pub proxy: resil_http::Proxy,
}

impl Default for UreqSettings {
    fn default() -> Self {
        UreqSettings {
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: None,
            write_timeout: None,
            max_idle_connections: 100,
            max_idle_connections_per_host: 10,
            max_idle_age: Duration::from_secs(90),
            max_response_header_size: 64 * 1024,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            proxy: resil_http::Proxy::FromEnv,
        }
    }
}

/// The default transport: a pooled ureq 3 agent, configured so that error statuses and
/// redirects come back as responses (the client follows redirects itself, by resil-core's
/// rules), and response heads are bounded (bodies are bounded by [`Body`]).
///
/// Each attempt's deadline (the `timeout` given to [`send`](BlockingTransport::send)) covers
/// resolving, connecting, sending, the response head and reading the body. resil enforces it
/// itself rather than through ureq's `timeout_global`, whose bookkeeping costs about as much
/// as the rest of an attempt's retry logic; `read_timeout`, `write_timeout` and
/// `connect_timeout` still go to ureq.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ::ureq::Agent,
    /// The `User-Agent` every request without one gets, built once.
    user_agent: Option<http::HeaderValue>,
}

impl UreqTransport {
    /// A transport with these settings; fails only if the proxy URL is not one (see
    /// [`check_proxy_url`](resil_http::driver::check_proxy_url)).
    pub fn new(
        settings: &UreqSettings,
    ) -> Result<UreqTransport, Box<dyn std::error::Error + Send + Sync>> {
        let proxy = match &settings.proxy {
            resil_http::Proxy::FromEnv => ::ureq::Proxy::try_from_env(),
            resil_http::Proxy::Url(url) => {
                resil_http::driver::check_proxy_url(url)?;
                Some(::ureq::Proxy::new(url)?)
            }
            _ => None,
        };
        let config = ::ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are the client's to follow (resil-core decides them); a 3xx comes
            // back as it is.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // `Duration::MAX` ("never") would overflow ureq's clock.
            .timeout_connect(settings.connect_timeout.map(library_timeout))
            .timeout_per_read(settings.read_timeout.map(library_timeout))
            .timeout_per_write(settings.write_timeout.map(library_timeout))
            .max_idle_connections(settings.max_idle_connections)
            .max_idle_connections_per_host(settings.max_idle_connections_per_host)
            .max_idle_age(library_timeout(settings.max_idle_age))
            .max_response_header_size(settings.max_response_header_size)
            // The transport sets it (ureq would copy it into a new value on every request).
            .user_agent("")
            .no_delay(true)
            // ureq refuses methods it does not know (WebDAV's, say); hyper and curl send them.
            .allow_non_standard_methods(true)
            .proxy(proxy)
            .build();
        // ureq's default chain with resil's TCP connection: SOCKS and CONNECT proxies (their
        // failures marked as the proxy's), TCP, TLS.
        let connections =
            ().chain(ProxyStage(SocksConnector::default()))
                .chain(ProxyStage(ConnectProxyConnector::default()))
                .chain(TcpConnector);
        #[cfg(feature = "rustls")]
        let connections =
            connections.chain(::ureq::unversioned::transport::RustlsConnector::default());
        let agent = ::ureq::Agent::with_parts(
            config,
            DeadlineConnector(connections).chain(SteadyTimeouts),
            LiteralFirstResolver::default(),
        );
        let user_agent = if settings.user_agent == DEFAULT_USER_AGENT {
            Some(http::HeaderValue::from_static(DEFAULT_USER_AGENT))
        } else {
            http::HeaderValue::from_str(&settings.user_agent)
                .ok()
                .filter(|v| !v.is_empty())
        };
        Ok(UreqTransport { agent, user_agent })
    }

    /// The underlying agent. A request run on it directly goes without the attempt's
    /// deadline and without a `User-Agent`: [`send`](BlockingTransport::send) adds that header
    /// itself, so the agent is configured to add none (ureq still adds `Host` and `Accept`).
    pub fn agent(&self) -> &::ureq::Agent {
        &self.agent
    }
}

impl BlockingTransport for UreqTransport {
    /// ureq writes every header as it stands but `Authorization` (and `Host`, which
    /// resil-core checks for every driver): one with bytes outside visible ASCII it refuses
    /// while writing, and would report as a malformed response. It speaks HTTP/1.0 and 1.1
    /// only, and would send a request that asks for another version as HTTP/1.1.
    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let version = request.version();
        if version != http::Version::HTTP_10 && version != http::Version::HTTP_11 {
            return Err(format!(
                "the request asks for {version:?}, which this client does not speak (ureq \
                 speaks HTTP/1.0 and HTTP/1.1)"
            )
            .into());
        }
        let headers = request.headers().get_all(http::header::AUTHORIZATION);
        if headers.iter().any(|value| value.to_str().is_err()) {
            return Err(
                "header \"authorization\" has bytes outside visible ASCII, which ureq \
                 refuses to send"
                    .into(),
            );
        }
        Ok(())
    }

    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError> {
        let (mut parts, body) = request.into_parts();
        resil_http::driver::fill_host_header(&mut parts.headers, &parts.uri);
        // ureq would build each of these from a string on every request.
        if let Some(agent) = &self.user_agent {
            parts
                .headers
                .entry(http::header::USER_AGENT)
                .or_insert_with(|| agent.clone());
        }
        parts
            .headers
            .entry(http::header::ACCEPT)
            .or_insert_with(|| http::HeaderValue::from_static("*/*"));
        let (result, deadline) = {
            let scope = AttemptDeadline::enter(Deadline::Budget(timeout));
            let result = match body {
                RequestBody::Empty => self
                    .agent
                    .run(http::Request::from_parts(parts, ::ureq::SendBody::none())),
                RequestBody::Bytes(b) => self.agent.run(http::Request::from_parts(parts, &b[..])),
                RequestBody::Stream(r) => self.agent.run(http::Request::from_parts(
                    parts,
                    ::ureq::SendBody::from_owned_reader(r),
                )),
            };
            (result, scope.settled())
        };
        let (parts, body) = result.map_err(classify)?.into_parts();
        let reader = DeadlineReader {
            inner: body.into_reader(),
            deadline,
        };
        // The real limit is set by the client; ureq's own reader has none.
        Ok(http::Response::from_parts(
            parts,
            Body::new(reader, u64::MAX),
        ))
    }
}

const DEFAULT_USER_AGENT: &str = concat!("resil/", env!("CARGO_PKG_VERSION"));

/// Maps ureq's errors to the kinds the retry policy understands. Anything that cannot be
/// proven to have happened before the request was written counts as "may have been sent".
fn classify(error: ::ureq::Error) -> TransportError {
    use ::ureq::Error as E;
    use ::ureq::Timeout as T;
    let error = match error {
        E::Other(other) => match other.downcast::<ProxyFailure>() {
            Ok(failure) => return TransportError::new(failure.kind(), *failure),
            Err(other) => E::Other(other),
        },
        error => error,
    };
    let kind = match &error {
        E::HostNotFound => TransportErrorKind::Dns,
        E::ConnectionFailed => TransportErrorKind::Connect,
        E::Timeout(T::Resolve) => TransportErrorKind::Dns,
        E::Timeout(T::Connect) => TransportErrorKind::ConnectTimeout,
        E::Timeout(_) => TransportErrorKind::Timeout,
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<LookupFailed>()) => {
            TransportErrorKind::Dns
        }
        E::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => TransportErrorKind::Connect,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => TransportErrorKind::Reset,
            // A response resil's framing check refused.
            io::ErrorKind::InvalidData => TransportErrorKind::Protocol,
            _ => TransportErrorKind::Other,
        },
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => {
            TransportErrorKind::Protocol
        }
        #[cfg(feature = "rustls")]
        E::Tls(_) | E::Rustls(_) | E::Pem(_) => TransportErrorKind::TlsHandshake,
        _ => TransportErrorKind::Other,
    };
    TransportError::new(kind, error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use ::ureq::unversioned::transport::{NextTimeout, time::Duration as UreqDuration};
    use resil_core::TransportErrorKind;

    use super::classify;
    use super::deadline::{AttemptDeadline, Deadline};
    use super::resolve::{LiteralFirstResolver, cached_ip_literal, default_port, ip_literal};

    #[test]
    fn ip_literals_are_read_straight_from_the_authority() {
        let addr = |url: &str| {
            let uri: http::Uri = url.parse().unwrap();
            ip_literal(&uri, default_port(&uri)).map(|a| a.to_string())
        };
        assert_eq!(
            addr("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(addr("http://127.0.0.1/x").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(addr("https://10.0.0.1/").as_deref(), Some("10.0.0.1:443"));
        assert_eq!(addr("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(addr("https://[::1]/").as_deref(), Some("[::1]:443"));
        assert_eq!(
            addr("http://user:pw@127.0.0.2:81/").as_deref(),
            Some("127.0.0.2:81")
        );
        assert_eq!(addr("http://example.com/"), None);
        assert_eq!(addr("http://example.com:8080/"), None);
        assert_eq!(addr("http://[fe80::1%25eth0]:80/"), None);
        assert_eq!(addr("/relative"), None);
    }

    #[test]
    fn a_remembered_literal_is_used_only_for_the_same_authority_and_scheme() {
        let addr = |url: &str| cached_ip_literal(&url.parse().unwrap()).map(|a| a.to_string());
        for (url, want) in [
            ("http://127.0.0.1/x", Some("127.0.0.1:80")),
            ("http://127.0.0.1/y", Some("127.0.0.1:80")),
            ("https://127.0.0.1/", Some("127.0.0.1:443")),
            ("http://127.0.0.1/", Some("127.0.0.1:80")),
            ("http://127.0.0.1:8080/", Some("127.0.0.1:8080")),
            ("http://example.com/", None),
            ("http://127.0.0.1:8080/", Some("127.0.0.1:8080")),
            ("http://[::1]:8080/", Some("[::1]:8080")),
        ] {
            assert_eq!(addr(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn a_lookup_the_attempt_deadline_cuts_short_is_a_dns_error() {
        use ::ureq::unversioned::resolver::Resolver;
        let config = ::ureq::Agent::config_builder().build();
        let spent = NextTimeout {
            after: UreqDuration::Exact(Duration::ZERO),
            reason: ::ureq::Timeout::Global,
            per_read: None,
            per_write: None,
        };
        let uri: http::Uri = "http://localhost:1/".parse().unwrap();
        let error = LiteralFirstResolver::default()
            .resolve(&uri, &config, spent)
            .unwrap_err();
        assert_eq!(classify(error).kind(), TransportErrorKind::Dns);
    }

    #[test]
    fn an_attempts_clock_starts_at_its_first_io_and_then_counts_down() {
        let open = NextTimeout {
            after: UreqDuration::NotHappening,
            reason: ::ureq::Timeout::PerCall,
            per_read: None,
            per_write: None,
        };
        let budget = Duration::from_secs(10);
        let scope = AttemptDeadline::enter(Deadline::Budget(budget));
        let first = AttemptDeadline::bound(open);
        assert_eq!(first.after, UreqDuration::Exact(budget));
        assert_eq!(first.reason, ::ureq::Timeout::Global);
        // The first IO fixed the end: later ones count down to it, and the body gets it.
        let end = scope.settled();
        assert!(matches!(end, Deadline::At(_)), "{end:?}");
        assert!(AttemptDeadline::bound(open).after <= first.after);
        assert_eq!(scope.settled(), end);
        drop(scope);
        assert_eq!(AttemptDeadline::bound(open), open, "no attempt, no bound");
    }
}
