//! A `no_std` consumer of resil-core: runs one retry loop on a fake clock.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::time::Duration;

use resil_core::{
    Action, Input, Instant, Method, RequestInfo, ResponseHead, RetryAfter, RetryMachine,
    RetryPolicy,
};

/// A bump allocator over a static arena: enough for a policy, never frees.
struct Arena {
    memory: UnsafeCell<[u8; 4096]>,
    used: UnsafeCell<usize>,
}

// SAFETY: the smoke crate is single-threaded by contract.
unsafe impl Sync for Arena {}

// SAFETY: hands out disjoint, aligned slices of the arena; null when full.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            let used = &mut *self.used.get();
            let base = self.memory.get() as usize;
            let start = (base + *used).next_multiple_of(layout.align());
            let end = start + layout.size();
            if end > base + 4096 {
                return core::ptr::null_mut();
            }
            *used = end - base;
            start as *mut u8
        }
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Arena = Arena {
    memory: UnsafeCell::new([0; 4096]),
    used: UnsafeCell::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Runs 503 (Retry-After: 1), 503, 200 through the machine; returns the attempt that
/// succeeded, or 0.
#[unsafe(no_mangle)]
pub extern "C" fn resil_smoke_run(seed: u64) -> u32 {
    let Ok(policy) = RetryPolicy::builder().build() else {
        return 0;
    };
    let mut now = Instant::ZERO;
    let mut machine = RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, seed);
    let mut statuses = [503u16, 503, 200].into_iter();
    loop {
        match machine.poll_action() {
            Action::Send { attempt, .. } => {
                let status = statuses.next().unwrap_or(200);
                let head =
                    ResponseHead::new(status).with_retry_after(RetryAfter::parse(b"1"), None);
                now = now + Duration::from_millis(3);
                machine.handle_input(now, Input::Response { attempt, head });
            }
            Action::Sleep { until } => {
                now = until;
                machine.handle_input(now, Input::Timer);
            }
            // Only hedging cancels, and this policy does not hedge; nothing is out to cancel.
            Action::Cancel { .. } => {}
            Action::Done { attempt } => return attempt.number(),
            Action::Fail(_) => return 0,
        }
    }
}
