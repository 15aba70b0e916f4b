//! Proxies for the default transport, as the environment or the client's `proxy(url)` names
//! them: an `http` request is forwarded to an `http://` proxy in absolute form, anything else
//! goes through a tunnel, hyper-util's `CONNECT` ([`Tunnel`]) or SOCKS5 ([`SocksV5`]). How a
//! proxy's failures are classified is [`resil_http::Proxy`]'s rule ("When a proxy fails").

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::uri::Scheme;
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use resil_async::{BoxError, BoxFuture, TransportSettings};
use resil_core::TransportErrorKind;
use resil_http::Proxy;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::connect::{DnsFailure, MarkedResolver, delegate_io, tcp};

/// Variables that name a proxy (curl's, in either case); `NO_PROXY` only exempts hosts.
const PROXY_VARIABLES: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

fn is_set(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|value| !value.is_empty())
}

/// Which proxy each destination goes through (hyper-util's reading of curl's variables, or
/// one proxy for all).
#[derive(Debug)]
pub(crate) struct Proxies(Matcher);

impl Proxies {
    /// The proxies `setting` names; `None` when there are none, so a transport without one
    /// does no proxy work per request or connection.
    pub(crate) fn of(setting: &Proxy) -> Result<Option<Arc<Proxies>>, BoxError> {
        let matcher = match setting {
            Proxy::Url(url) => {
                resil_http::driver::check_proxy_url(url)?;
                Matcher::builder().all(url.as_str()).build()
            }
            Proxy::FromEnv if PROXY_VARIABLES.iter().any(|name| is_set(name)) => {
                Matcher::from_env()
            }
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(Proxies(matcher))))
    }

    /// The `Proxy-Authorization` a request to `uri` forwarded through its proxy carries: the
    /// credentials in that proxy's URL, if any.
    pub(crate) fn forward_authorization(&self, uri: &Uri) -> Option<HeaderValue> {
        let proxy = self.0.intercept(uri)?;
        let speaks_http = proxy.uri().scheme() == Some(&Scheme::HTTP);
        speaks_http.then(|| proxy.basic_auth().cloned()).flatten()
    }
}

/// TCP to the destination, or to the proxy named for it: forwarding for `http` through an
/// `http://` proxy, a `CONNECT` tunnel for `https` (and for `http` with HTTP/2 prior
/// knowledge, which a forwarding proxy would not speak), SOCKS5 for everything through a
/// `socks5://` or `socks5h://` one.
#[derive(Clone, Debug)]
pub(crate) struct ProxyDialer {
    tcp: HttpConnector<MarkedResolver>,
    /// Names a `socks5://` proxy is sent as addresses, looked up as the transport looks up
    /// any other (off the runtime's threads, failures known as DNS ones).
    resolver: MarkedResolver,
    proxies: Option<Arc<Proxies>>,
    tunnel_http: bool,
    /// Bounds reaching a proxy and its handshake together, as it bounds a direct connect:
    /// hyper-util's handshakes have no timeout of their own.
    connect_timeout: Option<Duration>,
}

impl ProxyDialer {
    pub(crate) fn new(settings: &TransportSettings, proxies: Option<Arc<Proxies>>) -> ProxyDialer {
        ProxyDialer {
            tcp: tcp(settings),
            resolver: MarkedResolver::new(),
            proxies,
            tunnel_http: settings.http2_prior_knowledge,
            connect_timeout: settings
                .connect_timeout
                .map(resil_http::driver::library_timeout),
        }
    }
}

/// How a tunnel through a proxy is asked for.
#[derive(Clone, Copy, Debug)]
enum Tunnelling {
    /// `CONNECT host:port`.
    Connect,
    /// SOCKS5 `CONNECT`, to an address looked up here (`socks5://`) or to the name
    /// (`socks5h://`).
    Socks { resolve_here: bool },
}

