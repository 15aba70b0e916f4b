//! An HTTP proxy and a SOCKS5 proxy on 127.0.0.1 for the drivers' proxy tests, and the checks
//! every driver runs through them (those that need proxy variables in the environment run in
//! a child process, see `child.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use resil_core::TransportErrorKind;
use resil_http::ErrorKind;

use crate::check::assert_refused_setting;
use crate::child::{is_child, run_child};
use crate::server::{Reply, TestServer, refused_addr};

/// What a [`FakeProxy`] was asked on one connection: the first request line (`CONNECT
/// 127.0.0.1:8443 HTTP/1.1`, or `GET http://127.0.0.1:8080/x HTTP/1.1` to forward) and its
/// `Proxy-Authorization`, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The request line, without its line break.
    pub line: String,
    /// The `Proxy-Authorization` value.
    pub authorization: Option<String>,
}

/// A listener on 127.0.0.1 and a free port whose connections are each handled on a thread of
/// their own. Dropped, it stops accepting and shuts every connection it accepted down, so
/// nothing it started outlives the test, passed or failed.
#[derive(Debug)]
struct Loopback {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Loopback {
    fn serve(what: &str, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{what}: bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{what}: local_addr: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (stopped, open) = (stop.clone(), accepted.clone());
        let handle = Arc::new(handle);
        let acceptor = thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                // Bounds a connection nobody closes, so its thread ends with the test.
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(copy) = client.try_clone() else {
                    continue;
                };
                if let Ok(kept) = client.try_clone() {
                    lock(&open).push(kept);
                }
                let handle = handle.clone();
                thread::spawn(move || {
                    handle(client);
                    // The copies kept for the drop would keep it open: the client is told.
                    let _ = copy.shutdown(Shutdown::Both);
                });
            }
        });
        Loopback {
            addr,
            stop,
            accepted,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in lock(&self.accepted).drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a [`FakeProxy`] answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Tunnels and relays.
    Relay,
    /// Every request, `CONNECT` included, gets this status.
    Refuse(u16),
    /// Reads the request's head, then closes without a word.
    HangUp,
}

/// A forward proxy: `CONNECT host:port` opens a tunnel there, a request in absolute form
/// (`GET http://host:port/path`) is relayed to the host it names, `Proxy-Authorization`
/// removed, and so is the rest of that connection. Or one that misbehaves: made with
/// [`refusing`](Self::refusing) it answers every request with a status of its own, with
/// [`hanging_up`](Self::hanging_up) it closes the connection instead of answering. It records
/// the first request of every connection, and stops when dropped.
#[derive(Debug)]
pub struct FakeProxy {
    seen: Arc<Mutex<Vec<ProxyRequest>>>,
    listener: Loopback,
}

impl FakeProxy {
    /// A proxy that tunnels and relays.
    pub fn start() -> FakeProxy {
        FakeProxy::serve(Answer::Relay)
    }

    /// A proxy that answers every request, `CONNECT` included, with `status`.
    pub fn refusing(status: u16) -> FakeProxy {
        FakeProxy::serve(Answer::Refuse(status))
    }

    /// A proxy that reads each request's head (closing on unread bytes would be a reset),
    /// then closes the connection without answering.
    pub fn hanging_up() -> FakeProxy {
        FakeProxy::serve(Answer::HangUp)
    }

    fn serve(answer: Answer) -> FakeProxy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let listener = Loopback::serve("fake proxy", move |client| {
            proxy_connection(client, answer, &recorded);
        });
        FakeProxy { seen, listener }
    }

    /// `http://127.0.0.1:port`, with `user:password@` in it if given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(userinfo) => format!("http://{userinfo}@{}", self.listener.addr),
            None => format!("http://{}", self.listener.addr),
        }
    }

    /// The first request of every connection so far, in the order they came.
    pub fn seen(&self) -> Vec<ProxyRequest> {
        lock(&self.seen).clone()
    }
}

