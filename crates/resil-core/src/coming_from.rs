//! # Coming from another library
//!
//! How to say in resil what you said in Polly, seatbelt, resilience4j, gobreaker, urllib3's
//! `Retry`, tenacity or stamina, backon, reqwest-retry, tower-resilience, a gRPC service config,
//! Finagle or an AWS SDK's retry mode: one table per library, each option beside the resil setting that does its
//! job, and, where resil does otherwise on purpose, one line saying why. The settings named here
//! are resil-core's ([`RetryPolicyBuilder`], [`CircuitBreakerBuilder`], [`RetryBudget`]);
//! settings of a whole client (redirects, headers) are on every driver's `Client::builder()`.
//!
//! ## What differs everywhere, by design
//!
//! - **Attempts or retries.** [`max_attempts`](RetryPolicyBuilder::max_attempts) counts the
//!   first try, [`max_retries`](RetryPolicyBuilder::max_retries) does not; the tables say which
//!   one a peer's option means.
//! - **Delays are capped before jitter** and never exceed `max_delay`: jitter spreads waits
//!   below the cap instead of past it, so the cap is a promise.
//! - **Every wait ends before the total deadline** (30 s by default): a wait that would end past
//!   it gives up at once with the last response instead of sleeping into a certain failure.
//! - **`Retry-After` is honoured by default**, as a floor under the backoff (never shortened;
//!   [`retry_after_exact`](RetryPolicyBuilder::retry_after_exact) waits just what it asks),
//!   capped at `max_retry_after` (60 s): a server that asks for longer gets its answer back, not
//!   a retry storm, and one that always says 0 still gets the backoff.
//! - **A request that may have been processed is not replayed** unless it is idempotent, carries
//!   an `Idempotency-Key` or the policy opts in: most peers leave that to you.
//! - **Breakers have no timers.** Core never reads a clock: an open breaker half-opens on the
//!   first call after its break, not on a scheduler thread.
//! - **Trip conditions are fixed forms** (consecutive failures, a failure or slow-call ratio over
//!   a window with a minimum of calls), not arbitrary predicates: counted allocation-free in
//!   bounded windows, and checked at build so that no breaker is built that cannot trip or
//!   cannot close ([`CircuitBreakerBuilder::build`]).
//! - **Budgets are shared values**: one [`RetryBudget`] per backend (or fleet) bounds the retries
//!   of every call to it, whichever kind of budget it is.
//!
//! ## Polly (v8)
//!
//! Retry (`RetryStrategyOptions`):
//!
//! | Polly | resil | note |
//! |---|---|---|
//! | `MaxRetryAttempts` (3) | [`max_retries`](RetryPolicyBuilder::max_retries)`(3)` | retries, as in Polly |
//! | `Delay` (2 s), `BackoffType` `Constant` | [`Backoff::Constant`] | resil's default is exponential from 100 ms |
//! | `BackoffType` `Linear`, `Exponential` | [`Backoff::Linear`], [`Backoff::exponential`] | |
//! | `UseJitter` | [`Jitter`] ([`Jitter::Proportional`]`(0.25)` for Polly's ±25 % on constant and linear) | Polly's exponential jitter is its decorrelated form: [`Backoff::DecorrelatedJitter`] |
//! | `MaxDelay` | [`max_delay`](RetryPolicyBuilder::max_delay) | |
//! | `DelayGenerator` | [`delay_fn`](RetryPolicyBuilder::delay_fn) (`None` keeps the policy's, as Polly's `null`) | resil caps its answer at `max_delay` (Polly does not): a generator cannot make a wait unbounded |
//! | `ShouldHandle` | [`retry_statuses`](RetryPolicyBuilder::retry_statuses), [`retry_errors`](RetryPolicyBuilder::retry_errors), [`retry_if`](RetryPolicyBuilder::retry_if) | |
//! | `OnRetry` (`AttemptNumber`, `RetryDelay`, `Duration`, `Outcome`) | `Hooks::on_retry` ([`Event::RetryScheduled`]: `after`, `delay`, `attempt_duration`, `cause`) | resil numbers attempts from 1 |
//! | timeout strategy | [`attempt_timeout`](RetryPolicyBuilder::attempt_timeout), [`total_timeout`](RetryPolicyBuilder::total_timeout) | |
//!
//! Circuit breaker (`CircuitBreakerStrategyOptions`):
//!
//! | Polly | resil | note |
//! |---|---|---|
//! | `FailureRatio` (0.1), `MinimumThroughput` (100), `SamplingDuration` (30 s) | [`TripCondition::FailureRatio`]` { ratio, min_calls, window: `[`Window::Time`]`(30 s) }` | resil's default trips on 5 failures in a row |
//! | `BreakDuration` (5 s) | [`open_for`](CircuitBreakerBuilder::open_for) | |
//! | `BreakDurationGenerator` (`FailureCount`, `FailureRate`, `HalfOpenAttempts`) | [`break_duration`](CircuitBreakerBuilder::break_duration) ([`BreakContext`]: `failures`, `calls`, `reopens`) | capped at `max_open`, so no break is unbounded |
//! | half-open: one probe | [`HalfOpen::Probes`]`(1)` (the default) | |
//! | `ShouldHandle` | the policy's failure classification ([`RetryPolicy::is_failure`], [`failure_statuses`](RetryPolicyBuilder::failure_statuses)) | |
//! | `OnOpened`, `OnClosed`, `OnHalfOpened` | `Hooks::on_breaker` ([`Transition`]) | |
//! | `ManualControl.IsolateAsync`, `CloseAsync` | [`isolate`](CircuitBreaker::isolate), [`reset`](CircuitBreaker::reset) | |
//! | `StateProvider.CircuitState` | [`state`](CircuitBreaker::state) | |
//! | `BrokenCircuitException` (`RetryAfter`, the exception that broke it) | [`Rejected`]` { until, opened_by }`, [`GiveUpReason::CircuitOpen`] | the cause is a status or a transport error |
//!
//! ## seatbelt
//!
//! Microsoft's Polly-shaped Rust crate; its breaker layer:
//!
//! | seatbelt | resil | note |
//! |---|---|---|
//! | `failure_threshold`, `min_throughput`, `sampling_duration` | [`TripCondition::FailureRatio`]` { ratio, min_calls, window: `[`Window::Time`]` }` | |
//! | `break_duration` | [`open_for`](CircuitBreakerBuilder::open_for) | |
//! | `half_open_mode(HalfOpenMode::quick())` | [`HalfOpen::Probes`]`(1)` | |
//! | `half_open_mode(HalfOpenMode::progressive(stage))` | [`HalfOpen::Progressive`]` { failure_ratio }` | the same stages (0.1 % to 50 %), each one `open_for` long |
//! | `on_opened`, `on_closed`, `on_probing` | `Hooks::on_breaker` | |
//! | `recovery_with` | the policy's failure classification | |
//!
//! ## resilience4j
//!
//! `CircuitBreakerConfig`:
//!
//! | resilience4j | resil | note |
//! |---|---|---|
//! | `failureRateThreshold` (50 %) | [`TripCondition::FailureRatio`]` { ratio: 0.5, .. }` | a fraction, not a percentage |
//! | `slidingWindowType` `COUNT_BASED`, `slidingWindowSize` (100) | [`Window::Calls`]`(100)` | at most 128 calls: kept as bits |
//! | `TIME_BASED`, `slidingWindowSize` (seconds) | [`Window::Time`] | kept in 10 buckets, not one per second |
//! | `minimumNumberOfCalls` (100) | `min_calls` | lowered to a count window's size, as resilience4j does |
//! | `slowCallDurationThreshold` (60 s), `slowCallRateThreshold` (100 %) | [`slow_calls`](CircuitBreakerBuilder::slow_calls)`(`[`SlowCalls`]` { threshold, ratio })` | a call taking at least the threshold is slow (resilience4j: longer than) |
//! | `waitDurationInOpenState` (60 s) | [`open_for`](CircuitBreakerBuilder::open_for) | |
//! | `waitIntervalFunctionInOpenState` | [`open_growth`](CircuitBreakerBuilder::open_growth) or [`break_duration`](CircuitBreakerBuilder::break_duration) | |
//! | `permittedNumberOfCallsInHalfOpenState` (10) | [`half_open`](CircuitBreakerBuilder::half_open)`(`[`HalfOpen::Ratio`]` { calls: 10, failure_ratio: 0.5 })` | [`HalfOpen::Probes`] is the stricter Polly/gobreaker form |
//! | `maxWaitDurationInHalfOpenState`, `transitionToStateAfterWaitDuration` (`OPEN`) | [`half_open_max_wait`](CircuitBreakerBuilder::half_open_max_wait)`(wait, `[`BreakerState::Open`]` or Closed)` | |
//! | `automaticTransitionFromOpenToHalfOpenEnabled` | none | lazy by design: the first call after the break probes |
//! | `initialState` | [`initial_state`](CircuitBreakerBuilder::initial_state) | an open start begins its break at the first call |
//! | `recordExceptions`, `recordResult` | [`failure_statuses`](RetryPolicyBuilder::failure_statuses) (transport errors always count) | |
//! | `ignoreExceptions` | [`release`](CircuitBreaker::release) (counts as neither) | |
//! | `transitionToDisabledState`, `transitionToMetricsOnlyState` | [`set_mode`](CircuitBreaker::set_mode)`(`[`BreakerMode::Disabled`]` / MetricsOnly)`, or [`mode`](CircuitBreakerBuilder::mode) | a disabled breaker still counts; a metrics-only one also reports the transitions it would make |
//! | `transitionToForcedOpenState` | [`isolate`](CircuitBreaker::isolate) | |
//! | `transitionToOpenStateFor`, `transitionToOpenStateUntil` | [`trip_for`](CircuitBreaker::trip_for), [`trip_until`](CircuitBreaker::trip_until) | |
//! | `transitionToClosedState`, `reset` | [`reset`](CircuitBreaker::reset) | |
//!
//! `RetryConfig`:
//!
//! | resilience4j | resil | note |
//! |---|---|---|
//! | `maxAttempts` (3) | [`max_attempts`](RetryPolicyBuilder::max_attempts)`(3)` | attempts, as in resilience4j |
//! | `waitDuration` (500 ms) | [`Backoff::Constant`] | |
//! | `IntervalFunction.ofExponentialBackoff(initial, multiplier)` | [`Backoff::Exponential`]` { base, multiplier }` | |
//! | `ofExponentialRandomBackoff(initial, multiplier, randomizationFactor)` | that, with [`Jitter::Proportional`]`(factor)` | |
//! | `intervalBiFunction` | [`delay_fn`](RetryPolicyBuilder::delay_fn) | |
//! | `retryExceptions`, `retryOnResultPredicate`, `ignoreExceptions` | [`retry_errors`](RetryPolicyBuilder::retry_errors), [`retry_statuses`](RetryPolicyBuilder::retry_statuses), [`retry_if`](RetryPolicyBuilder::retry_if) | |
//! | `failAfterMaxAttempts` | none | the last response is always handed back ([`GiveUp::has_response`]) |
//!
//! ## gobreaker (v2)
//!
//! | gobreaker `Settings` | resil | note |
//! |---|---|---|
//! | `MaxRequests` (0 means 1) | [`half_open_probes`](CircuitBreakerBuilder::half_open_probes) | resil caps probes at once (a finished probe frees its slot) and closes after that many successes; gobreaker caps the half-open period's requests |
//! | `Interval` | [`count_interval`](CircuitBreakerBuilder::count_interval) | calls of an earlier interval count for nothing, as in gobreaker |
//! | `BucketPeriod` | [`Window::Time`]`(Interval)` | 10 buckets, whatever the period |
//! | `Timeout` (60 s) | [`open_for`](CircuitBreakerBuilder::open_for) | resil's default is 30 s |
//! | `ReadyToTrip` (more than 5 failures in a row) | [`TripCondition::ConsecutiveFailures`]`(6)`, or [`TripCondition::FailureRatio`] for a ratio over `Counts` | fixed forms, so the builder can refuse one that never trips |
//! | `OnStateChange` | `Hooks::on_breaker` | |
//! | `IsSuccessful` | [`failure_statuses`](RetryPolicyBuilder::failure_statuses) | |
//! | `IsExcluded` | [`release`](CircuitBreaker::release) | |
//! | `ErrOpenState`, `ErrTooManyRequests` | [`Rejected`] (its `until` is the break's end, or when a lost probe is reclaimed) | |
//!
//! ## urllib3 `Retry`
//!
//! | urllib3 | resil | note |
//! |---|---|---|
//! | `total` (10) | [`max_retries`](RetryPolicyBuilder::max_retries) | retries, as in urllib3; resil's default is 3 |
//! | `connect`, `read`, `status`, `other` | [`kind_retries`](RetryPolicyBuilder::kind_retries)`(`[`RetryKind`]`, n)` | at most 255 each |
//! | `redirect` | the client's `max_redirects` | redirects are not retries in resil |
//! | `allowed_methods` (DELETE, GET, HEAD, OPTIONS, PUT, TRACE) | the same set by default; [`retry_non_idempotent`](RetryPolicyBuilder::retry_non_idempotent)`(true)` for every method | a POST is still re-sent after a failure that proves it never reached the server |
//! | `status_forcelist` | [`retry_statuses`](RetryPolicyBuilder::retry_statuses) | resil retries 408, 429, 500, 502, 503, 504 by default |
//! | `backoff_factor` | [`Backoff::exponential`]`(2 × factor)`, [`Jitter::None`] | urllib3 does not wait before the first retry; resil waits the base |
//! | `backoff_max` (120 s) | [`max_delay`](RetryPolicyBuilder::max_delay) | |
//! | `backoff_jitter` | [`Jitter::Additive`] | urllib3 adds up to that many seconds; resil adds a fraction of the delay |
//! | `respect_retry_after_header` | [`respect_retry_after`](RetryPolicyBuilder::respect_retry_after) | resil honours it on any retried status, not only 413, 429 and 503 |
//! | `raise_on_status` | none | the last response is always handed back with the error |
//! | `remove_headers_on_redirect` | the client's `sensitive_header` | |
//!
//! ## tenacity and stamina
//!
//! | tenacity | resil | note |
//! |---|---|---|
//! | `stop_after_attempt(n)` | [`max_attempts`](RetryPolicyBuilder::max_attempts)`(n)` | |
//! | `stop_after_delay(s)` | [`total_timeout`](RetryPolicyBuilder::total_timeout) | resil also starts no wait that would end past it |
//! | `wait_fixed`, `wait_incrementing(start, increment, max)` | [`Backoff::Constant`], [`Backoff::Linear`] with `max_delay` | |
//! | `wait_exponential(multiplier, min, max, exp_base)` | [`Backoff::Exponential`]` { base: multiplier, multiplier: exp_base }`, `max_delay` | no floor: a [`delay_fn`](RetryPolicyBuilder::delay_fn) can add one |
//! | `wait_random_exponential(multiplier, max)` | [`Backoff::exponential`] with [`Jitter::Full`] | the same full jitter |
//! | `wait_random(min, max)` | [`Backoff::Constant`]`(max)` with [`Jitter::Range`]` { low: min / max, high: 1.0 }` | |
//! | `retry_if_exception_type`, `retry_if_result` | [`retry_errors`](RetryPolicyBuilder::retry_errors), [`retry_statuses`](RetryPolicyBuilder::retry_statuses), [`retry_if`](RetryPolicyBuilder::retry_if) | |
//! | `before_sleep`, `after` | `Hooks::on_retry` | |
//!
//! | stamina `retry(…)` | resil | note |
//! |---|---|---|
//! | `attempts` (10) | [`max_attempts`](RetryPolicyBuilder::max_attempts) | |
//! | `timeout` (45 s) | [`total_timeout`](RetryPolicyBuilder::total_timeout) (30 s) | |
//! | `wait_initial` (0.1 s), `wait_exp_base` (2) | [`Backoff::Exponential`]` { base, multiplier }` | the same default base |
//! | `wait_max` (5 s) | [`max_delay`](RetryPolicyBuilder::max_delay) (20 s) | |
//! | `wait_jitter` (1 s) | [`Jitter::Full`] (the default) or [`Jitter::Additive`] | stamina adds up to a second; resil's jitter is a fraction of the delay |
//! | `on` | [`retry_errors`](RetryPolicyBuilder::retry_errors), [`retry_statuses`](RetryPolicyBuilder::retry_statuses), [`retry_if`](RetryPolicyBuilder::retry_if) | |
//!
//! ## backon
//!
//! | backon | resil | note |
//! |---|---|---|
//! | `ExponentialBuilder::with_min_delay` (1 s), `with_factor` (2) | [`Backoff::Exponential`]` { base, multiplier }` | |
//! | `with_max_delay` (60 s) | [`max_delay`](RetryPolicyBuilder::max_delay) | |
//! | `with_max_times` (3) | [`max_retries`](RetryPolicyBuilder::max_retries)`(3)` | retries, as in backon |
//! | `with_jitter` | [`Jitter::Additive`]`(1.0)` | backon adds up to the current delay (up to `min_delay` in older releases) |
//! | `with_total_delay` | [`total_timeout`](RetryPolicyBuilder::total_timeout) | resil's deadline counts the attempts too |
//! | `ConstantBuilder`, `FibonacciBuilder` | [`Backoff::Constant`], [`Backoff::Fibonacci`] | |
//! | `.when(…)` | [`retry_if`](RetryPolicyBuilder::retry_if) and the status and error sets | |
//! | `.notify(…)` | `Hooks::on_retry` | |
//!
//! ## reqwest-retry
//!
//! | reqwest-retry | resil | note |
//! |---|---|---|
//! | `ExponentialBackoff::builder().build_with_max_retries(n)` | [`max_retries`](RetryPolicyBuilder::max_retries)`(n)` | |
//! | `retry_bounds(min, max)` (1 s, 30 min) | [`Backoff::exponential`]`(min)`, [`max_delay`](RetryPolicyBuilder::max_delay)`(max)` | |
//! | `base` | [`Backoff::Exponential`]` { multiplier, .. }` | |
//! | `jitter(Jitter::Full / Bounded / None)` | [`Jitter::Full`], [`Jitter::Range`], [`Jitter::None`] | |
//! | `build_with_total_retry_duration(d)` | [`total_timeout`](RetryPolicyBuilder::total_timeout)`(d)` | a deadline, not a count derived from it |
//! | `DefaultRetryableStrategy` | the default statuses and [`TransportErrorKinds::TRANSIENT`] | a POST that may have been processed is not replayed |
//! | `RetryTransientMiddleware` | a resil client, or resil-tokio's reqwest transport | `Retry-After` honoured too |
//!
//! ## tower-resilience
//!
//! | tower-resilience | resil | note |
//! |---|---|---|
//! | `CircuitBreakerLayer::builder().failure_rate_threshold` (0.5) | [`TripCondition::FailureRatio`]` { ratio, .. }` | |
//! | `sliding_window_type`, `sliding_window_size` (100), `sliding_window_duration` | [`Window::Calls`], [`Window::Time`] | |
//! | `minimum_number_of_calls` (the window's size) | `min_calls` | |
//! | `wait_duration_in_open` (30 s) | [`open_for`](CircuitBreakerBuilder::open_for) | |
//! | `permitted_calls_in_half_open` (1) | [`half_open_probes`](CircuitBreakerBuilder::half_open_probes) or [`HalfOpen::Ratio`] | |
//! | `slow_call_duration_threshold`, `slow_call_rate_threshold` | [`slow_calls`](CircuitBreakerBuilder::slow_calls) | |
//! | `failure_classifier` | [`failure_statuses`](RetryPolicyBuilder::failure_statuses) | |
//! | `on_state_transition` | `Hooks::on_breaker` | |
//! | `RetryLayer::builder().max_attempts` (3) | [`max_attempts`](RetryPolicyBuilder::max_attempts) | attempts, as there |
//! | `fixed_backoff`, `exponential_backoff(initial)`, `backoff(…)` | [`Backoff`] | |
//! | `retry_on` | [`retry_if`](RetryPolicyBuilder::retry_if) and the sets | |
//! | `budget(…)` | [`RetryBudget`] | |
//!
//! ## gRPC service config
//!
//! | gRPC | resil | note |
//! |---|---|---|
//! | `retryPolicy.maxAttempts` (at most 5) | [`max_attempts`](RetryPolicyBuilder::max_attempts) | no cap of 5 |
//! | `initialBackoff`, `backoffMultiplier`, `maxBackoff` | [`Backoff::Exponential`]` { base, multiplier }`, `max_delay`, [`Jitter::Full`] | gRPC's `random(0, min(initial · multiplier^n, max))` is resil's full jitter |
//! | `retryableStatusCodes` | [`retry_statuses`](RetryPolicyBuilder::retry_statuses) or [`retry_if`](RetryPolicyBuilder::retry_if) | HTTP statuses; a gRPC status is read from headers by `retry_if` |
//! | server pushback (`grpc-retry-pushback-ms`) | `Retry-After` | |
//! | `retryThrottling.maxTokens`, `tokenRatio` | [`RetryBudget::grpc`]`(max_tokens, token_ratio)` | a new config keeps the fill fraction ([`RetryBudget::reconfigure`]); failures are the policy's breaker failures, so a 404 adds tokens (gRPC leaves the bucket alone) |
//! | `timeout` | [`total_timeout`](RetryPolicyBuilder::total_timeout) | |
//!
//! ## Finagle and Linkerd
//!
//! | Finagle `RetryBudget` | resil | note |
//! |---|---|---|
//! | `RetryBudget()` (`ttl` 10 s, `minRetriesPerSec` 10, `percentCanRetry` 0.2) | [`RetryBudget::finagle`] (the default) | |
//! | `RetryBudget(ttl, minRetriesPerSec, percentCanRetry)` | [`RetryBudget::ratio`]`(percent_can_retry, min_per_second, ttl)` | |
//!
//! ## AWS SDK retry modes
//!
//! | AWS | resil | note |
//! |---|---|---|
//! | `retry_mode = standard`, `max_attempts` (3) | [`max_attempts`](RetryPolicyBuilder::max_attempts)`(3)`, [`Backoff::exponential`]`(1 s)`, [`Jitter::Full`], [`max_delay`](RetryPolicyBuilder::max_delay)`(20 s)` | the SDKs' `min(random · 2^i, 20 s)` |
//! | the retry quota (500; 5 a retry, 10 after a timeout, 1 back on success) | [`RetryBudget::aws_standard`] ([`QuotaCosts::AWS_STANDARD`]) | success is what the policy does not count as a failure: a 404 refunds too (the SDKs refund a 2xx) |
//! | `AWS_NEW_RETRIES_2026=true` (14 a retry, 5 after throttling) | [`RetryBudget::aws_standard_2026`] ([`QuotaCosts::AWS_2026`]) | its 50 ms transient and 1 s throttling bases: a [`delay_fn`](RetryPolicyBuilder::delay_fn) that looks at [`DelayContext::cause`] |
//! | other quota sizes and costs | [`RetryBudget::quota`]`(capacity, `[`QuotaCosts`]`)` | |
//! | `retry_mode = adaptive` | the standard settings above | no client-side rate limiter yet |
//! | throttling and transient error codes | [`retry_statuses`](RetryPolicyBuilder::retry_statuses) | HTTP statuses, not service error codes |

#[allow(unused_imports)] // For the links above.
use crate::{
    Backoff, BreakContext, BreakerMode, BreakerState, CircuitBreaker, CircuitBreakerBuilder,
    DelayContext, Event, GiveUp, GiveUpReason, HalfOpen, Jitter, QuotaCosts, Rejected, RetryBudget,
    RetryKind, RetryPolicy, RetryPolicyBuilder, SlowCalls, Transition, TransportErrorKinds,
    TripCondition, Window,
};
