//! A response body that fails while it is read: where the next request can pick it up, and
//! whether the server's answer really continues it. A driver reads; this decides.
//!
//! A body can resume with a range request when its response said `Accept-Ranges: bytes` and
//! carried a validator that pins the representation: a strong `ETag`, else `Last-Modified`.
//! The next request then asks `Range: bytes=N-` with `If-Range`, and only a `206` whose
//! `Content-Range` starts at `N` and whose validator is the same continues the body. A `200`
//! (the server sent the whole body again) may replace it only while none of it reached the
//! caller; bytes are never duplicated or spliced.

use std::fmt;
use std::format;
use std::string::String;

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};

/// What the body of one response needs to be picked up where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// The validator to send back as `If-Range`: a strong `ETag`, or `Last-Modified`.
    validator: Option<HeaderValue>,
}

impl ResumePoint {
    /// What `headers` (a response's) allow: a range request if the server said
    /// `Accept-Ranges: bytes` and gave a strong `ETag` or a `Last-Modified`.
    pub fn of(headers: &HeaderMap) -> ResumePoint {
        // One pass over the few headers a response has: cheaper than hashing three names.
        let (mut ranges, mut etag, mut modified) = (false, None, None);
        for (name, value) in headers {
            if name == header::ACCEPT_RANGES {
                ranges |= value
                    .to_str()
                    .is_ok_and(|v| v.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes")));
            } else if name == header::ETAG && etag.is_none() {
                etag = Some(value);
            } else if name == header::LAST_MODIFIED && modified.is_none() {
                modified = Some(value);
            }
        }
        let strong_etag = etag.filter(|tag| !tag.as_bytes().starts_with(b"W/"));
        let validator = ranges.then(|| strong_etag.or(modified)).flatten().cloned();
        ResumePoint { validator }
    }

    /// What `response` allows: as [`of`](Self::of) its headers, but never a range when its
    /// transport decoded the body's content encoding ([`ContentDecoded`]): a `Range` counts the
    /// bytes the server sent, not the decoded ones the reader saw.
    pub fn of_response<B>(response: &http::Response<B>) -> ResumePoint {
        if response.extensions().get::<ContentDecoded>().is_some() {
            return ResumePoint { validator: None };
        }
        ResumePoint::of(response.headers())
    }

    /// Whether the body can resume at a byte past its start.
    pub fn ranges(&self) -> bool {
        self.validator.is_some()
    }

    /// Whether a body that failed at byte `offset` can go on at all: from its start (nothing
    /// read, or `may_restart`: its reader drops what it holds), or with a range. A driver asks
    /// before it sends anything: without either, the request would be wasted.
    pub fn may_go_on(&self, offset: u64, may_restart: bool) -> bool {
        offset == 0 || may_restart || self.ranges()
    }

    /// Asks, in `headers` (the next request's), for the representation from byte `offset`
    /// on, if it is still the same one; at offset 0, or without a validator, asks for the
    /// whole body.
    pub fn ask(&self, headers: &mut HeaderMap, offset: u64) {
        headers.remove(header::RANGE);
        headers.remove(header::IF_RANGE);
        if let (Some(validator), true) = (&self.validator, offset > 0) {
            if let Ok(range) = HeaderValue::try_from(format!("bytes={offset}-")) {
                headers.insert(header::RANGE, range);
                headers.insert(header::IF_RANGE, validator.clone());
            }
        }
    }

    /// Whether a response to the request [`ask`](Self::ask) made for byte `offset` continues
    /// the body: `Continue` (its body is what comes after byte `offset`), `Restart` (its body
    /// is the whole representation again: only usable if nothing was handed out), or why not.
    pub fn check(
        &self,
        offset: u64,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Resumed, ResumeError> {
        match status {
            StatusCode::OK => Ok(Resumed::Restart),
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let Some(validator) = &self.validator else {
                    return Err(ResumeError::UnaskedRange);
                };
                let start = headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_start);
                if start != Some(offset) {
                    return Err(ResumeError::WrongRange {
                        asked: offset,
                        got: headers
                            .get(header::CONTENT_RANGE)
                            .and_then(|v| v.to_str().ok())
                            .map(String::from),
                    });
                }
                let name = if headers.contains_key(header::ETAG) {
                    header::ETAG
                } else {
                    header::LAST_MODIFIED
                };
                match headers.get(&name) {
                    Some(v) if v != validator && (name == header::ETAG) == is_etag(validator) => {
                        Err(ResumeError::Changed)
                    }
                    _ => Ok(Resumed::Continue),
                }
            }
            StatusCode::PARTIAL_CONTENT => Err(ResumeError::UnaskedRange),
            other => Err(ResumeError::Status(other.as_u16())),
        }
    }
}

