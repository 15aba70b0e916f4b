//! Backoff formulas and jitter, validated once into a [`BackoffSchedule`].
//!
//! All arithmetic is on `u64` nanoseconds and saturates, so any retry number up to
//! `u32::MAX` and any duration up to [`Duration::MAX`] gives a delay, never a panic. Jitter
//! fractions are turned into 32.32 fixed point at build time: the hot path has no floats except
//! for an exponential multiplier other than 2.

use core::time::Duration;

use rand_core::Rng;

use crate::error::PolicyError;
use crate::time::duration_to_nanos;

/// How the nominal delay grows with the retry number (0 for the first retry).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay before every retry.
    Constant(Duration),
    /// `initial + step · n`.
    Linear {
        /// Delay before the first retry.
        initial: Duration,
        /// Added for each further retry.
        step: Duration,
    },
    /// `base · multiplier^n`: the AWS SDK and gRPC shape.
    Exponential {
        /// Delay before the first retry.
        base: Duration,
        /// Growth factor, finite and at least 1.0.
        multiplier: f64,
    },
    /// `base · fib(n + 1)`: base, base, 2·base, 3·base, 5·base, …
    Fibonacci {
        /// Delay before the first two retries.
        base: Duration,
    },
    /// AWS "decorrelated jitter": `U(base, 3 · previous)`. Random by construction, so the
    /// [`Jitter`] setting is not applied on top.
    DecorrelatedJitter {
        /// Smallest delay and the first retry's lower bound.
        base: Duration,
    },
}

impl Backoff {
    /// Exponential backoff doubling from `base`.
    pub const fn exponential(base: Duration) -> Backoff {
        Backoff::Exponential {
            base,
            multiplier: 2.0,
        }
    }
}

/// How the nominal delay `d` is randomised so that clients do not retry in lockstep.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// `U(0, d)`: the least total work in AWS's contention experiment.
    Full,
    /// `d/2 + U(0, d/2)`.
    Equal,
    /// `d · (1 ± f)` for `f` in `[0, 1]`.
    Proportional(f64),
    /// `d + U(0, f · d)`: never earlier than `d`.
    Additive(f64),
    /// `U(low, high) · d`, e.g. `0.8..=1.0`; `0 ≤ low ≤ high ≤ 1000`.
    Range {
        /// Smallest factor.
        low: f64,
        /// Largest factor.
        high: f64,
    },
}

/// A validated backoff formula, jitter and cap: computes the delay before retry `n`.
///
/// ```
/// use core::time::Duration;
/// use rand_chacha::ChaCha8Rng;
/// use rand_core::SeedableRng;
/// use resil_core::{Backoff, BackoffSchedule, Jitter};
///
/// let schedule = BackoffSchedule::new(
///     Backoff::exponential(Duration::from_millis(100)),
///     Jitter::None,
///     Duration::from_secs(20),
/// )?;
/// let mut rng = ChaCha8Rng::seed_from_u64(7);
/// let delays: Vec<_> = schedule.delays(&mut rng).take(4).collect();
/// assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
/// assert_eq!(schedule.nominal(u32::MAX), Duration::from_secs(20));
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffSchedule {
    formula: Formula,
    jitter: JitterFixed,
    cap: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Formula {
    Constant(u64),
    Linear { initial: u64, step: u64 },
    Doubling { base: u64 },
    Exponential { base: u64, multiplier: f64 },
    Fibonacci { base: u64 },
    Decorrelated { base: u64 },
}

/// Jitter as 32.32 fixed-point factors: `low · d + U(0, span · d)`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum JitterFixed {
    None,
    Full,
    Equal,
    Scaled { low: u64, span: u64 },
}

const ONE: u64 = 1 << 32;
/// Largest jitter factor accepted; keeps `d · factor` inside a `u128`.
const MAX_FACTOR: f64 = 1000.0;

impl BackoffSchedule {
    /// The default schedule: exponential from 100 ms, doubling, full jitter, capped at 20 s.
    pub const DEFAULT: BackoffSchedule = BackoffSchedule {
        formula: Formula::Doubling { base: 100_000_000 },
        jitter: JitterFixed::Full,
        cap: 20_000_000_000,
    };

