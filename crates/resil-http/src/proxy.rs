//! [`Proxy`]: where a client's default transport connects, the same in every driver.

use std::string::String;

use http::Uri;

use crate::url::{UrlError, check_url, redact_url_str};

/// Where a client's default transport connects.
///
/// Only plain-HTTP proxies (`http://`) are spoken to, by every driver alike: a plain `http`
/// request is sent to the proxy whole, and anything else goes through a `CONNECT` tunnel
/// (ureq tunnels every request).
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
    /// (`http://[user:password@]host:port`; see [`check_proxy_url`]). Its credentials go
    /// to the proxy alone, as `Proxy-Authorization: Basic`.
    Url(String),
}

/// `url` as a proxy URL: `http://`, a host, a port from 1 to 65535, optional
/// `user:password@` (percent-escaped), and nothing after the authority but `/`. The port is
/// required because the drivers' libraries disagree on a proxy's default one (curl's is
/// 1080, hyper-util's 80). The error names the URL with its credentials redacted.
///
/// ```
/// use resil_http::driver::check_proxy_url;
///
/// assert!(check_proxy_url("http://me:secret@127.0.0.1:3128").is_ok());
/// let err = check_proxy_url("socks5://me:secret@127.0.0.1:1080").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid URL `socks5://[redacted]@127.0.0.1:1080`: a proxy URL starts with http:// \
///      (the only kind of proxy every client speaks to)"
/// );
/// ```
pub fn check_proxy_url(url: &str) -> Result<Uri, UrlError> {
    let invalid = |problem| UrlError {
        input: redact_url_str(url),
        problem,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err(invalid(
            "a proxy URL starts with http:// (the only kind of proxy every client speaks to)",
        ));
    }
    check_url(&uri).map_err(|e| invalid(e.problem))?;
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
