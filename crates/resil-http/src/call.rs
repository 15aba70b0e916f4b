//! [`Call`]: one call's bookkeeping, shared by every driver. A driver only carries out its
//! [`Step`]s and reports what happened; every decision is the machine's or made here.

use std::boxed::Box;
use std::string::String;
use std::sync::Arc;

use http::HeaderValue;

use resil_core::rand::SplitMix64;
use resil_core::{
    Action, Attempt, BreakerGate, CircuitBreaker, Event, Input, Instant, LatencySketch,
    RedirectDecision, RedirectInput, RetryBudget, RetryMachine, RetryPolicy, Shared,
    TransportErrorKind, UnixTime,
};

use crate::attempt::{AttemptId, ResponseHeaders, attempt_request, request_info, response_head};
use crate::config::ClientCore;
use crate::error::{Error, ErrorKind};
use crate::observe::{BodyFailure, CallInfo, Hooks, RedirectInfo};
use crate::redirect::{self, Chain, RedirectError};
use crate::telemetry::CallTelemetry;
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

    /// The method.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The URI, credentials and all (redact before showing it).
    pub fn uri(&self) -> &http::Uri {
        &self.uri
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

/// What a call's retry machine shares with the client: the breaker and budget.
#[derive(Clone, Copy)]
pub(crate) struct CallShared<'p> {
    /// The client's hooks, if any.
    pub(crate) hooks: Option<&'p Arc<dyn Hooks>>,
    /// The circuit breaker every attempt asks first, if any.
    pub(crate) breaker: Option<&'p (dyn Shared<CircuitBreaker> + Sync)>,
    /// That breaker's lock-free side.
    pub(crate) breaker_gate: Option<&'p BreakerGate>,
    /// The retry budget, if any.
    pub(crate) budget: Option<&'p (dyn Shared<RetryBudget> + Sync)>,
    /// Recent latencies, fed by a hedging policy's calls.
    pub(crate) latency: &'p (dyn Shared<LatencySketch> + Sync),
    /// The limiters every attempt asks, in order, if any.
    pub(crate) limiters: Option<&'p crate::config::LimiterList>,
}

/// Bytes a driver reads from a response it discards (a retried one, a 401 before its resend)
/// so the connection can be reused; a longer body costs the connection instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// The next thing a driver does for a [`Call`]: what [`Call::poll_step`] answers.
///
/// | step | the driver | then |
/// |---|---|---|
/// | `Send` | sends [`Call::request`] (with credentials), abandoning it at `deadline` | [`handle_response`](Call::handle_response), [`handle_error`](Call::handle_error), or [`handle_timeout`](Call::handle_timeout) at the deadline |
/// | `Release` | reads up to [`DRAIN_LIMIT`] bytes of the body and drops it, so the connection can be reused | polls again |
/// | `Refresh` | refreshes the credentials, giving up at `deadline` | [`handle_refreshed`](Call::handle_refreshed) |
/// | `ReadPrefix` | reads `len` bytes of [`response_mut`](Call::response_mut)'s body and puts them back in front | [`handle_prefix`](Call::handle_prefix), or [`handle_error`](Call::handle_error) if the read failed |
/// | `Redirect` | drops its body if told (the call rewrote the request for the next hop) | polls again |
/// | `Sleep` | waits until `until` (a zero wait is never asked for) | [`handle_timeout`](Call::handle_timeout) |
/// | `Done` | returns the response | — |
/// | `Fail` | returns the error | — |
#[derive(Debug)]
#[must_use = "the driver must carry out the step"]
pub enum Step<B> {
    /// Send attempt `attempt`, giving up on it at `deadline`.
    Send {
        /// The attempt, to hand back with its outcome.
        attempt: Attempt,
        /// When the attempt must have finished.
        deadline: Instant,
    },
    /// A response the call will not return (a retried one, a 401 before its resend): drain
    /// it (bounded) and drop it.
    Release(http::Response<B>),
    /// The server refused the credentials (401): refresh them once, by `deadline`.
    Refresh {
        /// The attempt's deadline: a refresh still running then is given up.
        deadline: Instant,
    },
    /// The policy's `retry_if` reads the start of the body: read `len` bytes of it.
    ReadPrefix {
        /// The attempt the response answers, for [`handle_error`](Call::handle_error).
        attempt: Attempt,
        /// How many bytes to read (fewer if the body ends first).
        len: usize,
    },
    /// The call follows a redirect: it rewrote the request (URL, method, headers) for the
    /// next hop. Send no credentials from now on unless [`Call::sends_credentials`] says so.
    Redirect {
        /// The next hop is a GET without a body: send none (an empty one) from now on.
        drop_body: bool,
    },
    /// Stop attempt `attempt` and drop whatever it brings (a hedging call: it lost to
    /// another attempt, or its deadline passed while others are out). The driver never
    /// waits for it to finish; on HTTP/1.1 its connection is closed, not reused.
    Cancel {
        /// The attempt to stop.
        attempt: Attempt,
    },
    /// Wait until `until` (while attempts are out: until one of them answers, or `until`).
    Sleep {
        /// When the wait ends.
        until: Instant,
    },
    /// The call succeeded (or ended on a response the policy does not retry): return it.
    Done(http::Response<B>),
    /// The call gave up: return this error.
    Fail(Error<B>),
}

