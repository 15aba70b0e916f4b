//! One resil-isahc client used from smol's executor and from async-std's: curl does the IO on
//! isahc's thread and waits come from async-io, so neither executor needs anything else.
//!
//! ```sh
//! cargo run -p resil-isahc --example any_executor
//! ```
//!
//! The backend is resil's loopback test server (127.0.0.1, a port of its own).

use std::error::Error;
use std::time::Duration;

use resil_isahc::{Backoff, Client, Jitter, ResponseExt, RetryPolicy};
use resil_tests::{Reply, TestServer};

fn main() -> Result<(), Box<dyn Error>> {
    let server = TestServer::start();
    server.script(
        "/report",
        vec![
            Reply::status(503),
            Reply::with_header(429, "retry-after", "0"),
            Reply::body(200, "ready"),
        ],
    );
    let client = Client::builder()
        .base_url(&server.url("/"))
        .policy(
            RetryPolicy::builder()
                .backoff(Backoff::exponential(Duration::from_millis(10)))
                .jitter(Jitter::Full)
                .build()?,
        )
        .build()?;

    let body = smol::block_on(async { client.get("/report").send().await?.text().await })?;
    println!("smol:      {body:?} ({})", client.stats());

    server.script(
        "/report",
        vec![Reply::status(502), Reply::body(200, "again")],
    );
    let body =
        async_std::task::block_on(async { client.get("/report").send().await?.text().await })?;
    println!("async-std: {body:?} ({})", client.stats());
    Ok(())
}
