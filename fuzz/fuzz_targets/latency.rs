//! The latency sketch under arbitrary settings, clocks (jumping anywhere, backwards too) and
//! latencies (zero, huge): never a panic; against an exact model of the window, counts agree,
//! a quantile is within 1/32 of the exact k-th latency and monotone in q, the hedge delay is
//! that quantile within its clamps, and the hedge cap grants exactly what it states.
#![no_main]

use std::collections::HashMap;

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{Instant, LatencySketch};

/// Every latency, call and hedge with its sub-window, and the window rule restated.
struct Exact {
    sub_nanos: u64,
    subs: u64,
    latest: u64,
    samples: Vec<(u64, u64)>,
    per_sub_window: HashMap<u64, u32>,
    requests: Vec<u64>,
    hedges: Vec<u64>,
}

impl Exact {
    fn tick(&self, now: Instant) -> u64 {
        self.latest.max(now.as_nanos() / self.sub_nanos)
    }

    fn count(&self, ticks: &[u64], now: Instant) -> u64 {
        let tick = self.tick(now);
        ticks.iter().filter(|&&t| tick - t < self.subs).count() as u64
    }

    fn window(&self, now: Instant) -> Vec<u64> {
        let tick = self.tick(now);
        let mut xs: Vec<u64> = (self.samples.iter())
            .filter(|&&(t, _)| tick - t < self.subs)
            .map(|&(_, x)| x)
            .collect();
        xs.sort_unstable();
        xs
    }
}

fn duration(u: &mut Unstructured<'_>) -> Duration {
    match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 => Duration::ZERO,
        1 => Duration::MAX,
        2 => Duration::from_nanos(u64::arbitrary(u).unwrap_or(0)),
        3 => Duration::from_micros(u.int_in_range(0..=100u64).unwrap_or(0)),
        _ => Duration::from_millis(u.int_in_range(0..=60_000u64).unwrap_or(0)),
    }
}

/// A share or quantile: mostly in and around `[0, 1]`, sometimes any `f64` (NaN, infinities).
fn fraction(u: &mut Unstructured<'_>) -> f64 {
    if u.ratio(1, 8u8).unwrap_or(false) {
        f64::arbitrary(u).unwrap_or(0.5)
    } else {
        f64::from(u.int_in_range(0..=1_100_000u32).unwrap_or(500_000)) / 1e6
    }
}

fn within_a_32nd(v: Duration, x_micros: u64) -> bool {
    let v = v.as_micros();
    let x = u128::from(x_micros);
    32 * v.abs_diff(x) <= x && (x >= 32 || v == x)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let window = duration(&mut u);
    let subs = u.int_in_range(0..=6u32).unwrap_or(5);
    let load = fraction(&mut u);
    let burst = u.int_in_range(0..=3u32).unwrap_or(1);
    let min_samples = u.int_in_range(0..=8u32).unwrap_or(1);
    let (min_delay, max_delay) = (duration(&mut u), duration(&mut u));
    let mut builder = LatencySketch::builder()
        .window(window)
        .sub_windows(subs)
        .max_extra_load(load)
        .hedge_burst(burst)
        .min_samples(min_samples)
        .min_delay(min_delay)
        .max_delay(max_delay);
    if bool::arbitrary(&mut u).unwrap_or(false) {
        builder = builder.hedge_quantile(fraction(&mut u));
    }
    let Ok(mut sketch) = builder.build() else {
        return;
    };
    // The rules the docs state: sub-windows of window / sub_windows whole nanoseconds, the
    // share in parts per million (rounded to nearest).
    let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let share_ppm = (load * 1e6 + 0.5) as u64;
    let mut exact = Exact {
        sub_nanos: window_nanos / u64::from(subs),
        subs: u64::from(subs),
        latest: 0,
        samples: Vec::new(),
        per_sub_window: HashMap::new(),
        requests: Vec::new(),
        hedges: Vec::new(),
    };
    let mut now = Instant::ZERO;
    while !u.is_empty() {
        now = match u.int_in_range(0..=3u8).unwrap_or(0) {
            0 => Instant::from_nanos(u64::arbitrary(&mut u).unwrap_or(0)),
            1 => now + duration(&mut u),
            2 => Instant::from_nanos(
                now.as_nanos()
                    .saturating_sub(u.int_in_range(0..=window_nanos).unwrap_or(0)),
            ),
            _ => now,
        };
        let tick = exact.tick(now);
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 | 1 => {
                let latency = duration(&mut u);
                sketch.record(now, latency);
                exact.latest = tick;
                let kept = exact.per_sub_window.entry(tick).or_insert(0);
                if *kept < u32::from(u16::MAX) {
                    *kept += 1;
                    let micros = latency
                        .as_micros()
                        .min(LatencySketch::MAX_TRACKED.as_micros());
                    exact.samples.push((tick, micros as u64));
                }
            }
            2 => {
                sketch.record_request(now);
                exact.latest = tick;
                exact.requests.push(tick);
            }
            3 => {
                let requests = u128::from(exact.count(&exact.requests, now));
                let hedges = u128::from(exact.count(&exact.hedges, now));
                let allowed = (hedges + 1) * 1_000_000
                    <= requests * u128::from(share_ppm) + u128::from(burst) * 1_000_000;
                assert_eq!(sketch.may_hedge(now), allowed);
                assert_eq!(sketch.try_hedge(now), allowed);
                exact.latest = tick;
                if allowed {
                    exact.hedges.push(tick);
                }
            }
            4 => {
                sketch.record_hedge(now);
                exact.latest = tick;
                exact.hedges.push(tick);
            }
            _ => {
                let xs = exact.window(now);
                assert_eq!(sketch.sample_count(now) as usize, xs.len());
                assert_eq!(sketch.request_count(now), exact.count(&exact.requests, now));
                assert_eq!(sketch.hedge_count(now), exact.count(&exact.hedges, now));
                let (q1, q2) = (fraction(&mut u), fraction(&mut u));
                let enough = xs.len() >= min_samples as usize;
                for q in [q1, q2] {
                    let got = sketch.quantile(now, q);
                    assert_eq!(got.is_some(), enough && !q.is_nan(), "q = {q}");
                    if let Some(v) = got {
                        let p = q.clamp(0.0, 1.0) * xs.len() as f64;
                        let rank = (p.ceil() as usize).clamp(1, xs.len());
                        let x = xs[rank - 1];
                        assert!(within_a_32nd(v, x), "q = {q}: {v:?} for {x} µs");
                    }
                }
                if let (Some(a), Some(b)) = (sketch.quantile(now, q1), sketch.quantile(now, q2)) {
                    if q1 <= q2 {
                        assert!(a <= b, "not monotone: {q1} → {a:?}, {q2} → {b:?}");
                    }
                }
                let delay = sketch.hedge_delay(now);
                assert_eq!(delay.is_some(), enough);
                if let Some(d) = delay {
                    assert!(min_delay <= d && d <= max_delay);
                    let q = sketch.quantile(now, sketch.hedge_quantile());
                    assert_eq!(q.map(|q| q.max(min_delay).min(max_delay)), Some(d));
                }
            }
        }
    }
});
