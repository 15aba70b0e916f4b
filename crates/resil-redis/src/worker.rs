//! The thread that syncs one client's breaker and budget with its fleet: the only place
//! that talks to Redis. Calls never wait for it; they only wake it after a breaker
//! transition, with an atomic flag and an unpark.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use resil_core::{
    CircuitBreaker, FleetBatch, FleetEvent, FleetReply, FleetSync, Instant, RetryBudget, Shared,
};
use resil_http::{FleetMember, FleetMembership};

use crate::script;

/// What a client's calls share with its sync thread.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    wake: AtomicBool,
    stop: AtomicBool,
}

/// A client's membership: wakes the thread, and stops it when the client goes.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) signals: Arc<Signals>,
    pub(crate) thread: Thread,
}

impl FleetMembership for Membership {
    fn wake(&self) {
        // One unpark per burst of transitions: the flag is taken by the next sync.
        if !self.signals.wake.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.signals.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// How the thread reaches Redis.
pub(crate) struct Link {
    pub(crate) client: redis::Client,
    pub(crate) keys: [String; 10],
    pub(crate) name: String,
    /// The URL as logs may show it (no credentials).
    pub(crate) shown: String,
    /// The password, if any, which no message may carry.
    pub(crate) secret: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) test_clock: bool,
}

/// The sync thread's state.
pub(crate) struct Worker {
    pub(crate) sync: FleetSync,
    pub(crate) member: FleetMember,
    pub(crate) link: Link,
    pub(crate) signals: Arc<Signals>,
}

/// The breaker and budget as the fleet machine takes them.
fn shared(
    member: &FleetMember,
) -> (
    Option<&dyn Shared<CircuitBreaker>>,
    Option<&dyn Shared<RetryBudget>>,
) {
    let breaker = member
        .breaker
        .as_deref()
        .map(|b: &Mutex<CircuitBreaker>| b as &dyn Shared<CircuitBreaker>);
    let budget = member
        .budget
        .as_deref()
        .map(|b: &Mutex<RetryBudget>| b as &dyn Shared<RetryBudget>);
    (breaker, budget)
}

/// The longest park: a stop is noticed at least this often even if an unpark was lost.
const MAX_PARK: Duration = Duration::from_secs(1);

impl Worker {
    pub(crate) fn run(mut self) {
        let script = script::script();
        let mut conn: Option<redis::Connection> = None;
        let mut last_error = String::new();
        loop {
            if self.signals.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            // A wake (a breaker transition) syncs at once, unless the store is failing: then
            // only the backoff decides when to try again.
            let woken = self.signals.wake.swap(false, Ordering::AcqRel) && self.sync.is_connected();
            let due = self.sync.poll_timeout();
            if now < due && !woken {
                std::thread::park_timeout((due - now).min(MAX_PARK));
                continue;
            }
            let (breaker, budget) = shared(&self.member);
            let batch = self.sync.prepare(now, breaker, budget);
            let outcome = self.exchange(&script, &mut conn, &batch);
            let now = Instant::now();
            let (breaker, budget) = shared(&self.member);
            match outcome {
                Ok(reply) => {
                    self.sync.apply(now, &reply, breaker, budget);
                    self.member.stats.fleet_sync(true);
                }
                Err(e) => {
                    conn = None;
                    last_error = e;
                    self.sync.failed(now, breaker, budget);
                    self.member.stats.fleet_sync(false);
                }
            }
            while let Some(event) = self.sync.poll_event() {
                self.member.stats.fleet_event(&event);
                self.report(&event, &last_error);
            }
        }
    }

    /// One sync: connect if needed, run the script, read its answer. Every step is bounded
    /// by the connect or response timeout; any failure drops the connection.
    fn exchange(
        &self,
        script: &redis::Script,
        conn: &mut Option<redis::Connection>,
        batch: &FleetBatch,
    ) -> Result<FleetReply, String> {
        let link = &self.link;
        let c = match conn {
            Some(c) => c,
            None => {
                let c = link
                    .client
                    .get_connection_with_timeout(link.connect_timeout)
                    .map_err(|e| self.describe(&e))?;
                let timeout = Some(link.response_timeout);
                c.set_read_timeout(timeout)
                    .and_then(|()| c.set_write_timeout(timeout))
                    .map_err(|e| self.describe(&e))?;
                conn.insert(c)
            }
        };
        let value: redis::Value = script::invocation(script, &link.keys, batch, link.test_clock)
            .invoke(c)
            .map_err(|e| self.describe(&e))?;
        script::reply(&value).ok_or_else(|| "the sync script answered something else".into())
    }

    /// An error as logs may show it: never the password, whatever the error carried.
    fn describe(&self, e: &redis::RedisError) -> String {
        let text = e.to_string();
        match &self.link.secret {
            Some(secret) if !secret.is_empty() => text.replace(secret.as_str(), "[redacted]"),
            _ => text,
        }
    }

    fn report(&self, event: &FleetEvent, error: &str) {
        let (name, url) = (self.link.name.as_str(), self.link.shown.as_str());
        match event {
            FleetEvent::Degraded => tracing::warn!(
                fleet = name,
                url,
                error,
                "resil: {event}; calls go on without the fleet"
            ),
            FleetEvent::Rejoined | FleetEvent::Repaired => {
                tracing::warn!(fleet = name, url, "resil: {event}")
            }
            _ => tracing::debug!(fleet = name, "resil: {event}"),
        }
    }
}