fn proxy_connection(client: TcpStream, answer: Answer, seen: &Mutex<Vec<ProxyRequest>>) {
    let Ok(mut to_client) = client.try_clone() else {
        return;
    };
    let mut from_client = BufReader::new(client);
    let Some((line, headers)) = read_head(&mut from_client) else {
        return;
    };
    let authorization = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.clone());
    lock(seen).push(ProxyRequest {
        line: line.clone(),
        authorization,
    });
    match answer {
        Answer::Relay => {}
        Answer::Refuse(status) => {
            let answer = format!(
                "HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = to_client.write_all(answer.as_bytes());
            return;
        }
        Answer::HangUp => return,
    }
    let mut words = line.split(' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let (authority, forwarded) = if method == "CONNECT" {
        (target.to_owned(), None)
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            return;
        };
        let authority = rest.split('/').next().unwrap_or(rest).to_owned();
        (authority, Some((line, headers)))
    };
    let Ok(mut upstream) = TcpStream::connect(&authority) else {
        let _ = to_client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let greeting = match forwarded {
        None => to_client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n"),
        Some((line, headers)) => {
            let mut head = format!("{line}\r\n");
            for (name, value) in headers {
                if !name.eq_ignore_ascii_case("proxy-authorization") {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            head.push_str("\r\n");
            upstream.write_all(head.as_bytes())
        }
    };
    // What the client sent after its head (a body) goes on first.
    let early = from_client.buffer().to_vec();
    if greeting.is_err() || upstream.write_all(&early).is_err() {
        return;
    }
    from_client.consume(early.len());
    pipe(from_client.into_inner(), upstream);
}

/// The request line and headers, or `None` at EOF or on anything that is not a head.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Some((line, headers));
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// Copies both ways until either side closes, then closes the other.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (Ok(client_back), Ok(upstream_back)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        let mut buf = [0; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    };
    let upward = thread::spawn(move || copy(client, upstream));
    copy(upstream_back, client_back);
    let _ = upward.join();
}

/// Where a [`FakeSocks5`] was asked to connect: an address (the client resolved the name,
/// as `socks5://` asks) or a name (the proxy is to resolve it, as `socks5h://` asks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocksTarget {
    /// An IPv4 or IPv6 address and a port.
    Ip(SocketAddr),
    /// A host name and a port.
    Domain(String, u16),
}

impl SocksTarget {
    fn port(&self) -> u16 {
        match self {
            SocksTarget::Ip(addr) => addr.port(),
            SocksTarget::Domain(_, port) => *port,
        }
    }
}

/// What a [`FakeSocks5`] was asked on one connection that got as far as a `CONNECT`: the
/// credentials it was given (RFC 1929), if any, and the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksRequest {
    /// The user name and password, as sent.
    pub credentials: Option<(String, String)>,
    /// Where the client asked to go.
    pub target: SocksTarget,
}

/// How a [`FakeSocks5`] answers.
#[derive(Clone, Debug)]
enum SocksAnswer {
    /// Connects every tunnel, to `127.0.0.1` and the port asked, whatever the address or
    /// name (so no name is ever resolved and nothing leaves loopback).
    Connect,
    /// Refuses every `CONNECT` with this reply code (RFC 1928 §6: 2 not allowed, 5 refused).
    Refuse(u8),
    /// Reads the greeting, then closes without a word.
    HangUp,
}

/// A SOCKS5 proxy (RFC 1928) that takes no authentication or, made with
/// [`with_credentials`](Self::with_credentials), only username/password (RFC 1929) with
/// those credentials: offered none it answers "no acceptable methods", given others it
/// answers "failure". Every tunnel goes to `127.0.0.1`, to the port asked. It records every
/// `CONNECT` it was asked, and stops when dropped.
#[derive(Debug)]
pub struct FakeSocks5 {
    seen: Arc<Mutex<Vec<SocksRequest>>>,
    connections: Arc<AtomicUsize>,
    listener: Loopback,
}

impl FakeSocks5 {
    /// A proxy that wants no credentials and connects every tunnel.
    pub fn start() -> FakeSocks5 {
        FakeSocks5::serve(None, SocksAnswer::Connect)
    }

    /// A proxy that wants these credentials and connects every tunnel.
    pub fn with_credentials(user: &str, password: &str) -> FakeSocks5 {
        let credentials = Some((user.to_owned(), password.to_owned()));
        FakeSocks5::serve(credentials, SocksAnswer::Connect)
    }

