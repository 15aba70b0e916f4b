//! Retry budgets: bound how many retries a whole client (or fleet) adds during an outage.
//!
//! Share one budget between every call to a backend ([`Shared`](crate::Shared)). The retry
//! machine reports every attempt's end ([`RetryBudget::record_attempt`]: a call's first
//! attempt deposits, under the same lock as its outcome) and asks before each retry
//! ([`RetryBudget::try_withdraw_after`]); a refusal gives up with
//! [`GiveUpReason::BudgetExhausted`](crate::GiveUpReason).

use core::time::Duration;

use crate::error::PolicyError;
use crate::policy::{Cause, TransportErrorKind};
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

/// A retry budget: how many retries a client (or a fleet sharing it) may add on top of its
/// calls. Three kinds, each the peer's own rules, each with a named preset:
///
/// | kind | preset | rule |
/// |---|---|---|
/// | ratio (Finagle, Linkerd) | [`finagle`](Self::finagle) (the default) | retries in the last `ttl` ≤ `ratio` · first attempts + `min_per_second` · `ttl` |
/// | retry quota (AWS SDKs) | [`aws_standard`](Self::aws_standard), [`aws_standard_2026`](Self::aws_standard_2026) | a retry spends tokens (more after a timeout); a success gives back what its retry spent, or 1 |
/// | token bucket (gRPC, gRFC A6) | [`grpc`](Self::grpc) | a failure takes a token, a success adds `token_ratio`; retries only above half |
///
/// The retry machine uses every kind through the same calls: it reports each attempt's end
/// with [`record_attempt`](Self::record_attempt) and asks before each retry with
/// [`try_withdraw_after`](Self::try_withdraw_after), under the lock it shares the budget with.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    kind: Kind,
    /// Retries leased from a fleet's bucket ([`FleetSync`](crate::FleetSync)); `None`, and
    /// nothing changes on any path, without a fleet.
    fleet: Option<FleetTokens>,
}

/// What a budget keeps for the fleet whose bucket it leases retries from.
#[derive(Clone, Copy, Debug, Default)]
struct FleetTokens {
    /// The fleet's store answered the last sync: retries come from the lease alone.
    connected: bool,
    /// Leased retries not spent yet.
    tokens: u32,
    /// First attempts since the last report (the fleet's bucket earns from them).
    deposits: u32,
    /// Leased retries spent since the last report.
    spent: u32,
}

/// What a fleet-shared budget tells its [`FleetSync`](crate::FleetSync) before each sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BudgetReport {
    pub(crate) deposits: u32,
    pub(crate) tokens: u32,
    pub(crate) spent: u32,
}

#[derive(Clone, Debug)]
enum Kind {
    Ratio(RatioBudget),
    Bucket(TokenBucket),
    Quota(RetryQuota),
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

/// The AWS SDKs' retry quota: retries spend tokens, successes give them back.
#[derive(Clone, Debug)]
struct RetryQuota {
    capacity: u32,
    tokens: u32,
    costs: QuotaCosts,
}

/// What a retry quota ([`RetryBudget::quota`]) charges and refunds, in tokens.
///
/// A retry is charged by how the attempt before it failed; when a call finally succeeds, the
/// quota gets back what its last retry cost, or `success` when it needed no retry. The two
/// presets are the AWS SDKs' standard retry mode before and after the 2026 update
/// (`AWS_NEW_RETRIES_2026=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuotaCosts {
    /// A retry after any failure not named below (5xx, resets, refused connections, …).
    pub retry: u32,
    /// A retry after the attempt timed out (connect or response timeout).
    pub timeout: u32,
    /// A retry after the server throttled the call (429 Too Many Requests).
    pub throttled: u32,
    /// Given back when a call succeeds without any retry.
    pub success: u32,
}

impl QuotaCosts {
    /// The AWS SDKs' standard retry mode: a retry costs 5, 10 after a timeout; a success
    /// without retry gives back 1 (`RETRY_COST`, `RETRY_TIMEOUT_COST`, `NO_RETRY_INCREMENT`).
    pub const AWS_STANDARD: QuotaCosts = QuotaCosts {
        retry: 5,
        timeout: 10,
        throttled: 5,
        success: 1,
    };

    /// The AWS SDKs' standard retry mode after the 2026 update ("retries 2.1",
    /// `AWS_NEW_RETRIES_2026=true`): a retry costs 14, timeouts included, and 5 after a
    /// throttling error; a success without retry gives back 1.
    pub const AWS_2026: QuotaCosts = QuotaCosts {
        retry: 14,
        timeout: 14,
        throttled: 5,
        success: 1,
    };

