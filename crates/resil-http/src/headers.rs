//! Request headers: default headers, the framing and `Host` checks every driver makes before
//! sending, `Host` itself, bearer credentials, and the redacted view of headers for logs.

use std::fmt;
use std::format;
use std::string::String;

use http::Uri;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{ErrorKind, error_on};

/// A bearer token sent on every attempt, and replaced by what `fetch` gets when the server
/// answers 401: each driver's `AuthProvider` for it fetches with `fetch` (in resil-blocking a
/// function returning the token, in the async drivers one returning a future of it). Its
/// `Debug` shows no token.
pub struct BearerToken<F> {
    token: std::sync::RwLock<String>,
    fetch: F,
}

impl<F> BearerToken<F> {
    /// Starts with `token`; `fetch` gets a fresh one when the server answers 401.
    pub fn new(token: impl Into<String>, fetch: F) -> BearerToken<F> {
        BearerToken {
            token: std::sync::RwLock::new(token.into()),
            fetch,
        }
    }

    /// Sets `Authorization: Bearer <token>`, marked sensitive (so HTTP/2 never indexes it
    /// and debug output hides it).
    pub fn set_header(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<(), http::header::InvalidHeaderValue> {
        let token = self
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(())
    }

    /// What fetches a fresh token.
    pub fn fetch(&self) -> &F {
        &self.fetch
    }

    /// Sends `token` on every attempt from now on.
    pub fn replace(&self, token: String) {
        *self
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }
}

impl<F> fmt::Debug for BearerToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// Checks the headers that say how a request is framed and where it goes, which the caller
/// may set but the transport otherwise writes itself:
/// - `Content-Length`: every line the same decimal number and, when the body's length is
///   known (`body_len`; `None` for a stream), that length;
/// - `Host`: at most one (RFC 9112 §3.2: a server answers 400 to more), of visible ASCII (a
///   host name is; RFC 3986 §3.2.2);
/// - not `Content-Length` and `Transfer-Encoding` together (RFC 9112 §6.2: a sender must
///   not; a server or proxy that reads the other one than intended splits requests apart).
///
/// Without this, ureq refuses such a request as it writes it (and reports a malformed
/// response) or sends both framing headers, hyper sends the body's own length, both `Host`
/// lines or only the `Transfer-Encoding`; here every driver
/// refuses it before anything is sent, as an [`InvalidConfig`](ErrorKind::InvalidConfig)
/// error on the call. Neither header is needed: the transport frames the body and names the
/// host.
///
/// ```
/// # use resil_http::driver::check_request_headers;
/// let mut request = http::Request::post("http://127.0.0.1/").body(()).unwrap();
/// request.headers_mut().insert("content-length", "2".parse().unwrap());
/// let (parts, ()) = request.into_parts();
/// assert!(check_request_headers::<()>(&parts, Some(2)).is_ok());
/// let err = check_request_headers::<()>(&parts, Some(3)).unwrap_err();
/// assert!(format!("{err:#}").contains("Content-Length 2 does not match the body (3 bytes)"));
/// ```
#[inline(never)]
pub fn check_request_headers<B>(
    parts: &http::request::Parts,
    body_len: Option<u64>,
) -> Result<(), crate::Error<B>> {
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    if let Some(host) = hosts.next() {
        if hosts.next().is_some() {
            return Err(invalid_header(parts, "Host is given more than once".into()));
        }
        if host.to_str().is_err() {
            let problem = format!("Host {host:?} is not a host name (not visible ASCII)");
            return Err(invalid_header(parts, problem));
        }
    }
    let mut declared = None;
    for value in parts.headers.get_all(http::header::CONTENT_LENGTH) {
        let problem = match (parse_decimal(value.as_bytes()), declared) {
            (None, _) => format!("Content-Length {:?} is not a number of bytes", value),
            (Some(n), Some(first)) if n != first => {
                format!("Content-Length is given twice, as {first} and {n}")
            }
            (Some(n), _) => {
                declared = Some(n);
                continue;
            }
        };
        return Err(invalid_header(parts, problem));
    }
    if declared.is_some() && parts.headers.contains_key(http::header::TRANSFER_ENCODING) {
        let problem = "Content-Length and Transfer-Encoding are both given".into();
        return Err(invalid_header(parts, problem));
    }
    match (declared, body_len) {
        (Some(n), Some(len)) if n != len => Err(invalid_header(
            parts,
            format!("Content-Length {n} does not match the body ({len} bytes)"),
        )),
        _ => Ok(()),
    }
}

/// Declares an empty body as `Content-Length: 0` on a `POST`, `PUT` or `PATCH` that sends
/// none and does not frame itself (RFC 9110 §8.6: a client should send the length when the
/// method defines a meaning for content). Without it hyper and curl send no length at all,
/// which some servers answer with 411 Length Required, and ureq an empty chunked body, which
/// servers that refuse chunked requests reject. `body_len` as for
/// [`check_request_headers`].
#[inline]
/// Why a response's head frames its body in a way that cannot be trusted, if it does: a
/// `Content-Length` beside `Transfer-Encoding` (RFC 9112 6.3: a sign of smuggling, "ought to
/// be handled as an error"), one that is no number, or two that disagree. hyper and ureq
/// take the first (the coding wins), curl reads a bad length to the close; every driver
/// refuses these heads as malformed instead.
pub fn response_framing_problem(headers: &HeaderMap) -> Option<&'static str> {
    // One pass over the few headers a response has: cheaper than hashing two names.
    let (mut length, mut coded, mut bad) = (None, false, None);
    for (name, value) in headers {
        if name == http::header::TRANSFER_ENCODING {
            coded = true;
        } else if name == http::header::CONTENT_LENGTH && bad.is_none() {
            bad = content_length(value, &mut length);
        }
    }
    if coded && (length.is_some() || bad.is_some()) {
        return Some("the response has both Transfer-Encoding and Content-Length");
    }
    bad
}