    /// Validates `backoff` and `jitter`; no delay will exceed `max_delay`.
    pub fn new(
        backoff: Backoff,
        jitter: Jitter,
        max_delay: Duration,
    ) -> Result<BackoffSchedule, PolicyError> {
        let nanos = duration_to_nanos;
        let formula = match backoff {
            Backoff::Constant(d) => Formula::Constant(nanos(d)),
            Backoff::Linear { initial, step } => Formula::Linear {
                initial: nanos(initial),
                step: nanos(step),
            },
            Backoff::Exponential { base, multiplier } => {
                if !(multiplier.is_finite() && multiplier >= 1.0) {
                    return Err(PolicyError::new(
                        "backoff.multiplier",
                        "must be finite and at least 1.0",
                    ));
                }
                if multiplier == 2.0 {
                    Formula::Doubling { base: nanos(base) }
                } else {
                    Formula::Exponential {
                        base: nanos(base),
                        multiplier,
                    }
                }
            }
            Backoff::Fibonacci { base } => Formula::Fibonacci { base: nanos(base) },
            Backoff::DecorrelatedJitter { base } => Formula::Decorrelated { base: nanos(base) },
        };
        let jitter = match jitter {
            Jitter::None => JitterFixed::None,
            Jitter::Full => JitterFixed::Full,
            Jitter::Equal => JitterFixed::Equal,
            Jitter::Proportional(f) => {
                if !(0.0..=1.0).contains(&f) {
                    return Err(PolicyError::new(
                        "jitter",
                        "proportional factor must be in [0, 1]",
                    ));
                }
                let f = to_fixed(f);
                JitterFixed::Scaled {
                    low: ONE - f,
                    span: 2 * f,
                }
            }
            Jitter::Additive(f) => {
                if !(0.0..=MAX_FACTOR).contains(&f) {
                    return Err(PolicyError::new(
                        "jitter",
                        "additive factor must be in [0, 1000]",
                    ));
                }
                JitterFixed::Scaled {
                    low: ONE,
                    span: to_fixed(f),
                }
            }
            Jitter::Range { low, high } => {
                if !(0.0..=MAX_FACTOR).contains(&low)
                    || !(0.0..=MAX_FACTOR).contains(&high)
                    || low > high
                {
                    return Err(PolicyError::new(
                        "jitter",
                        "range needs 0 <= low <= high <= 1000",
                    ));
                }
                let (low, high) = (to_fixed(low), to_fixed(high));
                JitterFixed::Scaled {
                    low,
                    span: high - low,
                }
            }
        };
        Ok(BackoffSchedule {
            formula,
            jitter,
            cap: nanos(max_delay),
        })
    }

    /// The delay before retry `retry` (0-based) before jitter, capped.
    pub fn nominal(&self, retry: u32) -> Duration {
        Duration::from_nanos(self.nominal_nanos(retry, 0))
    }

