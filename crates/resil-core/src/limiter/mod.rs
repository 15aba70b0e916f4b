//! Overload control: machines that decide whether an attempt may be sent now, later, or not at
//! all, and learn from how each attempt ended.
//!
//! So far: the server's own numbers, `RateLimit`, `RateLimit-Policy` and `X-RateLimit-*`, parsed.

mod rate_limit_headers;

pub use rate_limit_headers::{
    QuotaPolicy, QuotaUnit, RateLimitField, RateLimitPolicyField, ServerQuota, ServiceLimit,
};