/// Reads one `Content-Length` value (a list of equal numbers) into `length`; what is wrong
/// with it, if anything.
fn content_length(value: &HeaderValue, length: &mut Option<u64>) -> Option<&'static str> {
    let bytes = value.as_bytes();
    if (1..20).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
        // One number (as good as always): 19 digits fit a u64.
        let n = bytes
            .iter()
            .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
        if length.is_some_and(|l| l != n) {
            return Some("the response has two different Content-Length values");
        }
        *length = Some(n);
        return None;
    }
    let Ok(text) = value.to_str() else {
        return Some("the response's Content-Length is not a number");
    };
    for part in text.split(',').map(str::trim) {
        // Digits only: `u64::from_str` would also take a leading `+`.
        let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let Some(n) = part.parse::<u64>().ok().filter(|_| digits) else {
            return Some("the response's Content-Length is not a number");
        };
        if length.is_some_and(|l| l != n) {
            return Some("the response has two different Content-Length values");
        }
        *length = Some(n);
    }
    None
}

pub(crate) fn declare_empty_body(parts: &mut http::request::Parts, body_len: Option<u64>) {
    use http::Method;
    if body_len == Some(0)
        && (parts.method == Method::POST
            || parts.method == Method::PUT
            || parts.method == Method::PATCH)
    {
        insert_zero_length(&mut parts.headers);
    }
}

#[inline(never)]
fn insert_zero_length(headers: &mut http::HeaderMap) {
    if !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
}

fn invalid_header<B>(parts: &http::request::Parts, problem: String) -> crate::Error<B> {
    error_on(ErrorKind::InvalidConfig, parts, problem)
}

/// ASCII digits only (no sign, space or list), as a `u64`; `None` if empty or too large.
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Sets `Host` to `uri`'s authority unless `headers` have one. The authority already reads
/// `host:port`; an HTTP/1 client otherwise formats that into a new string on every request
/// to a port that is not the scheme's default. Nothing is set without an authority, or with
/// credentials in it, which must not be sent.
///
/// ```
/// # use resil_http::driver::fill_host_header;
/// # use http::{HeaderMap, header::HOST};
/// let mut headers = HeaderMap::new();
/// fill_host_header(&mut headers, &"http://127.0.0.1:8080/x".parse().unwrap());
/// assert_eq!(headers[HOST], "127.0.0.1:8080");
/// fill_host_header(&mut headers, &"http://other/".parse().unwrap());
/// assert_eq!(headers[HOST], "127.0.0.1:8080", "the request's own Host stays");
/// let mut headers = HeaderMap::new();
/// fill_host_header(&mut headers, &"http://user:pw@h/".parse().unwrap());
/// fill_host_header(&mut headers, &"/relative".parse().unwrap());
/// assert!(headers.is_empty());
/// ```
// Inlined across crates: the default transports call it on every attempt.
#[inline]
pub fn fill_host_header(headers: &mut HeaderMap, uri: &Uri) {
    // `contains_key` rather than `entry`: on the usual empty map it neither hashes nor
    // allocates before the authority is known to be usable.
    let Some(authority) = uri.authority() else {
        return;
    };
    if headers.contains_key(http::header::HOST) {
        return;
    }
    if let Some(host) = host_value(authority) {
        headers.insert(http::header::HOST, host);
    }
}

