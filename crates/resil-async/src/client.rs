//! The async client: configuration, and its [`Exchange`]: the transport and credentials every
//! attempt goes through. The loop is [`drive`]'s; no policy lives here.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use http::Method;
use resil_core::{CircuitBreaker, Instant, RetryBudget, RetryPolicy};
use resil_http::{Call, ClientConfig, ClientCore, EnvConfig, Hooks, StatsSnapshot, driver};

use crate::drive::{AttemptError, Exchange, drive};
use crate::request::RequestBuilder;
use crate::runtime::Runtime;
use crate::transport::{
    AsyncTransport, AttemptBudget, BoxFuture, ReadTimedOut, RequestBody, TransportSettings,
};
use crate::{AuthError, AuthProvider, Body, Error, ErrorKind, Response};

/// A resilient async HTTP client on runtime `R`. Cheap to clone (clones share the pool,
/// breaker, budget and statistics). Use it through a driver's alias: `resil_tokio::Client`,
/// `resil_isahc::Client`.
pub struct Client<R> {
    inner: Arc<Inner>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
            runtime: PhantomData,
        }
    }
}

struct Inner {
    core: ClientCore,
    transport: Arc<dyn AsyncTransport>,
    auth: Option<Arc<dyn AuthProvider>>,
    read_timeout: Option<Duration>,
}

impl<R> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.inner.core)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Client<R> {
    /// A client with the defaults (see [`ClientBuilder`]).
    pub fn new() -> Result<Client<R>, Error> {
        ClientBuilder::default().build()
    }

    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder<R> {
        ClientBuilder::default()
    }

    /// A GET request.
    #[inline]
    pub fn get(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::GET, url)
    }
    /// A POST request.
    pub fn post(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::POST, url)
    }
    /// A PUT request.
    pub fn put(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::PUT, url)
    }
    /// A PATCH request.
    pub fn patch(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::PATCH, url)
    }
    /// A DELETE request.
    pub fn delete(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::DELETE, url)
    }
    /// A HEAD request.
    pub fn head(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::HEAD, url)
    }
    /// An OPTIONS request.
    pub fn options(&self, url: &str) -> RequestBuilder<R> {
        self.request(Method::OPTIONS, url)
    }
    /// A request with any method.
    #[inline]
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder<R> {
        RequestBuilder::new(self.clone(), method, url)
    }

    /// Sends an `http::Request`; a [`RetryPolicy`] in its extensions overrides the client's.
    pub fn execute(
        &self,
        request: http::Request<impl Into<RequestBody>>,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        let (mut parts, body) = request.into_parts();
        let body = body.into();
        let policy = parts.extensions.remove::<RetryPolicy>().map(Box::new);
        let checked = ClientCore::prepare_request(&mut parts, body.known_len());
        Self::send_parts(self, checked.map(|()| (parts, policy)), body)
    }

    /// Counters for every call through this client and its clones.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.core.stats()
    }

    /// The client's retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        self.inner.core.policy()
    }

    /// The circuit breaker, if any.
    pub fn breaker(&self) -> Option<&Arc<Mutex<CircuitBreaker>>> {
        self.inner.core.breaker()
    }

    /// With [`breaker_per_origin`](ClientBuilder::breaker_per_origin), each origin called so
    /// far (`scheme://authority`) and its breaker's state; otherwise none.
    pub fn origin_breaker_states(&self) -> Vec<(String, resil_core::BreakerState)> {
        self.inner.core.origin_breaker_states()
    }

    pub(crate) fn core(&self) -> &ClientCore {
        &self.inner.core
    }

    /// The call: resil-http's [`Call`] carried out by [`drive`] on this runtime, through
    /// the client's transport and credentials. Dropping the returned future at any point
    /// (mid-attempt or mid-backoff) drops the call, which hands its breaker permit back: a
    /// cancelled call counts as neither success nor failure and never leaves the breaker
    /// half-open.
    ///
    /// An `async` block rather than an `async fn`: an `async fn` copies its arguments into
    /// locals. It takes the client owned or borrowed (`client`), and the finished request or
    /// the mistake found while building it (`request`), for the same reason: every value a
    /// block around it moved in would stay in the state a second time.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn send_parts<C>(
        client: C,
        mut request: Result<(http::request::Parts, Option<Box<RetryPolicy>>), Error>,
        mut body: RequestBody,
    ) -> impl Future<Output = Result<Response, Error>> + Send + use<C, R>
    where
        C: std::borrow::Borrow<Client<R>> + Send,
        R: Runtime,
    {
        async move {
            // Borrowed where they lie: moved out, they would take their room twice.
            let (parts, policy) = match request {
                Ok((ref mut parts, ref policy)) => (parts, policy.as_deref()),
                Err(e) => return Err(e),
            };
            let this: &Client<R> = client.borrow();
            let inner = &*this.inner;
            let mut call: Call<'_, Body> = inner.core.start_call(
                policy,
                parts,
                body.is_replayable(),
                inner.auth.is_some(),
                R::now(),
            );
            let mut exchange = ClientExchange::<R> {
                inner,
                body: &mut body,
                runtime: PhantomData,
            };
            drive::<R, _>(&mut call, parts, &mut exchange).await
        }
    }
}

