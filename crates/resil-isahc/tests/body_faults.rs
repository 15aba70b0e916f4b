//! Faults after the response head through resil-isahc: a body that fails while it is read is
//! retried (read whole) or resumed (read as a stream), as the call allows (the cases in
//! `resil_tests::BodyFaultWorld`). curl decodes a gzip body, so it starts one again rather
//! than resume it at an offset of the decoded bytes.

use std::time::Duration;

use futures_lite::future::block_on;
use http_body_util::BodyExt;
use resil_isahc::{Backoff, Client, Jitter, ResponseExt, RetryPolicy};
use resil_tests::{BodyFaultCase, BodyFaultWorld, ReadAs, STALL_TIMEOUT, shared_load};

fn read(client: &Client, case: &BodyFaultCase) -> Result<Vec<u8>, String> {
    block_on(async {
        let response = client
            .request(case.method.clone(), &case.url)
            .send()
            .await
            .map_err(|e| format!("{e:#}"))?;
        match case.read {
            ReadAs::Whole => response
                .bytes()
                .await
                .map(Vec::from)
                .map_err(|e| format!("{e:#}")),
            ReadAs::Stream => {
                let mut body = response.into_body();
                let mut out = Vec::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("{e:#}"))?;
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
                Ok(out)
            }
        }
    })
}

#[test]
fn body_faults_through_the_isahc_client() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .attempt_timeout(Some(STALL_TIMEOUT))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).no_proxy().build().unwrap();
    for case in world.cases_decoding() {
        world.check("isahc", &case, read(&client, &case));
    }
    let stats = client.stats();
    assert!(stats.body_failures >= 12, "{stats}");
}

#[test]
fn bodies_framed_against_rfc_9112_are_refused_once() {
    let _load = shared_load();
    let world = resil_tests::FramingWorld::start();
    for (name, url) in world.cases() {
        // A client each: the failures of one case would open the next one's breaker.
        let client = Client::builder().no_proxy().build().unwrap();
        let read = block_on(async {
            let response = client.get(&url).send().await?;
            response.bytes().await.map(Vec::from)
        });
        // curl refuses each, some with the code a reset has too (isahc keeps only the code),
        // so those are retried until the attempts are used.
        let read = read.map_err(|e| format!("{e:#}"));
        world.check_sent_at_most("isahc", name, &url, read, 4);
    }
}
