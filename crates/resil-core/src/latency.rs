//! The latency sketch behind adaptive hedging: recent latencies in fixed memory, the hedge
//! delay they suggest, and the cap on how many hedges may be sent.
//!
//! Share one sketch per backend like a breaker ([`Shared`](crate::Shared)). Feed it the time
//! each attempt took, ask it when to hedge, and ask it before each hedge so that hedges stay
//! a small share of requests.

use core::fmt;
use core::time::Duration;

use crate::budget::{ONE, to_ppm};
use crate::error::PolicyError;
use crate::time::{Instant, duration_to_nanos};

/// Sub-buckets per power of two. A bucket is at most 1/16 of its lower edge wide, so its
/// midpoint is within 1/32 of every value in it.
const SUB_BITS: u32 = 4;
const SUBS: u64 = 1 << SUB_BITS;
/// Latencies are tracked below 2^32 µs; longer ones count as the longest.
const TOP_BITS: u32 = 32;
const MAX_MICROS: u64 = (1 << TOP_BITS) - 1;
/// 16 buckets of 1 µs below 16 µs, then 16 per power of two up to 2^32 µs.
const BUCKETS: usize = ((TOP_BITS - SUB_BITS + 1) as usize) << SUB_BITS;
/// Memory is fixed for this many sub-windows.
const SLOTS: usize = 5;
/// A slot that has held no sub-window yet. Real ticks stay far below it: a sub-window lasts at
/// least 200 µs (1 ms window, 5 sub-windows).
const NO_TICK: u64 = u64::MAX;
/// `lowest` of a slot with no samples: above any bucket, so ranges over empty slots are empty.
const NO_BUCKET: u16 = u16::MAX;

/// Builds a [`LatencySketch`]; every setting is checked by [`build`](Self::build).
///
/// | setting | default |
/// |---|---|
/// | `window` | 10 s, kept as 5 sub-windows of 2 s |
/// | `max_extra_load` | 0.05: hedges ≤ 5 % of the window's requests (gRPC A6, Finagle) |
/// | `hedge_quantile` | 1 − `max_extra_load`, so p95 (Finagle's rule) |
/// | `hedge_burst` | 1 hedge beyond the share, so a quiet window may still hedge once |
/// | `min_samples` | 20 latencies in the window before there is a hedge delay |
/// | `min_delay` / `max_delay` | 1 ms (Finagle) / 10 s (the default attempt timeout) |
#[derive(Clone, Copy, Debug)]
pub struct LatencySketchBuilder {
    window: Duration,
    sub_windows: u32,
    max_extra_load: f64,
    hedge_quantile: Option<f64>,
    hedge_burst: u32,
    min_samples: u32,
    min_delay: Duration,
    max_delay: Duration,
}