/// Why [`Call`] holds the attempt's response back from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// It holds none (or only the last, already reported).
    None,
    /// A 401 waiting for the credential refresh.
    Refresh,
    /// A response waiting for its body prefix.
    Prefix,
    /// The credentials were refreshed: release the 401, then send the attempt again.
    Resend,
}

/// Whether a call may still refresh credentials after a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// No credentials to refresh, or a body that cannot be sent again.
    Never,
    /// Once, in the running attempt.
    Allowed,
    /// Done in the running attempt.
    Used,
}

/// One logical request: the retry machine, the observer that feeds hooks and statistics,
/// and what the drivers would otherwise each decide on their own (releasing a response the
/// call will not return, the one credential refresh after a 401, the body prefix a
/// `retry_if` reads). Dropping it mid-call hands any breaker permit back, so a cancelled call
/// counts as neither success nor failure.
///
/// # Driving it
///
/// Inputs are `handle_*`, outputs [`poll_step`](Self::poll_step). After every `handle_*`,
/// poll until the answer is a step that needs IO; carry out each [`Step`] as its table says.
/// Instants passed in never go back (an earlier one is read as the latest). A driver decides
/// nothing: it sends, drains, refreshes, reads and waits when told, and reports what
/// happened. A `Done` or `Fail` ends the call.
pub struct Call<'p, B> {
    /// SplitMix64 jitter: 8 bytes of state instead of ChaCha8's ~300 in every call's state
    /// (and every async call's future), which drivers move and keep per call in flight.
    /// A redirect's next hop gets a machine of its own, under the same deadline.
    machine: RetryMachine<'p, SplitMix64>,
    core: &'p ClientCore,
    /// The redacted URL, built only when hooks or `tracing` read it.
    hook_url: String,
    id: CallId,
    body_prefix: usize,
    /// The attempt's response: held back from the machine (see `hold`), or the last one
    /// reported, which the call returns, attaches to its error, or releases.
    response: Option<http::Response<B>>,
    hold: Hold,
    refresh: Refresh,
    /// The running attempt and its deadline.
    attempt: Attempt,
    deadline: Instant,
    /// The wall clock read when a held response arrived (for an HTTP-date `Retry-After`).
    wall: Option<UnixTime>,
    /// The machine's `Send` or `Sleep`, kept while a stale response is released first.
    next: Option<Action>,
    last_error: Option<BoxError>,
    /// Whether the driver can refresh credentials (after a 401).
    refreshable: bool,
    /// Redirects followed so far, from the first.
    chain: Option<Box<Chain>>,
    /// Spans, metrics and trace context (feature `otel`; empty without it).
    otel: CallTelemetry<'p>,
}

