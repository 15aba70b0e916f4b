//! The one async loop: it carries out a resil-http [`Call`]'s steps on a [`Runtime`]'s clock
//! and timer, sending each attempt through an [`Exchange`]. The client and resil-tokio's
//! tower service both run it; neither decides anything.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;

use resil_core::Instant;
use resil_http::{Call, Step, driver};

use crate::{AuthError, Body, BoxFuture, Error, Response, Runtime, TransportError};

/// Why an attempt produced no response.
#[derive(Debug)]
pub enum AttemptError {
    /// The exchange failed: the call reports it to its retry machine.
    Transport(TransportError),
    /// The attempt could not be sent as it stands (its credentials could not be added, or the
    /// transport cannot carry it): the call ends with this error, unretried.
    Unsendable(Error),
}

impl From<TransportError> for AttemptError {
    fn from(e: TransportError) -> AttemptError {
        AttemptError::Transport(e)
    }
}

/// What one call's attempts go through: the async client's transport and credentials, or a
/// tower service. [`drive`] asks it to send each attempt and, after a 401, to refresh.
pub trait Exchange {
    /// Whether [`send`](Self::send) itself ends the exchange by the deadline it is given; the
    /// loop then arms no timer of its own.
    fn enforces_deadline(&self) -> bool {
        false
    }

    /// Sends the request [`Call::request`] makes of `parts` for the running attempt, which
    /// must be over by `deadline`; the response's body is still to be read. The future
    /// borrows neither the exchange nor the call, so a hedging call has several out at once.
    fn send(
        &mut self,
        call: &Call<'_, Body>,
        parts: &http::request::Parts,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response, AttemptError>> + Send + use<Self>;

    /// Sends no body from now on: a redirect turned the request into a GET.
    fn drop_body(&mut self);

    /// Obtains fresh credentials after the server refused them, if there are any to refresh.
    fn refresh(&self) -> Option<BoxFuture<'_, Result<(), AuthError>>> {
        None
    }
}

