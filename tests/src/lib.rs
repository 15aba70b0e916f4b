//! Shared test support for every resil driver: a loopback HTTP/1.1 server that misbehaves on
//! purpose, and the scenario table every driver runs so their transcripts can be compared.
//!
//! The server binds 127.0.0.x only, answers each path from a script (the n-th request on a
//! path gets the n-th reply; the last reply repeats), and records every request and connection.
//! Raw TCP, because the faults that matter — resets after the request was read, stalls,
//! truncated bodies, slow drips, huge heads — cannot be produced by a well-behaved server.

mod h2c;
mod proxy;
pub use h2c::{H2cServer, PAD_RESPONSE};
pub use proxy::{
    FakeProxy, FakeSocks5, LOOPBACK_NO_PROXY, PROXY_CREDENTIALS, PROXY_RULE_ATTEMPTS,
    PROXY_VARIABLES, ProxyAuthAnswer, ProxyRequest, REFUSED_PROXY, SOCKS_CREDENTIALS, SocksRequest,
    SocksTarget, assert_proxy_refused, assert_went_through, check_env_proxy, check_env_socks_proxy,
    check_explicit_proxy, check_proxy_rule, check_socks_proxy, check_socks_rule, is_child,
    proxy_and_server, proxy_rule_policy, run_child,
};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the server answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response.
    Status {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body (Content-Length is set).
        body: Vec<u8>,
    },
    /// Read the request, then reset the connection (RST) without answering.
    Reset,
    /// Read the request, wait this long, then close without answering.
    Stall(Duration),
    /// Declare `declared` bytes of body, send `body`, then close.
    Truncated {
        /// Content-Length announced.
        declared: usize,
        /// What is actually sent.
        body: Vec<u8>,
    },
    /// Send the head and then the body one byte every `delay`.
    Drip {
        /// The body.
        body: Vec<u8>,
        /// Pause between bytes.
        delay: Duration,
    },
    /// A 200 whose head carries `bytes` of padding header.
    HugeHead(usize),
    /// A head with this status announcing a 10-byte body, then nothing for this long, then
    /// close: a body that stalls.
    HeadThenStall(u16, Duration),
    /// A 200 announcing 10 more bytes than these, these bytes, then nothing for this long,
    /// then close: a body that stalls partway.
    PartThenStall(&'static [u8], Duration),
    /// These bytes as they are, then close: a response no well-behaved server sends.
    Raw(&'static [u8]),
}

impl Reply {
    /// A response with this status, no body.
    pub fn status(status: u16) -> Reply {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with this status and body.
    pub fn body(status: u16, body: &str) -> Reply {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A response with this status and one header.
    pub fn with_header(status: u16, name: &str, value: &str) -> Reply {
        Reply::Status {
            status,
            headers: vec![(name.to_owned(), value.to_owned())],
            body: Vec::new(),
        }
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Which connection (0-based, in accept order) carried it.
    pub connection: usize,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// Every value of a header, in the order sent.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, (Vec<Reply>, usize)>>,
    handlers: Mutex<HashMap<String, Handler>>,
    requests: Mutex<Vec<Recorded>>,
    /// Requests per path so far (the next request's index), kept apart from the log so
    /// answering stays O(1) under load.
    counts: Mutex<HashMap<String, usize>>,
    connections: AtomicUsize,
}

/// A misbehaving HTTP/1.1 server on 127.0.0.x; stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// A server on 127.0.0.1 and a free port.
    pub fn start() -> TestServer {
        TestServer::start_on("127.0.0.1")
    }

    /// A server on another loopback address (127.0.0.2 is another origin than 127.0.0.1).
    pub fn start_on(ip: &str) -> TestServer {
        let listener = match TcpListener::bind((ip, 0)) {
            Ok(l) => l,
            Err(e) => panic!("test server cannot bind {ip}: {e}"),
        };
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let state = state.clone();
            let stop = stop.clone();
            thread::spawn(move || accept_loop(listener, state, stop))
        };
        TestServer {
            addr,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `http://ip:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests to `path` with `replies` in order; the last one repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) -> &Self {
        lock(&self.state.scripts).insert(path.to_owned(), (replies, 0));
        self
    }

    /// Answers requests to `path` with a function of the request and its 0-based index.
    pub fn handle(
        &self,
        path: &str,
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        lock(&self.state.handlers).insert(path.to_owned(), Arc::new(handler));
        self
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Requests to `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .count()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most connections that were in use at once, a connection being in use from its
    /// first request to its last. A client that closes a connection before it dials the one
    /// that replaces it never has the two in use at once, however late the server notices
    /// the close; [`TestServer::connections`] counts both.
    pub fn peak_connections_in_use(&self) -> usize {
        let mut spans: HashMap<usize, (Instant, Instant)> = HashMap::new();
        for r in lock(&self.state.requests).iter() {
            let span = spans.entry(r.connection).or_insert((r.at, r.at));
            span.0 = span.0.min(r.at);
            span.1 = span.1.max(r.at);
        }
        let mut spans: Vec<(Instant, Instant)> = spans.into_values().collect();
        spans.sort();
        // Ends of the spans still in use, earliest first.
        let mut in_use = std::collections::BinaryHeap::new();
        let mut peak = 0;
        for (first, last) in spans {
            while in_use
                .peek()
                .is_some_and(|&std::cmp::Reverse(end)| end <= first)
            {
                in_use.pop();
            }
            in_use.push(std::cmp::Reverse(last));
            peak = peak.max(in_use.len());
        }
        peak
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

/// Tests take this shared; a load test takes it exclusively, so it never starves the
/// timing of the others on a 2-core machine.
pub static LOAD: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A shared hold on [`LOAD`] for an ordinary test.
pub fn shared_load() -> std::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(PoisonError::into_inner)
}

/// An exclusive hold on [`LOAD`] for a load test.
pub fn exclusive_load() -> std::sync::RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(PoisonError::into_inner)
}

/// An address on which nothing listens: connecting is refused.
pub fn refused_addr() -> SocketAddr {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind for a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
}

/// A 200 whose 20-byte body arrives a byte every 20 ms (400 ms in all): each byte comes well
/// within an 80 ms deadline, the whole body long after it.
pub fn dripping_body() -> Vec<Reply> {
    vec![Reply::Drip {
        body: vec![b'x'; 20],
        delay: Duration::from_millis(20),
    }]
}

/// A 200 that announces 100 bytes of body, sends `short` and closes.
pub fn truncated_body() -> Vec<Reply> {
    vec![Reply::Truncated {
        declared: 100,
        body: b"short".to_vec(),
    }]
}

/// A 503 whose body stalls for 3 s, then a 200 `ok`: the 503's body must be given up at its
/// attempt's deadline for the retry to come in time.
pub fn stalled_503_then_ok() -> Vec<Reply> {
    vec![
        Reply::HeadThenStall(503, Duration::from_secs(3)),
        Reply::body(200, "ok"),
    ]
}

/// Fails unless `start` was between `at_least` and `below` ago.
pub fn assert_took(start: Instant, at_least: Duration, below: Duration) {
    let took = start.elapsed();
    assert!(
        took >= at_least && took < below,
        "took {took:?}, expected {at_least:?} to {below:?}"
    );
}

/// A listener that never accepts, whose queue is already full: a new connection to it
/// hangs in the handshake (Linux drops the SYN), which is how an unreachable host looks.
#[derive(Debug)]
pub struct UnansweredListener {
    url: String,
    _listener: socket2::Socket,
    _queued: Vec<socket2::Socket>,
}

impl UnansweredListener {
    /// Fills the queue of a fresh listener; `None` where the kernel still answers
    /// connections (then there is no hang to test).
    pub fn start() -> Option<UnansweredListener> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .ok()?;
        listener.listen(0).ok()?;
        let addr = listener.local_addr().ok()?.as_socket()?;
        let mut queued = Vec::new();
        for _ in 0..8 {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            match socket.connect_timeout(&addr.into(), Duration::from_millis(100)) {
                Ok(()) => queued.push(socket),
                Err(_) => {
                    return Some(UnansweredListener {
                        url: format!("http://{addr}/"),
                        _listener: listener,
                        _queued: queued,
                    });
                }
            }
        }
        None
    }

    /// [`start`](Self::start) for a test: `None` (and a note that the test is skipped) where
    /// the kernel answers every connection. On Linux (CI), which drops a SYN to a full accept
    /// queue, a hang must be possible, so there it panics instead.
    pub fn for_test() -> Option<UnansweredListener> {
        let listener = UnansweredListener::start();
        if listener.is_none() {
            if cfg!(target_os = "linux") {
                panic!("could not make a connection that hangs");
            }
            eprintln!("skipped: this kernel answers every connection");
        }
        listener
    }

    /// `http://127.0.0.1:port/`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, state: Arc<State>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let connection = state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let stop = stop.clone();
        thread::spawn(move || serve(stream, connection, &state, &stop));
    }
}

fn serve(stream: TcpStream, connection: usize, state: &State, stop: &AtomicBool) {
    // Idle keep-alive connections are closed after a while so threads do not pile up.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    while !stop.load(Ordering::SeqCst) {
        let Some(request) = read_request(&mut reader, connection) else {
            return;
        };
        let reply = reply_for(state, &request);
        lock(&state.requests).push(request);
        if !send(&mut writer, reply) {
            return;
        }
    }
}

fn reply_for(state: &State, request: &Recorded) -> Reply {
    let path = request.path.split('?').next().unwrap_or("").to_owned();
    let index = {
        let mut counts = lock(&state.counts);
        let count = counts.entry(path.clone()).or_insert(0);
        *count += 1;
        *count - 1
    };
    if let Some(handler) = lock(&state.handlers).get(&path).cloned() {
        return handler(request, index);
    }
    let mut scripts = lock(&state.scripts);
    match scripts.get_mut(&path) {
        Some((replies, next)) if !replies.is_empty() => {
            let reply = replies[(*next).min(replies.len() - 1)].clone();
            *next += 1;
            reply
        }
        _ => Reply::body(404, "no script for this path"),
    }
}

/// A request target as a path: one in absolute form (`http://host/path`, as sent through a
/// forward proxy), which a server must accept (RFC 9112 §3.2.2), loses its scheme and host.
fn origin_form(target: &str) -> String {
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]).to_owned(),
        None => target.to_owned(),
    }
}

