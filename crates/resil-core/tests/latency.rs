//! The latency sketch on a fake clock: the sliding window, quantiles against the exact ones
//! (within the stated 1/32), the hedge delay's clamps, the hedge-rate cap and validation.

use core::time::Duration;
use std::sync::Mutex;

use proptest::prelude::*;
use resil_core::{Instant, LatencySketch, LatencySketchBuilder, PolicyError, Shared};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// 10 s in 5 sub-windows of 2 s, a quantile from the first sample, no delay clamps.
fn sketch() -> LatencySketchBuilder {
    LatencySketch::builder()
        .window(Duration::from_secs(10))
        .sub_windows(5)
        .min_samples(1)
        .min_delay(Duration::ZERO)
        .max_delay(Duration::MAX)
}

fn build(builder: LatencySketchBuilder) -> LatencySketch {
    builder.build().unwrap()
}

/// The stated guarantee: within 1/32 of the exact value.
#[track_caller]
fn assert_near(got: Option<Duration>, exact: Duration) {
    let (v, x) = (got.expect("a quantile").as_nanos(), exact.as_nanos());
    assert!(32 * v.abs_diff(x) <= x, "{got:?} for {exact:?}");
}

// --- the window -----------------------------------------------------------------------------

#[test]
fn a_sample_is_forgotten_once_its_sub_window_leaves_the_window() {
    let mut s = build(sketch());
    s.record(at_ms(500), ms(100));
    // Sub-windows of 2 s: the sample's is [0, 2 s); the window at 9.999 s still holds it.
    assert_eq!(s.sample_count(at_ms(9_999)), 1);
    assert_near(s.quantile(at_ms(9_999), 0.5), ms(100));
    // At 10 s the window is [2 s, 12 s).
    assert_eq!(s.sample_count(at_ms(10_000)), 0);
    assert_eq!(s.quantile(at_ms(10_000), 0.5), None);
}

#[test]
fn the_window_slides_one_sub_window_at_a_time() {
    let mut s = build(sketch());
    for second in 0..10 {
        s.record(at_ms(second * 1_000), ms(second + 1));
    }
    assert_eq!(s.sample_count(at_ms(9_000)), 10);
    assert_eq!(s.sample_count(at_ms(10_000)), 8, "the first 2 s left");
    assert_eq!(s.sample_count(at_ms(12_000)), 6);
    assert_eq!(s.sample_count(at_ms(19_999)), 0);
    // What is left after 12 s: samples of 5..10 ms; the smallest is 5 ms.
    assert_near(s.quantile(at_ms(12_000), 0.0), ms(5));
}

#[test]
fn a_reused_slot_starts_empty() {
    let mut s = build(sketch());
    s.record(at_ms(0), ms(700));
    // 10 s later the same slot comes round for the sub-window [10 s, 12 s).
    s.record(at_ms(10_000), ms(3));
    assert_eq!(s.sample_count(at_ms(10_000)), 1);
    assert_near(s.quantile(at_ms(10_000), 1.0), ms(3));
}

#[test]
fn a_clock_that_goes_backwards_counts_in_the_latest_sub_window() {
    let mut s = build(sketch());
    s.record(at_ms(8_000), ms(1));
    s.record(at_ms(1_000), ms(2)); // an older reading from another thread
    // Both are in the sub-window [8 s, 10 s): both leave the window at 18 s, not at 10 s.
    assert_eq!(s.sample_count(at_ms(17_999)), 2);
    assert_eq!(
        s.sample_count(at_ms(0)),
        2,
        "queries see the latest window too"
    );
    assert_eq!(s.sample_count(at_ms(18_000)), 0);
}

// --- quantiles ------------------------------------------------------------------------------

#[test]
fn quantiles_of_one_to_a_hundred_ms_are_within_a_32nd() {
    let mut s = build(sketch());
    let now = at_ms(1);
    for n in 1..=100 {
        s.record(now, ms(n));
    }
    for (q, exact_ms) in [
        (0.01, 1u64),
        (0.5, 50),
        (0.9, 90),
        (0.95, 95),
        (0.99, 99),
        (1.0, 100),
    ] {
        let v = s.quantile(now, q).unwrap().as_micros();
        let x = u128::from(exact_ms) * 1_000;
        assert!(32 * v.abs_diff(x) <= x, "q = {q}: {v} µs for {x} µs");
    }
}

