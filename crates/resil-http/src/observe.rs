//! Hooks and statistics shared by every driver: a driver hands each machine [`Event`] to
//! [`Observer::observe`], so hooks, counters and `tracing` events are identical everywhere.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::vec::Vec;

use std::string::String;

use resil_core::{
    Attempt, Cause, Event, GiveUp, GiveUpReason, LocalRejection, RedirectRefusal, Transition,
};

/// Whether any `tracing` subscriber could want an event (feature `tracing`): one atomic load
/// of `tracing`'s global maximum level. Without a subscriber the redacted URL and the request
/// id that events carry are not made.
#[inline]
pub(crate) fn tracing_on() -> bool {
    #[cfg(feature = "tracing")]
    return tracing::level_enabled!(tracing::Level::ERROR);
    #[cfg(not(feature = "tracing"))]
    return false;
}

/// The call an event belongs to.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo<'a> {
    /// The request method.
    pub method: &'a str,
    /// The URL, with credentials already redacted.
    pub url: &'a str,
    /// The request id sent with every attempt of this call, if any.
    pub request_id: Option<&'a str>,
}

/// Callbacks for what happens to calls. Every method has an empty default; they run on the
/// calling thread (or task) and should be quick.
pub trait Hooks: Send + Sync {
    /// An attempt is about to be sent.
    fn on_request(&self, call: &CallInfo<'_>, attempt: Attempt) {
        let _ = (call, attempt);
    }
    /// An attempt failed and another will follow after `delay`.
    fn on_retry(&self, call: &CallInfo<'_>, retry: &RetryInfo) {
        let _ = (call, retry);
    }
    /// The call ended with a final response.
    fn on_success(&self, call: &CallInfo<'_>, attempt: Attempt, status: u16) {
        let _ = (call, attempt, status);
    }
    /// The call gave up.
    fn on_failure(&self, call: &CallInfo<'_>, give_up: &GiveUp) {
        let _ = (call, give_up);
    }
    /// The shared circuit breaker changed state during this call (a metrics-only breaker's
    /// transitions too, with [`Transition::enforced`] false).
    fn on_breaker(&self, call: &CallInfo<'_>, transition: Transition) {
        let _ = (call, transition);
    }
    /// A hop ended on a redirect: followed (the next hop's attempts follow), or refused
    /// (the call fails). `call` names the request that got the 3xx.
    fn on_redirect(&self, call: &CallInfo<'_>, redirect: &RedirectInfo) {
        let _ = (call, redirect);
    }
    /// A response body failed while it was read, and the call goes on for the rest of it
    /// (a retry decides; `on_retry` or `on_failure` follows).
    fn on_body_failure(&self, call: &CallInfo<'_>, failure: &BodyFailure) {
        let _ = (call, failure);
    }
    /// A hedging call sent a hedge, a hedge won, or an attempt still out was cancelled.
    fn on_hedge(&self, call: &CallInfo<'_>, hedge: &HedgeInfo) {
        let _ = (call, hedge);
    }
    /// `attempt` waits `wait` for the client's limiters (a rate limiter's reserved start, the
    /// server quota's reset, a concurrency queue) before it is sent.
    fn on_limiter_wait(&self, call: &CallInfo<'_>, attempt: Attempt, wait: Duration) {
        let _ = (call, attempt, wait);
    }
    /// A limiter refused the call's next attempt on the client side; nothing was sent for it
    /// and the call fails ([`on_failure`](Self::on_failure) follows).
    fn on_rejected_locally(&self, call: &CallInfo<'_>, reason: LocalRejection) {
        let _ = (call, reason);
    }
}

/// What a hedging call did, as hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeInfo {
    /// `attempt` went out while an earlier attempt was still out.
    Sent {
        /// The hedge.
        attempt: Attempt,
    },
    /// The final response came from the hedge `attempt`.
    Won {
        /// The hedge.
        attempt: Attempt,
    },
    /// `attempt` was stopped: it lost to another's answer (`lost`), or its deadline passed
    /// while others were out.
    Cancelled {
        /// The attempt.
        attempt: Attempt,
        /// It lost (else it timed out).
        lost: bool,
    },
}

