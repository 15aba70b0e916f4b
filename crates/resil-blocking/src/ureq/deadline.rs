//! The attempt's deadline, carried to ureq's connectors and body reader: ureq offers no
//! per-request hook into its connections, and its own `timeout_global` costs about as much
//! as the rest of an attempt's retry logic.

use std::cell::Cell;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use ::ureq::unversioned::transport::{
    ConnectionDetails, Connector, NextTimeout, time::Duration as UreqDuration,
};

/// The deadline of the attempt running on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    /// None runs, or it has no deadline.
    None,
    /// It may take this long, counted from its first resolve, connect, write or read: that
    /// one reads the clock anyway, so the attempt's start costs no reading of its own
    /// (~20 ns here). Building the request and taking a pooled connection come before it.
    Budget(Duration),
    /// It ends then.
    At(Instant),
}

impl Deadline {
    /// A budget turned into the instant it ends, counted from now.
    pub(super) fn started(self) -> Deadline {
        match self {
            Deadline::Budget(budget) => Instant::now()
                .checked_add(budget)
                .map_or(Deadline::None, Deadline::At),
            fixed => fixed,
        }
    }
}

thread_local! {
    /// The deadline of the attempt running on this thread. ureq offers no per-request hook
    /// into its connections, and a blocking attempt runs wholly on the calling thread (its
    /// body on whichever thread reads it, which [`DeadlineReader`] covers).
    static ATTEMPT_DEADLINE: Cell<Deadline> = const { Cell::new(Deadline::None) };
}

/// Sets this thread's attempt deadline until dropped, then puts back the one before.
pub(super) struct AttemptDeadline {
    outer: Deadline,
}

impl AttemptDeadline {
    pub(super) fn enter(deadline: Deadline) -> AttemptDeadline {
        AttemptDeadline {
            outer: ATTEMPT_DEADLINE.with(|d| d.replace(deadline)),
        }
    }

    /// The attempt's deadline as an instant, its clock started now if no IO started it.
    pub(super) fn settled(&self) -> Deadline {
        ATTEMPT_DEADLINE.with(Cell::get).started()
    }

    /// `timeout` shortened to this thread's attempt deadline, which it then names as the
    /// reason when it is the nearer.
    pub(super) fn bound(timeout: NextTimeout) -> NextTimeout {
        let left = ATTEMPT_DEADLINE.with(|cell| match cell.get() {
            Deadline::None => None,
            Deadline::Budget(budget) => {
                cell.set(Deadline::Budget(budget).started());
                Some(budget)
            }
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        });
        let Some(left) = left else {
            return timeout;
        };
        if UreqDuration::Exact(left) < timeout.after {
            NextTimeout {
                after: UreqDuration::Exact(left),
                reason: ::ureq::Timeout::Global,
                ..timeout
            }
        } else {
            timeout
        }
    }
}

impl Drop for AttemptDeadline {
    fn drop(&mut self) {
        ATTEMPT_DEADLINE.with(|d| d.set(self.outer));
    }
}

/// ureq's body reader, read under its attempt's deadline.
pub(super) struct DeadlineReader {
    pub(super) inner: ::ureq::BodyReader<'static>,
    pub(super) deadline: Deadline,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _scope = AttemptDeadline::enter(self.deadline);
        self.inner.read(buf).map_err(malformed_as_invalid_data)
    }
}

/// ureq's body reader fails with `io::ErrorKind::Other` around its own error; a body ureq
/// found malformed (a chunk length that is no number, say) is `InvalidData`, so it is read as
/// a protocol error and not retried.
fn malformed_as_invalid_data(e: io::Error) -> io::Error {
    let malformed = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<::ureq::Error>())
        .is_some_and(|inner| matches!(inner, ::ureq::Error::Protocol(_)));
    if malformed {
        io::Error::new(io::ErrorKind::InvalidData, e)
    } else {
        e
    }
}

/// Bounds connecting (TCP and TLS) by the attempt's deadline.
#[derive(Debug)]
pub(super) struct DeadlineConnector<C>(pub(super) C);

impl<C: Connector> Connector for DeadlineConnector<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ::ureq::Error> {
        let bounded = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: AttemptDeadline::bound(details.timeout),
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        // ureq names a connect that outlived the whole budget by the budget's reason (ours is
        // `Global`), which reads as "may have been sent". Nothing is sent while connecting.
        self.0.connect(&bounded, chained).map_err(|e| match e {
            ::ureq::Error::Timeout(_) => ::ureq::Error::Timeout(::ureq::Timeout::Connect),
            other => other,
        })
    }
}
