//! One call's bookkeeping, shared by the blocking and async clients: the retry machine, the
//! observer, the last response and error, and what the call finally returns. A driver only
//! sends attempts, drains discarded bodies and waits; everything it reports goes through here.

use std::boxed::Box;
use std::string::String;
use std::sync::Arc;

use http::HeaderValue;

use resil_core::rand::SplitMix64;
use resil_core::{
    Action, Attempt, BreakerGate, CircuitBreaker, Input, Instant, RetryBudget, RetryMachine,
    RetryPolicy, Shared, TransportErrorKind, UnixTime,
};

use crate::attempt::{AttemptId, ResponseHeaders, request_info, response_head};
use crate::error::{Error, ErrorKind};
use crate::observe::{CallInfo, Hooks, Observer, Stats};
use crate::url::redact_url;

type BoxError = Box<dyn core::error::Error + Send + Sync>;

/// A response body a [`Call`] returns: it can be limited (the limit applies once the call
/// hands the response over; attempts' bodies are read by the client, not the caller), and it
/// may carry the [`CallLabel`] errors raised while reading it name.
pub trait CallBody {
    /// Fails reads past `limit` bytes from now on.
    fn set_limit(&mut self, limit: u64);
    /// The call this body answers, if the client recorded it.
    fn label(&self) -> Option<&CallLabel> {
        None
    }
}

/// The method and URI a response answered, kept with its body so an error raised later (a
/// status check, a body read) can name the call. The URI is redacted only when an error is
/// built, not on every read.
#[derive(Clone, Debug)]
pub struct CallLabel {
    method: http::Method,
    uri: http::Uri,
}

impl CallLabel {
    /// The label of the call `method uri`.
    pub fn new(method: http::Method, uri: http::Uri) -> CallLabel {
        CallLabel { method, uri }
    }
}

impl<B> Error<B> {
    /// An error of `kind` on the call `label` names (`- -` when there is none).
    pub fn for_call(kind: ErrorKind, label: Option<&CallLabel>) -> Error<B> {
        match label {
            Some(l) => Error::new(kind, l.method.as_str(), &redact_url(&l.uri)),
            None => Error::new(kind, "-", "-"),
        }
    }
}

impl<B: CallBody> Error<B> {
    /// `response` itself if its status is below 400, otherwise a status error carrying it.
    pub fn for_status(response: http::Response<B>) -> Result<http::Response<B>, Error<B>> {
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let error = Error::for_call(ErrorKind::Status(status), response.body().label());
        Err(error.with_response(Some(response)))
    }
}

/// The request id of one call.
pub(crate) enum CallId {
    /// Ids are off, or the request brought its own and nothing reads it back.
    None,
    /// The request brought its own (its headers carry it); kept for the hooks.
    Forwarded(HeaderValue),
    /// Made for this call; every attempt carries it.
    Generated(AttemptId),
}

/// What the client shares with each call: its counters, hooks, breaker and budget.
#[derive(Clone, Copy)]
pub(crate) struct CallShared<'p> {
    /// The client's counters.
    pub(crate) stats: &'p Arc<Stats>,
    /// The client's hooks, if any.
    pub(crate) hooks: Option<&'p Arc<dyn Hooks>>,
    /// The circuit breaker every attempt asks first, if any.
    pub(crate) breaker: Option<&'p (dyn Shared<CircuitBreaker> + Sync)>,
    /// That breaker's lock-free side.
    pub(crate) breaker_gate: Option<&'p BreakerGate>,
    /// The retry budget, if any.
    pub(crate) budget: Option<&'p (dyn Shared<RetryBudget> + Sync)>,
    /// The limit put on the body of the response the call returns.
    pub(crate) body_limit: u64,
}

/// Bytes a driver reads from a response it discards (a retried one, a 401 before its resend)
/// so the connection can be reused; a longer body costs the connection instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// Whether an attempt's response calls for the one credential refresh and resend: a 401, not
/// refreshed yet in this attempt, and a body that can be sent again.
pub fn refresh_credentials(
    status: http::StatusCode,
    already_refreshed: bool,
    body_replayable: bool,
) -> bool {
    status == http::StatusCode::UNAUTHORIZED && !already_refreshed && body_replayable
}

/// The next thing a driver does for a [`Call`].
#[derive(Debug)]
pub enum Step<B> {
    /// Send attempt number `attempt`, giving up on it at `deadline`. Drain
    /// [`stale_response`](Call::stale_response) first.
    Send {
        /// The attempt, to hand back with its outcome.
        attempt: Attempt,
        /// When the attempt must have finished.
        deadline: Instant,
    },
    /// Wait until `until`, then call [`Call::timer`]. Drain
    /// [`stale_response`](Call::stale_response) first, so its connection can be reused.
    Sleep {
        /// When the wait ends.
        until: Instant,
    },
    /// The call succeeded (or ended on a response the policy does not retry): return it.
    Done(http::Response<B>),
    /// The call gave up: return this error.
    Fail(Error<B>),
}

/// One logical request's bookkeeping (see the module docs). Dropping it mid-call hands any
/// breaker permit back, so a cancelled call counts as neither success nor failure.
pub struct Call<'p, B> {
    /// SplitMix64 jitter: 8 bytes of state instead of ChaCha8's ~300 in every call's state
    /// (and every async call's future), which drivers move and keep per call in flight.
    machine: RetryMachine<'p, SplitMix64>,
    observer: Observer<'p>,
    /// The redacted URL, built only when hooks or `tracing` read it.
    hook_url: String,
    id: CallId,
    body_limit: u64,
    body_prefix: usize,
    last_response: Option<http::Response<B>>,
    last_error: Option<BoxError>,
}