/// Shared hooks: keep an `Arc` to read what they recorded.
impl<H: Hooks + ?Sized> Hooks for Arc<H> {
    fn on_request(&self, call: &CallInfo<'_>, attempt: Attempt) {
        (**self).on_request(call, attempt);
    }
    fn on_retry(&self, call: &CallInfo<'_>, retry: &RetryInfo) {
        (**self).on_retry(call, retry);
    }
    fn on_success(&self, call: &CallInfo<'_>, attempt: Attempt, status: u16) {
        (**self).on_success(call, attempt, status);
    }
    fn on_failure(&self, call: &CallInfo<'_>, give_up: &GiveUp) {
        (**self).on_failure(call, give_up);
    }
    fn on_breaker(&self, call: &CallInfo<'_>, transition: Transition) {
        (**self).on_breaker(call, transition);
    }
    fn on_redirect(&self, call: &CallInfo<'_>, redirect: &RedirectInfo) {
        (**self).on_redirect(call, redirect);
    }
    fn on_body_failure(&self, call: &CallInfo<'_>, failure: &BodyFailure) {
        (**self).on_body_failure(call, failure);
    }
    fn on_hedge(&self, call: &CallInfo<'_>, hedge: &HedgeInfo) {
        (**self).on_hedge(call, hedge);
    }
    fn on_limiter_wait(&self, call: &CallInfo<'_>, attempt: Attempt, wait: Duration) {
        (**self).on_limiter_wait(call, attempt, wait);
    }
    fn on_rejected_locally(&self, call: &CallInfo<'_>, reason: LocalRejection) {
        (**self).on_rejected_locally(call, reason);
    }
}

/// A response body that failed while it was read, as hooks see it, and what the call that
/// goes on for the rest of it starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyFailure {
    /// Attempts the call made so far (the last one's body failed).
    pub attempts: u32,
    /// The call's deadline.
    pub deadline: resil_core::Instant,
    /// How the body failed.
    pub kind: resil_core::TransportErrorKind,
    /// Bytes of the body read before it failed.
    pub at_byte: u64,
    /// The next request asks for the rest alone (`Range`); otherwise for the whole body.
    pub ranged: bool,
}

/// A redirect, as hooks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectInfo {
    /// Which hop of the call this is (1 for the first redirect).
    pub hop: u32,
    /// The 3xx status.
    pub status: u16,
    /// Where it points, credentials redacted (empty when it is no URL the call could go to).
    pub to: String,
    /// Why it was not followed, when it was not.
    pub refused: Option<RedirectRefusal>,
}

/// A scheduled retry, as hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryInfo {
    /// The attempt that failed.
    pub after: Attempt,
    /// How it failed.
    pub cause: Cause,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// The `Retry-After` the server asked for, when it was honoured.
    pub retry_after: Option<Duration>,
    /// How long the failed attempt took, from its send to its end (Polly's
    /// `OnRetryArguments.Duration`).
    pub attempt_duration: Duration,
}

/// Why a retry happened, for [`Stats`] counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// 429 Too Many Requests.
    TooManyRequests,
    /// 408 Request Timeout.
    RequestTimeout,
    /// A 5xx status.
    ServerError,
    /// Another status a policy chose to retry.
    OtherStatus,
    /// A transport error before the request reached the server.
    NotSent,
    /// A transport error after the request may have reached the server.
    Transport,
    /// The attempt timed out.
    Timeout,
}

impl RetryReason {
    const ALL: [RetryReason; 7] = [
        RetryReason::TooManyRequests,
        RetryReason::RequestTimeout,
        RetryReason::ServerError,
        RetryReason::OtherStatus,
        RetryReason::NotSent,
        RetryReason::Transport,
        RetryReason::Timeout,
    ];

    /// The reason for a retry after `cause`.
    pub fn of(cause: Cause) -> RetryReason {
        match cause {
            Cause::Status(429) => RetryReason::TooManyRequests,
            Cause::Status(408) => RetryReason::RequestTimeout,
            Cause::Status(500..=599) => RetryReason::ServerError,
            Cause::Status(_) => RetryReason::OtherStatus,
            Cause::Error(resil_core::TransportErrorKind::Timeout) => RetryReason::Timeout,
            Cause::Error(k) if !k.reached_server() => RetryReason::NotSent,
            Cause::Error(_) => RetryReason::Transport,
        }
    }

    fn index(self) -> usize {
        RetryReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetryReason::TooManyRequests => "429",
            RetryReason::RequestTimeout => "408",
            RetryReason::ServerError => "5xx",
            RetryReason::OtherStatus => "other status",
            RetryReason::NotSent => "not sent",
            RetryReason::Transport => "transport",
            RetryReason::Timeout => "timeout",
        })
    }
}

