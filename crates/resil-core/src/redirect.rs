//! Redirects: whether a 3xx is followed, and how. One decision for every driver; the
//! caller resolves `Location` (core parses no URLs) and tells what it found.
//!
//! | status | method | next hop | body |
//! |---|---|---|---|
//! | 303 | HEAD | HEAD | none |
//! | 303 | any other | GET | dropped, with `Content-Type`, `Content-Length`, `Content-Encoding` |
//! | 301, 302 | POST | GET | dropped, with those headers |
//! | 301, 302 | any other | the same | sent again; a body that cannot be replayed returns the 3xx |
//! | 307, 308 | any | the same | sent again; a body that cannot be replayed returns the 3xx |
//! | 300, 304, 305, 306, any other | | not followed: the 3xx is the answer | |
//!
//! Before any of that: redirects off, or no (or an empty) `Location`, return the 3xx; a
//! `Location` that is no URL, one to a scheme other than `http` and `https`, `https` to
//! `http` (unless allowed), a target the call already visited, or one hop past the limit
//! fail the call, each with its own [`RedirectRefusal`]. Credentials are dropped on every
//! hop to another origin (scheme, host, port) and stay dropped for the rest of the chain.

use core::fmt;

use crate::error::PolicyError;
use crate::policy::Method;

/// How a client follows redirects. Default: up to 10 hops (reqwest's number), never from
/// `https` to `http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectPolicy {
    max_hops: u32,
    allow_downgrade: bool,
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        RedirectPolicy::follow(RedirectPolicy::DEFAULT_MAX_HOPS)
    }
}

impl RedirectPolicy {
    /// Hops followed by default.
    pub const DEFAULT_MAX_HOPS: u32 = 10;

    /// The most hops any policy follows: a chain this long is a loop in all but name.
    pub const MAX_HOPS: u32 = 50;

    /// Follows up to `max_hops` redirects in a call (0: none; see [`none`](Self::none)).
    pub const fn follow(max_hops: u32) -> RedirectPolicy {
        RedirectPolicy {
            max_hops,
            allow_downgrade: false,
        }
    }

    /// Follows no redirect: every 3xx is returned as it is, through every API.
    pub const fn none() -> RedirectPolicy {
        RedirectPolicy::follow(0)
    }

    /// Also follows a redirect from `https` to plain `http` (off by default: the next hop
    /// would be readable on the wire).
    pub const fn allow_https_to_http(mut self, allow: bool) -> RedirectPolicy {
        self.allow_downgrade = allow;
        self
    }

    /// The most hops a call follows.
    pub const fn max_hops(&self) -> u32 {
        self.max_hops
    }

    /// Whether redirects are followed at all.
    pub const fn is_enabled(&self) -> bool {
        self.max_hops > 0
    }

    /// Checks the policy: at most [`MAX_HOPS`](Self::MAX_HOPS) hops.
    pub fn check(self) -> Result<RedirectPolicy, PolicyError> {
        if self.max_hops > RedirectPolicy::MAX_HOPS {
            return Err(PolicyError::new("max_redirects", "must be at most 50"));
        }
        Ok(self)
    }

