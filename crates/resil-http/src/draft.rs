//! [`RequestDraft`]: what every driver's request builder collects apart from the body — the
//! resolved URL, query, headers and per-request overrides — and the first mistake made, which
//! `send` reports with the method and URL.

use std::borrow::ToOwned;
use std::boxed::Box;
use std::fmt;
use std::format;
use std::string::String;
use std::time::Duration;
use std::vec::Vec;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use resil_core::RetryPolicy;

use crate::config::ClientCore;
use crate::error::{Error, ErrorKind, error_on};
use crate::headers::{check_request_headers, declare_empty_body};
use crate::url::{form_urlencode, redact_url, redact_url_str, take_url_credentials};

/// A request being built (see the module docs). `B` is the driver's response body type, for
/// the error.
pub struct RequestDraft<B> {
    method: Method,
    /// Resolved when the draft is made; `/` if that failed (and `error` says so).
    uri: Uri,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    /// Boxed: the builder is moved by every setter, and a policy is large and rare.
    policy: Option<Box<RetryPolicy>>,
    timeout: Option<Duration>,
    error: Option<Error<B>>,
}

// By hand: headers may hold credentials and the URL a password.
impl<B> fmt::Debug for RequestDraft<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestDraft")
            .field("method", &self.method)
            .field("url", &redact_url(&self.uri))
            .finish_non_exhaustive()
    }
}

impl<B> RequestDraft<B> {
    /// A draft for `method url` (`url` absolute, or relative to `client`'s base URL).
    #[inline]
    pub fn new(client: &ClientCore, method: Method, url: &str) -> RequestDraft<B> {
        let (uri, error) = match client.resolve_url(&method, url) {
            Ok(uri) => (uri, None),
            Err(e) => (Uri::default(), Some(e)),
        };
        RequestDraft {
            method,
            uri,
            query: Vec::new(),
            headers: HeaderMap::new(),
            policy: None,
            timeout: None,
            error,
        }
    }

    /// Records the first mistake; `send` reports it.
    pub fn invalid(&mut self, what: String) {
        if self.error.is_none() {
            let url = redact_url(&self.uri);
            self.error = Some(
                Error::new(ErrorKind::InvalidConfig, self.method.as_str(), &url).with_source(what),
            );
        }
    }

    /// Adds a header (appended: a name may repeat); a bad name or value is a mistake.
    pub fn header(&mut self, name: &str, value: &str) {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.invalid(format!("header {name:?} is not a valid header")),
        }
    }

    /// Sets the `Content-Type`.
    pub fn content_type(&mut self, value: &'static str) {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(value));
    }

    /// Adds query parameters, percent-encoded when the request is finished.
    pub fn query(&mut self, pairs: &[(&str, &str)]) {
        self.query.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }

    /// A retry policy for this request only.
    pub fn policy(&mut self, policy: RetryPolicy) {
        self.policy = Some(Box::new(policy));
    }

    /// A total deadline for this request only.
    pub fn timeout(&mut self, total: Duration) {
        self.timeout = Some(total);
    }

    /// The request head and its policy override (`None`: the client's), or the first
    /// mistake. `client` supplies the policy a per-request timeout applies to; `body_len` is
    /// the body's length if known (`None` for a stream), which a `Content-Length` header must
    /// match; `Host` may be given once (see
    /// [`check_request_headers`](crate::driver::check_request_headers)). Credentials in the
    /// URL become `Authorization` (see
    /// [`take_url_credentials`](crate::driver::take_url_credentials)) and an empty `POST`,
    /// `PUT` or `PATCH` body is declared as `Content-Length: 0`.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn finish(
        self,
        client: &ClientCore,
        body_len: Option<u64>,
    ) -> Result<(http::request::Parts, Option<Box<RetryPolicy>>), Error<B>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let uri = if self.query.is_empty() {
            self.uri
        } else {
            with_query(&self.method, &self.uri, &self.query)?
        };
        let mut request = http::Request::new(());
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        let (mut parts, ()) = request.into_parts();
        // Most requests set no header at all, and few a timeout of their own: both stay out
        // of line, so this path stays small enough to inline into every `send`.
        if !parts.headers.is_empty() {
            check_request_headers(&parts, body_len)?;
        }
        take_url_credentials(&mut parts);
        declare_empty_body(&mut parts, body_len);
        let policy = match (self.policy, self.timeout) {
            (p, None) => p,
            (p, Some(total)) => Some(with_total_timeout(client, &parts, p, total)?),
        };
        Ok((parts, policy))
    }
}

/// `uri` with `query` percent-encoded onto it.
#[inline(never)]
fn with_query<B>(method: &Method, uri: &Uri, query: &[(String, String)]) -> Result<Uri, Error<B>> {
    let extra = form_urlencode(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sep = if uri.query().is_some() { "&" } else { "?" };
    let with_query = format!("{uri}{sep}{extra}");
    with_query.parse().map_err(|e| {
        Error::new(
            ErrorKind::InvalidUrl,
            method.as_str(),
            &redact_url_str(&with_query),
        )
        .with_source(e)
    })
}

/// `policy` (the client's when `None`) with a per-request total deadline.
#[inline(never)]
fn with_total_timeout<B>(
    client: &ClientCore,
    parts: &http::request::Parts,
    policy: Option<Box<RetryPolicy>>,
    total: Duration,
) -> Result<Box<RetryPolicy>, Error<B>> {
    let base = policy.map_or_else(|| client.policy().clone(), |p| *p);
    let attempt = base.attempt_timeout();
    let unbounded = Duration::from_nanos(u64::MAX);
    base.with_limits(
        Some(total),
        (attempt != unbounded).then_some(attempt),
        base.max_attempts(),
    )
    .map(Box::new)
    .map_err(|e| error_on(ErrorKind::InvalidConfig, parts, e))
}
