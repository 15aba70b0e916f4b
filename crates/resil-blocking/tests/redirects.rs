//! Redirects through the blocking client: the cases every driver runs, on three loopback
//! origins, and the redirect hops ureq no longer follows on its own.

use std::io::Read;

use resil_blocking::Client;
use resil_tests::{CREDENTIALS, CaseBody, RedirectCase, RedirectWorld, SENSITIVE, shared_load};

fn send(client: &Client, case: &RedirectCase) -> Result<(u16, String), resil_blocking::ErrorKind> {
    let mut request = client.request(case.method.clone(), &case.url);
    for (name, value) in CREDENTIALS {
        request = request.header(name, value);
    }
    request = match case.body {
        CaseBody::None => request,
        CaseBody::Bytes(bytes) => request.body(bytes),
        CaseBody::Stream(bytes) => request.body_reader(std::io::Cursor::new(bytes)),
    };
    let response = request.send().map_err(|e| e.kind())?;
    let status = response.status().as_u16();
    let mut body = String::new();
    response
        .into_body()
        .read_to_string(&mut body)
        .map_err(|_| resil_blocking::ErrorKind::Body)?;
    Ok((status, body))
}

#[test]
fn redirect_cases_through_the_blocking_client() {
    let _load = shared_load();
    let world = RedirectWorld::start();
    let builder = || Client::builder().sensitive_header(SENSITIVE).no_proxy();
    let following = builder().build().unwrap();
    let off = builder().max_redirects(0).build().unwrap();
    for case in world.cases() {
        let client = if case.follow { &following } else { &off };
        world.check("blocking", &case, send(client, &case));
    }
    let stats = following.stats();
    assert!(stats.redirects >= 12, "{stats}");
    assert_eq!(
        stats.total_retries(),
        0,
        "redirects are no retries: {stats}"
    );
}