impl<B> core::fmt::Debug for Call<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Call")
            .field("machine", &self.machine)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl<'p, B: CallBody> Call<'p, B> {
    /// Starts the call for `request` (its headers already final: defaults merged) under
    /// `policy`, at `now`, with jitter seeded from `seed`. `id` is the request id
    /// the hooks report and attempts carry; `body_replayable` whether the body can be sent
    /// again; `refreshable` whether the client can refresh credentials.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        core: &'p ClientCore,
        policy: &'p RetryPolicy,
        request: &http::request::Parts,
        body_replayable: bool,
        refreshable: bool,
        id: CallId,
        shared: CallShared<'p>,
        now: Instant,
        seed: u64,
        failed: Option<&BodyFailure>,
    ) -> Call<'p, B> {
        let observed = shared.hooks.is_some() || crate::observe::tracing_on();
        let hook_url = if observed {
            redact_url(&request.uri)
        } else {
            String::new()
        };
        let mut machine = machine_for(policy, request, body_replayable, &shared, now, seed);
        let otel = CallTelemetry::start(core, request, now, failed);
        match failed {
            None => core.observer().call_started(),
            Some(failure) => {
                let info = call_info(&hook_url, &id, request.method.as_str());
                core.observer().body_failed(&info, failure);
                machine = machine
                    .with_deadline(failure.deadline)
                    .continuing()
                    .after_body_failure(failure.attempts, failure.kind);
            }
        }
        Call {
            machine,
            core,
            hook_url,
            id,
            body_prefix: policy.body_prefix_len(),
            response: None,
            hold: Hold::None,
            refresh: if refreshable && body_replayable {
                Refresh::Allowed
            } else {
                Refresh::Never
            },
            attempt: Attempt::new(0),
            deadline: now,
            wall: None,
            next: None,
            last_error: None,
            refreshable,
            chain: None,
            otel,
        }
    }

    /// The call as hooks see it.
    fn info<'a>(&'a self, method: &'a str) -> CallInfo<'a> {
        call_info(&self.hook_url, &self.id, method)
    }

    /// Reports the machine's events; a hop that ended on a redirect the call acts on is no
    /// success of the call's (`redirected`).
    fn report_events(&mut self, method: &str, redirected: bool) {
        let call = call_info(&self.hook_url, &self.id, method);
        let observer = self.core.observer();
        let now = self.machine.now();
        while let Some(event) = self.machine.poll_event() {
            if redirected && matches!(event, Event::Completed { .. }) {
                continue;
            }
            self.otel.event(&event, now);
            observer.observe(&call, event);
        }
    }

    /// Attempts sent so far (by this hop, after a redirect; counted on from the call's
    /// earlier attempts when it goes on after a body failed).
    pub fn attempts(&self) -> u32 {
        self.machine.attempts()
    }

    /// When the call must be over.
    pub fn deadline(&self) -> Instant {
        self.machine.deadline()
    }

    /// Whether the call hedges (its policy does and its request may be sent twice at once):
    /// several attempts may then be out at once. A driver runs such a call in a loop that
    /// keeps each attempt out until it answers or a [`Step::Cancel`] stops it, and feeds each
    /// answer with its attempt.
    pub fn hedges(&self) -> bool {
        self.machine.hedges()
    }

    /// When the next hedge may go out ([`Instant::MAX`]: none is due). A driver may send a
    /// hedging call's first attempt as any other, waiting for its answer or this instant,
    /// whichever comes first, and keep attempts side by side only once it passes: a call
    /// answered before its hedge is due then costs what an unhedged one does.
    pub fn next_hedge(&self) -> Instant {
        self.machine.next_hedge()
    }

    /// Whether the driver adds its credentials (an auth provider's) to the requests it
    /// sends: not after a redirect to another origin, for the rest of the call.
    pub fn sends_credentials(&self) -> bool {
        self.chain.as_ref().is_none_or(|c| !c.stripped)
    }

    /// What to do next for `request` (the same parts as at the start, which the call
    /// rewrites when it follows a redirect); reports every event to the hooks and counters on
    /// the way.
    pub fn poll_step(&mut self, request: &mut http::request::Parts) -> Step<B> {
        if !self.otel.is_on() {
            // Straight through: the step is built in the caller's slot, never moved.
            return self.next_step(request);
        }
        let step = self.next_step(request);
        self.otel.step(&step, request, self.machine.now());
        step
    }

    #[inline]
    fn next_step(&mut self, request: &mut http::request::Parts) -> Step<B> {
        match self.hold {
            Hold::None => {}
            Hold::Refresh => {
                return Step::Refresh {
                    deadline: self.deadline,
                };
            }
            Hold::Prefix => {
                return Step::ReadPrefix {
                    attempt: self.attempt,
                    len: self.body_prefix,
                };
            }
            Hold::Resend => return self.resend(),
        }
        let action = match self.next.take() {
            Some(action) => action,
            None => {
                let action = self.machine.poll_action();
                let redirect = match action {
                    Action::Done { .. } => self.redirect(request),
                    _ => None,
                };
                self.report_events(request.method.as_str(), redirect.is_some());
                if let Some((decision, target)) = redirect {
                    return self.act_on_redirect(request, decision, target);
                }
                action
            }
        };
        match action {
            Action::Send { attempt, deadline } => {
                if let Some(stale) = self.response.take() {
                    self.next = Some(action);
                    return Step::Release(stale);
                }
                self.attempt = attempt;
                self.deadline = deadline;
                if self.refresh == Refresh::Used {
                    self.refresh = Refresh::Allowed;
                }
                Step::Send { attempt, deadline }
            }
            // The response held is the winner's (a cancel comes before the `Done`).
            Action::Cancel { attempt } => Step::Cancel { attempt },
            Action::Sleep { until } => match self.response.take() {
                Some(stale) => {
                    self.next = Some(action);
                    Step::Release(stale)
                }
                None => Step::Sleep { until },
            },
            Action::Done { .. } => match self.response.take() {
                Some(mut response) => {
                    response.body_mut().set_limit(self.core.body_limit());
                    Step::Done(response)
                }
                None => Step::Fail(Error::new(
                    ErrorKind::Transport(TransportErrorKind::Other),
                    request.method.as_str(),
                    &redact_url(&request.uri),
                )),
            },
            Action::Fail(give_up) => {
                let url = redact_url(&request.uri);
                let mut error = Error::gave_up(give_up, request.method.as_str(), &url);
                if let Some(e) = self.last_error.take() {
                    error = error.with_source(e);
                }
                if give_up.has_response() {
                    let mut response = self.response.take();
                    if let Some(r) = response.as_mut() {
                        r.body_mut().set_limit(self.core.body_limit());
                    }
                    error = error.with_response(response);
                }
                Step::Fail(error)
            }
        }
    }

    /// The redirect the finished hop's response asks for, if it is one resil-core says to
    /// follow or to fail on (`None`: no 3xx, or it is the answer).
    #[inline]
    fn redirect(
        &self,
        request: &http::request::Parts,
    ) -> Option<(RedirectDecision, Option<http::Uri>)> {
        let response = self.response.as_ref()?;
        if !response.status().is_redirection() {
            return None;
        }
        let policy = self.core.redirects();
        if !policy.is_enabled() {
            return None;
        }
        let (decision, target) = self.decide_redirect(request, response, policy);
        (decision != RedirectDecision::Return).then_some((decision, target))
    }

    #[cold]
    fn decide_redirect(
        &self,
        request: &http::request::Parts,
        response: &http::Response<B>,
        policy: resil_core::RedirectPolicy,
    ) -> (RedirectDecision, Option<http::Uri>) {
        let visited = self.chain.as_ref().map_or(&[][..], |c| &c.visited[..]);
        let location = response.headers().get(http::header::LOCATION);
        let (target, uri) = redirect::resolve(&request.uri, location, visited);
        let input = RedirectInput {
            status: response.status().as_u16(),
            method: request_info(&request.method, &request.headers, true).method,
            from_https: request.uri.scheme() == Some(&http::uri::Scheme::HTTPS),
            target,
            hops: self.chain.as_ref().map_or(0, |c| c.hops),
            body_replayable: self.machine.request().body_replayable,
        };
        (policy.decide(&input), uri)
    }

    /// Follows a redirect (rewriting `request` for the next hop, under a machine of its own
    /// with what is left of the deadline) or ends the call on it.
    #[cold]
    fn act_on_redirect(
        &mut self,
        request: &mut http::request::Parts,
        decision: RedirectDecision,
        target: Option<http::Uri>,
    ) -> Step<B> {
        let status = self.response.as_ref().map_or(0, |r| r.status().as_u16());
        let chain = self.chain.get_or_insert_with(Box::default);
        let (hop, uri) = match (decision, target) {
            (RedirectDecision::Follow(hop), Some(uri)) => (hop, uri),
            (RedirectDecision::Fail(refusal), target) => {
                let mut visited = std::mem::take(&mut chain.visited);
                visited.push(redirect::normalised(&request.uri));
                let cause = RedirectError::new(refusal, &visited, target.as_ref());
                let info = RedirectInfo {
                    hop: chain.hops + 1,
                    status,
                    to: target.as_ref().map(redact_url).unwrap_or_default(),
                    refused: Some(refusal),
                };
                self.core
                    .observer()
                    .redirect(&self.info(request.method.as_str()), &info);
                let mut error = Error::new(
                    ErrorKind::Redirect(refusal),
                    request.method.as_str(),
                    &redact_url(&request.uri),
                )
                .with_source(cause);
                error.set_attempts(self.machine.attempts());
                let mut response = self.response.take();
                if let Some(r) = response.as_mut() {
                    r.body_mut().set_limit(self.core.body_limit());
                }
                return Step::Fail(error.with_response(response));
            }
            // resil-core follows only a target it was told is an http(s) URL.
            _ => {
                return Step::Fail(Error::new(
                    ErrorKind::Transport(TransportErrorKind::Other),
                    request.method.as_str(),
                    &redact_url(&request.uri),
                ));
            }
        };
        chain.hops += 1;
        chain.visited.push(redirect::normalised(&request.uri));
        chain.stripped |= hop.strip_credentials;
        let strip = chain.stripped;
        let info = RedirectInfo {
            hop: chain.hops,
            status,
            to: redact_url(&uri),
            refused: None,
        };
        redirect::rewrite(request, uri, hop, strip, self.core.sensitive_headers());
        self.core
            .observer()
            .redirect(&self.info(request.method.as_str()), &info);
        if !self.hook_url.is_empty() {
            self.hook_url = redact_url(&request.uri);
        }
        let body_replayable = hop.to_get || self.machine.request().body_replayable;
        self.refresh = if self.refreshable && body_replayable && !strip {
            Refresh::Allowed
        } else {
            Refresh::Never
        };
        let shared = self.core.shared_for(&request.uri);
        let (deadline, now) = (self.machine.deadline(), self.machine.now());
        let seed = self.core.next_seed();
        self.machine = machine_for(
            self.machine.policy(),
            request,
            body_replayable,
            &shared,
            now,
            seed,
        )
        .with_deadline(deadline)
        .continuing();
        // The 3xx stays until the next poll releases it.
        Step::Redirect {
            drop_body: hop.to_get,
        }
    }

    /// The 401 goes before the attempt is sent again.
    #[cold]
    fn resend(&mut self) -> Step<B> {
        if let Some(unauthorized) = self.response.take() {
            return Step::Release(unauthorized);
        }
        self.hold = Hold::None;
        Step::Send {
            attempt: self.attempt,
            deadline: self.deadline,
        }
    }

    /// The request attempt `Send` asks for: `parts`' method, URI, version and headers (not
    /// its extensions), plus the call's request id if it makes one, around `body`.
    #[inline]
    pub fn request<T>(&self, parts: &http::request::Parts, body: T) -> http::Request<T> {
        let mut request = attempt_request(parts, self.attempt_id(), body);
        // W3C trace context of this attempt's span (feature `otel`, when a subscriber wants it).
        self.otel.inject(request.headers_mut());
        request
    }

    /// The request id every attempt must carry; `None` when ids are off or the request
    /// brought its own.
    fn attempt_id(&self) -> Option<&AttemptId> {
        match &self.id {
            CallId::Generated(id) => Some(id),
            _ => None,
        }
    }

    /// Attempt `attempt`'s response head arrived at `now`. `wall_clock` is read only if an
    /// HTTP-date `Retry-After` could matter (the response is not a success).
    pub fn handle_response(
        &mut self,
        now: Instant,
        attempt: Attempt,
        response: http::Response<B>,
        wall_clock: impl FnOnce() -> UnixTime,
    ) {
        if self.hold != Hold::None || (attempt != self.attempt && !self.machine.is_out(attempt)) {
            // A late answer of an abandoned attempt: the machine would ignore it too.
            return;
        }
        if let Some(problem) = crate::headers::response_framing_problem(response.headers()) {
            // Its connection cannot be trusted either: dropped, never drained for reuse.
            drop(response);
            self.handle_error(now, attempt, TransportErrorKind::Protocol, problem.into());
            return;
        }
        self.otel.response(now, attempt, &response);
        let status = response.status();
        let wall = (!status.is_success()).then(wall_clock);
        // While a hedging call has others out, a 401 is reported as it is (no refresh).
        if status == http::StatusCode::UNAUTHORIZED
            && self.refresh == Refresh::Allowed
            && self.machine.attempts_out() <= 1
        {
            self.hold_back(response, wall, Hold::Refresh);
        } else if self.body_prefix > 0 {
            self.hold_back(response, wall, Hold::Prefix);
        } else {
            self.report(now, attempt, response, wall, None);
        }
    }

    #[cold]
    fn hold_back(&mut self, response: http::Response<B>, wall: Option<UnixTime>, hold: Hold) {
        self.response = Some(response);
        self.wall = wall;
        self.hold = hold;
    }

    /// Hands the attempt's response to the machine; the call keeps it.
    fn report(
        &mut self,
        now: Instant,
        attempt: Attempt,
        response: http::Response<B>,
        wall: Option<UnixTime>,
        body_prefix: Option<&[u8]>,
    ) {
        let headers = ResponseHeaders(response.headers());
        let mut head = response_head(response.status(), &headers, wall);
        if let Some(prefix) = body_prefix {
            head = head.with_body_prefix(&prefix[..prefix.len().min(self.body_prefix)]);
        }
        self.machine
            .handle_input(now, Input::Response { attempt, head });
        self.response = Some(response);
        self.last_error = None;
    }

    /// The response [`Step::ReadPrefix`] asks to read from.
    pub fn response_mut(&mut self) -> Option<&mut http::Response<B>> {
        match self.hold {
            Hold::Prefix => self.response.as_mut(),
            _ => None,
        }
    }

    /// The body prefix [`Step::ReadPrefix`] asked for was read at `now` (fewer bytes if the
    /// body ended first), and put back in front of the body.
    pub fn handle_prefix(&mut self, now: Instant, prefix: &[u8]) {
        if self.hold != Hold::Prefix {
            return;
        }
        self.hold = Hold::None;
        if let Some(response) = self.response.take() {
            self.report(now, self.attempt, response, self.wall, Some(prefix));
        }
    }

    /// The refresh [`Step::Refresh`] asked for ended at `now`; `refreshed` whether it
    /// obtained new credentials. Refreshed before the deadline, the attempt is sent once
    /// more; otherwise the 401 is its answer.
    pub fn handle_refreshed(&mut self, now: Instant, refreshed: bool) {
        if self.hold != Hold::Refresh {
            return;
        }
        self.refresh = Refresh::Used;
        if refreshed && now < self.deadline {
            self.hold = Hold::Resend;
            return;
        }
        self.hold = Hold::None;
        if let Some(unauthorized) = self.response.take() {
            if self.body_prefix > 0 {
                self.hold_back(unauthorized, self.wall, Hold::Prefix);
            } else {
                self.report(now, self.attempt, unauthorized, self.wall, None);
            }
        }
    }

    /// Attempt `attempt` failed at `now` with an error of `kind`: in the transport, or while
    /// reading the body prefix.
    pub fn handle_error(
        &mut self,
        now: Instant,
        attempt: Attempt,
        kind: TransportErrorKind,
        error: BoxError,
    ) {
        if self.hold != Hold::None && attempt == self.attempt {
            self.hold = Hold::None;
            self.response = None;
        }
        self.otel.error(now, attempt, kind);
        self.machine
            .handle_input(now, Input::Error { attempt, kind });
        self.last_error = Some(error);
    }

    /// A wait ended, or the running attempt's deadline passed (the machine then records a
    /// timeout), at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold != Hold::None {
            self.hold = Hold::None;
            self.response = None;
        }
        self.machine.handle_input(now, Input::Timer);
        self.otel.timeout(now, |a| self.machine.is_out(a));
    }
}

/// The call `hook_url` names (redacted), as hooks see it.
#[inline]
fn call_info<'a>(hook_url: &'a str, id: &'a CallId, method: &'a str) -> CallInfo<'a> {
    CallInfo {
        method,
        url: hook_url,
        request_id: match id {
            CallId::None => None,
            CallId::Forwarded(own) => own.to_str().ok(),
            CallId::Generated(id) => id.value().to_str().ok(),
        },
    }
}

/// A retry machine for one hop of `request`, with the client's breaker (its origin's, with a
/// breaker per origin) and budget.
#[inline]
fn machine_for<'p>(
    policy: &'p RetryPolicy,
    request: &http::request::Parts,
    body_replayable: bool,
    shared: &CallShared<'p>,
    now: Instant,
    seed: u64,
) -> RetryMachine<'p, SplitMix64> {
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
    if policy.hedging().is_some() {
        machine = machine.with_latency(shared.latency);
    }
    if let Some(limiters) = shared.limiters {
        machine = machine.with_limiters(limiters);
    }
    machine
}