    /// What to do with one 3xx (see the module table).
    pub fn decide(&self, redirect: &RedirectInput) -> RedirectDecision {
        if !matches!(redirect.status, 301 | 302 | 303 | 307 | 308) || !self.is_enabled() {
            return RedirectDecision::Return;
        }
        let (https, same_origin, seen) = match redirect.target {
            RedirectTarget::Missing => return RedirectDecision::Return,
            RedirectTarget::Invalid => {
                return RedirectDecision::Fail(RedirectRefusal::InvalidLocation);
            }
            RedirectTarget::UnsupportedScheme => {
                return RedirectDecision::Fail(RedirectRefusal::UnsupportedScheme);
            }
            RedirectTarget::Http {
                https,
                same_origin,
                seen,
            } => (https, same_origin, seen),
        };
        if redirect.from_https && !https && !self.allow_downgrade {
            return RedirectDecision::Fail(RedirectRefusal::Downgrade);
        }
        if redirect.hops >= self.max_hops {
            return RedirectDecision::Fail(RedirectRefusal::TooManyHops { max: self.max_hops });
        }
        if seen {
            return RedirectDecision::Fail(RedirectRefusal::Loop);
        }
        let to_get = match redirect.status {
            303 => redirect.method != Method::Head,
            301 | 302 => redirect.method == Method::Post,
            _ => false,
        };
        if !to_get && !redirect.body_replayable {
            // The body went out once and cannot go again: the 3xx is the answer.
            return RedirectDecision::Return;
        }
        RedirectDecision::Follow(Hop {
            to_get,
            strip_credentials: !same_origin,
        })
    }
}

/// What the caller found in a 3xx, for [`RedirectPolicy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectInput {
    /// The response's status.
    pub status: u16,
    /// The method of the request it answers.
    pub method: Method,
    /// Whether that request went over `https`.
    pub from_https: bool,
    /// Its `Location`, resolved against the request's URL.
    pub target: RedirectTarget,
    /// Hops already followed in this call.
    pub hops: u32,
    /// Whether the request's body (if any) can be sent again.
    pub body_replayable: bool,
}

/// A 3xx's `Location`, as the caller resolved it against the URL of the request it
/// answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectTarget {
    /// No `Location`, or an empty one.
    Missing,
    /// Not a URL reference, or one that does not resolve to an absolute URL with a host.
    Invalid,
    /// A URL whose scheme is neither `http` nor `https` (`file:`, `ftp:`, `data:`,
    /// `javascript:`, …).
    UnsupportedScheme,
    /// An `http` or `https` URL.
    Http {
        /// It is `https`.
        https: bool,
        /// Provably the request's own origin: the same scheme, host and port. Anything the
        /// caller cannot prove the same (other case or spelling it did not normalise, user
        /// info, an explicit default port it did not fold) counts as another origin.
        same_origin: bool,
        /// The call already sent a request to this very URL.
        seen: bool,
    },
}

/// The answer to one 3xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the caller follows, returns the 3xx, or fails"]
pub enum RedirectDecision {
    /// Send the next hop.
    Follow(Hop),
    /// The 3xx is the answer.
    Return,
    /// End the call with this error.
    Fail(RedirectRefusal),
}

/// How the next hop differs from the request that got the 3xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// It is a GET (HEAD stays HEAD) without a body and without the headers that described
    /// one (`Content-Type`, `Content-Length`, `Content-Encoding`, `Transfer-Encoding`).
    pub to_get: bool,
    /// It goes to another origin: credentials (`Authorization`, `Cookie`,
    /// `Proxy-Authorization` and the ones the user names) are dropped, for good.
    pub strip_credentials: bool,
}

/// Why a redirect was not followed and the call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectRefusal {
    /// One hop past the policy's limit.
    TooManyHops {
        /// The limit.
        max: u32,
    },
    /// The target was already visited in this call.
    Loop,
    /// The target's scheme is neither `http` nor `https`.
    UnsupportedScheme,
    /// From `https` to `http`, which the policy does not allow.
    Downgrade,
    /// The `Location` is not a URL the call can go to.
    InvalidLocation,
}

impl fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectRefusal::TooManyHops { max } => {
                write!(f, "more than {max} redirects")
            }
            RedirectRefusal::Loop => f.write_str("a redirect loop"),
            RedirectRefusal::UnsupportedScheme => {
                f.write_str("a redirect to a scheme other than http and https")
            }
            RedirectRefusal::Downgrade => f.write_str("a redirect from https to plain http"),
            RedirectRefusal::InvalidLocation => f.write_str("a redirect to an invalid Location"),
        }
    }
}

impl core::error::Error for RedirectRefusal {}