impl Default for LatencySketchBuilder {
    fn default() -> Self {
        LatencySketchBuilder {
            window: Duration::from_secs(10),
            sub_windows: 5,
            max_extra_load: 0.05,
            hedge_quantile: None,
            hedge_burst: 1,
            min_samples: 20,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl LatencySketchBuilder {
    /// How far back latencies and hedge counts reach (at least 1 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many sub-windows the window is kept in (1 to
    /// [`LatencySketch::MAX_SUB_WINDOWS`]). The window slides a sub-window at a time, so more
    /// sub-windows make it slide more smoothly.
    pub fn sub_windows(mut self, sub_windows: u32) -> Self {
        self.sub_windows = sub_windows;
        self
    }

    /// The largest share of the window's requests that may be hedged, in `(0, 1]`. Unless
    /// [`hedge_quantile`](Self::hedge_quantile) is set, it also picks the hedge quantile,
    /// `1 − max_extra_load` (Finagle): hedging after the p95 hedges about 5 % of requests,
    /// and a share of 1 hedges once the fastest latency has passed.
    pub fn max_extra_load(mut self, share: f64) -> Self {
        self.max_extra_load = share;
        self
    }

    /// The latency quantile, in `(0, 1)`, after which a hedge is sent; overrides the one
    /// derived from [`max_extra_load`](Self::max_extra_load).
    pub fn hedge_quantile(mut self, q: f64) -> Self {
        self.hedge_quantile = Some(q);
        self
    }

    /// Hedges allowed in a window on top of the share: the first hedges of a quiet window,
    /// which the share alone would refuse until 1 / `max_extra_load` requests were made.
    /// Zero makes the share strict.
    pub fn hedge_burst(mut self, hedges: u32) -> Self {
        self.hedge_burst = hedges;
        self
    }

    /// Latencies the window must hold before a quantile is given (1 to 65 535).
    pub fn min_samples(mut self, samples: u32) -> Self {
        self.min_samples = samples;
        self
    }

    /// The shortest hedge delay given, whatever the latencies (Finagle: 1 ms).
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest hedge delay given, whatever the latencies.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<LatencySketch, PolicyError> {
        let window = duration_to_nanos(self.window);
        if window < 1_000_000 {
            return Err(PolicyError::new("window", "must be at least 1 ms"));
        }
        if !(1..=LatencySketch::MAX_SUB_WINDOWS).contains(&self.sub_windows) {
            return Err(PolicyError::new("sub_windows", "must be 1 to 5"));
        }
        if !(self.max_extra_load > 0.0 && self.max_extra_load <= 1.0) {
            return Err(PolicyError::new("max_extra_load", "must be in (0, 1]"));
        }
        let hedge_quantile = match self.hedge_quantile {
            Some(q) if q > 0.0 && q < 1.0 => q,
            Some(_) => return Err(PolicyError::new("hedge_quantile", "must be in (0, 1)")),
            None => 1.0 - self.max_extra_load,
        };
        if !(1..=u32::from(u16::MAX)).contains(&self.min_samples) {
            return Err(PolicyError::new("min_samples", "must be 1 to 65 535"));
        }
        if self.max_delay < self.min_delay {
            return Err(PolicyError::new(
                "max_delay",
                "must not be less than min_delay",
            ));
        }
        Ok(self.assemble(window, hedge_quantile))
    }

    /// The sketch of settings already checked.
    fn assemble(self, window: u64, hedge_quantile: f64) -> LatencySketch {
        LatencySketch {
            sub_window_nanos: window / u64::from(self.sub_windows),
            sub_windows: self.sub_windows as usize,
            hedge_quantile,
            hedge_share: to_ppm(self.max_extra_load),
            hedge_burst: self.hedge_burst,
            min_samples: self.min_samples,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            latest: 0,
            ticks: [NO_TICK; SLOTS],
            samples: [0; SLOTS],
            lowest: [NO_BUCKET; SLOTS],
            highest: [0; SLOTS],
            requests: [0; SLOTS],
            hedges: [0; SLOTS],
            counts: [[0; SLOTS]; BUCKETS],
            cached_delay: None,
            cached_until: 0,
        }
    }
}

impl Default for LatencySketch {
    /// The defaults listed on [`LatencySketchBuilder`] (p95 over 10 s, at most 5 % extra).
    fn default() -> LatencySketch {
        let defaults = LatencySketchBuilder::default();
        let window = duration_to_nanos(defaults.window);
        let quantile = 1.0 - defaults.max_extra_load;
        defaults.assemble(window, quantile)
    }
}

/// Recent latencies of one backend, the hedge delay they suggest, and the hedge-rate cap.
///
/// A sans-IO quantile sketch over a sliding window, in fixed memory: 4 856 bytes on 64-bit
/// targets, with no allocation ever (not even in [`build`](LatencySketchBuilder::build)).
/// Time is an input; nothing here reads a clock.
///
/// # What to feed it
///
/// [`record`](Self::record) how long an attempt ran when it
/// - succeeded;
/// - timed out (the time it was given);
/// - was abandoned because another attempt won (the time it had run).
///
/// The last two are lower bounds, and they are what keeps a slow backend from looking fast.
/// Never record fast failures (a refused connection, an immediate 503): they say nothing
/// about how long an answer takes, and would pull the delay down so that hedges fire early.
/// Filtering them is the caller's job. [`record_request`](Self::record_request) every call
/// once, at its first attempt.
///
/// # The window
///
/// Time is cut into sub-windows of `window / sub_windows` (rounded down to whole
/// nanoseconds) counted from the clock's origin. The window at `now` is the sub-window holding
/// `now` and the `sub_windows − 1` before it, so it reaches back between
/// `window · (sub_windows − 1) / sub_windows` and `window`. A `now` earlier than the latest
/// one given to a counting method (`record…`, `try_hedge`) counts as that one: callers on
/// other threads read slightly older clocks.
///
/// # What a quantile guarantees
///
/// A latency is kept as whole microseconds (truncated), up to [`MAX_TRACKED`](Self::MAX_TRACKED)
/// (longer ones count as that). Of the `n` latencies in the window, let `k = ⌈q · n⌉`
/// (computed in `f64`, then held to `1..=n`) and `x` the `k`-th smallest. The quantile `v`
/// [`quantile`](Self::quantile) returns is within 1/32 of `x`:
///
/// `|v − x| ≤ x / 32` (3.125 %), and `v = x` whenever `x < 32 µs`.
///
/// So in ranks: at least `k` latencies are `≤ v · 32/31`, and fewer than `k` are
/// `< v · 32/33`. The window's counts are exact — the sketch adds no rank error of its own;
/// only a value's bucket is rounded (log-linear buckets, 16 per power of two, answered by
/// their midpoint). The one exception is volume: a sub-window keeps its first 65 535
/// latencies and ignores the rest, which keeps every counter to 16 bits (past 30 000 calls a
/// second with the default 2 s sub-windows).
///
/// # The hedge cap
///
/// [`try_hedge`](Self::try_hedge) grants a hedge while, over the window,
/// `hedges ≤ max_extra_load · requests + hedge_burst` still holds with it (`max_extra_load`
/// kept in parts per million). A backend that is slow for everyone is therefore hedged for a
/// bounded share of requests, not doubled. Under a shared lock, `try_hedge` checks and counts
/// in one step, so two callers cannot both take the last hedge.
///
/// # Cost
///
/// Counting is a few array writes (and, once per sub-window, clearing the buckets the reused
/// slot had filled). A query adds up the live slots of the buckets between the window's
/// lowest and highest latency: at most 464 buckets × 5 slots, a few dozen buckets for a
/// backend whose latencies span one power of ten.
///
/// ```
/// use core::time::Duration;
/// use resil_core::{Instant, LatencySketch};
///
/// let mut sketch = LatencySketch::builder().build()?; // p95, ≤ 5 % + 1 hedges per 10 s
/// let now = Instant::from_secs(1);
/// assert_eq!(sketch.hedge_delay(now), None, "no latencies yet: use a fixed delay or none");
/// for ms in 1..=100 {
///     sketch.record_request(now);
///     sketch.record(now, Duration::from_millis(ms));
/// }
/// // The 95th of 100 latencies is 95 ms. Its bucket, 94.208 to 98.303 ms, answers with its
/// // midpoint: 96.256 ms, within 1/32 of 95 ms.
/// assert_eq!(sketch.hedge_delay(now), Some(Duration::from_micros(96_256)));
/// let granted = (0..10).filter(|_| sketch.try_hedge(now)).count();
/// assert_eq!(granted, 6, "5 % of 100 requests, plus a burst of 1");
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct LatencySketch {
    sub_window_nanos: u64,
    sub_windows: usize,
    hedge_quantile: f64,
    /// Hedges earned per request, in parts per million.
    hedge_share: u64,
    hedge_burst: u32,
    min_samples: u32,
    min_delay: Duration,
    max_delay: Duration,
    /// The latest sub-window counted in; an earlier `now` counts in it. Queries leave it.
    latest: u64,
    /// The sub-window each slot holds ([`NO_TICK`] before its first use).
    ticks: [u64; SLOTS],
    samples: [u16; SLOTS],
    /// Each slot's lowest and highest non-empty bucket, so queries and clears skip the rest.
    lowest: [u16; SLOTS],
    highest: [u16; SLOTS],
    requests: [u32; SLOTS],
    hedges: [u32; SLOTS],
    /// Latencies per bucket and slot, bucket-major: a query reads a bucket's slots at once.
    /// A slot's counts never exceed its `samples`, so `u16` cannot overflow.
    counts: [[u16; SLOTS]; BUCKETS],
    /// The hedge delay last computed, and until when (nanoseconds) it stands.
    cached_delay: Option<Duration>,
    cached_until: u64,
}

// Bounded memory is the point: one sketch per backend, shared, never growing.
const _: () = assert!(size_of::<LatencySketch>() <= 5 * 1024);

impl fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencySketch")
            .field(
                "window",
                &Duration::from_nanos(
                    self.sub_window_nanos
                        .saturating_mul(self.sub_windows as u64),
                ),
            )
            .field("sub_windows", &self.sub_windows)
            .field("hedge_quantile", &self.hedge_quantile)
            .field("max_extra_load_ppm", &self.hedge_share)
            .field("hedge_burst", &self.hedge_burst)
            .field("min_samples", &self.min_samples)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("samples", &&self.samples[..self.sub_windows])
            .field("requests", &&self.requests[..self.sub_windows])
            .field("hedges", &&self.hedges[..self.sub_windows])
            .finish_non_exhaustive()
    }
}

impl LatencySketch {
    /// The longest latency told apart from longer ones: 2³² − 1 µs (71 min 35 s).
    pub const MAX_TRACKED: Duration = Duration::from_micros(MAX_MICROS);

