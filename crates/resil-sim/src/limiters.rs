//! The limiters an overload run can give its clients: resil-core's machines, one kind at a
//! time, each built with its defaults (none is told the server's capacity).

use resil_core::{
    AdaptiveRateLimiter, AdaptiveThrottle, Admission, Admit, Ask, ConcurrencyLimiter, CurrentLimit,
    Feedback, GiveUpReason, Grant, Instant, LimitAlgorithm, LimiterRef, QuotaPacer, ResponseHead,
    Ticket, Wake,
};

/// Which limiter every client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimiterKind {
    /// [`AdaptiveRateLimiter`]: the AWS SDKs' adaptive mode (CUBIC on throttles).
    AdaptiveRate,
    /// [`AdaptiveThrottle`]: Google SRE client-side throttling.
    Throttle,
    /// [`ConcurrencyLimiter`] with [`LimitAlgorithm::aimd`].
    Aimd,
    /// [`ConcurrencyLimiter`] with [`LimitAlgorithm::gradient`].
    Gradient,
    /// [`QuotaPacer`]: waits out the server's `Retry-After` / `RateLimit` numbers.
    Quota,
    /// [`AdaptiveThrottle`] then an AIMD [`ConcurrencyLimiter`], both asked before every
    /// attempt: the throttle acts where one process has little in flight (a fleet of small
    /// clients), the concurrency limit where it has much.
    ThrottleAimd,
}

impl LimiterKind {
    /// Every kind, in table order.
    pub const ALL: [LimiterKind; 6] = [
        LimiterKind::AdaptiveRate,
        LimiterKind::Throttle,
        LimiterKind::Aimd,
        LimiterKind::Gradient,
        LimiterKind::Quota,
        LimiterKind::ThrottleAimd,
    ];

    /// The kind named `adaptive_rate`, `throttle`, `aimd`, `gradient`, `quota` or
    /// `throttle+aimd`.
    pub fn parse(name: &str) -> Option<LimiterKind> {
        LimiterKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its name in scenario files and tables.
    pub fn name(self) -> &'static str {
        match self {
            LimiterKind::AdaptiveRate => "adaptive_rate",
            LimiterKind::Throttle => "throttle",
            LimiterKind::Aimd => "aimd",
            LimiterKind::Gradient => "gradient",
            LimiterKind::Quota => "quota",
            LimiterKind::ThrottleAimd => "throttle+aimd",
        }
    }

    /// What [`OverloadSecond::limit`](crate::OverloadSecond::limit) measures for this kind.
    pub fn unit(self) -> &'static str {
        match self {
            LimiterKind::AdaptiveRate => "attempts/s",
            LimiterKind::Throttle => "% rejected locally",
            LimiterKind::Aimd | LimiterKind::Gradient | LimiterKind::ThrottleAimd => {
                "attempts in flight"
            }
            LimiterKind::Quota => "ms held back",
        }
    }

    /// One limiter of this kind with its defaults; `None` if they do not build.
    pub(crate) fn build(self, seed: u64) -> Option<SimLimiter> {
        let aimd = || {
            ConcurrencyLimiter::builder()
                .algorithm(LimitAlgorithm::aimd())
                .build()
                .ok()
                .map(AnyLimiter::Concurrency)
        };
        let limiter = match self {
            LimiterKind::AdaptiveRate => {
                AnyLimiter::Rate(AdaptiveRateLimiter::builder().build().ok()?)
            }
            LimiterKind::Throttle | LimiterKind::ThrottleAimd => {
                AnyLimiter::Throttle(AdaptiveThrottle::builder().seed(seed).build().ok()?)
            }
            LimiterKind::Aimd => aimd()?,
            LimiterKind::Gradient => AnyLimiter::Concurrency(
                ConcurrencyLimiter::builder()
                    .algorithm(LimitAlgorithm::gradient())
                    .build()
                    .ok()?,
            ),
            LimiterKind::Quota => AnyLimiter::Quota(QuotaPacer::builder().seed(seed).build().ok()?),
        };
        let second = match self {
            LimiterKind::ThrottleAimd => Some(std::sync::Mutex::new(aimd()?)),
            _ => None,
        };
        Some(SimLimiter {
            first: std::sync::Mutex::new(limiter),
            second,
        })
    }
}

/// Any of the limiters, as one type the retry machine can share.
#[derive(Debug)]
enum AnyLimiter {
    Rate(AdaptiveRateLimiter),
    Throttle(AdaptiveThrottle),
    Concurrency(ConcurrencyLimiter),
    Quota(QuotaPacer),
}

impl AnyLimiter {
    fn inner(&mut self) -> &mut dyn Admission {
        match self {
            AnyLimiter::Rate(l) => l,
            AnyLimiter::Throttle(l) => l,
            AnyLimiter::Concurrency(l) => l,
            AnyLimiter::Quota(l) => l,
        }
    }
}

impl Admission for AnyLimiter {
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit {
        self.inner().acquire(now, ask)
    }
    fn claim(&mut self, now: Instant, ticket: Ticket) -> Admit {
        self.inner().claim(now, ticket)
    }
    fn cancel(&mut self, now: Instant, ticket: Ticket) -> Wake {
        self.inner().cancel(now, ticket)
    }
    fn record(&mut self, now: Instant, grant: Grant, feedback: Feedback) -> Wake {
        self.inner().record(now, grant, feedback)
    }
    fn release(&mut self, now: Instant, grant: Grant) -> Wake {
        self.inner().release(now, grant)
    }
    fn record_response(&mut self, now: Instant, grant: Grant, head: &ResponseHead<'_>) -> Wake {
        self.inner().record_response(now, grant, head)
    }
    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        self.inner().current_limit(now)
    }
}

/// One client's (or the fleet's) limiters: one, or a throttle and a concurrency limit.
#[derive(Debug)]
pub(crate) struct SimLimiter {
    first: std::sync::Mutex<AnyLimiter>,
    second: Option<std::sync::Mutex<AnyLimiter>>,
}

impl SimLimiter {
    /// As the retry machine takes them, in asking order.
    pub(crate) fn shared(&self) -> Vec<LimiterRef<'_>> {
        let mut all: Vec<LimiterRef<'_>> = vec![&self.first];
        if let Some(second) = &self.second {
            all.push(second);
        }
        all
    }

    /// Its current limit as one number ([`LimiterKind::unit`]); `None` while it limits
    /// nothing.
    pub(crate) fn limit(&self, now: Instant) -> Option<f64> {
        // The concurrency limit of a pair; the one limiter's otherwise.
        let shown = self.second.as_ref().unwrap_or(&self.first);
        let mut guard = shown.lock().unwrap_or_else(|e| e.into_inner());
        match guard.current_limit(now) {
            CurrentLimit::InFlight { limit, .. } => Some(f64::from(limit)),
            CurrentLimit::Rate { per_1000_seconds } => Some(per_1000_seconds as f64 / 1000.0),
            CurrentLimit::Throttle { reject_ppm } => Some(f64::from(reject_ppm) / 10_000.0),
            CurrentLimit::Quota { blocked_for, .. } => Some(blocked_for.as_secs_f64() * 1e3),
            _ => None,
        }
    }
}

/// Whether a call gave up because a limiter refused it.
pub(crate) fn is_local_rejection(reason: GiveUpReason) -> bool {
    matches!(reason, GiveUpReason::RejectedLocally(_))
}
