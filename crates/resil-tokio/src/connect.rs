//! How the default transport opens connections, below any proxy: TCP with a resolver whose
//! failures are known by their type, a cap on connections per host, and the macro that lets a
//! connection wrapper delegate its IO.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiAddrs, GaiResolver, Name};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use resil_async::{BoxError, BoxFuture, TransportSettings};
use resil_core::Http1Framing;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// TCP as the transport dials it, to a server or to a proxy.
pub(crate) fn tcp(settings: &TransportSettings) -> HttpConnector<MarkedResolver> {
    let mut connector = HttpConnector::new_with_resolver(MarkedResolver::new());
    connector.set_nodelay(true);
    connector.set_connect_timeout(
        settings
            .connect_timeout
            .map(resil_http::driver::library_timeout),
    );
    // With TLS, `https` URLs pass through this connector to the TLS layer around it; without,
    // they fail here instead of going out in plain text.
    connector.enforce_http(!cfg!(feature = "rustls"));
    connector
}

/// hyper-util's resolver (`getaddrinfo` on a blocking thread) with its failures marked, so
/// [`classify`](crate::classify) knows a failed lookup by its type (hyper-util's connect error type is
/// private).
#[derive(Clone, Debug)]
pub(crate) struct MarkedResolver(GaiResolver);

impl MarkedResolver {
    pub(crate) fn new() -> MarkedResolver {
        MarkedResolver(GaiResolver::new())
    }
}

/// A name that did not resolve.
#[derive(Debug)]
pub(crate) struct DnsFailure(std::io::Error);

impl DnsFailure {
    pub(crate) fn new(error: std::io::Error) -> DnsFailure {
        DnsFailure(error)
    }
}

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "name lookup failed: {}", self.0)
    }
}

impl StdError for DnsFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

impl tower_service::Service<Name> for MarkedResolver {
    type Response = GaiAddrs;
    type Error = DnsFailure;
    type Future = BoxFuture<'static, Result<GaiAddrs, DnsFailure>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DnsFailure>> {
        self.0.poll_ready(cx).map_err(DnsFailure)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.0.call(name);
        Box::pin(async move { lookup.await.map_err(DnsFailure) })
    }
}

/// A connector that holds one of its host's permits for as long as each connection lives,
/// so no host ever has more than its cap open (hyper-util has no such cap, and hands a
/// finished connection back to its pool asynchronously, so limiting requests in flight does
/// not bound connections). A request that finds no idle connection and no permit waits:
/// hyper-util races its pool against the connect, so the first connection to come free
/// serves it; the connect it started finishes in the background once a connection closes.
#[derive(Clone, Debug)]
pub(crate) struct Capped<D> {
    pub(crate) dialer: D,
    pub(crate) per_host: Option<Arc<HostLimits>>,
}

/// Hosts remembered before those without a connection are forgotten.
const PRUNE_AT: usize = 64;

/// One semaphore per scheme and authority, made on first use.
#[derive(Debug)]
pub(crate) struct HostLimits {
    connections: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HostLimits {
    pub(crate) fn new(connections: usize) -> HostLimits {
        HostLimits {
            connections,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn for_host(&self, uri: &http::Uri) -> Arc<Semaphore> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.len() >= PRUNE_AT && !hosts.contains_key(&key) {
            // A client that talks to many hosts keeps entries only for hosts with a live
            // connection (each holds a permit, and so a reference to its semaphore).
            hosts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        hosts
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.connections)))
            .clone()
    }
}

impl<D> tower_service::Service<http::Uri> for Capped<D>
where
    D: tower_service::Service<http::Uri>,
    D::Response: Connection,
    D::Future: Send + 'static,
    D::Error: Into<BoxError>,
{
    type Response = CappedIo<D::Response>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<CappedIo<D::Response>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.dialer.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let limit = self.per_host.as_ref().map(|limits| limits.for_host(&uri));
        // Lazy until awaited: nothing is dialed before the permit is held.
        let dialing = self.dialer.call(uri);
        Box::pin(async move {
            let permit = match limit {
                // The semaphore is never closed, so this only fails if it were.
                Some(semaphore) => Some(semaphore.acquire_owned().await?),
                None => None,
            };
            let io = dialing.await.map_err(Into::into)?;
            // HTTP/2 frames its own bodies; hyper's HTTP/1 parser is checked.
            let framing = (!io.connected().is_negotiated_h2()).then(Framing::default);
            Ok(CappedIo {
                io,
                framing,
                _permit: permit,
            })
        })
    }
}

