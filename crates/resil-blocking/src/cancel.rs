//! Prompt cancelling of a hedged attempt. Each attempt of a hedged call runs on a thread of its
//! own, blocked in ureq's socket IO, which has no way to be told to stop. The thread carries
//! its attempt's [`AttemptCancel`]; the default transport's sockets register with it at every
//! read and write, and cancelling shuts the registered socket down, so the blocked read ends
//! at once and the connection closes (it is never pooled with a response half read).
//! A transport of the user's own runs its cancelled attempts to their timeout.

use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use resil_core::Attempt;

/// One attempt's cancel switch, shared by the call and the attempt's thread.
#[derive(Debug, Default)]
pub(crate) struct AttemptCancel {
    cancelled: AtomicBool,
    /// The socket the attempt last used.
    socket: Mutex<Option<Weak<TcpStream>>>,
}

impl AttemptCancel {
    /// Stops the attempt: its socket is shut down now, and any it uses later at once.
    pub(crate) fn cancel(&self) {
        let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        self.cancelled.store(true, Ordering::Release);
        if let Some(stream) = socket.take().and_then(|s| s.upgrade()) {
            // Already closed by the peer is as good.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn watch(&self, stream: &Arc<TcpStream>) -> io::Result<()> {
        let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if self.cancelled.load(Ordering::Acquire) {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(io::Error::other("the attempt was cancelled"));
        }
        let same = socket
            .as_ref()
            .is_some_and(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(stream)));
        if !same {
            *socket = Some(Arc::downgrade(stream));
        }
        Ok(())
    }
}

thread_local! {
    /// The cancel switch of the attempt this thread runs, if it runs a hedged one.
    static CURRENT: RefCell<Option<Arc<AttemptCancel>>> = const { RefCell::new(None) };
}

/// Makes `cancel` this thread's switch: the thread runs that one attempt and then ends.
pub(crate) fn enter(cancel: Arc<AttemptCancel>) {
    CURRENT.with_borrow_mut(|current| *current = Some(cancel));
}

/// Registers `stream` with this thread's attempt, if it has a switch; fails (and shuts the
/// socket down) once the attempt is cancelled.
#[inline]
pub(crate) fn watch(stream: &Arc<TcpStream>) -> io::Result<()> {
    CURRENT.with_borrow(|current| match current {
        None => Ok(()),
        Some(cancel) => cancel.watch(stream),
    })
}

/// The switches of a hedged call's attempts still out; whatever is out when the call ends
/// (answered, failed or unwound) is cancelled.
#[derive(Debug, Default)]
pub(crate) struct Outstanding(Vec<(Attempt, Arc<AttemptCancel>)>);

impl Outstanding {
    pub(crate) fn push(&mut self, attempt: Attempt, cancel: Arc<AttemptCancel>) {
        self.0.push((attempt, cancel));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes `attempt` off the list; whether it was on it.
    pub(crate) fn answered(&mut self, attempt: &Attempt) -> bool {
        let before = self.0.len();
        self.0.retain(|(a, _)| a != attempt);
        self.0.len() != before
    }

    /// Cancels `attempt` and takes it off the list.
    pub(crate) fn cancel(&mut self, attempt: &Attempt) {
        self.0.retain(|(a, cancel)| {
            let hit = a == attempt;
            if hit {
                cancel.cancel();
            }
            !hit
        });
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        for (_, cancel) in self.0.drain(..) {
            cancel.cancel();
        }
    }
}
