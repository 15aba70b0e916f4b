//! No limiter allocates on its hot path — acquiring, waiting, queueing, recording, releasing,
//! reading the server's `RateLimit` headers — counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use resil_core::{
    AdaptiveRateLimiter, AdaptiveThrottle, Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter,
    Feedback, Instant, LimitAlgorithm, QuotaPacer, RateLimiter, ServerQuota,
};

struct Counting;

thread_local! {
    // Per thread: the harness and the other tests allocate on their own threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
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

/// Allocations made by `f`.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

/// A busy client: each step asks, waits if told to, and reports back; a few attempts are
/// abandoned and a few wait tickets cancelled.
fn exercise(limiter: &mut dyn Admission, steps: u64) {
    let mut now = Instant::from_secs(1);
    let mut held = [None; 8];
    for i in 0..steps {
        now = now + Duration::from_micros(700 + i % 1300);
        let kind = [AttemptKind::First, AttemptKind::Retry][(i % 5 == 0) as usize];
        let admit = limiter.acquire(now, Ask::new(kind).not_after(now + Duration::from_secs(60)));
        let grant = match admit {
            Admit::Now(grant) => Some(grant),
            Admit::Wait { until, ticket } | Admit::Queued { until, ticket } => {
                if i % 11 == 0 {
                    let _ = limiter.cancel(now, ticket);
                    None
                } else {
                    match limiter.claim(until, ticket) {
                        Admit::Now(grant) => Some(grant),
                        _ => None,
                    }
                }
            }
            Admit::Reject(_) => None,
        };
        let slot = (i % 8) as usize;
        if let Some(old) = held[slot].take() {
            let _ = if i % 13 == 0 {
                limiter.release(now, old)
            } else {
                let feedback = [Feedback::Accepted, Feedback::BackPressure][(i % 7 == 0) as usize];
                limiter.record(now, old, feedback)
            };
        }
        held[slot] = grant;
    }
}

#[test]
fn the_counter_sees_allocations() {
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))),
        1
    );
}

#[test]
fn no_limiter_allocates_on_its_hot_path() {
    let mut limiters: Vec<(&str, Box<dyn Admission>)> = vec![
        (
            "token bucket",
            Box::new(RateLimiter::builder().rate(500.0).build().unwrap()),
        ),
        (
            "adaptive rate",
            Box::new(AdaptiveRateLimiter::builder().build().unwrap()),
        ),
        (
            "sre throttle",
            Box::new(AdaptiveThrottle::builder().build().unwrap()),
        ),
        (
            "aimd bulkhead",
            Box::new(
                ConcurrencyLimiter::builder()
                    .algorithm(LimitAlgorithm::aimd())
                    .limit(4)
                    .queue(64, Duration::from_millis(50))
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "gradient bulkhead",
            Box::new(
                ConcurrencyLimiter::builder()
                    .algorithm(LimitAlgorithm::gradient())
                    .limit(4)
                    .queue(64, Duration::from_millis(50))
                    .build()
                    .unwrap(),
            ),
        ),
    ];
    for (name, limiter) in &mut limiters {
        exercise(limiter.as_mut(), 100);
        assert_eq!(
            allocations_in(|| exercise(limiter.as_mut(), 20_000)),
            0,
            "{name}"
        );
    }
}

#[test]
fn pacing_by_the_servers_headers_allocates_nothing() {
    let mut pacer = QuotaPacer::builder().build().unwrap();
    let answers: [&[(&str, &[u8])]; 3] = [
        &[
            (
                "RateLimit-Policy",
                br#""permin";q=50;w=60,"perhr";q=1000;w=3600"#,
            ),
            ("RateLimit", br#""permin";r=3;t=1,"perhr";r=400;t=2000"#),
        ],
        &[("X-RateLimit-Remaining", b"0"), ("X-RateLimit-Reset", b"1")],
        &[("RateLimit", b"garbage;;;")],
    ];
    let allocated = allocations_in(|| {
        let mut now = Instant::ZERO;
        for i in 0..20_000 {
            now = now + Duration::from_millis(3);
            let headers = answers[i % answers.len()];
            pacer.observe(now, ServerQuota::from_headers(&headers, None), None);
            match pacer.acquire(now, Ask::new(AttemptKind::First)) {
                Admit::Now(grant) => {
                    let _ = pacer.record(now, grant, Feedback::Accepted);
                }
                Admit::Wait { ticket, .. } | Admit::Queued { ticket, .. } => {
                    let _ = pacer.cancel(now, ticket);
                }
                Admit::Reject(_) => {}
            }
        }
    });
    assert_eq!(allocated, 0);
}
