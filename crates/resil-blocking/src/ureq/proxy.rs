//! Proxy failures marked as the proxy's, so [`classify`](super::classify) follows the proxy
//! rule (see [`Proxy`](resil_http::Proxy), "When a proxy fails").

use std::fmt;
use std::io;

use ::ureq::unversioned::transport::{ConnectionDetails, Connector, Transport};

use resil_core::TransportErrorKind;

use super::resolve::LookupFailed;

/// A proxy connector (SOCKS, or `CONNECT` through an `http://` proxy) whose failures are
/// marked as the proxy's (see [`ProxyFailure`]): ureq's errors do not tell them from the
/// server's. The proxy itself is dialed inside it, by the whole chain run again without a
/// proxy, so a proxy that cannot be reached fails here too.
#[derive(Debug)]
pub(super) struct ProxyStage<C>(pub(super) C);

impl<In: Transport, C: Connector<In>> Connector<In> for ProxyStage<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ::ureq::Error> {
        self.0
            .connect(details, chained)
            .map_err(|error| ProxyFailure::mark(error, details))
    }
}

/// A proxy that did not open the way to the server, which was never reached (see
/// [`Proxy`](resil_http::Proxy), "When a proxy fails").
#[derive(Debug)]
pub(super) struct ProxyFailure {
    /// `scheme://host:port` (the proxy's credentials are never shown).
    proxy: String,
    problem: ProxyProblem,
    source: ::ureq::Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProxyProblem {
    /// It answered `CONNECT` with 407, or a SOCKS5 proxy refused the credentials or every
    /// method offered.
    AuthRequired,
    /// It refused the tunnel otherwise, or its answer was none.
    Refused,
    /// It closed the connection before the tunnel was open.
    Closed,
    /// It did not answer in time.
    TimedOut,
}

impl ProxyFailure {
    /// `error`, from a proxy stage, marked as the proxy's; left as it is when it already says
    /// what happened (a lookup, a timeout or a refused connection on the way to the proxy,
    /// TLS to an `https://` proxy), so it is classified as for a server.
    pub(super) fn mark(error: ::ureq::Error, details: &ConnectionDetails<'_>) -> ::ureq::Error {
        use ::ureq::Error as E;
        let problem = match &error {
            // ureq's words for a CONNECT answered with another status than 200, or none.
            E::ConnectProxyFailed(answer) if answer.starts_with("proxy server responded 407/") => {
                ProxyProblem::AuthRequired
            }
            E::ConnectProxyFailed(answer) if answer == "proxy server did not respond" => {
                ProxyProblem::Closed
            }
            E::ConnectProxyFailed(_) | E::Protocol(_) => ProxyProblem::Refused,
            E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<LookupFailed>()) => {
                return error;
            }
            // ureq's SOCKS handshake reports in `io::Error`s: a refused password is
            // `PermissionDenied`, no acceptable method says so in words.
            E::Io(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => return error,
                io::ErrorKind::PermissionDenied => ProxyProblem::AuthRequired,
                _ if e.to_string() == "no acceptable auth methods" => ProxyProblem::AuthRequired,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProxyProblem::TimedOut,
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => ProxyProblem::Closed,
                _ => ProxyProblem::Refused,
            },
            _ => return error,
        };
        let proxy = details.config.proxy().map_or_else(String::new, |p| {
            let scheme = p.uri().scheme_str().unwrap_or("http");
            format!("{scheme}://{}:{}", p.host(), p.port())
        });
        E::Other(Box::new(ProxyFailure {
            proxy,
            problem,
            source: error,
        }))
    }

    /// How the retry policy sees it: nothing reached the server, so a refusal or a hang-up
    /// is a failed connection, retried for any method; wanting credentials is not retried.
    pub(super) fn kind(&self) -> TransportErrorKind {
        match self.problem {
            ProxyProblem::AuthRequired => TransportErrorKind::Other,
            ProxyProblem::Refused | ProxyProblem::Closed => TransportErrorKind::Connect,
            ProxyProblem::TimedOut => TransportErrorKind::ConnectTimeout,
        }
    }
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match self.problem {
            ProxyProblem::AuthRequired => write!(
                f,
                "the proxy {proxy} refused the tunnel: proxy authentication is required \
                 (user:password@ in the proxy's URL)"
            ),
            ProxyProblem::Refused => write!(f, "the proxy {proxy} refused the tunnel"),
            ProxyProblem::Closed => write!(
                f,
                "the proxy {proxy} closed the connection before the tunnel was open"
            ),
            ProxyProblem::TimedOut => {
                write!(f, "the proxy {proxy} did not open the tunnel in time")
            }
        }
    }
}

impl std::error::Error for ProxyFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