impl<B> core::fmt::Debug for Call<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Call")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl<'p, B: CallBody> Call<'p, B> {
    /// Starts the call for `request` (its headers already final: defaults merged) under
    /// `policy`, at `now`, with jitter seeded from `seed`. `id` is the request id
    /// the hooks report and attempts carry; `body_replayable` whether the body can be sent
    /// again.
    pub(crate) fn start(
        policy: &'p RetryPolicy,
        request: &http::request::Parts,
        body_replayable: bool,
        id: CallId,
        shared: CallShared<'p>,
        now: Instant,
        seed: u64,
    ) -> Call<'p, B> {
        let observed = shared.hooks.is_some() || cfg!(feature = "tracing");
        let hook_url = if observed {
            redact_url(&request.uri)
        } else {
            String::new()
        };
        let observer = Observer::new(shared.stats, shared.hooks.map(|h| &**h));
        observer.call_started();
        let info = request_info(&request.method, &request.headers, body_replayable);
        let mut machine = RetryMachine::with_rng(policy, info, now, seed);
        if let Some(breaker) = shared.breaker {
            machine = machine.with_breaker(breaker);
            if let Some(gate) = shared.breaker_gate {
                machine = machine.with_breaker_gate(gate);
            }
        }
        if let Some(budget) = shared.budget {
            machine = machine.with_budget(budget);
        }
        Call {
            machine,
            observer,
            hook_url,
            id,
            body_limit: shared.body_limit,
            body_prefix: policy.body_prefix_len(),
            last_response: None,
            last_error: None,
        }
    }

    fn report_events(&mut self, method: &str) {
        let call = CallInfo {
            method,
            url: &self.hook_url,
            request_id: match &self.id {
                CallId::None => None,
                CallId::Forwarded(own) => own.to_str().ok(),
                CallId::Generated(id) => id.value().to_str().ok(),
            },
        };
        while let Some(event) = self.machine.poll_event() {
            self.observer.observe(&call, event);
        }
    }

    /// What to do next for `request` (the same parts as at the start); reports every event
    /// to the hooks and counters on the way.
    pub fn next(&mut self, request: &http::request::Parts) -> Step<B> {
        let action = self.machine.poll_action();
        let method = request.method.as_str();
        self.report_events(method);
        match action {
            Action::Send { attempt, deadline } => Step::Send { attempt, deadline },
            Action::Sleep { until } => Step::Sleep { until },
            Action::Done { .. } => match self.last_response.take() {
                Some(mut response) => {
                    response.body_mut().set_limit(self.body_limit);
                    Step::Done(response)
                }
                None => Step::Fail(Error::new(
                    ErrorKind::Transport(TransportErrorKind::Other),
                    method,
                    &redact_url(&request.uri),
                )),
            },
            Action::Fail(give_up) => {
                let mut error = Error::gave_up(give_up, method, &redact_url(&request.uri));
                if let Some(e) = self.last_error.take() {
                    error = error.with_source(e);
                }
                if give_up.has_response() {
                    let mut response = self.last_response.take();
                    if let Some(r) = response.as_mut() {
                        r.body_mut().set_limit(self.body_limit);
                    }
                    error = error.with_response(response);
                }
                Step::Fail(error)
            }
        }
    }

    /// The previous attempt's response, which the call will not return: drain its body (so
    /// the connection can be reused) before the next attempt or wait, then
    /// [`discard_stale`](Self::discard_stale).
    pub fn stale_response(&mut self) -> Option<&mut http::Response<B>> {
        self.last_response.as_mut()
    }

    /// Drops the previous attempt's response.
    pub fn discard_stale(&mut self) {
        self.last_response = None;
    }

    /// How many bytes of each response body the driver reads before reporting the response
    /// (the policy's [`retry_if_body_prefix`](resil_core::RetryPolicyBuilder::retry_if_body_prefix);
    /// 0: none). The driver puts them back in front of the body it returns.
    pub fn body_prefix_len(&self) -> usize {
        self.body_prefix
    }

    /// The request id every attempt must carry, for
    /// [`attempt_request`](crate::driver::attempt_request); `None` when ids are off or the request
    /// brought its own.
    pub fn attempt_id(&self) -> Option<&AttemptId> {
        match &self.id {
            CallId::Generated(id) => Some(id),
            _ => None,
        }
    }

    /// Attempt `attempt` answered at `now`; `body_prefix` is what was read of its body for
    /// [`body_prefix_len`](Self::body_prefix_len). `wall_clock` is read only if an HTTP-date
    /// `Retry-After` could matter (the response is not a success).
    pub fn response(
        &mut self,
        now: Instant,
        attempt: Attempt,
        response: http::Response<B>,
        body_prefix: Option<&[u8]>,
        wall_clock: impl FnOnce() -> UnixTime,
    ) {
        let status = response.status();
        let headers = ResponseHeaders(response.headers());
        let mut head = response_head(status, &headers, (!status.is_success()).then(wall_clock));
        if let Some(prefix) = body_prefix {
            head = head.with_body_prefix(&prefix[..prefix.len().min(self.body_prefix)]);
        }
        self.machine
            .handle_input(now, Input::Response { attempt, head });
        self.last_response = Some(response);
        self.last_error = None;
    }

    /// Attempt `attempt` failed at `now` with an error of `kind`.
    pub fn error(
        &mut self,
        now: Instant,
        attempt: Attempt,
        kind: TransportErrorKind,
        error: BoxError,
    ) {
        self.machine
            .handle_input(now, Input::Error { attempt, kind });
        self.last_error = Some(error);
    }

    /// A wait ended, or the running attempt's deadline passed (the machine then records a
    /// timeout), at `now`.
    pub fn timer(&mut self, now: Instant) {
        self.machine.handle_input(now, Input::Timer);
    }
}
