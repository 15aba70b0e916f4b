//! The async client: configuration, and its [`Exchange`]: the transport and credentials every
//! attempt goes through. The loop is [`drive`]'s; no policy lives here.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use resil_core::{Instant, RetryPolicy};
use resil_http::{BodyFailure, Call, ClientConfig, ClientCore, driver};

use crate::drive::{AttemptError, Exchange, drive};
use crate::resume::{Resend, keep_call};
use crate::runtime::Runtime;
use crate::transport::{AsyncTransport, AttemptBudget, RequestBody, TransportSettings};
use crate::{AuthError, AuthProvider, Body, BoxFuture, Error, ReadTimedOut, Response};

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
    resil_http::client_accessors!();

    /// A client with the defaults (see [`ClientBuilder`]).
    pub fn new() -> Result<Client<R>, Error> {
        ClientBuilder::default().build()
    }

    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder<R> {
        ClientBuilder::default()
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
        Self::send_parts(self, checked.map(|()| (parts, policy)), body, None)
    }

    pub(crate) fn core(&self) -> &ClientCore {
        &self.inner.core
    }

    /// The call: resil-http's [`Call`] carried out by [`drive`] on this runtime, through
    /// the client's transport and credentials; its response's body keeps the call to go on
    /// with if it fails (`failed` is set for the call that goes on). Dropping the returned
    /// future at any point (mid-attempt or mid-backoff) drops the call, which hands its
    /// breaker permit back: a cancelled call counts as neither success nor failure and never
    /// leaves the breaker half-open.
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
        failed: Option<BodyFailure>,
    ) -> impl Future<Output = Result<Response, Error>> + Send + use<C, R>
    where
        C: std::borrow::Borrow<Client<R>> + Send,
        R: Runtime,
    {
        async move {
            // Borrowed where they lie: moved out, they would take their room twice.
            let (parts, policy) = match request {
                Ok((ref mut parts, ref mut policy)) => (parts, policy),
                Err(e) => return Err(e),
            };
            let this: &Client<R> = client.borrow();
            let inner = &*this.inner;
            let replayable = body.is_replayable();
            let (now, refreshable) = (R::now(), inner.auth.is_some());
            let mut call: Call<'_, Body> = match &failed {
                None => {
                    inner
                        .core
                        .start_call(policy.as_deref(), parts, replayable, refreshable, now)
                }
                Some(failure) => inner.core.resume_call(
                    policy.as_deref(),
                    parts,
                    replayable,
                    refreshable,
                    now,
                    failure,
                ),
            };
            let mut exchange = ClientExchange::<R> {
                inner,
                body: &mut body,
                runtime: PhantomData,
            };
            let mut response = drive::<R, _>(&mut call, parts, &mut exchange).await?;
            let (attempts, deadline) = (call.attempts(), call.deadline());
            drop(call);
            let resend = ClientResend {
                client: this.clone(),
                policy: policy.take(),
                body: body.kept(replayable),
            };
            let head = std::mem::replace(parts, http::Request::new(()).into_parts().0);
            keep_call(&mut response, attempts, deadline, head, resend);
            Ok(response)
        }
    }
}

/// What sends a client's call again for a body that goes on.
struct ClientResend<R> {
    client: Client<R>,
    policy: Option<Box<RetryPolicy>>,
    /// `None` after a stream, which went out once.
    body: Option<resil_http::RequestBody<std::convert::Infallible>>,
}

impl<R: Runtime> Resend for ClientResend<R> {
    fn replayable(&self) -> bool {
        self.body.is_some()
    }

    fn resend(
        &self,
        request: http::request::Parts,
        failure: BodyFailure,
    ) -> BoxFuture<'static, Result<Response, Error>> {
        let body = self.body.as_ref().map_or(RequestBody::Empty, |b| b.again());
        Box::pin(Client::send_parts(
            self.client.clone(),
            Ok((request, self.policy.clone())),
            body,
            Some(failure),
        ))
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
}

impl<'a, R: Runtime> Exchange for ClientExchange<'a, R> {
    fn enforces_deadline(&self) -> bool {
        self.inner.transport.enforces_deadline()
    }

    fn send(
        &mut self,
        call: &Call<'_, Body>,
        parts: &http::request::Parts,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response, AttemptError>> + Send + use<'a, R> {
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

    fn drop_body(&mut self) {
        *self.body = RequestBody::Empty;
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
    resil_http::client_builder_setters!(config, settings);

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
    /// A transport of your own.
    pub fn transport(mut self, transport: impl AsyncTransport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
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
        let timeouts = [
            ("connect_timeout", settings.connect_timeout),
            ("read_timeout", self.read_timeout),
        ];
        let (core, transport) =
            self.config
                .build_client(&settings.proxy, &timeouts, self.transport, || {
                    R::default_transport(&settings)
                })?;
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
