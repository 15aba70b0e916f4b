//! [`ResilLayer`]: resil as a tower `Layer` around any HTTP `Service` whose request body can
//! be cloned (and so replayed), e.g. hyper-util's client with `Full<Bytes>` bodies.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use resil_core::{
    Call, CallBody, CallStep, CircuitBreaker, ClientCore, Hooks, RetryBudget, RetryPolicy,
    StatsSnapshot, UnixTime,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::runtime::now;
use crate::transport::classified;
use resil_async::{BoxError, BoxFuture, TransportError};

/// Adds retries, deadlines, a circuit breaker and a retry budget to an HTTP service.
///
/// Errors are [`resil_core::CallError`]s with the inner service's response body type; when
/// the machine gives up with a response in hand (e.g. 503 after the last attempt), the error
/// carries it. The layer does not read bodies, so a policy's `retry_if_body_prefix` is
/// ignored here (a `retry_if` predicate sees the status and headers), and the response body
/// it returns is the inner service's, read without the attempt's deadline (each attempt is
/// bounded up to its response head); use the [`Client`](crate::Client) for body-aware retries
/// and deadlines over the body.
#[derive(Clone)]
pub struct ResilLayer {
    core: Arc<ClientCore>,
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

    /// A layer with every part.
    pub fn from_parts(
        policy: RetryPolicy,
        breaker: Option<Arc<Mutex<CircuitBreaker>>>,
        budget: Option<Arc<Mutex<RetryBudget>>>,
        hooks: Option<Arc<dyn Hooks>>,
        seed: u64,
    ) -> ResilLayer {
        ResilLayer {
            core: Arc::new(ClientCore::new(policy, breaker, budget, hooks, seed)),
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
        }
    }
}

/// The service [`ResilLayer`] makes.
#[derive(Clone)]
pub struct ResilService<S> {
    inner: S,
    core: Arc<ClientCore>,
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
    ReqB: Clone + Send + 'static,
    ResB: Send + 'static,
{
    type Response = http::Response<ResB>;
    type Error = resil_core::CallError<ResB>;
    type Future = BoxFuture<'static, Result<http::Response<ResB>, resil_core::CallError<ResB>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt, on a clone of the inner service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ReqB>) -> Self::Future {
        let service = self.inner.clone();
        let core = self.core.clone();
        Box::pin(drive(core, service, request))
    }
}

/// The inner service's body while the call runs: the layer reads no bodies, so a limit has
/// nothing to apply to.
struct Unlimited<B>(B);

impl<B> CallBody for Unlimited<B> {
    fn set_limit(&mut self, _: u64) {}
}

async fn drive<S, ReqB, ResB>(
    core: Arc<ClientCore>,
    mut service: S,
    request: http::Request<ReqB>,
) -> Result<http::Response<ResB>, resil_core::CallError<ResB>>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
    ReqB: Clone,
{
    let (mut parts, body) = request.into_parts();
    // The body is `Clone`, so every attempt can send it again.
    let mut call: Call<'_, Unlimited<ResB>> = core.start_call(None, &mut parts, true, now());
    loop {
        match call.next(&parts) {
            CallStep::Send { attempt, deadline } => {
                call.discard_stale();
                let mut request =
                    resil_core::attempt_request(&parts, call.attempt_id(), body.clone());
                *request.extensions_mut() = parts.extensions.clone();
                let exchange = async {
                    poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(request).await
                };
                let deadline = tokio::time::Instant::from_std(deadline.to_std());
                match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(Ok(response)) => {
                        call.response(now(), attempt, response.map(Unlimited), None, UnixTime::now);
                    }
                    Ok(Err(e)) => {
                        let e: TransportError = classified(e);
                        call.error(now(), attempt, e.kind(), Box::new(e));
                    }
                    Err(_) => call.timer(now()),
                }
            }
            CallStep::Sleep { until } => {
                call.discard_stale();
                tokio::time::sleep_until(tokio::time::Instant::from_std(until.to_std())).await;
                call.timer(now());
            }
            CallStep::Done(response) => return Ok(response.map(|b| b.0)),
            CallStep::Fail(error) => return Err(error.map_body(|b| b.0)),
        }
    }
}
