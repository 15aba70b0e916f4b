//! The default transport's proxies: from the environment, as curl, ureq and reqwest read them
//! (each such test runs its client in a child process given the proxy variables, against a
//! fake proxy on 127.0.0.1 in the parent that records what it was asked), or set on the
//! client; and the proxy rule, against proxies that refuse or cannot be reached.

use std::time::Duration;

use resil_tests::{
    FakeProxy, H2cServer, PROXY_CREDENTIALS, ProxyAuthAnswer, Reply, TestServer,
    assert_went_through, is_child, proxy_rule_policy, run_child,
};
use resil_tokio::{Backoff, Client, ErrorKind, ResponseExt, RetryPolicy, TransportErrorKind};

/// Runs `future` on a runtime of its own (a child's whole job).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Retries without waiting, so nothing sleeps on the real clock.
fn no_waiting() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap()
}

#[test]
fn plain_http_is_forwarded_to_the_proxy_the_environment_names_but_not_for_no_proxy_hosts() {
    const TEST: &str =
        "plain_http_is_forwarded_to_the_proxy_the_environment_names_but_not_for_no_proxy_hosts";
    if is_child(TEST) {
        return block_on(async {
            let proxied = TestServer::start();
            proxied.script("/via", vec![Reply::body(200, "relayed")]);
            // 127.0.0.2 is in NO_PROXY.
            let direct = TestServer::start_on("127.0.0.2");
            direct.script("/direct", vec![Reply::body(200, "direct")]);
            let client = Client::builder().build().unwrap();
            for _ in 0..2 {
                let via = client.get(&proxied.url("/via")).send().await.unwrap();
                assert_eq!(via.text().await.unwrap(), "relayed");
                let to = client.get(&direct.url("/direct")).send().await.unwrap();
                assert_eq!(to.text().await.unwrap(), "direct");
            }
            assert_eq!(proxied.hits("/via"), 2);
            assert_eq!(
                proxied.requests()[0].values("host"),
                [proxied.addr().to_string()]
            );
            // The proxy's credentials go to the proxy only.
            let sent = direct.requests();
            assert!(
                sent.iter()
                    .all(|r| r.values("proxy-authorization").is_empty())
            );
        });
    }
    let proxy = FakeProxy::start();
    let url = proxy.url(Some(PROXY_CREDENTIALS.0));
    run_child(TEST, &[("http_proxy", &url), ("no_proxy", "127.0.0.2")]);
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    for request in seen {
        assert!(
            request.line.starts_with("GET http://127.0.0.1:") && request.line.contains("/via "),
            "{request:?}"
        );
        assert_eq!(request.authorization.as_deref(), Some(PROXY_CREDENTIALS.1));
    }
}

#[test]
fn http2_with_prior_knowledge_goes_through_a_connect_tunnel() {
    const TEST: &str = "http2_with_prior_knowledge_goes_through_a_connect_tunnel";
    if is_child(TEST) {
        return block_on(async {
            let server = H2cServer::start(vec![200]);
            let client = Client::builder().http2_prior_knowledge().build().unwrap();
            for _ in 0..3 {
                let response = client.get(&server.url("/h2")).send().await.unwrap();
                assert_eq!(response.status(), 200);
                assert_eq!(response.version(), http::Version::HTTP_2);
            }
            assert_eq!((server.requests(), server.connections()), (3, 1));
        });
    }
    let proxy = FakeProxy::start();
    let url = proxy.url(Some(PROXY_CREDENTIALS.0));
    run_child(TEST, &[("ALL_PROXY", &url)]);
    // One tunnel for the one pooled connection.
    assert_went_through(&proxy, "CONNECT 127.0.0.1:");
}

#[test]
fn a_socks_proxy_the_environment_names_carries_the_call() {
    resil_tests::check_env_socks_proxy(
        "a_socks_proxy_the_environment_names_carries_the_call",
        |page| {
            let client = Client::builder().build().unwrap();
            let text = block_on(async { client.get(page).send().await?.text().await });
            assert_eq!(text.unwrap(), "relayed");
        },
    );
}

#[test]
fn a_proxy_it_does_not_speak_is_refused_rather_than_bypassed_unless_the_client_wants_no_proxy() {
    const TEST: &str = "a_proxy_it_does_not_speak_is_refused_rather_than_bypassed_unless_the_client_wants_no_proxy";
    if is_child(TEST) {
        let server = TestServer::start();
        server.script("/x", vec![Reply::status(200)]);
        let client = Client::builder().policy(no_waiting()).build().unwrap();
        let err = block_on(client.get(&server.url("/x")).send()).unwrap_err();
        let message = format!("{err:#}");
        assert_eq!(
            err.kind(),
            ErrorKind::Transport(TransportErrorKind::Other),
            "{message}"
        );
        assert_eq!(err.attempts(), 1, "{message}");
        assert!(
            message.contains("the proxy socks4://127.0.0.1:9 speaks a protocol"),
            "{message}"
        );
        assert_eq!(server.hits("/x"), 0);
        // Told to, a client goes straight to the server.
        let direct = Client::builder().no_proxy().build().unwrap();
        assert_eq!(
            block_on(direct.get(&server.url("/x")).send())
                .unwrap()
                .status(),
            200
        );
        return;
    }
    run_child(TEST, &[("ALL_PROXY", "socks4://user:secret@127.0.0.1:9")]);
}

#[test]
fn a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says() {
    resil_tests::check_explicit_proxy(
        "a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says",
        "GET http://127.0.0.1:",
        |proxy| Client::builder().proxy(proxy).build(),
        |client, page| {
            // One runtime for both: the connection's task lives on the one that made it.
            let text = block_on(async { client.get(page).send().await?.text().await });
            assert_eq!(text.unwrap(), "relayed");
        },
    );
}

#[test]
fn a_proxy_that_refuses_or_cannot_be_reached_follows_the_proxy_rule() {
    resil_tests::check_proxy_rule(ProxyAuthAnswer::FailsAtOnce, |proxy, origin| {
        // HTTP/2 with prior knowledge goes through a tunnel over plain TCP.
        let client = Client::builder()
            .proxy(proxy)
            .http2_prior_knowledge()
            .policy(proxy_rule_policy())
            .build()
            .unwrap();
        block_on(
            client
                .post(&format!("http://{origin}/rule"))
                .body("payload")
                .send(),
        )
    });
}

#[test]
fn a_socks5_proxy_that_refuses_or_cannot_be_reached_follows_the_proxy_rule() {
    resil_tests::check_socks_rule(ProxyAuthAnswer::FailsAtOnce, |proxy, origin| {
        let client = Client::builder()
            .proxy(proxy)
            .policy(proxy_rule_policy())
            .build()
            .unwrap();
        block_on(
            client
                .post(&format!("http://{origin}/rule"))
                .body("payload")
                .send(),
        )
    });
}

#[test]
fn a_socks5_proxy_set_on_the_client_is_sent_the_name_or_an_address_with_its_credentials() {
    resil_tests::check_socks_proxy(|proxy, page| {
        let client = Client::builder().proxy(proxy).build()?;
        block_on(async { client.get(page).send().await?.text().await })
    });
}
