//! Glue for the `http` crate, shared by every driver: IO-free, so it lives in core.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{StatusCode, Uri};

use crate::policy::{HeaderLookup, Method, RequestInfo, ResponseHead};
use crate::retry_after::RetryAfter;
use crate::time::UnixTime;

impl HeaderLookup for HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(http::HeaderValue::as_bytes)
    }
}

/// The [`RequestInfo`] of an `http` request: its method and whether it carries an
/// `Idempotency-Key` (looked for only when the method is not idempotent, the one case where it
/// changes anything). `body_replayable` is the driver's to say.
pub fn request_info(
    method: &http::Method,
    headers: &HeaderMap,
    body_replayable: bool,
) -> RequestInfo {
    // A constant name skips parsing and lower-casing the string on every call.
    const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
    let method = match *method {
        http::Method::GET => Method::Get,
        http::Method::POST => Method::Post,
        ref other => Method::from_bytes(other.as_str().as_bytes()),
    };
    RequestInfo::new(method)
        // The key only matters for a method that is not idempotent already.
        .idempotency_key(!method.is_idempotent() && headers.contains_key(IDEMPOTENCY_KEY))
        .body_replayable(body_replayable)
}

/// What is left of an attempt at `now`, rounded *down* to whole milliseconds (never past the
/// deadline) and at least 1 ms: for transports that take a per-request timeout (ureq turns a
/// zero timeout into a whole second; curl's is in milliseconds), and at most
/// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
pub fn attempt_budget(deadline: crate::Instant, now: crate::Instant) -> core::time::Duration {
    let left = deadline.saturating_duration_since(now);
    crate::library_timeout(core::time::Duration::from_millis(
        u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
    ))
}

/// Sets `Authorization: Bearer <token>`, marked sensitive (so HTTP/2 never indexes it and
/// debug output hides it).
pub fn set_bearer(
    headers: &mut HeaderMap,
    token: &str,
) -> Result<(), http::header::InvalidHeaderValue> {
    let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))?;
    value.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, value);
    Ok(())
}

/// Moves the credentials a URL carries (`http://user:pass@host/`, percent-escapes decoded)
/// into `Authorization: Basic`, marked sensitive, as curl, ureq and reqwest use them; a
/// request with an `Authorization` of its own keeps that one. The URL goes on without them
/// either way, so no transport, redirect, hook or log sees them there. Without this, ureq
/// sent them and hyper-util dropped them.
///
/// ```
/// # use resil_core::take_url_credentials;
/// let request = http::Request::get("http://me:p%40ss@127.0.0.1:8080/x").body(()).unwrap();
/// let (mut parts, ()) = request.into_parts();
/// take_url_credentials(&mut parts);
/// assert_eq!(parts.uri, "http://127.0.0.1:8080/x");
/// assert_eq!(parts.headers["authorization"], "Basic bWU6cEBzcw=="); // me:p@ss
/// ```
#[inline]
pub fn take_url_credentials(parts: &mut http::request::Parts) {
    if parts
        .uri
        .authority()
        .is_some_and(|a| has_at_sign(a.as_str().as_bytes()))
    {
        move_url_credentials(parts);
    }
}

/// Whether `bytes` holds an `@`, read a word at a time: this runs on every call, and a byte
/// loop over a usual authority (`127.0.0.1:8080`) cost ~85 instructions.
fn has_at_sign(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let has_at = |word: [u8; 8]| {
        // A zero byte where `word` had an `@`; the test for one is exact.
        let w = u64::from_ne_bytes(word) ^ (ONES * u64::from(b'@'));
        w.wrapping_sub(ONES) & !w & (ONES << 7) != 0
    };
    let word_at = |start: usize| {
        let word = bytes.get(start..start + 8).map(<[u8; 8]>::try_from);
        word.is_some_and(|w| w.is_ok_and(has_at))
    };
    match bytes.len() {
        0..8 => bytes.contains(&b'@'),
        // Two words, overlapping unless there are 16 bytes.
        len @ 8..=16 => word_at(0) || word_at(len - 8),
        len => (0..len - 8).step_by(8).any(word_at) || word_at(len - 8),
    }
}

