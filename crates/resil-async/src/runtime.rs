//! [`Runtime`]: what the async client needs from an executor's world — a clock, a timer, and
//! a default transport. resil-tokio and resil-isahc each provide one.

use std::sync::Arc;

use resil_core::Instant;

use crate::transport::{AsyncTransport, BoxError, TransportSettings};

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
