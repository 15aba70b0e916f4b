//! Redirects through resil-isahc: curl follows none; resil follows by the rules every driver
//! shares (the cases in `resil_tests::RedirectWorld`).

use futures_lite::future::block_on;
use resil_isahc::{Client, ResponseExt};
use resil_tests::{CREDENTIALS, CaseBody, RedirectCase, RedirectWorld, SENSITIVE, shared_load};

fn send(client: &Client, case: &RedirectCase) -> Result<(u16, String), resil_isahc::ErrorKind> {
    block_on(async {
        let mut request = client.request(case.method.clone(), &case.url);
        for (name, value) in CREDENTIALS {
            request = request.header(name, value);
        }
        request = match case.body {
            CaseBody::None => request,
            CaseBody::Bytes(bytes) => request.body(bytes),
            CaseBody::Stream(bytes) => {
                request.body_stream(http_body_util::Full::new(bytes::Bytes::from(bytes)))
            }
        };
        let response = request.send().await.map_err(|e| e.kind())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.kind())?;
        Ok((status, body))
    })
}

#[test]
fn redirect_cases_through_the_isahc_client() {
    let _load = shared_load();
    let world = RedirectWorld::start();
    let builder = || Client::builder().sensitive_header(SENSITIVE).no_proxy();
    let following = builder().build().unwrap();
    let off = builder().max_redirects(0).build().unwrap();
    for case in world.cases() {
        let client = if case.follow { &following } else { &off };
        world.check("isahc", &case, send(client, &case));
    }
}
