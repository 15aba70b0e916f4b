//! The setters every driver's builders share, written once. A driver's `ClientBuilder` keeps
//! a [`ClientConfig`](crate::ClientConfig) and its transport's settings; its
//! `RequestBuilder` a [`RequestDraft`](crate::RequestDraft) and a
//! [`RequestBody`](crate::RequestBody). The blocking and async builders differ only in
//! their transport and in how they send, so these macros expand the rest inside each.

/// Expands, inside `impl ClientBuilder`, the setters that forward to its [`ClientConfig`]
/// field `$config`, and those that set the `connect_timeout` and `proxy` of its transport
/// settings field `$transport`. The builder supplies `take_transport_env(self) -> Self`
/// (what `RESIL_*` variables ask of its transport) and an `auth` field holding
/// `Option<Arc<dyn AuthProvider>>`, for the `AuthProvider` trait in scope.
///
/// [`ClientConfig`]: crate::ClientConfig
#[macro_export]
macro_rules! client_builder_setters {
    ($config:ident, $transport:ident) => {
        /// The retry policy (default: [`RetryPolicy::default`](resil_core::RetryPolicy)).
        pub fn policy(mut self, policy: $crate::__private::RetryPolicy) -> Self {
            self.$config.policy(policy);
            self
        }

        /// Hedges the client's calls when they are slower than usual: another copy goes out
        /// while the first is still out, the first good answer wins, the rest are cancelled
        /// (see [`Hedging`](resil_core::Hedging) for the rules: never a request that may not be
        /// sent twice, every hedge within the attempts, deadline, breaker, budget and a
        /// hedge-rate cap). Overrides the policy's own hedging; `Hedging::adaptive()` hedges
        /// at p95 of recent latencies, `Hedging::fixed(d)` after `d`.
        pub fn hedge(mut self, hedging: $crate::__private::Hedging) -> Self {
            self.$config.hedge(hedging);
            self
        }

        /// The latency sketch the client's calls feed and take adaptive hedge delays and
        /// the hedge-rate cap from (default: p95 over 10 s, at most 5 % extra attempts);
        /// share one (an `Arc`) between clients of the same backend.
        pub fn latency_sketch(
            mut self,
            sketch: ::std::sync::Arc<::std::sync::Mutex<$crate::__private::LatencySketch>>,
        ) -> Self {
            self.$config.latency_sketch(sketch);
            self
        }

        /// Overrides the policy's total deadline per call.
        pub fn timeout(mut self, total: ::core::time::Duration) -> Self {
            self.$config.total_timeout(total);
            self
        }

        /// Overrides the policy's per-attempt timeout.
        pub fn attempt_timeout(mut self, timeout: ::core::time::Duration) -> Self {
            self.$config.attempt_timeout(timeout);
            self
        }

        /// Overrides the policy's retries after the first attempt (`max_retries(3)` is four
        /// attempts in all).
        pub fn max_retries(mut self, retries: u32) -> Self {
            self.$config.max_retries(retries);
            self
        }

        /// Connect timeout of the default transport (above zero: [`build`](Self::build)
        /// refuses zero).
        pub fn connect_timeout(mut self, timeout: ::core::time::Duration) -> Self {
            self.$transport.connect_timeout = Some(timeout);
            self
        }

        /// The default transport connects straight to every server, whatever proxies the
        /// environment names (see [`Proxy::Direct`](resil_http::Proxy::Direct)).
        pub fn no_proxy(mut self) -> Self {
            self.$transport.proxy = $crate::Proxy::Direct;
            self
        }

        /// The default transport connects to every server through the proxy at `url`
        /// (`scheme://[user:password@]host:port`), whatever the environment says; checked at
        /// [`build`](Self::build) (see [`Proxy::Url`](resil_http::Proxy::Url)).
        pub fn proxy(mut self, url: &str) -> Self {
            self.$transport.proxy = $crate::Proxy::Url(url.into());
            self
        }

        /// Follows up to `hops` redirects per call (default 10; 0 returns every 3xx as it is).
        /// Every driver follows alike, by resil-core's rules: see
        /// [`RedirectPolicy`](resil_core::RedirectPolicy) and [`redirects`](Self::redirects).
        pub fn max_redirects(mut self, hops: u32) -> Self {
            self.$config
                .redirects($crate::__private::RedirectPolicy::follow(hops));
            self
        }

        /// How redirects are followed (default: up to 10 hops, credentials dropped on any hop
        /// to another origin, never from `https` to `http`).
        pub fn redirects(mut self, redirects: $crate::__private::RedirectPolicy) -> Self {
            self.$config.redirects(redirects);
            self
        }

        /// A header that must not reach another origin, besides `Authorization`, `Cookie`
        /// and `Proxy-Authorization`: dropped, with them, from a redirect to another origin
        /// and every hop after it.
        pub fn sensitive_header(mut self, name: &str) -> Self {
            self.$config.sensitive_header(name);
            self
        }

        /// Shares a circuit breaker with other clients that call the same backend. A
        /// client's breaker (its own by default) counts every call it makes, whatever the
        /// host: a client that calls several backends trips for all of them when one fails
        /// (see [`breaker_per_origin`](Self::breaker_per_origin)).
        pub fn breaker(
            mut self,
            breaker: ::std::sync::Arc<::std::sync::Mutex<$crate::__private::CircuitBreaker>>,
        ) -> Self {
            self.$config.breaker(breaker);
            self
        }

        /// A circuit breaker per origin (scheme, host and port), each built by `breaker`,
        /// for a client that calls several backends: one that fails then trips only its own
        /// (see [`ClientConfig::breaker_per_origin`](resil_http::ClientConfig::breaker_per_origin)).
        pub fn breaker_per_origin(
            mut self,
            breaker: $crate::__private::CircuitBreakerBuilder,
        ) -> Self {
            self.$config.breaker_per_origin(breaker);
            self
        }

        /// No circuit breaker.
        pub fn no_breaker(mut self) -> Self {
            self.$config.no_breaker();
            self
        }

        /// Shares a retry budget (default: one of the client's own, 20 % + 10/s).
        pub fn budget(
            mut self,
            budget: ::std::sync::Arc<::std::sync::Mutex<$crate::__private::RetryBudget>>,
        ) -> Self {
            self.$config.budget(budget);
            self
        }

        /// No retry budget.
        pub fn no_budget(mut self) -> Self {
            self.$config.no_budget();
            self
        }

        /// Adds a client-side limiter (overload control), e.g.
        /// `Arc::new(Mutex::new(AdaptiveRateLimiter::builder().build()?))`: the first call
        /// replaces the default [`AdaptiveThrottle`](resil_core::AdaptiveThrottle), further
        /// calls add more, asked in order (see
        /// [`ClientConfig::limiter`]($crate::ClientConfig::limiter)). Keep a clone of the
        /// `Arc` to share it with other clients or to read it.
        pub fn limiter(mut self, limiter: $crate::SharedLimiter) -> Self {
            self.$config.limiter(limiter);
            self
        }

        /// Adds a limiter made by `make` for each origin, with a breaker per origin (see
        /// [`ClientConfig::limiter_per_origin`]($crate::ClientConfig::limiter_per_origin)).
        pub fn limiter_per_origin(
            mut self,
            make: impl Fn() -> $crate::SharedLimiter + Send + Sync + 'static,
        ) -> Self {
            self.$config.limiter_per_origin(make);
            self
        }

        /// No client-side limiter, not even the default adaptive throttle.
        pub fn no_limiters(mut self) -> Self {
            self.$config.no_limiters();
            self
        }

        /// Shares the circuit breaker and retry budget with the other processes of a fleet
        /// through `link` (e.g. `resil_redis::RedisFleet`): the fleet's failures trip this
        /// client's breaker, an open reaches every process, one probe goes out for the whole
        /// fleet, and retries come from the fleet's budget. Calls never wait for the fleet;
        /// with its store down the client judges alone. Needs the client's one breaker (not
        /// [`breaker_per_origin`](Self::breaker_per_origin)); see
        /// [`FleetLink`](resil_http::FleetLink).
        pub fn fleet(mut self, link: impl $crate::FleetLink + 'static) -> Self {
            self.$config.fleet(::std::sync::Arc::new(link));
            self
        }

        /// Relative request URLs are appended to this one.
        pub fn base_url(mut self, url: &str) -> Self {
            self.$config.base_url(url);
            self
        }

        /// A header sent on every request that does not set it itself.
        pub fn default_header(mut self, name: &str, value: &str) -> Self {
            self.$config.default_header(name, value);
            self
        }

        /// Adds credentials to every attempt; after a 401 refreshes them once and sends
        /// that attempt once more.
        pub fn auth(mut self, provider: impl AuthProvider + 'static) -> Self {
            self.auth = Some(::std::sync::Arc::new(provider));
            self
        }

        /// The request-id header (default `x-request-id`). A request that carries it keeps
        /// it on every attempt and hooks see it; with
        /// [`generate_request_ids`](Self::generate_request_ids) a request without one gets a
        /// fresh id. `None` turns ids off.
        pub fn request_id_header(mut self, name: Option<&'static str>) -> Self {
            self.$config.request_id_header(name);
            self
        }

        /// Gives every call whose request has no request-id header a fresh one (32 hex
        /// digits, the same on every attempt, so the server can tie retries together). Off
        /// by default: the client adds no header it was not asked for.
        pub fn generate_request_ids(mut self, on: bool) -> Self {
            self.$config.generate_request_ids(on);
            self
        }

        /// Largest response body read (default 64 MiB); reading more fails.
        pub fn body_limit(mut self, bytes: u64) -> Self {
            self.$config.body_limit(bytes);
            self
        }

        /// Callbacks for attempts, retries, outcomes and breaker transitions.
        pub fn hooks(mut self, hooks: impl $crate::Hooks + 'static) -> Self {
            self.$config.hooks(::std::sync::Arc::new(hooks));
            self
        }

        /// The meter the client's OpenTelemetry metrics are recorded with (feature `otel`;
        /// default: the global meter provider's `resil` meter, taken at the client's first
        /// call). See [`resil_http::otel`](resil_http::otel).
        #[cfg(feature = "otel")]
        pub fn otel_meter(mut self, meter: $crate::__private::Meter) -> Self {
            self.$config.otel_meter(meter);
            self
        }

        /// Seeds the jitter (and generated request ids), for reproducible runs (default:
        /// from the clock).
        pub fn seed(mut self, seed: u64) -> Self {
            self.$config.seed(seed);
            self
        }

        /// Applies `RESIL_*` environment variables (see
        /// [`EnvConfig`](resil_http::EnvConfig)) over what is set so far (a setter called
        /// afterwards wins); an invalid value makes [`build`](Self::build) fail naming the
        /// variable.
        pub fn from_env(mut self) -> Self {
            self.$config.from_env();
            self.take_transport_env()
        }

        /// Applies settings read elsewhere (see [`from_env`](Self::from_env)).
        pub fn apply_env(mut self, env: $crate::EnvConfig) -> Self {
            self.$config.apply_env(env);
            self.take_transport_env()
        }
    };
}

