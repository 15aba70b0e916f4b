//! The pluggable transport: one HTTP exchange, no retries, no policy.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resil_core::TransportErrorKind;
use resil_http::driver::library_timeout;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, SocksConnector,
    Transport, time::Duration as UreqDuration,
};

use crate::tcp::TcpConnector;

/// A request body: bytes are sent again on a retry; a reader is read once, so a request with
/// one is never retried once it was sent.
pub type RequestBody = resil_http::RequestBody<Box<dyn Read + Send>>;

/// A response body: a stream with a size limit. Reading past the limit fails instead of
/// filling memory; a body cut short by the server fails instead of looking complete.
pub struct Body {
    reader: Box<dyn Read + Send>,
    limit: u64,
    read: u64,
    /// The call this body answers, for error messages; kept here rather than in the
    /// response's extensions, which would cost an allocation and a map per call.
    pub(crate) label: Option<resil_http::CallLabel>,
}

impl Body {
    /// A body read from `reader`, failing after `limit` bytes.
    pub fn new(reader: impl Read + Send + 'static, limit: u64) -> Body {
        Body {
            reader: Box::new(reader),
            limit,
            read: 0,
            label: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::new(io::empty(), 0)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reads up to `max` bytes and puts them back in front, so the body still reads whole;
    /// returns them.
    pub(crate) fn read_prefix(&mut self, max: usize) -> io::Result<Bytes> {
        let mut prefix = Vec::new();
        (&mut *self).take(max as u64).read_to_end(&mut prefix)?;
        let prefix = Bytes::from(prefix);
        let rest = std::mem::replace(&mut self.reader, Box::new(io::empty()));
        self.reader = Box::new(io::Cursor::new(prefix.clone()).chain(rest));
        // The limit counts the prefix again when it is read again.
        self.read = 0;
        Ok(prefix)
    }

    /// Reads and discards up to `max` bytes so the connection can be reused; stops quietly at
    /// an error or at the limit.
    pub(crate) fn drain(&mut self, max: u64) {
        // Small on purpose: error bodies are usually short, and `io::copy` would zero 8 KiB
        // on every call.
        let mut scratch = [0u8; 512];
        let mut left = max;
        while left > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.reader.read(&mut scratch[..want]) {
                Ok(n) if n > 0 => left = left.saturating_sub(n as u64),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => return,
            }
        }
    }
}

impl resil_http::CallBody for Body {
    fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }
    fn label(&self) -> Option<&resil_http::CallLabel> {
        self.label.as_ref()
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read > self.limit {
            return Err(too_large(self.limit));
        }
        // Ask for one byte more than the limit allows, to tell "exactly at the limit" from
        // "over it".
        let room =
            usize::try_from((self.limit - self.read).saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.reader.read(&mut buf[..want]).map_err(cut_short)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(n)
    }
}

/// A reader that ends early reports `UnexpectedEof` (ureq: "Peer disconnected"); the error
/// then says so in the words every driver uses.
fn cut_short(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            resil_http::IncompleteBody::new(e),
        )
    } else {
        e
    }
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("response body exceeds the {limit}-byte limit"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::{
        AttemptDeadline, Body, Deadline, Duration, LiteralFirstResolver, NextTimeout,
        TransportErrorKind, UreqDuration, classify,
    };

    #[test]
    fn ip_literals_are_read_straight_from_the_authority() {
        let addr = |url: &str| {
            let uri: http::Uri = url.parse().unwrap();
            super::ip_literal(&uri, super::default_port(&uri)).map(|a| a.to_string())
        };
        assert_eq!(
            addr("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(addr("http://127.0.0.1/x").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(addr("https://10.0.0.1/").as_deref(), Some("10.0.0.1:443"));
        assert_eq!(addr("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(addr("https://[::1]/").as_deref(), Some("[::1]:443"));
        assert_eq!(
            addr("http://user:pw@127.0.0.2:81/").as_deref(),
            Some("127.0.0.2:81")
        );
        assert_eq!(addr("http://example.com/"), None);
        assert_eq!(addr("http://example.com:8080/"), None);
        assert_eq!(addr("http://[fe80::1%25eth0]:80/"), None);
        assert_eq!(addr("/relative"), None);
    }

    #[test]
    fn a_remembered_literal_is_used_only_for_the_same_authority_and_scheme() {
        let addr =
            |url: &str| super::cached_ip_literal(&url.parse().unwrap()).map(|a| a.to_string());
        for (url, want) in [
            ("http://127.0.0.1/x", Some("127.0.0.1:80")),
            ("http://127.0.0.1/y", Some("127.0.0.1:80")),
            ("https://127.0.0.1/", Some("127.0.0.1:443")),
            ("http://127.0.0.1/", Some("127.0.0.1:80")),
            ("http://127.0.0.1:8080/", Some("127.0.0.1:8080")),
            ("http://example.com/", None),
            ("http://127.0.0.1:8080/", Some("127.0.0.1:8080")),
            ("http://[::1]:8080/", Some("[::1]:8080")),
        ] {
            assert_eq!(addr(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn a_lookup_the_attempt_deadline_cuts_short_is_a_dns_error() {
        use ureq::unversioned::resolver::Resolver;
        let config = ureq::Agent::config_builder().build();
        let spent = NextTimeout {
            after: UreqDuration::Exact(Duration::ZERO),
            reason: ureq::Timeout::Global,
            per_read: None,
            per_write: None,
        };
        let uri: http::Uri = "http://localhost:1/".parse().unwrap();
        let error = LiteralFirstResolver::default()
            .resolve(&uri, &config, spent)
            .unwrap_err();
        assert_eq!(classify(error).kind(), TransportErrorKind::Dns);
    }

    #[test]
    fn an_attempts_clock_starts_at_its_first_io_and_then_counts_down() {
        let open = NextTimeout {
            after: UreqDuration::NotHappening,
            reason: ureq::Timeout::PerCall,
            per_read: None,
            per_write: None,
        };
        let budget = Duration::from_secs(10);
        let scope = AttemptDeadline::enter(Deadline::Budget(budget));
        let first = AttemptDeadline::bound(open);
        assert_eq!(first.after, UreqDuration::Exact(budget));
        assert_eq!(first.reason, ureq::Timeout::Global);
        // The first IO fixed the end: later ones count down to it, and the body gets it.
        let end = scope.settled();
        assert!(matches!(end, Deadline::At(_)), "{end:?}");
        assert!(AttemptDeadline::bound(open).after <= first.after);
        assert_eq!(scope.settled(), end);
        drop(scope);
        assert_eq!(AttemptDeadline::bound(open), open, "no attempt, no bound");
    }

    #[test]
    fn unlimited_body_reads_everything() {
        let mut body = Body::new(&b"all of it"[..], u64::MAX);
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert_eq!(out, "all of it");
    }

    #[test]
    fn body_at_exactly_the_limit_is_fine_and_one_more_byte_fails() {
        let mut out = Vec::new();
        Body::new(&b"1234"[..], 4).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"1234");
        let err = Body::new(&b"12345"[..], 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("4-byte limit"), "{err}");
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("limit", &self.limit)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

pub use resil_http::TransportError;

/// One HTTP exchange without retries: bring your own client by implementing this.
///
/// `timeout` is what is left of the attempt: the transport must give up (with
/// [`TransportErrorKind::Timeout`], or [`TransportErrorKind::ConnectTimeout`] while connecting) once it has
/// passed. Error statuses must come back as responses, not errors, so `Retry-After` is not lost.
pub trait BlockingTransport: Send + Sync {
    /// Sends `request` and returns the response head with its body still to be read.
    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError>;

    /// Refuses a request this transport cannot send as it stands, such as a header value its
    /// HTTP library will not write. The client asks before every [`send`](Self::send), once
    /// the attempt's headers are complete (credentials and request id included); an error
    /// ends the call, unsent and not retried, as an
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) error whose cause it is. Default:
    /// every request can be sent.
    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = request;
        Ok(())
    }
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for Arc<T> {
    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError> {
        (**self).send(request, timeout)
    }

    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        (**self).check_request(request)
    }
}

/// Settings of the default ureq transport. A timeout longer than
/// [`MAX_TIMEOUT`](resil_http::driver::MAX_TIMEOUT) (one year; `Duration::MAX` for "never") counts as
/// that long.
#[derive(Clone, Debug)]
pub struct UreqSettings {
    /// Connect timeout (TCP and TLS).
    pub connect_timeout: Option<Duration>,
    /// Longest wait for one read from the socket.
    pub read_timeout: Option<Duration>,
    /// Longest wait for one write to the socket.
    pub write_timeout: Option<Duration>,
    /// Idle connections kept in the pool.
    pub max_idle_connections: usize,
    /// Idle connections kept per host.
    pub max_idle_connections_per_host: usize,
    /// How long an idle connection is kept.
    pub max_idle_age: Duration,
    /// Redirects followed (default 0: the 3xx response is returned).
    pub max_redirects: u32,
    /// Largest response head accepted.
    pub max_response_header_size: usize,
    /// `User-Agent` sent unless the request sets one (empty, or not a valid header value:
    /// none is sent).
    pub user_agent: String,
    /// Where connections go (see [`Proxy`](resil_http::Proxy)): through the proxy the
    /// environment names, as ureq reads it (the first of `ALL_PROXY`, `HTTPS_PROXY`,
    /// `HTTP_PROXY` that is set, and `NO_PROXY`; the default), straight to every server, or
    /// through one proxy. Every request goes through a tunnel: `CONNECT` through an `http://`
    /// proxy, SOCKS5 through a `socks5://` one (to an address looked up here, the first
    /// found) or a `socks5h://` one (to the name); ureq also speaks to the `https://` and
    /// SOCKS4 proxies the environment may name. A proxy that fails follows
    /// [`Proxy`](resil_http::Proxy)'s rule ("When a proxy fails"). ureq dials a SOCKS proxy
    /// with its own TCP connection, not this crate's (a pooled one is checked with ureq's
    /// three system calls).
    pub proxy: resil_http::Proxy,
}

impl Default for UreqSettings {
    fn default() -> Self {
        UreqSettings {
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: None,
            write_timeout: None,
            max_idle_connections: 100,
            max_idle_connections_per_host: 10,
            max_idle_age: Duration::from_secs(90),
            max_redirects: 0,
            max_response_header_size: 64 * 1024,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            proxy: resil_http::Proxy::FromEnv,
        }
    }
}

/// The default transport: a pooled ureq 3 agent, configured so that error statuses come back
/// as responses, redirects are returned rather than followed unless
/// [`max_redirects`](UreqSettings::max_redirects) says otherwise, `Authorization` is never
/// forwarded on a redirect, and response heads are bounded (bodies are bounded by [`Body`]).
///
/// Each attempt's deadline (the `timeout` given to [`send`](BlockingTransport::send)) covers
/// resolving, connecting, sending, the response head and reading the body. resil enforces it
/// itself rather than through ureq's `timeout_global`, whose bookkeeping costs about as much
/// as the rest of an attempt's retry logic; `read_timeout`, `write_timeout` and
/// `connect_timeout` still go to ureq.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    /// The `User-Agent` every request without one gets, built once.
    user_agent: Option<http::HeaderValue>,
    /// Whether the transport may set `Host` itself: only when ureq follows no redirects,
    /// because ureq keeps a request's own `Host` when it follows one to another origin.
    sets_host: bool,
}

impl UreqTransport {
    /// A transport with these settings; fails only if the proxy URL is not one (see
    /// [`check_proxy_url`](resil_http::driver::check_proxy_url)).
    pub fn new(
        settings: &UreqSettings,
    ) -> Result<UreqTransport, Box<dyn std::error::Error + Send + Sync>> {
        let proxy = match &settings.proxy {
            resil_http::Proxy::FromEnv => ureq::Proxy::try_from_env(),
            resil_http::Proxy::Url(url) => {
                resil_http::driver::check_proxy_url(url)?;
                Some(ureq::Proxy::new(url)?)
            }
            _ => None,
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .max_redirects(settings.max_redirects)
            .max_redirects_will_error(false)
            // `Duration::MAX` ("never") would overflow ureq's clock.
            .timeout_connect(settings.connect_timeout.map(library_timeout))
            .timeout_per_read(settings.read_timeout.map(library_timeout))
            .timeout_per_write(settings.write_timeout.map(library_timeout))
            .max_idle_connections(settings.max_idle_connections)
            .max_idle_connections_per_host(settings.max_idle_connections_per_host)
            .max_idle_age(library_timeout(settings.max_idle_age))
            .max_response_header_size(settings.max_response_header_size)
            // The transport sets it (ureq would copy it into a new value on every request).
            .user_agent("")
            .no_delay(true)
            // ureq refuses methods it does not know (WebDAV's, say); hyper and curl send them.
            .allow_non_standard_methods(true)
            .proxy(proxy)
            .build();
        // ureq's default chain with resil's TCP connection: SOCKS and CONNECT proxies (their
        // failures marked as the proxy's), TCP, TLS.
        let connections =
            ().chain(ProxyStage(SocksConnector::default()))
                .chain(ProxyStage(ConnectProxyConnector::default()))
                .chain(TcpConnector);
        #[cfg(feature = "rustls")]
        let connections =
            connections.chain(ureq::unversioned::transport::RustlsConnector::default());
        let agent = ureq::Agent::with_parts(
            config,
            DeadlineConnector(connections).chain(SteadyTimeouts),
            LiteralFirstResolver::default(),
        );
        let user_agent = if settings.user_agent == DEFAULT_USER_AGENT {
            Some(http::HeaderValue::from_static(DEFAULT_USER_AGENT))
        } else {
            http::HeaderValue::from_str(&settings.user_agent)
                .ok()
                .filter(|v| !v.is_empty())
        };
        Ok(UreqTransport {
            agent,
            user_agent,
            sets_host: settings.max_redirects == 0,
        })
    }

    /// The underlying agent. A request run on it directly goes without the attempt's
    /// deadline and without a `User-Agent`: [`send`](BlockingTransport::send) adds that header
    /// itself, so the agent is configured to add none (ureq still adds `Host` and `Accept`).
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

impl BlockingTransport for UreqTransport {
    /// ureq writes every header as it stands but `Authorization` (and `Host`, which
    /// resil-core checks for every driver): one with bytes outside visible ASCII it refuses
    /// while writing, and would report as a malformed response. It speaks HTTP/1.0 and 1.1
    /// only, and would send a request that asks for another version as HTTP/1.1.
    fn check_request(
        &self,
        request: &http::Request<RequestBody>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let version = request.version();
        if version != http::Version::HTTP_10 && version != http::Version::HTTP_11 {
            return Err(format!(
                "the request asks for {version:?}, which this client does not speak (ureq \
                 speaks HTTP/1.0 and HTTP/1.1)"
            )
            .into());
        }
        let headers = request.headers().get_all(http::header::AUTHORIZATION);
        if headers.iter().any(|value| value.to_str().is_err()) {
            return Err(
                "header \"authorization\" has bytes outside visible ASCII, which ureq \
                 refuses to send"
                    .into(),
            );
        }
        Ok(())
    }

    fn send(
        &self,
        request: http::Request<RequestBody>,
        timeout: Duration,
    ) -> Result<http::Response<Body>, TransportError> {
        let (mut parts, body) = request.into_parts();
        if self.sets_host {
            resil_http::driver::fill_host_header(&mut parts.headers, &parts.uri);
        }
        // ureq would build each of these from a string on every request.
        if let Some(agent) = &self.user_agent {
            parts
                .headers
                .entry(http::header::USER_AGENT)
                .or_insert_with(|| agent.clone());
        }
        parts
            .headers
            .entry(http::header::ACCEPT)
            .or_insert_with(|| http::HeaderValue::from_static("*/*"));
        let (result, deadline) = {
            let scope = AttemptDeadline::enter(Deadline::Budget(timeout));
            let result = match body {
                RequestBody::Empty => self
                    .agent
                    .run(http::Request::from_parts(parts, ureq::SendBody::none())),
                RequestBody::Bytes(b) => self.agent.run(http::Request::from_parts(parts, &b[..])),
                RequestBody::Stream(r) => self.agent.run(http::Request::from_parts(
                    parts,
                    ureq::SendBody::from_owned_reader(r),
                )),
            };
            (result, scope.settled())
        };
        let (parts, body) = result.map_err(classify)?.into_parts();
        let reader = DeadlineReader {
            inner: body.into_reader(),
            deadline,
        };
        // The real limit is set by the client; ureq's own reader has none.
        Ok(http::Response::from_parts(
            parts,
            Body::new(reader, u64::MAX),
        ))
    }
}

const DEFAULT_USER_AGENT: &str = concat!("resil/", env!("CARGO_PKG_VERSION"));

/// The deadline of the attempt running on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// None runs, or it has no deadline.
    None,
    /// It may take this long, counted from its first resolve, connect, write or read: that
    /// one reads the clock anyway, so the attempt's start costs no reading of its own
    /// (~20 ns here). Building the request and taking a pooled connection come before it.
    Budget(Duration),
    /// It ends then.
    At(Instant),
}

impl Deadline {
    /// A budget turned into the instant it ends, counted from now.
    fn started(self) -> Deadline {
        match self {
            Deadline::Budget(budget) => Instant::now()
                .checked_add(budget)
                .map_or(Deadline::None, Deadline::At),
            fixed => fixed,
        }
    }
}

thread_local! {
    /// The deadline of the attempt running on this thread. ureq offers no per-request hook
    /// into its connections, and a blocking attempt runs wholly on the calling thread (its
    /// body on whichever thread reads it, which [`DeadlineReader`] covers).
    static ATTEMPT_DEADLINE: Cell<Deadline> = const { Cell::new(Deadline::None) };
}

/// Sets this thread's attempt deadline until dropped, then puts back the one before.
struct AttemptDeadline {
    outer: Deadline,
}

impl AttemptDeadline {
    fn enter(deadline: Deadline) -> AttemptDeadline {
        AttemptDeadline {
            outer: ATTEMPT_DEADLINE.with(|d| d.replace(deadline)),
        }
    }

    /// The attempt's deadline as an instant, its clock started now if no IO started it.
    fn settled(&self) -> Deadline {
        ATTEMPT_DEADLINE.with(Cell::get).started()
    }

    /// `timeout` shortened to this thread's attempt deadline, which it then names as the
    /// reason when it is the nearer.
    fn bound(timeout: NextTimeout) -> NextTimeout {
        let left = ATTEMPT_DEADLINE.with(|cell| match cell.get() {
            Deadline::None => None,
            Deadline::Budget(budget) => {
                cell.set(Deadline::Budget(budget).started());
                Some(budget)
            }
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        });
        let Some(left) = left else {
            return timeout;
        };
        if UreqDuration::Exact(left) < timeout.after {
            NextTimeout {
                after: UreqDuration::Exact(left),
                reason: ureq::Timeout::Global,
                ..timeout
            }
        } else {
            timeout
        }
    }
}

impl Drop for AttemptDeadline {
    fn drop(&mut self) {
        ATTEMPT_DEADLINE.with(|d| d.set(self.outer));
    }
}

/// ureq's body reader, read under its attempt's deadline.
struct DeadlineReader {
    inner: ureq::BodyReader<'static>,
    deadline: Deadline,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _scope = AttemptDeadline::enter(self.deadline);
        self.inner.read(buf)
    }
}

/// Bounds connecting (TCP and TLS) by the attempt's deadline.
#[derive(Debug)]
struct DeadlineConnector<C>(C);

impl<C: Connector> Connector for DeadlineConnector<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let bounded = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: AttemptDeadline::bound(details.timeout),
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        // ureq names a connect that outlived the whole budget by the budget's reason (ours is
        // `Global`), which reads as "may have been sent". Nothing is sent while connecting.
        self.0.connect(&bounded, chained).map_err(|e| match e {
            ureq::Error::Timeout(_) => ureq::Error::Timeout(ureq::Timeout::Connect),
            other => other,
        })
    }
}

/// ureq resolves the host on every request, and with a deadline set (every resil attempt has
/// one) its default resolver spawns a thread per lookup so the lookup can be abandoned. An IP
/// literal needs no lookup: answer it directly; hand real names to ureq's resolver.
///
/// (`ureq::unversioned` is outside ureq's semver promise; resil pins ureq 3.5.)
#[derive(Debug, Default)]
struct LiteralFirstResolver {
    names: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        match cached_ip_literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => {
                let timeout = AttemptDeadline::bound(timeout);
                // ureq would still start the lookup and take its answer if it came at once
                // (a name in /etc/hosts): with no time left, the attempt is over.
                if timeout.after == UreqDuration::Exact(Duration::ZERO) {
                    return Err(ureq::Error::Timeout(ureq::Timeout::Resolve));
                }
                self.names
                    .resolve(uri, config, timeout)
                    .map_err(mark_lookup_failure)
            }
        }
    }
}

/// ureq reports a failed lookup as a plain `Io` error, and one the attempt's deadline cut
/// short by the deadline's reason (`Global`, which reads as "may have been sent"); marked,
/// [`classify`] knows both as [`TransportErrorKind::Dns`] (nothing was sent, so any method may retry).
fn mark_lookup_failure(error: ureq::Error) -> ureq::Error {
    match error {
        ureq::Error::Io(e) => ureq::Error::Io(io::Error::new(e.kind(), LookupFailed(e))),
        ureq::Error::Timeout(_) => ureq::Error::Timeout(ureq::Timeout::Resolve),
        other => other,
    }
}

/// A host name that did not resolve.
#[derive(Debug)]
struct LookupFailed(io::Error);

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name lookup failed: {}", self.0)
    }
}

