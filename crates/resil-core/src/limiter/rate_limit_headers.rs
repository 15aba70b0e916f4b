//! The server's own numbers: `RateLimit` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-
//! headers-12, Structured Fields per RFC 9651) and the older `X-RateLimit-Remaining` /
//! `X-RateLimit-Reset`, parsed without allocating into what pacing needs.
//!
//! Malformed fields are ignored, as the draft requires: a value that is not a valid Structured
//! Field List, an item without its required parameter, a negative or non-integer number, a
//! zero window, two items for one policy, or a `RateLimit` item that claims more than its
//! policy's quota. Enormous numbers are kept (the pacer bounds every wait).

use core::time::Duration;

use crate::policy::HeaderLookup;
use crate::time::UnixTime;

/// One Structured Field bare item, as far as these fields care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bare<'a> {
    Integer(i64),
    /// A string's contents between the quotes, escapes kept.
    String(&'a str),
    Token(&'a str),
    /// The base64 text between the colons.
    Bytes(&'a str),
    /// Decimals, booleans, dates and display strings: valid, and meaningless here.
    Other,
}

/// A cursor over one field value; every `parse_*` follows RFC 9651 §4.2.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn skip(&mut self, ws: &[u8]) {
        while self.peek().is_some_and(|b| ws.contains(&b)) {
            self.at += 1;
        }
    }

    /// The text from `start` to here; only called over ASCII the grammar accepted.
    fn text(&self, start: usize) -> &'a str {
        core::str::from_utf8(&self.s[start..self.at]).unwrap_or("")
    }

    fn take_while(&mut self, ok: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&ok) {
            self.at += 1;
        }
    }

    fn parse_bare(&mut self) -> Option<Bare<'a>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.parse_number(),
            b'"' => self.parse_string().map(Bare::String),
            b':' => {
                self.at += 1;
                let start = self.at;
                self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                let bytes = self.text(start);
                self.eat(b':').then_some(Bare::Bytes(bytes))
            }
            b'?' => {
                self.at += 1;
                (self.eat(b'0') || self.eat(b'1')).then_some(Bare::Other)
            }
            b'@' => {
                self.at += 1;
                matches!(self.parse_number()?, Bare::Integer(_)).then_some(Bare::Other)
            }
            b'%' => {
                self.at += 1;
                self.parse_display_string().then_some(Bare::Other)
            }
            b if b.is_ascii_alphabetic() || b == b'*' => {
                let start = self.at;
                self.take_while(|b| is_tchar(b) || b == b':' || b == b'/');
                Some(Bare::Token(self.text(start)))
            }
            _ => None,
        }
    }

    fn parse_number(&mut self) -> Option<Bare<'a>> {
        let negative = self.eat(b'-');
        let start = self.at;
        self.take_while(|b| b.is_ascii_digit());
        let int_digits = self.at - start;
        if int_digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.at;
            self.take_while(|b| b.is_ascii_digit());
            let frac_digits = self.at - frac;
            return (int_digits <= 12 && (1..=3).contains(&frac_digits)).then_some(Bare::Other);
        }
        if int_digits > 15 {
            return None;
        }
        let magnitude = self.s[start..self.at]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        Some(Bare::Integer(if negative { -magnitude } else { magnitude }))
    }

    fn parse_string(&mut self) -> Option<&'a str> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    let text = self.text(start);
                    self.at += 1;
                    return Some(text);
                }
                b'\\' => {
                    self.at += 1;
                    if !matches!(self.peek()?, b'"' | b'\\') {
                        return None;
                    }
                    self.at += 1;
                }
                0x20..=0x7e => self.at += 1,
                _ => return None,
            }
        }
    }

    fn parse_display_string(&mut self) -> bool {
        if !self.eat(b'"') {
            return false;
        }
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return true;
                }
                Some(b'%') => {
                    self.at += 1;
                    for _ in 0..2 {
                        if !self
                            .peek()
                            .is_some_and(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        {
                            return false;
                        }
                        self.at += 1;
                    }
                }
                Some(0x20..=0x7e) => self.at += 1,
                _ => return false,
            }
        }
    }

    fn parse_key(&mut self) -> Option<&'a str> {
        let start = self.at;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        {
            return None;
        }
        self.take_while(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        });
        Some(self.text(start))
    }

    /// Parameters after an item; `on` sees each key and value (a later duplicate wins, as
    /// RFC 9651 says, because `on` sees it later).
    fn parse_params(&mut self, on: &mut dyn FnMut(&'a str, Bare<'a>)) -> Option<()> {
        while self.eat(b';') {
            self.skip(b" ");
            let key = self.parse_key()?;
            let value = if self.eat(b'=') {
                self.parse_bare()?
            } else {
                Bare::Other
            };
            on(key, value);
        }
        Some(())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field with more members than this is not a rate-limit answer anyone means: ignored.
const MAX_MEMBERS: usize = 64;

/// One member of a List: its bare item, and the raw text of its parameters (already valid).
#[derive(Clone, Copy, Debug)]
struct Member<'a> {
    item: Bare<'a>,
    params: &'a [u8],
}

