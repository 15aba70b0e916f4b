//! [`ResilLayer`]: resil as a tower `Layer` around any HTTP `Service` whose request body can
//! be cloned (and so replayed), e.g. hyper-util's client with `Full<Bytes>` bodies.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use resil_async::{
    AttemptError, BoxError, BoxFuture, Exchange, ReadTimedOut, Resend, drive, keep_call,
};
use resil_core::{CircuitBreaker, Instant, RetryBudget, RetryPolicy};
use resil_http::{BodyFailure, Call, ClientConfig, ClientCore, Hooks, StatsSnapshot, driver};
use tower_layer::Layer;
use tower_service::Service;

use crate::runtime::{now, to_tokio};
use crate::transport::classified;
use crate::{Body, Error, Response, Tokio};

/// Adds retries, deadlines, a circuit breaker and a retry budget to an HTTP service.
///
/// Responses and errors are the [`Client`](crate::Client)'s: the inner service's body comes
/// back as a [`Body`] that fails past the body limit and, while it still waits for data, at
/// its attempt's deadline; a policy's `retry_if_body_prefix` is read from it (and put back);
/// a retried response's body is drained (up to 64 KiB) so its connection can be reused. When
/// the machine gives up with a response in hand (e.g. 503 after the last attempt), the error
/// carries it. A request whose headers misframe it (see
/// [`check_request_headers`](resil_http::driver::check_request_headers): a second `Host`, a
/// `Content-Length` that is no number, or one beside `Transfer-Encoding`) is refused as
/// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) before the inner service sees
/// it; whether a `Content-Length` matches the body is left to the inner service, which frames
/// the body. Credentials in the URL become `Authorization: Basic`, as in the clients (see
/// [`take_url_credentials`](resil_http::driver::take_url_credentials)). The connections are
/// the inner service's too, so resil's check of how responses are framed (which the
/// [`Client`](crate::Client) runs on its own connections) does not apply: hyper 1.x reads a
/// chunk size of more than 16 hex digits that the client refuses.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use resil_tokio::{ResilLayer, ResponseExt, RetryPolicy};
/// use tower_layer::Layer;
/// use tower_service::Service;
///
/// let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<Full<Bytes>>();
/// let mut service = ResilLayer::new(RetryPolicy::default()).layer(hyper);
/// let request = http::Request::get("http://127.0.0.1:8080/items").body(Full::new(Bytes::new()))?;
/// let text = service.call(request).await?.text().await?;
/// # let _ = text;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ResilLayer {
    core: Arc<ClientCore>,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for ResilLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilLayer")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl ResilLayer {
    /// A layer with this policy, no breaker, no budget, seed 0.
    pub fn new(policy: RetryPolicy) -> ResilLayer {
        ResilLayer::from_parts(policy, None, None, None, 0)
    }

    /// A layer with a client's configuration: policy, timeouts, breaker, budget, limiters, default
    /// headers, request id, body limit, hooks and seed. A base URL resolves requests whose URI
    /// has no host (`/items`); `RESIL_READ_TIMEOUT`, if the configuration read the
    /// environment, becomes the layer's [`read_timeout`](Self::read_timeout), while the
    /// connect timeout is the inner service's business and is not applied. Fails as
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) does.
    pub fn from_config(mut config: ClientConfig) -> Result<ResilLayer, Error> {
        let read_timeout = config.take_transport_env().read_timeout;
        Ok(ResilLayer {
            core: Arc::new(config.build()?),
            read_timeout,
        })
    }

    /// The longest wait for data within an attempt, as
    /// [`ClientBuilder::read_timeout`](crate::ClientBuilder::read_timeout): for the response
    /// head from the start of the attempt, then for each piece of the body. A stalled head
    /// ends the attempt as a timeout ([`ReadTimedOut`](crate::ReadTimedOut) is the cause),
    /// retried as the policy says; a stalled body fails the read. Zero is refused.
    pub fn read_timeout(mut self, timeout: Duration) -> Result<ResilLayer, Error> {
        ClientConfig::check_timeouts(&[("read_timeout", Some(timeout))])?;
        self.read_timeout = Some(timeout);
        Ok(self)
    }

    /// A layer with every part (no request id, no body limit, no limiter: give one with
    /// [`from_config`](Self::from_config) and [`ClientConfig::limiter`]).
    pub fn from_parts(
        policy: RetryPolicy,
        breaker: Option<Arc<Mutex<CircuitBreaker>>>,
        budget: Option<Arc<Mutex<RetryBudget>>>,
        hooks: Option<Arc<dyn Hooks>>,
        seed: u64,
    ) -> ResilLayer {
        ResilLayer {
            core: Arc::new(ClientCore::new(policy, breaker, budget, hooks, seed)),
            read_timeout: None,
        }
    }

    /// Counters for every call through services made by this layer.
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats()
    }
}

impl<S> Layer<S> for ResilLayer {
    type Service = ResilService<S>;
    fn layer(&self, inner: S) -> ResilService<S> {
        ResilService {
            inner,
            core: self.core.clone(),
            read_timeout: self.read_timeout,
        }
    }
}