impl std::error::Error for LookupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

thread_local! {
    /// The authority this thread read an address from last (a copy of its text) with its
    /// scheme's default port, and what it read: a client calls the same backend over and
    /// over, and reading the address again cost ~450 instructions per request.
    static LAST_LITERAL: RefCell<Option<(LiteralKey, Option<std::net::SocketAddr>)>> =
        const { RefCell::new(None) };
}

/// An authority's text and its scheme's default port.
type LiteralKey = (String, Option<u16>);

/// [`ip_literal`], answered from this thread's last one when the authority and scheme match.
fn cached_ip_literal(uri: &http::Uri) -> Option<std::net::SocketAddr> {
    let authority = uri.authority()?.as_str();
    let default_port = default_port(uri);
    LAST_LITERAL.with(|last| {
        resil_http::driver::remember_last(
            last,
            |(seen, port)| *port == default_port && seen == authority,
            || {
                (
                    (authority.to_owned(), default_port),
                    ip_literal(uri, default_port),
                )
            },
        )
    })
}

fn default_port(uri: &http::Uri) -> Option<u16> {
    match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    }
}

/// The socket address of a URI whose host is an IP literal (`default_port`: its scheme's).
/// Runs on every request (ureq resolves before it looks in its pool), so the common authority
/// (no user info) is split by hand: `http::uri::Authority::host` and `port_u16` cost ~1,400
/// instructions together.
fn ip_literal(uri: &http::Uri, default_port: Option<u16>) -> Option<std::net::SocketAddr> {
    let authority = uri.authority()?;
    let text = authority.as_str();
    let (host, port) = if text.contains('@') {
        (authority.host(), authority.port_u16())
    } else {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']')?;
                (host, after.strip_prefix(':'))
            }
            None => match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            },
        };
        (host, port.map(str::parse).transpose().ok()?)
    };
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(std::net::SocketAddr::new(ip, port.or(default_port)?))
}