#[inline(never)]
fn move_url_credentials(parts: &mut http::request::Parts) {
    let Some((userinfo, host)) = parts
        .uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once('@'))
    else {
        return;
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut plain = percent_decode(user);
    plain.push(b':');
    plain.extend(percent_decode(password));
    let mut without = parts.uri.clone().into_parts();
    without.authority = host.parse().ok();
    // The host was part of a valid authority, so neither step fails; if one did, the URL
    // keeps its credentials rather than lose its host.
    let Ok(uri) = Uri::from_parts(without) else {
        return;
    };
    parts.uri = uri;
    if !parts.headers.contains_key(http::header::AUTHORIZATION) {
        if let Ok(mut value) = HeaderValue::try_from(format!("Basic {}", base64(&plain))) {
            value.set_sensitive(true);
            parts.headers.insert(http::header::AUTHORIZATION, value);
        }
    }
}

/// `%XX` escapes decoded; a `%` without two hex digits after it stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), as Basic credentials are written.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request id a call adds to each of its attempts, the same every time. Kept out of the
/// request's own headers so a request without headers of its own copies an empty map per
/// attempt; cloning it costs two reference counts.
#[derive(Clone, Debug)]
pub struct AttemptId {
    name: HeaderName,
    value: HeaderValue,
}

impl AttemptId {
    /// A fresh id (see [`request_id`]) under the header `name`. (`None` is unreachable: hex
    /// digits always make a valid header value.)
    pub fn new(name: HeaderName, seed: u64) -> Option<AttemptId> {
        // Shared from the start: every attempt's copy is then a reference count, not a move
        // of the bytes to shared storage on the first clone.
        let bytes = bytes::Bytes::from_owner(request_id(seed));
        let value = HeaderValue::from_maybe_shared(bytes).ok()?;
        Some(AttemptId { name, value })
    }

    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The id.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }
}

/// The request one attempt sends: `parts`' method, URI, version and headers (cloned; not its
/// extensions), plus the call's request id if it adds one, around `body`.
pub fn attempt_request<T>(
    parts: &http::request::Parts,
    id: Option<&AttemptId>,
    body: T,
) -> http::Request<T> {
    // Cloned whole, not assigned field by field into `Request::new`: that builds and drops a
    // default URI and header map on every attempt.
    let mut head = parts.clone();
    head.extensions.clear();
    let mut request = http::Request::from_parts(head, body);
    if let Some(id) = id {
        request
            .headers_mut()
            .insert(id.name.clone(), id.value.clone());
    }
    request
}

/// The error for a request whose credentials could not be added.
pub fn auth_error<B>(
    parts: &http::request::Parts,
    source: impl Into<alloc::boxed::Box<dyn core::error::Error + Send + Sync>>,
) -> crate::CallError<B> {
    error_on(ClientErrorKind::Auth, parts, source)
}

/// The error for a request its transport cannot send as it stands (a header value the HTTP
/// library cannot carry, say): [`InvalidConfig`](ClientErrorKind::InvalidConfig), never
/// retried.
pub fn unsendable_request<B>(
    parts: &http::request::Parts,
    source: impl Into<alloc::boxed::Box<dyn core::error::Error + Send + Sync>>,
) -> crate::CallError<B> {
    error_on(ClientErrorKind::InvalidConfig, parts, source)
}

/// An error of `kind` on the call `parts` describes (its URL redacted), caused by `source`.
pub(crate) fn error_on<B>(
    kind: ClientErrorKind,
    parts: &http::request::Parts,
    source: impl Into<alloc::boxed::Box<dyn core::error::Error + Send + Sync>>,
) -> crate::CallError<B> {
    crate::CallError::new(kind, parts.method.as_str(), &redact_url(&parts.uri)).with_source(source)
}

/// The [`ResponseHead`] of an `http` response: status, every `Retry-After` line (disagreeing
/// lines are ignored; a 2xx is never waited on, so its `Retry-After` is not read) and header
/// access for `retry_if`. `wall_clock` is needed only for an HTTP-date `Retry-After`: drivers
/// read it only for responses that are not 2xx.
pub fn response_head<'a>(
    status: StatusCode,
    headers: &'a HeaderMap,
    wall_clock: Option<UnixTime>,
) -> ResponseHead<'a> {
    // A success is never waited on, so its headers are not searched.
    let retry_after = if !status.is_success() && headers.contains_key(RETRY_AFTER) {
        RetryAfter::parse_all(headers.get_all(RETRY_AFTER).iter().map(|v| v.as_bytes()))
    } else {
        None
    };
    ResponseHead::new(status.as_u16())
        .with_retry_after(retry_after, wall_clock)
        .with_headers(headers)
}

