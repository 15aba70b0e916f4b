//! What a run produced.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use resil_core::BreakerState;

/// One simulated second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Second {
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts answered with a success status.
    pub ok: u64,
    /// Attempts answered with a failure (status ≥ 400 or transport error).
    pub failed: u64,
    /// Logical requests the breaker rejected without an attempt.
    pub rejected: u64,
    /// Half-open probes sent (every client's; see [`Report::probes`]).
    pub probes: u64,
    /// The breaker's state at the end of the second (of the fleet's breaker, or client 0's).
    pub breaker: BreakerState,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            attempts: 0,
            ok: 0,
            failed: 0,
            rejected: 0,
            probes: 0,
            breaker: BreakerState::Closed,
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Logical requests started.
    pub logical_requests: u64,
    /// Logical requests that ended with a final response.
    pub succeeded: u64,
    /// Logical requests that gave up.
    pub failed: u64,
    /// Attempts sent.
    pub attempts: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Retries whose wait came from `Retry-After`.
    pub retry_after_honoured: u64,
    /// Give-ups by reason.
    pub give_ups: BTreeMap<&'static str, u64>,
    /// Breaker transitions (of the fleet's breaker, or client 0's).
    pub transitions: Vec<(Duration, BreakerState, BreakerState)>,
    /// Per simulated second, for the first [`SECONDS_KEPT`] (the totals count everything).
    pub seconds: Vec<Second>,
    /// When the last logical request succeeded.
    pub completion: Duration,
    /// Median logical-request latency (retries and waits included).
    pub p50: Duration,
    /// 99th percentile logical-request latency.
    pub p99: Duration,
    /// 99.9th percentile logical-request latency.
    pub p999: Duration,
    /// The slowest logical request.
    pub max: Duration,
    /// Hedges sent.
    pub hedges: u64,
    /// Calls whose answer came from a hedge.
    pub hedge_wins: u64,
    /// Attempts cancelled while out (lost to another, or timed out while others were out).
    pub cancelled: u64,
    /// Half-open probes: calls admitted by a breaker leaving open (the first call of each
    /// half-open period, every client's; a progressive half-open's later shares not counted).
    pub probes: u64,
    /// Per client, when its breaker first opened (by itself or by the fleet).
    pub first_open: Vec<Option<Duration>>,
    /// Per client, when its breaker last closed.
    pub last_close: Vec<Option<Duration>>,
    /// Syncs with the fleet store (with [`FleetSharing`](crate::FleetSharing)), and how many
    /// failed.
    pub fleet_syncs: (u64, u64),
    /// Fingerprint of the event log: equal for equal scenarios.
    pub log_hash: u64,
}

/// How many simulated seconds [`Report::seconds`] covers (27.8 hours): a scenario whose
/// waits or latencies reach years does not make a series of that many seconds.
pub const SECONDS_KEPT: usize = 100_000;

impl Report {
    /// The entry for second `index`; `None` past [`SECONDS_KEPT`].
    pub(crate) fn second(&mut self, index: usize) -> Option<&mut Second> {
        if index >= SECONDS_KEPT {
            return None;
        }
        if self.seconds.len() <= index {
            let state = self
                .seconds
                .last()
                .map_or(BreakerState::Closed, |s| s.breaker);
            self.seconds.resize(
                index + 1,
                Second {
                    breaker: state,
                    ..Second::default()
                },
            );
        }
        self.seconds.get_mut(index)
    }

    /// Attempts per logical request.
    pub fn amplification(&self) -> f64 {
        self.attempts as f64 / self.logical_requests.max(1) as f64
    }

    /// Logical requests that succeeded, as a fraction.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.logical_requests.max(1) as f64
    }

    /// Probes and breaker openings are counted per client: record a transition of client
    /// `client`'s breaker at `at`.
    pub(crate) fn breaker_moved(
        &mut self,
        client: u32,
        at: Duration,
        from: BreakerState,
        to: BreakerState,
        by_call: bool,
    ) {
        let i = client as usize;
        if self.first_open.len() <= i {
            self.first_open.resize(i + 1, None);
            self.last_close.resize(i + 1, None);
        }
        if by_call && from == BreakerState::Open && to == BreakerState::HalfOpen {
            self.probes += 1;
            if let Some(second) = self.second(at.as_secs() as usize) {
                second.probes += 1;
            }
        }
        if to == BreakerState::Open && self.first_open[i].is_none() {
            self.first_open[i] = Some(at);
        }
        if to == BreakerState::Closed {
            self.last_close[i] = Some(at);
        }
    }

    /// Attempts sent during seconds `from..to`.
    pub fn attempts_between(&self, from: usize, to: usize) -> u64 {
        self.seconds
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .map(|s| s.attempts)
            .sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "logical requests   {}", self.logical_requests)?;
        writeln!(
            f,
            "succeeded / failed {} / {} ({:.1} % success)",
            self.succeeded,
            self.failed,
            100.0 * self.success_rate()
        )?;
        writeln!(
            f,
            "attempts           {} ({:.3} per logical request)",
            self.attempts,
            self.amplification()
        )?;
        writeln!(
            f,
            "retries            {} ({} honoured Retry-After)",
            self.retries, self.retry_after_honoured
        )?;
        for (reason, n) in &self.give_ups {
            writeln!(f, "gave up: {reason:<18} {n}")?;
        }
        writeln!(f, "breaker transitions {}", self.transitions.len())?;
        if self.probes > 0 {
            writeln!(f, "half-open probes   {}", self.probes)?;
        }
        if self.fleet_syncs.0 > 0 {
            writeln!(
                f,
                "fleet syncs        {} ({} failed)",
                self.fleet_syncs.0, self.fleet_syncs.1
            )?;
        }
        if self.hedges > 0 {
            writeln!(
                f,
                "hedges             {} ({} won, {} attempts cancelled)",
                self.hedges, self.hedge_wins, self.cancelled
            )?;
        }
        writeln!(
            f,
            "latency p50 / p99 / p99.9 / max  {:?} / {:?} / {:?} / {:?}",
            self.p50, self.p99, self.p999, self.max
        )?;
        write!(f, "event log hash     {:016x}", self.log_hash)
    }
}