/// How far a socket timeout may be from the attempt's time left before it is set again. The
/// kernel rounds `SO_RCVTIMEO`/`SO_SNDTIMEO` up to its tick (1-10 ms) anyway.
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// ureq sets a socket timeout (one `setsockopt`) whenever the time left differs from the one
/// in force, which with a deadline on every attempt is every read and every write. This
/// connector wraps each connection (TLS included) so a timeout within [`TIMEOUT_SLACK`] of the
/// one in force is passed down unchanged, and ureq keeps the socket as it is.
#[derive(Debug)]
struct SteadyTimeouts;

impl<In: Transport> Connector<In> for SteadyTimeouts {
    type Out = SteadyTimeoutTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| SteadyTimeoutTransport { inner, last: None }))
    }
}

#[derive(Debug)]
struct SteadyTimeoutTransport<T> {
    inner: T,
    /// The time left last passed down.
    last: Option<UreqDuration>,
}

impl<T> SteadyTimeoutTransport<T> {
    /// `timeout`, or, if its time left is within [`TIMEOUT_SLACK`] of the last one passed
    /// down, that one. The per-read and per-write limits pass through: they are constant, and
    /// a TLS write may need to read below.
    fn steady(&mut self, timeout: NextTimeout) -> NextTimeout {
        match (self.last, timeout.after) {
            (Some(UreqDuration::Exact(last)), UreqDuration::Exact(now))
                if !now.is_zero() && last.abs_diff(now) <= TIMEOUT_SLACK =>
            {
                NextTimeout {
                    after: UreqDuration::Exact(last),
                    ..timeout
                }
            }
            (_, now) => {
                self.last = Some(now);
                timeout
            }
        }
    }
}