impl Service<Uri> for ProxyDialer {
    type Response = ProxiedIo;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ProxiedIo, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let Some(proxy) = self.proxies.as_ref().and_then(|p| p.0.intercept(&dst)) else {
            let connecting = self.tcp.call(dst);
            return Box::pin(async move { Ok(ProxiedIo::new(connecting.await?, false)) });
        };
        // No tunnel: the request is forwarded to the proxy whole, in absolute form.
        let tunnelling = match proxy.uri().scheme_str() {
            Some("http") if dst.scheme() == Some(&Scheme::HTTP) && !self.tunnel_http => None,
            Some("http") => Some(Tunnelling::Connect),
            Some("socks5") => Some(Tunnelling::Socks { resolve_here: true }),
            Some("socks5h") => Some(Tunnelling::Socks {
                resolve_here: false,
            }),
            // Only the environment names these (`proxy(url)` refuses them at build).
            _ => {
                let error = ProxyError::new(&proxy, ProxyProblem::NotSpoken, None);
                return Box::pin(std::future::ready(Err(error.into())));
            }
        };
        let dialing = match dial_uri(&proxy) {
            Ok(uri) => self.tcp.call(uri),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (resolver, connect_timeout) = (self.resolver.clone(), self.connect_timeout);
        Box::pin(async move {
            // Counted from the first poll: the transport may have held the dial back until a
            // connection to the host came free.
            let deadline = connect_timeout.map(|t| (t, tokio::time::Instant::now() + t));
            // A proxy that cannot be reached fails here, as a server would: connect, connect
            // timeout or DNS.
            let io = dialing.await?;
            let Some(tunnelling) = tunnelling else {
                return Ok(ProxiedIo::new(io, true));
            };
            let handshake = open_tunnel(tunnelling, io, &proxy, &dst, resolver);
            let io = match deadline {
                None => handshake.await?,
                Some((timeout, at)) => match tokio::time::timeout_at(at, handshake).await {
                    Ok(io) => io?,
                    Err(_) => {
                        let problem = ProxyProblem::TimedOut(timeout);
                        return Err(ProxyError::new(&proxy, problem, None).into());
                    }
                },
            };
            Ok(ProxiedIo::new(io, false))
        })
    }
}

/// Opens a tunnel to `dst` through the proxy on `io`, with hyper-util's handshake.
async fn open_tunnel(
    tunnelling: Tunnelling,
    io: TokioIo<TcpStream>,
    proxy: &Intercept,
    dst: &Uri,
    mut resolver: MarkedResolver,
) -> Result<TokioIo<TcpStream>, BoxError> {
    let target = with_port(dst)?;
    match tunnelling {
        Tunnelling::Connect => {
            let answer = Arc::new(OnceLock::new());
            let paced = Paced::new(io, Pace::Lines, Some(answer.clone()));
            let mut tunnel = Tunnel::new(proxy.uri().clone(), Dialed(Some(paced)));
            if let Some(credentials) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(credentials.clone());
            }
            let opened = match std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await {
                Ok(()) => tunnel.call(target).await,
                Err(e) => Err(e),
            };
            opened
                .map(Paced::into_inner)
                .map_err(|e| tunnel_error(proxy, e, answer.get()).into())
        }
        Tunnelling::Socks { resolve_here } => {
            let target = if resolve_here {
                resolved(&mut resolver, target).await?
            } else {
                target
            };
            let paced = Paced::new(io, Pace::Bytes, None);
            let mut socks = SocksV5::new(proxy.uri().clone(), Dialed(Some(paced)));
            if let Some((user, password)) = proxy.raw_auth() {
                socks = socks.with_auth(user.to_owned(), password.to_owned());
            }
            let opened = match std::future::poll_fn(|cx| socks.poll_ready(cx)).await {
                Ok(()) => socks.call(target).await,
                Err(e) => Err(e),
            };
            opened
                .map(Paced::into_inner)
                .map_err(|e| socks_error(proxy, e).into())
        }
    }
}