std::thread_local! {
    /// The authority this thread last made a `Host` value of, and that value: a client calls
    /// the same backend over and over, and checking and copying the authority into a new
    /// value cost ~300 instructions and an allocation per request. The text is a copy, so the
    /// request's URL (its query may hold a token) is not kept alive.
    static LAST_HOST: core::cell::RefCell<Option<(String, Option<HeaderValue>)>> =
        const { core::cell::RefCell::new(None) };
}

/// The `Host` value for `authority`: none with credentials in it, which must not be sent.
fn host_value(authority: &http::uri::Authority) -> Option<HeaderValue> {
    let text = authority.as_str();
    LAST_HOST.with(|last| {
        remember_last(
            last,
            |seen| seen == text,
            || {
                let value = if text.contains('@') {
                    None
                } else {
                    HeaderValue::from_str(text).ok()
                };
                (text.into(), value)
            },
        )
    })
}

/// A one-entry memo, for a driver's per-thread cache of what it derives from a request's
/// authority (a client calls one backend over and over): the value `last` holds if `is_key`
/// accepts its key, otherwise the one `make` gives with its key, which `last` then keeps.
///
/// ```
/// use core::cell::RefCell;
/// use resil_http::driver::remember_last;
///
/// let last = RefCell::new(None);
/// let length = |key: &str| {
///     remember_last(&last, |k: &String| k == key, || (key.to_owned(), key.len()))
/// };
/// assert_eq!(length("abc"), 3);
/// // The same key again: the kept value, `make` not called.
/// assert_eq!(remember_last(&last, |k| k == "abc", || unreachable!()), 3);
/// assert_eq!(length("de"), 2);
/// ```
pub fn remember_last<K, V: Clone>(
    last: &core::cell::RefCell<Option<(K, V)>>,
    is_key: impl FnOnce(&K) -> bool,
    make: impl FnOnce() -> (K, V),
) -> V {
    if let Some((key, value)) = &*last.borrow() {
        if is_key(key) {
            return value.clone();
        }
    }
    let (key, value) = make();
    *last.borrow_mut() = Some((key, value.clone()));
    value
}

/// Adds every default header the request does not set itself (all its values); the request's
/// own headers always win.
pub(crate) fn merge_default_headers(request: &mut HeaderMap, defaults: &HeaderMap) {
    for name in defaults.keys() {
        if !request.contains_key(name) {
            for value in defaults.get_all(name) {
                request.append(name.clone(), value.clone());
            }
        }
    }
}

/// Headers whose values must never reach a log: credentials, cookies and API keys.
pub fn is_sensitive_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-api-key"
            | "api-key"
            | "x-auth-token"
            | "x-amz-security-token"
    )
}

/// A loggable view of headers, with sensitive values replaced by `[redacted]`.
///
/// ```
/// # use http::HeaderMap;
/// let mut h = HeaderMap::new();
/// h.insert("authorization", "Bearer secret".parse().unwrap());
/// h.insert("accept", "text/plain".parse().unwrap());
/// let shown = resil_http::driver::redacted_headers(&h).to_string();
/// assert!(shown.contains("authorization: [redacted]"));
/// assert!(shown.contains("accept: text/plain"));
/// assert!(!shown.contains("secret"));
/// ```
pub fn redacted_headers(headers: &HeaderMap) -> impl fmt::Display + '_ {
    RedactedHeaders(headers)
}

struct RedactedHeaders<'a>(&'a HeaderMap);

impl fmt::Display for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if is_sensitive_header(name) {
                write!(f, "{name}: [redacted]")?;
            } else {
                match value.to_str() {
                    Ok(v) => write!(f, "{name}: {v}")?,
                    Err(_) => write!(f, "{name}: [{} bytes]", value.len())?,
                }
            }
        }
        Ok(())
    }
}