    /// What a retry after `cause` costs.
    pub fn of(&self, cause: Cause) -> u32 {
        match cause {
            Cause::Status(429) => self.throttled,
            Cause::Error(TransportErrorKind::Timeout | TransportErrorKind::ConnectTimeout) => {
                self.timeout
            }
            Cause::Status(_) | Cause::Error(_) => self.retry,
        }
    }
}

impl Default for RetryBudget {
    /// [`RetryBudget::finagle`]: 20 % of first attempts plus 10 retries per second over 10 s.
    fn default() -> RetryBudget {
        RetryBudget::finagle()
    }
}

impl RetryBudget {
    /// Finagle's and Linkerd's default budget: over the last 10 s, 20 % of first attempts plus
    /// 10 retries per second (`RetryBudget(ttl = 10.seconds, minRetriesPerSec = 10,
    /// percentCanRetry = 0.2)`). The default budget of every resil client.
    pub fn finagle() -> RetryBudget {
        RetryBudget {
            fleet: None,
            kind: Kind::Ratio(RatioBudget::new(to_ppm(0.2), 10, 10_000_000_000)),
        }
    }

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
        if ratio == 0.0 && min_per_second == 0 {
            return Err(PolicyError::new(
                "budget.ratio",
                "a ratio of 0 with min_per_second 0 never grants a retry",
            ));
        }
        Ok(RetryBudget {
            fleet: None,
            kind: Kind::Ratio(RatioBudget::new(to_ppm(ratio), min_per_second, ttl)),
        })
    }

    /// A token bucket (gRPC retry throttling): starts full with `max_tokens`; every failed
    /// attempt costs one token, every success earns `token_ratio` (in `(0, 1000]`); retries
    /// are allowed while more than half the tokens remain. Retries stop once the failure
    /// fraction passes `token_ratio / (1 + token_ratio)`. [`grpc`](Self::grpc) is the same
    /// bucket with gRPC's own limits.
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
            fleet: None,
            kind: Kind::Bucket(TokenBucket {
                max,
                ratio: to_ppm(token_ratio),
                tokens: max,
            }),
        })
    }

    /// gRPC's retry throttling (gRFC A6, the service config's `retryThrottling`): `maxTokens`
    /// in `1..=1000`, `tokenRatio` in `(0, 1000]`. The bucket starts full; a failed attempt
    /// takes one token, a successful one adds `token_ratio` (never past `max_tokens`); retries
    /// are allowed only while more than `max_tokens / 2` tokens remain. gRPC keeps the ratio to
    /// three decimals; resil keeps six. A new configuration keeps the fill fraction:
    /// [`reconfigure`](Self::reconfigure). Which attempts failed is the policy's breaker
    /// classification ([`RetryPolicy::is_failure`](crate::RetryPolicy::is_failure)): a 404
    /// adds tokens, where gRPC leaves the bucket alone after a status it does not retry.
    ///
    /// ```
    /// use resil_core::{Cause, Instant, RetryBudget};
    ///
    /// // gRPC core's own test: 4 tokens, a success adds 1.6.
    /// let mut budget = RetryBudget::grpc(4, 1.6)?;
    /// let (now, failed) = (Instant::ZERO, Some(Cause::Status(503)));
    /// budget.record_attempt(now, failed, true);
    /// assert!(budget.try_withdraw_after(now, Cause::Status(503)), "3 tokens: above 2");
    /// budget.record_attempt(now, failed, true);
    /// assert!(!budget.try_withdraw_after(now, Cause::Status(503)), "2 tokens: at the threshold");
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn grpc(max_tokens: u32, token_ratio: f64) -> Result<RetryBudget, PolicyError> {
        if !(1..=1000).contains(&max_tokens) {
            return Err(PolicyError::new(
                "budget.max_tokens",
                "gRPC's maxTokens must be in 1..=1000",
            ));
        }
        RetryBudget::token_bucket(max_tokens, token_ratio)
    }

    /// A retry quota (the AWS SDKs' standard retry mode) holding `capacity` tokens, starting
    /// full: a retry is granted only if the quota still holds its cost, and spends it; a call
    /// that succeeds gives back what its last retry cost, or `costs.success` when it needed no
    /// retry, never past `capacity`. A failure gives back nothing. Success is the policy's
    /// breaker classification ([`RetryPolicy::is_failure`](crate::RetryPolicy::is_failure)):
    /// a 404 gives back too, where the SDKs refund only a 2xx.
    ///
    /// Every cost must be at least 1 (a free retry is no budget) and at most `capacity` (a
    /// retry that can never be paid for is a setting that does nothing); `costs.success` must
    /// be at least 1, or a drained quota, no longer retrying, could never refill.
    pub fn quota(capacity: u32, costs: QuotaCosts) -> Result<RetryBudget, PolicyError> {
        if capacity == 0 {
            return Err(PolicyError::new("budget.capacity", "must be at least 1"));
        }
        let charges = [costs.retry, costs.timeout, costs.throttled];
        if charges.contains(&0) || costs.success == 0 {
            return Err(PolicyError::new(
                "budget.costs",
                "every cost must be at least 1",
            ));
        }
        if charges.iter().any(|&c| c > capacity) {
            return Err(PolicyError::new(
                "budget.costs",
                "a retry cost above budget.capacity could never be paid",
            ));
        }
        Ok(RetryBudget {
            fleet: None,
            kind: Kind::Quota(RetryQuota {
                capacity,
                tokens: capacity,
                costs,
            }),
        })
    }

    /// The AWS SDKs' standard retry quota: 500 tokens, [`QuotaCosts::AWS_STANDARD`] (a retry
    /// costs 5, or 10 after a timeout; a success gives back its retry's cost, or 1).
    ///
    /// ```
    /// use resil_core::{Cause, Instant, RetryBudget};
    ///
    /// // The SDKs' shared test case "retry eventually succeeds": 500, 500, 200.
    /// let mut quota = RetryBudget::aws_standard();
    /// let now = Instant::ZERO;
    /// quota.record_attempt(now, None, true);
    /// assert!(quota.try_withdraw_after(now, Cause::Status(500)));
    /// assert_eq!(quota.tokens(), Some(495.0));
    /// quota.record_attempt(now, Some(Cause::Status(500)), true);
    /// assert!(quota.try_withdraw_after(now, Cause::Status(500)));
    /// assert_eq!(quota.tokens(), Some(490.0));
    /// quota.record_attempt(now, Some(Cause::Status(500)), false);
    /// assert_eq!(quota.tokens(), Some(495.0), "the success gave back its retry's 5");
    /// ```
    pub fn aws_standard() -> RetryBudget {
        RetryBudget {
            fleet: None,
            kind: Kind::Quota(RetryQuota {
                capacity: 500,
                tokens: 500,
                costs: QuotaCosts::AWS_STANDARD,
            }),
        }
    }

    /// The AWS SDKs' standard retry quota after the 2026 update (`AWS_NEW_RETRIES_2026=true`,
    /// "retries 2.1"): 500 tokens, [`QuotaCosts::AWS_2026`] (a retry costs 14, or 5 after a
    /// throttling error; timeouts are no longer special).
    pub fn aws_standard_2026() -> RetryBudget {
        RetryBudget {
            fleet: None,
            kind: Kind::Quota(RetryQuota {
                capacity: 500,
                tokens: 500,
                costs: QuotaCosts::AWS_2026,
            }),
        }
    }

    /// Takes `new`'s settings. A token bucket replacing a token bucket keeps its fill fraction,
    /// as gRFC A6 asks of a new service config (3 of 4 tokens become 7.5 of 10); any other
    /// change starts `new` afresh.
    pub fn reconfigure(&mut self, new: RetryBudget) {
        let mut new = new;
        new.fleet = self.fleet;
        if let (Kind::Bucket(old), Kind::Bucket(b)) = (&self.kind, &mut new.kind) {
            let scaled = u128::from(old.tokens) * u128::from(b.max) / u128::from(old.max.max(1));
            b.tokens = u64::try_from(scaled).unwrap_or(u64::MAX).min(b.max);
        }
        *self = new;
    }

    /// A call made its first attempt (ratio budgets earn their share here).
    pub fn record_request(&mut self, now: Instant) {
        if let Some(f) = &mut self.fleet {
            f.deposits = f.deposits.saturating_add(1);
        }
        if let Kind::Ratio(r) = &mut self.kind {
            let slot = r.slot(now);
            r.deposits[slot] = r.deposits[slot].saturating_add(1);
        }
    }

    /// An attempt ended; `failure` as the policy classifies it. For a retry quota this is an
    /// attempt that needed no retry; [`record_attempt`](Self::record_attempt) says more.
    pub fn record_outcome(&mut self, failure: bool) {
        self.settle(None, failure);
    }

    /// An attempt ended, `failure` as the policy classifies it. `retried_after` is how the
    /// attempt before it failed, `None` for a call's first attempt: a first attempt deposits
    /// in a ratio budget, and a success gives a retry quota back what the retry after
    /// `retried_after` cost (or the no-retry refund). The retry machine calls this once per
    /// attempt.
    pub fn record_attempt(&mut self, now: Instant, retried_after: Option<Cause>, failure: bool) {
        if retried_after.is_none() {
            self.record_request(now);
        }
        self.settle(retried_after, failure);
    }

    fn settle(&mut self, retried_after: Option<Cause>, failure: bool) {
        match &mut self.kind {
            Kind::Ratio(_) => {}
            Kind::Bucket(b) => {
                b.tokens = if failure {
                    b.tokens.saturating_sub(ONE)
                } else {
                    b.tokens.saturating_add(b.ratio).min(b.max)
                };
            }
            Kind::Quota(q) if !failure => {
                let refund = retried_after.map_or(q.costs.success, |c| q.costs.of(c));
                q.tokens = q.tokens.saturating_add(refund).min(q.capacity);
            }
            Kind::Quota(_) => {}
        }
    }

    /// Asks for one retry after a failure that is not told apart (for a retry quota, one at
    /// the plain retry cost); `true` means it was granted (and, where the kind spends, spent).
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        self.try_withdraw_after(now, Cause::Status(500))
    }

    /// Asks for one retry after an attempt that ended with `cause`; `true` means it was
    /// granted (and, where the kind spends, spent). A retry quota charges by the cause
    /// ([`QuotaCosts::of`]); the other kinds do not look at it.
    pub fn try_withdraw_after(&mut self, now: Instant, cause: Cause) -> bool {
        if let Some(f) = self.fleet.as_mut().filter(|f| f.connected) {
            if f.tokens == 0 {
                return false;
            }
            f.tokens -= 1;
            f.spent = f.spent.saturating_add(1);
            return true;
        }
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
            Kind::Quota(q) => {
                let cost = q.costs.of(cause);
                if q.tokens < cost {
                    return false;
                }
                q.tokens -= cost;
                true
            }
        }
    }

    /// Retries the budget would grant right now (rounded down; for a token bucket, 1 or 0;
    /// for a retry quota, at the plain retry cost).
    pub fn available(&mut self, now: Instant) -> u64 {
        if let Some(f) = self.fleet.filter(|f| f.connected) {
            return u64::from(f.tokens);
        }
        match &mut self.kind {
            Kind::Ratio(r) => {
                r.slot(now);
                let (deposits, withdrawals) = r.window_totals();
                let earned = (u128::from(deposits) * u128::from(r.ratio) + u128::from(r.reserve))
                    / u128::from(ONE);
                u64::try_from(earned.saturating_sub(u128::from(withdrawals))).unwrap_or(u64::MAX)
            }
            Kind::Bucket(b) => u64::from(b.tokens > b.max / 2),
            Kind::Quota(q) => u64::from(q.tokens / q.costs.retry.max(1)),
        }
    }

    /// The tokens a token bucket or retry quota holds now (`None` for a ratio budget, which
    /// counts calls instead).
    pub fn tokens(&self) -> Option<f64> {
        match &self.kind {
            Kind::Ratio(_) => None,
            Kind::Bucket(b) => Some(b.tokens as f64 / ONE as f64),
            Kind::Quota(q) => Some(f64::from(q.tokens)),
        }
    }
}