/// The service [`ResilLayer`] makes.
#[derive(Clone)]
pub struct ResilService<S> {
    inner: S,
    core: Arc<ClientCore>,
    read_timeout: Option<Duration>,
}

impl<S> fmt::Debug for ResilService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for ResilService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqB: Clone + Default + Send + 'static,
    ResB: HttpBody + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt, on a clone of the inner service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ReqB>) -> Self::Future {
        let service = self.inner.clone();
        let core = self.core.clone();
        let (parts, body) = request.into_parts();
        Box::pin(call(core, service, parts, body, self.read_timeout, None))
    }
}

/// The inner service's body as resil's, its chunks as `Bytes` (no copy when they already
/// are), unlimited until the call hands it out.
fn into_body<B>(body: B) -> Body
where
    B: HttpBody + Send + 'static,
    B::Error: Into<BoxError>,
{
    Body::new(
        body.map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))),
        u64::MAX,
    )
}

/// The call for `parts` and `body` through `service` (`failed` is set for the call that goes
/// on for the rest of a body); its response's body keeps it to go on with if it fails.
async fn call<S, ReqB, ResB>(
    core: Arc<ClientCore>,
    service: S,
    mut parts: http::request::Parts,
    body: ReqB,
    read_timeout: Option<Duration>,
    failed: Option<BodyFailure>,
) -> Result<Response, Error>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqB: Clone + Default + Send + 'static,
    ResB: HttpBody + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    if parts.uri.authority().is_none() {
        parts.uri = core.resolve_url(&parts.method, &parts.uri.to_string())?;
    }
    // A generic body's length is unknown here: only the headers are checked against each
    // other.
    driver::check_request_headers(&parts, None)?;
    driver::take_url_credentials(&mut parts);
    // The body is `Clone`, so every attempt can send it again; no credentials to refresh.
    let mut call: Call<'_, Body> = match &failed {
        None => core.start_call(None, &mut parts, true, false, now()),
        Some(failure) => core.resume_call(None, &mut parts, true, false, now(), failure),
    };
    let mut exchange = ServiceExchange {
        service,
        body,
        read_timeout,
    };
    let mut response = drive::<Tokio, _>(&mut call, &mut parts, &mut exchange).await?;
    let (attempts, deadline) = (call.attempts(), call.deadline());
    drop(call);
    let resend = ServiceResend {
        core: core.clone(),
        exchange,
    };
    keep_call(&mut response, attempts, deadline, parts, resend);
    Ok(response)
}

/// What sends a layer's call again for a body that goes on: the inner service and the
/// request's body.
struct ServiceResend<S, ReqB> {
    core: Arc<ClientCore>,
    exchange: ServiceExchange<S, ReqB>,
}

impl<S, ReqB, ResB> Resend for ServiceResend<S, ReqB>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqB: Clone + Default + Send + 'static,
    ResB: HttpBody + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn replayable(&self) -> bool {
        true
    }

    fn resend(
        &self,
        request: http::request::Parts,
        failure: BodyFailure,
    ) -> BoxFuture<'static, Result<Response, Error>> {
        let exchange = &self.exchange;
        Box::pin(call(
            self.core.clone(),
            exchange.service.clone(),
            request,
            exchange.body.clone(),
            exchange.read_timeout,
            Some(failure),
        ))
    }
}

/// The inner service as the way out of every attempt: the request's own extensions go
/// with each one, and the read timeout bounds the response head.
struct ServiceExchange<S, ReqB> {
    service: S,
    body: ReqB,
    read_timeout: Option<Duration>,
}

impl<S, ReqB, ResB> Exchange for ServiceExchange<S, ReqB>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqB: Clone + Default + Send,
    ResB: HttpBody + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn drop_body(&mut self) {
        self.body = ReqB::default();
    }

    fn send(
        &mut self,
        call: &Call<'_, Body>,
        parts: &http::request::Parts,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response, AttemptError>> + Send + use<S, ReqB, ResB> {
        let mut request = call.request(parts, self.body.clone());
        *request.extensions_mut() = parts.extensions.clone();
        let read_timeout = self.read_timeout;
        // The read timeout needs a timer of its own only when it ends first.
        let stalled = driver::read_deadline(read_timeout, now, deadline);
        // Each attempt gets a clone, readied on its own (tower's rule for a service used from
        // several futures at once: a hedging call's attempts are).
        let mut service = self.service.clone();
        async move {
            let service = &mut service;
            let head = async {
                poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(classified)?;
                service.call(request).await.map_err(classified)
            };
            let response = match stalled {
                Some(at) => tokio::time::timeout_at(to_tokio(at), head)
                    .await
                    .unwrap_or_else(|_| Err(ReadTimedOut.into())),
                None => head.await,
            }?;
            Ok(response.map(|b| into_body(b).with_read_timeout::<Tokio>(deadline, read_timeout)))
        }
    }
}
