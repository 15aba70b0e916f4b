//! resil-isahc's proxies: from the environment, as curl reads it (each such test runs its
//! client in a child process given the proxy variables, against a fake proxy on 127.0.0.1 in
//! the parent), or set on the client; and the proxy rule, against proxies that refuse or
//! cannot be reached, with the exception curl's errors (as isahc keeps them) force.

use futures_lite::future::block_on;
use resil_isahc::{Client, ResponseExt};
use resil_tests::{ProxyAuthAnswer, proxy_rule_policy};

/// GETs `url` and reads the whole body as text.
fn body_of(client: &Client, url: &str) -> Result<String, resil_isahc::Error> {
    block_on(async { client.get(url).send().await?.text().await })
}

#[test]
fn a_call_goes_through_the_proxy_the_environment_names() {
    // curl reads `http_proxy` in lower case only.
    resil_tests::check_env_proxy(
        "a_call_goes_through_the_proxy_the_environment_names",
        "http_proxy",
        "GET http://127.0.0.1:",
        |page| {
            let client = Client::builder().build().unwrap();
            assert_eq!(body_of(&client, page).unwrap(), "relayed");
            // Told to, a client goes straight to the server (the proxy sees one call only).
            let direct = Client::builder().no_proxy().build().unwrap();
            assert_eq!(body_of(&direct, page).unwrap(), "relayed");
        },
    );
}

#[test]
fn a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says() {
    resil_tests::check_explicit_proxy(
        "a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says",
        "GET http://127.0.0.1:",
        |proxy| Client::builder().proxy(proxy).build(),
        |client, page| assert_eq!(body_of(client, page).unwrap(), "relayed"),
    );
}

#[test]
fn a_socks_proxy_the_environment_names_carries_the_call() {
    resil_tests::check_env_socks_proxy(
        "a_socks_proxy_the_environment_names_carries_the_call",
        |page| {
            let client = Client::builder().build().unwrap();
            assert_eq!(body_of(&client, page).unwrap(), "relayed");
        },
    );
}

#[test]
fn a_proxy_that_refuses_or_cannot_be_reached_follows_the_proxy_rule_but_for_407() {
    // isahc 2 keeps neither curl's CONNECT status nor its error text: a 407 reads as any
    // other refusal, a connect failure, and is retried.
    resil_tests::check_proxy_rule(ProxyAuthAnswer::RetriedAsConnect, |proxy, origin| {
        let client = Client::builder()
            .proxy(proxy)
            .policy(proxy_rule_policy())
            .build()
            .unwrap();
        // https, so curl asks for a tunnel (the proxy refuses it before any TLS).
        block_on(
            client
                .post(&format!("https://{origin}/rule"))
                .body("payload")
                .send(),
        )
    });
}

#[test]
fn a_socks5_proxy_that_refuses_or_cannot_be_reached_follows_the_proxy_rule_but_for_credentials() {
    // curl fails every SOCKS handshake alike (CURLE_PROXY, the reason in its error text only).
    resil_tests::check_socks_rule(ProxyAuthAnswer::RetriedAsConnect, |proxy, origin| {
        let client = Client::builder()
            .proxy(proxy)
            .policy(proxy_rule_policy())
            .build()
            .unwrap();
        block_on(
            client
                .post(&format!("https://{origin}/rule"))
                .body("payload")
                .send(),
        )
    });
}

#[test]
fn a_socks5_proxy_set_on_the_client_is_sent_the_name_or_an_address_with_its_credentials() {
    resil_tests::check_socks_proxy(|proxy, page| {
        let client = Client::builder().proxy(proxy).build()?;
        body_of(&client, page)
    });
}
