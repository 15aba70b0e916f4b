//! [`AsyncIo`]: the real clock and async-io's timers, under any executor.

use std::sync::Arc;

use resil_async::{AsyncTransport, BoxError, Runtime, TransportSettings};
use resil_core::Instant;

use crate::IsahcTransport;

/// The runtime-agnostic runtime for [`resil_async::Client`]: `std::time::Instant` for the
/// clock, `async_io::Timer` for waits, [`IsahcTransport`] by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    fn now() -> Instant {
        Instant::now()
    }

    type Sleep = async_io::Timer;

    fn sleep_until(at: Instant) -> async_io::Timer {
        async_io::Timer::at(at.to_std())
    }

    fn default_transport(
        settings: &TransportSettings,
    ) -> Result<Arc<dyn AsyncTransport>, BoxError> {
        Ok(Arc::new(IsahcTransport::new(settings)?))
    }
}
