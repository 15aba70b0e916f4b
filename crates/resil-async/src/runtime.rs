//! [`Runtime`]: what the async client needs from an executor's world — a clock, a timer, and
//! a default transport. resil-tokio and resil-isahc each provide one.

use std::sync::Arc;
use std::time::Duration;

use resil_core::Instant;

use crate::transport::{AsyncTransport, TransportSettings};
use crate::{Body, BoxError, BoxFuture};

/// A runtime for [`Client`](crate::Client): time and the default transport. Implemented by
/// zero-sized marker types (`resil_tokio::Tokio`, `resil_isahc::AsyncIo`).
pub trait Runtime: Send + Sync + 'static {
    /// Now, on resil's process-wide origin (see [`Instant::from_std`]); a runtime with a
    /// virtual clock (tokio's paused time) reports that clock.
    fn now() -> Instant;
    /// The runtime's timer future (its output is ignored). A concrete type, so a wait costs
    /// no allocation.
    type Sleep: Future + Send + 'static;
    /// Completes at `at` (at once if it has passed).
    fn sleep_until(at: Instant) -> Self::Sleep;
    /// The transport used when the builder was given none.
    fn default_transport(settings: &TransportSettings)
    -> Result<Arc<dyn AsyncTransport>, BoxError>;
}

/// A body's deadlines on runtime `R`'s clock and timer.
impl Body {
    /// The same body, failing with [`BodyDeadlinePassed`](crate::BodyDeadlinePassed) if it is still waiting for data at
    /// `deadline` on runtime `R`'s clock. The timer is made only when the body first has to
    /// wait, so a body that arrives with its head costs none.
    pub fn with_deadline<R: Runtime>(self, deadline: Instant) -> Body {
        self.with_read_timeout::<R>(deadline, None)
    }

    /// [`with_deadline`](Self::with_deadline) that also fails with [`ReadTimedOut`](crate::ReadTimedOut) after
    /// `read_timeout` without data (each wait for data counts on its own).
    pub fn with_read_timeout<R: Runtime>(
        mut self,
        deadline: Instant,
        read_timeout: Option<Duration>,
    ) -> Body {
        self.set_deadline::<R>(deadline, read_timeout);
        self
    }

    /// [`with_read_timeout`](Self::with_read_timeout) in place, for a body inside a response.
    pub(crate) fn set_deadline<R: Runtime>(&mut self, deadline: Instant, gap: Option<Duration>) {
        self.set_deadline_on(deadline, gap, R::now, sleep_boxed::<R>);
    }
}

/// `R`'s timer, boxed for a body that does not know its runtime.
fn sleep_boxed<R: Runtime>(at: Instant) -> BoxFuture<'static, ()> {
    let sleep = R::sleep_until(at);
    Box::pin(async move {
        sleep.await;
    })
}
