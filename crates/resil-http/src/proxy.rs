//! [`Proxy`]: where a client's default transport connects, the same in every driver, and
//! what a proxy's failure comes to.

use std::string::String;

use http::Uri;

use crate::url::{UrlError, check_url, redact_url_str};

/// Where a client's default transport connects.
///
/// Three kinds of proxy are spoken to, by every driver alike:
/// - `http://`: a plain `http` request is sent to the proxy whole, and anything else goes
///   through a `CONNECT` tunnel (ureq, in resil-blocking, tunnels every request);
/// - `socks5://`: every request goes through a SOCKS5 tunnel (RFC 1928) to an address the
///   client looked up;
/// - `socks5h://`: the same, but the proxy is sent the server's name and looks it up.
///
/// Credentials in the proxy's URL go to the proxy alone: as `Proxy-Authorization: Basic`, or
/// as SOCKS5's username and password (RFC 1929).
///
/// # When a proxy fails
///
/// One rule, the same in every driver, for a proxy that does not open the way to the server.
/// It covers tunnels: `https` through an `http://` proxy, HTTP/2 with prior knowledge (also
/// a `CONNECT` tunnel), and everything through a SOCKS5 proxy. Nothing of the request has
/// reached the server in any of these cases.
///
/// - A proxy that wants credentials it was not given, or refuses those it was, fails the call
///   at once, not retried (a retry would be refused alike), with an error of kind
///   [`TransportErrorKind::Other`](resil_core::TransportErrorKind::Other) whose message says
///   proxy authentication is required. That is a `CONNECT` answered with 407, or a SOCKS5
///   proxy refusing the username and password, or every authentication method offered.
/// - A proxy that cannot be reached (refused, timed out, its name not found), hangs up before
///   the tunnel is open, or refuses the tunnel any other way (another status, such as 403 or
///   502, an answer that is not HTTP, a SOCKS5 refusal) is a failed connection:
///   [`TransportErrorKind::Connect`](resil_core::TransportErrorKind::Connect) (or
///   `ConnectTimeout` or `Dns`, when that is what happened on the way to the proxy), retried as
///   one, for any method, POST included.
///
/// A plain `http` request forwarded to an `http://` proxy (resil-tokio and resil-isahc
/// forward them) is no tunnel: the proxy's 407 or 502 comes back as an ordinary response,
/// which the retry policy judges as any other (by default 502 is retried, 407 is not).
///
/// One exception: resil-isahc cannot tell a proxy that wants credentials from one that
/// refuses the tunnel otherwise (curl fails both alike, and isahc 2 keeps neither its error
/// text nor the `CONNECT` status), so there a 407 or a refused SOCKS5 authentication is a
/// failed connection, retried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// Through the proxies the environment names (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`), as the transport's library reads them. The default.
    #[default]
    FromEnv,
    /// Straight to every server, whatever the environment says.
    Direct,
    /// Every connection through the proxy at this URL, whatever the environment says
    /// (`http://`, `socks5://` or `socks5h://`, then `[user:password@]host:port`; see
    /// [`check_proxy_url`]).
    Url(String),
}

/// `url` as a proxy URL: `http://`, `socks5://` or `socks5h://` (the kinds every client
/// speaks to), a host, a port from 1 to 65535, optional `user:password@` (percent-escaped),
/// and nothing after the authority but `/`. The port is required because the drivers'
/// libraries disagree on a proxy's default one (curl's is 1080, hyper-util's 80). The error
/// names the URL with its credentials redacted.
///
/// ```
/// use resil_http::driver::check_proxy_url;
///
/// assert!(check_proxy_url("http://me:secret@127.0.0.1:3128").is_ok());
/// assert!(check_proxy_url("socks5h://me:secret@127.0.0.1:1080").is_ok());
/// let err = check_proxy_url("socks4://me:secret@127.0.0.1:1080").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid URL `socks4://[redacted]@127.0.0.1:1080`: a proxy URL starts with http://, \
///      socks5:// or socks5h:// (the kinds of proxy every client speaks to)"
/// );
/// ```
pub fn check_proxy_url(url: &str) -> Result<Uri, UrlError> {
    let invalid = |problem| UrlError {
        input: redact_url_str(url),
        problem,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "socks5" | "socks5h")) {
        return Err(invalid(
            "a proxy URL starts with http://, socks5:// or socks5h:// (the kinds of proxy \
             every client speaks to)",
        ));
    }
    // The host and port follow a server URL's rules, whatever the scheme.
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    let as_http = Uri::from_parts(parts).map_err(|_| invalid("not a URL"))?;
    check_url(&as_http).map_err(|e| invalid(e.problem))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if uri.port().is_none() {
        return Err(invalid("a proxy URL names its port (host:port)"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(invalid("a proxy URL has nothing after host:port"));
    }
    Ok(uri)
}