/// Reads one request; `None` at EOF, timeout or garbage.
fn read_request(reader: &mut BufReader<TcpStream>, connection: usize) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = origin_form(parts.next()?);
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Recorded {
        method,
        path,
        headers,
        body,
        connection,
        at: Instant::now(),
    })
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Writes the reply; `false` when the connection must not be reused.
fn send(stream: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (n, v) in &headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&body).is_ok()
        }
        Reply::Reset => {
            let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
            false
        }
        Reply::Stall(d) => {
            thread::sleep(d);
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::Truncated { declared, body } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::Raw(bytes) => {
            let _ = stream.write_all(bytes);
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::HeadThenStall(status, stall) => {
            let head = format!("HTTP/1.1 {status} Stalling\r\ncontent-length: 10\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.flush();
            thread::sleep(stall);
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::PartThenStall(part, stall) => {
            let length = part.len() + 10;
            let head = format!("HTTP/1.1 200 Stalling\r\ncontent-length: {length}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(part);
            let _ = stream.flush();
            thread::sleep(stall);
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::Drip { body, delay } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            if stream.write_all(head.as_bytes()).is_err() {
                return false;
            }
            for b in body {
                thread::sleep(delay);
                if stream.write_all(&[b]).is_err() {
                    return false;
                }
            }
            true
        }
        Reply::HugeHead(bytes) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nx-padding: {}\r\ncontent-length: 0\r\n\r\n",
                "a".repeat(bytes)
            );
            let _ = stream.write_all(head.as_bytes());
            true
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// One row of the scenario table: a request, how the server behaves, and what every driver
/// must do about it (with [`scenario_policy`]-style tiny delays).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name for messages.
    pub name: &'static str,
    /// Request method.
    pub method: &'static str,
    /// Extra request headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The server's replies, in order.
    pub replies: Vec<Reply>,
    /// Whether the URL points at a port where nothing listens.
    pub refused: bool,
    /// What the driver must end with.
    pub expect: Expect,
    /// Requests the server must have seen.
    pub server_hits: usize,
    /// The hooks transcript every driver must produce (see [`Transcript`]).
    pub transcript: Vec<&'static str>,
}

impl Scenario {
    /// Starts a server scripted with this scenario's replies at `/s`; returns it and the URL
    /// to call (a port where nothing listens when the scenario wants a refused connection).
    pub fn serve(&self) -> (TestServer, String) {
        let server = TestServer::start();
        server.script("/s", self.replies.clone());
        let url = if self.refused {
            format!("http://{}/s", refused_addr())
        } else {
            server.url("/s")
        };
        (server, url)
    }

    /// The method to send.
    pub fn http_method(&self) -> http::Method {
        http::Method::from_bytes(self.method.as_bytes())
            .unwrap_or_else(|e| panic!("{}: method: {e}", self.name))
    }

    /// Checks a driver's result, its server's hit count and its hooks transcript against the
    /// scenario; `driver` prefixes every message.
    pub fn check<B: std::fmt::Debug>(
        &self,
        driver: &str,
        result: &Result<http::Response<B>, resil_http::Error<B>>,
        server: &TestServer,
        transcript: &Transcript,
    ) {
        let name = self.name;
        match (self.expect, result) {
            (Expect::Response(status), Ok(response)) => {
                assert_eq!(response.status().as_u16(), status, "{driver}: {name}");
            }
            (Expect::Error(kind), Err(e)) => assert!(
                format!("{:?}", e.kind()).starts_with(kind),
                "{driver}: {name}: expected {kind}, got {e} ({:?})",
                e.kind()
            ),
            (want, got) => panic!("{driver}: {name}: expected {want:?}, got {got:?}"),
        }
        assert_eq!(server.hits("/s"), self.server_hits, "{driver}: {name}");
        assert_eq!(transcript.lines(), self.transcript, "{driver}: {name}");
    }
}

/// The outcome a scenario requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A response with this status.
    Response(u16),
    /// An error of this kind (the driver's `ErrorKind` rendered with `{:?}`, prefix match).
    Error(&'static str),
}

/// The policy every driver uses for the scenario table: 4 attempts, a constant 5 ms backoff
/// without jitter, an 80 ms attempt timeout (the one scenario that waits for it stays under
/// ~100 ms of real time) and a 2 s total deadline.
pub fn scenario_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .max_attempts(4)
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .retry_after_spread(0.0)
        .attempt_timeout(Some(Duration::from_millis(80)))
        .total_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap_or_else(|e| panic!("scenario policy: {e}"))
}

/// Two attempts of 40 ms each, 5 ms apart: for a connection that hangs
/// ([`UnansweredListener`]), so the whole call waits ~85 ms.
pub fn connect_hang_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .max_attempts(2)
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .attempt_timeout(Some(Duration::from_millis(40)))
        .build()
        .unwrap_or_else(|e| panic!("connect hang policy: {e}"))
}

/// Checks what every driver must end with under [`connect_hang_policy`]: nothing was sent,
/// so even a POST was tried again, and both attempts ended as connect timeouts.
pub fn assert_connect_hang_retried<B>(err: &resil_http::Error<B>) {
    assert_eq!(
        err.kind(),
        resil_http::ErrorKind::Transport(resil_core::TransportErrorKind::ConnectTimeout),
        "{err}"
    );
    assert_eq!(err.attempts(), 2, "{err}");
}

/// Checks that a client's build failed on a setting's value, naming the setting.
pub fn assert_refused_setting<B>(err: &resil_http::Error<B>, setting: &str) {
    assert_eq!(err.kind(), resil_http::ErrorKind::InvalidConfig, "{err:#}");
    assert!(format!("{err:#}").contains(setting), "{err:#}");
}

/// Checks the framing cases every driver sends to `/length` (see
/// `resil_http::driver::check_request_headers`): a `Content-Length` that is not the body's (`"1"` on
/// a two-byte body, from the request builder and from `execute`; `"3"` on none) and a second
/// `Host` were refused with errors that say so, and only the two requests that declared
/// their body's length (`"2"` on `ab`, buffered and streamed) arrived.
pub fn assert_only_well_framed_requests_sent<B>(
    server: &TestServer,
    refused: [&resil_http::Error<B>; 4],
) {
    let [wrong, built, none, hosts] = refused;
    for short in [wrong, built] {
        assert_refused_setting(short, "Content-Length 1 does not match the body (2 bytes)");
    }
    assert_refused_setting(none, "Content-Length 3 does not match the body (0 bytes)");
    assert_refused_setting(hosts, "Host is given more than once");
    let sent: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| (r.values("content-length"), r.body))
        .collect();
    let framed = (vec!["2".to_owned()], b"ab".to_vec());
    assert_eq!(sent, [framed.clone(), framed]);
}

