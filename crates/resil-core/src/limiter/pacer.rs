//! [`QuotaPacer`]: paces calls by the server's own numbers, so a client that has used its
//! quota waits for the reset (jittered) instead of collecting 429s.

use core::time::Duration;

use super::{
    Admission, Admit, Ask, CurrentLimit, Feedback, Grant, LocalRejection, ServerQuota, Ticket,
    Wake, latest_start,
};
use crate::backoff::{scale, to_fixed, uniform};
use crate::error::PolicyError;
use crate::policy::ResponseHead;
use crate::splitmix::SplitMix64;
use crate::time::{Instant, duration_to_nanos};

/// Builds a [`QuotaPacer`]. Defaults: jitter 0.1, `max_wait` 30 s, `max_block` 10 min (the
/// draft's example of a window worth distrusting), seed 0.
#[derive(Clone, Debug)]
pub struct QuotaPacerBuilder {
    jitter: f64,
    max_wait: Duration,
    max_block: Duration,
    seed: u64,
}

impl QuotaPacerBuilder {
    /// Each waiter adds `U(0, f · d)` above the reset, `d` being its wait (`f` in `[0, 1]`), so
    /// clients told the same reset do not all come back at its instant (the draft's advice).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// The longest one attempt waits for a reset; a longer wait rejects it at once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The longest the pacer believes a server's block (at least 1 s): a reset or
    /// `Retry-After` further away is cut to this, so a garbage or hostile number cannot stop
    /// the client for good (the draft's denial-of-service advice).
    pub fn max_block(mut self, max_block: Duration) -> Self {
        self.max_block = max_block;
        self
    }

    /// Seeds the jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<QuotaPacer, PolicyError> {
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(PolicyError::new("jitter", "fraction must be in [0, 1]"));
        }
        if self.max_block < Duration::from_secs(1) {
            return Err(PolicyError::new("max_block", "must be at least 1 s"));
        }
        Ok(QuotaPacer {
            jitter: to_fixed(self.jitter),
            max_wait: duration_to_nanos(self.max_wait),
            max_block: self.max_block,
            rng: SplitMix64(self.seed),
            remaining: None,
            window_end: Instant::ZERO,
            retry_after_until: Instant::ZERO,
            latest: Instant::ZERO,
            next_ticket: 0,
        })
    }
}

/// Paces attempts by what the server said about its quota.
///
/// Feed it every response with [`observe`](Self::observe): the binding [`ServerQuota`]
/// (`RateLimit`, or `X-RateLimit-*`) and the `Retry-After`, which wins when both are present.
/// Between answers it counts the requests it lets through against the remaining quota. Once
/// the quota is used up, attempts wait until the window ends plus a jitter drawn per attempt,
/// or are rejected at once ([`LocalRejection::QuotaExhausted`]) if that is past their bound.
/// After the window ends it knows nothing and lets attempts through until the next answer.
///
/// ```
/// use core::time::Duration;
/// use resil_core::{Admission, Admit, Ask, AttemptKind, Instant, QuotaPacer, ServerQuota};
///
/// let mut pacer = QuotaPacer::builder().jitter(0.0).build()?;
/// let t0 = Instant::ZERO;
/// let quota = ServerQuota { remaining: 0, reset: Duration::from_secs(5) };
/// pacer.observe(t0, Some(quota), None);
/// let Admit::Wait { until, ticket } = pacer.acquire(t0, Ask::new(AttemptKind::First)) else {
///     panic!()
/// };
/// assert_eq!(until, t0 + Duration::from_secs(5));
/// assert!(matches!(pacer.claim(until, ticket), Admit::Now(_)));
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct QuotaPacer {
    jitter: u64,
    max_wait: u64,
    max_block: Duration,
    rng: SplitMix64,
    /// Requests left before `window_end`, by the server's last count minus ours; `None`
    /// when unknown.
    remaining: Option<u64>,
    window_end: Instant,
    retry_after_until: Instant,
    latest: Instant,
    next_ticket: u64,
}

impl QuotaPacer {
    /// A builder with the defaults on [`QuotaPacerBuilder`].
    pub fn builder() -> QuotaPacerBuilder {
        QuotaPacerBuilder {
            jitter: 0.1,
            max_wait: super::DEFAULT_MAX_WAIT,
            max_block: Duration::from_secs(600),
            seed: 0,
        }
    }

