//! resil's wrapper of every ureq connection (above TLS): socket timeouts set again only when
//! they change by more than the kernel's tick, and the check of how responses are framed
//! (see [`framing`](super::framing)).

use std::time::Duration;

use ::ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport, time::Duration as UreqDuration,
};

use resil_core::Http1Framing;

use super::deadline::AttemptDeadline;
use super::framing;

/// How far a socket timeout may be from the attempt's time left before it is set again. The
/// kernel rounds `SO_RCVTIMEO`/`SO_SNDTIMEO` up to its tick (1-10 ms) anyway.
pub(super) const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// ureq sets a socket timeout (one `setsockopt`) whenever the time left differs from the one
/// in force, which with a deadline on every attempt is every read and every write. This
/// connector wraps each connection (TLS included) so a timeout within [`TIMEOUT_SLACK`] of the
/// one in force is passed down unchanged, and ureq keeps the socket as it is.
#[derive(Debug)]
pub(super) struct SteadyTimeouts;

impl<In: Transport> Connector<In> for SteadyTimeouts {
    type Out = SteadyTimeoutTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ::ureq::Error> {
        Ok(chained.map(|inner| SteadyTimeoutTransport {
            inner,
            last: None,
            framing: Http1Framing::new(),
        }))
    }
}

#[derive(Debug)]
pub(super) struct SteadyTimeoutTransport<T> {
    inner: T,
    /// The time left last passed down.
    last: Option<UreqDuration>,
    framing: Http1Framing,
}

impl<T> SteadyTimeoutTransport<T> {
    /// `timeout`, or, if its time left is within [`TIMEOUT_SLACK`] of the last one passed
    /// down, that one. The per-read and per-write limits pass through: they are constant, and
    /// a TLS write may need to read below.
    pub(super) fn steady(&mut self, timeout: NextTimeout) -> NextTimeout {
        match (self.last, timeout.after) {
            (Some(UreqDuration::Exact(last)), UreqDuration::Exact(now))
                if !now.is_zero() && last.abs_diff(now) <= TIMEOUT_SLACK =>
            {
                NextTimeout {
                    after: UreqDuration::Exact(last),
                    ..timeout
                }
            }
            (_, now) => {
                self.last = Some(now);
                timeout
            }
        }
    }
}

impl<T: Transport> Transport for SteadyTimeoutTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> Result<(), ::ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        framing::sending(&mut self.framing, self.inner.buffers(), amount);
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ::ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        let before = self.inner.buffers().input().len();
        let more = self.inner.maybe_await_input(timeout)?;
        framing::received(&mut self.framing, self.inner.buffers(), before)?;
        Ok(more)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ::ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        let before = self.inner.buffers().input().len();
        let more = self.inner.await_input(timeout)?;
        framing::received(&mut self.framing, self.inner.buffers(), before)?;
        Ok(more)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
