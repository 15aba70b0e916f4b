//! An HTTP proxy on 127.0.0.1 for the drivers' proxy tests, and a way to run a test with
//! proxy variables in its environment without changing the environment of a running process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

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

/// A forward proxy: `CONNECT host:port` opens a tunnel there, a request in absolute form
/// (`GET http://host:port/path`) is relayed to the host it names, `Proxy-Authorization`
/// removed, and so is the rest of that connection. Or, made with [`refusing`](Self::refusing),
/// one that answers every request with a status of its own. It records the first request of
/// every connection and runs until the test process ends.
#[derive(Debug)]
pub struct FakeProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<ProxyRequest>>>,
}

impl FakeProxy {
    /// A proxy that tunnels and relays.
    pub fn start() -> FakeProxy {
        FakeProxy::serve(None)
    }

    /// A proxy that answers every request, `CONNECT` included, with `status`.
    pub fn refusing(status: u16) -> FakeProxy {
        FakeProxy::serve(Some(status))
    }

    fn serve(refusal: Option<u16>) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fake proxy: bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake proxy: local_addr: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let recorded = recorded.clone();
                thread::spawn(move || proxy_connection(client, refusal, &recorded));
            }
        });
        FakeProxy { addr, seen }
    }

    /// `http://127.0.0.1:port`, with `user:password@` in it if given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(userinfo) => format!("http://{userinfo}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The first request of every connection so far, in the order they came.
    pub fn seen(&self) -> Vec<ProxyRequest> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn proxy_connection(client: TcpStream, refusal: Option<u16>, seen: &Mutex<Vec<ProxyRequest>>) {
    // Bounds a connection nobody closes, so its threads end with the test.
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
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
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(ProxyRequest {
            line: line.clone(),
            authorization,
        });
    if let Some(status) = refusal {
        let answer =
            format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = to_client.write_all(answer.as_bytes());
        return;
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
pub fn proxy_and_server() -> (FakeProxy, crate::TestServer, String, String) {
    let (proxy, server) = (FakeProxy::start(), crate::TestServer::start());
    server.script("/via", vec![crate::Reply::body(200, "relayed")]);
    let (proxy_url, page) = (proxy.url(Some(PROXY_CREDENTIALS.0)), server.url("/via"));
    (proxy, server, proxy_url, page)
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
        let server = crate::TestServer::start();
        server.script("/via", vec![crate::Reply::body(200, "relayed")]);
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

/// A proxy URL every client refuses when it is built (no driver speaks SOCKS), and the start
/// of what the error says: the setting, and the URL with its credentials redacted.
pub const REFUSED_PROXY: (&str, &str) = (
    "socks5://me:secret@127.0.0.1:1080",
    "proxy: invalid URL `socks5://[redacted]@127.0.0.1:1080`",
);

/// Checks what building a client with the proxy [`REFUSED_PROXY`] gave: an `InvalidConfig`
/// error that names the setting and hides the credentials.
pub fn assert_proxy_refused<T, B>(built: Result<T, resil_http::Error<B>>) {
    let Err(err) = built else {
        panic!("a client was built with the proxy {}", REFUSED_PROXY.0);
    };
    crate::assert_refused_setting(&err, REFUSED_PROXY.1);
}

/// The variables through which a process may be told of a proxy (curl's, both cases, and
/// CGI's `REQUEST_METHOD`, with which libraries ignore them).
pub const PROXY_VARIABLES: [&str; 9] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Set in the child process [`run_child`] starts.
const CHILD_MARK: &str = "RESIL_TESTS_CHILD";

/// Whether this process is the child [`run_child`] started to run the test `test` (whose body
/// should then run the part that needs the environment, and nothing else).
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_MARK).is_ok_and(|name| name == test)
}

/// Runs the test `test` of this test binary again, alone, in a child process whose
/// environment has none of the [`PROXY_VARIABLES`] but those in `vars`; panics with its
/// output unless it passes. The child finds itself with [`is_child`].
pub fn run_child(test: &str, vars: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut command = std::process::Command::new(exe);
    command.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).env(CHILD_MARK, test);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {test} in a child process: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // A name that matched no test would pass having run nothing.
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a child process with {vars:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
