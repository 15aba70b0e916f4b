//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, parsed without std.
//!
//! Anything that is not exactly one of those forms is ignored (the caller falls back to its
//! computed backoff): signs, fractions, units, non-ASCII digits, embedded CR/LF, unknown date
//! shapes and dates whose weekday does not match. A delay too large for a `u64` is *huge*, not
//! zero.

use core::time::Duration;

use crate::time::UnixTime;

/// A parsed `Retry-After` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// `Retry-After: 120`: wait this long. Overflowing values saturate to `u64::MAX` seconds.
    Delay(Duration),
    /// `Retry-After: Fri, 31 Dec 1999 23:59:59 GMT`: wait until this wall-clock second.
    Date(UnixTime),
}

impl RetryAfter {
    /// Parses one header value; `None` for anything that is not a valid delay or HTTP-date.
    ///
    /// ```
    /// use core::time::Duration;
    /// use resil_core::{RetryAfter, UnixTime};
    /// assert_eq!(RetryAfter::parse(b"120"), Some(RetryAfter::Delay(Duration::from_secs(120))));
    /// assert_eq!(
    ///     RetryAfter::parse(b"Sun, 06 Nov 1994 08:49:37 GMT"),
    ///     Some(RetryAfter::Date(UnixTime(784111777)))
    /// );
    /// assert_eq!(RetryAfter::parse(b"1.5"), None);
    /// ```
    pub fn parse(value: &[u8]) -> Option<RetryAfter> {
        let value = trim_ows(value);
        if value.is_empty() {
            return None;
        }
        if value.iter().all(u8::is_ascii_digit) {
            let secs = value.iter().fold(0u64, |acc, &d| {
                acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            return Some(RetryAfter::Delay(Duration::from_secs(secs)));
        }
        parse_http_date(value).map(RetryAfter::Date)
    }

    /// Parses every `Retry-After` field line of one response.
    ///
    /// The field is a singleton: when lines disagree (or any is invalid) the value is ignored,
    /// because there is no way to know which one the server meant. Identical repeats are fine.
    pub fn parse_all<'a, I>(values: I) -> Option<RetryAfter>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut found = None;
        for value in values {
            let parsed = RetryAfter::parse(value)?;
            match found {
                None => found = Some(parsed),
                Some(prev) if prev == parsed => {}
                Some(_) => return None,
            }
        }
        found
    }

    /// The wait this value asks for, seen at wall-clock time `now` (`None` when a date must be
    /// converted and no wall clock was supplied). A date in the past means zero.
    pub fn delay(self, now: Option<UnixTime>) -> Option<Duration> {
        match self {
            RetryAfter::Delay(d) => Some(d),
            RetryAfter::Date(at) => now.map(|now| Duration::from_secs(at.0.saturating_sub(now.0))),
        }
    }
}

/// Parses an HTTP-date in any of the three formats RFC 9110 §5.6.7 requires recipients to
/// accept: IMF-fixdate, obsolete RFC 850 and ANSI C `asctime()`.
///
/// Years 1970–9999 only; the weekday must match the date. RFC 850 two-digit years below 70
/// are 20xx, the rest 19xx (the same rule as the `httpdate` crate, which the fuzz suite checks
/// this parser against).
pub fn parse_http_date(value: &[u8]) -> Option<UnixTime> {
    let value = trim_ows(value);
    let parts = imf_fixdate(value)
        .or_else(|| rfc850(value))
        .or_else(|| asctime(value))?;
    parts.to_unix()
}

struct DateParts {
    weekday: u8, // 0 = Monday
    day: u8,
    month: u8, // 1-based
    year: u16,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DateParts {
    fn to_unix(&self) -> Option<UnixTime> {
        if !(1970..=9999).contains(&self.year)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
        {
            return None;
        }
        let days = days_since_epoch(self.year, self.month, self.day);
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        if (days + 3) % 7 != u64::from(self.weekday) {
            return None;
        }
        let secs = days * 86_400
            + u64::from(self.hour) * 3_600
            + u64::from(self.minute) * 60
            + u64::from(self.second);
        Some(UnixTime(secs))
    }
}

const SHORT_DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<DateParts> {
    if s.len() != 29 || &s[3..5] != b", " || s[7] != b' ' || s[11] != b' ' || &s[25..] != b" GMT" {
        return None;
    }
    let (hour, minute, second) = clock(&s[17..25])?;
    if s[16] != b' ' {
        return None;
    }
    Some(DateParts {
        weekday: index_of(&SHORT_DAYS, &s[..3])?,
        day: two_digits(&s[5..7])?,
        month: index_of(&MONTHS, &s[8..11])? + 1,
        year: four_digits(&s[12..16])?,
        hour,
        minute,
        second,
    })
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(s: &[u8]) -> Option<DateParts> {
    let comma = s.iter().position(|&b| b == b',')?;
    let weekday = index_of(&LONG_DAYS, &s[..comma])?;
    let rest = &s[comma..];
    // ", 06-Nov-94 08:49:37 GMT"
    if rest.len() != 24
        || &rest[..2] != b", "
        || rest[4] != b'-'
        || rest[8] != b'-'
        || rest[11] != b' '
        || &rest[20..] != b" GMT"
    {
        return None;
    }
    let yy = two_digits(&rest[9..11])?;
    let (hour, minute, second) = clock(&rest[12..20])?;
    Some(DateParts {
        weekday,
        day: two_digits(&rest[2..4])?,
        month: index_of(&MONTHS, &rest[5..8])? + 1,
        year: if yy < 70 { 2000 } else { 1900 } + u16::from(yy),
        hour,
        minute,
        second,
    })
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(s: &[u8]) -> Option<DateParts> {
    if s.len() != 24 || s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    let day = match s[8] {
        b' ' => one_digit(s[9])?,
        _ => two_digits(&s[8..10])?,
    };
    let (hour, minute, second) = clock(&s[11..19])?;
    Some(DateParts {
        weekday: index_of(&SHORT_DAYS, &s[..3])?,
        day,
        month: index_of(&MONTHS, &s[4..7])? + 1,
        year: four_digits(&s[20..24])?,
        hour,
        minute,
        second,
    })
}

/// `08:49:37`
fn clock(s: &[u8]) -> Option<(u8, u8, u8)> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    Some((
        two_digits(&s[0..2])?,
        two_digits(&s[3..5])?,
        two_digits(&s[6..8])?,
    ))
}

fn index_of(names: &[&[u8]], s: &[u8]) -> Option<u8> {
    names.iter().position(|n| *n == s).map(|i| i as u8)
}

fn one_digit(b: u8) -> Option<u8> {
    b.is_ascii_digit().then(|| b - b'0')
}

fn two_digits(s: &[u8]) -> Option<u8> {
    Some(one_digit(s[0])? * 10 + one_digit(s[1])?)
}

fn four_digits(s: &[u8]) -> Option<u16> {
    Some(u16::from(two_digits(&s[0..2])?) * 100 + u16::from(two_digits(&s[2..4])?))
}

fn is_leap(year: u16) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (year ≥ 1970, valid month and day).
fn days_since_epoch(year: u16, month: u8, day: u8) -> u64 {
    let y = u64::from(year) - 1;
    let leap_days_before = y / 4 - y / 100 + y / 400;
    // Leap days in years before 1970: 1969/4 - 1969/100 + 1969/400 = 492 - 19 + 4.
    let years = u64::from(year) - 1970;
    let mut days = years * 365 + (leap_days_before - 477);
    for m in 1..month {
        days += u64::from(days_in_month(year, m));
    }
    days + u64::from(day) - 1
}

/// Strips optional whitespace (SP / HTAB) around a field value; CR and LF are not whitespace
/// here, so a value with them fails to parse.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
