//! Name resolution: IP literals answered directly, names handed to ureq's resolver, and
//! failed lookups marked so [`classify`](super::classify) knows them.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::time::Duration;

use ::ureq::unversioned::transport::{NextTimeout, time::Duration as UreqDuration};

use super::deadline::AttemptDeadline;

/// ureq resolves the host on every request, and with a deadline set (every resil attempt has
/// one) its default resolver spawns a thread per lookup so the lookup can be abandoned. An IP
/// literal needs no lookup: answer it directly; hand real names to ureq's resolver.
///
/// (`::ureq::unversioned` is outside ureq's semver promise; resil pins ureq 3.5.)
#[derive(Debug, Default)]
pub(super) struct LiteralFirstResolver {
    names: ::ureq::unversioned::resolver::DefaultResolver,
}

impl ::ureq::unversioned::resolver::Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &::ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<::ureq::unversioned::resolver::ResolvedSocketAddrs, ::ureq::Error> {
        match cached_ip_literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => {
                let timeout = AttemptDeadline::bound(timeout);
                // ureq would still start the lookup and take its answer if it came at once
                // (a name in /etc/hosts): with no time left, the attempt is over.
                if timeout.after == UreqDuration::Exact(Duration::ZERO) {
                    return Err(::ureq::Error::Timeout(::ureq::Timeout::Resolve));
                }
                self.names
                    .resolve(uri, config, timeout)
                    .map_err(mark_lookup_failure)
            }
        }
    }
}

/// ureq reports a failed lookup as a plain `Io` error, and one the attempt's deadline cut
/// short by the deadline's reason (`Global`, which reads as "may have been sent"); marked,
/// [`classify`](super::classify) knows both as [`TransportErrorKind::Dns`](resil_core::TransportErrorKind::Dns) (nothing was sent, so any method may retry).
pub(super) fn mark_lookup_failure(error: ::ureq::Error) -> ::ureq::Error {
    match error {
        ::ureq::Error::Io(e) => ::ureq::Error::Io(io::Error::new(e.kind(), LookupFailed(e))),
        ::ureq::Error::Timeout(_) => ::ureq::Error::Timeout(::ureq::Timeout::Resolve),
        other => other,
    }
}

/// A host name that did not resolve.
#[derive(Debug)]
pub(super) struct LookupFailed(pub(super) io::Error);

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name lookup failed: {}", self.0)
    }
}

impl std::error::Error for LookupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

thread_local! {
    /// The authority this thread read an address from last (a copy of its text) with its
    /// scheme's default port, and what it read: a client calls the same backend over and
    /// over, and reading the address again cost ~450 instructions per request.
    static LAST_LITERAL: RefCell<Option<(LiteralKey, Option<std::net::SocketAddr>)>> =
        const { RefCell::new(None) };
}

/// An authority's text and its scheme's default port.
pub(super) type LiteralKey = (String, Option<u16>);

/// [`ip_literal`], answered from this thread's last one when the authority and scheme match.
pub(super) fn cached_ip_literal(uri: &http::Uri) -> Option<std::net::SocketAddr> {
    let authority = uri.authority()?.as_str();
    let default_port = default_port(uri);
    LAST_LITERAL.with(|last| {
        resil_http::driver::remember_last(
            last,
            |(seen, port)| *port == default_port && seen == authority,
            || {
                (
                    (authority.to_owned(), default_port),
                    ip_literal(uri, default_port),
                )
            },
        )
    })
}

pub(super) fn default_port(uri: &http::Uri) -> Option<u16> {
    match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    }
}

/// The socket address of a URI whose host is an IP literal (`default_port`: its scheme's).
/// Runs on every request (ureq resolves before it looks in its pool), so the common authority
/// (no user info) is split by hand: `http::uri::Authority::host` and `port_u16` cost ~1,400
/// instructions together.
pub(super) fn ip_literal(
    uri: &http::Uri,
    default_port: Option<u16>,
) -> Option<std::net::SocketAddr> {
    let authority = uri.authority()?;
    let text = authority.as_str();
    let (host, port) = if text.contains('@') {
        (authority.host(), authority.port_u16())
    } else {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']')?;
                (host, after.strip_prefix(':'))
            }
            None => match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            },
        };
        (host, port.map(str::parse).transpose().ok()?)
    };
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(std::net::SocketAddr::new(ip, port.or(default_port)?))
}