/// Runs `work` until it finishes or `deadline` passes (`None` then). `work` is pinned by the
/// caller, so its state is not copied into this future.
pub(crate) async fn until<R: Runtime, F: Future + ?Sized>(
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

/// Carries out `call`'s steps for the request `parts` until it is done, sending through
/// `exchange` on runtime `R`. Dropping the future at any point drops nothing the call needs
/// back: the caller's `Call`, dropped in turn, hands its breaker permit back.
pub async fn drive<R: Runtime, X: Exchange>(
    call: &mut Call<'_, Body>,
    parts: &mut http::request::Parts,
    exchange: &mut X,
) -> Result<Response, Error> {
    loop {
        match call.poll_step(parts) {
            Step::Redirect { drop_body } => {
                if drop_body {
                    exchange.drop_body();
                }
            }
            Step::Send { attempt, deadline } => {
                let enforced = exchange.enforces_deadline();
                // A hedging call's first attempt goes as any other until its hedge is due.
                let hedge_at = call.next_hedge();
                let wake = if enforced {
                    hedge_at
                } else {
                    deadline.min(hedge_at)
                };
                // The exchange reads the call while it sends: the call is updated after.
                let mut sending = pin!(exchange.send(call, parts, deadline));
                let outcome = if wake == Instant::MAX {
                    Some(sending.as_mut().await)
                } else {
                    until::<R, _>(wake, sending.as_mut()).await
                };
                let now = R::now();
                if outcome.is_none() && wake == hedge_at && hedge_at != Instant::MAX {
                    // The hedge is due: from here on, attempts side by side (in a box, so
                    // their slots do not grow every call's future).
                    call.handle_timeout(now);
                    let first = (attempt, sending);
                    return Box::pin(drive_hedged::<R, X, _>(call, parts, exchange, first)).await;
                }
                match outcome {
                    Some(outcome) => hand_over(call, now, attempt, outcome)?,
                    // The attempt's deadline passed: the machine records a timeout.
                    None => call.handle_timeout(now),
                }
            }
            // Bounded by the body's own deadline, set when its attempt was sent.
            Step::Release(mut stale) => stale.body_mut().drain(driver::DRAIN_LIMIT).await,
            Step::Refresh { deadline } => refresh::<R, X>(call, exchange, deadline).await,
            Step::ReadPrefix { attempt, len } => {
                // The body fails at the attempt's deadline and read timeout by itself.
                let read = match call.response_mut() {
                    Some(response) => Some(response.body_mut().read_prefix(len).await),
                    None => None,
                };
                let now = R::now();
                match read {
                    Some(Err(e)) => call.handle_error(now, attempt, e.kind(), e.into_source()),
                    Some(Ok(prefix)) => call.handle_prefix(now, &prefix),
                    None => call.handle_prefix(now, &[]),
                }
            }
            Step::Sleep { until } => {
                // Zero waits are never slept (the machine does not ask for them).
                R::sleep_until(until).await;
                call.handle_timeout(R::now());
            }
            // Only a hedging call cancels (see `drive_hedged`).
            Step::Cancel { .. } => {}
            Step::Done(response) => return Ok(named(response, parts)),
            Step::Fail(error) => return Err(error),
        }
    }
}

/// Hands an attempt's answer to the call; an unsendable request ends the call.
fn hand_over(
    call: &mut Call<'_, Body>,
    now: Instant,
    attempt: resil_core::Attempt,
    outcome: Result<Response, AttemptError>,
) -> Result<(), Error> {
    match outcome {
        Ok(response) => call.handle_response(now, attempt, response, driver::unix_now),
        Err(AttemptError::Transport(e)) => {
            call.handle_error(now, attempt, e.kind(), e.into_source());
        }
        Err(AttemptError::Unsendable(e)) => return Err(e),
    }
    Ok(())
}

/// Refreshes the credentials, by `deadline`, and tells the call whether that worked.
async fn refresh<R: Runtime, X: Exchange>(
    call: &mut Call<'_, Body>,
    exchange: &mut X,
    deadline: Instant,
) {
    let refreshed = match exchange.refresh() {
        Some(mut refresh) => {
            let fresh = until::<R, _>(deadline, refresh.as_mut()).await;
            matches!(fresh, Some(Ok(())))
        }
        None => false,
    };
    call.handle_refreshed(R::now(), refreshed);
}

/// The call's response, its body naming the call for its errors.
fn named(mut response: Response, parts: &mut http::request::Parts) -> Response {
    let method = std::mem::take(&mut parts.method);
    let uri = std::mem::take(&mut parts.uri);
    response.body_mut().name_call(method, uri);
    response
}

/// [`drive`] for a hedging call once its first hedge is due: its attempts stay out side by
/// side until one answers, the machine's timer fires (a hedge is due, or an attempt's
/// deadline passed) or a [`Step::Cancel`] drops one. The attempt already out (`first`) is
/// polled where `drive` pinned it; the others are boxed. Nothing outlives the call:
/// returning drops every attempt still out.
async fn drive_hedged<'e, R: Runtime, X: Exchange + 'e, F>(
    call: &mut Call<'_, Body>,
    parts: &mut http::request::Parts,
    exchange: &'e mut X,
    (attempt, sending): (resil_core::Attempt, Pin<&mut F>),
) -> Result<Response, Error>
where
    F: Future<Output = Result<Response, AttemptError>> + Send,
{
    type Sending<'e> = Pin<Box<dyn Future<Output = Result<Response, AttemptError>> + Send + 'e>>;
    let mut first = Some(sending);
    let mut first_attempt = Some(attempt);
    let mut hedges: Vec<(resil_core::Attempt, Sending<'e>)> = Vec::new();
    loop {
        match call.poll_step(parts) {
            Step::Send { attempt, deadline } => {
                let sending = exchange.send(call, parts, deadline);
                hedges.push((attempt, Box::pin(sending)));
            }
            Step::Cancel { attempt } => {
                if first_attempt == Some(attempt) {
                    first = None;
                    first_attempt = None;
                } else {
                    hedges.retain(|(a, _)| *a != attempt);
                }
            }
            Step::Sleep { until } => {
                let mut timer = pin!(R::sleep_until(until));
                let answered = std::future::poll_fn(|cx| {
                    if let Some(sending) = first.as_mut() {
                        if let Poll::Ready(outcome) = sending.as_mut().poll(cx) {
                            return Poll::Ready(first_attempt.map(|a| (a, None, outcome)));
                        }
                    }
                    for (i, (attempt, sending)) in hedges.iter_mut().enumerate() {
                        if let Poll::Ready(outcome) = sending.as_mut().poll(cx) {
                            return Poll::Ready(Some((*attempt, Some(i), outcome)));
                        }
                    }
                    match timer.as_mut().poll(cx) {
                        Poll::Ready(_) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await;
                let now = R::now();
                let Some((attempt, hedge, outcome)) = answered else {
                    call.handle_timeout(now);
                    continue;
                };
                match hedge {
                    Some(i) => drop(hedges.swap_remove(i)),
                    None => {
                        first = None;
                        first_attempt = None;
                    }
                }
                hand_over(call, now, attempt, outcome)?;
            }
            Step::Redirect { drop_body } => {
                if drop_body {
                    exchange.drop_body();
                }
            }
            Step::Release(mut stale) => stale.body_mut().drain(driver::DRAIN_LIMIT).await,
            Step::Refresh { deadline } => refresh::<R, X>(call, exchange, deadline).await,
            // A hedging policy reads no body prefix (its builder refuses one).
            Step::ReadPrefix { .. } => call.handle_prefix(R::now(), &[]),
            Step::Done(response) => return Ok(named(response, parts)),
            Step::Fail(error) => return Err(error),
        }
    }
}