impl ResumePoint {
    /// How a driver goes on with a body that failed at byte `offset`, given the response to
    /// the request [`ask`](Self::ask) made: `Continue` it, `Restart` it (its reader is told to
    /// drop what it holds; allowed while nothing reached the caller, or when `may_restart`
    /// because the caller reads the body whole into a buffer it empties), or why neither.
    pub fn continues(
        &self,
        offset: u64,
        may_restart: bool,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Resumed, ResumeError> {
        match self.check(offset, status, headers)? {
            Resumed::Restart if offset > 0 && !may_restart => {
                Err(ResumeError::Restarted { handed: offset })
            }
            resumed => Ok(resumed),
        }
    }
}

/// A response extension a transport adds when it decoded the body's content encoding
/// (curl's gzip, say): its bytes are not the server's, so the body cannot resume with a range
/// (see [`ResumePoint::of_response`]); it can still start again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContentDecoded;

/// An `ETag` value looks like `"…"` (a `Last-Modified` is a date).
fn is_etag(value: &HeaderValue) -> bool {
    value.as_bytes().first() == Some(&b'"')
}

/// The first byte of `bytes N-M/T` (or `bytes N-M/*`).
fn range_start(content_range: &str) -> Option<u64> {
    let spec = content_range.trim().strip_prefix("bytes")?.trim_start();
    let (range, _total) = spec.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start <= end).then_some(start)
}

/// How a response to a resuming request continues the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// It carries the bytes from where the body stopped.
    Continue,
    /// It carries the whole body again.
    Restart,
}

/// Why a response cannot continue a body that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeError {
    /// The server answered with this status instead of the body.
    Status(u16),
    /// It sent another range than the one asked for (its `Content-Range`, if any).
    WrongRange {
        /// The byte the body stopped at.
        asked: u64,
        /// The `Content-Range` it sent.
        got: Option<String>,
    },
    /// It sent a range of another version of the representation (another validator).
    Changed,
    /// It sent a range nobody asked for.
    UnaskedRange,
    /// It sent the whole body again, but part of it had already been handed out: the two
    /// cannot be spliced.
    Restarted {
        /// Bytes handed out before the body failed.
        handed: u64,
    },
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::Status(status) => {
                write!(f, "resuming the body, the server answered {status}")
            }
            ResumeError::WrongRange { asked, got } => write!(
                f,
                "resuming the body at byte {asked}, the server sent {}",
                got.as_deref().unwrap_or("no Content-Range")
            ),
            ResumeError::Changed => {
                f.write_str("resuming the body, the server sent another version of it")
            }
            ResumeError::UnaskedRange => f.write_str("the server sent a range nobody asked for"),
            ResumeError::Restarted { handed } => write!(
                f,
                "the server sent the whole body again after {handed} bytes were read, which \
                 cannot be spliced"
            ),
        }
    }
}

impl std::error::Error for ResumeError {}

/// A body that failed after some of it reached its reader, from a response that allowed no
/// range request (`Accept-Ranges: bytes` with a strong `ETag` or a `Last-Modified`), so it
/// cannot go on: starting it again would splice two bodies. Its cause is how it failed.
#[derive(Debug)]
pub struct CannotResume {
    /// Bytes read before it failed.
    pub handed: u64,
    cause: crate::BoxError,
}

impl CannotResume {
    /// The body failed with `cause` after `handed` bytes were read.
    pub fn new(handed: u64, cause: impl Into<crate::BoxError>) -> CannotResume {
        CannotResume {
            handed,
            cause: cause.into(),
        }
    }
}

impl fmt::Display for CannotResume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the body broke off after {} bytes were read and cannot resume: the response allowed \
             no range request (Accept-Ranges: bytes with a strong ETag or Last-Modified)",
            self.handed
        )
    }
}

