//! What a [`RetryMachine`](crate::RetryMachine) holds from its limiters: the grants of the
//! attempt being admitted or out, and the ticket of a wait. The [`Admission`] protocol, carried
//! out for the machine, so its own code only says when.

use alloc::boxed::Box;
use core::time::Duration;

use super::{Admission, Admit, Ask, Feedback, Grant, LocalRejection, MAX_LIMITERS, Ticket};
use crate::policy::{AttemptOutcome, TransportErrorKind};
use crate::shared::Shared;
use crate::time::Instant;

/// A limiter as the machine reaches it: shared behind a lock, of any kind.
pub type LimiterRef<'p> = &'p (dyn Shared<dyn Admission + Send> + Sync);

/// The limiters a [`RetryMachine`](crate::RetryMachine) asks, in order
/// ([`with_limiters`](crate::RetryMachine::with_limiters)): an array, a slice or a `Vec` of
/// [`LimiterRef`]s, or (where the target has atomics) a `Vec` of `Arc`s of shared limiters, as a
/// client that owns them keeps them.
pub trait Limiters {
    /// How many there are (only the first [`MAX_LIMITERS`] are asked).
    fn count(&self) -> usize;
    /// The limiter at `index`, in asking order.
    fn limiter(&self, index: usize) -> Option<LimiterRef<'_>>;
}

impl<'a, const N: usize> Limiters for [LimiterRef<'a>; N] {
    fn count(&self) -> usize {
        N
    }
    fn limiter(&self, index: usize) -> Option<LimiterRef<'_>> {
        self.get(index).copied()
    }
}

impl<'a> Limiters for &'a [LimiterRef<'a>] {
    fn count(&self) -> usize {
        self.len()
    }
    fn limiter(&self, index: usize) -> Option<LimiterRef<'_>> {
        self.get(index).copied()
    }
}

impl<'a> Limiters for alloc::vec::Vec<LimiterRef<'a>> {
    fn count(&self) -> usize {
        self.len()
    }
    fn limiter(&self, index: usize) -> Option<LimiterRef<'_>> {
        self.get(index).copied()
    }
}

#[cfg(target_has_atomic = "ptr")]
impl Limiters
    for alloc::vec::Vec<alloc::sync::Arc<dyn Shared<dyn Admission + Send> + Send + Sync>>
{
    fn count(&self) -> usize {
        self.len()
    }
    fn limiter(&self, index: usize) -> Option<LimiterRef<'_>> {
        self.get(index).map(|l| &**l as LimiterRef<'_>)
    }
}

/// The limiters as the machine holds them.
pub(crate) type LimitersRef<'p> = &'p (dyn Limiters + Sync);

/// Claims a limiter answers with a wait that is already over, before the machine gives up on
/// it: a correct limiter never does, and a wrong one must not spin the call.
const MAX_SPINS: u32 = 8;

/// The grants one attempt holds, one per limiter in order: packed (one issue time, the latest,
/// and each limiter's in-flight count) so the retry machine carries them inline. Only a
/// concurrency limiter reads the issue time, and it is asked last: its own.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Grants {
    issued_at: Instant,
    inflight: [u32; MAX_LIMITERS],
    len: u8,
}

impl Grants {
    /// Whether it holds any.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.len > 0
    }

    /// Takes them all, leaving none.
    pub(crate) fn take(&mut self) -> Grants {
        core::mem::take(self)
    }

    /// The grant of limiter `i`.
    fn grant(&self, i: usize) -> Grant {
        Grant::new(self.issued_at, self.inflight.get(i).copied().unwrap_or(0))
    }

    /// The attempt ended with `outcome` at `now`: every limiter learns it (a timeout as back
    /// pressure). `cut_short`: the attempt's own time had not run out (the call's total
    /// deadline ended it), so it is released, not recorded.
    pub(crate) fn record(
        &mut self,
        limiters: LimitersRef<'_>,
        now: Instant,
        outcome: &AttemptOutcome<'_>,
        cut_short: bool,
    ) {
        let held = self.take();
        for i in 0..usize::from(held.len) {
            let (Some(limiter), grant) = (limiters.limiter(i), held.grant(i)) else {
                continue;
            };
            limiter.with_mut(&mut |l| {
                let _wake = match outcome {
                    AttemptOutcome::Response(head) => l.record_response(now, grant, head),
                    AttemptOutcome::Error(TransportErrorKind::Timeout) if cut_short => {
                        l.release(now, grant)
                    }
                    AttemptOutcome::Error(kind) => l.record(now, grant, Feedback::for_error(*kind)),
                };
            });
        }
    }

    /// The attempt was abandoned at `now` without an outcome (it lost a race, the call was
    /// dropped or cancelled): every grant is handed back.
    pub(crate) fn release(&mut self, limiters: LimitersRef<'_>, now: Instant) {
        let held = self.take();
        for i in 0..usize::from(held.len) {
            let (Some(limiter), grant) = (limiters.limiter(i), held.grant(i)) else {
                continue;
            };
            limiter.with_mut(&mut |l| {
                let _wake = l.release(now, grant);
            });
        }
    }

    fn push(&mut self, grant: Grant) {
        if let Some(slot) = self.inflight.get_mut(usize::from(self.len)) {
            *slot = grant.inflight();
            self.issued_at = grant.issued_at();
            self.len += 1;
        }
    }
}

