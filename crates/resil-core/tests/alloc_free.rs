//! Zero heap allocations per logical request, counted by a global allocator; and the machine's
//! size without its RNG. The latency sketch allocates nothing at all, built or used.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;

use resil_core::{
    Action, CircuitBreaker, Input, Instant, LatencySketch, Method, RequestInfo, ResponseHead,
    RetryAfter, RetryBudget, RetryMachine, RetryPolicy,
};

struct Counting;

thread_local! {
    // Per thread: the harness and the other tests allocate on their own threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn three_attempts(
    policy: &RetryPolicy,
    breaker: &Mutex<CircuitBreaker>,
    budget: &Mutex<RetryBudget>,
    seed: u64,
) -> u32 {
    let mut now = Instant::from_secs(1);
    let mut m = RetryMachine::new(policy, RequestInfo::new(Method::Get), now, seed)
        .with_breaker(breaker)
        .with_budget(budget);
    let mut replies = [503u16, 503, 200].into_iter();
    let mut events = 0;
    loop {
        match m.poll_action() {
            Action::Send { attempt, .. } => {
                let status = replies.next().unwrap_or(200);
                let ra = (status == 503).then(|| RetryAfter::parse(b"0")).flatten();
                let head = ResponseHead::new(status).with_retry_after(ra, None);
                now = now + core::time::Duration::from_millis(1);
                m.handle_input(now, Input::Response { attempt, head });
            }
            Action::Sleep { until } => {
                now = until;
                m.handle_input(now, Input::Timer);
            }
            Action::Done { attempt } => return attempt.number() + events,
            Action::Cancel { .. } => panic!("nothing hedges here"),
            Action::Fail(g) => panic!("{g}"),
        }
        while m.poll_event().is_some() {
            events += 1;
        }
    }
}

#[test]
fn the_counter_sees_allocations() {
    COUNTING.with(|c| c.set(true));
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 64]);
    let after = allocations();
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert_eq!(after - before, 1);
}

#[test]
fn a_logical_request_allocates_nothing() {
    let policy = RetryPolicy::builder()
        .retry_after_spread(0.5)
        .build()
        .unwrap();
    let breaker = Mutex::new(CircuitBreaker::builder().build().unwrap());
    // Generous enough that every retry is granted: the point is the count of allocations.
    let budget =
        Mutex::new(RetryBudget::ratio(1000.0, 1000, core::time::Duration::from_secs(10)).unwrap());
    // Warm-up, then count a batch of requests with jitter, a breaker and a budget.
    three_attempts(&policy, &breaker, &budget, 0);
    let before = allocations();
    COUNTING.with(|c| c.set(true));
    let mut total = 0;
    for seed in 0..1000 {
        total += three_attempts(&policy, &breaker, &budget, seed);
    }
    COUNTING.with(|c| c.set(false));
    let allocated = allocations() - before;
    assert!(total > 3000);
    assert_eq!(allocated, 0, "allocations in 1000 logical requests");
}

#[test]
fn the_latency_sketch_never_allocates() {
    COUNTING.with(|c| c.set(true));
    let before = allocations();
    let mut sketch = LatencySketch::builder().build().unwrap();
    let mut now = Instant::ZERO;
    let mut delays = 0;
    // 20 000 calls over 50 s: every sub-window comes round several times.
    for i in 0..20_000u64 {
        now = now + core::time::Duration::from_micros(2_500);
        sketch.record_request(now);
        sketch.record(now, core::time::Duration::from_micros(i % 20_000));
        if sketch.hedge_delay(now).is_some() && sketch.try_hedge(now) {
            delays += 1;
        }
        std::hint::black_box(sketch.quantile(now, 0.5));
    }
    let allocated = allocations() - before;
    COUNTING.with(|c| c.set(false));
    assert!(delays > 500);
    assert_eq!(allocated, 0, "allocations by the latency sketch");
}

/// An RNG with no state: `RetryMachine<ZeroSizedRng>` is the machine without its RNG.
struct ZeroSizedRng;
impl rand_core::TryRng for ZeroSizedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}
impl rand_core::SeedableRng for ZeroSizedRng {
    type Seed = [u8; 0];
    fn from_seed(_: [u8; 0]) -> Self {
        ZeroSizedRng
    }
}

/// Every call in flight holds one (an async call, in its future). 23 words: the 17th is the
/// breaker's lock-free gate, which spares a call two lock round trips; the 18th holds what the
/// peers' controls need (how long the failed attempt took, retries counted by kind, the
/// outcome that opened the breaker); the last five are hedging's (the shared latency sketch,
/// when the next hedge goes, the attempts out at once, boxed until a call hedges); the last
/// seven are the limiters' (the list; what they granted, inline so a call the default
/// throttle admits allocates nothing; a wait's or refusal's state, boxed until one happens).
#[test]
fn machine_without_its_rng_fits_in_240_bytes() {
    let size = size_of::<RetryMachine<'static, ZeroSizedRng>>();
    let with_rng = size_of::<RetryMachine<'static>>();
    println!("RetryMachine without RNG: {size} bytes; with ChaCha8: {with_rng}");
    assert!(size <= 240, "{size} bytes");
    assert!(with_rng <= 560, "{with_rng} bytes with ChaCha8");
}