impl<T: Transport> Transport for SteadyTimeoutTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = self.steady(AttemptDeadline::bound(timeout));
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// A proxy connector (SOCKS, or `CONNECT` through an `http://` proxy) whose failures are
/// marked as the proxy's (see [`ProxyFailure`]): ureq's errors do not tell them from the
/// server's. The proxy itself is dialed inside it, by the whole chain run again without a
/// proxy, so a proxy that cannot be reached fails here too.
#[derive(Debug)]
struct ProxyStage<C>(C);

impl<In: Transport, C: Connector<In>> Connector<In> for ProxyStage<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.0
            .connect(details, chained)
            .map_err(|error| ProxyFailure::mark(error, details))
    }
}

/// A proxy that did not open the way to the server, which was never reached (see
/// [`Proxy`](resil_http::Proxy), "When a proxy fails").
#[derive(Debug)]
struct ProxyFailure {
    /// `scheme://host:port` (the proxy's credentials are never shown).
    proxy: String,
    problem: ProxyProblem,
    source: ureq::Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyProblem {
    /// It answered `CONNECT` with 407, or a SOCKS5 proxy refused the credentials or every
    /// method offered.
    AuthRequired,
    /// It refused the tunnel otherwise, or its answer was none.
    Refused,
    /// It closed the connection before the tunnel was open.
    Closed,
    /// It did not answer in time.
    TimedOut,
}

impl ProxyFailure {
    /// `error`, from a proxy stage, marked as the proxy's; left as it is when it already says
    /// what happened (a lookup, a timeout or a refused connection on the way to the proxy,
    /// TLS to an `https://` proxy), so it is classified as for a server.
    fn mark(error: ureq::Error, details: &ConnectionDetails<'_>) -> ureq::Error {
        use ureq::Error as E;
        let problem = match &error {
            // ureq's words for a CONNECT answered with another status than 200, or none.
            E::ConnectProxyFailed(answer) if answer.starts_with("proxy server responded 407/") => {
                ProxyProblem::AuthRequired
            }
            E::ConnectProxyFailed(answer) if answer == "proxy server did not respond" => {
                ProxyProblem::Closed
            }
            E::ConnectProxyFailed(_) | E::Protocol(_) => ProxyProblem::Refused,
            E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<LookupFailed>()) => {
                return error;
            }
            // ureq's SOCKS handshake reports in `io::Error`s: a refused password is
            // `PermissionDenied`, no acceptable method says so in words.
            E::Io(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => return error,
                io::ErrorKind::PermissionDenied => ProxyProblem::AuthRequired,
                _ if e.to_string() == "no acceptable auth methods" => ProxyProblem::AuthRequired,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProxyProblem::TimedOut,
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => ProxyProblem::Closed,
                _ => ProxyProblem::Refused,
            },
            _ => return error,
        };
        let proxy = details.config.proxy().map_or_else(String::new, |p| {
            let scheme = p.uri().scheme_str().unwrap_or("http");
            format!("{scheme}://{}:{}", p.host(), p.port())
        });
        E::Other(Box::new(ProxyFailure {
            proxy,
            problem,
            source: error,
        }))
    }