    /// A proxy that wants no credentials and refuses every `CONNECT` with `reply`.
    pub fn refusing(reply: u8) -> FakeSocks5 {
        FakeSocks5::serve(None, SocksAnswer::Refuse(reply))
    }

    /// A proxy that reads the client's greeting, then closes the connection.
    pub fn hanging_up() -> FakeSocks5 {
        FakeSocks5::serve(None, SocksAnswer::HangUp)
    }

    fn serve(credentials: Option<(String, String)>, answer: SocksAnswer) -> FakeSocks5 {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (recorded, counted) = (seen.clone(), connections.clone());
        let listener = Loopback::serve("fake SOCKS5 proxy", move |client| {
            counted.fetch_add(1, Ordering::SeqCst);
            socks_connection(client, credentials.as_ref(), &answer, &recorded);
        });
        FakeSocks5 {
            seen,
            connections,
            listener,
        }
    }

    /// `scheme://127.0.0.1:port` (`socks5` or `socks5h`), with `user:password@` in it if given.
    pub fn url(&self, scheme: &str, credentials: Option<&str>) -> String {
        match credentials {
            Some(userinfo) => format!("{scheme}://{userinfo}@{}", self.listener.addr),
            None => format!("{scheme}://{}", self.listener.addr),
        }
    }

    /// Every `CONNECT` so far, in the order they came.
    pub fn seen(&self) -> Vec<SocksRequest> {
        lock(&self.seen).clone()
    }

    /// Connections accepted so far (a refused handshake counts too).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One SOCKS5 connection; any read that fails or ends early ends it.
fn socks_connection(
    mut client: TcpStream,
    wanted: Option<&(String, String)>,
    answer: &SocksAnswer,
    seen: &Mutex<Vec<SocksRequest>>,
) -> Option<()> {
    let [version, count] = read_array(&mut client)?;
    let methods = read_vec(&mut client, count.into())?;
    if version != 5 || matches!(answer, SocksAnswer::HangUp) {
        return None;
    }
    // Method 2 is username/password, 0 none; 0xFF says no offered one is acceptable.
    let method = if wanted.is_some() { 2 } else { 0 };
    if !methods.contains(&method) {
        let _ = client.write_all(&[5, 0xFF]);
        return None;
    }
    client.write_all(&[5, method]).ok()?;
    let credentials = if method == 2 {
        let [_version, user_len] = read_array(&mut client)?;
        let user = read_vec(&mut client, user_len.into())?;
        let [password_len] = read_array(&mut client)?;
        let password = read_vec(&mut client, password_len.into())?;
        let given = (
            String::from_utf8_lossy(&user).into_owned(),
            String::from_utf8_lossy(&password).into_owned(),
        );
        if Some(&given) != wanted {
            let _ = client.write_all(&[1, 1]);
            return None;
        }
        client.write_all(&[1, 0]).ok()?;
        Some(given)
    } else {
        None
    };
    let [_version, _command, _reserved, kind] = read_array(&mut client)?;
    let target = match kind {
        1 => {
            let [a, b, c, d, p1, p2] = read_array(&mut client)?;
            SocksTarget::Ip(SocketAddr::from((
                [a, b, c, d],
                u16::from_be_bytes([p1, p2]),
            )))
        }
        4 => {
            let octets: [u8; 16] = read_array(&mut client)?;
            let port = u16::from_be_bytes(read_array(&mut client)?);
            SocksTarget::Ip(SocketAddr::from((octets, port)))
        }
        3 => {
            let [len] = read_array(&mut client)?;
            let name = read_vec(&mut client, len.into())?;
            let port = u16::from_be_bytes(read_array(&mut client)?);
            SocksTarget::Domain(String::from_utf8_lossy(&name).into_owned(), port)
        }
        _ => return None,
    };
    let port = target.port();
    lock(seen).push(SocksRequest {
        credentials,
        target,
    });
    // The reply: version, status, reserved, then an IPv4 address and port bound (unused).
    let reply = |status: u8| [5, status, 0, 1, 127, 0, 0, 1, 0, 0];
    let upstream = match answer {
        SocksAnswer::Refuse(status) => {
            let _ = client.write_all(&reply(*status));
            return None;
        }
        _ => match TcpStream::connect(("127.0.0.1", port)) {
            Ok(upstream) => upstream,
            Err(_) => {
                let _ = client.write_all(&reply(5));
                return None;
            }
        },
    };
    client.write_all(&reply(0)).ok()?;
    pipe(client, upstream);
    Some(())
}

fn read_array<const N: usize>(stream: &mut TcpStream) -> Option<[u8; N]> {
    let mut bytes = [0; N];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

fn read_vec(stream: &mut TcpStream, len: usize) -> Option<Vec<u8>> {
    let mut bytes = vec![0; len];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Proxy credentials as a proxy URL carries them (`me`, `p@ss` escaped) and as
/// `Proxy-Authorization` sends them.
pub const PROXY_CREDENTIALS: (&str, &str) = ("me:p%40ss", "Basic bWU6cEBzcw==");

/// Checks that a call reached `proxy`, and only it: one connection, whose first request line
/// starts with `line` (how the driver asked: a tunnel or a forward), carrying
/// [`PROXY_CREDENTIALS`].
pub fn assert_went_through(proxy: &FakeProxy, line: &str) {
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].line.starts_with(line), "{seen:?}");
    assert_eq!(seen[0].authorization.as_deref(), Some(PROXY_CREDENTIALS.1));
}

/// A [`FakeProxy`] and a server behind it for the clients' `proxy(url)` tests: the proxy's URL
/// (with [`PROXY_CREDENTIALS`]) and that of a page on the server that answers `relayed`.
pub fn proxy_and_server() -> (FakeProxy, TestServer, String, String) {
    let (proxy, server) = (FakeProxy::start(), TestServer::start());
    server.script("/via", vec![Reply::body(200, "relayed")]);
    let (proxy_url, page) = (proxy.url(Some(PROXY_CREDENTIALS.0)), server.url("/via"));
    (proxy, server, proxy_url, page)
}

/// How a driver answers a proxy that wants credentials it was not given, or refuses those it
/// was (HTTP 407, SOCKS5 authentication): see `resil_http::Proxy`, "When a proxy fails".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyAuthAnswer {
    /// The call fails at once, not retried, saying proxy authentication is required.
    FailsAtOnce,
    /// As a connect failure, retried: the driver's library tells the refusal from no other
    /// (resil-isahc: isahc 2 keeps neither curl's `CONNECT` status nor its error text).
    RetriedAsConnect,
}

