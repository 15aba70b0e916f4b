//! The TCP connection under the default transport. It does what ureq's own does, with one
//! difference: checking that a pooled connection is still open, which ureq does before every
//! request on a reused connection, is one non-blocking peek (`recv` with `MSG_PEEK |
//! MSG_DONTWAIT`) instead of three system calls (ureq switches the socket to non-blocking
//! mode, reads, and switches it back). On loopback that cut the transport's CPU per request
//! by about a tenth (`blocking_loopback`: 0.99× bare ureq before, 0.89× after).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};

/// The least time one of several resolved addresses gets to answer.
pub(super) const MIN_ADDRESS_SHARE: Duration = Duration::from_millis(10);

/// Opens plain TCP connections; TLS and proxies chain onto it as they do onto ureq's own.
#[derive(Debug, Default)]
pub(crate) struct TcpConnector;

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, TcpConnection>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(proxied) = chained {
            // A proxy connector opened the connection already.
            return Ok(Some(Either::A(proxied)));
        }
        let stream = connect_first(details)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let stream = Arc::new(stream);
        crate::cancel::watch(&stream)?;
        // Lets `Agent::shutdown` interrupt IO blocked on this socket in another thread.
        let handle: Weak<dyn ShutdownHandle> = Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(handle)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TcpConnection {
            stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
        })))
    }
}

/// Connects to the first resolved address that answers. Each gets an equal share of the time
/// left (at least [`MIN_ADDRESS_SHARE`]), so one address that never answers does not use up
/// the budget of those after it.
pub(super) fn connect_first(details: &ConnectionDetails<'_>) -> Result<TcpStream, ureq::Error> {
    // The budget and when it started, if there is one.
    let budget = time_left(&details.timeout)?.map(|budget| (budget, Instant::now()));
    let addrs = &details.addrs[..];
    let mut last_error = None;
    for (tried, addr) in addrs.iter().enumerate() {
        let share = match budget {
            Some((budget, started)) => {
                let left = budget.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(details.timeout.reason));
                }
                let untried = u32::try_from(addrs.len() - tried).unwrap_or(u32::MAX);
                Some((left / untried).max(MIN_ADDRESS_SHARE).min(left))
            }
            None => None,
        };
        let connected = match share {
            Some(share) => TcpStream::connect_timeout(addr, share),
            None => TcpStream::connect(addr),
        };
        match connected {
            Ok(stream) => return Ok(stream),
            Err(e) if is_timeout(&e) => {
                last_error = Some(ureq::Error::Timeout(ureq::Timeout::Connect))
            }
            Err(e) if concerns_only_this_address(&e) => last_error = Some(e.into()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to").into()
    }))
}