/// A connection, the check of its responses' framing, and the permit it holds until it is
/// dropped.
#[derive(Debug)]
pub(crate) struct CappedIo<T> {
    io: T,
    /// `None` over HTTP/2.
    framing: Option<Framing>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// hyper (1.x) takes a chunk size of more than 16 hex digits if its value fits, which
/// RFC 9112 and curl refuse (a size padded past a stricter parser in front of the same
/// server). resil-core's [`Http1Framing`] is fed what hyper reads (after TLS) and fails the
/// read that brings a bad size line. hyper's read cursor does not say what a read put in
/// it, so each read goes through a buffer of the connection's own and is copied once.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    check: Http1Framing,
    buf: Vec<u8>,
}

/// The most one read brings through [`Framing`]'s buffer.
const FRAMING_READ: usize = 64 * 1024;

impl Framing {
    /// Reads from `io` into `cursor` through the buffer, checking what came.
    fn poll_read<T: hyper::rt::Read + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        mut cursor: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let want = cursor.remaining().min(FRAMING_READ);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let mut read = hyper::rt::ReadBuf::new(&mut self.buf[..want]);
        std::task::ready!(Pin::new(io).poll_read(cx, read.unfilled()))?;
        let came = read.filled();
        self.check
            .received(came)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        cursor.put_slice(came);
        Poll::Ready(Ok(()))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for CappedIo<T> {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match this.framing.as_mut().filter(|f| !f.check.is_unchecked()) {
            Some(framing) => framing.poll_read(&mut this.io, cx, buf),
            None => Pin::new(&mut this.io).poll_read(cx, buf),
        }
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for CappedIo<T> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        if let Some(framing) = this.framing.as_mut() {
            framing.check.sent(&buf[..written.min(buf.len())]);
        }
        Poll::Ready(Ok(written))
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        if let Some(framing) = this.framing.as_mut() {
            let mut left = written;
            for slice in bufs {
                let n = left.min(slice.len());
                framing.check.sent(&slice[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
        }
        Poll::Ready(Ok(written))
    }
}

impl<T: Connection> Connection for CappedIo<T> {
    fn connected(&self) -> Connected {
        // Without the connector's extra (hyper-util's `HttpInfo`): hyper-util copies it into
        // every response's extensions, a map allocated and hashed per request (~700
        // instructions and three allocations), for addresses resil never reports. The fresh
        // value's poison pill is the one the pool watches; the dialers (hyper-util's and
        // hyper-rustls's) never poison the one they made, so dropping it loses nothing.
        let inner = self.io.connected();
        let connected = Connected::new().proxy(inner.is_proxied());
        if inner.is_negotiated_h2() {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

/// hyper's `Read` and `Write` for a connection wrapper, by its `io` field: the wrapper only
/// changes what the connection says of itself.
macro_rules! delegate_io {
    ($wrapper:ident $(<$param:ident>)?) => {
        impl$(<$param: hyper::rt::Read + Unpin>)? hyper::rt::Read for $wrapper$(<$param>)? {
            #[inline]
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: hyper::rt::ReadBufCursor<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.io).poll_read(cx, buf)
            }
        }

        impl$(<$param: hyper::rt::Write + Unpin>)? hyper::rt::Write for $wrapper$(<$param>)? {
            #[inline]
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.io).poll_write(cx, buf)
            }

            #[inline]
            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.io).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.io).poll_shutdown(cx)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            #[inline]
            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }
        }
    };
}
pub(crate) use delegate_io;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{HostLimits, PRUNE_AT};

    #[test]
    fn hosts_without_a_connection_are_forgotten_once_many_are_known() {
        let limits = HostLimits::new(2);
        let uri = |i: usize| format!("http://127.0.0.1:{}/", 1000 + i).parse().unwrap();
        // A live connection to the first host holds its semaphore.
        let held = limits.for_host(&uri(0));
        for i in 1..PRUNE_AT {
            limits.for_host(&uri(i));
        }
        assert_eq!(limits.hosts.lock().unwrap().len(), PRUNE_AT);
        let again = limits.for_host(&uri(0));
        assert!(
            std::sync::Arc::ptr_eq(&held, &again),
            "a known host is not pruned"
        );
        limits.for_host(&uri(PRUNE_AT));
        assert_eq!(
            limits.hosts.lock().unwrap().len(),
            2,
            "the held host and the new one"
        );
        assert!(std::sync::Arc::ptr_eq(&held, &limits.for_host(&uri(0))));
    }
}