/// Attempts [`proxy_rule_policy`] allows.
pub const PROXY_RULE_ATTEMPTS: u32 = 3;

/// The policy of the clients [`check_proxy_rule`] and [`check_socks_rule`] run:
/// [`PROXY_RULE_ATTEMPTS`] attempts, none waiting for the one before.
pub fn proxy_rule_policy() -> resil_core::RetryPolicy {
    resil_core::RetryPolicy::builder()
        .max_attempts(PROXY_RULE_ATTEMPTS)
        .backoff(resil_core::Backoff::Constant(Duration::ZERO))
        .jitter(resil_core::Jitter::None)
        .build()
        .unwrap_or_else(|e| panic!("proxy rule policy: {e}"))
}

/// What the proxy rule says a failed call through a proxy must come to.
struct Expected {
    /// The proxy's answer, for the assertion messages.
    case: &'static str,
    kind: TransportErrorKind,
    attempts: u32,
    /// Words the error must contain.
    says: &'static str,
}

impl Expected {
    /// Refused, or unreachable: a connect failure, so every attempt is used, POST included.
    fn connect(case: &'static str) -> Expected {
        Expected {
            case,
            kind: TransportErrorKind::Connect,
            attempts: PROXY_RULE_ATTEMPTS,
            says: "",
        }
    }

    /// Wanting credentials: one attempt, saying so, unless the driver cannot tell.
    fn auth(case: &'static str, answer: ProxyAuthAnswer) -> Expected {
        match answer {
            ProxyAuthAnswer::FailsAtOnce => Expected {
                case,
                kind: TransportErrorKind::Other,
                attempts: 1,
                says: "proxy authentication is required",
            },
            ProxyAuthAnswer::RetriedAsConnect => Expected::connect(case),
        }
    }