/// Where the proxy itself is: `http://host:port/` (the TCP connector speaks no other scheme),
/// its port the scheme's default when the environment named none (80, or SOCKS's 1080 as
/// curl and ureq use).
fn dial_uri(proxy: &Intercept) -> Result<Uri, BoxError> {
    let uri = proxy.uri();
    let default_port = if uri.scheme() == Some(&Scheme::HTTP) {
        80
    } else {
        1080
    };
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(default_port);
    Ok(format!("http://{host}:{port}/").parse()?)
}

/// `dst` with its port spelled out: hyper-util's handshakes take a missing one for 443.
fn with_port(dst: &Uri) -> Result<Uri, BoxError> {
    let scheme = dst.scheme_str().unwrap_or("http");
    let port = dst
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let host = dst.host().ok_or("the URL has no host")?;
    Ok(format!("{scheme}://{host}:{port}/").parse()?)
}

/// `target` (which names its port) with its host looked up, if a name, and replaced by the
/// first address found: what a `socks5://` proxy is asked for.
async fn resolved(resolver: &mut MarkedResolver, target: Uri) -> Result<Uri, BoxError> {
    let host = target.host().unwrap_or_default();
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(target);
    }
    let name: Name = host.parse()?;
    std::future::poll_fn(|cx| resolver.poll_ready(cx)).await?;
    let mut addrs = resolver.call(name).await?;
    let Some(addr) = addrs.next() else {
        let none = io::Error::new(io::ErrorKind::NotFound, "no address found");
        return Err(DnsFailure::new(none).into());
    };
    let scheme = target.scheme_str().unwrap_or("http");
    let port = target.port_u16().unwrap_or_default();
    let ip = std::net::SocketAddr::new(addr.ip(), port);
    Ok(format!("{scheme}://{ip}/").parse()?)
}

/// A connection the dialer opened itself, handed to hyper-util's handshakes as the
/// connector they call once: a proxy that cannot be reached has failed before, with the
/// dial's own error (SOCKS's error type would hide it, having no `source`).
struct Dialed(Option<Paced>);

impl Service<Uri> for Dialed {
    type Response = Paced;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Paced, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _proxy: Uri) -> Self::Future {
        let io = self
            .0
            .take()
            .ok_or_else(|| "a dialed connection is used once".into());
        std::future::ready(io)
    }
}

/// hyper-util's handshake errors, named through the services (hyper-util does not export
/// the types).
type TunnelError = <Tunnel<Dialed> as Service<Uri>>::Error;
type SocksError = <SocksV5<Dialed> as Service<Uri>>::Error;

/// How far one read of a proxy's handshake may go.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// To the end of a line: the answer to `CONNECT` ends with an empty one.
    Lines,
    /// One byte: SOCKS messages have no end mark.
    Bytes,
}

/// A connection while a proxy handshake reads from it. The handshakes read into buffers of
/// their own and drop what follows their last message, which is what the destination says
/// first (an HTTP/2 server sends its settings unasked): each read here stops where a message
/// may end, so nothing of the destination's is read. Reading a line costs a peek and a read.
struct Paced {
    io: TokioIo<TcpStream>,
    pace: Pace,
    /// The first line of the answer so far, and where it goes once complete (for errors).
    line: Vec<u8>,
    answer: Option<Arc<OnceLock<String>>>,
}

/// The longest first line of a tunnel's answer kept for an error message.
const MAX_ANSWER_LINE: usize = 120;

impl Paced {
    fn new(io: TokioIo<TcpStream>, pace: Pace, answer: Option<Arc<OnceLock<String>>>) -> Paced {
        Paced {
            io,
            pace,
            line: Vec::new(),
            answer,
        }
    }

    fn into_inner(self) -> TokioIo<TcpStream> {
        self.io
    }

    /// Keeps what was read of the first line, and hands the line over once it is whole.
    fn note(&mut self, read: &[u8]) {
        let Some(answer) = &self.answer else { return };
        if answer.get().is_some() {
            return;
        }
        let end = read.iter().position(|&b| b == b'\n');
        let line = &read[..end.unwrap_or(read.len())];
        let room = MAX_ANSWER_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&line[..line.len().min(room)]);
        if end.is_some() {
            let text = String::from_utf8_lossy(&self.line);
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            let _ = answer.set(text.trim().to_owned());
        }
    }
}