/// What the limiters said about the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Every limiter admitted it: send it now.
    Open,
    /// Wait until then, and ask again ([`Held::admit`] claims the ticket).
    Wait(Instant),
    /// A limiter refused it; the grants taken for it were handed back.
    Rejected(LocalRejection),
}

/// The machine's side of the protocol: the grants of the attempt being admitted or out
/// (inline), and what only a call under overload needs (boxed on first use): the ticket it
/// waits with, why a limiter refused it, and its latest wait.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) grants: Grants,
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Default)]
struct Rare {
    /// The wait for limiter number `grants.len`.
    pending: Option<Ticket>,
    /// Why the call was refused, for its give-up.
    rejected: Option<LocalRejection>,
    /// The latest wait, for its event: from, until.
    wait: (Instant, Instant),
}

impl Held {
    /// Whether anything is held that must be handed back if the call ends now.
    #[inline]
    pub(crate) fn holds(&self) -> bool {
        self.grants.any() || self.rare.as_ref().is_some_and(|r| r.pending.is_some())
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Why a limiter refused the call, if one did.
    pub(crate) fn rejected(&self) -> Option<LocalRejection> {
        self.rare.as_ref().and_then(|r| r.rejected)
    }

    /// The call was refused for `why`.
    pub(crate) fn set_rejected(&mut self, why: LocalRejection) {
        self.rare().rejected = Some(why);
    }

    /// The latest wait: from, until.
    pub(crate) fn wait(&self) -> Option<(Instant, Instant)> {
        self.rare.as_ref().map(|r| r.wait)
    }

    /// Asks every limiter not asked yet, in order, for the next attempt at `now` (claiming the
    /// ticket of the wait that just ended first). `may_wait`: a wait is acceptable (a hedge
    /// takes only an immediate yes: a wait or a refusal releases what it took and reads as
    /// `Rejected`).
    pub(crate) fn admit(
        &mut self,
        limiters: LimitersRef<'_>,
        now: Instant,
        ask: Ask,
        may_wait: bool,
    ) -> Gate {
        let count = limiters.count().min(MAX_LIMITERS);
        let mut spins = 0;
        while usize::from(self.grants.len) < count {
            let Some(limiter) = limiters.limiter(usize::from(self.grants.len)) else {
                // A list shorter than it said: the rest cannot be asked.
                break;
            };
            let pending = self.rare.as_mut().and_then(|r| r.pending.take());
            let mut answer = None;
            limiter.with_mut(&mut |l| {
                answer = Some(match pending {
                    Some(ticket) => l.claim(now, ticket),
                    None => l.acquire(now, ask),
                });
            });
            match answer {
                Some(Admit::Now(grant)) => self.grants.push(grant),
                Some(Admit::Wait { until, ticket } | Admit::Queued { until, ticket }) => {
                    if !may_wait {
                        limiter.with_mut(&mut |l| {
                            let _wake = l.cancel(now, ticket);
                        });
                        self.grants.release(limiters, now);
                        return Gate::Rejected(LocalRejection::RateLimited {
                            wait: until.saturating_duration_since(now),
                        });
                    }
                    self.rare().pending = Some(ticket);
                    if until <= now && spins < MAX_SPINS {
                        spins += 1;
                        continue;
                    }
                    // Never a wait of zero: the machine must be woken after `now`.
                    let until = until.max(now.saturating_add(Duration::from_nanos(1)));
                    self.rare().wait = (now, until);
                    return Gate::Wait(until);
                }
                Some(Admit::Reject(reason)) => {
                    self.grants.release(limiters, now);
                    return Gate::Rejected(reason);
                }
                // A `Shared` that never ran the closure: that limiter cannot be asked, nor
                // told anything later; it is passed over.
                None => self.grants.push(Grant::new(now, 0)),
            }
        }
        Gate::Open
    }

    /// Hands back everything held at `now`: the grants, and the wait's place.
    pub(crate) fn abandon(&mut self, limiters: LimitersRef<'_>, now: Instant) {
        if let Some(ticket) = self.rare.as_mut().and_then(|r| r.pending.take()) {
            if let Some(limiter) = limiters.limiter(usize::from(self.grants.len)) {
                limiter.with_mut(&mut |l| {
                    let _wake = l.cancel(now, ticket);
                });
            }
        }
        self.grants.release(limiters, now);
    }
}
