//! What every driver's client is configured with apart from its transport and clock:
//! [`ClientConfig`] collects it (each driver's builder forwards its setters here) and
//! [`ClientCore`] is the checked result a client and its clones share.

use std::borrow::ToOwned;
use std::boxed::Box;
use std::fmt;
use std::format;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::vec::Vec;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use resil_core::rand::mix;
use resil_core::{
    AdaptiveThrottle, Admission, BreakerGate, BreakerState, CircuitBreaker, CircuitBreakerBuilder,
    CurrentLimit, Hedging, Instant, LatencySketch, MAX_LIMITERS, RedirectPolicy, RetryBudget,
    RetryPolicy, Shared,
};

use crate::attempt::AttemptId;
use crate::call::{Call, CallBody, CallId, CallShared};
use crate::env::{EnvConfig, EnvError, TransportEnv};
use crate::error::{BoxError, ConfigError, Error, ErrorKind};
use crate::fleet::{FleetLink, FleetMember, FleetMembership};
use crate::headers::{check_request_headers, declare_empty_body, merge_default_headers};
use crate::observe::{BodyFailure, Hooks, Observer, Stats, StatsSnapshot};
use crate::origins::OriginBreakers;
use crate::proxy::{Proxy, check_proxy_url};
use crate::telemetry::ClientTelemetry;
use crate::url::{UrlError, check_url, join_url, redact_url, redact_url_str, take_url_credentials};

/// The default client throttle's K: the backend sees about K times what it accepts, so
/// K − 1 rejections per success under overload.
const DEFAULT_THROTTLE_K: f64 = 1.5;

const UNBOUNDED: Duration = Duration::from_nanos(u64::MAX);

/// A limiter as a client holds it: any of resil-core's (or your own [`Admission`]) behind a
/// lock, shared by the client's calls and, if you keep a clone, by other clients of the same
/// backend. `Arc::new(Mutex::new(limiter))` is one.
pub type SharedLimiter = Arc<dyn Shared<dyn Admission + Send> + Send + Sync>;

/// The limiters a client's calls ask, in order.
pub(crate) type LimiterList = Vec<SharedLimiter>;

/// Makes a limiter for one origin (see [`ClientConfig::limiter_per_origin`]).
pub type OriginLimiter = Arc<dyn Fn() -> SharedLimiter + Send + Sync>;

enum LimiterChoice {
    /// One [`AdaptiveThrottle`] of the client's own (per origin with a breaker per origin).
    Default,
    Given {
        shared: Vec<SharedLimiter>,
        per_origin: Vec<OriginLimiter>,
    },
    None,
}

enum BreakerChoice {
    Own,
    Shared(Arc<Mutex<CircuitBreaker>>),
    PerOrigin(CircuitBreakerBuilder),
    None,
}

/// A client's configuration as its builder collects it. Defaults: the default
/// [`RetryPolicy`], a circuit breaker of its own, the default [`RetryBudget`], an
/// [`AdaptiveThrottle`] of its own (see [`limiter`](Self::limiter)), a caller's
/// `x-request-id` reported to hooks (none generated), a 64 MiB body limit. Nothing is
/// checked until [`build`](Self::build), which names what is wrong.
pub struct ClientConfig {
    policy: Option<RetryPolicy>,
    total_timeout: Option<Option<Duration>>,
    attempt_timeout: Option<Option<Duration>>,
    max_retries: Option<u32>,
    transport_env: TransportEnv,
    breaker: BreakerChoice,
    budget: Option<Arc<Mutex<RetryBudget>>>,
    base_url: Option<String>,
    default_headers: HeaderMap,
    header_error: Option<String>,
    request_id_header: Option<HeaderName>,
    generate_request_ids: bool,
    body_limit: u64,
    hooks: Option<Arc<dyn Hooks>>,
    seed: Option<u64>,
    env_error: Option<EnvError>,
    redirects: RedirectPolicy,
    sensitive_headers: Vec<HeaderName>,
    hedging: Option<Hedging>,
    latency: Option<Arc<Mutex<LatencySketch>>>,
    limiters: LimiterChoice,
    fleet: Option<Arc<dyn FleetLink>>,
    #[cfg(feature = "otel")]
    otel_meter: Option<opentelemetry::metrics::Meter>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("policy", &self.policy)
            .field("base_url", &self.base_url.as_deref().map(redact_url_str))
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            policy: None,
            total_timeout: None,
            attempt_timeout: None,
            max_retries: None,
            transport_env: TransportEnv::default(),
            breaker: BreakerChoice::Own,
            budget: Some(Arc::new(Mutex::new(RetryBudget::default()))),
            base_url: None,
            default_headers: HeaderMap::new(),
            header_error: None,
            request_id_header: Some(HeaderName::from_static("x-request-id")),
            generate_request_ids: false,
            body_limit: ClientConfig::DEFAULT_BODY_LIMIT,
            hooks: None,
            seed: None,
            env_error: None,
            redirects: RedirectPolicy::default(),
            sensitive_headers: Vec::new(),
            hedging: None,
            latency: None,
            limiters: LimiterChoice::Default,
            fleet: None,
            #[cfg(feature = "otel")]
            otel_meter: None,
        }
    }
}

