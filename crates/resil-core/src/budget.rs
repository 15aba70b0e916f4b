//! Retry budgets: bound how many retries a whole client (or fleet) adds during an outage.
//!
//! Share one budget between every call to a backend ([`Shared`](crate::Shared)). The retry
//! machine deposits for each call when its first attempt ends (under the same lock as that
//! attempt's outcome), reports every attempt's outcome, and asks before each retry; a
//! refusal gives up with [`GiveUpReason::BudgetExhausted`](crate::GiveUpReason).

use core::time::Duration;

use crate::error::PolicyError;
use crate::time::{Instant, duration_to_nanos};

const BUCKETS: usize = 10;
/// Fixed-point unit for counted ratios: one retry (or token, or call) = 10^6, so decimal
/// ratios like 0.2 or 0.6 are exact: 10 first attempts at 20 % earn exactly 2 retries, and 3
/// failures in 5 calls reach 60 %.
pub(crate) const ONE: u64 = 1_000_000;

/// A validated ratio in parts per million, rounded to nearest.
pub(crate) fn to_ppm(f: f64) -> u64 {
    (f * ONE as f64 + 0.5) as u64
}

/// A retry budget; see the constructors for the two kinds.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Ratio(RatioBudget),
    Bucket(TokenBucket),
}

/// Finagle's budget: retries in the window ≤ `ratio` · first attempts + `min_per_second` · TTL.
#[derive(Clone, Debug)]
struct RatioBudget {
    ratio: u64,
    reserve: u64,
    bucket_nanos: u64,
    /// Latest tick seen: a caller whose clock reads slightly behind another's counts in the
    /// current bucket instead of disturbing the window.
    latest: u64,
    ticks: [u64; BUCKETS],
    deposits: [u32; BUCKETS],
    withdrawals: [u32; BUCKETS],
}

/// gRPC's throttle: failures cost a token, successes earn `ratio`; retries only while more than
/// half the tokens remain.
#[derive(Clone, Debug)]
struct TokenBucket {
    max: u64,
    ratio: u64,
    tokens: u64,
}

impl Default for RetryBudget {
    /// 20 % of first attempts plus 10 retries per second over 10 s (Finagle, Linkerd).
    fn default() -> RetryBudget {
        RetryBudget {
            kind: Kind::Ratio(RatioBudget::new(to_ppm(0.2), 10, 10_000_000_000)),
        }
    }
}

impl RetryBudget {
    /// A ratio budget: over the last `ttl`, retries may be at most `ratio` (in `[0, 1000]`)
    /// times the first attempts, plus `min_per_second` retries per second so that a client
    /// with little traffic can still retry.
    ///
    /// ```
    /// use core::time::Duration;
    /// use resil_core::{Instant, RetryBudget};
    ///
    /// let mut budget = RetryBudget::ratio(0.2, 0, Duration::from_secs(10))?;
    /// let now = Instant::ZERO;
    /// for _ in 0..10 {
    ///     budget.record_request(now);
    /// }
    /// assert!(budget.try_withdraw(now));
    /// assert!(budget.try_withdraw(now));
    /// assert!(!budget.try_withdraw(now), "20 % of 10 first attempts is 2 retries");
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn ratio(
        ratio: f64,
        min_per_second: u32,
        ttl: Duration,
    ) -> Result<RetryBudget, PolicyError> {
        if !(0.0..=1000.0).contains(&ratio) {
            return Err(PolicyError::new("budget.ratio", "must be in [0, 1000]"));
        }
        let ttl = duration_to_nanos(ttl);
        if ttl < 1_000_000 {
            return Err(PolicyError::new("budget.ttl", "must be at least 1 ms"));
        }
        Ok(RetryBudget {
            kind: Kind::Ratio(RatioBudget::new(to_ppm(ratio), min_per_second, ttl)),
        })
    }

