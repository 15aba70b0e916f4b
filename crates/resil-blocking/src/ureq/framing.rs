//! The framing check on every connection: ureq-proto (0.7, the latest) reads a chunk size
//! with `u64::from_str_radix` after trimming it, so it takes `+5`, ` 5` and `00000000000000005`
//! for 5, which RFC 9112 forbids and a stricter parser in front of the same server reads
//! another way. resil-core's [`Http1Framing`] is fed the plaintext each connection moves
//! (resil's wrapper of every connection sits above TLS, see
//! [`SteadyTimeoutTransport`](super::timeouts::SteadyTimeoutTransport)) and fails the read
//! that brings a bad size line.

use std::io;

use ::ureq::unversioned::transport::Buffers;
use resil_core::Http1Framing;

/// Feeds the check what a transmit of `amount` bytes of `buffers`' output sends.
pub(super) fn sending(framing: &mut Http1Framing, buffers: &mut dyn Buffers, amount: usize) {
    if !framing.is_unchecked() {
        let output = buffers.output();
        framing.sent(output.get(..amount).unwrap_or(output));
    }
}

/// Checks what a wait for input added to `buffers` after the `before` bytes already there.
pub(super) fn received(
    framing: &mut Http1Framing,
    buffers: &mut dyn Buffers,
    before: usize,
) -> Result<(), ::ureq::Error> {
    if framing.is_unchecked() {
        return Ok(());
    }
    let input = buffers.input();
    let new = input.get(before..).unwrap_or_default();
    framing
        .received(new)
        .map_err(|e| ::ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
}
