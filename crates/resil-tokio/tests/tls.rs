//! HTTPS through the default transport (`rustls` feature), against a local TLS server with a
//! self-signed certificate for 127.0.0.1.
#![cfg(feature = "rustls")]
// The load guard serialises whole tests across this process; it spans every await.
#![allow(clippy::await_holding_lock)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resil_tokio::{Client, ErrorKind, HyperTransport, ResponseExt, RetryPolicy, TransportSettings};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TLS server on 127.0.0.1 answering each request with the next status of its script
/// (200 once the script is used up), counting handshakes and requests.
struct TlsServer {
    url: String,
    certificate: CertificateDer<'static>,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// A self-signed certificate for 127.0.0.1, and a TLS acceptor presenting it that offers
/// `alpn` as its only protocol.
fn acceptor(alpn: &[u8]) -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let certificate = key.cert.der().clone();
    let private = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certificate.clone()], private.into())
    .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        certificate,
    )
}

/// A client TLS configuration that trusts `certificate` alone.
fn trusting(certificate: CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

async fn tls_server(script: Vec<u16>) -> TlsServer {
    tls_server_redirecting(script, String::new()).await
}

/// [`tls_server`] whose 3xx answers point at `location`.
async fn tls_server_redirecting(script: Vec<u16>, location: String) -> TlsServer {
    // This server speaks HTTP/1.1 only; ALPN tells the client so.
    let (acceptor, certificate) = acceptor(b"http/1.1");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (shakes, seen) = (handshakes.clone(), requests.clone());
    let location = Arc::new(location);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, script, shakes, seen, location) = (
                acceptor.clone(),
                script.clone(),
                shakes.clone(),
                seen.clone(),
                location.clone(),
            );
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                shakes.fetch_add(1, Ordering::SeqCst);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        seen.fetch_add(1, Ordering::SeqCst);
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        let to = if (300..400).contains(&status) {
                            format!("location: {location}\r\n")
                        } else {
                            String::new()
                        };
                        let reply =
                            format!("HTTP/1.1 {status} X\r\n{to}content-length: 2\r\n\r\nok");
                        if tls.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    TlsServer {
        url,
        certificate,
        handshakes,
        requests,
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy::builder()
        // hyper-util hands a finished connection back to its pool asynchronously; a zero
        // backoff sometimes dialled a second one before the first was back (seen once in
        // the full suite), which is not what the reuse assertion is about.
        .backoff(resil_tokio::Backoff::Constant(Duration::from_millis(5)))
        .jitter(resil_tokio::Jitter::None)
        .attempt_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap()
}

/// A client with the [`quick`] policy whose transport trusts `server`'s certificate.
fn client_trusting(server: &TlsServer) -> Client {
    let tls = trusting(server.certificate.clone());
    let transport = HyperTransport::with_tls(&TransportSettings::default(), tls).unwrap();
    Client::builder()
        .transport(transport)
        .policy(quick())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_https_to_plain_http_is_refused_unless_allowed() {
    let _load = resil_tests::shared_load();
    let plain = resil_tests::TestServer::start();
    plain.script("/down", vec![resil_tests::Reply::body(200, "landed")]);
    let server = tls_server_redirecting(vec![302, 302], plain.url("/down")).await;
    let client = client_trusting(&server);
    let err = client
        .get(&format!("{}/x", server.url))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Redirect(resil_tokio::RedirectRefusal::Downgrade),
        "{err:#}"
    );
    assert!(
        format!("{err:#}").contains("from https to plain http"),
        "{err:#}"
    );
    assert_eq!(plain.hits("/down"), 0, "nothing went out in clear");
    let tls = trusting(server.certificate.clone());
    let transport = HyperTransport::with_tls(&TransportSettings::default(), tls).unwrap();
    let allowing = Client::builder()
        .transport(transport)
        .redirects(resil_tokio::RedirectPolicy::default().allow_https_to_http(true))
        .build()
        .unwrap();
    let body = allowing
        .get(&format!("{}/x", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_retries_over_one_tls_connection() {
    let _load = resil_tests::shared_load();
    let server = tls_server(vec![503, 503]).await;
    let client = client_trusting(&server);
    let response = client
        .get(&format!("{}/x", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        server.handshakes.load(Ordering::SeqCst),
        1,
        "the retries reused the TLS connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http2_when_the_server_offers_it() {
    let _load = resil_tests::shared_load();
    // hyper's HTTP/2 server behind TLS that offers only `h2`: the transport must take the
    // protocol ALPN chose from the connection it was handed.
    let (acceptor, certificate) = acceptor(b"h2");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/x", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"ok"));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
            });
        }
    });
    let transport =
        HyperTransport::with_tls(&TransportSettings::default(), trusting(certificate)).unwrap();
    let client = Client::builder()
        .transport(transport)
        .policy(quick())
        .build()
        .unwrap();
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error() {
    let _load = resil_tests::shared_load();
    let server = tls_server(Vec::new()).await;
    // The default transport trusts Mozilla's roots, not this self-signed certificate.
    let client = Client::builder().policy(quick()).build().unwrap();
    let err = client
        .get(&format!("{}/x", server.url))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Transport(resil_core::TransportErrorKind::TlsHandshake),
        "{err}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_client_config_with_alpn_is_refused_with_an_error() {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let err = HyperTransport::with_tls(&TransportSettings::default(), tls).unwrap_err();
    assert!(err.to_string().contains("ALPN"), "{err}");
}

#[test]
fn https_goes_through_a_connect_tunnel_to_the_proxy_the_environment_names() {
    const TEST: &str = "https_goes_through_a_connect_tunnel_to_the_proxy_the_environment_names";
    if resil_tests::is_child(TEST) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        return runtime.block_on(async {
            let server = tls_server(vec![503]).await;
            let client = client_trusting(&server);
            let response = client.get(&format!("{}/x", server.url)).send().await;
            assert_eq!(response.unwrap().text().await.unwrap(), "ok");
            // The retry went through the same tunnel, inside the same TLS session.
            assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);
            assert_eq!(server.requests.load(Ordering::SeqCst), 2);
        });
    }
    let proxy = resil_tests::FakeProxy::start();
    let url = proxy.url(Some(resil_tests::PROXY_CREDENTIALS.0));
    resil_tests::run_child(TEST, &[("HTTPS_PROXY", &url)]);
    resil_tests::assert_went_through(&proxy, "CONNECT 127.0.0.1:");
}
