//! The one error type of resil-blocking: resil-core's `CallError` with this crate's body.

/// What went wrong; shared by every resil driver.
pub use resil_core::ClientErrorKind as ErrorKind;

/// An error with everything known about the call: method, URL (credentials redacted),
/// attempts, the last status, and the last response when there was one.
pub type Error = resil_core::CallError<crate::Body>;