/// Sends the framing cases of [`assert_only_well_framed_requests_sent`] through an async
/// client (resil-tokio's and resil-isahc's alike) to a server of their own, and checks them.
pub async fn check_framing_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    let url = server.url("/length");
    let post = |length: &str| client.post(&url).header("content-length", length);
    let wrong = post("1").body("ab").send().await.unwrap_err();
    let built = http::Request::post(&url).header("content-length", "1");
    let built = client.execute(built.body("ab").unwrap()).await.unwrap_err();
    let none = client.get(&url).header("content-length", "3").send();
    let none = none.await.unwrap_err();
    post("2").body("ab").send().await.unwrap();
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"ab"));
    post("2").body_stream(stream).send().await.unwrap();
    let hosts = client
        .get(&url)
        .header("host", "a.test")
        .header("host", "b.test");
    let hosts = hosts.send().await.unwrap_err();
    assert_only_well_framed_requests_sent(&server, [&wrong, &built, &none, &hosts]);
}

/// The requests [`assert_empty_bodies_declared`] expects, each without a body: a method and
/// whether it goes through `execute` (a request built whole) rather than the builder.
pub const BODILESS_REQUESTS: [(&str, bool); 6] = [
    ("POST", false),
    ("PUT", false),
    ("PATCH", false),
    ("GET", false),
    ("DELETE", false),
    ("POST", true),
];