/// Lock-free counters for one client, shared by all its calls.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    attempts: AtomicU64,
    retries: [AtomicU64; 7],
    retry_after_honoured: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    breaker_rejections: AtomicU64,
    budget_refusals: AtomicU64,
    breaker_transitions: AtomicU64,
    backoff_nanos: AtomicU64,
    redirects: AtomicU64,
    body_failures: AtomicU64,
    hedges: AtomicU64,
    hedge_wins: AtomicU64,
    cancelled: AtomicU64,
    local_rejections: AtomicU64,
    limiter_waits: AtomicU64,
    limiter_wait_nanos: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Logical requests started.
    pub requests: u64,
    /// Attempts sent.
    pub attempts: u64,
    /// Retries scheduled, by reason.
    pub retries: Vec<(RetryReason, u64)>,
    /// Retries whose wait came from a server's `Retry-After`.
    pub retry_after_honoured: u64,
    /// Calls that ended with a final response.
    pub successes: u64,
    /// Calls that gave up (including breaker rejections and budget refusals).
    pub failures: u64,
    /// Calls the circuit breaker rejected.
    pub breaker_rejections: u64,
    /// Retries the budget refused.
    pub budget_refusals: u64,
    /// Breaker transitions seen by this client's calls.
    pub breaker_transitions: u64,
    /// Time scheduled in backoff sleeps.
    pub backoff: Duration,
    /// Redirects followed (counted apart from retries).
    pub redirects: u64,
    /// Response bodies that failed while they were read and whose call went on.
    pub body_failures: u64,
    /// Hedges sent (attempts sent while an earlier one of the same call was out).
    pub hedges: u64,
    /// Calls whose final response came from a hedge.
    pub hedge_wins: u64,
    /// Attempts cancelled while out: they lost to a hedge (or it to them), or ran out of time
    /// while others were out.
    pub cancelled: u64,
    /// Calls a client-side limiter refused (overload control): nothing was sent for their
    /// next attempt. Counted in `failures` too.
    pub local_rejections: u64,
    /// Attempts that waited for the client's limiters before they were sent.
    pub limiter_waits: u64,
    /// Time scheduled in those waits.
    pub limiter_wait: Duration,
}

impl StatsSnapshot {
    /// Retries of every reason.
    pub fn total_retries(&self) -> u64 {
        self.retries.iter().map(|(_, n)| n).sum()
    }

    /// Retries for one reason.
    pub fn retries_for(&self, reason: RetryReason) -> u64 {
        self.retries
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

/// One line for logs: the counts that are not zero, retries by reason.
///
/// ```
/// use core::time::Duration;
/// use resil_http::{RetryReason, StatsSnapshot};
///
/// let stats = StatsSnapshot {
///     requests: 3,
///     attempts: 5,
///     retries: vec![(RetryReason::ServerError, 1), (RetryReason::TooManyRequests, 1)],
///     retry_after_honoured: 1,
///     successes: 2,
///     failures: 1,
///     breaker_rejections: 1,
///     backoff: Duration::from_millis(1250),
///     ..StatsSnapshot::default()
/// };
/// assert_eq!(
///     stats.to_string(),
///     "3 requests, 5 attempts, 2 retries (5xx 1, 429 1), 1 Retry-After honoured, \
///      2 successes, 1 failure, 1 breaker rejection, 1.25s in backoff"
/// );
/// ```
impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |f: &mut fmt::Formatter<'_>, n: u64, one: &str, many: &str| {
            write!(f, ", {n} {}", if n == 1 { one } else { many })
        };
        write!(
            f,
            "{} {}",
            self.requests,
            if self.requests == 1 {
                "request"
            } else {
                "requests"
            }
        )?;
        count(f, self.attempts, "attempt", "attempts")?;
        count(f, self.total_retries(), "retry", "retries")?;
        let mut reasons = self.retries.iter().filter(|(_, n)| *n > 0).peekable();
        if reasons.peek().is_some() {
            f.write_str(" (")?;
            for (i, (reason, n)) in reasons.enumerate() {
                write!(f, "{}{reason} {n}", if i == 0 { "" } else { ", " })?;
            }
            f.write_str(")")?;
        }
        let rest = [
            (
                self.retry_after_honoured,
                "Retry-After honoured",
                "Retry-After honoured",
            ),
            (self.successes, "success", "successes"),
            (self.failures, "failure", "failures"),
            (
                self.breaker_rejections,
                "breaker rejection",
                "breaker rejections",
            ),
            (self.budget_refusals, "budget refusal", "budget refusals"),
            (
                self.breaker_transitions,
                "breaker transition",
                "breaker transitions",
            ),
            (self.redirects, "redirect", "redirects"),
            (self.body_failures, "body failure", "body failures"),
            (self.hedges, "hedge", "hedges"),
            (self.hedge_wins, "hedge win", "hedge wins"),
            (self.cancelled, "attempt cancelled", "attempts cancelled"),
            (self.local_rejections, "local rejection", "local rejections"),
            (self.limiter_waits, "limiter wait", "limiter waits"),
        ];
        for (n, one, many) in rest {
            if n > 0 {
                count(f, n, one, many)?;
            }
        }
        if !self.backoff.is_zero() {
            write!(f, ", {:?} in backoff", self.backoff)?;
        }
        if !self.limiter_wait.is_zero() {
            write!(f, ", {:?} waiting for limiters", self.limiter_wait)?;
        }
        Ok(())
    }
}