impl hyper::rt::Read for Paced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut scratch = [0; 512];
        let room = buf.remaining().min(scratch.len());
        let take = match self.pace {
            _ if room == 0 => return Poll::Ready(Ok(())),
            Pace::Bytes => 1,
            Pace::Lines => {
                let mut peeked = tokio::io::ReadBuf::new(&mut scratch[..room]);
                ready!(self.io.inner().poll_peek(cx, &mut peeked))?;
                let peeked = peeked.filled();
                match peeked.iter().position(|&b| b == b'\n') {
                    Some(end) => end + 1,
                    // Nothing peeked: the end of the stream, which the read below reports.
                    None => peeked.len().max(1),
                }
            }
        };
        let mut read = tokio::io::ReadBuf::new(&mut scratch[..take]);
        ready!(tokio::io::AsyncRead::poll_read(
            Pin::new(self.io.inner_mut()),
            cx,
            &mut read
        ))?;
        let read = read.filled();
        buf.put_slice(read);
        self.note(read);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Paced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection from [`ProxyDialer`], and whether it is to a forwarding proxy (hyper-util
/// then writes requests in absolute form). Reads and writes go straight through.
#[derive(Debug)]
pub(crate) struct ProxiedIo {
    io: TokioIo<TcpStream>,
    forwarding: bool,
}

impl ProxiedIo {
    fn new(io: TokioIo<TcpStream>, forwarding: bool) -> ProxiedIo {
        ProxiedIo { io, forwarding }
    }
}

impl Connection for ProxiedIo {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarding)
    }
}

delegate_io!(ProxiedIo);

/// A proxy that could not be used: the destination was never reached.
#[derive(Debug)]
pub(crate) struct ProxyError {
    /// `scheme://host:port` (the proxy's credentials are never shown).
    proxy: String,
    problem: ProxyProblem,
    /// hyper-util's handshake error, if it failed.
    source: Option<BoxError>,
}

#[derive(Debug)]
enum ProxyProblem {
    /// An `https://` or SOCKS4 proxy, which this transport does not speak.
    NotSpoken,
    /// The proxy wants credentials it was not given, or refused those it was (407, or a
    /// SOCKS5 server refusing the username/password or every method offered).
    AuthRequired,
    /// The tunnel was refused otherwise (another status, a SOCKS refusal, an answer that is
    /// none); the first line of an HTTP answer, if any.
    Refused(Option<String>),
    /// The proxy closed the connection before the tunnel was open.
    Closed,
    /// The proxy did not open the tunnel within the connect timeout.
    TimedOut(Duration),
}

impl ProxyError {
    fn new(proxy: &Intercept, problem: ProxyProblem, source: Option<BoxError>) -> ProxyError {
        let uri = proxy.uri();
        let proxy = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        ProxyError {
            proxy,
            problem,
            source,
        }
    }

    /// How the retry policy should see it ([`resil_http::Proxy`]'s rule): nothing reached
    /// the destination, so a proxy that is down, hangs up or refuses the tunnel is a connect
    /// failure, retried for any method; one that wants credentials, or that this transport
    /// cannot speak to, will not do better on a retry.
    pub(crate) fn kind(&self) -> TransportErrorKind {
        match self.problem {
            ProxyProblem::Refused(_) | ProxyProblem::Closed => TransportErrorKind::Connect,
            ProxyProblem::TimedOut(_) => TransportErrorKind::ConnectTimeout,
            ProxyProblem::AuthRequired | ProxyProblem::NotSpoken => TransportErrorKind::Other,
        }
    }
}

