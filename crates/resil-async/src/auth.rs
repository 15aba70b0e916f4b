//! Credentials for every attempt, refreshed (asynchronously) once on a 401.

use std::future::Future;

use http::header::HeaderMap;
use resil_http::BearerToken;

use crate::BoxFuture;

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

impl<F, Fut> AuthProvider for BearerToken<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, AuthError>> + Send,
{
    fn authorize(&self, headers: &mut HeaderMap) -> Result<(), AuthError> {
        Ok(self.set_header(headers)?)
    }

    fn refresh(&self) -> BoxFuture<'_, Result<(), AuthError>> {
        Box::pin(async move {
            self.replace((self.fetch())().await?);
            Ok(())
        })
    }
}