    /// Checks what `post` gave, and that the proxy's credentials are nowhere in it.
    fn check<R, B>(&self, posted: Result<R, resil_http::Error<B>>) {
        let Err(err) = posted else {
            panic!("{}: a POST through the proxy succeeded", self.case);
        };
        let (case, message) = (self.case, format!("{err:#}"));
        assert_eq!(
            err.kind(),
            ErrorKind::Transport(self.kind),
            "{case}: {message}"
        );
        assert_eq!(err.attempts(), self.attempts, "{case}: {message}");
        assert!(message.contains(self.says), "{case}: {message}");
        for secret in ["p%40ss", "p@ss", PROXY_CREDENTIALS.1] {
            assert!(!message.contains(secret), "{case}: {message}");
        }
    }
}

/// Checks the proxy rule (see `resil_http::Proxy`) against proxies that misbehave:
/// `post(proxy_url, origin)` must POST a body to the server at `origin` (`127.0.0.1:port`)
/// through the proxy at `proxy_url` (the client's `proxy(url)`, [`PROXY_CREDENTIALS`] in it)
/// in a tunnel (`https`, or HTTP/2 with prior knowledge; ureq tunnels every request), with a
/// client that runs [`proxy_rule_policy`], and return what it came to. A proxy answering 407
/// fails it as `auth` says; one answering 403 or 502, hanging up, or not listening is a
/// connect failure, retried (a POST too: nothing reached the server, which never sees one).
pub fn check_proxy_rule<R, B>(
    auth: ProxyAuthAnswer,
    post: impl Fn(&str, &str) -> Result<R, resil_http::Error<B>>,
) {
    let server = TestServer::start();
    let origin = server.addr().to_string();
    for (proxy, expected) in [
        (FakeProxy::refusing(407), Expected::auth("407", auth)),
        (FakeProxy::refusing(403), Expected::connect("403")),
        (FakeProxy::refusing(502), Expected::connect("502")),
        (FakeProxy::hanging_up(), Expected::connect("hang-up")),
    ] {
        expected.check(post(&proxy.url(Some(PROXY_CREDENTIALS.0)), &origin));
        // One tunnel asked for per attempt, with the proxy's credentials.
        let seen = proxy.seen();
        let case = expected.case;
        assert_eq!(seen.len(), expected.attempts as usize, "{case}: {seen:?}");
        for request in seen {
            let tunnel = format!("CONNECT {origin} ");
            assert!(request.line.starts_with(&tunnel), "{case}: {request:?}");
            assert_eq!(request.authorization.as_deref(), Some(PROXY_CREDENTIALS.1));
        }
    }
    let dead = format!("http://{}@{}", PROXY_CREDENTIALS.0, refused_addr());
    Expected::connect("dead port").check(post(&dead, &origin));
    assert_eq!(server.requests().len(), 0, "the server was reached");
}

/// [`check_proxy_rule`] for SOCKS5 proxies (`socks5h://`): one that refuses the credentials,
/// or every method offered, fails the call as `auth` says; one that refuses the `CONNECT`
/// (connection refused, not allowed), hangs up or is not listening is a connect failure,
/// retried. `post` is as for [`check_proxy_rule`].
pub fn check_socks_rule<R, B>(
    auth: ProxyAuthAnswer,
    post: impl Fn(&str, &str) -> Result<R, resil_http::Error<B>>,
) {
    let server = TestServer::start();
    let origin = server.addr().to_string();
    let wanting = || FakeSocks5::with_credentials(SOCKS_CREDENTIALS.0, SOCKS_CREDENTIALS.1);
    for (socks, credentials, expected) in [
        (
            wanting(),
            Some("me:wrong"),
            Expected::auth("credentials refused", auth),
        ),
        (
            wanting(),
            None,
            Expected::auth("no method acceptable", auth),
        ),
        (FakeSocks5::refusing(5), None, Expected::connect("refused")),
        (
            FakeSocks5::refusing(2),
            None,
            Expected::connect("not allowed"),
        ),
        (FakeSocks5::hanging_up(), None, Expected::connect("hang-up")),
    ] {
        expected.check(post(&socks.url("socks5h", credentials), &origin));
        let case = expected.case;
        assert_eq!(socks.connections(), expected.attempts as usize, "{case}");
    }
    let dead = format!("socks5h://{}@{}", PROXY_CREDENTIALS.0, refused_addr());
    Expected::connect("dead port").check(post(&dead, &origin));
    assert_eq!(server.requests().len(), 0, "the server was reached");
}

