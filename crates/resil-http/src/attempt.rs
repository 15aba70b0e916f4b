//! One attempt's request and response as the retry machine sees them: the request's
//! [`RequestInfo`], the request id every attempt carries, the request an attempt sends, and
//! the [`ResponseHead`] of its answer.

use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use resil_core::{HeaderLookup, Method, RequestInfo, ResponseHead, RetryAfter, UnixTime};

/// A response's headers as the policy's `retry_if` reads them.
pub(crate) struct ResponseHeaders<'a>(pub(crate) &'a HeaderMap);

impl HeaderLookup for ResponseHeaders<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(http::HeaderValue::as_bytes)
    }
}

/// The [`RequestInfo`] of an `http` request: its method and whether it carries an
/// `Idempotency-Key` (looked for only when the method is not idempotent, the one case where it
/// changes anything). `body_replayable` is the driver's to say.
pub(crate) fn request_info(
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

/// The request id a call adds to each of its attempts, the same every time. Kept out of the
/// request's own headers so a request without headers of its own copies an empty map per
/// attempt; cloning it costs two reference counts.
#[derive(Clone, Debug)]
pub struct AttemptId {
    name: HeaderName,
    value: HeaderValue,
}

impl AttemptId {
    /// A fresh id (32 hex digits mixed from `seed`) under the header `name`. (`None` is unreachable: hex
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
pub(crate) fn attempt_request<T>(
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

/// The [`ResponseHead`] of an `http` response: status, every `Retry-After` line (disagreeing
/// lines are ignored; a 2xx is never waited on, so its `Retry-After` is not read) and header
/// access for `retry_if`. `wall_clock` is needed only for an HTTP-date `Retry-After`: drivers
/// read it only for responses that are not 2xx.
pub(crate) fn response_head<'a>(
    status: StatusCode,
    headers: &'a ResponseHeaders<'a>,
    wall_clock: Option<UnixTime>,
) -> ResponseHead<'a> {
    let lookup = headers;
    let headers = headers.0;
    // A success is never waited on, so its headers are not searched.
    let retry_after = if !status.is_success() && headers.contains_key(RETRY_AFTER) {
        RetryAfter::parse_all(headers.get_all(RETRY_AFTER).iter().map(|v| v.as_bytes()))
    } else {
        None
    };
    ResponseHead::new(status.as_u16())
        .with_retry_after(retry_after, wall_clock)
        .with_headers(lookup)
}

/// A request id: 32 lowercase hex characters derived from `seed` (drivers draw the seed per
/// call, so ids are unique per client and reproducible for a seeded client).
pub(crate) fn request_id(seed: u64) -> [u8; 32] {
    let a = resil_core::rand::mix(seed);
    let b = resil_core::rand::mix(a);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn request_ids_are_the_two_mixed_words_in_hex() {
        for seed in [0, 1, 0xdead_beef, u64::MAX] {
            let a = resil_core::rand::mix(seed);
            let b = resil_core::rand::mix(a);
            let id = super::request_id(seed);
            assert_eq!(
                core::str::from_utf8(&id).unwrap(),
                format!("{a:016x}{b:016x}")
            );
        }
    }
}