/// A URL that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError {
    pub(crate) input: String,
    pub(crate) problem: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL `{}`: {}", self.input, self.problem)
    }
}

impl core::error::Error for UrlError {}

/// Resolves `target` against a client's base URL.
///
/// An absolute `http`/`https` URL is used as it is. Anything else is a path (and optional
/// query) appended to the base's path with exactly one `/` between them, so a base of
/// `http://api/v1` keeps its `/v1` whether the target is `users` or `/users`.
///
/// ```
/// # use resil_core::join_url;
/// let base = "http://127.0.0.1:8080/v1/".parse().unwrap();
/// assert_eq!(join_url(Some(&base), "/users?page=2")?.to_string(), "http://127.0.0.1:8080/v1/users?page=2");
/// assert_eq!(join_url(Some(&base), "http://other/x")?.to_string(), "http://other/x");
/// assert!(join_url(None, "users").is_err());
/// # Ok::<(), resil_core::UrlError>(())
/// ```
pub fn join_url(base: Option<&Uri>, target: &str) -> Result<Uri, UrlError> {
    let error = |problem| UrlError {
        input: redact_str(target),
        problem,
    };
    if has_scheme(target) {
        let uri: Uri = target.parse().map_err(|_| error("not a valid URL"))?;
        return check_absolute(&uri).map(|()| uri).map_err(error);
    }
    let base = base.ok_or_else(|| error("relative URL and no base URL is set"))?;
    check_url(base)?;
    let base_path = base.path().trim_end_matches('/');
    let joined = format!(
        "{}://{}{}/{}",
        base.scheme_str().unwrap_or("http"),
        base.authority().map(|a| a.as_str()).unwrap_or(""),
        base_path,
        target.trim_start_matches('/')
    );
    joined
        .parse()
        .map_err(|_| error("does not form a valid URL with the base"))
}

/// Whether `target` starts with `scheme://` (RFC 3986: a letter, then letters, digits, `+`,
/// `-` or `.`). A `://` later on, in a query such as `?next=http://x`, leaves it a path.
fn has_scheme(target: &str) -> bool {
    let bytes = target.as_bytes();
    let scheme_len = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(bytes.len());
    scheme_len > 0 && bytes[0].is_ascii_alphabetic() && bytes[scheme_len..].starts_with(b"://")
}

fn check_absolute(uri: &Uri) -> Result<(), &'static str> {
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("scheme must be http or https");
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host");
    };
    // `http::Uri` takes any digits as a port; one past 65535 (or 0) would only fail later,
    // as a refused connection, and be retried. Read over bytes: this runs on every call, and
    // `Authority::host` with `str` searching cost ~750 instructions, 2.5 % of a request.
    if port_out_of_range(authority.as_str().as_bytes()) {
        return Err("port must be a number from 1 to 65535");
    }
    Ok(())
}

/// Whether an authority (`user@host:port`, `[v6]:port`) names a port other than 1-65535;
/// no port, or an empty one, is the scheme's default.
fn port_out_of_range(authority: &[u8]) -> bool {
    // A port is the digits after the last colon; a colon in user info or an IPv6 address is
    // followed by something other than digits to the end (`@…`, `…]`). Read from the end in
    // one pass: this runs on every call.
    let (mut value, mut place, mut any_digit) = (0u32, 1u32, false);
    for &byte in authority.iter().rev() {
        match byte {
            b'0'..=b'9' => {
                let digit = u32::from(byte - b'0');
                // Past five digits only leading zeros keep a port in range.
                value = if place > 10_000 && digit != 0 {
                    u32::MAX
                } else {
                    value.saturating_add(digit * place)
                };
                place = (place * 10).min(100_000);
                any_digit = true;
            }
            b':' => return any_digit && !(1..=u32::from(u16::MAX)).contains(&value),
            _ => return false,
        }
    }
    false
}

