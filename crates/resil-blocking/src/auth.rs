//! Credentials for every attempt, refreshed once on a 401.

use std::sync::RwLock;

use http::header::HeaderMap;

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

/// A bearer token, refreshed by a function you supply.
pub struct BearerToken<F> {
    token: RwLock<String>,
    fetch: F,
}

impl<F> std::fmt::Debug for BearerToken<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

impl<F: Fn() -> Result<String, AuthError> + Send + Sync> BearerToken<F> {
    /// Starts with `token`; `fetch` returns a fresh one when the server answers 401.
    pub fn new(token: impl Into<String>, fetch: F) -> BearerToken<F> {
        BearerToken {
            token: RwLock::new(token.into()),
            fetch,
        }
    }
}

impl<F: Fn() -> Result<String, AuthError> + Send + Sync> AuthProvider for BearerToken<F> {
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError> {
        let token = self
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(resil_http::driver::set_bearer(headers, &token)?)
    }

    fn refresh(&self) -> Result<(), AuthError> {
        let fresh = (self.fetch)()?;
        *self
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}
