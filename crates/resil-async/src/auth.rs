//! Credentials for every attempt, refreshed (asynchronously) once on a 401.

use std::future::Future;
use std::sync::RwLock;

use http::header::HeaderMap;

use crate::transport::BoxFuture;

/// A boxed error from an [`AuthProvider`].
pub type AuthError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies credentials: [`authorize`](AuthProvider::authorize) before every attempt; after a
/// 401, [`refresh`](AuthProvider::refresh) once and the attempt is sent once more.
pub trait AuthProvider: Send + Sync {
    /// Adds credentials to an attempt's headers (from a cache: this must not block).
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError>;
    /// Obtains new credentials after the server rejected the current ones. Bounded by the
    /// attempt's deadline: a refresh still running then is dropped and the 401 is the answer.
    fn refresh(&self) -> BoxFuture<'_, Result<(), AuthError>>;
}

/// A bearer token refreshed by an async function you supply.
pub struct BearerToken<F> {
    token: RwLock<String>,
    fetch: F,
}

impl<F> std::fmt::Debug for BearerToken<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

impl<F, Fut> BearerToken<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, AuthError>> + Send,
{
    /// Starts with `token`; `fetch` gets a fresh one when the server answers 401.
    pub fn new(token: impl Into<String>, fetch: F) -> BearerToken<F> {
        BearerToken {
            token: RwLock::new(token.into()),
            fetch,
        }
    }
}

impl<F, Fut> AuthProvider for BearerToken<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, AuthError>> + Send,
{
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError> {
        let token = self
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(resil_http::driver::set_bearer(headers, &token)?)
    }

    fn refresh(&self) -> BoxFuture<'_, Result<(), AuthError>> {
        Box::pin(async move {
            let fresh = (self.fetch)().await?;
            *self
                .token
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            Ok(())
        })
    }
}
