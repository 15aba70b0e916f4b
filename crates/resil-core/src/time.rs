//! Core's own notion of time: monotonic [`Instant`] and wall-clock [`UnixTime`].
//!
//! Core never reads a clock. Drivers pick an origin, count nanoseconds from it and pass the
//! result in; tests and simulations jump a fake clock instead.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the driver's monotonic clock: nanoseconds since an origin the driver picked.
///
/// Arithmetic saturates: adding [`Duration::MAX`] gives [`Instant::MAX`], never a panic or a
/// wrap. `u64` nanoseconds cover 584 years from the origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The driver's origin.
    pub const ZERO: Instant = Instant(0);
    /// The far future; used as "no deadline".
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// An instant `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_to_nanos(d)))
    }

    /// `self - earlier`, or zero when `earlier` is later (time that went backwards).
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The time left until `self` as seen from `now`; zero once it has passed.
    pub const fn saturating_duration_until(self, now: Instant) -> Duration {
        self.saturating_duration_since(now)
    }
}

#[cfg(feature = "std")]
static STD_ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

#[cfg(feature = "std")]
impl Instant {
    /// Converts a `std` instant on the process-wide origin (fixed by the first call), so that
    /// every driver in the process — and every breaker they share — agrees on time. Instants
    /// before the origin read as [`Instant::ZERO`].
    pub fn from_std(t: std::time::Instant) -> Instant {
        let origin = *STD_ORIGIN.get_or_init(|| t);
        Instant(duration_to_nanos(t.saturating_duration_since(origin)))
    }

    /// Now, on the process-wide origin.
    pub fn now() -> Instant {
        Instant::from_std(std::time::Instant::now())
    }

    /// Back to a `std` instant (saturating far in the future where `std` cannot represent it).
    pub fn to_std(self) -> std::time::Instant {
        let origin = *STD_ORIGIN.get_or_init(std::time::Instant::now);
        let far = Duration::from_secs(100 * 365 * 86_400);
        origin
            .checked_add(Duration::from_nanos(self.0))
            .or_else(|| origin.checked_add(far))
            .unwrap_or(origin)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:?}", Duration::from_nanos(self.0))
    }
}

/// Wall-clock time in whole seconds since the Unix epoch (UTC).
///
/// Only needed to turn a `Retry-After` HTTP-date into a delay; drivers pass it alongside the
/// response that carried the date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

/// A [`Duration`] as whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) const fn duration_to_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}