/// The client's way out: its transport, with its credentials on every attempt and the read
/// timeout over the response head.
struct ClientExchange<'a, R> {
    inner: &'a Inner,
    body: &'a mut RequestBody,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> ClientExchange<'_, R> {
    /// The attempt's request with its credentials, once the transport agrees it can send
    /// it; a request that cannot be sent ends the call.
    fn prepare(
        &mut self,
        call: &Call<'_, Body>,
        parts: &http::request::Parts,
        deadline: Instant,
    ) -> Result<http::Request<RequestBody>, Error> {
        let inner = self.inner;
        let mut request = call.request(parts, self.body.take_for_attempt());
        // Only for a transport that reads it: an extension costs an allocation.
        if inner.transport.enforces_deadline() {
            let left = driver::attempt_budget(deadline, R::now());
            request.extensions_mut().insert(AttemptBudget(left));
        }
        if let Some(auth) = &inner.auth {
            auth.authorize(request.headers_mut())
                .map_err(|e| driver::auth_error(parts, e))?;
        }
        inner
            .transport
            .check_request(&request)
            .map_err(|e| driver::unsendable_request(parts, e))?;
        Ok(request)
    }
}

impl<R: Runtime> Exchange for ClientExchange<'_, R> {
    fn enforces_deadline(&self) -> bool {
        self.inner.transport.enforces_deadline()
    }

    fn send(
        &mut self,
        call: &Call<'_, Body>,
        parts: &http::request::Parts,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response, AttemptError>> + Send {
        let inner = self.inner;
        let request = self.prepare(call, parts, deadline);
        async move {
            let mut sending = inner
                .transport
                .send(request.map_err(AttemptError::Unsendable)?);
            // The read timeout needs a timer of its own only when it ends before the attempt.
            let stalled = driver::read_deadline(inner.read_timeout, R::now, deadline);
            // One await for both cases, so a client without a read timeout pays one branch.
            let mut read_timer = pin!(stalled.map(R::sleep_until));
            let mut response = std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = sending.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
                match read_timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
                    Some(Poll::Ready(_)) => Poll::Ready(Err(ReadTimedOut.into())),
                    _ => Poll::Pending,
                }
            })
            .await?;
            match (inner.transport.enforces_deadline(), inner.read_timeout) {
                (false, gap) => response.body_mut().set_deadline::<R>(deadline, gap),
                (true, Some(gap)) => response
                    .body_mut()
                    .set_deadline::<R>(Instant::MAX, Some(gap)),
                (true, None) => {}
            }
            Ok(response)
        }
    }

    fn refresh(&self) -> Option<BoxFuture<'_, Result<(), AuthError>>> {
        self.inner.auth.as_ref().map(|auth| auth.refresh())
    }
}

