//! [`RequestDraft`]: what every driver's request builder collects apart from the body — the
//! resolved URL, query, headers and per-request overrides — and the first mistake made, which
//! `send` reports with the method and URL.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use crate::RetryPolicy;
use crate::call_error::CallError;
use crate::client_config::ClientCore;
use crate::http_glue::{ClientErrorKind, error_on, form_urlencode, redact_url, redact_url_str};

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
    error: Option<CallError<B>>,
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
                CallError::new(ClientErrorKind::InvalidConfig, self.method.as_str(), &url)
                    .with_source(what),
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
    /// [`check_request_headers`](crate::check_request_headers)). Credentials in the URL
    /// become `Authorization` (see [`take_url_credentials`](crate::take_url_credentials)) and
    /// an empty body is declared (see [`declare_empty_body`](crate::declare_empty_body)).
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn finish(
        self,
        client: &ClientCore,
        body_len: Option<u64>,
    ) -> Result<(http::request::Parts, Option<Box<RetryPolicy>>), CallError<B>> {
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
            crate::check_request_headers(&parts, body_len)?;
        }
        crate::take_url_credentials(&mut parts);
        crate::declare_empty_body(&mut parts, body_len);
        let policy = match (self.policy, self.timeout) {
            (p, None) => p,
            (p, Some(total)) => Some(with_total_timeout(client, &parts, p, total)?),
        };
        Ok((parts, policy))
    }
}

/// `uri` with `query` percent-encoded onto it.
#[inline(never)]
fn with_query<B>(
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
) -> Result<Uri, CallError<B>> {
    let extra = form_urlencode(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sep = if uri.query().is_some() { "&" } else { "?" };
    let with_query = format!("{uri}{sep}{extra}");
    with_query.parse().map_err(|e| {
        CallError::new(
            ClientErrorKind::InvalidUrl,
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
) -> Result<Box<RetryPolicy>, CallError<B>> {
    let base = policy.map_or_else(|| client.policy().clone(), |p| *p);
    let attempt = base.attempt_timeout();
    let unbounded = Duration::from_nanos(u64::MAX);
    base.with_limits(
        Some(total),
        (attempt != unbounded).then_some(attempt),
        base.max_attempts(),
    )
    .map(Box::new)
    .map_err(|e| error_on(ClientErrorKind::InvalidConfig, parts, e))
}