impl ClientConfig {
    /// Default limit on a response body a call returns: 64 MiB.
    pub const DEFAULT_BODY_LIMIT: u64 = 64 * 1024 * 1024;

    /// Origins that get a circuit breaker of their own under
    /// [`breaker_per_origin`](Self::breaker_per_origin); calls to any further origin share one
    /// more.
    pub const MAX_ORIGIN_BREAKERS: usize = crate::origins::MAX_ORIGIN_BREAKERS;

    /// The retry policy.
    pub fn policy(&mut self, policy: RetryPolicy) {
        self.policy = Some(policy);
    }
    /// Hedges the policy's calls (see [`Hedging`] for the rules): overrides the policy's own
    /// hedging. [`build`](Self::build) refuses what the policy builder would.
    pub fn hedge(&mut self, hedging: Hedging) {
        self.hedging = Some(hedging);
    }
    /// The latency sketch the client's calls feed and take their adaptive hedge delay and
    /// hedge-rate cap from (default: [`LatencySketch::builder`]'s defaults, p95 and at most 5 %
    /// extra attempts over 10 s); share one between clients of the same backend.
    pub fn latency_sketch(&mut self, sketch: Arc<Mutex<LatencySketch>>) {
        self.latency = Some(sketch);
    }
    /// Overrides the policy's total deadline per call.
    pub fn total_timeout(&mut self, total: Duration) {
        self.total_timeout = Some(Some(total));
    }
    /// Overrides the policy's per-attempt timeout.
    pub fn attempt_timeout(&mut self, timeout: Duration) {
        self.attempt_timeout = Some(Some(timeout));
    }
    /// Overrides the policy's retries after the first attempt.
    pub fn max_retries(&mut self, retries: u32) {
        self.max_retries = Some(retries);
    }
    /// Shares a circuit breaker with other clients of the same backend.
    pub fn breaker(&mut self, breaker: Arc<Mutex<CircuitBreaker>>) {
        self.breaker = BreakerChoice::Shared(breaker);
    }
    /// A circuit breaker per origin (scheme, host and port), each built by `breaker`, for a
    /// client that calls several backends: one that fails then trips only its own. Up to
    /// [`MAX_ORIGIN_BREAKERS`](Self::MAX_ORIGIN_BREAKERS) origins get a breaker of their own
    /// (kept while the client lives); calls to any further origin share one more.
    pub fn breaker_per_origin(&mut self, breaker: CircuitBreakerBuilder) {
        self.breaker = BreakerChoice::PerOrigin(breaker);
    }
    /// No circuit breaker.
    pub fn no_breaker(&mut self) {
        self.breaker = BreakerChoice::None;
    }
    /// Shares a retry budget.
    pub fn budget(&mut self, budget: Arc<Mutex<RetryBudget>>) {
        self.budget = Some(budget);
    }
    /// No retry budget.
    pub fn no_budget(&mut self) {
        self.budget = None;
    }
    /// Adds a client-side limiter (overload control) that every attempt asks before it is
    /// sent, after the breaker and the budget, and that hears how every attempt ended. The
    /// first call replaces the default limiter; further calls add more, asked in the order
    /// given (at most [`MAX_LIMITERS`]): put limiters that only refuse
    /// ([`AdaptiveThrottle`], [`QuotaPacer`](resil_core::QuotaPacer)) first, then rate
    /// limiters, then a [`ConcurrencyLimiter`](resil_core::ConcurrencyLimiter). A limiter's
    /// wait delays the attempt (never past the deadline or the policy's `max_wait`); its
    /// refusal fails the call with [`ErrorKind::RejectedLocally`] before anything is sent.
    ///
    /// Default: one [`AdaptiveThrottle`] (Google SRE client-side throttling, K = 1.5) of the
    /// client's own. It rejects nothing while more than two thirds of the recent attempts are
    /// accepted, costs no wake-ups, and under overload keeps what the client sends near 1.5×
    /// what the backend accepts (the SRE book's K = 2 left one server rejection per success
    /// in `tokio_overload`, the limit). With
    /// [`breaker_per_origin`](Self::breaker_per_origin) each origin gets a default throttle
    /// of its own, so one overloaded backend does not throttle calls to the others. Limiters
    /// given here are the client's, for every origin it calls (see
    /// [`limiter_per_origin`](Self::limiter_per_origin) for one per origin).
    pub fn limiter(&mut self, limiter: SharedLimiter) {
        match &mut self.limiters {
            LimiterChoice::Given { shared, .. } => shared.push(limiter),
            _ => {
                self.limiters = LimiterChoice::Given {
                    shared: std::vec![limiter],
                    per_origin: Vec::new(),
                }
            }
        }
    }
    /// Adds a limiter made by `make` for each origin, with
    /// [`breaker_per_origin`](Self::breaker_per_origin) (without it, `make` runs once and the
    /// limiter is the client's): one overloaded backend then slows only its own calls. Asked
    /// after the limiters given to [`limiter`](Self::limiter), which every origin shares; like
    /// them, it replaces the default throttle, and they count together towards
    /// [`MAX_LIMITERS`].
    pub fn limiter_per_origin(&mut self, make: impl Fn() -> SharedLimiter + Send + Sync + 'static) {
        let make: OriginLimiter = Arc::new(make);
        match &mut self.limiters {
            LimiterChoice::Given { per_origin, .. } => per_origin.push(make),
            _ => {
                self.limiters = LimiterChoice::Given {
                    shared: Vec::new(),
                    per_origin: std::vec![make],
                }
            }
        }
    }
    /// No client-side limiter, not even the default one: every attempt the policy allows is
    /// sent at once.
    pub fn no_limiters(&mut self) {
        self.limiters = LimiterChoice::None;
    }
    /// Shares the circuit breaker and retry budget with the other processes of a fleet
    /// through `link` (resil-redis's `RedisFleet`, say), joined at [`build`](Self::build).
    /// Needs the client's one breaker, not [`breaker_per_origin`](Self::breaker_per_origin).
    pub fn fleet(&mut self, link: Arc<dyn FleetLink>) {
        self.fleet = Some(link);
    }
    /// Relative URLs are joined to this one.
    pub fn base_url(&mut self, url: &str) {
        self.base_url = Some(url.to_owned());
    }
    /// A header sent on every request that does not set it (appended: a name may repeat).
    pub fn default_header(&mut self, name: &str, value: &str) {
        let problem = match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            // A body's framing is each request's own (see `check_request_headers`).
            (Ok(n), Ok(_))
                if n == http::header::CONTENT_LENGTH || n == http::header::TRANSFER_ENCODING =>
            {
                format!("default header {name:?} cannot fit every request's body")
            }
            // A request takes the defaults after its own headers were checked.
            (Ok(n), Ok(_)) if n == http::header::HOST && self.default_headers.contains_key(&n) => {
                format!("default header {name:?} is given more than once")
            }
            (Ok(n), Ok(v)) if n == http::header::HOST && v.to_str().is_err() => {
                format!("default header {name:?} is not a host name (not visible ASCII)")
            }
            (Ok(n), Ok(v)) => {
                self.default_headers.append(n, v);
                return;
            }
            _ => format!("default header {name:?} is not a valid header"),
        };
        self.header_error.get_or_insert(problem);
    }
    /// The request-id header (default `x-request-id`; `None` turns ids off).
    pub fn request_id_header(&mut self, name: Option<&'static str>) {
        self.request_id_header = name.map(HeaderName::from_static);
    }
    /// Gives every call whose request has no request-id header a fresh id, the same on
    /// every attempt (default off: a client adds no header it was not asked for).
    pub fn generate_request_ids(&mut self, on: bool) {
        self.generate_request_ids = on;
    }
    /// Largest response body a call returns (default 64 MiB).
    pub fn body_limit(&mut self, bytes: u64) {
        self.body_limit = bytes;
    }
    /// Callbacks for attempts, retries, outcomes and breaker transitions.
    pub fn hooks(&mut self, hooks: Arc<dyn Hooks>) {
        self.hooks = Some(hooks);
    }
    /// Seeds jitter (and generated request ids), for reproducible runs.
    pub fn seed(&mut self, seed: u64) {
        self.seed = Some(seed);
    }
    /// The meter the client's metrics are recorded with (feature `otel`; default: the
    /// global meter provider's `resil` meter, taken on the client's first call). See
    /// [`otel`](crate::otel).
    #[cfg(feature = "otel")]
    pub fn otel_meter(&mut self, meter: opentelemetry::metrics::Meter) {
        self.otel_meter = Some(meter);
    }
    /// How redirects are followed (default: up to 10 hops, never from `https` to `http`; see
    /// [`RedirectPolicy`]).
    pub fn redirects(&mut self, redirects: RedirectPolicy) {
        self.redirects = redirects;
    }
    /// A header that must not reach another origin, besides `Authorization`, `Cookie` and
    /// `Proxy-Authorization`: dropped, with them, from a redirect to another origin and every
    /// hop after it. An invalid name makes [`build`](Self::build) fail.
    pub fn sensitive_header(&mut self, name: &str) {
        match HeaderName::try_from(name) {
            Ok(name) => self.sensitive_headers.push(name),
            Err(_) => {
                let problem = format!("sensitive header {name:?} is not a valid header name");
                self.header_error.get_or_insert(problem);
            }
        }
    }
    /// Applies the `RESIL_*` environment variables over what is set so far; an invalid value
    /// makes [`build`](Self::build) fail naming the variable.
    pub fn from_env(&mut self) {
        match EnvConfig::from_env() {
            Ok(env) => self.apply_env(env),
            Err(e) => self.env_error = Some(e),
        }
    }
    /// Applies settings read elsewhere, over what is set so far.
    pub fn apply_env(&mut self, env: EnvConfig) {
        if let Some(d) = env.total_timeout {
            self.total_timeout = Some(Some(d));
        }
        if let Some(d) = env.attempt_timeout {
            self.attempt_timeout = Some(Some(d));
        }
        if let Some(n) = env.max_retries {
            self.max_retries = Some(n);
        }
        if let Some(d) = env.connect_timeout {
            self.transport_env.connect_timeout = Some(d);
        }
        if let Some(d) = env.read_timeout {
            self.transport_env.read_timeout = Some(d);
        }
        if let Some(url) = env.base_url {
            self.base_url = Some(url);
        }
    }
    /// Takes what the environment asked of the driver's transport (connect and read
    /// timeouts) since the last call. A driver's builder applies it to its own settings as
    /// soon as it applies the environment, so that, as for everything else here, a setter
    /// called after [`from_env`](Self::from_env) wins over the variable.
    pub fn take_transport_env(&mut self) -> TransportEnv {
        core::mem::take(&mut self.transport_env)
    }

    /// Checks a driver's own timeouts (connect, read, write): zero would fail every request,
    /// so it is refused here, naming the setting, as zero policy timeouts are.
    pub fn check_timeouts(
        timeouts: &[(&'static str, Option<Duration>)],
    ) -> Result<(), ConfigError> {
        match timeouts.iter().find(|(_, t)| *t == Some(Duration::ZERO)) {
            Some((setting, _)) => Err(ConfigError::invalid(format!(
                "{setting} must be above zero"
            ))),
            None => Ok(()),
        }
    }

    /// [`build`](Self::build) for a driver's client: checks the driver's own transport
    /// settings first (the proxy, see [`check_proxy_url`](crate::driver::check_proxy_url),
    /// and its timeouts, see [`check_timeouts`](Self::check_timeouts)), then the rest, and
    /// returns the transport the builder was given or, only if none was, the one `default`
    /// makes.
    pub fn build_client<T>(
        self,
        proxy: &Proxy,
        timeouts: &[(&'static str, Option<Duration>)],
        transport: Option<T>,
        default: impl FnOnce() -> Result<T, BoxError>,
    ) -> Result<(ClientCore, T), ConfigError> {
        ClientConfig::check_proxy(proxy)?;
        ClientConfig::check_timeouts(timeouts)?;
        let core = self.build()?;
        let transport = match transport {
            Some(given) => given,
            None => default().map_err(ConfigError::invalid)?,
        };
        Ok((core, transport))
    }

    /// An [`InvalidConfig`](ErrorKind::InvalidConfig) error naming the `proxy` setting
    /// unless `proxy` can be used (see [`check_proxy_url`](check_proxy_url)).
    fn check_proxy(proxy: &Proxy) -> Result<(), ConfigError> {
        match proxy {
            Proxy::Url(url) => check_proxy_url(url)
                .map(drop)
                .map_err(|e| ConfigError::invalid(format!("proxy: {e}"))),
            _ => Ok(()),
        }
    }

    /// Checks everything and returns what the client shares with its clones. Errors are
    /// [`ErrorKind::InvalidConfig`] (or `InvalidUrl` for the base URL) naming the
    /// setting.
    pub fn build(self) -> Result<ClientCore, ConfigError> {
        if let Some(e) = self.env_error {
            return Err(ConfigError::invalid(e));
        }
        if let Some(problem) = self.header_error {
            return Err(ConfigError::invalid(problem));
        }
        let base_url = match &self.base_url {
            None => None,
            Some(url) => {
                let uri: Uri = url.parse().map_err(|e| {
                    ConfigError::invalid(format!("base URL {:?}: {e}", redact_url_str(url)))
                })?;
                // Scheme and host are checked now, not on the first request.
                join_url(Some(&uri), "").map_err(ConfigError::url)?;
                Some(uri)
            }
        };
        let mut policy = self.policy.unwrap_or_default();
        if self.total_timeout.is_some()
            || self.attempt_timeout.is_some()
            || self.max_retries.is_some()
        {
            let bounded = |d: Duration| (d != UNBOUNDED).then_some(d);
            policy = policy
                .with_limits(
                    self.total_timeout
                        .unwrap_or(bounded(policy.total_timeout())),
                    self.attempt_timeout
                        .unwrap_or(bounded(policy.attempt_timeout())),
                    self.max_retries
                        .map_or(policy.max_attempts(), |r| r.saturating_add(1)),
                )
                .map_err(ConfigError::invalid)?;
        }
        if let Some(hedging) = self.hedging {
            policy = policy
                .with_hedging(Some(hedging))
                .map_err(ConfigError::invalid)?;
        }
        let latency = match self.latency {
            Some(sketch) => sketch,
            None => Arc::new(Mutex::new(LatencySketch::default())),
        };
        let invalid = ConfigError::invalid;
        // The default throttle, one per origin where the breaker is per origin.
        let throttles_made = std::cell::Cell::new(0u64);
        let throttle_seed = self.seed.unwrap_or(0);
        let default_throttle = || -> Result<LimiterList, resil_core::PolicyError> {
            throttles_made.set(throttles_made.get() + 1);
            let throttle = AdaptiveThrottle::builder()
                .k(DEFAULT_THROTTLE_K)
                .seed(mix(throttle_seed ^ throttles_made.get()))
                .build()?;
            Ok(std::vec![Arc::new(Mutex::new(throttle)) as SharedLimiter])
        };
        let breaker_per_origin = matches!(self.breaker, BreakerChoice::PerOrigin(_));
        let (default_limiter, shared, per_origin) = match self.limiters {
            LimiterChoice::Default => (true, Vec::new(), Vec::new()),
            LimiterChoice::Given { shared, per_origin } => (false, shared, per_origin),
            LimiterChoice::None => (false, Vec::new(), Vec::new()),
        };
        if shared.len() + per_origin.len() > MAX_LIMITERS {
            return Err(ConfigError::invalid(format!(
                "limiter: at most {MAX_LIMITERS} limiters, {} given",
                shared.len() + per_origin.len()
            )));
        }
        let throttle_per_origin = default_limiter && breaker_per_origin;
        let own_per_origin = !per_origin.is_empty() && breaker_per_origin;
        // An origin's list holds the client's shared limiters, then its own.
        let given_per_origin = || -> Result<LimiterList, resil_core::PolicyError> {
            Ok(shared
                .iter()
                .cloned()
                .chain(per_origin.iter().map(|make| make()))
                .collect())
        };
        let no_limiters = || Ok(Vec::new());
        let origin_limiters: crate::origins::MakeLimiters<'_> = if throttle_per_origin {
            &default_throttle
        } else if own_per_origin {
            &given_per_origin
        } else {
            &no_limiters
        };
        let (breaker, origins) = match self.breaker {
            BreakerChoice::Own => (
                Some(Arc::new(Mutex::new(
                    CircuitBreaker::builder().build().map_err(invalid)?,
                ))),
                None,
            ),
            BreakerChoice::Shared(b) => (Some(b), None),
            BreakerChoice::PerOrigin(template) => (
                None,
                Some(Box::new(
                    OriginBreakers::new(&template, origin_limiters).map_err(invalid)?,
                )),
            ),
            BreakerChoice::None => (None, None),
        };
        if self.fleet.is_some() && origins.is_some() {
            return Err(ConfigError::invalid(
                "fleet: shares the client's one breaker, not a breaker per origin",
            ));
        }
        let redirects = self.redirects.check().map_err(ConfigError::invalid)?;
        // The client's own list: what calls ask where no origin has its own.
        let limiters = if throttle_per_origin {
            Vec::new()
        } else if default_limiter {
            default_throttle().map_err(invalid)?
        } else if own_per_origin {
            shared
        } else {
            given_per_origin().map_err(invalid)?
        };
        let seed = self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            mix(t ^ u64::from(std::process::id()))
        });
        let mut core = ClientCore::new(policy, breaker, self.budget, self.hooks, seed);
        if let Some(link) = self.fleet {
            let member = FleetMember {
                breaker: core.breaker.clone(),
                budget: core.budget.clone(),
                stats: core.stats.clone(),
            };
            let membership = link
                .join(member)
                .map_err(|e| ConfigError::invalid(format!("fleet: {e}")))?;
            core.fleet = Some(membership);
        }
        #[cfg(feature = "otel")]
        let telemetry = ClientTelemetry::new(self.otel_meter);
        #[cfg(not(feature = "otel"))]
        let telemetry = ClientTelemetry::default();
        Ok(ClientCore {
            telemetry,
            base_url,
            default_headers: self.default_headers,
            request_id_header: self.request_id_header,
            generate_request_ids: self.generate_request_ids,
            body_limit: self.body_limit,
            origins,
            redirects,
            sensitive_headers: self.sensitive_headers,
            latency,
            limiters,
            ..core
        })
    }
}