fn tunnel_error(proxy: &Intercept, error: TunnelError, answer: Option<&String>) -> ProxyError {
    let problem = match &error {
        TunnelError::ProxyAuthRequired => ProxyProblem::AuthRequired,
        TunnelError::TunnelUnexpectedEof | TunnelError::Io(_) => ProxyProblem::Closed,
        _ => ProxyProblem::Refused(answer.cloned()),
    };
    ProxyError::new(proxy, problem, Some(error.into()))
}

fn socks_error(proxy: &Intercept, error: SocksError) -> ProxyError {
    let problem = match &error {
        // hyper-util's SOCKS5 error is not exported: its `Debug` names the variant
        // (`Auth(Failed)`, `Auth(Unsupported)`, `Auth(MethodMismatch)`, `Command(..)`). A
        // change there reads as a refusal, which is retried.
        SocksError::V5(v5) if format!("{v5:?}").starts_with("Auth(") => ProxyProblem::AuthRequired,
        SocksError::Io(_) => ProxyProblem::Closed,
        _ => ProxyProblem::Refused(None),
    };
    ProxyError::new(proxy, problem, Some(error.into()))
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match &self.problem {
            ProxyProblem::NotSpoken => write!(
                f,
                "the proxy {proxy} speaks a protocol resil-tokio's transport does not (it \
                 speaks to http://, socks5:// and socks5h:// proxies; set NO_PROXY for this \
                 host, or use ReqwestTransport)"
            ),
            ProxyProblem::AuthRequired => write!(
                f,
                "the proxy {proxy} refused the tunnel: proxy authentication is required \
                 (user:password@ in the proxy's URL)"
            ),
            ProxyProblem::Refused(Some(answer)) => {
                write!(
                    f,
                    "the proxy {proxy} refused the tunnel, answering `{answer}`"
                )
            }
            ProxyProblem::Refused(None) => write!(f, "the proxy {proxy} refused the tunnel"),
            ProxyProblem::Closed => write!(
                f,
                "the proxy {proxy} closed the connection before the tunnel was open"
            ),
            ProxyProblem::TimedOut(timeout) => write!(
                f,
                "the proxy {proxy} did not open the tunnel within the connect timeout \
                 ({timeout:?})"
            ),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use hyper_util::client::proxy::matcher::Matcher;
    use resil_async::TransportSettings;
    use resil_core::TransportErrorKind;
    use tokio::io::AsyncReadExt;
    use tower_service::Service;

    use super::{Proxies, ProxyDialer, ProxyError};

    /// A dialer through the proxy at `url`, whatever its scheme.
    fn through(url: &str) -> ProxyDialer {
        let proxies = Proxies(Matcher::builder().all(url.to_owned()).build());
        ProxyDialer::new(&TransportSettings::default(), Some(proxies.into()))
    }

    /// A proxy that follows `script` on one connection: for each step, reads that many bytes
    /// (a head, if zero), then writes the answer in one piece; then closes. Its address, and
    /// the thread to join.
    fn answering(script: Vec<(usize, &'static [u8])>) -> (String, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let proxy = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            for (asked, answer) in script {
                // All the client sends: closing on unread bytes would reset the connection.
                let mut request = Vec::new();
                while (asked == 0 && !request.ends_with(b"\r\n\r\n")) || request.len() < asked {
                    let mut byte = [0];
                    socket.read_exact(&mut byte).unwrap();
                    request.push(byte[0]);
                }
                socket.write_all(answer).unwrap();
            }
        });
        (addr, proxy)
    }

    /// Dials `https://127.0.0.1:8443` through `proxy`; what the tunnel then reads, or the
    /// proxy error's kind and message.
    async fn tunnel_through(proxy: &str) -> Result<Vec<u8>, (TransportErrorKind, String)> {
        let dst = "https://127.0.0.1:8443/".parse().unwrap();
        let opened = through(proxy).call(dst).await.map_err(|e| {
            let proxy = e.downcast_ref::<ProxyError>().unwrap();
            let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
            (proxy.kind(), format!("{proxy}{cause}"))
        })?;
        let mut rest = Vec::new();
        let mut stream = opened.io.into_inner();
        stream.read_to_end(&mut rest).await.unwrap();
        Ok(rest)
    }

    #[tokio::test]
    async fn a_tunnel_keeps_what_the_destination_says_first() {
        let answer = b"HTTP/1.1 200 OK\r\nVia: 1.1 test\r\n\r\nfirst words";
        let (addr, proxy) = answering(vec![(0, answer)]);
        let read = tunnel_through(&format!("http://{addr}")).await;
        proxy.join().unwrap();
        assert_eq!(read.unwrap(), b"first words");
        // The greeting and the method; the request for 127.0.0.1:8443, the reply and the first
        // words.
        let reply = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00first words";
        let (addr, proxy) = answering(vec![(3, b"\x05\x00"), (10, reply)]);
        let read = tunnel_through(&format!("socks5h://{addr}")).await;
        proxy.join().unwrap();
        assert_eq!(read.unwrap(), b"first words");
    }

    #[tokio::test]
    async fn each_refusal_of_a_tunnel_is_classified_by_the_proxy_rule() {
        use TransportErrorKind::{Connect, Other};
        for (answer, kind, says) in [
            (
                &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
                Other,
                "refused the tunnel: proxy authentication is required",
            ),
            (
                b"HTTP/1.1 403 Forbidden\r\n\r\n",
                Connect,
                "refused the tunnel, answering `HTTP/1.1 403 Forbidden`",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", Connect, "refused the tunnel"),
            (
                b"HTTP/1.1 200 OK\r\n",
                Connect,
                "closed the connection before the tunnel was open",
            ),
        ] {
            let (addr, proxy) = answering(vec![(0, answer)]);
            let (got, message) = tunnel_through(&format!("http://{addr}")).await.unwrap_err();
            proxy.join().unwrap();
            assert_eq!(got, kind, "{message}");
            assert!(message.contains(says), "{message}");
        }
        // SOCKS5: credentials refused, no acceptable method, connection refused.
        let refused = b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00";
        for (script, kind, says) in [
            (
                vec![(3, &b"\x05\xff"[..])],
                Other,
                "proxy authentication is required",
            ),
            (vec![(3, b"\x05\x00"), (10, refused)], Connect, "refused"),
            (vec![(3, b"\x05")], Connect, "closed the connection"),
        ] {
            let (addr, proxy) = answering(script);
            let (got, message) = tunnel_through(&format!("socks5://{addr}"))
                .await
                .unwrap_err();
            proxy.join().unwrap();
            assert_eq!(got, kind, "{message}");
            assert!(message.contains(says), "{message}");
        }
        // Not spoken: refused before anything is dialed.
        let (got, message) = tunnel_through("socks4://127.0.0.1:9").await.unwrap_err();
        assert_eq!(got, Other, "{message}");
        assert!(message.contains("speaks a protocol"), "{message}");
    }

    #[tokio::test]
    async fn a_proxy_that_never_answers_is_a_connect_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (asked, told) = tokio::sync::oneshot::channel();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let proxy = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut byte = [0];
            socket.read_exact(&mut byte).unwrap();
            asked.send(()).unwrap();
            // Holds the connection open, unanswered, until the client gave up.
            let _ = finished.recv();
        });
        let dst = "https://127.0.0.1:8443/".parse().unwrap();
        let dialing = tokio::spawn(through(&format!("http://{addr}")).call(dst));
        told.await.unwrap();
        // The tunnel is asked for: from here the clock runs only when nothing else can.
        tokio::time::pause();
        let err = dialing.await.unwrap().unwrap_err();
        done.send(()).unwrap();
        proxy.join().unwrap();
        let proxy = err.downcast_ref::<ProxyError>().unwrap();
        assert_eq!(proxy.kind(), TransportErrorKind::ConnectTimeout, "{proxy}");
        assert!(
            proxy
                .to_string()
                .ends_with("within the connect timeout (5s)"),
            "{proxy}"
        );
    }
}