/// Expands, inside `impl RequestBuilder`, the setters that forward to its
/// [`RequestDraft`](crate::RequestDraft) field `$draft` or set its `RequestBody` field
/// `$body` (the driver's `RequestBody` in scope). JSON needs the driver's `json` feature.
#[macro_export]
macro_rules! request_builder_setters {
    ($draft:ident, $body:ident) => {
        /// Adds a header (appended: a name may repeat). The transport frames the body
        /// itself; a `Content-Length` that is not the body's length makes `send` fail
        /// before anything is sent.
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.$draft.header(name, value);
            self
        }

        /// Adds query parameters, percent-encoded.
        pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
            self.$draft.query(pairs);
            self
        }

        /// A body of bytes, sent again on every retry.
        pub fn body(mut self, body: impl Into<$crate::__private::Bytes>) -> Self {
            self.$body = RequestBody::Bytes(body.into());
            self
        }

        /// An `application/x-www-form-urlencoded` body.
        pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
            self.$draft
                .content_type("application/x-www-form-urlencoded");
            let encoded = $crate::driver::form_urlencode(pairs.iter().copied());
            self.$body = RequestBody::Bytes(encoded.into());
            self
        }

        /// A JSON body (feature `json`); a value that cannot be serialized makes `send`
        /// fail before anything is sent.
        #[cfg(feature = "json")]
        pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
            match serde_json::to_vec(value) {
                Ok(bytes) => {
                    self.$draft.content_type("application/json");
                    self.$body = RequestBody::Bytes(bytes.into());
                }
                Err(e) => self.$draft.invalid(format!("JSON body: {e}")),
            }
            self
        }

        /// A retry policy for this request only.
        pub fn policy(mut self, policy: $crate::__private::RetryPolicy) -> Self {
            self.$draft.policy(policy);
            self
        }

        /// A total deadline for this request only.
        pub fn timeout(mut self, total: ::core::time::Duration) -> Self {
            self.$draft.timeout(total);
            self
        }
    };
}