impl Stats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: load(&self.requests),
            attempts: load(&self.attempts),
            retries: RetryReason::ALL
                .iter()
                .map(|r| (*r, load(&self.retries[r.index()])))
                .collect(),
            retry_after_honoured: load(&self.retry_after_honoured),
            successes: load(&self.successes),
            failures: load(&self.failures),
            breaker_rejections: load(&self.breaker_rejections),
            budget_refusals: load(&self.budget_refusals),
            breaker_transitions: load(&self.breaker_transitions),
            backoff: Duration::from_nanos(load(&self.backoff_nanos)),
            redirects: load(&self.redirects),
            body_failures: load(&self.body_failures),
            hedges: load(&self.hedges),
            hedge_wins: load(&self.hedge_wins),
            cancelled: load(&self.cancelled),
            local_rejections: load(&self.local_rejections),
            limiter_waits: load(&self.limiter_waits),
            limiter_wait: Duration::from_nanos(load(&self.limiter_wait_nanos)),
        }
    }
}

/// Turns a call's events into hook calls, counters and (feature `tracing`) `tracing` events.
/// Drivers create one per call and pass it every event they poll. It borrows the client's
/// counters and hooks: a call then costs no reference-count traffic on them.
#[derive(Clone, Copy)]
pub struct Observer<'a> {
    hooks: Option<&'a dyn Hooks>,
    stats: &'a Stats,
}