/// A failure after which the next resolved address may still answer: this one refused, or
/// the network has no route to it (an IPv6 address on a host without IPv6, say).
pub(super) fn concerns_only_this_address(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

/// Some platforms report a socket timeout as `WouldBlock`.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The time `timeout` leaves (`None`: no limit); none left is a timeout now.
pub(super) fn time_left(timeout: &NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_not_happening() {
        Ok(None)
    } else if timeout.after.is_zero() {
        Err(ureq::Error::Timeout(timeout.reason))
    } else {
        Ok(Some(*timeout.after))
    }
}

/// One plain TCP connection.
pub(crate) struct TcpConnection {
    /// Shared (weakly) with the agent's shutdown handle.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// The socket timeouts in force: each is set only when it changes.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for TcpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnection")
            .field("peer", &self.stream.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Sets a socket timeout through `set` unless `wanted` is already in force (`in_force`).
pub(super) fn keep_timeout(
    in_force: &mut Option<Duration>,
    wanted: Option<Duration>,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    if *in_force == wanted {
        return Ok(());
    }
    match set(wanted) {
        Ok(()) => *in_force = wanted,
        // macOS refuses a new timeout once the peer has closed with request bytes unread;
        // the response may still be readable, so let the read report what happened.
        Err(e) if cfg!(target_os = "macos") && e.kind() == io::ErrorKind::InvalidInput => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `timeout`'s time left (`None`: no limit), put on the socket through `set` unless it is
/// already in force (`in_force`).
pub(super) fn apply_time_left(
    timeout: &NextTimeout,
    in_force: &mut Option<Duration>,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> Result<Option<Duration>, ureq::Error> {
    let limit = time_left(timeout)?;
    keep_timeout(in_force, limit, set)?;
    Ok(limit)
}

pub(super) fn io_failure(e: io::Error, reason: ureq::Timeout) -> ureq::Error {
    if is_timeout(&e) {
        ureq::Error::Timeout(reason)
    } else {
        ureq::Error::Io(e)
    }
}

impl Transport for TcpConnection {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        crate::cancel::watch(&self.stream)?;
        let timeout = timeout.for_write();
        let mut stream = &*self.stream;
        apply_time_left(&timeout, &mut self.write_timeout, |t| {
            stream.set_write_timeout(t)
        })?;
        let output = &self.buffers.output()[..amount];
        stream
            .write_all(output)
            .map_err(|e| io_failure(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        crate::cancel::watch(&self.stream)?;
        let timeout = timeout.for_read();
        let mut stream = &*self.stream;
        let limit = apply_time_left(&timeout, &mut self.read_timeout, |t| {
            stream.set_read_timeout(t)
        })?;
        let input = self.buffers.input_append_buf();
        let mut interrupted_at = None;
        let amount = loop {
            match stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // Without a limit a signal is the caller's way to stop the read.
                    let Some(limit) = limit else {
                        return Err(e.into());
                    };
                    // Linux does not restart a read under `SO_RCVTIMEO` after a signal: read
                    // again with what is left, counted from the first interruption (the read
                    // itself took no clock reading, so the wait is at most twice the limit).
                    let since = *interrupted_at.get_or_insert_with(Instant::now);
                    let left = limit.saturating_sub(since.elapsed());
                    if left.is_zero() {
                        return Err(ureq::Error::Timeout(timeout.reason));
                    }
                    keep_timeout(&mut self.read_timeout, Some(left), |t| {
                        stream.set_read_timeout(t)
                    })?;
                }
                read => break read.map_err(|e| io_failure(e, timeout.reason))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        still_open(&self.stream)
    }
}

/// Whether a pooled connection can carry another request. Only "nothing to read yet" means
/// yes: bytes nobody asked for, the end of the stream or an error each mean no.
#[cfg(unix)]
pub(super) fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::uninit()];
    let peeked = socket2::SockRef::from(stream)
        .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Whether a pooled connection can carry another request (see the Unix version); without a
/// per-call non-blocking flag the socket is switched for the probe.
#[cfg(not(unix))]
pub(super) fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let peeked = stream.peek(&mut [0]);
    stream.set_nonblocking(false).is_ok()
        && matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;
    use std::time::Duration;

    use ureq::unversioned::resolver::{DefaultResolver, Resolver};
    use ureq::unversioned::transport::time::{Duration as UreqDuration, Instant as UreqInstant};
    use ureq::unversioned::transport::{ConnectionDetails, NextTimeout};

    use super::connect_first;

    /// Connects to `addrs` in order with `timeout` left.
    fn connect(
        addrs: &[SocketAddr],
        timeout: UreqDuration,
    ) -> Result<std::net::TcpStream, ureq::Error> {
        let resolver = DefaultResolver::default();
        let mut resolved = resolver.empty();
        for addr in addrs {
            resolved.push(*addr);
        }
        let config = ureq::Agent::config_builder().build();
        let uri: http::Uri = "http://127.0.0.1/".parse().unwrap();
        let details = ConnectionDetails {
            uri: &uri,
            addrs: resolved,
            config: &config,
            request_level: false,
            resolver: &resolver,
            now: UreqInstant::now(),
            timeout: NextTimeout {
                after: timeout,
                reason: ureq::Timeout::Connect,
                per_read: None,
                per_write: None,
            },
            current_time: Arc::new(UreqInstant::now),
            run_connector: Arc::new(|_| Err(ureq::Error::ConnectionFailed)),
            register_shutdown: Arc::new(|_| Ok(())),
        };
        connect_first(&details)
    }

    #[test]
    fn a_refused_address_falls_through_to_the_next_one() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = resil_tests::refused_addr();
        let stream = connect(
            &[refused, live.local_addr().unwrap()],
            UreqDuration::Exact(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), live.local_addr().unwrap());
        // Without a limit, too.
        connect(
            &[refused, live.local_addr().unwrap()],
            UreqDuration::NotHappening,
        )
        .unwrap();
    }

    #[test]
    fn only_refusals_are_the_last_refusal_and_no_time_left_is_a_timeout() {
        let refused = resil_tests::refused_addr();
        let err = connect(&[refused], UreqDuration::Exact(Duration::from_secs(5))).unwrap_err();
        assert!(
            matches!(&err, ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        let err = connect(&[], UreqDuration::NotHappening).unwrap_err();
        assert!(matches!(err, ureq::Error::Io(_)), "{err:?}");
        let err = connect(&[refused], UreqDuration::Exact(Duration::ZERO)).unwrap_err();
        assert!(
            matches!(err, ureq::Error::Timeout(ureq::Timeout::Connect)),
            "{err:?}"
        );
    }
}