/// Whether a call can be made to `uri` as it is (an `http::Request` a caller built, which
/// [`join_url`] never saw): an `http` or `https` URL with a host and, if it names one, a port
/// from 1 to 65535. The error names the URL with its credentials redacted.
///
/// ```
/// use resil_core::check_url;
///
/// assert!(check_url(&"http://127.0.0.1:8080/x".parse().unwrap()).is_ok());
/// let err = check_url(&"/relative".parse().unwrap()).unwrap_err();
/// assert_eq!(err.to_string(), "invalid URL `/relative`: scheme must be http or https");
/// ```
pub fn check_url(uri: &Uri) -> Result<(), UrlError> {
    check_absolute(uri).map_err(|problem| UrlError {
        input: redact_url(uri),
        problem,
    })
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
/// refuses it before anything is sent, as an [`InvalidConfig`](ClientErrorKind::InvalidConfig)
/// error on the call. Neither header is needed: the transport frames the body and names the
/// host.
///
/// ```
/// # use resil_core::check_request_headers;
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
) -> Result<(), crate::CallError<B>> {
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
///
/// ```
/// # use resil_core::declare_empty_body;
/// let (mut post, ()) = http::Request::post("http://127.0.0.1/").body(()).unwrap().into_parts();
/// declare_empty_body(&mut post, Some(0));
/// assert_eq!(post.headers["content-length"], "0");
/// let (mut get, ()) = http::Request::get("http://127.0.0.1/").body(()).unwrap().into_parts();
/// declare_empty_body(&mut get, Some(0));
/// assert!(get.headers.is_empty(), "a GET's content has no meaning to declare");
/// let (mut stream, ()) = http::Request::put("http://127.0.0.1/").body(()).unwrap().into_parts();
/// declare_empty_body(&mut stream, None);
/// assert!(stream.headers.is_empty(), "a stream's length is unknown");
/// ```
#[inline]
pub fn declare_empty_body(parts: &mut http::request::Parts, body_len: Option<u64>) {
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

fn invalid_header<B>(parts: &http::request::Parts, problem: String) -> crate::CallError<B> {
    error_on(ClientErrorKind::InvalidConfig, parts, problem)
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
/// # use resil_core::fill_host_header;
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
/// use resil_core::remember_last;
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
pub fn merge_default_headers(request: &mut HeaderMap, defaults: &HeaderMap) {
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
/// let shown = resil_core::redacted_headers(&h).to_string();
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

/// The URL for errors and logs, with credentials replaced by `[redacted]`: `user:password@`,
/// and the values of query parameters that carry them ([`SENSITIVE_QUERY_PARAMS`]).
///
/// ```
/// let uri = "http://me:pw@127.0.0.1/v1?page=2&api_key=k-123".parse().unwrap();
/// assert_eq!(
///     resil_core::redact_url(&uri),
///     "http://[redacted]@127.0.0.1/v1?page=2&api_key=[redacted]"
/// );
/// ```
pub fn redact_url(uri: &Uri) -> String {
    redact_str(&uri.to_string())
}

/// Like [`redact_url`] for a URL that may not even parse (for error messages).
pub fn redact_url_str(url: &str) -> String {
    redact_str(url)
}

/// Query parameters whose values [`redact_url`] hides (names compared ignoring ASCII case):
/// OAuth tokens, API keys, passwords and the signatures of presigned URLs.
pub const SENSITIVE_QUERY_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "client_secret",
    "id_token",
    "key",
    "password",
    "refresh_token",
    "secret",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
];

fn redact_str(url: &str) -> String {
    let url = match url.find("://").map(|i| i + 3) {
        Some(scheme_end) => {
            let rest = &url[scheme_end..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}[redacted]@{}", &url[..scheme_end], &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    redact_query(url)
}

fn redact_query(url: String) -> String {
    let Some(query_start) = url.find('?').map(|i| i + 1) else {
        return url;
    };
    let query_end = url[query_start..]
        .find('#')
        .map_or(url.len(), |i| query_start + i);
    let sensitive = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        SENSITIVE_QUERY_PARAMS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
    };
    let query = &url[query_start..query_end];
    if !query.split('&').any(sensitive) {
        return url;
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..query_start]);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if sensitive(pair) => {
                out.push_str(name);
                out.push_str("=[redacted]");
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(&url[query_end..]);
    out
}

/// What went wrong with a call, in categories a caller can act on; every driver's error type
/// reports one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// The transport failed and no retry followed (connection refused, reset, DNS, TLS, …).
    Transport(crate::ErrorKind),
    /// An attempt timed out and no retry followed.
    Timeout,
    /// The final response had a failure status (after retries, or from `error_for_status`).
    Status(u16),
    /// The circuit breaker is open: no request was sent.
    CircuitOpen,
    /// The retry budget refused another retry.
    BudgetExhausted,
    /// Another attempt would not fit in the total deadline.
    DeadlineExceeded,
    /// The server's `Retry-After` asked for longer than the policy allows.
    RetryAfterTooLong(core::time::Duration),
    /// The request may have been processed and is not idempotent, so it was not replayed.
    NotReplayed,
    /// The request body was a stream and cannot be sent again.
    BodyNotReplayable,
    /// Reading the response body failed, it was cut short, or it exceeded the size limit.
    Body,
    /// The response body arrived whole but could not be decoded: not UTF-8 (`text`) or not
    /// the JSON asked for (`json`).
    Decode,
    /// The client or request configuration is invalid.
    InvalidConfig,
    /// The URL is invalid, or relative without a base URL.
    InvalidUrl,
    /// Authentication headers could not be obtained or refreshed.
    Auth,
}

impl ClientErrorKind {
    /// The kind for a retry machine that gave up.
    pub fn from_give_up(give_up: &crate::GiveUp) -> ClientErrorKind {
        use crate::{Cause, GiveUpReason};
        match give_up.reason {
            GiveUpReason::DeadlineExceeded => ClientErrorKind::DeadlineExceeded,
            GiveUpReason::RetryAfterTooLong { requested } => {
                ClientErrorKind::RetryAfterTooLong(requested)
            }
            GiveUpReason::NonIdempotent => ClientErrorKind::NotReplayed,
            GiveUpReason::BodyNotReplayable => ClientErrorKind::BodyNotReplayable,
            GiveUpReason::BudgetExhausted => ClientErrorKind::BudgetExhausted,
            GiveUpReason::CircuitOpen { .. } => ClientErrorKind::CircuitOpen,
            _ => match give_up.last {
                Some(Cause::Status(s)) => ClientErrorKind::Status(s),
                Some(Cause::Error(crate::ErrorKind::Timeout)) => ClientErrorKind::Timeout,
                Some(Cause::Error(k)) => ClientErrorKind::Transport(k),
                None => ClientErrorKind::Transport(crate::ErrorKind::Other),
            },
        }
    }
}

/// A request id: 32 lowercase hex characters derived from `seed` (drivers draw the seed per
/// call, so ids are unique per client and reproducible for a seeded client).
pub fn request_id(seed: u64) -> [u8; 32] {
    let a = crate::rand::mix(seed);
    let b = crate::rand::mix(a);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    let (high, low) = id.split_at_mut(16);
    for i in 0..16 {
        let shift = 60 - 4 * i;
        high[i] = HEX[((a >> shift) & 0xf) as usize];
        low[i] = HEX[((b >> shift) & 0xf) as usize];
    }
    id
}

/// Percent-encodes pairs as `application/x-www-form-urlencoded` (also right for query
/// strings): `a=1+2&b=%C3%A9`.
pub fn form_urlencode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use alloc::format;

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(super::base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(super::base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn an_at_sign_is_found_wherever_it_is() {
        for len in 0..40 {
            let plain = alloc::vec![b'a'; len];
            assert!(!super::has_at_sign(&plain), "{len}");
            for at in 0..len {
                let mut bytes = plain.clone();
                bytes[at] = b'@';
                assert!(super::has_at_sign(&bytes), "{len} {at}");
                // Bytes one off '@' in either direction, and with the high bit set.
                for near in [b'?', b'A', b'@' | 0x80, 0xff, 0] {
                    bytes[at] = near;
                    assert!(!super::has_at_sign(&bytes), "{len} {at} {near}");
                }
            }
        }
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        assert_eq!(super::percent_decode("a%40b%3A%2f"), b"a@b:/");
        assert_eq!(super::percent_decode("%zz%4%"), b"%zz%4%");
        assert_eq!(super::percent_decode("%C3%A9"), "\u{e9}".as_bytes());
    }

    #[test]
    fn request_ids_are_the_two_mixed_words_in_hex() {
        for seed in [0, 1, 0xdead_beef, u64::MAX] {
            let a = crate::rand::mix(seed);
            let b = crate::rand::mix(a);
            let id = super::request_id(seed);
            assert_eq!(
                core::str::from_utf8(&id).unwrap(),
                format!("{a:016x}{b:016x}")
            );
        }
    }
}