    /// The jittered, capped delay before retry `retry` (0-based). `previous` is the last delay
    /// used; only decorrelated jitter looks at it. The happy path never calls this, so it never
    /// draws from `rng`; formulas without jitter do not draw either.
    #[inline]
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, previous: Duration, rng: &mut R) -> Duration {
        let previous = match self.formula {
            Formula::Decorrelated { .. } => duration_to_nanos(previous),
            _ => 0,
        };
        Duration::from_nanos(self.delay_nanos(retry, previous, rng))
    }

    /// The cap, `max_delay`, in nanoseconds.
    pub(crate) fn cap_nanos(&self) -> u64 {
        self.cap
    }

    /// Whether computing a delay draws from the RNG.
    pub fn is_random(&self) -> bool {
        matches!(self.formula, Formula::Decorrelated { .. }) || self.jitter != JitterFixed::None
    }

    /// An endless iterator of delays for retries 0, 1, 2, … (the retry count saturates at
    /// `u32::MAX`); combine with `take` for a bounded schedule.
    pub fn delays<'a, R: Rng + ?Sized>(&'a self, rng: &'a mut R) -> Delays<'a, R> {
        Delays {
            schedule: self,
            rng,
            retry: 0,
            previous: 0,
        }
    }

    #[inline]
    pub(crate) fn delay_nanos<R: Rng + ?Sized>(
        &self,
        retry: u32,
        previous: u64,
        rng: &mut R,
    ) -> u64 {
        if let Formula::Decorrelated { base } = self.formula {
            let high = previous.max(base).saturating_mul(3);
            let d = base.saturating_add(uniform(rng, high.saturating_sub(base)));
            return d.min(self.cap);
        }
        let d = self.nominal_nanos(retry, previous);
        let jittered = match self.jitter {
            JitterFixed::None => d,
            JitterFixed::Full => uniform(rng, d),
            JitterFixed::Equal => d / 2 + uniform(rng, d - d / 2),
            JitterFixed::Scaled { low, span } => {
                scale(d, low).saturating_add(uniform(rng, scale(d, span)))
            }
        };
        jittered.min(self.cap)
    }

    #[inline]
    fn nominal_nanos(&self, retry: u32, previous: u64) -> u64 {
        let d = match self.formula {
            Formula::Constant(d) => d,
            Formula::Linear { initial, step } => {
                initial.saturating_add(step.saturating_mul(u64::from(retry)))
            }
            Formula::Doubling { base } => {
                if retry >= 64 || base > (u64::MAX >> retry) {
                    u64::MAX
                } else {
                    base << retry
                }
            }
            Formula::Exponential { base, multiplier } => {
                exponential(base, multiplier, retry, self.cap)
            }
            Formula::Fibonacci { base } => base.saturating_mul(fibonacci(retry)),
            Formula::Decorrelated { base } => previous.max(base),
        };
        d.min(self.cap)
    }
}

/// Iterator over a schedule's delays; see [`BackoffSchedule::delays`].
#[derive(Debug)]
pub struct Delays<'a, R: ?Sized> {
    schedule: &'a BackoffSchedule,
    rng: &'a mut R,
    retry: u32,
    previous: u64,
}

impl<R: Rng + ?Sized> Iterator for Delays<'_, R> {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self
            .schedule
            .delay_nanos(self.retry, self.previous, &mut *self.rng);
        self.retry = self.retry.saturating_add(1);
        self.previous = d;
        Some(Duration::from_nanos(d))
    }
}

/// `base · multiplier^n`, stopping as soon as the product reaches `cap` (multiplier ≥ 1, so the
/// product only grows). Square-and-multiply: O(log n) for any `n`.
fn exponential(base: u64, multiplier: f64, retry: u32, cap: u64) -> u64 {
    if base == 0 {
        return 0;
    }
    let cap_f = cap as f64;
    let mut result = base as f64;
    let mut factor = multiplier;
    let mut n = retry;
    while n > 0 {
        if n & 1 == 1 {
            result *= factor;
            if result >= cap_f {
                return cap;
            }
        }
        factor *= factor;
        n >>= 1;
    }
    // `as` saturates for floats; result < cap here.
    result as u64
}

/// `fib(n + 1)` with fib(1) = fib(2) = 1, saturating past the 93rd term.
fn fibonacci(retry: u32) -> u64 {
    const TERMS: usize = 93;
    const TABLE: [u64; TERMS] = {
        let mut t = [1u64; TERMS];
        let mut i = 2;
        while i < TERMS {
            t[i] = t[i - 1] + t[i - 2];
            i += 1;
        }
        t
    };
    TABLE.get(retry as usize).copied().unwrap_or(u64::MAX)
}

/// A uniform draw from `0..=max` (multiply-shift; bias below 2^-64 · max).
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let range = u128::from(max) + 1;
    ((u128::from(rng.next_u64()) * range) >> 64) as u64
}

/// `d · factor` for a 32.32 fixed-point factor, saturating.
pub(crate) fn scale(d: u64, factor: u64) -> u64 {
    let product = (u128::from(d) * u128::from(factor)) >> 32;
    u64::try_from(product).unwrap_or(u64::MAX)
}

/// A validated fraction in `[0, 1000]` as 32.32 fixed point, rounded to nearest (so that
/// 10 × 0.2 is 2, not a hair below it).
pub(crate) fn to_fixed(f: f64) -> u64 {
    (f * ONE as f64 + 0.5) as u64
}