    /// The most sub-windows a window can be kept in (memory is fixed at this many).
    pub const MAX_SUB_WINDOWS: u32 = SLOTS as u32;

    /// A builder holding the defaults listed on [`LatencySketchBuilder`].
    pub fn builder() -> LatencySketchBuilder {
        LatencySketchBuilder::default()
    }

    /// Counts one latency: how long an attempt ran, ending at `now`. See the type's docs for
    /// which attempts to count.
    pub fn record(&mut self, now: Instant, latency: Duration) {
        let slot = self.slot(now);
        self.record_in(slot, latency);
    }

    fn record_in(&mut self, slot: usize, latency: Duration) {
        if self.samples[slot] == u16::MAX {
            return;
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = bucket_of(micros);
        self.samples[slot] += 1;
        if self.cached_delay.is_none() {
            // Not enough samples when last asked: the next request asks again.
            self.cached_until = 0;
        }
        let count = &mut self.counts[bucket][slot];
        *count = count.saturating_add(1);
        // `bucket < BUCKETS = 464` fits a u16.
        let bucket = bucket as u16;
        self.lowest[slot] = self.lowest[slot].min(bucket);
        self.highest[slot] = self.highest[slot].max(bucket);
    }

    /// Counts one call (its first attempt); hedges are allowed as a share of these.
    pub fn record_request(&mut self, now: Instant) {
        let slot = self.slot(now);
        self.requests[slot] = self.requests[slot].saturating_add(1);
    }

    /// Counts one hedge sent without asking [`try_hedge`](Self::try_hedge).
    pub fn record_hedge(&mut self, now: Instant) {
        let slot = self.slot(now);
        self.hedges[slot] = self.hedges[slot].saturating_add(1);
    }

    /// Whether one more hedge would stay within the cap; counts nothing.
    pub fn may_hedge(&self, now: Instant) -> bool {
        let live = self.live(now);
        let (requests, hedges) = (self.sum(&self.requests, live), self.sum(&self.hedges, live));
        let allowed = u128::from(requests) * u128::from(self.hedge_share)
            + u128::from(self.hedge_burst) * u128::from(ONE);
        (u128::from(hedges) + 1) * u128::from(ONE) <= allowed
    }

    /// Asks for one hedge; `true` means it is within the cap and has been counted. Ask when
    /// the hedge is sent, not when its timer is set: a call that ends first spends nothing.
    #[must_use = "a refused hedge must not be sent"]
    pub fn try_hedge(&mut self, now: Instant) -> bool {
        let slot = self.slot(now);
        let allowed = self.may_hedge(now);
        if allowed {
            self.hedges[slot] = self.hedges[slot].saturating_add(1);
        }
        allowed
    }

    /// The `q`-quantile of the window's latencies, within 1/32 (see the type's docs); `None`
    /// while the window holds fewer than `min_samples`, or when `q` is NaN. `q` outside
    /// `[0, 1]` is taken as the nearer end.
    pub fn quantile(&self, now: Instant, q: f64) -> Option<Duration> {
        if q.is_nan() {
            return None;
        }
        let live = self.live(now);
        let n = self.sample_count_in(live);
        if n < self.min_samples {
            return None;
        }
        let rank = rank(q, n);
        let (first, last) = self.occupied(live);
        let mut seen = 0u32;
        for bucket in first..=last {
            seen += self.counts[bucket]
                .iter()
                .zip(live)
                .map(|(&count, is_live)| if is_live { u32::from(count) } else { 0 })
                .sum::<u32>();
            if seen >= rank {
                return Some(Duration::from_micros(bucket_value(bucket)));
            }
        }
        // Not reached: the occupied buckets hold all `n ≥ rank` latencies.
        Some(Duration::from_micros(bucket_value(last)))
    }

    /// How long to wait for an attempt before hedging it: the hedge quantile clamped to
    /// `[min_delay, max_delay]`. `None` while the window holds fewer than `min_samples`
    /// latencies: the caller then hedges after a fixed delay of its own, or not at all.
    pub fn hedge_delay(&self, now: Instant) -> Option<Duration> {
        self.quantile(now, self.hedge_quantile)
            .map(|d| d.max(self.min_delay).min(self.max_delay))
    }

    /// [`hedge_delay`](Self::hedge_delay), computed again at most every sixteenth of a
    /// sub-window (a query reads every bucket; a request should not), so it may trail the
    /// window by that much; at once while the window knew too little.
    pub fn current_hedge_delay(&mut self, now: Instant) -> Option<Duration> {
        let at = now.as_nanos();
        if at >= self.cached_until || at.saturating_add(self.sub_window_nanos) < self.cached_until {
            self.cached_delay = self.hedge_delay(now);
            self.cached_until = at.saturating_add((self.sub_window_nanos / 16).max(1));
        }
        self.cached_delay
    }

    /// Counts one finished request ([`record_request`](Self::record_request)) and, if it
    /// is one to count ([`record`](Self::record)), its latency: one call for what a request
    /// adds when it ends.
    pub fn record_call(&mut self, now: Instant, latency: Option<Duration>) {
        let slot = self.slot(now);
        self.requests[slot] = self.requests[slot].saturating_add(1);
        if let Some(latency) = latency {
            self.record_in(slot, latency);
        }
    }

    /// The quantile hedge delays are taken at.
    pub fn hedge_quantile(&self) -> f64 {
        self.hedge_quantile
    }

    /// Latencies in the window at `now`.
    pub fn sample_count(&self, now: Instant) -> u32 {
        self.sample_count_in(self.live(now))
    }

    /// Calls counted in the window at `now`.
    pub fn request_count(&self, now: Instant) -> u64 {
        self.sum(&self.requests, self.live(now))
    }

    /// Hedges counted in the window at `now`.
    pub fn hedge_count(&self, now: Instant) -> u64 {
        self.sum(&self.hedges, self.live(now))
    }

    /// The sub-window `now` falls in, never earlier than the latest seen.
    fn tick(&self, now: Instant) -> u64 {
        (now.as_nanos() / self.sub_window_nanos).max(self.latest)
    }

    /// The slot for `now`, emptied first if it held an older sub-window (one that has left
    /// the window, since slots come round every `sub_windows` ticks).
    fn slot(&mut self, now: Instant) -> usize {
        let tick = self.tick(now);
        self.latest = tick;
        let slot = (tick % self.sub_windows as u64) as usize;
        if self.ticks[slot] != tick {
            if self.lowest[slot] <= self.highest[slot] {
                let (first, last) = (self.lowest[slot], self.highest[slot]);
                for row in &mut self.counts[usize::from(first)..=usize::from(last)] {
                    row[slot] = 0;
                }
            }
            self.ticks[slot] = tick;
            self.samples[slot] = 0;
            self.lowest[slot] = NO_BUCKET;
            self.highest[slot] = 0;
            self.requests[slot] = 0;
            self.hedges[slot] = 0;
        }
        slot
    }

    /// Which slots hold a sub-window of the window at `now`.
    fn live(&self, now: Instant) -> [bool; SLOTS] {
        let tick = self.tick(now);
        let mut live = [false; SLOTS];
        for (is_live, &held) in live.iter_mut().zip(&self.ticks).take(self.sub_windows) {
            // `held ≤ latest ≤ tick` for a used slot; NO_TICK is above any tick.
            *is_live = tick
                .checked_sub(held)
                .is_some_and(|age| age < self.sub_windows as u64);
        }
        live
    }

    fn sum(&self, per_slot: &[u32; SLOTS], live: [bool; SLOTS]) -> u64 {
        per_slot
            .iter()
            .zip(live)
            .filter(|&(_, is_live)| is_live)
            .map(|(&x, _)| u64::from(x))
            .sum()
    }

    fn sample_count_in(&self, live: [bool; SLOTS]) -> u32 {
        self.samples
            .iter()
            .zip(live)
            .filter(|&(_, is_live)| is_live)
            .map(|(&x, _)| u32::from(x))
            .sum()
    }

    /// The range of buckets any live slot has samples in; empty (first > last) if none.
    fn occupied(&self, live: [bool; SLOTS]) -> (usize, usize) {
        let mut first = usize::from(NO_BUCKET);
        let mut last = 0;
        for slot in (0..self.sub_windows).filter(|&s| live[s]) {
            first = first.min(usize::from(self.lowest[slot]));
            last = last.max(usize::from(self.highest[slot]));
        }
        (first, last)
    }
}

/// `⌈q · n⌉` (the product in `f64`), held to `1..=n`; `n ≥ 1`, `q` not NaN. (`f64::ceil`
/// needs std.)
fn rank(q: f64, n: u32) -> u32 {
    let product = q.clamp(0.0, 1.0) * f64::from(n);
    let floor = product as u32; // in [0, n]: truncation is the floor of a non-negative value
    let ceil = if f64::from(floor) < product {
        floor + 1
    } else {
        floor
    };
    ceil.clamp(1, n)
}

/// The bucket of a latency in whole microseconds: its own below 32 µs, else one of the 16
/// equal parts of its power of two.
fn bucket_of(micros: u64) -> usize {
    let micros = micros.min(MAX_MICROS);
    if micros < SUBS {
        return micros as usize;
    }
    let shift = (63 - micros.leading_zeros()) - SUB_BITS;
    let mantissa = micros >> shift; // in [16, 32)
    (((shift + 1) as usize) << SUB_BITS) + (mantissa - SUBS) as usize
}

/// A bucket's answer: its midpoint, which is within 1/32 of any latency in it (its width is
/// at most a sixteenth of its lower edge).
fn bucket_value(bucket: usize) -> u64 {
    let bucket = bucket.min(BUCKETS - 1) as u64;
    if bucket < SUBS {
        return bucket;
    }
    let shift = (bucket >> SUB_BITS) - 1;
    let lower = (SUBS + (bucket & (SUBS - 1))) << shift;
    lower + ((1 << shift) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_microsecond_value_lands_in_a_bucket_whose_midpoint_is_within_a_32nd() {
        let mut edges = alloc::vec::Vec::new();
        for e in 0..TOP_BITS {
            for d in [0u64, 1, 2] {
                edges.push((1u64 << e).saturating_sub(d));
                edges.push((1u64 << e) + d);
            }
        }
        edges.extend([0, MAX_MICROS - 1, MAX_MICROS, 12_345, 95_000, 3_600_000_000]);
        for x in edges.into_iter().filter(|&x| x <= MAX_MICROS) {
            let v = bucket_value(bucket_of(x));
            assert!(32 * v.abs_diff(x) <= x, "{x} answered as {v}");
            assert_eq!(
                bucket_of(v),
                bucket_of(x),
                "{x}: midpoint {v} in another bucket"
            );
            if x < 32 {
                assert_eq!(v, x);
            }
        }
        assert_eq!(bucket_of(MAX_MICROS), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_in_order_and_adjacent() {
        let mut previous = 0;
        for x in 1..(1 << 16) {
            let b = bucket_of(x);
            assert!(b == previous || b == previous + 1, "{x}");
            previous = b;
        }
    }
}