/// Checks what `server` received for [`BODILESS_REQUESTS`], in order: the methods that give
/// content a meaning declare `Content-Length: 0` (RFC 9110 §8.6), `GET` and `DELETE` no
/// length, and none is chunked.
pub fn assert_empty_bodies_declared(server: &TestServer) {
    let seen: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| {
            let framing = [r.values("content-length"), r.values("transfer-encoding")];
            (r.method, framing, r.body.len())
        })
        .collect();
    let expected: Vec<_> = BODILESS_REQUESTS
        .iter()
        .map(|&(method, _)| {
            let length = matches!(method, "POST" | "PUT" | "PATCH").then(|| "0".to_owned());
            (method.to_owned(), [length.into_iter().collect(), vec![]], 0)
        })
        .collect();
    assert_eq!(seen, expected);
}

/// Sends [`BODILESS_REQUESTS`] through an async client to a server of its own and checks them
/// with [`assert_empty_bodies_declared`].
pub async fn check_empty_bodies_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    server.script("/empty", vec![Reply::status(200)]);
    let url = server.url("/empty");
    for (method, built_whole) in BODILESS_REQUESTS {
        let method: http::Method = method.parse().unwrap();
        let sent = if built_whole {
            let request = http::Request::builder().method(method).uri(&url);
            client.execute(request.body(()).unwrap()).await
        } else {
            client.request(method, &url).send().await
        };
        assert_eq!(sent.unwrap().status(), 200);
    }
    assert_empty_bodies_declared(&server);
}

