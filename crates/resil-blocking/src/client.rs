//! The client: configuration, and the one blocking loop, which carries out a resil-http
//! [`Call`]'s steps with real sockets and `std::thread::sleep`. No policy lives here.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use resil_core::{CircuitBreaker, Instant, RetryBudget, RetryPolicy, UnixTime};
use resil_http::driver;
use resil_http::{
    Call, CallLabel, ClientConfig, ClientCore, EnvConfig, Hooks, StatsSnapshot, Step,
};

use crate::request::RequestBuilder;
use crate::transport::{BlockingTransport, RequestBody, UreqSettings, UreqTransport};
use crate::{AuthProvider, Error, Response};

/// A resilient blocking HTTP client. Cheap to clone (clones share the connection pool,
/// breaker, budget and statistics); `Send + Sync`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    core: ClientCore,
    transport: Arc<dyn BlockingTransport>,
    clock: Arc<dyn Clock>,
    auth: Option<Arc<dyn AuthProvider>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.inner.core)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with the default policy (see [`RetryPolicy`]), a breaker of its own, the
    /// default retry budget and the ureq transport.
    pub fn new() -> Client {
        match ClientBuilder::default().build() {
            Ok(client) => client,
            // The defaults have nothing to validate that can fail.
            Err(e) => unreachable!("default client configuration is invalid: {e}"),
        }
    }

    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A GET request to `url` (absolute, or relative to the base URL).
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A POST request.
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A PUT request.
    pub fn put(&self, url: &str) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// A PATCH request.
    pub fn patch(&self, url: &str) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// A DELETE request.
    pub fn delete(&self, url: &str) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// A HEAD request.
    pub fn head(&self, url: &str) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// An OPTIONS request.
    pub fn options(&self, url: &str) -> RequestBuilder {
        self.request(Method::OPTIONS, url)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url)
    }

    /// Sends an `http::Request`. A [`RetryPolicy`] in its extensions overrides the client's
    /// for this call.
    pub fn execute(
        &self,
        request: http::Request<impl Into<RequestBody>>,
    ) -> Result<Response, Error> {
        let (mut parts, body) = request.into_parts();
        let body = body.into();
        ClientCore::prepare_request(&mut parts, body.known_len())?;
        let policy = parts.extensions.remove::<RetryPolicy>().map(Box::new);
        self.send_parts(parts, body, policy)
    }

    /// Counters for every call made through this client and its clones.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.core.stats()
    }

    /// The client's retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        self.inner.core.policy()
    }

    /// The circuit breaker, if the client has one.
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

    /// The call: resil-http's [`Call`] driven with real IO and real sleeps. Every step is
    /// the call's to decide; this loop only does the IO each one names.
    pub(crate) fn send_parts(
        &self,
        mut parts: http::request::Parts,
        mut body: RequestBody,
        policy: Option<Box<RetryPolicy>>,
    ) -> Result<Response, Error> {
        let inner = &*self.inner;
        let clock = &*inner.clock;
        // The time of the call's last input: a Send follows it at once, so its budget is
        // measured from here without reading the clock again.
        let mut now = clock.now();
        let replayable = body.is_replayable();
        let mut call: Call<'_, crate::Body> = inner.core.start_call(
            policy.as_deref(),
            &mut parts,
            replayable,
            inner.auth.is_some(),
            now,
        );
        loop {
            match call.poll_step(&parts) {
                Step::Send { attempt, deadline } => {
                    let mut request = call.request(&parts, body.take_for_attempt());
                    if let Some(auth) = &inner.auth {
                        auth.authorize(request.headers_mut())
                            .map_err(|e| driver::auth_error(&parts, e))?;
                    }
                    inner
                        .transport
                        .check_request(&request)
                        .map_err(|e| driver::unsendable_request(&parts, e))?;
                    let sent = inner
                        .transport
                        .send(request, driver::attempt_budget(deadline, now));
                    now = clock.now();
                    match sent {
                        Ok(response) => {
                            call.handle_response(now, attempt, response, || clock.wall())
                        }
                        Err(e) => call.handle_error(now, attempt, e.kind(), e.into_source()),
                    }
                }
                Step::Release(mut stale) => {
                    stale.body_mut().drain(driver::DRAIN_LIMIT);
                    now = clock.now();
                }
                Step::Refresh { .. } => {
                    // Synchronous: a refresh that outlives the deadline keeps the 401.
                    let refreshed = inner.auth.as_ref().is_some_and(|a| a.refresh().is_ok());
                    now = clock.now();
                    call.handle_refreshed(now, refreshed);
                }
                Step::ReadPrefix { attempt, len } => {
                    let read = call.response_mut().map(|r| r.body_mut().read_prefix(len));
                    now = clock.now();
                    match read {
                        Some(Ok(prefix)) => call.handle_prefix(now, &prefix),
                        Some(Err(e)) => {
                            let e = body_read_error(e);
                            call.handle_error(now, attempt, e.kind(), e.into_source());
                        }
                        None => call.handle_prefix(now, &[]),
                    }
                }
                Step::Sleep { until } => {
                    let left = until.saturating_duration_since(clock.now());
                    // A zero wait is never slept (the machine does not even ask for one).
                    if !left.is_zero() {
                        clock.sleep(left);
                    }
                    now = clock.now();
                    call.handle_timeout(now);
                }
                Step::Done(mut response) => {
                    response.body_mut().label = Some(CallLabel::new(parts.method, parts.uri));
                    return Ok(response);
                }
                Step::Fail(error) => return Err(error),
            }
        }
    }
}