/// Configures a [`Client`]; everything is checked in [`build`](ClientBuilder::build).
/// What is not about the transport is resil-core's [`ClientConfig`], shared with the
/// blocking client. Defaults: the default [`RetryPolicy`], an own circuit breaker, the
/// default retry budget, no generated request ids, a 64 MiB body limit, the runtime's
/// default transport.
pub struct ClientBuilder<R> {
    runtime: PhantomData<fn() -> R>,
    config: ClientConfig,
    transport: Option<Arc<dyn AsyncTransport>>,
    settings: TransportSettings,
    auth: Option<Arc<dyn AuthProvider>>,
    read_timeout: Option<Duration>,
}

impl<R> fmt::Debug for ClientBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<R> Default for ClientBuilder<R> {
    fn default() -> Self {
        ClientBuilder {
            runtime: PhantomData,
            config: ClientConfig::default(),
            transport: None,
            settings: TransportSettings::default(),
            auth: None,
            read_timeout: None,
        }
    }
}

impl<R: Runtime> ClientBuilder<R> {
    /// The retry policy.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.config.policy(policy);
        self
    }
    /// Overrides the policy's total deadline per call.
    pub fn timeout(mut self, total: Duration) -> Self {
        self.config.total_timeout(total);
        self
    }
    /// Overrides the policy's per-attempt timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout(timeout);
        self
    }
    /// Overrides the policy's retries after the first attempt.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries(retries);
        self
    }
    /// Connect timeout of the default transport (above zero: [`build`](Self::build) refuses zero).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = Some(timeout);
        self
    }
    /// The longest wait for data within an attempt: for the response head from the start of
    /// the attempt, then for each piece of the body after the last. A stall past it ends the
    /// attempt as a timeout ([`ReadTimedOut`] is the cause), retried as the policy says, or
    /// fails the body read. Off by default; the attempt timeout bounds every attempt anyway,
    /// so this is for attempts given long enough to download a large body, where a stall
    /// should not wait out the whole attempt. Applies to every transport; zero is refused.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }
    /// Pool of the default transport: idle connections per host and their idle timeout.
    pub fn pool(mut self, max_idle_per_host: usize, idle_timeout: Duration) -> Self {
        self.settings.max_idle_per_host = max_idle_per_host;
        self.settings.idle_timeout = idle_timeout;
        self
    }
    /// Caps the default transport's connections to one host (idle ones included); requests
    /// beyond it wait for a connection within their deadline. See
    /// [`TransportSettings::max_connections_per_host`].
    pub fn max_connections_per_host(mut self, connections: usize) -> Self {
        self.settings.max_connections_per_host = Some(connections);
        self
    }
    /// The default transport speaks HTTP/2 from the first byte (h2c prior knowledge), for
    /// backends known to speak it; see [`TransportSettings::http2_prior_knowledge`].
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.settings.http2_prior_knowledge = true;
        self
    }
    /// The default transport connects straight to every server, whatever proxies the
    /// environment names (see [`Proxy::Direct`](resil_http::Proxy::Direct)).
    pub fn no_proxy(mut self) -> Self {
        self.settings.proxy = resil_http::Proxy::Direct;
        self
    }
    /// The default transport connects to every server through the `http://` proxy at `url`
    /// (`http://[user:password@]host:port`), whatever the environment says; checked at
    /// [`build`](Self::build) (see [`Proxy::Url`](resil_http::Proxy::Url)).
    pub fn proxy(mut self, url: &str) -> Self {
        self.settings.proxy = resil_http::Proxy::Url(url.to_owned());
        self
    }
    /// A transport of your own.
    pub fn transport(mut self, transport: impl AsyncTransport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }
    /// Shares a circuit breaker with other clients of the same backend. A client's breaker
    /// (its own by default) counts every call it makes, whatever the host: a client that
    /// calls several backends trips for all of them when one fails (see
    /// [`breaker_per_origin`](Self::breaker_per_origin)).
    pub fn breaker(mut self, breaker: Arc<Mutex<CircuitBreaker>>) -> Self {
        self.config.breaker(breaker);
        self
    }
    /// A circuit breaker per origin (scheme, host and port), each built by `breaker`, for a
    /// client that calls several backends: one that fails then trips only its own (see
    /// [`ClientConfig::breaker_per_origin`](resil_http::ClientConfig::breaker_per_origin)).
    pub fn breaker_per_origin(mut self, breaker: resil_core::CircuitBreakerBuilder) -> Self {
        self.config.breaker_per_origin(breaker);
        self
    }

    /// No circuit breaker.
    pub fn no_breaker(mut self) -> Self {
        self.config.no_breaker();
        self
    }
    /// Shares a retry budget.
    pub fn budget(mut self, budget: Arc<Mutex<RetryBudget>>) -> Self {
        self.config.budget(budget);
        self
    }
    /// No retry budget.
    pub fn no_budget(mut self) -> Self {
        self.config.no_budget();
        self
    }
    /// Relative URLs are appended to this one.
    pub fn base_url(mut self, url: &str) -> Self {
        self.config.base_url(url);
        self
    }
    /// A header sent on every request that does not set it.
    pub fn default_header(mut self, name: &str, value: &str) -> Self {
        self.config.default_header(name, value);
        self
    }
    /// Credentials for every attempt; a 401 refreshes them once and resends once.
    pub fn auth(mut self, provider: impl AuthProvider + 'static) -> Self {
        self.auth = Some(Arc::new(provider));
        self
    }
    /// The request-id header (default `x-request-id`). A request that carries it keeps it
    /// on every attempt and hooks see it; with
    /// [`generate_request_ids`](Self::generate_request_ids) a request without one gets a
    /// fresh id. `None` turns ids off.
    pub fn request_id_header(mut self, name: Option<&'static str>) -> Self {
        self.config.request_id_header(name);
        self
    }
    /// Gives every call whose request has no request-id header a fresh one (32 hex digits,
    /// the same on every attempt, so the server can tie retries together). Off by default:
    /// the client adds no header it was not asked for.
    pub fn generate_request_ids(mut self, on: bool) -> Self {
        self.config.generate_request_ids(on);
        self
    }
    /// Largest response body read (default 64 MiB).
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.config.body_limit(bytes);
        self
    }
    /// Callbacks for attempts, retries, outcomes and breaker transitions.
    pub fn hooks(mut self, hooks: impl Hooks + 'static) -> Self {
        self.config.hooks(Arc::new(hooks));
        self
    }
    /// Seeds jitter (and generated request ids), for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed(seed);
        self
    }
    /// Applies `RESIL_*` environment variables (see [`EnvConfig`]) over what is set so far (a
    /// setter called afterwards wins); an invalid value makes [`build`](Self::build) fail
    /// naming the variable.
    pub fn from_env(mut self) -> Self {
        self.config.from_env();
        self.take_transport_env()
    }
    /// Applies settings read elsewhere (see [`from_env`](Self::from_env)).
    pub fn apply_env(mut self, env: EnvConfig) -> Self {
        self.config.apply_env(env);
        self.take_transport_env()
    }
    fn take_transport_env(mut self) -> Self {
        let env = self.config.take_transport_env();
        self.settings.connect_timeout = env.connect_timeout.or(self.settings.connect_timeout);
        self.read_timeout = env.read_timeout.or(self.read_timeout);
        self
    }

    /// Validates everything and builds the client (some runtimes' default transports must be
    /// built inside the runtime, e.g. tokio's).
    pub fn build(self) -> Result<Client<R>, Error> {
        let settings = self.settings;
        ClientConfig::check_timeouts(&[
            ("connect_timeout", settings.connect_timeout),
            ("read_timeout", self.read_timeout),
        ])?;
        ClientConfig::check_proxy(&settings.proxy)?;
        let core = self.config.build()?;
        let transport = match self.transport {
            Some(t) => t,
            None => R::default_transport(&settings)
                .map_err(|e| Error::new(ErrorKind::InvalidConfig, "-", "-").with_source(e))?,
        };
        Ok(Client {
            runtime: PhantomData,
            inner: Arc::new(Inner {
                core,
                transport,
                auth: self.auth,
                read_timeout: self.read_timeout,
            }),
        })
    }
}