/// `server`'s URL for `path` with credentials in it (`me`, `p@ss` escaped), as
/// [`assert_url_credentials_sent_as_basic`] expects them.
pub fn url_with_credentials(server: &TestServer, path: &str) -> String {
    server.url(path).replacen("http://", "http://me:p%40ss@", 1)
}

/// Checks that every request `server` saw carried the credentials of
/// [`url_with_credentials`] as `Authorization: Basic` (`me:p@ss`), and only there.
pub fn assert_url_credentials_sent_as_basic(server: &TestServer, requests: usize) {
    let seen = server.requests();
    assert_eq!(seen.len(), requests);
    for request in seen {
        assert_eq!(request.values("authorization"), ["Basic bWU6cEBzcw=="]);
        assert_eq!(request.values("host"), [server.addr().to_string()]);
    }
}

/// Sends a GET to a URL with credentials in it through an async client, built by the request
/// builder and whole, and checks them with [`assert_url_credentials_sent_as_basic`].
pub async fn check_url_credentials_through<R: resil_async::Runtime>(
    client: &resil_async::Client<R>,
) {
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let url = url_with_credentials(&server, "/creds");
    client.get(&url).send().await.unwrap();
    let built = http::Request::get(&url).body(()).unwrap();
    client.execute(built).await.unwrap();
    assert_url_credentials_sent_as_basic(&server, 2);
}