/// Checks a client's SOCKS5 proxy set with `proxy(url)`: `get(proxy_url, page)` must fetch
/// `page` (`http://localhost:port/via`, which answers `relayed`) with a client built with
/// that proxy and return the body. Through `socks5h://` the proxy must be sent the name,
/// through `socks5://` an address the client looked up; both with [`SOCKS_CREDENTIALS`].
pub fn check_socks_proxy<B>(get: impl Fn(&str, &str) -> Result<String, resil_http::Error<B>>) {
    let server = TestServer::start();
    server.script("/via", vec![Reply::body(200, "relayed")]);
    let port = server.addr().port();
    // The fake proxy connects to 127.0.0.1 whatever it is asked: nothing is resolved there.
    let page = format!("http://localhost:{port}/via");
    let given = (
        SOCKS_CREDENTIALS.0.to_owned(),
        SOCKS_CREDENTIALS.1.to_owned(),
    );
    for scheme in ["socks5h", "socks5"] {
        let socks = FakeSocks5::with_credentials(SOCKS_CREDENTIALS.0, SOCKS_CREDENTIALS.1);
        let url = socks.url(scheme, Some(PROXY_CREDENTIALS.0));
        let body = get(&url, &page).unwrap_or_else(|e| panic!("{scheme}: {e:#}"));
        assert_eq!(body, "relayed", "{scheme}");
        let seen = socks.seen();
        assert_eq!(seen.len(), 1, "{scheme}: {seen:?}");
        assert_eq!(seen[0].credentials.as_ref(), Some(&given), "{scheme}");
        match (&seen[0].target, scheme) {
            (SocksTarget::Domain(name, asked), "socks5h") => {
                assert_eq!((name.as_str(), *asked), ("localhost", port));
            }
            (SocksTarget::Ip(addr), "socks5") => {
                assert!(addr.ip().is_loopback() && addr.port() == port, "{addr}");
            }
            (target, _) => panic!("{scheme} asked for {target:?}"),
        }
    }
    assert_eq!(server.hits("/via"), 2);
}

/// Where [`check_explicit_proxy`] tells its child process the proxy's URL.
const PROXY_URL_VARIABLE: &str = "RESIL_TESTS_PROXY_URL";

/// Loopback in every syntax the drivers' libraries read in `NO_PROXY` (curl's CIDR, ureq's
/// prefix, a name), as CI sets it.
pub const LOOPBACK_NO_PROXY: &str = "127.0.0.0/8,127.*,localhost";

/// Runs the part of the test `test` that needs a proxy: in a child process whose environment
/// names the [`FakeProxy`] started here in each of `variables` and exempts `exempt` from
/// proxies, `call(proxy_url, page)` fetches `page` (which answers `relayed`) and the server
/// must see it `hits` times; here, the proxy must have been asked once, as `line` says, with
/// [`PROXY_CREDENTIALS`]. Returns whether this is the child.
fn through_fake_proxy(
    test: &str,
    line: &str,
    (variables, exempt): (&[&str], &str),
    hits: usize,
    call: impl FnOnce(&str, &str),
) -> bool {
    if is_child(test) {
        let proxy_url = std::env::var(PROXY_URL_VARIABLE)
            .unwrap_or_else(|e| panic!("{PROXY_URL_VARIABLE}: {e}"));
        let server = TestServer::start();
        server.script("/via", vec![Reply::body(200, "relayed")]);
        call(&proxy_url, &server.url("/via"));
        assert_eq!(server.hits("/via"), hits);
        return true;
    }
    let proxy = FakeProxy::start();
    let url = proxy.url(Some(PROXY_CREDENTIALS.0));
    let mut vars = vec![
        ("NO_PROXY", exempt),
        ("no_proxy", exempt),
        (PROXY_URL_VARIABLE, &url),
    ];
    vars.extend(variables.iter().map(|&name| (name, url.as_str())));
    run_child(test, &vars);
    assert_went_through(&proxy, line);
    false
}

