//! # resil-redis
//!
//! A fleet-shared circuit breaker and retry budget for resil clients, through Redis: a
//! service running as many processes learns of an outage once.
//!
//! ```no_run
//! use resil_blocking::Client;
//! use resil_redis::RedisFleet;
//!
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080")
//!     .fleet(RedisFleet::new("redis://127.0.0.1:6379/0", "payments-api")?)
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every process that calls one backend builds its client with the same fleet name. Then:
//!
//! - the fleet's failures trip every process's breaker, on the breaker's own kind of
//!   condition (its consecutive failures, or its ratio and minimum calls) counted over the
//!   fleet, so a quiet process opens with the busy ones, within one sync interval;
//! - failures must come from at least 3 processes (all of them in a smaller fleet): one
//!   process with a broken network trips only its own breaker;
//! - an open reaches every process with the time left on it, read from Redis's own clock
//!   (`TIME` inside the script, TTLs), never by comparing hosts' clocks;
//! - at the end of an open period one process in the fleet probes (a lease: `SET NX PX` with
//!   a token of its own, living one open period, so it lapses if its holder dies); when the
//!   probe passes, the others skip theirs and ramp up through a progressive half-open
//!   (0.1 %, 1 %, 5 %, 10 %, 25 %, 50 % of calls: build the breaker with
//!   [`HalfOpen::Progressive`](resil_core::HalfOpen));
//! - a ratio budget (the default, Finagle's 20 % + 10/s) becomes the fleet's: each process
//!   leases a few retries at a time from a bucket that applies the same rule to the fleet's
//!   totals, and returns its first attempts as deposits.
//!
//! The rules are resil-core's ([`FleetSync`], whose docs say more);
//! this crate only moves their values: one Lua script (`EVALSHA`) applies a process's batch
//! and answers the fleet's view, atomically.
//!
//! ## What Redis costs a call: nothing
//!
//! No call talks to Redis or waits for it. Calls use the breaker and budget as without a
//! fleet (behind their locks, which the sync thread holds only to read counts or apply a view,
//! never across IO); the sync thread of each client does the rest, every 100 ms and at once
//! after a breaker transition (a call wakes it with an atomic flag and an unpark, and
//! returns). A success costs a fleet-shared breaker one lock more than a quiet breaker without
//! a fleet takes, so that successes are counted too.
//!
//! ## When Redis fails
//!
//! Unreachable, slow (`CLIENT PAUSE`, `DEBUG SLEEP`: a sync gives up after the response
//! timeout, 250 ms by default), restarted with its state lost, or holding garbage under a key:
//! no call fails or waits because of it. The first failed sync puts the breaker and budget back
//! on their own judgement (a probe needs no lease, retries follow the local rule) and says so
//! once, in a `tracing` warning and in the client's statistics
//! ([`StatsSnapshot::fleet_degraded`](resil_http::StatsSnapshot)); the thread tries again
//! after 100 ms, doubling up to 2 s, and rejoins (another warning) when a sync succeeds. Counts
//! taken while Redis was unreachable are dropped: after a reconnect only fresh ones are
//! published. A key holding something the script cannot read is replaced, and said once.
//! A lease held by a process that lost Redis lapses by its own TTL.
//!
//! ## In Redis
//!
//! Every key is `resil:{name}:…` (the `{name}` hash tag keeps a fleet's keys in one slot, so a
//! script touches one slot and runs on Redis Cluster) and expires: the probe lease and the
//! open period by their own TTLs, everything else twice the longest window after the fleet's
//! last sync. Nothing grows without bound: a fleet's keys hold ten buckets of counts, one
//! entry per live process and a few counters.
//!
//! ## Settings
//!
//! `redis://[user:password@]host:port/db` and, with feature `tls`, `rediss://`. Passwords
//! never appear in logs, errors or `Debug` output. [`RedisFleet::builder`] sets the fleet's
//! policy ([`FleetPolicy`]: sync interval, trip condition, minimum processes, lease time) and
//! the timeouts; each client started with a fleet runs one thread (named `resil-fleet-NAME`),
//! which works under tokio, async-std, smol or no runtime at all.
//!
//! Why redis-rs: it is the ecosystem's standard Redis client (what `deadpool-redis`, `bb8`
//! and most Rust services already use), speaks Redis Cluster and TLS, and its `Script` sends
//! `EVALSHA` and loads the script again when a restarted Redis answers `NOSCRIPT`.
//!
//! ## Features
//!
//! - `tls`: `rediss://` URLs, over rustls with the platform's root certificates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod script;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use resil_core::{FleetBatch, FleetReply, FleetSync, Shared};
use resil_http::{BoxError, FleetLink, FleetMember, FleetMembership};