/// Checks an async client's bound on response heads: one of 60 KiB is read, one of 200 KiB
/// (past every driver's limit) fails the attempt as a malformed response, not retried.
pub async fn check_response_head_limit_through<R: resil_async::Runtime>(
    client: &resil_async::Client<R>,
) {
    let server = TestServer::start();
    server.script("/head60", vec![Reply::HugeHead(60 * 1024)]);
    server.script("/head200", vec![Reply::HugeHead(200 * 1024)]);
    let ok = client.get(&server.url("/head60")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let err = client
        .get(&server.url("/head200"))
        .send()
        .await
        .unwrap_err();
    assert_head_refused(&err);
    assert_eq!(server.hits("/head200"), 1);
}

/// Checks the error for a response head past the client's limit: a malformed response, not
/// retried.
pub fn assert_head_refused<B>(err: &resil_http::Error<B>) {
    let protocol = resil_http::ErrorKind::Transport(resil_core::TransportErrorKind::Protocol);
    assert_eq!(err.kind(), protocol, "{err:#}");
    assert_eq!(err.attempts(), 1, "{err:#}");
}

/// The versions a request may ask for, and whether a client without HTTP/2 prior knowledge
/// sends it to an `http` URL (the others are refused unsent).
pub const REQUEST_VERSIONS: [(http::Version, bool); 5] = [
    (http::Version::HTTP_09, false),
    (http::Version::HTTP_10, true),
    (http::Version::HTTP_11, true),
    (http::Version::HTTP_2, false),
    (http::Version::HTTP_3, false),
];

/// Checks one of [`REQUEST_VERSIONS`]' outcomes: a 200, or a refusal before anything was
/// sent that names the version.
pub fn assert_version_outcome<B>(
    version: http::Version,
    sent: bool,
    result: Result<http::StatusCode, resil_http::Error<B>>,
) {
    match result {
        Ok(status) => {
            assert!(sent, "{version:?} was sent");
            assert_eq!(status, 200);
        }
        Err(err) => {
            assert!(!sent, "{version:?}: {err:#}");
            assert_refused_setting(&err, &format!("the request asks for {version:?}"));
            assert_eq!(err.attempts(), 0, "{err:#}");
        }
    }
}

/// Sends a GET at each of [`REQUEST_VERSIONS`] through an async client without HTTP/2 prior
/// knowledge and checks the outcomes; only the ones sent reach the server.
pub async fn check_versions_through<R: resil_async::Runtime>(client: &resil_async::Client<R>) {
    let server = TestServer::start();
    server.script("/v", vec![Reply::status(200)]);
    for (version, sent) in REQUEST_VERSIONS {
        let mut request = http::Request::get(server.url("/v")).body(()).unwrap();
        *request.version_mut() = version;
        let result = client.execute(request).await.map(|r| r.status());
        assert_version_outcome(version, sent, result);
    }
    assert_eq!(server.hits("/v"), 2);
}

/// Two backends for the per-origin breaker tests: `down` answers 503, `up` 200.
pub fn down_and_up() -> (TestServer, TestServer) {
    let (down, up) = (TestServer::start(), TestServer::start());
    down.script("/", vec![Reply::status(503)]);
    up.script("/", vec![Reply::status(200)]);
    (down, up)
}

/// A breaker that opens after two failures in a row, for [`down_and_up`].
pub fn trips_after_two() -> resil_core::CircuitBreakerBuilder {
    resil_core::CircuitBreaker::builder().trip(resil_core::TripCondition::ConsecutiveFailures(2))
}

/// The outcomes a client without retries and with [`trips_after_two`] gives for three calls
/// to `down` and then one to `up`: 503, 503, refused, then `up`'s answer, which is 200 with
/// a breaker per origin and refused with one breaker for both. Only sent calls reach `down`.
pub fn assert_breaker_scope(
    outcomes: &[Result<u16, resil_http::ErrorKind>],
    down: &TestServer,
    per_origin: bool,
) {
    let open = Err(resil_http::ErrorKind::CircuitOpen);
    let up = if per_origin { Ok(200) } else { open };
    assert_eq!(outcomes, [Ok(503), Ok(503), open, up]);
    assert_eq!(down.hits("/"), 2);
}

/// Makes the calls of [`assert_breaker_scope`] through an async client built by `build` (with
/// no retries, and the breaker given) and checks them, per origin and with one breaker.
pub async fn check_breaker_scope_through<R: resil_async::Runtime>(
    build: impl Fn(resil_async::ClientBuilder<R>) -> resil_async::ClientBuilder<R>,
) {
    for per_origin in [true, false] {
        let (down, up) = down_and_up();
        let builder = build(resil_async::Client::<R>::builder().max_retries(0));
        let builder = if per_origin {
            builder.breaker_per_origin(trips_after_two())
        } else {
            let breaker = trips_after_two().build().unwrap();
            builder.breaker(std::sync::Arc::new(std::sync::Mutex::new(breaker)))
        };
        let client = builder.build().unwrap();
        let mut outcomes = Vec::new();
        for url in [down.url("/"), down.url("/"), down.url("/"), up.url("/")] {
            let sent = client.get(&url).send().await;
            outcomes.push(
                sent.map(|r| r.status().as_u16())
                    .or_else(|e| e.response().map(|r| r.status().as_u16()).ok_or(e.kind())),
            );
        }
        assert_breaker_scope(&outcomes, &down, per_origin);
    }
}

/// Checks that `err` tells each cause once: no message in its `source()` chain repeats the
/// next one (so anyhow, eyre and tracing print each once), and `{:#}` is the chain on one
/// line. Returns that line.
pub fn assert_causes_told_once<B>(err: &resil_http::Error<B>) -> String {
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    for pair in chain.windows(2) {
        assert!(!pair[0].contains(&pair[1]), "told twice: {chain:?}");
    }
    let line = format!("{err:#}");
    assert_eq!(line, chain.join(": "));
    line
}

/// A 200 whose 4-byte body is "café" in Latin-1, cut before what UTF-8 would need.
pub fn latin1_body() -> Vec<Reply> {
    vec![Reply::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\ncaf\xe9",
    )]
}

