//! [`Tokio`]: resil's async client on tokio's clock and timer.

use std::sync::Arc;

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

    type Sleep = tokio::time::Sleep;

    fn sleep_until(at: Instant) -> tokio::time::Sleep {
        tokio::time::sleep_until(to_tokio(at))
    }

    fn default_transport(
        settings: &TransportSettings,
    ) -> Result<Arc<dyn AsyncTransport>, BoxError> {
        Ok(Arc::new(HyperTransport::new(settings)?))
    }
}
