//! Sharing a client's breaker and budget with the other processes of a fleet: the link a
//! client is built with ([`FleetLink`], implemented by resil-redis's `RedisFleet`), and the
//! membership it holds while it lives ([`FleetMembership`]).
//!
//! Calls never wait for the fleet: they take the breaker and budget as always, and a link
//! syncs them with the fleet from a task or thread of its own (resil-core's
//! [`FleetSync`](resil_core::FleetSync) decides what is published and what the fleet's view
//! changes). The one thing a call does for the fleet is [`FleetMembership::wake`] when its
//! breaker changed state, so that a trip is published at once instead of at the next
//! interval; a wake must return at once.

use std::fmt;
use std::sync::{Arc, Mutex};

use resil_core::{CircuitBreaker, RetryBudget};

use crate::error::BoxError;
use crate::observe::Stats;

/// A way to share a client's circuit breaker and retry budget with the other processes of a
/// fleet. Give it to a client builder's `fleet(…)`; `build()` calls [`join`](Self::join)
/// once.
pub trait FleetLink: Send + Sync + fmt::Debug {
    /// Starts sharing `member`'s breaker and budget, and returns the membership the client
    /// keeps (dropping it, with the client's last clone, ends the sharing). It must not wait
    /// for the network: a store that cannot be reached is no reason to refuse a client, whose
    /// breaker and budget then judge alone until it can. An error is a setting that can never
    /// work, and fails `build()`.
    fn join(&self, member: FleetMember) -> Result<Arc<dyn FleetMembership>, BoxError>;
}

impl<L: FleetLink + ?Sized> FleetLink for Arc<L> {
    fn join(&self, member: FleetMember) -> Result<Arc<dyn FleetMembership>, BoxError> {
        (**self).join(member)
    }
}

/// What a client shares with its fleet.
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetMember {
    /// The client's circuit breaker, if it has one.
    pub breaker: Option<Arc<Mutex<CircuitBreaker>>>,
    /// The client's retry budget, if it has one.
    pub budget: Option<Arc<Mutex<RetryBudget>>>,
    /// The client's counters: the link reports its syncs and its state there
    /// ([`Stats::fleet_sync`], [`Stats::fleet_event`]).
    pub stats: Arc<Stats>,
}

impl fmt::Debug for FleetMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetMember")
            .field("breaker", &self.breaker.is_some())
            .field("budget", &self.budget.is_some())
            .finish_non_exhaustive()
    }
}

/// A client's membership of a fleet, kept while the client lives.
pub trait FleetMembership: Send + Sync + fmt::Debug {
    /// The client's breaker changed state during a call: sync now rather than at the next
    /// interval. Called on the call's own thread or task: it must return at once.
    fn wake(&self);
}