#[test]
fn latencies_below_32_us_are_exact() {
    let mut s = build(sketch());
    let now = at_ms(1);
    for us in [31, 0, 7, 16] {
        s.record(now, Duration::from_micros(us));
    }
    let at = |q| s.quantile(now, q).unwrap().as_micros();
    assert_eq!([at(0.25), at(0.5), at(0.75), at(1.0)], [0, 7, 16, 31]);
}

#[test]
fn latencies_are_kept_in_whole_microseconds() {
    let mut s = build(sketch());
    s.record(at_ms(1), Duration::from_nanos(20_999));
    assert_eq!(s.quantile(at_ms(1), 0.5), Some(Duration::from_micros(20)));
}

#[test]
fn latencies_past_the_range_count_as_its_top() {
    let mut s = build(sketch());
    s.record(at_ms(1), Duration::MAX);
    s.record(at_ms(1), Duration::from_secs(24 * 3600));
    let v = s.quantile(at_ms(1), 1.0).unwrap();
    let top = LatencySketch::MAX_TRACKED;
    assert!(v <= top && (top - v) * 32 <= top, "{v:?}");
}

#[test]
fn q_outside_zero_to_one_is_the_nearer_end_and_nan_has_no_quantile() {
    let mut s = build(sketch());
    for n in [5, 1, 9] {
        s.record(at_ms(1), ms(n));
    }
    assert_eq!(s.quantile(at_ms(1), -3.0), s.quantile(at_ms(1), 0.0));
    assert_near(s.quantile(at_ms(1), -3.0), ms(1));
    assert_near(s.quantile(at_ms(1), f64::INFINITY), ms(9));
    assert_eq!(s.quantile(at_ms(1), f64::NAN), None);
}

#[test]
fn no_quantile_until_the_window_holds_min_samples() {
    let mut s = build(sketch().min_samples(3));
    s.record(at_ms(1), ms(10));
    s.record(at_ms(1), ms(20));
    assert_eq!(s.quantile(at_ms(1), 0.5), None);
    assert_eq!(s.hedge_delay(at_ms(1)), None);
    s.record(at_ms(1), ms(30));
    assert_near(s.quantile(at_ms(1), 0.5), ms(20));
    // All three were in one sub-window, and leave the window together.
    assert_eq!(s.quantile(at_ms(10_000), 0.5), None);
}

#[test]
fn a_full_sub_window_ignores_further_samples() {
    let mut s = build(sketch());
    for _ in 0..70_000 {
        s.record(at_ms(1), ms(1));
    }
    assert_eq!(s.sample_count(at_ms(1)), 65_535);
    s.record(at_ms(2_000), ms(2));
    assert_eq!(
        s.sample_count(at_ms(2_000)),
        65_536,
        "the next sub-window counts again"
    );
}

// --- the hedge delay ------------------------------------------------------------------------

#[test]
fn the_hedge_delay_is_the_hedge_quantile_clamped_to_min_and_max() {
    let builder = sketch().hedge_quantile(0.5);
    let mut s = build(builder.min_delay(ms(1)).max_delay(ms(50)));
    s.record(at_ms(1), Duration::from_micros(200));
    assert_eq!(s.hedge_delay(at_ms(1)), Some(ms(1)), "raised to min_delay");
    let mut s = build(builder.min_delay(ms(1)).max_delay(ms(50)));
    s.record(at_ms(1), ms(400));
    assert_eq!(
        s.hedge_delay(at_ms(1)),
        Some(ms(50)),
        "lowered to max_delay"
    );
    let mut s = build(builder.min_delay(ms(1)).max_delay(ms(50)));
    s.record(at_ms(1), ms(20));
    assert_near(s.hedge_delay(at_ms(1)), ms(20));
}

#[test]
fn the_hedge_quantile_follows_from_the_extra_load_allowed() {
    let s = build(LatencySketch::builder());
    assert!((s.hedge_quantile() - 0.95).abs() < 1e-12);
    let s = build(LatencySketch::builder().max_extra_load(0.1));
    assert!((s.hedge_quantile() - 0.9).abs() < 1e-12);
    let s = build(
        LatencySketch::builder()
            .max_extra_load(0.1)
            .hedge_quantile(0.99),
    );
    assert_eq!(s.hedge_quantile(), 0.99);
}

#[test]
fn the_defaults_hedge_after_the_p95_once_20_latencies_are_in() {
    let mut s = build(LatencySketch::builder());
    let now = at_ms(1);
    for n in 1..=19 {
        s.record(now, ms(n * 10));
    }
    assert_eq!(s.hedge_delay(now), None);
    s.record(now, ms(200));
    // ⌈0.95 · 20⌉ = 19: the 19th of 10, 20, ..., 200 ms is 190 ms.
    let v = s.hedge_delay(now).unwrap().as_micros();
    assert!(32 * v.abs_diff(190_000) <= 190_000, "{v}");
}

