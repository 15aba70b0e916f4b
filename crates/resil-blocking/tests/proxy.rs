//! resil-blocking's proxies: from the environment, as ureq reads it (each such test runs its
//! client in a child process given the proxy variables, against a fake proxy on 127.0.0.1 in
//! the parent), or set on the client; and the proxy rule, against proxies that refuse or
//! cannot be reached.

use resil_blocking::{Client, ResponseExt};
use resil_tests::{ProxyAuthAnswer, proxy_rule_policy};

#[test]
fn a_call_goes_through_the_proxy_the_environment_names() {
    // ureq tunnels plain HTTP too.
    resil_tests::check_env_proxy(
        "a_call_goes_through_the_proxy_the_environment_names",
        "HTTP_PROXY",
        "CONNECT 127.0.0.1:",
        |page| {
            let client = Client::builder().build().unwrap();
            assert_eq!(client.get(page).send().unwrap().text().unwrap(), "relayed");
            // Told to, a client goes straight to the server (the proxy sees one call only).
            let direct = Client::builder().no_proxy().build().unwrap();
            assert_eq!(direct.get(page).send().unwrap().status(), 200);
        },
    );
}

#[test]
fn a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says() {
    // ureq tunnels plain HTTP too.
    resil_tests::check_explicit_proxy(
        "a_proxy_set_on_the_client_carries_every_call_whatever_the_environment_says",
        "CONNECT 127.0.0.1:",
        |proxy| Client::builder().proxy(proxy).build(),
        |client, page| assert_eq!(client.get(page).send().unwrap().text().unwrap(), "relayed"),
    );
}

#[test]
fn a_socks_proxy_the_environment_names_carries_the_call_rather_than_being_bypassed() {
    resil_tests::check_env_socks_proxy(
        "a_socks_proxy_the_environment_names_carries_the_call_rather_than_being_bypassed",
        |page| {
            let client = Client::builder().build().unwrap();
            assert_eq!(client.get(page).send().unwrap().text().unwrap(), "relayed");
        },
    );
}

#[test]
fn a_proxy_that_refuses_or_cannot_be_reached_follows_the_proxy_rule() {
    // ureq tunnels plain HTTP too.
    resil_tests::check_proxy_rule(ProxyAuthAnswer::FailsAtOnce, |proxy, origin| {
        let client = Client::builder()
            .proxy(proxy)
            .policy(proxy_rule_policy())
            .build()
            .unwrap();
        client
            .post(&format!("http://{origin}/rule"))
            .body("payload")
            .send()
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
        client
            .post(&format!("http://{origin}/rule"))
            .body("payload")
            .send()
    });
}

#[test]
fn a_socks5_proxy_set_on_the_client_is_sent_the_name_or_an_address_with_its_credentials() {
    resil_tests::check_socks_proxy(|proxy, page| {
        let client = Client::builder().proxy(proxy).build()?;
        client.get(page).send()?.text()
    });
}