/// A built client's configuration, shared by the client and its clones: the policy,
/// breaker, budget, counters and hooks, and what every request gets (base URL, default
/// headers, request id).
pub struct ClientCore {
    policy: RetryPolicy,
    breaker: Option<Arc<Mutex<CircuitBreaker>>>,
    /// The breaker's lock-free side, taken once here rather than per call.
    breaker_gate: Option<Arc<BreakerGate>>,
    /// A breaker per origin instead of `breaker`, if so configured.
    origins: Option<Box<OriginBreakers>>,
    budget: Option<Arc<Mutex<RetryBudget>>>,
    base_url: Option<Uri>,
    default_headers: HeaderMap,
    request_id_header: Option<HeaderName>,
    generate_request_ids: bool,
    body_limit: u64,
    stats: Arc<Stats>,
    hooks: Option<Arc<dyn Hooks>>,
    seed: u64,
    calls: AtomicU64,
    redirects: RedirectPolicy,
    sensitive_headers: Vec<HeaderName>,
    /// Recent latencies, for hedge delays and the hedge-rate cap.
    latency: Arc<Mutex<LatencySketch>>,
    /// The client-side limiters every attempt asks, in order.
    limiters: LimiterList,
    /// The fleet this client shares its breaker and budget with, if any.
    fleet: Option<Arc<dyn FleetMembership>>,
    /// OpenTelemetry instruments (feature `otel`).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    telemetry: ClientTelemetry,
}

