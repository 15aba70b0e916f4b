//! An HTTP/2 server without TLS (h2c, "prior knowledge"), for the drivers' HTTP/2 tests:
//! hyper's server on a tokio runtime of its own thread, answering each request with the
//! next status of its script (200 once the script is used up).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;

/// A request header asking the server to answer with an `x-padding` header of that many
/// bytes (for tests of the client's bound on response heads).
pub const PAD_RESPONSE: &str = "x-pad-response";

/// The server; it runs until the test process ends.
#[derive(Debug)]
pub struct H2cServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl H2cServer {
    /// Starts a server on 127.0.0.1 that answers with `script`'s statuses in order.
    pub fn start(script: Vec<u16>) -> H2cServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("h2c test server: bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("h2c test server: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("h2c test server: {e}"));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, accepted) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("h2c test server: runtime: {e}"));
            runtime.block_on(serve(listener, script, seen, accepted));
        });
        H2cServer {
            addr,
            requests,
            connections,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    listener: std::net::TcpListener,
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((tcp, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::SeqCst);
        let (script, seen) = (script.clone(), seen.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                seen.fetch_add(1, Ordering::SeqCst);
                let padding = request
                    .headers()
                    .get(PAD_RESPONSE)
                    .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
                let status = script
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front()
                    .unwrap_or(200);
                let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                *response.status_mut() =
                    http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                if let Some(bytes) = padding {
                    let value = http::HeaderValue::from_str(&"a".repeat(bytes))
                        .unwrap_or_else(|e| panic!("h2c test server: {e}"));
                    response.headers_mut().insert("x-padding", value);
                }
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}
