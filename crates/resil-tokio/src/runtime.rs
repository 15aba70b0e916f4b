//! [`Tokio`]: resil's async client on tokio's clock and timer.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
    /// A timer a finished wait left registered with its runtime (which one), for the next
    /// wait on this thread to move instead of registering a new one.
    static SPARE: RefCell<Option<(tokio::runtime::Id, Pin<Box<tokio::time::Sleep>>)>> =
        const { RefCell::new(None) };
}

/// [`Tokio`]'s timer: `tokio::time::Sleep`, recycled per thread. Every attempt waits on its
/// deadline and most finish long before it. A fresh `Sleep` per attempt takes the timer
/// wheel's lock to register and again to deregister; a loopback request without that timer
/// at all took ~2 % less CPU. Moving a registered timer to a later deadline is one atomic
/// update, and the wheel looks at it again only when its old deadline passes.
pub struct Timer {
    /// `None` only once dropped.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    runtime: Option<tokio::runtime::Id>,
    /// Polled, so registered with the runtime's timer: only such a timer is worth keeping.
    armed: bool,
}

impl Timer {
    fn new(at: tokio::time::Instant) -> Timer {
        let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        let spare = SPARE
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            // Another runtime's timer would not fire while this one waits. An elapsed one
            // may belong to a runtime that shut down under an id since reused: shutting
            // down fires every timer, and polling one of those would panic.
            .filter(|(id, sleep)| Some(*id) == runtime && !sleep.is_elapsed());
        let sleep = match spare {
            Some((_, mut sleep)) => {
                sleep.as_mut().reset(at);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(at)),
        };
        Timer {
            sleep: Some(sleep),
            runtime,
            armed: false,
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.armed = true;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let (Some(runtime), Some(sleep)) = (self.runtime, self.sleep.take()) else {
            return;
        };
        if !self.armed || sleep.is_elapsed() {
            return;
        }
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                spare.get_or_insert((runtime, sleep));
            }
        });
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("deadline", &self.sleep.as_ref().map(|s| s.deadline()))
            .finish_non_exhaustive()
    }
}
