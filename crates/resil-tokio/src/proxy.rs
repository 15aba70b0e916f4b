//! Proxies for the default transport, as the environment or the client's `proxy(url)` names
//! them: an `http` request is forwarded to the proxy in absolute form, anything else goes
//! through a `CONNECT` tunnel.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::Scheme;
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use resil_async::{BoxError, BoxFuture};
use resil_core::TransportErrorKind;
use resil_http::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connect::{MarkedResolver, delegate_io};

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

/// Longest answer to a `CONNECT` read before the proxy is given up on.
const MAX_TUNNEL_ANSWER: usize = 8 * 1024;

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

/// TCP to the destination, or to the proxy named for it: forwarding for
/// `http`, a `CONNECT` tunnel for `https` (and for `http` with HTTP/2 prior knowledge, which
/// a forwarding proxy would not speak).
#[derive(Clone, Debug)]
pub(crate) struct ProxyDialer {
    pub(crate) tcp: HttpConnector<MarkedResolver>,
    pub(crate) proxies: Option<Arc<Proxies>>,
    pub(crate) tunnel_http: bool,
}

impl tower_service::Service<Uri> for ProxyDialer {
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
        if proxy.uri().scheme() != Some(&Scheme::HTTP) {
            let error = ProxyError::new(&proxy, ProxyProblem::NotHttp);
            return Box::pin(std::future::ready(Err(error.into())));
        }
        let forward = dst.scheme() == Some(&Scheme::HTTP) && !self.tunnel_http;
        let connecting = self.tcp.call(proxy.uri().clone());
        Box::pin(async move {
            let mut io = connecting.await?;
            if !forward {
                open_tunnel(io.inner_mut(), &dst, &proxy).await?;
            }
            Ok(ProxiedIo::new(io, forward))
        })
    }
}

