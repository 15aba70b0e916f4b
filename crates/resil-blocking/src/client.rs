//! The client: configuration, and the one blocking loop, which carries out a resil-http
//! [`Call`]'s steps with real sockets and `std::thread::sleep`. No policy lives here.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use resil_core::{Attempt, Instant, RetryPolicy, UnixTime};
use resil_http::driver;
use resil_http::{BodyFailure, Call, CallLabel, ClientConfig, ClientCore, ResumePoint, Step};

use crate::cancel::{self, AttemptCancel, Outstanding};
use crate::transport::{BlockingTransport, RequestBody};
use crate::ureq::{UreqSettings, UreqTransport};
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
    resil_http::client_accessors!();

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

    pub(crate) fn core(&self) -> &ClientCore {
        &self.inner.core
    }

    /// The call: resil-http's [`Call`] driven with real IO and real sleeps. Every step is
    /// the call's to decide; this loop only does the IO each one names.
    pub(crate) fn send_parts(
        &self,
        mut parts: http::request::Parts,
        body: RequestBody,
        policy: Option<Box<RetryPolicy>>,
    ) -> Result<Response, Error> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let call = inner.core.start_call(
            policy.as_deref(),
            &mut parts,
            body.is_replayable(),
            inner.auth.is_some(),
            now,
        );
        let done = self.run(call, &mut parts, body, now)?;
        Ok(self.answer(done, parts, policy))
    }

    /// Goes on after `response`'s body failed at byte `failure.at_byte`: asks for the rest
    /// (or the whole body), under the same call's attempts, deadline and budget, and returns
    /// the response that carries it.
    pub(crate) fn go_on(
        &self,
        context: &CallContext,
        failure: &BodyFailure,
    ) -> Result<Response, Error> {
        let inner = &*self.inner;
        let mut parts = context.request();
        context.point.ask(&mut parts.headers, failure.at_byte);
        let now = inner.clock.now();
        let call = inner.core.resume_call(
            context.policy.as_deref(),
            &mut parts,
            true,
            inner.auth.is_some(),
            now,
            failure,
        );
        let again = context
            .body
            .as_ref()
            .map_or(RequestBody::Empty, |b| b.again());
        let done = self.run(call, &mut parts, again, now)?;
        Ok(self.answer(done, context.request(), context.policy.clone()))
    }

    /// Keeps with a finished call's response what its body needs to go on if it fails: the
    /// request (after redirects), a copy of its body, and the call's attempts and deadline.
    fn answer(
        &self,
        (mut response, attempts, deadline, body): Done,
        mut parts: http::request::Parts,
        policy: Option<Box<RetryPolicy>>,
    ) -> Response {
        let point = ResumePoint::of_response(&response);
        let label = CallLabel::new(
            std::mem::take(&mut parts.method),
            std::mem::take(&mut parts.uri),
        );
        response.body_mut().call = Some(Box::new(CallContext {
            client: self.clone(),
            label,
            head: parts,
            body,
            policy,
            attempts,
            deadline,
            point,
        }));
        response
    }

    /// Carries out `call`'s steps for `parts` until it is done.
    fn run(
        &self,
        mut call: Call<'_, crate::Body>,
        parts: &mut http::request::Parts,
        mut body: RequestBody,
        // The time of the call's last input: a Send follows it at once, so its budget is
        // measured from here without reading the clock again.
        mut now: Instant,
    ) -> Result<Done, Error> {
        if call.hedges() {
            return self.run_hedged(call, parts, body);
        }
        let inner = &*self.inner;
        let clock = &*inner.clock;
        let replayable = body.is_replayable();
        loop {
            match call.poll_step(parts) {
                Step::Send { attempt, deadline } => {
                    let request = self.prepare(&call, parts, &mut body)?;
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
                Step::Redirect { drop_body } => {
                    if drop_body {
                        body = RequestBody::Empty;
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
                // Only a hedging call cancels (see `run_hedged`).
                Step::Cancel { .. } => {}
                Step::Done(response) => {
                    let kept = body.kept(replayable);
                    return Ok((response, call.attempts(), call.deadline(), kept));
                }
                Step::Fail(error) => return Err(error),
            }
        }
    }

    /// The attempt's request for `call`, with its credentials, once the transport agrees it
    /// can send it; a request that cannot be sent ends the call.
    fn prepare(
        &self,
        call: &Call<'_, crate::Body>,
        parts: &http::request::Parts,
        body: &mut RequestBody,
    ) -> Result<http::Request<RequestBody>, Error> {
        let inner = &*self.inner;
        let mut request = call.request(parts, body.take_for_attempt());
        if let Some(auth) = inner.auth.as_ref().filter(|_| call.sends_credentials()) {
            auth.authorize(request.headers_mut())
                .map_err(|e| driver::auth_error(parts, e))?;
        }
        inner
            .transport
            .check_request(&request)
            .map_err(|e| driver::unsendable_request(parts, e))?;
        Ok(request)
    }

    /// [`run`](Self::run) for a call that hedges: each attempt runs on a thread of its own
    /// and reports through a channel, and the call waits for the first answer or its timer
    /// (on the real clock: hedge delays are real time even under a manual [`Clock`]). A
    /// cancelled attempt's socket is shut down at once (default transport), which ends its
    /// thread and closes its connection; a response that came first is dropped unread, which
    /// closes it too (ureq pools only a body read to its end). A transport of your own runs a
    /// cancelled attempt to its timeout: no thread outlives the call's deadline.
    fn run_hedged(
        &self,
        mut call: Call<'_, crate::Body>,
        parts: &mut http::request::Parts,
        mut body: RequestBody,
    ) -> Result<Done, Error> {
        type Answer = (Attempt, Result<Response, crate::transport::TransportError>);
        let inner = &*self.inner;
        let clock = &*inner.clock;
        let replayable = body.is_replayable();
        let (answers, answered) = std::sync::mpsc::channel::<Answer>();
        let mut out = Outstanding::default();
        loop {
            match call.poll_step(parts) {
                Step::Send { attempt, deadline } => {
                    let request = self.prepare(&call, parts, &mut body)?;
                    let transport = inner.transport.clone();
                    let budget = driver::attempt_budget(deadline, clock.now());
                    let answers = answers.clone();
                    let stop = Arc::new(AttemptCancel::default());
                    let thread_stop = stop.clone();
                    let spawned = std::thread::Builder::new()
                        .name("resil-attempt".into())
                        .spawn(move || {
                            cancel::enter(thread_stop);
                            let sent = transport.send(request, budget);
                            // The call may be over: then the answer is dropped, unread.
                            let _ = answers.send((attempt, sent));
                        });
                    match spawned {
                        Ok(_) => out.push(attempt, stop),
                        Err(e) => {
                            // Nothing was sent.
                            let kind = resil_core::TransportErrorKind::Connect;
                            call.handle_error(clock.now(), attempt, kind, e.into());
                        }
                    }
                }
                Step::Cancel { attempt } => out.cancel(&attempt),
                Step::Sleep { until } if out.is_empty() => {
                    let left = until.saturating_duration_since(clock.now());
                    if !left.is_zero() {
                        clock.sleep(left);
                    }
                    call.handle_timeout(clock.now());
                }
                Step::Sleep { until } => {
                    let left = until.saturating_duration_since(clock.now());
                    match answered.recv_timeout(left) {
                        Ok((attempt, sent)) if out.answered(&attempt) => {
                            let now = clock.now();
                            match sent {
                                Ok(response) => {
                                    call.handle_response(now, attempt, response, || clock.wall());
                                }
                                Err(e) => {
                                    call.handle_error(now, attempt, e.kind(), e.into_source());
                                }
                            }
                        }
                        // A cancelled attempt's late answer: dropped, its connection closed.
                        Ok(_) => {}
                        Err(_) => {
                            // A manual clock did not move while the channel waited.
                            let behind = until.saturating_duration_since(clock.now());
                            if !behind.is_zero() {
                                clock.sleep(behind);
                            }
                            call.handle_timeout(clock.now());
                        }
                    }
                }
                Step::Release(mut stale) => stale.body_mut().drain(driver::DRAIN_LIMIT),
                Step::Refresh { .. } => {
                    let refreshed = inner.auth.as_ref().is_some_and(|a| a.refresh().is_ok());
                    call.handle_refreshed(clock.now(), refreshed);
                }
                // A hedging policy reads no body prefix (its builder refuses one).
                Step::ReadPrefix { .. } => call.handle_prefix(clock.now(), &[]),
                Step::Redirect { drop_body } => {
                    if drop_body {
                        body = RequestBody::Empty;
                    }
                }
                Step::Done(response) => {
                    let kept = body.kept(replayable);
                    return Ok((response, call.attempts(), call.deadline(), kept));
                }
                Step::Fail(error) => return Err(error),
            }
        }
    }
}

/// A finished call: its response, attempts, deadline and its request body to send again.
type Done = (
    Response,
    u32,
    Instant,
    Option<resil_http::RequestBody<std::convert::Infallible>>,
);

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
    crate::transport::TransportError::new(resil_http::driver::body_failure_kind(&e), e)
}

/// The call a response answers, kept with its body so the body can go on if it fails.
pub(crate) struct CallContext {
    client: Client,
    /// The method and URL the call last sent (after any redirect), for errors too.
    pub(crate) label: CallLabel,
    /// The rest of that request's head.
    head: http::request::Parts,
    /// The request body to send again (`None` after a stream, which went out once).
    pub(crate) body: Option<resil_http::RequestBody<std::convert::Infallible>>,
    policy: Option<Box<RetryPolicy>>,
    pub(crate) attempts: u32,
    pub(crate) deadline: Instant,
    pub(crate) point: ResumePoint,
}

impl CallContext {
    /// The request the call last sent.
    fn request(&self) -> http::request::Parts {
        let mut parts = self.head.clone();
        parts.method = self.label.method().clone();
        parts.uri = self.label.uri().clone();
        parts
    }

    /// Goes on after the body failed (see [`Client::go_on`]).
    pub(crate) fn go_on(&self, failure: &BodyFailure) -> Result<Response, Error> {
        self.client.go_on(self, failure)
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("method", self.label.method())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
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
    resil_http::client_builder_setters!(config, ureq);

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

    /// A transport of your own instead of ureq.
    pub fn transport(mut self, transport: impl BlockingTransport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The clock for deadlines, backoff sleeps and the breaker (default: the system clock).
    /// Socket timeouts inside the transport stay on real time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
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
        let timeouts = [
            ("connect_timeout", ureq.connect_timeout),
            ("read_timeout", ureq.read_timeout),
            ("write_timeout", ureq.write_timeout),
        ];
        let (core, transport) =
            self.config
                .build_client(&ureq.proxy, &timeouts, self.transport, || {
                    Ok(Arc::new(UreqTransport::new(&ureq)?))
                })?;
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