/// Where the client reads time and how it waits: the system clock in production, a manual
/// one in tests (so backoff and `Retry-After` waits take no real time).
pub trait Clock: Send + Sync {
    /// Monotonic now; clients that share a breaker must share a clock.
    fn now(&self) -> Instant;
    /// Wall-clock time, for HTTP-date `Retry-After`.
    fn wall(&self) -> UnixTime;
    /// Blocks for `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock: [`Instant::now`] on the process-wide origin, `SystemTime`, `thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> UnixTime {
        resil_http::driver::unix_now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A body read that failed after the head arrived: the request reached the server.
fn body_read_error(e: std::io::Error) -> crate::transport::TransportError {
    let kind = match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            resil_core::TransportErrorKind::Timeout
        }
        _ => resil_core::TransportErrorKind::Reset,
    };
    crate::transport::TransportError::new(kind, e)
}

/// Configures a [`Client`]; every setting is checked in [`build`](ClientBuilder::build).
/// What is not about ureq or the clock is resil-core's [`ClientConfig`], shared with the
/// async clients.
#[derive(Default)]
pub struct ClientBuilder {
    config: ClientConfig,
    transport: Option<Arc<dyn BlockingTransport>>,
    ureq: UreqSettings,
    auth: Option<Arc<dyn AuthProvider>>,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("ureq", &self.ureq)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The retry policy (default: [`RetryPolicy::default`]).
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
        self.ureq.connect_timeout = Some(timeout);
        self
    }

    /// Longest wait for one socket read (default transport; above zero).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.ureq.read_timeout = Some(timeout);
        self
    }

    /// Longest wait for one socket write (default transport; above zero).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.ureq.write_timeout = Some(timeout);
        self
    }

    /// Pool size of the default transport: idle connections in total, per host, and how long
    /// one is kept.
    pub fn pool(
        mut self,
        max_idle: usize,
        max_idle_per_host: usize,
        idle_timeout: Duration,
    ) -> Self {
        self.ureq.max_idle_connections = max_idle;
        self.ureq.max_idle_connections_per_host = max_idle_per_host;
        self.ureq.max_idle_age = idle_timeout;
        self
    }

    /// Redirects the default transport follows (default 0: a 3xx response is returned, as
    /// resil-tokio and resil-isahc do). A followed redirect never carries `Authorization` or
    /// `Cookie`, and stays inside the attempt: its deadline covers every hop, and a retry
    /// starts again from the request's own URL.
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.ureq.max_redirects = n;
        self
    }

    /// The default transport connects straight to every server, whatever proxy the
    /// environment names (see [`Proxy::Direct`](resil_http::Proxy::Direct)).
    pub fn no_proxy(mut self) -> Self {
        self.ureq.proxy = resil_http::Proxy::Direct;
        self
    }

    /// The default transport connects to every server through the `http://` proxy at `url`
    /// (`http://[user:password@]host:port`), whatever the environment says; checked at
    /// [`build`](Self::build) (see [`Proxy::Url`](resil_http::Proxy::Url)).
    pub fn proxy(mut self, url: &str) -> Self {
        self.ureq.proxy = resil_http::Proxy::Url(url.to_owned());
        self
    }

    /// A transport of your own instead of ureq.
    pub fn transport(mut self, transport: impl BlockingTransport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Shares a circuit breaker with other clients that call the same backend. A client's
    /// breaker (its own by default) counts every call it makes, whatever the host: a client
    /// that calls several backends trips for all of them when one fails (see
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

    /// Shares a retry budget (default: one of the client's own, 20 % + 10/s).
    pub fn budget(mut self, budget: Arc<Mutex<RetryBudget>>) -> Self {
        self.config.budget(budget);
        self
    }

    /// No retry budget.
    pub fn no_budget(mut self) -> Self {
        self.config.no_budget();
        self
    }

    /// Relative request URLs are appended to this one.
    pub fn base_url(mut self, url: &str) -> Self {
        self.config.base_url(url);
        self
    }

    /// A header sent on every request that does not set it itself.
    pub fn default_header(mut self, name: &str, value: &str) -> Self {
        self.config.default_header(name, value);
        self
    }

    /// Adds credentials to every attempt; on a 401 refreshes them once and retries once.
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
    ///
    /// ```
    /// let client = resil_blocking::Client::builder()
    ///     .generate_request_ids(true)
    ///     .build()?;
    /// # Ok::<(), resil_blocking::Error>(())
    /// ```
    pub fn generate_request_ids(mut self, on: bool) -> Self {
        self.config.generate_request_ids(on);
        self
    }

    /// Largest response body read (default 64 MiB); reading more fails.
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.config.body_limit(bytes);
        self
    }

    /// Callbacks for attempts, retries, outcomes and breaker transitions.
    pub fn hooks(mut self, hooks: impl Hooks + 'static) -> Self {
        self.config.hooks(Arc::new(hooks));
        self
    }

    /// The clock for deadlines, backoff sleeps and the breaker (default: the system clock).
    /// Socket timeouts inside the transport stay on real time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seeds the jitter (and generated request ids), for reproducible runs (default: from the
    /// clock).
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
        self.ureq.connect_timeout = env.connect_timeout.or(self.ureq.connect_timeout);
        self.ureq.read_timeout = env.read_timeout.or(self.ureq.read_timeout);
        self
    }

    /// Validates everything and builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let ureq = self.ureq;
        ClientConfig::check_timeouts(&[
            ("connect_timeout", ureq.connect_timeout),
            ("read_timeout", ureq.read_timeout),
            ("write_timeout", ureq.write_timeout),
        ])?;
        ClientConfig::check_proxy(&ureq.proxy)?;
        let core = self.config.build()?;
        let transport = match self.transport {
            Some(t) => t,
            None => Arc::new(UreqTransport::new(&ureq).map_err(|e| {
                Error::new(resil_http::ErrorKind::InvalidConfig, "-", "-").with_source(e)
            })?),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                core,
                transport,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                auth: self.auth,
            }),
        })
    }
}
