//! Time as the drivers' HTTP libraries take it: timeouts they can add to their own clocks,
//! a read timeout armed only when it ends first, and the wall clock for `Retry-After` dates.

use std::time::Duration;

use resil_core::{Instant, UnixTime};

/// The longest timeout a driver hands to an HTTP library: one year. A longer one (say
/// [`Duration::MAX`], meant as "never") reads as this, because no library can add it to its
/// own clock: ureq and hyper-util panic, curl refuses every request.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `timeout`, or [`MAX_TIMEOUT`] if it is longer.
///
/// ```
/// use core::time::Duration;
/// use resil_http::driver::{MAX_TIMEOUT, library_timeout};
///
/// assert_eq!(library_timeout(Duration::from_secs(5)), Duration::from_secs(5));
/// assert_eq!(library_timeout(Duration::MAX), MAX_TIMEOUT);
/// ```
pub const fn library_timeout(timeout: Duration) -> Duration {
    if timeout.as_secs() >= MAX_TIMEOUT.as_secs() {
        MAX_TIMEOUT
    } else {
        timeout
    }
}

/// When a read timeout of `read_timeout` from `now` ends, if it ends before `deadline` (the
/// attempt's); `None` when there is none or the deadline comes first, so a driver arms one
/// timer, not two. `now` is called only when there is a read timeout: a clock reading costs.
///
/// ```
/// use core::time::Duration;
/// use resil_core::Instant;
/// use resil_http::driver::read_deadline;
///
/// let (now, deadline) = (Instant::ZERO, Instant::ZERO + Duration::from_secs(10));
/// let one_second = Some(Duration::from_secs(1));
/// assert_eq!(read_deadline(one_second, || now, deadline), Some(now + Duration::from_secs(1)));
/// assert_eq!(read_deadline(Some(Duration::MAX), || now, deadline), None);
/// assert_eq!(read_deadline(None, || unreachable!(), deadline), None);
/// ```
pub fn read_deadline(
    read_timeout: Option<Duration>,
    now: impl FnOnce() -> Instant,
    deadline: Instant,
) -> Option<Instant> {
    let gap = read_timeout?;
    let stalled = now() + gap;
    (stalled < deadline).then_some(stalled)
}

/// What is left of an attempt at `now`, rounded *down* to whole milliseconds (never past the
/// deadline) and at least 1 ms: for transports that take a per-request timeout (ureq turns a
/// zero timeout into a whole second; curl's is in milliseconds), and at most
/// [`MAX_TIMEOUT`].
pub fn attempt_budget(deadline: Instant, now: Instant) -> Duration {
    let left = deadline.saturating_duration_since(now);
    library_timeout(Duration::from_millis(
        u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
    ))
}

/// The wall clock as resil's [`UnixTime`], for turning an HTTP-date `Retry-After` into a
/// delay. A clock before 1970 reads as 0.
pub fn unix_now() -> UnixTime {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    UnixTime(since.as_secs())
}
