//! Settings at the edge of what a `Duration` holds. Its own test binary: it counts panics
//! with a process-wide hook, and hyper-util's pool runs its idle sweep as a background task
//! whose panic no request would report.

use std::sync::atomic::{AtomicUsize, Ordering};

use resil_tokio::{Client, ResponseExt};

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn timeouts_of_duration_max_mean_never_and_panic_nothing() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let server = resil_tests::ok_twice();
    let client: Client = resil_tests::never_timing_out().build().unwrap();
    for _ in 0..2 {
        let response = client.get(&server.url("/ok")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        // Lets the pool's idle sweep, spawned with the first pooled connection, run.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(
        server.connections(),
        1,
        "the second request reused the pooled connection"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
}