pub use resil_core::{FleetPolicy, FleetPolicyBuilder, FleetTrip};

use worker::{Link, Membership, Signals, Worker};

/// The link to a fleet through Redis: give it to a client builder's `fleet(…)`. Cheap to
/// clone; each client built with it syncs on a thread of its own.
#[derive(Clone)]
pub struct RedisFleet {
    client: redis::Client,
    name: String,
    shown: String,
    secret: Option<String>,
    policy: FleetPolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    test_clock: bool,
}

impl fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleet")
            .field("url", &self.shown)
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A fleet setting that can never work (the URL, the name, a timeout), named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetError(String);

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FleetError {}

impl RedisFleet {
    /// The fleet `name` on the Redis at `url` (`redis://` or `rediss://`), with the default
    /// policy and timeouts (see [`RedisFleetBuilder`]). Nothing is connected until a client
    /// is built with it, and then in the background.
    pub fn new(url: &str, name: &str) -> Result<RedisFleet, FleetError> {
        RedisFleet::builder(url, name).build()
    }

    /// A builder for the fleet `name` on the Redis at `url`.
    pub fn builder(url: &str, name: &str) -> RedisFleetBuilder {
        RedisFleetBuilder {
            url: url.to_owned(),
            name: name.to_owned(),
            policy: FleetPolicy::default(),
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(250),
            test_clock: false,
        }
    }

    /// The fleet's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keys this fleet uses in Redis (all `resil:{name}:…`).
    pub fn keys(&self) -> Vec<String> {
        script::keys(&self.name).to_vec()
    }

    /// Runs one sync's script for `batch` on a connection of its own and returns the fleet's
    /// view: what a client's sync thread does every interval (for tests and tools; a client
    /// needs none of it).
    pub fn exchange(&self, batch: &FleetBatch) -> Result<FleetReply, FleetError> {
        let fail = |e: redis::RedisError| {
            let text = e.to_string();
            let text = match &self.secret {
                Some(s) if !s.is_empty() => text.replace(s.as_str(), "[redacted]"),
                _ => text,
            };
            FleetError(format!("fleet {} at {}: {text}", self.name, self.shown))
        };
        let mut conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(fail)?;
        conn.set_read_timeout(Some(self.response_timeout))
            .map_err(fail)?;
        let script = script::script();
        let keys = script::keys(&self.name);
        let value: redis::Value = script::invocation(&script, &keys, batch, self.test_clock)
            .invoke(&mut conn)
            .map_err(fail)?;
        script::reply(&value)
            .ok_or_else(|| FleetError(format!("fleet {}: the script answered garbage", self.name)))
    }
}

/// Builds a [`RedisFleet`]. Defaults: resil-core's [`FleetPolicy`] (sync every 100 ms, the
/// breaker's own trip condition over the fleet, failures from at least 3 processes, a lease
/// of one open period), 500 ms to connect (and authenticate), 250 ms for a sync's answer.
#[derive(Clone)]
pub struct RedisFleetBuilder {
    url: String,
    name: String,
    policy: FleetPolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    test_clock: bool,
}

