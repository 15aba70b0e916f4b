//! [`Shared`]: how several retry machines reach one breaker or budget.

/// A lock around a value shared by many calls, such as one [`CircuitBreaker`](crate::CircuitBreaker)
/// per backend. The machine holds it only for the few nanoseconds of one breaker or budget
/// operation, never across a wait.
///
/// With feature `std` it is implemented for [`std::sync::Mutex`] (a poisoned lock is still
/// used: breaker and budget state stays consistent between operations). In `no_std`, implement
/// it for your platform's lock, e.g. a critical-section mutex.
pub trait Shared<T> {
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
