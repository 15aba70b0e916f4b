//! The async client: configuration, and the loop that drives resil-core's retry machine with
//! a runtime's timer and a transport. No policy lives here.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use resil_core::{CircuitBreaker, Instant, RetryBudget, RetryPolicy};
use resil_http::driver::DRAIN_LIMIT;
use resil_http::{
    AttemptId, Call, ClientConfig, ClientCore, EnvConfig, Hooks, StatsSnapshot, Step,
};

use crate::request::RequestBuilder;
use crate::runtime::Runtime;
use crate::transport::{
    AsyncTransport, AttemptBudget, ReadTimedOut, RequestBody, TransportError, TransportSettings,
    release_stale,
};
use crate::{AuthProvider, Body, Error, ErrorKind, Response};

/// Runs `work` until it finishes or `deadline` passes (`None` then). `work` is pinned by the
/// caller, so the attempt's state is not copied into this future.
async fn until<R: Runtime, F: Future + ?Sized>(
    deadline: Instant,
    mut work: Pin<&mut F>,
) -> Option<F::Output> {
    let mut timer = pin!(R::sleep_until(deadline));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

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

enum AttemptError {
    Transport(TransportError),
    Fatal(Error),
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

    /// The call: resil-core's [`Call`] driven by this runtime's IO and timers. Dropping the
    /// returned future at any point (mid-attempt or mid-backoff) drops the call, which hands
    /// its breaker permit back: a cancelled call counts as neither success nor failure and
    /// never leaves the breaker half-open.
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
            let mut call: Call<'_, Body> =
                inner
                    .core
                    .start_call(policy, parts, body.is_replayable(), R::now());
            loop {
                match call.next(parts) {
                    Step::Send { attempt, deadline } => {
                        // Drained where it lies: taking it out first would add two copies of
                        // a response to this future's state.
                        release_stale(&mut call).await;
                        let prefix_len = call.body_prefix_len();
                        // Owned (two reference counts): `call` is updated while this lives.
                        let id = call.attempt_id().cloned();
                        let mut attempt_future =
                            pin!(this.attempt(parts, id.as_ref(), &mut body, deadline, prefix_len));
                        let outcome = if inner.transport.enforces_deadline() {
                            Some(attempt_future.as_mut().await)
                        } else {
                            until::<R, _>(deadline, attempt_future.as_mut()).await
                        };
                        let now = R::now();
                        match outcome {
                            Some(Ok((response, prefix))) => {
                                call.response(
                                    now,
                                    attempt,
                                    response,
                                    prefix.as_deref(),
                                    resil_http::driver::unix_now,
                                );
                            }
                            Some(Err(AttemptError::Transport(e))) => {
                                call.error(now, attempt, e.kind(), e.into_source());
                            }
                            Some(Err(AttemptError::Fatal(e))) => return Err(e),
                            // The attempt's deadline passed: the machine records a timeout.
                            None => call.timer(now),
                        }
                    }
                    Step::Sleep { until } => {
                        // Release the retried response's connection before the wait, so the
                        // pool can hand it to the next attempt instead of dialing a new one.
                        release_stale(&mut call).await;
                        // Zero waits are never slept (the machine does not ask for them).
                        R::sleep_until(until).await;
                        call.timer(R::now());
                    }
                    Step::Done(mut response) => {
                        let (method, uri) = (
                            std::mem::take(&mut parts.method),
                            std::mem::take(&mut parts.uri),
                        );
                        response.body_mut().name_call(method, uri);
                        return Ok(response);
                    }
                    Step::Fail(error) => return Err(error),
                }
            }
        }
    }

    /// One attempt, with the single credential refresh after a 401, and the body prefix the
    /// policy's `retry_if` may look at (read here, put back in front of the body).
    async fn attempt(
        &self,
        parts: &http::request::Parts,
        id: Option<&AttemptId>,
        body: &mut RequestBody,
        deadline: Instant,
        prefix_len: usize,
    ) -> Result<(Response, Option<Bytes>), AttemptError> {
        let inner = &*self.inner;
        let transport_enforces = inner.transport.enforces_deadline();
        let mut refreshed = false;
        loop {
            // The request lives in this block only: a local that lives to the end of the loop
            // body would keep its ~260 bytes in the future's state across every `.await`.
            let mut sending = {
                let mut request =
                    resil_http::driver::attempt_request(parts, id, body.take_for_attempt());
                // Only for a transport that reads it: an extension costs an allocation.
                if transport_enforces {
                    let left = resil_http::driver::attempt_budget(deadline, R::now());
                    request.extensions_mut().insert(AttemptBudget(left));
                }
                if let Some(auth) = &inner.auth {
                    auth.authorize(request.headers_mut()).map_err(|e| {
                        AttemptError::Fatal(resil_http::driver::auth_error(parts, e))
                    })?;
                }
                inner.transport.check_request(&request).map_err(|e| {
                    AttemptError::Fatal(resil_http::driver::unsendable_request(parts, e))
                })?;
                inner.transport.send(request)
            };
            // The read timeout needs a timer of its own only when it ends before the attempt.
            let stalled = resil_http::driver::read_deadline(inner.read_timeout, R::now, deadline);
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
            .await
            .map_err(AttemptError::Transport)?;
            match (transport_enforces, inner.read_timeout) {
                (false, gap) => response.body_mut().set_deadline::<R>(deadline, gap),
                (true, Some(gap)) => response
                    .body_mut()
                    .set_deadline::<R>(Instant::MAX, Some(gap)),
                (true, None) => {}
            }
            if resil_http::driver::refresh_credentials(
                response.status(),
                refreshed,
                body.is_replayable(),
            ) {
                if let Some(auth) = &inner.auth {
                    refreshed = true;
                    // Bounded here, not only by the attempt's timer (which a transport that
                    // enforces deadlines goes without), so every driver answers a refresh
                    // still running at the deadline the same way: with the 401.
                    let mut refresh = auth.refresh();
                    let fresh = until::<R, _>(deadline, refresh.as_mut()).await;
                    if matches!(fresh, Some(Ok(()))) {
                        response.body_mut().drain(DRAIN_LIMIT).await;
                        continue;
                    }
                }
            }
            if prefix_len == 0 {
                return Ok((response, None));
            }
            let prefix = response
                .body_mut()
                .read_prefix(prefix_len)
                .await
                .map_err(AttemptError::Transport)?;
            return Ok((response, Some(prefix)));
        }
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
