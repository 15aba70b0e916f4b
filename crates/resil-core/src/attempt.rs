//! [`Attempt`]: the number that ties an input to the action that asked for it.

use core::fmt;

/// One attempt of a logical request, numbered from 1. Every [`Action::Send`](crate::Action::Send) names one; inputs
/// naming any other attempt are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(u32);

impl Attempt {
    /// The attempt with this 1-based number.
    pub const fn new(number: u32) -> Attempt {
        Attempt(number)
    }

    /// Its 1-based number.
    pub const fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {}", self.0)
    }
}
