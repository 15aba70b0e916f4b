//! Faults after the response head through the blocking client: a body that fails while it is
//! read is retried (read whole) or resumed (read as a stream), as the call allows.

use std::io::Read;
use std::time::Duration;

use resil_blocking::{Backoff, Client, Jitter, ResponseExt, RetryPolicy};
use resil_tests::{BodyFaultCase, BodyFaultWorld, ReadAs, STALL_TIMEOUT, shared_load};

fn read(client: &Client, case: &BodyFaultCase) -> Result<Vec<u8>, String> {
    let response = client
        .request(case.method.clone(), &case.url)
        .send()
        .map_err(|e| format!("{e:#}"))?;
    match case.read {
        ReadAs::Whole => response.bytes().map_err(|e| format!("{e:#}")),
        ReadAs::Stream => {
            let mut out = Vec::new();
            let mut body = response.into_body();
            body.read_to_end(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

#[test]
fn body_faults_through_the_blocking_client() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .attempt_timeout(Some(STALL_TIMEOUT))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).no_proxy().build().unwrap();
    for case in world.cases() {
        world.check("blocking", &case, read(&client, &case));
    }
    let stats = client.stats();
    assert!(stats.body_failures >= 12, "{stats}");
}

#[test]
fn a_put_whose_request_body_was_a_stream_is_not_sent_again() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let client = Client::builder().no_proxy().build().unwrap();
    // PUT is idempotent, but its streamed body went out once: nothing could send it again.
    let url = world.server.url("/whole/cut-length");
    let response = client
        .put(&url)
        .body_reader(std::io::Cursor::new(b"streamed".to_vec()))
        .send()
        .unwrap();
    let err = response.bytes().unwrap_err();
    assert_eq!(err.kind(), resil_blocking::ErrorKind::Body, "{err:#}");
    assert!(format!("{err:#}").contains("ended before"), "{err:#}");
    assert_eq!(world.server.hits("/whole/cut-length"), 1);
}

#[test]
fn bodies_framed_against_rfc_9112_are_refused_once() {
    let _load = shared_load();
    let world = resil_tests::FramingWorld::start();
    let client = Client::builder().no_proxy().build().unwrap();
    for (name, url) in world.cases() {
        let read = client
            .get(&url)
            .send()
            .and_then(|r| r.bytes())
            .map_err(|e| format!("{e:#}"));
        world.check("blocking", name, &url, read);
    }
}