/// Expands, inside `impl Client`, the request helpers `get` … `options`, which call the
/// client's `request(method, url)` and return its `$builder`.
#[macro_export]
macro_rules! request_helpers {
    ($builder:ty) => {
        /// A GET request to `url` (absolute, or relative to the base URL).
        #[inline]
        pub fn get(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::GET, url)
        }

        /// A POST request.
        pub fn post(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::POST, url)
        }

        /// A PUT request.
        pub fn put(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::PUT, url)
        }

        /// A PATCH request.
        pub fn patch(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::PATCH, url)
        }

        /// A DELETE request.
        pub fn delete(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::DELETE, url)
        }

        /// A HEAD request.
        pub fn head(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::HEAD, url)
        }

        /// An OPTIONS request.
        pub fn options(&self, url: &str) -> $builder {
            self.request($crate::__private::Method::OPTIONS, url)
        }
    };
}

/// Expands, inside `impl Client`, the accessors to what the client shares with its clones,
/// read through its `core(&self) -> &ClientCore`.
#[macro_export]
macro_rules! client_accessors {
    () => {
        /// Counters for every call made through this client and its clones.
        pub fn stats(&self) -> $crate::StatsSnapshot {
            self.core().stats()
        }

        /// The client's retry policy.
        pub fn policy(&self) -> &$crate::__private::RetryPolicy {
            self.core().policy()
        }

        /// What each of the client's limiters allows now, in order (see
        /// [`ClientCore::current_limits`]($crate::ClientCore::current_limits)).
        pub fn current_limits(&self) -> ::std::vec::Vec<$crate::__private::CurrentLimit> {
            self.core().current_limits()
        }

        /// The circuit breaker, if the client has one (and not one per origin).
        pub fn breaker(
            &self,
        ) -> Option<&::std::sync::Arc<::std::sync::Mutex<$crate::__private::CircuitBreaker>>> {
            self.core().breaker()
        }

        /// With [`breaker_per_origin`](ClientBuilder::breaker_per_origin), each origin
        /// called so far (`scheme://authority`, the host lower-cased) and its breaker's
        /// state; otherwise none.
        pub fn origin_breaker_states(
            &self,
        ) -> ::std::vec::Vec<(::std::string::String, $crate::__private::BreakerState)> {
            self.core().origin_breaker_states()
        }
    };
}