// --- the hedge cap --------------------------------------------------------------------------

#[test]
fn hedges_stay_within_the_share_of_requests_plus_the_burst() {
    let mut s = build(sketch().max_extra_load(0.05).hedge_burst(1));
    for _ in 0..100 {
        s.record_request(at_ms(1));
    }
    let granted = (0..20).filter(|_| s.try_hedge(at_ms(1))).count();
    assert_eq!(granted, 6, "5 % of 100, plus 1");
    assert!(!s.may_hedge(at_ms(1)));
    assert_eq!(s.hedge_count(at_ms(1)), 6);
    // 20 more requests earn one more hedge.
    for _ in 0..20 {
        s.record_request(at_ms(2));
    }
    assert!(s.try_hedge(at_ms(2)));
    assert!(!s.try_hedge(at_ms(2)));
}

#[test]
fn a_quiet_window_may_hedge_its_burst_and_no_more() {
    let mut s = build(sketch().hedge_burst(1));
    assert!(s.try_hedge(at_ms(1)), "the first hedge of a quiet window");
    assert!(!s.try_hedge(at_ms(1)));
    let mut strict = build(sketch().hedge_burst(0));
    for _ in 0..19 {
        strict.record_request(at_ms(1));
    }
    assert!(!strict.may_hedge(at_ms(1)), "19 requests earn 0.95 hedges");
    strict.record_request(at_ms(1));
    assert!(strict.try_hedge(at_ms(1)), "the 20th earns the first");
}

#[test]
fn may_hedge_counts_nothing_and_record_hedge_counts_without_asking() {
    let mut s = build(sketch().hedge_burst(1));
    assert!(s.may_hedge(at_ms(1)));
    assert!(s.may_hedge(at_ms(1)));
    s.record_hedge(at_ms(1));
    s.record_hedge(at_ms(1));
    assert_eq!(s.hedge_count(at_ms(1)), 2);
    assert!(!s.may_hedge(at_ms(1)));
}

#[test]
fn hedges_and_requests_leave_with_the_window() {
    let mut s = build(sketch().hedge_burst(0).max_extra_load(1.0));
    s.record_request(at_ms(1));
    assert!(s.try_hedge(at_ms(1)));
    assert!(!s.try_hedge(at_ms(1)));
    assert_eq!(s.request_count(at_ms(10_000)), 0);
    assert_eq!(s.hedge_count(at_ms(10_000)), 0);
    s.record_request(at_ms(10_000));
    assert!(s.try_hedge(at_ms(10_000)));
}

#[test]
fn a_uniformly_slow_backend_is_hedged_for_five_percent_of_requests() {
    // Every request is slower than the hedge delay: the cap alone decides.
    let mut s = build(LatencySketch::builder().hedge_burst(0));
    let mut hedges = 0;
    let mut now = Instant::ZERO;
    for _ in 0..10_000 {
        now = now + ms(1);
        s.record_request(now);
        if s.try_hedge(now) {
            hedges += 1;
        }
        s.record(now, ms(500));
    }
    // 10 s of traffic in a 10 s window: at most 5 % of the window's requests at any time.
    assert!(
        (450..=500).contains(&hedges),
        "{hedges} hedges in 10 000 requests"
    );
}

// --- settings -------------------------------------------------------------------------------

#[test]
fn each_bad_setting_is_named() {
    let field = |b: LatencySketchBuilder| b.build().map(|_| ()).unwrap_err().field();
    let b = LatencySketch::builder;
    assert_eq!(field(b().window(Duration::ZERO)), "window");
    assert_eq!(field(b().window(Duration::from_micros(999))), "window");
    assert_eq!(field(b().sub_windows(0)), "sub_windows");
    assert_eq!(field(b().sub_windows(6)), "sub_windows");
    for bad in [0.0, -0.1, 1.1, f64::NAN] {
        assert_eq!(field(b().max_extra_load(bad)), "max_extra_load");
    }
    for bad in [0.0, 1.0, -1.0, f64::NAN] {
        assert_eq!(field(b().hedge_quantile(bad)), "hedge_quantile");
    }
    assert_eq!(field(b().min_samples(0)), "min_samples");
    assert_eq!(field(b().min_samples(65_536)), "min_samples");
    assert_eq!(field(b().min_delay(ms(20)).max_delay(ms(10))), "max_delay");
    let message = b().sub_windows(0).build().unwrap_err().to_string();
    assert_eq!(message, "invalid setting `sub_windows`: must be 1 to 5");
}

