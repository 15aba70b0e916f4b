//! [`PolicyError`]: the one error every builder in core returns, so no builder's module
//! depends on another's for it.

use core::fmt;

/// A configuration value that failed validation: which field, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyError {
    field: &'static str,
    problem: &'static str,
}

impl PolicyError {
    pub(crate) const fn new(field: &'static str, problem: &'static str) -> PolicyError {
        PolicyError { field, problem }
    }

    /// The name of the offending setting, as the builder method spells it.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.field, self.problem)
    }
}

impl core::error::Error for PolicyError {}