/// The fleet's side of the budget: only [`FleetSync`](crate::FleetSync) calls these.
impl RetryBudget {
    /// The ratio rule a fleet's bucket applies for this budget: (ratio in ppm, reserve in
    /// millionths of a retry per window, window in nanoseconds); `None` for the kinds a fleet
    /// does not share (token bucket, retry quota), which stay local.
    pub(crate) fn fleet_rule(&self) -> Option<(u64, u64, u64)> {
        match &self.kind {
            Kind::Ratio(r) => Some((
                r.ratio,
                r.reserve,
                r.bucket_nanos.saturating_mul(BUCKETS as u64),
            )),
            Kind::Bucket(_) | Kind::Quota(_) => None,
        }
    }

    /// Starts keeping deposits for a fleet (retries still follow the local rule until the
    /// fleet answers).
    pub(crate) fn enable_fleet(&mut self) {
        self.fleet.get_or_insert_with(FleetTokens::default);
    }

    /// Takes the deposits and spending since the last report.
    pub(crate) fn take_fleet_report(&mut self) -> BudgetReport {
        let Some(f) = &mut self.fleet else {
            return BudgetReport::default();
        };
        let report = BudgetReport {
            deposits: f.deposits,
            tokens: f.tokens,
            spent: f.spent,
        };
        f.deposits = 0;
        f.spent = 0;
        report
    }

    /// The fleet answered (`Some`, with the retries it leased) or could not be reached.
    pub(crate) fn apply_fleet(&mut self, leased: Option<u32>) {
        if let Some(f) = &mut self.fleet {
            f.connected = leased.is_some();
            f.tokens = f.tokens.saturating_add(leased.unwrap_or(0));
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