/// Checks a `text()` or `json()` failure: a decode error that tells its cause once, and
/// whose one-line form has `cause` right after the error's own words.
pub fn assert_decode_error<B>(err: &resil_http::Error<B>, cause: &str) {
    assert_eq!(err.kind(), resil_http::ErrorKind::Decode, "{err:#}");
    let line = assert_causes_told_once(err);
    assert!(
        line.contains(&format!("could not be decoded: {cause}")),
        "{line}"
    );
}

/// Methods in the order `every_method_helper_sends_its_method…` (in each driver's tests)
/// sends them: OPTIONS answered 503 then retried, then one request per other helper.
pub const HELPER_METHODS: [&str; 8] = [
    "OPTIONS", "OPTIONS", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
];

/// The methods `server` saw, in order.
pub fn methods_seen(server: &TestServer) -> Vec<String> {
    server.requests().into_iter().map(|r| r.method).collect()
}

/// A server whose `/ok` answers `200 ok` twice, on one keep-alive connection if the client
/// reuses it.
pub fn ok_twice() -> TestServer {
    let server = TestServer::start();
    server.script("/ok", vec![Reply::body(200, "ok"), Reply::body(200, "ok")]);
    server
}

/// An async client (resil-tokio's or resil-isahc's) with every timeout `Duration::MAX`
/// ("never") and idle connections kept as long.
pub fn never_timing_out<R: resil_async::Runtime>() -> resil_async::ClientBuilder<R> {
    resil_async::Client::<R>::builder()
        .connect_timeout(Duration::MAX)
        .pool(4, Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .timeout(Duration::MAX)
}

/// A policy whose `retry_if` reads a 16-byte body prefix and retries a response whose body
/// starts with `{"errors"` (a GraphQL-style failure inside a 200), and asserts the prefix it
/// sees is bounded.
pub fn error_body_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_core::Jitter::None)
        .retry_if_body_prefix(16)
        .retry_if(|ctx| {
            let prefix = ctx.body_prefix()?;
            assert!(
                prefix.len() <= 16,
                "the prefix is bounded: {}",
                prefix.len()
            );
            prefix.starts_with(br#"{"errors""#).then_some(true)
        })
        .build()
        .unwrap_or_else(|e| panic!("error body policy: {e}"))
}

/// A 200 whose body is an error, then a 200 with `ok_body`: what [`error_body_policy`]
/// retries once.
pub fn error_body_replies(ok_body: &str) -> Vec<Reply> {
    vec![
        Reply::body(200, r#"{"errors":[{"message":"try again"}]}"#),
        Reply::body(200, ok_body),
    ]
}

/// Hooks that write every callback as one line; drivers are compared line for line.
#[derive(Debug, Default)]
pub struct Transcript(Mutex<Vec<String>>);

impl Transcript {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.0).clone()
    }

    fn push(&self, line: String) {
        lock(&self.0).push(line);
    }
}

impl resil_http::Hooks for Transcript {
    fn on_request(&self, _: &resil_http::CallInfo<'_>, attempt: resil_core::Attempt) {
        self.push(format!("send {}", attempt.number()));
    }
    fn on_retry(&self, _: &resil_http::CallInfo<'_>, r: &resil_http::RetryInfo) {
        self.push(format!(
            "retry {} ({}) in {:?}",
            r.after.number(),
            r.cause,
            r.delay
        ));
    }
    fn on_success(&self, _: &resil_http::CallInfo<'_>, attempt: resil_core::Attempt, status: u16) {
        self.push(format!("done {} {status}", attempt.number()));
    }
    fn on_failure(&self, _: &resil_http::CallInfo<'_>, g: &resil_core::GiveUp) {
        self.push(format!("fail {:?}", g.reason));
    }
    fn on_breaker(&self, _: &resil_http::CallInfo<'_>, t: resil_core::Transition) {
        self.push(format!("breaker {} -> {}", t.from, t.to));
    }
}

