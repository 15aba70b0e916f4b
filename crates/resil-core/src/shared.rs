//! [`Shared`]: how several retry machines reach one breaker, budget or limiter.

/// A lock around a value shared by many calls, such as one [`CircuitBreaker`](crate::CircuitBreaker)
/// per backend. The machine holds it only for the few nanoseconds of one breaker, budget or
/// limiter operation, never across a wait.
///
/// With feature `std` it is implemented for `std::sync::Mutex` (a poisoned lock is still
/// used: every machine's state stays consistent between operations), and a `Mutex` around any
/// limiter is also a `Shared<dyn Admission + Send>`, so a caller can hold limiters of several
/// kinds alike. In `no_std`, implement it for your platform's lock, e.g. a critical-section
/// mutex.
pub trait Shared<T: ?Sized> {
    /// Runs `f` with exclusive access to the value.
    fn with_mut(&self, f: &mut dyn FnMut(&mut T));
}

#[cfg(feature = "std")]
impl<T> Shared<T> for std::sync::Mutex<T> {
    fn with_mut(&self, f: &mut dyn FnMut(&mut T)) {
        let mut guard = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }
}

#[cfg(feature = "std")]
impl<L> Shared<dyn crate::Admission + Send> for std::sync::Mutex<L>
where
    L: crate::Admission + Send + 'static,
{
    fn with_mut(&self, f: &mut dyn FnMut(&mut (dyn crate::Admission + Send + 'static))) {
        let mut guard = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut *guard);
    }
}