impl fmt::Debug for ClientCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCore")
            .field("policy", &self.policy)
            .field("base_url", &self.base_url)
            .field("breaker", &self.breaker.is_some())
            .field("breaker_per_origin", &self.origins.is_some())
            .field("budget", &self.budget.is_some())
            .field("fleet", &self.fleet.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientCore {
    /// A configuration with these parts and nothing else: no base URL, no default headers,
    /// no request ids, no body limit (for layers around a service of your own).
    pub fn new(
        policy: RetryPolicy,
        breaker: Option<Arc<Mutex<CircuitBreaker>>>,
        budget: Option<Arc<Mutex<RetryBudget>>>,
        hooks: Option<Arc<dyn Hooks>>,
        seed: u64,
    ) -> ClientCore {
        let breaker_gate = breaker.as_ref().map(|b| {
            b.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .gate()
        });
        ClientCore {
            policy,
            breaker,
            breaker_gate,
            origins: None,
            budget,
            base_url: None,
            default_headers: HeaderMap::new(),
            request_id_header: None,
            generate_request_ids: false,
            body_limit: u64::MAX,
            stats: Arc::new(Stats::default()),
            hooks,
            seed,
            calls: AtomicU64::new(0),
            redirects: RedirectPolicy::default(),
            sensitive_headers: Vec::new(),
            latency: Arc::new(Mutex::new(LatencySketch::default())),
            limiters: Vec::new(),
            fleet: None,
            telemetry: ClientTelemetry::default(),
        }
    }

    /// The same configuration with these client-side limiters, asked in order (for layers
    /// built from parts; see [`ClientConfig::limiter`]). Beyond [`MAX_LIMITERS`] they are not
    /// asked.
    pub fn with_limiters(mut self, limiters: Vec<SharedLimiter>) -> ClientCore {
        self.limiters = limiters;
        self
    }

    /// The client-side limiters its calls ask, in order.
    pub fn limiters(&self) -> &[SharedLimiter] {
        &self.limiters
    }

    /// What each of the client's limiters allows now, in order (as of the latest call that
    /// asked it): a concurrency limit and the attempts in flight, a rate, a local rejection
    /// probability, the server's quota. The default throttles of a client with a breaker per
    /// origin are the origins' own and not listed.
    pub fn current_limits(&self) -> Vec<CurrentLimit> {
        self.limiters
            .iter()
            .map(|l| {
                let mut limit = CurrentLimit::Unlimited;
                // Time never goes back in a limiter: ZERO reads as the latest instant it saw.
                l.with_mut(&mut |a| limit = a.current_limit(Instant::ZERO));
                limit
            })
            .collect()
    }

    /// The client's OpenTelemetry instruments.
    #[cfg(feature = "otel")]
    #[inline]
    pub(crate) fn telemetry(&self) -> &ClientTelemetry {
        &self.telemetry
    }

    /// The latency sketch the client's calls feed (see [`ClientConfig::latency_sketch`]).
    pub fn latency_sketch(&self) -> &Arc<Mutex<LatencySketch>> {
        &self.latency
    }

    /// What feeds the client's hooks and counters (and wakes its fleet link on a breaker
    /// transition).
    #[inline]
    pub(crate) fn observer(&self) -> Observer<'_> {
        Observer::new(&self.stats, self.hooks.as_deref()).with_fleet(self.fleet.as_deref())
    }

    /// The limit put on the body of a response a call returns.
    #[inline]
    pub(crate) fn body_limit(&self) -> u64 {
        self.body_limit
    }

    /// How the client follows redirects.
    pub fn redirects(&self) -> RedirectPolicy {
        self.redirects
    }

    /// The same configuration following redirects as `redirects` says (for layers built from
    /// parts).
    pub fn with_redirects(mut self, redirects: RedirectPolicy) -> ClientCore {
        self.redirects = redirects;
        self
    }

    /// The headers the user named sensitive (see [`ClientConfig::sensitive_header`]).
    pub(crate) fn sensitive_headers(&self) -> &[HeaderName] {
        &self.sensitive_headers
    }

    /// What a call to `uri` shares with the client: counters, hooks, the breaker (its
    /// origin's, with a breaker per origin) and the budget.
    #[inline]
    pub(crate) fn shared_for(&self, uri: &Uri) -> CallShared<'_> {
        let (breaker, breaker_gate, limiters) = match &self.origins {
            None => (
                self.breaker.as_deref(),
                self.breaker_gate.as_deref(),
                &self.limiters,
            ),
            Some(origins) => {
                let (breaker, gate, own) = origins.breaker_for(uri);
                let limiters = if own.is_empty() { &self.limiters } else { own };
                (Some(breaker), Some(gate), limiters)
            }
        };
        CallShared {
            hooks: self.hooks.as_ref(),
            breaker: breaker.map(|b| b as _),
            breaker_gate,
            budget: self.budget.as_deref().map(|b| b as _),
            latency: &*self.latency,
            limiters: (!limiters.is_empty()).then_some(limiters),
        }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The circuit breaker, if the client has one (and not one per origin).
    pub fn breaker(&self) -> Option<&Arc<Mutex<CircuitBreaker>>> {
        self.breaker.as_ref()
    }

    /// With a breaker per origin, each origin called so far (`scheme://authority`, the host
    /// lower-cased) and the state of its breaker, in no particular order; otherwise none.
    pub fn origin_breaker_states(&self) -> std::vec::Vec<(String, BreakerState)> {
        let Some(origins) = &self.origins else {
            return std::vec::Vec::new();
        };
        origins
            .origins()
            .map(|(origin, breaker)| {
                let state = breaker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .state();
                (origin, state)
            })
            .collect()
    }

    /// Counters for every call made with this configuration.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Checks a request a caller built whole, and declares its empty body, as a request
    /// builder would have: an `InvalidUrl` error unless a call can be made to its URL as it is
    /// (`http` or `https`, a host, a port from 1 to 65535), an `InvalidConfig` one unless its
    /// headers frame a body of `body_len` bytes (see
    /// [`check_request_headers`](crate::driver::check_request_headers)); then credentials in
    /// the URL become `Authorization` (see
    /// [`take_url_credentials`](crate::driver::take_url_credentials)) and an empty `POST`,
    /// `PUT` or `PATCH` body is declared as `Content-Length: 0`.
    pub fn prepare_request<B>(
        parts: &mut http::request::Parts,
        body_len: Option<u64>,
    ) -> Result<(), Error<B>> {
        check_url(&parts.uri)
            .map_err(|e| invalid_url(&parts.method, &redact_url(&parts.uri), e))?;
        check_request_headers(parts, body_len)?;
        take_url_credentials(parts);
        declare_empty_body(parts, body_len);
        Ok(())
    }

    /// `url` (absolute, or relative to the base URL) as a URI, or an `InvalidUrl` error on
    /// the call `method url` (credentials redacted).
    pub fn resolve_url<B>(&self, method: &Method, url: &str) -> Result<Uri, Error<B>> {
        join_url(self.base_url.as_ref(), url)
            .map_err(|e| invalid_url(method, &redact_url_str(url), e))
    }

    /// Starts a call for `request` under `policy` (the client's when `None`): merges the
    /// default headers, picks the request id (the caller's if the request has one; otherwise,
    /// if the client generates ids, a fresh one, which [`Call::request`] adds to every
    /// attempt), and draws the call's jitter seed. `body_replayable`: the body can be sent
    /// again; `refreshable`: the driver can refresh credentials after a 401.
    #[inline]
    pub fn start_call<'p, B: CallBody>(
        &'p self,
        policy: Option<&'p RetryPolicy>,
        request: &mut http::request::Parts,
        body_replayable: bool,
        refreshable: bool,
        now: Instant,
    ) -> Call<'p, B> {
        merge_default_headers(&mut request.headers, &self.default_headers);
        // Only hooks and `tracing` read a caller's own id back; a copy costs an allocation.
        let observed = self.hooks.is_some() || crate::observe::tracing_on();
        let id = self.call_id(&request.headers, observed);
        let shared = self.shared_for(&request.uri);
        Call::start(
            self,
            policy.unwrap_or(&self.policy),
            request,
            body_replayable,
            refreshable,
            id,
            shared,
            now,
            self.next_seed(),
            None,
        )
    }

    /// Starts a call that goes on after a response body failed while it was read: as
    /// [`start_call`](Self::start_call), but counting on from `failed.attempts`, under the
    /// earlier call's deadline, and beginning as if that attempt had failed with
    /// `failed.kind` (so it retries only what the policy would have retried, asks the budget
    /// as any retry, and never replays a request that may have been processed). Hooks hear
    /// [`on_body_failure`](crate::Hooks::on_body_failure). The caller asks for the rest of the
    /// body in `request` (see [`ResumePoint::ask`](crate::ResumePoint::ask)) before this.
    pub fn resume_call<'p, B: CallBody>(
        &'p self,
        policy: Option<&'p RetryPolicy>,
        request: &mut http::request::Parts,
        body_replayable: bool,
        refreshable: bool,
        now: Instant,
        failed: &BodyFailure,
    ) -> Call<'p, B> {
        // Defaults and the request id are in `request` already, from the first call.
        let observed = self.hooks.is_some() || crate::observe::tracing_on();
        let id = self.call_id(&request.headers, observed);
        let shared = self.shared_for(&request.uri);
        Call::start(
            self,
            policy.unwrap_or(&self.policy),
            request,
            body_replayable,
            refreshable,
            id,
            shared,
            now,
            self.next_seed(),
            Some(failed),
        )
    }

    /// The request's own id if it brought one (its headers carry it to every attempt), else
    /// a fresh one for every attempt to carry if the client generates ids; none when ids
    /// are off or nobody would read the caller's.
    fn call_id(&self, headers: &HeaderMap, observed: bool) -> CallId {
        let Some(name) = self.request_id_header.as_ref() else {
            return CallId::None;
        };
        if !observed && !self.generate_request_ids {
            return CallId::None;
        }
        match headers.get(name) {
            Some(own) if observed => CallId::Forwarded(own.clone()),
            Some(_) => CallId::None,
            None if self.generate_request_ids => AttemptId::new(name.clone(), self.next_seed())
                .map_or(CallId::None, CallId::Generated),
            None => CallId::None,
        }
    }

    /// A fresh per-call seed: the client's seed mixed with a call counter, so calls never
    /// share jitter and a seeded client replays the same sequence.
    pub(crate) fn next_seed(&self) -> u64 {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        mix(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// The error of the call `method shown_url` whose URL no call can reach.
fn invalid_url<B>(method: &Method, shown_url: &str, problem: UrlError) -> Error<B> {
    Error::new(ErrorKind::InvalidUrl, method.as_str(), shown_url).with_source(problem)
}