/// The scenario table; run it with [`scenario_policy`].
pub fn scenarios() -> Vec<Scenario> {
    let get = |name, replies: Vec<Reply>, expect, hits, transcript| Scenario {
        name,
        method: "GET",
        headers: Vec::new(),
        replies,
        refused: false,
        expect,
        server_hits: hits,
        transcript,
    };
    // A response no driver may read as anything but malformed: final, whatever the method.
    let malformed = |name, raw: &'static [u8]| {
        let protocol = Expect::Error("Transport(Protocol)");
        get(
            name,
            vec![Reply::Raw(raw)],
            protocol,
            1,
            vec!["send 1", "fail NotRetryable"],
        )
    };
    vec![
        get(
            "503, 503, 200",
            vec![
                Reply::status(503),
                Reply::status(503),
                Reply::body(200, "ok"),
            ],
            Expect::Response(200),
            3,
            vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "retry 2 (status 503) in 5ms",
                "send 3",
                "done 3 200",
            ],
        ),
        get(
            "always 500",
            vec![Reply::status(500)],
            Expect::Error("Status(500)"),
            4,
            vec![
                "send 1",
                "retry 1 (status 500) in 5ms",
                "send 2",
                "retry 2 (status 500) in 5ms",
                "send 3",
                "retry 3 (status 500) in 5ms",
                "send 4",
                "fail AttemptsExhausted",
            ],
        ),
        get(
            "404 is final",
            vec![Reply::status(404)],
            Expect::Response(404),
            1,
            vec!["send 1", "done 1 404"],
        ),
        get(
            "a redirect is returned, not followed",
            vec![Reply::with_header(302, "location", "/elsewhere")],
            Expect::Response(302),
            1,
            vec!["send 1", "done 1 302"],
        ),
        get(
            "Retry-After beyond the cap",
            vec![Reply::with_header(503, "retry-after", "999999")],
            Expect::Error("RetryAfterTooLong"),
            1,
            vec!["send 1", "fail RetryAfterTooLong { requested: 999999s }"],
        ),
        malformed(
            "a Content-Length that is no number is malformed, not a body",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nab",
        ),
        malformed(
            "a status outside 100-999 is malformed, not a reset",
            b"HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok",
        ),
        malformed(
            "a header name with a space is malformed, not a reset",
            b"HTTP/1.1 200 OK\r\nbad name: x\r\ncontent-length: 2\r\n\r\nok",
        ),
        get(
            "GET reset, then 200",
            vec![Reply::Reset, Reply::status(200)],
            Expect::Response(200),
            2,
            vec![
                "send 1",
                "retry 1 (connection reset after the request was sent) in 5ms",
                "send 2",
                "done 2 200",
            ],
        ),
        Scenario {
            name: "POST reset after the request was written",
            method: "POST",
            headers: Vec::new(),
            replies: vec![Reply::Reset, Reply::status(200)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
        },
        Scenario {
            name: "POST with Idempotency-Key, 503 then 201",
            method: "POST",
            headers: vec![("idempotency-key", "k-42")],
            replies: vec![Reply::status(503), Reply::status(201)],
            refused: false,
            expect: Expect::Response(201),
            server_hits: 2,
            transcript: vec![
                "send 1",
                "retry 1 (status 503) in 5ms",
                "send 2",
                "done 2 201",
            ],
        },
        Scenario {
            name: "POST 503 without a key is not replayed",
            method: "POST",
            headers: Vec::new(),
            replies: vec![Reply::status(503), Reply::status(201)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
        },
        Scenario {
            name: "a method of an HTTP extension (WebDAV) is sent, and not replayed",
            method: "PROPFIND",
            headers: Vec::new(),
            replies: vec![Reply::status(503), Reply::status(207)],
            refused: false,
            expect: Expect::Error("NotReplayed"),
            server_hits: 1,
            transcript: vec!["send 1", "fail NonIdempotent"],
        },
        Scenario {
            name: "POST to a refused port is retried until attempts run out",
            method: "POST",
            headers: Vec::new(),
            replies: Vec::new(),
            refused: true,
            expect: Expect::Error("Transport(Connect)"),
            server_hits: 0,
            transcript: vec![
                "send 1",
                "retry 1 (connection refused) in 5ms",
                "send 2",
                "retry 2 (connection refused) in 5ms",
                "send 3",
                "retry 3 (connection refused) in 5ms",
                "send 4",
                "fail AttemptsExhausted",
            ],
        },
        get(
            "stall past the attempt timeout, then 200",
            vec![Reply::Stall(Duration::from_secs(1)), Reply::status(200)],
            Expect::Response(200),
            2,
            vec![
                "send 1",
                "retry 1 (attempt timed out) in 5ms",
                "send 2",
                "done 2 200",
            ],
        ),
    ]
}