impl std::error::Error for CannotResume {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::StatusCode;
    use http::header::{self, HeaderMap, HeaderValue};

    use super::{ResumeError, ResumePoint, Resumed};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_ranges_with_a_validator_can_resume() {
        let strong = headers(&[("accept-ranges", "bytes"), ("etag", "\"v1\"")]);
        assert!(ResumePoint::of(&strong).ranges());
        let dated = headers(&[
            ("accept-ranges", "none, bytes"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(ResumePoint::of(&dated).ranges());
        for without in [
            headers(&[("etag", "\"v1\"")]),
            headers(&[("accept-ranges", "none"), ("etag", "\"v1\"")]),
            headers(&[("accept-ranges", "bytes"), ("etag", "W/\"v1\"")]),
            headers(&[("accept-ranges", "bytes")]),
        ] {
            assert!(!ResumePoint::of(&without).ranges(), "{without:?}");
        }
    }

    #[test]
    fn a_resuming_request_asks_for_the_rest_if_it_is_the_same() {
        let point = ResumePoint::of(&headers(&[("accept-ranges", "bytes"), ("etag", "\"v1\"")]));
        let mut next = headers(&[("range", "bytes=0-")]);
        point.ask(&mut next, 500);
        assert_eq!(next["range"], "bytes=500-");
        assert_eq!(next["if-range"], "\"v1\"");
        point.ask(&mut next, 0);
        assert!(next.get("range").is_none() && next.get("if-range").is_none());
    }

    #[test]
    fn only_the_asked_range_of_the_same_version_continues() {
        let point = ResumePoint::of(&headers(&[("accept-ranges", "bytes"), ("etag", "\"v1\"")]));
        let partial = StatusCode::PARTIAL_CONTENT;
        let good = headers(&[("content-range", "bytes 500-1499/1500"), ("etag", "\"v1\"")]);
        assert_eq!(point.check(500, partial, &good), Ok(Resumed::Continue));
        let unknown_total = headers(&[("content-range", "bytes 500-1499/*")]);
        assert_eq!(
            point.check(500, partial, &unknown_total),
            Ok(Resumed::Continue)
        );
        assert_eq!(
            point.check(500, StatusCode::OK, &good),
            Ok(Resumed::Restart)
        );
        let elsewhere = headers(&[("content-range", "bytes 0-1499/1500")]);
        assert!(matches!(
            point.check(500, partial, &elsewhere),
            Err(ResumeError::WrongRange { asked: 500, .. })
        ));
        let changed = headers(&[("content-range", "bytes 500-1499/1500"), ("etag", "\"v2\"")]);
        assert_eq!(
            point.check(500, partial, &changed),
            Err(ResumeError::Changed)
        );
        for garbled in [
            "bytes 600-500/1500",
            "bytes x-1499/1500",
            "items 500-1499/1500",
            "",
        ] {
            let h = headers(&[("content-range", garbled)]);
            assert!(point.check(500, partial, &h).is_err(), "{garbled:?}");
        }
        assert_eq!(
            point.check(500, StatusCode::NOT_FOUND, &good),
            Err(ResumeError::Status(404))
        );
        assert_eq!(
            point.check(0, partial, &good),
            Err(ResumeError::UnaskedRange)
        );
    }

    #[test]
    fn a_whole_body_again_replaces_only_what_no_caller_saw() {
        let point = ResumePoint::of(&headers(&[("accept-ranges", "bytes"), ("etag", "\"v1\"")]));
        let ok = StatusCode::OK;
        let none = HeaderMap::new();
        assert_eq!(point.continues(0, false, ok, &none), Ok(Resumed::Restart));
        assert_eq!(point.continues(500, true, ok, &none), Ok(Resumed::Restart));
        assert_eq!(
            point.continues(500, false, ok, &none),
            Err(ResumeError::Restarted { handed: 500 })
        );
        let plain = ResumePoint::of(&none);
        let range = headers(&[("content-range", "bytes 500-1499/1500")]);
        assert_eq!(
            plain.continues(500, true, StatusCode::PARTIAL_CONTENT, &range),
            Err(ResumeError::UnaskedRange)
        );
    }
}
