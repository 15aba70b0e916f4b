//! The `tracing` feature. Its own test binary: tracing caches per-callsite interest process
//! wide, so a test running beside it without a subscriber could hide its events.
#![cfg(feature = "tracing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resil_blocking::Client;
use resil_core::{Backoff, Jitter, RetryPolicy};
use resil_tests::{Reply, TestServer};

/// Counts `tracing` events whose message starts with "resil:".
struct Counter(Arc<AtomicUsize>);

impl tracing::Subscriber for Counter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}").starts_with("resil:") {
                    self.0 = true;
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn tracing_events_for_attempts_retries_and_outcome() {
    let server = TestServer::start();
    server.script("/t", vec![Reply::status(503), Reply::status(200)]);
    let quick = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::ZERO))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let client = Client::builder().policy(quick).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::with_default(Counter(count.clone()), || {
        client.get(&server.url("/t")).send().unwrap();
    });
    // send 1, retry scheduled, send 2, completed.
    assert_eq!(count.load(Ordering::SeqCst), 4);
}