/// Checks, in the test `test`, that a client the environment points at a proxy through
/// `variable` asks that proxy as `line` says: `call(page)` must fetch `page` (which answers
/// `relayed`) once with a client as built by default, and once with one built with
/// `no_proxy()`, which the proxy must not see.
pub fn check_env_proxy(test: &str, variable: &str, line: &str, call: impl FnOnce(&str)) {
    through_fake_proxy(test, line, (&[variable], ""), 2, |_, page| call(page));
}

/// The credentials [`PROXY_CREDENTIALS`] carries, as a SOCKS5 proxy receives them.
pub const SOCKS_CREDENTIALS: (&str, &str) = ("me", "p@ss");

/// Checks, in the test `test`, that a client the environment points at a SOCKS5 proxy
/// (`ALL_PROXY=socks5h://…`, [`PROXY_CREDENTIALS`] in it) goes through it rather than around
/// it: `call(page)` must fetch `page` (which answers `relayed`) once, with a client as built
/// by default, and the proxy must have been asked once, given [`SOCKS_CREDENTIALS`].
pub fn check_env_socks_proxy(test: &str, call: impl FnOnce(&str)) {
    if is_child(test) {
        let server = TestServer::start();
        server.script("/via", vec![Reply::body(200, "relayed")]);
        call(&server.url("/via"));
        assert_eq!(server.hits("/via"), 1);
        return;
    }
    let socks = FakeSocks5::with_credentials(SOCKS_CREDENTIALS.0, SOCKS_CREDENTIALS.1);
    let url = socks.url("socks5h", Some(PROXY_CREDENTIALS.0));
    let vars = [
        ("ALL_PROXY", url.as_str()),
        ("all_proxy", &url),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    run_child(test, &vars);
    let seen = socks.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let given = (
        SOCKS_CREDENTIALS.0.to_owned(),
        SOCKS_CREDENTIALS.1.to_owned(),
    );
    assert_eq!(seen[0].credentials, Some(given));
}

/// Checks, in the test `test`, a client's `proxy(url)` setting: built by `build(proxy_url)`
/// in a child process whose `NO_PROXY` exempts loopback, `call(client, page)` must fetch
/// `page` (which answers `relayed`) through that proxy, asked as `line` says; and
/// `build(REFUSED_PROXY)` must fail (see [`assert_proxy_refused`]).
pub fn check_explicit_proxy<C, B>(
    test: &str,
    line: &str,
    build: impl Fn(&str) -> Result<C, resil_http::Error<B>>,
    call: impl FnOnce(&C, &str),
) {
    let child = through_fake_proxy(test, line, (&[], LOOPBACK_NO_PROXY), 1, |proxy, page| {
        let client = build(proxy).unwrap_or_else(|e| panic!("a client with proxy {proxy}: {e:#}"));
        call(&client, page);
    });
    if !child {
        assert_proxy_refused(build(REFUSED_PROXY.0));
    }
}

/// A proxy URL every client refuses when it is built (no driver speaks SOCKS4), and the start
/// of what the error says: the setting, and the URL with its credentials redacted.
pub const REFUSED_PROXY: (&str, &str) = (
    "socks4://me:secret@127.0.0.1:1080",
    "proxy: invalid URL `socks4://[redacted]@127.0.0.1:1080`",
);

/// Checks what building a client with the proxy [`REFUSED_PROXY`] gave: an `InvalidConfig`
/// error that names the setting and hides the credentials.
pub fn assert_proxy_refused<T, B>(built: Result<T, resil_http::Error<B>>) {
    let Err(err) = built else {
        panic!("a client was built with the proxy {}", REFUSED_PROXY.0);
    };
    assert_refused_setting(&err, REFUSED_PROXY.1);
}