    /// How the retry policy sees it: nothing reached the server, so a refusal or a hang-up
    /// is a failed connection, retried for any method; wanting credentials is not retried.
    fn kind(&self) -> TransportErrorKind {
        match self.problem {
            ProxyProblem::AuthRequired => TransportErrorKind::Other,
            ProxyProblem::Refused | ProxyProblem::Closed => TransportErrorKind::Connect,
            ProxyProblem::TimedOut => TransportErrorKind::ConnectTimeout,
        }
    }
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match self.problem {
            ProxyProblem::AuthRequired => write!(
                f,
                "the proxy {proxy} refused the tunnel: proxy authentication is required \
                 (user:password@ in the proxy's URL)"
            ),
            ProxyProblem::Refused => write!(f, "the proxy {proxy} refused the tunnel"),
            ProxyProblem::Closed => write!(
                f,
                "the proxy {proxy} closed the connection before the tunnel was open"
            ),
            ProxyProblem::TimedOut => {
                write!(f, "the proxy {proxy} did not open the tunnel in time")
            }
        }
    }
}

impl std::error::Error for ProxyFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Maps ureq's errors to the kinds the retry policy understands. Anything that cannot be
/// proven to have happened before the request was written counts as "may have been sent".
fn classify(error: ureq::Error) -> TransportError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let error = match error {
        E::Other(other) => match other.downcast::<ProxyFailure>() {
            Ok(failure) => return TransportError::new(failure.kind(), *failure),
            Err(other) => E::Other(other),
        },
        error => error,
    };
    let kind = match &error {
        E::HostNotFound => TransportErrorKind::Dns,
        E::ConnectionFailed => TransportErrorKind::Connect,
        E::Timeout(T::Resolve) => TransportErrorKind::Dns,
        E::Timeout(T::Connect) => TransportErrorKind::ConnectTimeout,
        E::Timeout(_) => TransportErrorKind::Timeout,
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<LookupFailed>()) => {
            TransportErrorKind::Dns
        }
        E::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => TransportErrorKind::Connect,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => TransportErrorKind::Reset,
            _ => TransportErrorKind::Other,
        },
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => {
            TransportErrorKind::Protocol
        }
        #[cfg(feature = "rustls")]
        E::Tls(_) | E::Rustls(_) | E::Pem(_) => TransportErrorKind::TlsHandshake,
        _ => TransportErrorKind::Other,
    };
    TransportError::new(kind, error)
}
