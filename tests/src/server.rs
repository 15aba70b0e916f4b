//! The misbehaving HTTP/1.1 server on 127.0.0.x: how it answers ([`Reply`], scripted per
//! path), what it saw ([`Recorded`]), the load lock every loopback test holds, and addresses
//! that refuse ([`refused_addr`]) or hang ([`UnansweredListener`]).

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
    /// These bytes as they are, then close (made by a test, e.g. a head and part of a body).
    Bytes(Vec<u8>),
    /// These bytes, then nothing for this long, then close: a body that stalls partway.
    BytesThenStall(Vec<u8>, Duration),
    /// Wait this long, then answer with the reply: a slow replica.
    Late(Duration, Box<Reply>),
}

impl Reply {
    /// This reply after `wait`.
    pub fn late(wait: Duration, reply: Reply) -> Reply {
        Reply::Late(wait, Box::new(reply))
    }

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

/// A 200 whose 4-byte body is "café" in Latin-1, cut before what UTF-8 would need.
pub fn latin1_body() -> Vec<Reply> {
    vec![Reply::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\ncaf\xe9",
    )]
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        Reply::Late(wait, reply) => {
            thread::sleep(wait);
            send(stream, *reply)
        }
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
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
        Reply::BytesThenStall(bytes, stall) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            thread::sleep(stall);
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