#[test]
fn the_edges_of_each_range_are_accepted() {
    let b = LatencySketch::builder;
    b().window(ms(1)).sub_windows(5).build().unwrap();
    b().sub_windows(1).build().unwrap();
    b().max_extra_load(1.0).build().unwrap();
    b().min_samples(65_535).build().unwrap();
    b().min_delay(ms(5)).max_delay(ms(5)).build().unwrap();
    let err: PolicyError = b().window(ms(0)).build().unwrap_err();
    assert_eq!(err.field(), "window");
}

// --- sharing and size -----------------------------------------------------------------------

#[test]
fn a_sketch_is_shared_like_a_breaker() {
    fn plain_data<T: Send + Sync + Clone + 'static>() {}
    plain_data::<LatencySketch>();
    let shared = Mutex::new(build(sketch()));
    let handle: &(dyn Shared<LatencySketch> + Sync) = &shared;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for n in 1..=50 {
                    handle.with_mut(&mut |s| s.record(at_ms(1), ms(n)));
                }
            });
        }
    });
    let mut count = 0;
    handle.with_mut(&mut |s| count = s.sample_count(at_ms(1)));
    assert_eq!(count, 100);
}

/// One per backend, shared: fixed memory, stated in the type's docs.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_sketch_is_4856_bytes() {
    assert_eq!(size_of::<LatencySketch>(), 4856);
}

// --- against the exact quantile -------------------------------------------------------------

/// A clock step in twentieths of the window (and thousandths of one): often none, mostly
/// forward, sometimes back by up to a window or forward past two.
type Step = (i64, u64);

#[derive(Clone, Debug)]
enum Op {
    Record { step: Step, latency_us: u64 },
    Request { step: Step },
    Hedge { step: Step },
    Query { step: Step, q: f64 },
}

fn op() -> impl Strategy<Value = Op> {
    let step = (
        prop_oneof![6 => Just(0i64), 6 => 0i64..=5, 1 => -20i64..=40],
        prop_oneof![Just(0u64), 0u64..1_000],
    );
    let latency = prop_oneof![
        0u64..64,
        0u64..100_000,
        1_000u64..10_000_000,
        Just(u64::MAX),
        any::<u64>(),
    ];
    prop_oneof![
        4 => (step.clone(), latency).prop_map(|(step, latency_us)| Op::Record { step, latency_us }),
        2 => step.clone().prop_map(|step| Op::Request { step }),
        1 => step.clone().prop_map(|step| Op::Hedge { step }),
        2 => (step, -0.1f64..1.1).prop_map(|(step, q)| Op::Query { step, q }),
    ]
}

/// Every sample, request and hedge with its sub-window, and the window rule restated.
struct Exact {
    sub_nanos: u64,
    subs: u64,
    latest: u64,
    samples: Vec<(u64, u64)>,
    requests: Vec<u64>,
    hedges: Vec<u64>,
}

impl Exact {
    /// The sub-window of `now`, never before the latest one counted in.
    fn tick(&self, now: Instant) -> u64 {
        self.latest.max(now.as_nanos() / self.sub_nanos)
    }

    fn live(&self, tick: u64) -> impl Fn(&u64) -> bool + '_ {
        move |&t| tick - t < self.subs
    }

    fn window(&self, tick: u64) -> Vec<u64> {
        let mut xs: Vec<u64> = (self.samples.iter())
            .filter(|(t, _)| self.live(tick)(t))
            .map(|&(_, x)| x)
            .collect();
        xs.sort_unstable();
        xs
    }
}