impl fmt::Debug for RedisFleetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleetBuilder")
            .field("url", &shown_url(&self.url).0)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisFleetBuilder {
    /// How the fleet shares the breaker and budget.
    pub fn policy(mut self, policy: FleetPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The longest wait to connect and authenticate.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait for a sync's answer; past it the sync fails and the client goes on
    /// alone until one succeeds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Tests only: the script reads its clock (milliseconds) from the fleet's `clock` key
    /// instead of Redis's `TIME`.
    #[doc(hidden)]
    pub fn test_clock(mut self, on: bool) -> Self {
        self.test_clock = on;
        self
    }

    /// Checks the URL, the name and the timeouts; the error names what is wrong (and never
    /// shows a password).
    pub fn build(self) -> Result<RedisFleet, FleetError> {
        let (shown, secret) = shown_url(&self.url);
        let scheme_ok = self.url.starts_with("redis://") || self.url.starts_with("rediss://");
        if !scheme_ok {
            return Err(FleetError(format!(
                "fleet URL {shown}: must start with redis:// or rediss://"
            )));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 100
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
        if !name_ok {
            return Err(FleetError(format!(
                "fleet name {:?}: 1 to 100 visible ASCII characters, no braces",
                self.name
            )));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(FleetError("fleet timeouts must be above zero".into()));
        }
        let client = redis::Client::open(self.url.as_str()).map_err(|e| {
            let kind = e.kind();
            let mut why = format!("{kind:?}");
            if self.url.starts_with("rediss://") && !cfg!(feature = "tls") {
                why = "rediss:// needs resil-redis's `tls` feature".into();
            }
            FleetError(format!("fleet URL {shown}: {why}"))
        })?;
        Ok(RedisFleet {
            client,
            name: self.name,
            shown,
            secret,
            policy: self.policy,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            test_clock: self.test_clock,
        })
    }
}

impl FleetLink for RedisFleet {
    fn join(&self, member: FleetMember) -> Result<Arc<dyn FleetMembership>, BoxError> {
        let mut sync = FleetSync::new(&self.policy, node_id());
        // Attached here, before the client's first call: from now on the breaker counts
        // every outcome for the fleet.
        sync.attach(
            member
                .breaker
                .as_deref()
                .map(|b| b as &dyn Shared<resil_core::CircuitBreaker>),
            member
                .budget
                .as_deref()
                .map(|b| b as &dyn Shared<resil_core::RetryBudget>),
        );
        let signals = Arc::new(Signals::default());
        let worker = Worker {
            sync,
            member,
            link: Link {
                client: self.client.clone(),
                keys: script::keys(&self.name),
                name: self.name.clone(),
                shown: self.shown.clone(),
                secret: self.secret.clone(),
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
                test_clock: self.test_clock,
            },
            signals: signals.clone(),
        };
        let name: String = self.name.chars().take(32).collect();
        let handle = std::thread::Builder::new()
            .name(format!("resil-fleet-{name}"))
            .spawn(move || worker.run())?;
        Ok(Arc::new(Membership {
            signals,
            thread: handle.thread().clone(),
        }))
    }
}

/// The URL as logs may show it: scheme, host, port and database, no credentials, query or
/// fragment; and the password, if it had one.
fn shown_url(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return ("[not a URL]".into(), None);
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let secret = userinfo
                .split_once(':')
                .map_or(userinfo, |(_, password)| password);
            (
                format!("{scheme}://[redacted]@{host}{path}"),
                Some(secret.to_owned()),
            )
        }
        None => (format!("{scheme}://{authority}{path}"), None),
    }
}

/// A number for this process's membership, unique in the fleet with overwhelming odds.
fn node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            shown_url("redis://user:hunter2@cache:6380/2?password=x#y"),
            (
                "redis://[redacted]@cache:6380/2".to_owned(),
                Some("hunter2".to_owned())
            )
        );
        assert_eq!(
            shown_url("rediss://:s3cret@cache"),
            (
                "rediss://[redacted]@cache".to_owned(),
                Some("s3cret".to_owned())
            )
        );
        assert_eq!(
            shown_url("redis://cache:6379"),
            ("redis://cache:6379".into(), None)
        );
    }
}
