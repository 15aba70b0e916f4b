//! Following redirects: a 3xx's `Location` resolved against the request's URL with the `url`
//! crate (WHATWG URL parsing, the reference resolution browsers use), resil-core's
//! [`RedirectPolicy`] asked whether and how to follow, and the request rewritten for the
//! next hop. [`Call`](crate::Call) does all of it; a driver only drops its body when told.

use std::boxed::Box;
use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method as HttpMethod, Uri};
use resil_core::{Hop, RedirectRefusal, RedirectTarget};

use crate::url::redact_url_str;

/// One call's redirects so far; made at its first redirect.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// Hops followed.
    pub(crate) hops: u32,
    /// Every URL the call sent a request to, in order (normalised by `url`).
    pub(crate) visited: Vec<String>,
    /// A hop went to another origin: credentials are gone for the rest of the call.
    pub(crate) stripped: bool,
}

/// Resolves `location` against `base`: what resil-core needs to know of it, and the next
/// hop's URI when it is one the call could go to.
pub(crate) fn resolve(
    base: &Uri,
    location: Option<&HeaderValue>,
    visited: &[String],
) -> (RedirectTarget, Option<Uri>) {
    let Some(location) = location else {
        return (RedirectTarget::Missing, None);
    };
    // Not visible ASCII (or Latin-1 a server meant as UTF-8): no URL can be trusted from it.
    let Ok(text) = location.to_str() else {
        return (RedirectTarget::Invalid, None);
    };
    let text = text.trim();
    if text.is_empty() {
        return (RedirectTarget::Missing, None);
    }
    let Ok(from) = url::Url::parse(&base.to_string()) else {
        return (RedirectTarget::Invalid, None);
    };
    let Ok(mut to) = from.join(text) else {
        return (RedirectTarget::Invalid, None);
    };
    if !matches!(to.scheme(), "http" | "https") {
        return (RedirectTarget::UnsupportedScheme, None);
    }
    if to.host_str().is_none_or(str::is_empty) {
        return (RedirectTarget::Invalid, None);
    }
    // A server's `Location` never brings credentials along: they would become
    // `Authorization` for the next hop.
    let had_userinfo = !to.username().is_empty() || to.password().is_some();
    let _ = to.set_username("");
    let _ = to.set_password(None);
    to.set_fragment(None);
    let Ok(uri) = to.as_str().parse::<Uri>() else {
        return (RedirectTarget::Invalid, None);
    };
    let same_origin = !had_userinfo
        && from.scheme() == to.scheme()
        && from.host() == to.host()
        && from.port_or_known_default() == to.port_or_known_default();
    let here = from.as_str();
    let seen = here == to.as_str() || visited.iter().any(|v| v == to.as_str());
    let target = RedirectTarget::Http {
        https: to.scheme() == "https",
        same_origin,
        seen,
    };
    (target, Some(uri))
}

/// The URL as [`Chain::visited`] keeps it.
pub(crate) fn normalised(uri: &Uri) -> String {
    let text = uri.to_string();
    url::Url::parse(&text).map_or(text, String::from)
}

/// Headers that describe a body, gone with it when a hop turns the request into a GET.
const BODY_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
];

/// Credentials no other origin may see, whatever the user named besides.
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// Rewrites `request` for the next hop to `uri`; `strip` drops the credentials (the built-in
/// ones and `sensitive`).
pub(crate) fn rewrite(
    request: &mut http::request::Parts,
    uri: Uri,
    hop: Hop,
    strip: bool,
    sensitive: &[HeaderName],
) {
    request.uri = uri;
    // The request's own `Host` named the previous hop's server.
    request.headers.remove(header::HOST);
    if hop.to_get {
        if request.method != HttpMethod::HEAD {
            request.method = HttpMethod::GET;
        }
        for name in &BODY_HEADERS {
            request.headers.remove(name);
        }
    }
    if strip {
        for name in CREDENTIALS.iter().chain(sensitive) {
            request.headers.remove(name);
        }
    }
}

/// A call that ended on a redirect it would not follow: why, and the chain of URLs
/// (credentials redacted) that led there.
#[derive(Debug)]
pub struct RedirectError {
    refusal: RedirectRefusal,
    chain: Box<[String]>,
}

impl RedirectError {
    pub(crate) fn new(refusal: RedirectRefusal, visited: &[String], last: Option<&Uri>) -> Self {
        let mut chain: Vec<String> = visited.iter().map(|v| redact_url_str(v)).collect();
        if let Some(uri) = last {
            chain.push(redact_url_str(&normalised(uri)));
        }
        RedirectError {
            refusal,
            chain: chain.into_boxed_slice(),
        }
    }

    /// Why the redirect was not followed.
    pub fn refusal(&self) -> RedirectRefusal {
        self.refusal
    }

    /// The URLs the call went to, in order, ending with the one it would not go to (when
    /// there was one), credentials redacted.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.refusal)?;
        if !self.chain.is_empty() {
            write!(f, " ({})", self.chain.join(" -> "))?;
        }
        Ok(())
    }
}

impl std::error::Error for RedirectError {}