    /// A token bucket (gRPC retry throttling): starts full with `max_tokens`; every failed
    /// attempt costs one token, every success earns `token_ratio` (in `(0, 1000]`); retries
    /// are allowed while more than half the tokens remain. Retries stop once the failure
    /// fraction passes `token_ratio / (1 + token_ratio)`.
    pub fn token_bucket(max_tokens: u32, token_ratio: f64) -> Result<RetryBudget, PolicyError> {
        if max_tokens == 0 {
            return Err(PolicyError::new("budget.max_tokens", "must be at least 1"));
        }
        if !(token_ratio > 0.0 && token_ratio <= 1000.0) {
            return Err(PolicyError::new(
                "budget.token_ratio",
                "must be in (0, 1000]",
            ));
        }
        let max = u64::from(max_tokens) * ONE;
        Ok(RetryBudget {
            kind: Kind::Bucket(TokenBucket {
                max,
                ratio: to_ppm(token_ratio),
                tokens: max,
            }),
        })
    }

    /// A call made its first attempt (ratio budgets earn their share here).
    pub fn record_request(&mut self, now: Instant) {
        if let Kind::Ratio(r) = &mut self.kind {
            let slot = r.slot(now);
            r.deposits[slot] = r.deposits[slot].saturating_add(1);
        }
    }

    /// An attempt ended; `failure` as the policy classifies it (token buckets count these).
    pub fn record_outcome(&mut self, failure: bool) {
        if let Kind::Bucket(b) = &mut self.kind {
            b.tokens = if failure {
                b.tokens.saturating_sub(ONE)
            } else {
                b.tokens.saturating_add(b.ratio).min(b.max)
            };
        }
    }

    /// Asks for one retry; `true` means it was granted (and, for a ratio budget, spent).
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        match &mut self.kind {
            Kind::Ratio(r) => {
                let slot = r.slot(now);
                let (deposits, withdrawals) = r.window_totals();
                let earned = u128::from(deposits) * u128::from(r.ratio) + u128::from(r.reserve);
                let spent = (u128::from(withdrawals) + 1) * u128::from(ONE);
                if spent > earned {
                    return false;
                }
                r.withdrawals[slot] = r.withdrawals[slot].saturating_add(1);
                true
            }
            Kind::Bucket(b) => b.tokens > b.max / 2,
        }
    }

    /// Retries the budget would grant right now (rounded down; for a token bucket, 1 or 0).
    pub fn available(&mut self, now: Instant) -> u64 {
        match &mut self.kind {
            Kind::Ratio(r) => {
                r.slot(now);
                let (deposits, withdrawals) = r.window_totals();
                let earned = (u128::from(deposits) * u128::from(r.ratio) + u128::from(r.reserve))
                    / u128::from(ONE);
                u64::try_from(earned.saturating_sub(u128::from(withdrawals))).unwrap_or(u64::MAX)
            }
            Kind::Bucket(b) => u64::from(b.tokens > b.max / 2),
        }
    }
}

impl RatioBudget {
    fn new(ratio: u64, min_per_second: u32, ttl: u64) -> RatioBudget {
        let reserve_retries = u128::from(min_per_second) * u128::from(ttl) / 1_000_000_000;
        RatioBudget {
            ratio,
            reserve: u64::try_from(reserve_retries * u128::from(ONE)).unwrap_or(u64::MAX),
            bucket_nanos: (ttl / BUCKETS as u64).max(1),
            latest: 0,
            ticks: [u64::MAX; BUCKETS],
            deposits: [0; BUCKETS],
            withdrawals: [0; BUCKETS],
        }
    }

    /// The bucket for `now`, emptied if it last held an older period; older buckets that fell
    /// out of the window are emptied too.
    fn slot(&mut self, now: Instant) -> usize {
        let tick = (now.as_nanos() / self.bucket_nanos).max(self.latest);
        let slot = (tick % BUCKETS as u64) as usize;
        if tick == self.latest && self.ticks[slot] == tick {
            return slot;
        }
        self.latest = tick;
        for i in 0..BUCKETS {
            let t = self.ticks[i];
            if t != u64::MAX && tick - t >= BUCKETS as u64 {
                self.ticks[i] = u64::MAX;
                self.deposits[i] = 0;
                self.withdrawals[i] = 0;
            }
        }
        if self.ticks[slot] != tick {
            self.ticks[slot] = tick;
            self.deposits[slot] = 0;
            self.withdrawals[slot] = 0;
        }
        slot
    }

    fn window_totals(&self) -> (u64, u64) {
        let sum = |xs: &[u32; BUCKETS]| xs.iter().map(|&x| u64::from(x)).sum::<u64>();
        (sum(&self.deposits), sum(&self.withdrawals))
    }
}