fn exact_rank(q: f64, n: usize) -> usize {
    ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The stated guarantee, on arbitrary timelines: the window holds exactly the samples the
    /// rule says, and a quantile is within 1/32 of the exact k-th smallest (exact below 32 µs).
    #[test]
    fn quantiles_and_the_cap_match_an_exact_model(
        window_ms in 1u64..=20_000,
        subs in 1u32..=5,
        min_samples in 1u32..=5,
        share_ppm in 1u64..=1_000_000,
        burst in 0u32..=3,
        start_ms in 0u64..1_000_000,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut s = LatencySketch::builder()
            .window(ms(window_ms))
            .sub_windows(subs)
            .min_samples(min_samples)
            .max_extra_load(share_ppm as f64 / 1e6)
            .hedge_burst(burst)
            .build()
            .unwrap();
        let mut exact = Exact {
            sub_nanos: window_ms * 1_000_000 / u64::from(subs),
            subs: u64::from(subs),
            latest: 0,
            samples: Vec::new(),
            requests: Vec::new(),
            hedges: Vec::new(),
        };
        let twentieth = (window_ms * 1_000_000 / 20) as i64;
        let mut now_ns = (start_ms * 1_000_000) as i64;
        for op in ops {
            let (units, thousandths) = match op {
                Op::Record { step, .. } | Op::Request { step }
                | Op::Hedge { step } | Op::Query { step, .. } => step,
            };
            now_ns = (now_ns + units * twentieth + thousandths as i64 * twentieth / 1_000).max(0);
            let now = Instant::from_nanos(now_ns as u64);
            let tick = exact.tick(now);
            if !matches!(op, Op::Query { .. }) {
                exact.latest = tick; // `Hedge` counts when granted, and moves time either way
            }
            match op {
                Op::Record { latency_us, .. } => {
                    s.record(now, Duration::from_micros(latency_us));
                    exact.samples.push((tick, latency_us.min(LatencySketch::MAX_TRACKED.as_micros() as u64)));
                }
                Op::Request { .. } => {
                    s.record_request(now);
                    exact.requests.push(tick);
                }
                Op::Hedge { .. } => {
                    let requests = exact.requests.iter().filter(|t| exact.live(tick)(t)).count() as u128;
                    let hedges = exact.hedges.iter().filter(|t| exact.live(tick)(t)).count() as u128;
                    let allowed = (hedges + 1) * 1_000_000
                        <= requests * u128::from(share_ppm) + u128::from(burst) * 1_000_000;
                    prop_assert_eq!(s.may_hedge(now), allowed);
                    prop_assert_eq!(s.try_hedge(now), allowed);
                    if allowed {
                        exact.hedges.push(tick);
                    }
                    prop_assert_eq!(s.hedge_count(now), exact.hedges.iter().filter(|t| exact.live(tick)(t)).count() as u64);
                    prop_assert_eq!(s.request_count(now), requests as u64);
                }
                Op::Query { q, .. } => {
                    let xs = exact.window(tick);
                    prop_assert_eq!(s.sample_count(now) as usize, xs.len());
                    let got = s.quantile(now, q);
                    if xs.len() < min_samples as usize {
                        prop_assert_eq!(got, None);
                        continue;
                    }
                    let x = u128::from(xs[exact_rank(q, xs.len()) - 1]);
                    let v = got.unwrap().as_micros();
                    prop_assert!(32 * v.abs_diff(x) <= x, "q = {}: {} µs for the exact {} µs", q, v, x);
                    if x < 32 {
                        prop_assert_eq!(v, x);
                    }
                    // Monotone in q, and between the window's smallest and largest (rounded).
                    let lowest = s.quantile(now, 0.0).unwrap();
                    let highest = s.quantile(now, 1.0).unwrap();
                    prop_assert!(lowest <= got.unwrap() && got.unwrap() <= highest);
                    let (min, max) = (u128::from(xs[0]), u128::from(xs[xs.len() - 1]));
                    prop_assert!(32 * lowest.as_micros().abs_diff(min) <= min);
                    prop_assert!(32 * highest.as_micros().abs_diff(max) <= max);
                }
            }
        }
    }

    /// Quantiles never decrease as q grows, and the hedge delay is always within its clamps.
    #[test]
    fn quantiles_are_monotone_and_hedge_delays_clamped(
        latencies in prop::collection::vec(any::<u64>(), 1..200),
        qs in prop::collection::vec(0.0f64..=1.0, 2..20),
        min_ms in 0u64..100,
        extra_ms in 0u64..1_000,
    ) {
        let (min, max) = (ms(min_ms), ms(min_ms + extra_ms));
        let mut s = build(sketch().min_delay(min).max_delay(max));
        for &l in &latencies {
            s.record(at_ms(1), Duration::from_nanos(l));
        }
        let mut qs = qs;
        qs.sort_by(f64::total_cmp);
        let values: Vec<_> = qs.iter().map(|&q| s.quantile(at_ms(1), q).unwrap()).collect();
        prop_assert!(values.windows(2).all(|w| w[0] <= w[1]), "{:?} at {:?}", values, qs);
        let delay = s.hedge_delay(at_ms(1)).unwrap();
        prop_assert!(min <= delay && delay <= max);
    }
}