impl fmt::Debug for Observer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("hooks", &self.hooks.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a> Observer<'a> {
    /// An observer that updates `stats` and calls `hooks`.
    pub fn new(stats: &'a Stats, hooks: Option<&'a dyn Hooks>) -> Observer<'a> {
        Observer { hooks, stats }
    }

    /// The counters.
    pub fn stats(&self) -> &'a Stats {
        self.stats
    }

    /// A logical request starts (call once per call, before its first event).
    pub fn call_started(&self) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A hop of the call `call` ended on a redirect, followed or refused (then the call
    /// failed).
    pub fn redirect(&self, call: &CallInfo<'_>, redirect: &RedirectInfo) {
        let counter = match redirect.refused {
            None => &self.stats.redirects,
            Some(_) => &self.stats.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        match redirect.refused {
            None => {
                tracing::info!(method = call.method, url = call.url, request_id = call.request_id, hop = redirect.hop, status = redirect.status, to = %redirect.to, "resil: following redirect")
            }
            Some(why) => {
                tracing::warn!(method = call.method, url = call.url, request_id = call.request_id, hop = redirect.hop, status = redirect.status, to = %redirect.to, reason = %why, "resil: redirect refused")
            }
        }
        if let Some(h) = &self.hooks {
            h.on_redirect(call, redirect);
        }
    }

    /// A response body of the call `call` failed while it was read; the call goes on.
    pub fn body_failed(&self, call: &CallInfo<'_>, failure: &BodyFailure) {
        self.stats.body_failures.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        tracing::info!(method = call.method, url = call.url, request_id = call.request_id, attempt = failure.attempts, at_byte = failure.at_byte, ranged = failure.ranged, cause = %failure.kind, "resil: body failed, going on for the rest");
        if let Some(h) = &self.hooks {
            h.on_body_failure(call, failure);
        }
    }

    /// Handles one event of the call described by `call`.
    pub fn observe(&self, call: &CallInfo<'_>, event: Event) {
        let add = |a: &AtomicU64, n: u64| {
            a.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            Event::AttemptStarted { attempt, .. } => {
                add(&self.stats.attempts, 1);
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    "resil: sending attempt"
                );
                if let Some(h) = &self.hooks {
                    h.on_request(call, attempt);
                }
            }
            Event::RetryScheduled {
                after,
                cause,
                delay,
                retry_after,
                attempt_duration,
                ..
            } => {
                add(&self.stats.retries[RetryReason::of(cause).index()], 1);
                add(
                    &self.stats.backoff_nanos,
                    u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX),
                );
                if retry_after.is_some() {
                    add(&self.stats.retry_after_honoured, 1);
                }
                #[cfg(feature = "tracing")]
                tracing::info!(method = call.method, url = call.url, request_id = call.request_id, attempt = after.number(), cause = %cause, delay_ms = delay.as_millis() as u64, retry_after = retry_after.is_some(), attempt_ms = attempt_duration.as_millis() as u64, "resil: retry scheduled");
                if let Some(h) = &self.hooks {
                    let info = RetryInfo {
                        after,
                        cause,
                        delay,
                        retry_after,
                        attempt_duration,
                    };
                    h.on_retry(call, &info);
                }
            }
            Event::Completed { attempt, status } => {
                add(&self.stats.successes, 1);
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    status,
                    "resil: completed"
                );
                if let Some(h) = &self.hooks {
                    h.on_success(call, attempt, status);
                }
            }
            Event::GaveUp(give_up) => {
                add(&self.stats.failures, 1);
                match give_up.reason {
                    GiveUpReason::CircuitOpen { .. } => add(&self.stats.breaker_rejections, 1),
                    GiveUpReason::BudgetExhausted => add(&self.stats.budget_refusals, 1),
                    GiveUpReason::RejectedLocally(reason) => {
                        add(&self.stats.local_rejections, 1);
                        #[cfg(feature = "tracing")]
                        tracing::warn!(method = call.method, url = call.url, request_id = call.request_id, reason = %reason, "resil: rejected locally by a limiter");
                        if let Some(h) = &self.hooks {
                            h.on_rejected_locally(call, reason);
                        }
                    }
                    _ => {}
                }
                #[cfg(feature = "tracing")]
                tracing::warn!(method = call.method, url = call.url, request_id = call.request_id, attempts = give_up.attempts, reason = %give_up.reason, "resil: gave up");
                if let Some(h) = &self.hooks {
                    h.on_failure(call, &give_up);
                }
            }
            Event::Breaker(transition) => {
                add(&self.stats.breaker_transitions, 1);
                #[cfg(feature = "tracing")]
                tracing::warn!(url = call.url, from = %transition.from, to = %transition.to, enforced = transition.enforced, "resil: circuit breaker transition");
                if let Some(h) = &self.hooks {
                    h.on_breaker(call, transition);
                }
            }
            Event::HedgeSent { attempt } => {
                add(&self.stats.hedges, 1);
                #[cfg(feature = "tracing")]
                tracing::info!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    "resil: hedge sent"
                );
                if let Some(h) = &self.hooks {
                    h.on_hedge(call, &HedgeInfo::Sent { attempt });
                }
            }
            Event::HedgeWon { attempt } => {
                add(&self.stats.hedge_wins, 1);
                #[cfg(feature = "tracing")]
                tracing::info!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    "resil: hedge won"
                );
                if let Some(h) = &self.hooks {
                    h.on_hedge(call, &HedgeInfo::Won { attempt });
                }
            }
            Event::Cancelled { attempt, lost } => {
                add(&self.stats.cancelled, 1);
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    lost,
                    "resil: attempt cancelled"
                );
                if let Some(h) = &self.hooks {
                    h.on_hedge(call, &HedgeInfo::Cancelled { attempt, lost });
                }
            }
            Event::LimiterWait { attempt, wait, .. } => {
                add(&self.stats.limiter_waits, 1);
                add(
                    &self.stats.limiter_wait_nanos,
                    u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
                );
                #[cfg(feature = "tracing")]
                tracing::info!(
                    method = call.method,
                    url = call.url,
                    request_id = call.request_id,
                    attempt = attempt.number(),
                    wait_ms = wait.as_millis() as u64,
                    "resil: waiting for the client's limiters"
                );
                if let Some(h) = &self.hooks {
                    h.on_limiter_wait(call, attempt, wait);
                }
            }
            // Events added to the machine later are not reported until this learns them.
            _ => {}
        }
    }
}