/// Asks the proxy on `stream` for a tunnel to `dst`. Reads the answer's head and nothing
/// past it (the destination may speak first), so the stream is the tunnel's as it stands.
async fn open_tunnel(stream: &mut TcpStream, dst: &Uri, proxy: &Intercept) -> Result<(), BoxError> {
    let host = dst.host().unwrap_or_default();
    let default_port = if dst.scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    let port = dst.port_u16().unwrap_or(default_port);
    let mut request =
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n").into_bytes();
    if let Some(credentials) = proxy.basic_auth() {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(credentials.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await?;

    // Peeked, then consumed up to the end of the head only: what is consumed without an end
    // in it is all head, and the next peek waits for more.
    let mut head = Vec::with_capacity(256);
    let mut peeked = [0; 1024];
    loop {
        let n = stream.peek(&mut peeked).await?;
        if n == 0 {
            return Err(ProxyError::new(proxy, ProxyProblem::Closed).into());
        }
        let before = head.len();
        head.extend_from_slice(&peeked[..n]);
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| at + 4);
        let take = end.map_or(n, |end| end - before);
        head.truncate(before + take);
        stream.read_exact(&mut peeked[..take]).await?;
        if end.is_some() {
            return match status_of(&head) {
                Some(200..=299) => Ok(()),
                Some(status) => Err(ProxyError::new(proxy, ProxyProblem::Refused(status)).into()),
                None => Err(ProxyError::new(proxy, ProxyProblem::Garbled).into()),
            };
        }
        if head.len() >= MAX_TUNNEL_ANSWER {
            return Err(ProxyError::new(proxy, ProxyProblem::Garbled).into());
        }
    }
}

/// The status of an HTTP/1 response head (`HTTP/1.1 200 Connection established`).
fn status_of(head: &[u8]) -> Option<u16> {
    let code = head.get(9..12)?;
    let after = head.get(12).copied();
    let well_formed = head.starts_with(b"HTTP/1.")
        && head.get(8) == Some(&b' ')
        && code.iter().all(u8::is_ascii_digit)
        && matches!(after, Some(b' ' | b'\r'));
    well_formed.then(|| code.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
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
}

#[derive(Debug)]
enum ProxyProblem {
    /// An `https://` or SOCKS proxy: only plain `http://` ones are spoken here.
    NotHttp,
    /// The tunnel was refused with this status.
    Refused(u16),
    /// The answer to `CONNECT` was no HTTP/1 response head.
    Garbled,
    /// The proxy closed the connection before answering.
    Closed,
}

impl ProxyError {
    fn new(proxy: &Intercept, problem: ProxyProblem) -> ProxyError {
        let uri = proxy.uri();
        let proxy = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        ProxyError { proxy, problem }
    }

    /// How the retry policy should see it: a proxy that is down or cannot reach the server
    /// (5xx, a closed connection) may recover and nothing was sent; one that refuses the
    /// client, or that resil cannot speak to, will not.
    pub(crate) fn kind(&self) -> TransportErrorKind {
        match self.problem {
            ProxyProblem::Refused(500..) | ProxyProblem::Closed => TransportErrorKind::Connect,
            ProxyProblem::Refused(_) | ProxyProblem::NotHttp | ProxyProblem::Garbled => {
                TransportErrorKind::Other
            }
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match self.problem {
            ProxyProblem::NotHttp => write!(
                f,
                "the proxy {proxy} is not an http:// proxy, the only kind resil-tokio's \
                 transport speaks (set NO_PROXY for this host, or use ReqwestTransport)"
            ),
            ProxyProblem::Refused(407) => write!(
                f,
                "the proxy {proxy} refused the tunnel with 407: it wants credentials \
                 (http://user:password@host:port in the proxy variable)"
            ),
            ProxyProblem::Refused(status) => {
                write!(
                    f,
                    "the proxy {proxy} refused the tunnel with status {status}"
                )
            }
            ProxyProblem::Garbled => write!(
                f,
                "the proxy {proxy} answered the tunnel request with no HTTP/1 response head"
            ),
            ProxyProblem::Closed => write!(
                f,
                "the proxy {proxy} closed the connection before answering the tunnel request"
            ),
        }
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use hyper_util::client::proxy::matcher::Matcher;
    use tokio::io::AsyncReadExt;

    use super::{open_tunnel, status_of};

    /// A proxy that answers a `CONNECT` by writing `answer` a piece at a time, then what the
    /// destination said first; what the client reads from the tunnel once it is open.
    async fn tunnel_answered_in(pieces: &'static [&'static [u8]]) -> Result<Vec<u8>, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.set_nodelay(true).unwrap();
            // The whole request first: closing on unread bytes would reset the connection.
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                std::io::Read::read_exact(&mut socket, &mut byte).unwrap();
                request.push(byte[0]);
            }
            assert!(request.starts_with(b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\n"));
            for piece in pieces {
                socket.write_all(piece).unwrap();
            }
            socket.write_all(b"first words").unwrap();
        });
        let dst: http::Uri = "https://127.0.0.1:8443/".parse().unwrap();
        let matcher = Matcher::builder().all(format!("http://{addr}")).build();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let opened = open_tunnel(&mut stream, &dst, &matcher.intercept(&dst).unwrap()).await;
        proxy.join().unwrap();
        opened.map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        Ok(rest)
    }

    #[tokio::test]
    async fn a_tunnel_loses_nothing_the_destination_says_right_after_the_answer() {
        let whole: &[&[u8]] = &[b"HTTP/1.1 200 Connection established\r\n\r\n"];
        assert_eq!(tunnel_answered_in(whole).await.unwrap(), b"first words");
        // The end of the head split across reads, a byte at a time where it can be.
        let pieces: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\nVia: 1.1 test\r", b"\n", b"\r", b"\n"];
        assert_eq!(tunnel_answered_in(pieces).await.unwrap(), b"first words");
        let refused: &[&[u8]] = &[b"HTTP/1.1 403 Forbidden\r\n\r\n"];
        let err = tunnel_answered_in(refused).await.unwrap_err();
        assert!(err.ends_with("refused the tunnel with status 403"), "{err}");
        let closed: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\n"];
        let err = tunnel_answered_in(closed).await.unwrap_err();
        assert!(err.ends_with("closed the connection before answering the tunnel request"));
    }

    #[test]
    fn a_tunnel_answer_is_read_for_its_status_only_when_well_formed() {
        assert_eq!(
            status_of(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(status_of(b"HTTP/1.0 407\r\n\r\n"), Some(407));
        for garbled in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1",
            b"",
        ] {
            assert_eq!(
                status_of(garbled),
                None,
                "{:?}",
                String::from_utf8_lossy(garbled)
            );
        }
    }
}
