//! Bodies framed in ways RFC 9112 forbids, which every driver must refuse rather than read
//! ([`FramingWorld`]): chunk sizes with a sign, a space, `0x`, or more than 16 hex digits.
//! A parser lenient here reads a body where another reads the next response: how responses
//! are smuggled. The heads that misframe a body are scenario rows.

use crate::server::{Reply, TestServer};

/// Each case's name and its raw response, the same body (`hello`) but for one bad size line.
pub const BAD_CHUNK_SIZES: &[(&str, &[u8])] = &[
    (
        "a chunk size with a sign",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a chunk size after a space",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a chunk size in 0x notation",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a chunk size of 17 hex digits",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
          00000000000000005\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a last chunk with a sign",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n-0\r\n\r\n",
    ),
];

/// A server with every case at `/frame/N`.
#[derive(Debug)]
pub struct FramingWorld {
    /// The server.
    pub server: TestServer,
}

impl FramingWorld {
    /// Starts the server.
    pub fn start() -> FramingWorld {
        let server = TestServer::start();
        for (i, (_, raw)) in BAD_CHUNK_SIZES.iter().enumerate() {
            server.script(&format!("/frame/{i}"), vec![Reply::Raw(raw)]);
        }
        FramingWorld { server }
    }

    /// Every case: its name and URL.
    pub fn cases(&self) -> Vec<(&'static str, String)> {
        BAD_CHUNK_SIZES
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, self.server.url(&format!("/frame/{i}"))))
            .collect()
    }

    /// Checks that the call to case `name` at `url` ended in an error (the `{:#}` of it),
    /// never `hello`, and was sent once: a malformed body is not retried.
    pub fn check(&self, driver: &str, name: &str, url: &str, result: Result<Vec<u8>, String>) {
        self.check_sent_at_most(driver, name, url, result, 1);
    }

    /// [`check`](Self::check) for a driver that cannot always tell a malformed body from a
    /// cut one (curl says some with the code a reset has) and so may retry it: sent at most
    /// `sends` times.
    pub fn check_sent_at_most(
        &self,
        driver: &str,
        name: &str,
        url: &str,
        result: Result<Vec<u8>, String>,
        sends: usize,
    ) {
        match result {
            Ok(body) => panic!(
                "{driver}: {name}: read as {:?}, not refused",
                String::from_utf8_lossy(&body)
            ),
            Err(error) => {
                let path = url.rsplit_once("/frame/").map_or("", |(_, n)| n);
                let hits = self.server.hits(&format!("/frame/{path}"));
                assert!(
                    (1..=sends).contains(&hits),
                    "{driver}: {name}: sent {hits} times ({error})"
                );
            }
        }
    }
}