impl<'a> Member<'a> {
    /// The value of parameter `key` (the last one, if repeated, as RFC 9651 says).
    fn param(&self, key: &str) -> Option<Bare<'a>> {
        let mut c = Cursor {
            s: self.params,
            at: 0,
        };
        let mut found = None;
        let _ = c.parse_params(&mut |k, v| {
            if k == key {
                found = Some(v);
            }
        });
        found
    }
}

/// The members of a List field value (RFC 9651 §4.2.1), one at a time; an `Err` ends it.
/// Inner lists are refused: neither field may hold one.
struct Members<'a> {
    c: Cursor<'a>,
    done: bool,
}

impl<'a> Members<'a> {
    fn new(value: &'a [u8]) -> Members<'a> {
        let mut end = value.len();
        while end > 0 && matches!(value[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let mut c = Cursor {
            s: &value[..end],
            at: 0,
        };
        c.skip(b" \t");
        Members { c, done: false }
    }

    fn member(&mut self) -> Option<Member<'a>> {
        let item = self.c.parse_bare()?;
        let start = self.c.at;
        self.c.parse_params(&mut |_, _| {})?;
        let params = &self.c.s[start..self.c.at];
        self.c.skip(b" \t");
        if self.c.peek().is_some() {
            // Another member must follow the comma: a trailing comma is invalid.
            if !self.c.eat(b',') {
                return None;
            }
            self.c.skip(b" \t");
            self.c.peek()?;
        } else {
            self.done = true;
        }
        Some(Member { item, params })
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Result<Member<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let member = self.member();
        if member.is_none() {
            self.done = true;
        }
        Some(member.ok_or(()))
    }
}

/// Whether `value` is a non-empty List whose every member `valid` accepts, with at most
/// [`MAX_MEMBERS`] members and no two naming the same policy.
fn valid_list<'a>(value: &'a [u8], valid: impl Fn(Member<'a>) -> Option<&'a str>) -> bool {
    let mut n = 0;
    for member in Members::new(value) {
        let Ok(member) = member else { return false };
        let Some(policy) = valid(member) else {
            return false;
        };
        n += 1;
        if n > MAX_MEMBERS {
            return false;
        }
        // Two items for one policy contradict each other.
        let earlier = Members::new(value).take(n - 1).flatten();
        if earlier.filter_map(|m| name(m.item)).any(|p| p == policy) {
            return false;
        }
    }
    n > 0
}

/// A delay-seconds style count: a non-negative Integer, as whole seconds.
fn seconds(value: Bare<'_>) -> Option<Duration> {
    count(value).map(Duration::from_secs)
}

fn count(value: Bare<'_>) -> Option<u64> {
    match value {
        Bare::Integer(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}

fn name(value: Bare<'_>) -> Option<&str> {
    match value {
        // -12 names a policy with a String; earlier drafts used a Token, still common.
        Bare::String(s) | Bare::Token(s) => Some(s),
        _ => None,
    }
}

/// An optional parameter: absent is fine, present must be valid.
fn optional<'a, T>(
    value: Option<Bare<'a>>,
    read: impl Fn(Bare<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(v) => read(v).map(Some),
    }
}

fn partition_key(value: Bare<'_>) -> Option<&str> {
    match value {
        Bare::Bytes(b) => Some(b),
        _ => None,
    }
}

/// One item of a `RateLimit` field: the service limit under one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceLimit<'a> {
    /// The policy's name, as written (escapes kept).
    pub policy: &'a str,
    /// `r`: quota units still available.
    pub remaining: u64,
    /// `t`: the window within which no more than `remaining` may be used.
    pub reset: Option<Duration>,
    /// `pk`: the partition key, in base64 as written.
    pub partition_key: Option<&'a str>,
}

impl<'a> ServiceLimit<'a> {
    fn from_member(m: Member<'a>) -> Option<ServiceLimit<'a>> {
        Some(ServiceLimit {
            policy: name(m.item)?,
            remaining: count(m.param("r")?)?,
            reset: optional(m.param("t"), seconds)?,
            partition_key: optional(m.param("pk"), partition_key)?,
        })
    }
}

/// A validated `RateLimit` field value (one field line).
///
/// ```
/// use core::time::Duration;
/// use resil_core::RateLimitField;
///
/// let field = RateLimitField::parse(br#""default";r=0;t=30"#).expect("valid");
/// let limit = field.iter().next().expect("one item");
/// assert_eq!((limit.policy, limit.remaining), ("default", 0));
/// assert_eq!(limit.reset, Some(Duration::from_secs(30)));
/// assert!(RateLimitField::parse(br#""default";r=-1;t=30"#).is_none(), "negative: ignored");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitField<'a>(&'a [u8]);

impl<'a> RateLimitField<'a> {
    /// Validates one field line; `None` when any of it is malformed (then the whole field is
    /// ignored, as the draft requires).
    pub fn parse(value: &'a [u8]) -> Option<RateLimitField<'a>> {
        valid_list(value, |m| ServiceLimit::from_member(m).map(|l| l.policy))
            .then_some(RateLimitField(value))
    }

    /// The service limits, in order.
    pub fn iter(&self) -> impl Iterator<Item = ServiceLimit<'a>> + 'a {
        Members::new(self.0)
            .flatten()
            .filter_map(ServiceLimit::from_member)
    }
}

/// Which unit a policy's quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaUnit {
    /// `requests` (the default).
    Requests,
    /// `content-bytes`.
    ContentBytes,
    /// `concurrent-requests`.
    ConcurrentRequests,
    /// A unit this crate does not know.
    Other,
}

/// One item of a `RateLimit-Policy` field: a quota policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaPolicy<'a> {
    /// The policy's name, as written.
    pub policy: &'a str,
    /// `q`: the quota, in `unit`s.
    pub quota: u64,
    /// `qu`: what the quota counts.
    pub unit: QuotaUnit,
    /// `w`: the time window (never zero).
    pub window: Option<Duration>,
    /// `pk`: the partition key, in base64 as written.
    pub partition_key: Option<&'a str>,
}

impl<'a> QuotaPolicy<'a> {
    fn from_member(m: Member<'a>) -> Option<QuotaPolicy<'a>> {
        let unit = |b: Bare<'_>| match b {
            // The draft's text says "requests" and its registry "request": accept both.
            Bare::String("requests" | "request") => Some(QuotaUnit::Requests),
            Bare::String("content-bytes") => Some(QuotaUnit::ContentBytes),
            Bare::String("concurrent-requests") => Some(QuotaUnit::ConcurrentRequests),
            Bare::String(_) => Some(QuotaUnit::Other),
            _ => None,
        };
        Some(QuotaPolicy {
            policy: name(m.item)?,
            quota: count(m.param("q")?)?,
            unit: optional(m.param("qu"), unit)?.unwrap_or(QuotaUnit::Requests),
            window: optional(m.param("w"), |b| seconds(b).filter(|w| !w.is_zero()))?,
            partition_key: optional(m.param("pk"), partition_key)?,
        })
    }
}

/// A validated `RateLimit-Policy` field value (one field line).
///
/// ```
/// use resil_core::{QuotaUnit, RateLimitPolicyField};
///
/// let field = RateLimitPolicyField::parse(br#""burst";q=100;w=60,"daily";q=1000;w=86400"#)
///     .expect("valid");
/// assert_eq!(field.iter().map(|p| p.quota).sum::<u64>(), 1100);
/// assert!(field.iter().all(|p| p.unit == QuotaUnit::Requests));
/// assert!(RateLimitPolicyField::parse(br#""burst";q=100;w=0"#).is_none(), "zero window");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitPolicyField<'a>(&'a [u8]);

impl<'a> RateLimitPolicyField<'a> {
    /// Validates one field line; `None` when any of it is malformed.
    pub fn parse(value: &'a [u8]) -> Option<RateLimitPolicyField<'a>> {
        valid_list(value, |m| QuotaPolicy::from_member(m).map(|p| p.policy))
            .then_some(RateLimitPolicyField(value))
    }

    /// The quota policies, in order.
    pub fn iter(&self) -> impl Iterator<Item = QuotaPolicy<'a>> + 'a {
        Members::new(self.0)
            .flatten()
            .filter_map(QuotaPolicy::from_member)
    }
}

/// What pacing needs from one response: the binding limit.
///
/// ```
/// use core::time::Duration;
/// use resil_core::ServerQuota;
///
/// let headers = [
///     ("RateLimit-Policy", &br#""permin";q=50;w=60,"perhr";q=1000;w=3600"#[..]),
///     ("RateLimit", &br#""permin";r=0;t=12,"perhr";r=400;t=2000"#[..]),
/// ];
/// let quota = ServerQuota::from_headers(&headers, None).expect("valid");
/// assert_eq!(quota, ServerQuota { remaining: 0, reset: Duration::from_secs(12) });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServerQuota {
    /// Requests the client may still send before `reset`.
    pub remaining: u64,
    /// When the window ends, counted from the response's arrival.
    pub reset: Duration,
}

impl ServerQuota {
    /// Reads a response's headers: `RateLimit` (checked against `RateLimit-Policy`) when
    /// present and valid, else `X-RateLimit-Remaining` with `X-RateLimit-Reset`. `wall_clock`
    /// (when the response arrived) is needed only for a reset given as a Unix time. Only the
    /// first line of each field is read.
    pub fn from_headers(
        headers: &dyn HeaderLookup,
        wall_clock: Option<UnixTime>,
    ) -> Option<ServerQuota> {
        let standard = headers.header("ratelimit").and_then(|value| {
            let policies = headers
                .header("ratelimit-policy")
                .and_then(RateLimitPolicyField::parse);
            ServerQuota::from_fields(RateLimitField::parse(value)?, policies)
        });
        standard.or_else(|| {
            ServerQuota::from_x_rate_limit(
                headers.header("x-ratelimit-remaining")?,
                headers.header("x-ratelimit-reset")?,
                wall_clock,
            )
        })
    }

    /// The binding limit of a `RateLimit` field: the longest window of any exhausted policy,
    /// else the policy with the fewest requests left. Items without `t` say nothing about
    /// when to send, and items counting other units than requests only matter once
    /// exhausted. `None` when nothing is usable, or when an item claims more than its
    /// policy's quota (the fields contradict each other, so neither is believed).
    pub fn from_fields(
        limits: RateLimitField<'_>,
        policies: Option<RateLimitPolicyField<'_>>,
    ) -> Option<ServerQuota> {
        let mut exhausted: Option<Duration> = None;
        let mut fewest: Option<ServerQuota> = None;
        for limit in limits.iter() {
            let policy = policies.and_then(|p| p.iter().find(|q| q.policy == limit.policy));
            if policy.is_some_and(|q| limit.remaining > q.quota) {
                return None;
            }
            let Some(reset) = limit.reset else { continue };
            if limit.remaining == 0 {
                exhausted = exhausted.max(Some(reset));
                continue;
            }
            if policy.is_some_and(|q| q.unit != QuotaUnit::Requests) {
                continue;
            }
            let this = ServerQuota {
                remaining: limit.remaining,
                reset,
            };
            fewest = Some(match fewest {
                Some(f)
                    if (f.remaining, core::cmp::Reverse(f.reset))
                        <= (this.remaining, core::cmp::Reverse(this.reset)) =>
                {
                    f
                }
                _ => this,
            });
        }
        exhausted
            .map(|reset| ServerQuota {
                remaining: 0,
                reset,
            })
            .or(fewest)
    }

    /// The older de-facto headers: `X-RateLimit-Remaining` (an integer) and
    /// `X-RateLimit-Reset`, either seconds from now or, from 10^9 on (2001), a Unix time —
    /// which needs `wall_clock`. Fractions of a second are kept to the millisecond; anything
    /// else (signs, units, garbage) makes the pair unusable.
    ///
    /// ```
    /// use core::time::Duration;
    /// use resil_core::{ServerQuota, UnixTime};
    ///
    /// let now = UnixTime(1_700_000_000);
    /// let quota = ServerQuota::from_x_rate_limit(b"0", b"1700000042", Some(now)).expect("valid");
    /// assert_eq!(quota.reset, Duration::from_secs(42));
    /// assert!(ServerQuota::from_x_rate_limit(b"-1", b"5", None).is_none());
    /// ```
    pub fn from_x_rate_limit(
        remaining: &[u8],
        reset: &[u8],
        wall_clock: Option<UnixTime>,
    ) -> Option<ServerQuota> {
        let remaining = digits(trim(remaining))?;
        let reset = trim(reset);
        let (whole, fraction) = match reset.iter().position(|&b| b == b'.') {
            Some(dot) => (&reset[..dot], Some(&reset[dot + 1..])),
            None => (reset, None),
        };
        let whole = digits(whole)?;
        let millis = match fraction {
            None => 0,
            Some(f) if (1..=9).contains(&f.len()) && f.iter().all(u8::is_ascii_digit) => f
                .iter()
                .chain(b"00")
                .take(3)
                .fold(0, |n, &d| n * 10 + u64::from(d - b'0')),
            Some(_) => return None,
        };
        let reset = if whole >= 1_000_000_000 {
            let now = wall_clock?;
            Duration::from_secs(whole.saturating_sub(now.0))
                .saturating_add(Duration::from_millis(millis))
        } else {
            Duration::from_secs(whole).saturating_add(Duration::from_millis(millis))
        };
        Some(ServerQuota { remaining, reset })
    }
}

/// A non-empty run of ASCII digits, saturating (an enormous count is huge, not garbage).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
