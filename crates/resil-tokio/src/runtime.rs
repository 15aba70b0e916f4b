//! [`Tokio`]: resil's async client on tokio's clock and timer.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use resil_async::{AsyncTransport, BoxError, Runtime, TransportSettings};
use resil_core::Instant;

use crate::HyperTransport;

/// The tokio runtime for [`resil_async::Client`]: `tokio::time` (so paused time in tests
/// drives backoff, `Retry-After` and deadlines) and [`HyperTransport`] by default. tokio's
/// timer has 1 ms resolution, so a non-zero wait below 1 ms takes about 1 ms; zero waits are
/// never slept.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

/// Now on tokio's clock, on resil's process-wide origin.
pub(crate) fn now() -> Instant {
    Instant::from_std(tokio::time::Instant::now().into_std())
}

/// `at` on tokio's clock.
pub(crate) fn to_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at.to_std())
}

impl Runtime for Tokio {
    fn now() -> Instant {
        now()
    }

    type Sleep = Timer;

    fn sleep_until(at: Instant) -> Timer {
        Timer::new(to_tokio(at))
    }

    fn default_transport(
        settings: &TransportSettings,
    ) -> Result<Arc<dyn AsyncTransport>, BoxError> {
        Ok(Arc::new(HyperTransport::new(settings)?))
    }
}

std::thread_local! {
    /// A timer a finished wait left registered with its runtime, for the next wait on this
    /// thread to take over instead of registering a new one.
    static SPARE: RefCell<Option<Armed>> = const { RefCell::new(None) };
}

/// [`Tokio`]'s timer: a `tokio::time::Sleep`, recycled per thread. Every attempt waits on its
/// deadline and most finish long before it. A fresh `Sleep` per attempt takes the timer
/// wheel's lock to register and again to deregister; a loopback request without that timer
/// at all took ~2 % less CPU.
///
/// A finished wait leaves its timer registered in a per-thread slot, and the next wait on
/// that thread takes it over. A timer set for an earlier deadline than the new wait's is left
/// as it is: when it fires, the wait moves it on to its own deadline. As attempts keep
/// finishing, that happens about once per attempt timeout, not once per attempt. While the
/// same task keeps the timer, its waker stays registered and the timer is not polled again.
///
/// The spare holds a reference to its runtime's handle (and so its driver) until the
/// thread's next call takes it, or the thread ends. On paused time it is a pending timer: a runtime
/// with nothing else to do auto-advances its clock to that deadline (at most the last
/// attempt's timeout ahead). A spare set for earlier than the next attempt's deadline fires
/// early once, and that attempt then waits on to its own deadline.
pub struct Timer {
    deadline: tokio::time::Instant,
    /// Taken over (or made) at the first poll.
    armed: Option<Armed>,
}

/// A timer in use, and what it is known to be registered with.
struct Armed {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The runtime the sleep belongs to (`None` outside one: tokio panics first).
    runtime: Option<tokio::runtime::Id>,
    /// The waker the sleep holds, while it holds it.
    waker: Option<WakerOf>,
}

/// Which task a waker wakes: tokio's task id and the waker's own identity. Equal values for
/// two live wakers wake the same task (`Waker::will_wake`'s test). The registered waker keeps
/// its task alive, so no other task can come to have its address; and a task never changes
/// runtime.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerOf {
    task: tokio::task::Id,
    data: usize,
    vtable: usize,
}

impl WakerOf {
    /// `None` outside a tokio task (`block_on`'s own future): such a wait always polls.
    fn of(waker: &Waker) -> Option<WakerOf> {
        Some(WakerOf {
            task: tokio::task::try_id()?,
            data: waker.data() as usize,
            vtable: std::ptr::from_ref(waker.vtable()) as usize,
        })
    }
}

impl Timer {
    fn new(deadline: tokio::time::Instant) -> Timer {
        Timer {
            deadline,
            armed: None,
        }
    }
}

impl Armed {
    /// This thread's spare if it can serve a wait polled with `waker`, else a new timer.
    fn take_or_make(deadline: tokio::time::Instant, waker: Option<WakerOf>) -> Armed {
        let spare = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.take())
            .ok()
            .flatten();
        if let Some(spare) = spare {
            // Still holding this very task's waker (not fired), so it belongs to the running
            // runtime.
            if spare.waker.is_some() && spare.waker == waker && !spare.sleep.is_elapsed() {
                return spare;
            }
            let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
            // Another runtime's timer would not fire while this one waits. An elapsed one
            // may belong to a runtime that shut down under an id since reused: shutting down
            // fires every timer, and polling one of those would panic.
            if spare.runtime.is_some() && spare.runtime == runtime && !spare.sleep.is_elapsed() {
                return spare;
            }
            return Armed::new(deadline, runtime);
        }
        Armed::new(
            deadline,
            tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
        )
    }

    fn new(deadline: tokio::time::Instant, runtime: Option<tokio::runtime::Id>) -> Armed {
        Armed {
            // Outside a runtime this panics with tokio's own message, as any tokio timer does.
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            runtime,
            waker: None,
        }
    }

    /// Polls toward `deadline`; `waker` is `cx`'s, as [`WakerOf::of`] reads it.
    fn poll_until(
        &mut self,
        deadline: tokio::time::Instant,
        waker: Option<WakerOf>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if self.sleep.deadline() > deadline {
            // Set for later than this wait allows: move it (it keeps its waker).
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            if self.sleep.is_elapsed() {
                if self.sleep.deadline() >= deadline {
                    return Poll::Ready(());
                }
                // It fired at the earlier deadline it came with; firing took its waker.
                self.sleep.as_mut().reset(deadline);
                self.waker = None;
            }
            if waker.is_some() && waker == self.waker {
                return Poll::Pending;
            }
            // Unconstrained: out of tokio's task budget, a `Sleep` returns `Pending` without
            // taking the waker, and this one must hold it.
            let sleep = std::pin::pin!(tokio::task::coop::unconstrained(self.sleep.as_mut()));
            if sleep.poll(cx).is_pending() {
                self.waker = waker;
                return Poll::Pending;
            }
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (deadline, waker) = (this.deadline, WakerOf::of(cx.waker()));
        this.armed
            .get_or_insert_with(|| Armed::take_or_make(deadline, waker))
            .poll_until(deadline, waker, cx)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Some(armed) = self.armed.take() else {
            return;
        };
        if armed.runtime.is_none() || armed.sleep.is_elapsed() {
            return;
        }
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                spare.get_or_insert(armed);
            }
        });
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
