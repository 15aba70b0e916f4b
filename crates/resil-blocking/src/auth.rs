//! Credentials for every attempt, refreshed once on a 401.

use http::header::HeaderMap;
use resil_http::BearerToken;

/// A boxed error from an [`AuthProvider`].
pub type AuthError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies credentials. The client calls [`authorize`](AuthProvider::authorize) before every
/// attempt; after a 401 it calls [`refresh`](AuthProvider::refresh) once and sends that attempt
/// once more — never more than once per call.
pub trait AuthProvider: Send + Sync {
    /// Adds credentials (usually `Authorization`) to an attempt's headers.
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError>;
    /// Obtains new credentials after the server rejected the current ones. It runs on the
    /// calling thread and resil cannot interrupt it: give its own IO a timeout shorter than
    /// the attempt's.
    fn refresh(&self) -> Result<(), AuthError>;
}

impl<F: Fn() -> Result<String, AuthError> + Send + Sync> AuthProvider for BearerToken<F> {
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError> {
        Ok(self.set_header(headers)?)
    }

    fn refresh(&self) -> Result<(), AuthError> {
        self.replace((self.fetch())()?);
        Ok(())
    }
}
