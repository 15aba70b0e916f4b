//! The framing check on every connection: ureq-proto (0.7, the latest) reads a chunk size
//! with `u64::from_str_radix` after trimming it, so it takes `+5`, ` 5` and `00000000000000005`
//! for 5, which RFC 9112 forbids and a stricter parser in front of the same server reads
//! another way. resil-core's [`Http1Framing`] is fed the plaintext each connection moves
//! (this stage wraps TLS too) and fails the read that brings a bad size line.

use std::io;

use ::ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport,
};
use resil_core::Http1Framing;

/// Wraps each connection in a [`FramedTransport`].
#[derive(Debug)]
pub(super) struct FramingCheck;

impl<In: Transport> Connector<In> for FramingCheck {
    type Out = FramedTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ::ureq::Error> {
        Ok(chained.map(|inner| FramedTransport {
            inner,
            framing: Http1Framing::new(),
        }))
    }
}

/// A connection whose responses' framing is checked as their bytes arrive.
#[derive(Debug)]
pub(super) struct FramedTransport<T> {
    inner: T,
    framing: Http1Framing,
}

impl<T: Transport> FramedTransport<T> {
    /// Checks what a wait for input added after the `before` bytes already there.
    fn check_input(&mut self, before: usize) -> Result<(), ::ureq::Error> {
        if self.framing.is_unchecked() {
            return Ok(());
        }
        let input = self.inner.buffers().input();
        let new = input.get(before..).unwrap_or_default();
        self.framing
            .received(new)
            .map_err(|e| ::ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
    }
}

impl<T: Transport> Transport for FramedTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> Result<(), ::ureq::Error> {
        if !self.framing.is_unchecked() {
            let output = self.inner.buffers().output();
            self.framing.sent(output.get(..amount).unwrap_or(output));
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ::ureq::Error> {
        let before = self.inner.buffers().input().len();
        let more = self.inner.maybe_await_input(timeout)?;
        self.check_input(before)?;
        Ok(more)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ::ureq::Error> {
        let before = self.inner.buffers().input().len();
        let more = self.inner.await_input(timeout)?;
        self.check_input(before)?;
        Ok(more)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