    /// Learns from one response that arrived at `now`: the server's quota, if it sent one,
    /// and its `Retry-After` delay. The latest quota replaces what was known; a `Retry-After`
    /// takes precedence over it (the draft says so) and only ever extends a block.
    pub fn observe(
        &mut self,
        now: Instant,
        quota: Option<ServerQuota>,
        retry_after: Option<Duration>,
    ) {
        let now = self.observe_time(now);
        if let Some(delay) = retry_after {
            let until = now.saturating_add(delay.min(self.max_block));
            self.retry_after_until = self.retry_after_until.max(until);
            self.remaining = None;
        } else if let Some(quota) = quota {
            self.remaining = Some(quota.remaining);
            self.window_end = now.saturating_add(quota.reset.min(self.max_block));
        }
    }

    /// Until when attempts are held back, as far as the pacer knows (before jitter); `None`
    /// while they may go.
    pub fn blocked_until(&self) -> Option<Instant> {
        let end = self.block_end();
        (end > self.latest).then_some(end)
    }

    /// Requests left in the current window, when the server said so.
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    fn observe_time(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        if self.latest >= self.window_end {
            self.remaining = None;
        }
        self.latest
    }

    fn block_end(&self) -> Instant {
        let quota_end = if self.remaining == Some(0) {
            self.window_end
        } else {
            Instant::ZERO
        };
        self.retry_after_until.max(quota_end)
    }

    /// Admits now, or names this attempt's own jittered wait for the block to end.
    fn decide(&mut self, now: Instant, not_after: Instant, id: Option<u64>) -> Admit {
        let end = self.block_end();
        if end <= now {
            self.remaining = self.remaining.map(|n| n.saturating_sub(1));
            return Admit::Now(Grant::new(now, 0));
        }
        let wait = end.saturating_duration_since(now);
        let spread = scale(duration_to_nanos(wait), self.jitter);
        let until = end.saturating_add(Duration::from_nanos(uniform(&mut self.rng, spread)));
        if until > latest_start(now, not_after, self.max_wait) {
            return Admit::Reject(LocalRejection::QuotaExhausted { wait });
        }
        let id = id.unwrap_or_else(|| {
            self.next_ticket = self.next_ticket.wrapping_add(1);
            self.next_ticket
        });
        Admit::Wait {
            until,
            ticket: Ticket::new(id, now, until, not_after, 1),
        }
    }
}

impl Admission for QuotaPacer {
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit {
        let now = self.observe_time(now);
        self.decide(now, ask.not_after, None)
    }

    fn claim(&mut self, now: Instant, ticket: Ticket) -> Admit {
        let now = self.observe_time(now);
        if now < ticket.until() {
            return Admit::Wait {
                until: ticket.until(),
                ticket,
            };
        }
        // The block may have moved since (a later answer): ask again, keeping the ticket.
        match self.decide(now, ticket.not_after(), Some(ticket.id())) {
            Admit::Wait { until, ticket: t } => Admit::Wait {
                until,
                ticket: Ticket::new(t.id(), ticket.since(), until, ticket.not_after(), 1),
            },
            other => other,
        }
    }

    fn cancel(&mut self, now: Instant, _ticket: Ticket) -> Wake {
        self.observe_time(now);
        Wake::NONE
    }

    fn record(&mut self, now: Instant, _grant: Grant, _feedback: Feedback) -> Wake {
        self.observe_time(now);
        Wake::NONE
    }

    fn release(&mut self, now: Instant, _grant: Grant) -> Wake {
        self.observe_time(now);
        Wake::NONE
    }

    /// Learns from the head as [`observe`](QuotaPacer::observe) does: its quota headers
    /// (when the driver passed headers) and its `Retry-After`.
    fn record_response(&mut self, now: Instant, grant: Grant, head: &ResponseHead<'_>) -> Wake {
        let quota = head
            .headers
            .and_then(|h| ServerQuota::from_headers(h, head.wall_clock));
        let retry_after = head.retry_after.and_then(|ra| ra.delay(head.wall_clock));
        self.observe(now, quota, retry_after);
        self.record(now, grant, Feedback::for_response(head))
    }

    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        let now = self.observe_time(now);
        CurrentLimit::Quota {
            remaining: self.remaining,
            blocked_for: self.block_end().saturating_duration_since(now),
        }
    }
}
