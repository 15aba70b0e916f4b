//! URLs: joining a target to the base URL, checking what a call can reach, moving credentials
//! out of the URL, redacting what must not be logged, and form encoding.

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use http::Uri;
use http::header::HeaderValue;

/// Moves the credentials a URL carries (`http://user:pass@host/`, percent-escapes decoded)
/// into `Authorization: Basic`, marked sensitive, as curl, ureq and reqwest use them; a
/// request with an `Authorization` of its own keeps that one. The URL goes on without them
/// either way, so no transport, redirect, hook or log sees them there. Without this, ureq
/// sent them and hyper-util dropped them.
///
/// ```
/// # use resil_http::driver::take_url_credentials;
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
pub(crate) fn join_url(base: Option<&Uri>, target: &str) -> Result<Uri, UrlError> {
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
pub(crate) fn check_url(uri: &Uri) -> Result<(), UrlError> {
    check_absolute(uri).map_err(|problem| UrlError {
        input: redact_url(uri),
        problem,
    })
}

/// The URL for errors and logs, with credentials replaced by `[redacted]`: `user:password@`,
/// and the values of query parameters that carry them ([`SENSITIVE_QUERY_PARAMS`]).
pub(crate) fn redact_url(uri: &Uri) -> String {
    redact_str(&uri.to_string())
}

/// Like [`redact_url`] for a URL that may not even parse (for error messages).
pub(crate) fn redact_url_str(url: &str) -> String {
    redact_str(url)
}

/// Query parameters whose values [`redact_url`] hides (names compared ignoring ASCII case):
/// OAuth tokens, API keys, passwords and the signatures of presigned URLs.
pub(crate) const SENSITIVE_QUERY_PARAMS: &[&str] = &[
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
            let plain = std::vec![b'a'; len];
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
}
