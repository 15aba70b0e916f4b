//! The HTTP/1.1 framing check: what it refuses, what it must never refuse (any valid stream,
//! however the connection splits it), and where it stops checking.

use proptest::prelude::*;
use resil_core::{FramingError, Http1Framing, MAX_LINE};

/// Feeds `request` then `response` whole; the first error.
fn check(request: &[u8], response: &[u8]) -> Result<(), FramingError> {
    let mut framing = Http1Framing::new();
    framing.sent(request);
    framing.received(response)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

fn chunked(body: &str) -> Vec<u8> {
    format!("{CHUNKED}{body}").into_bytes()
}

#[test]
fn chunk_sizes_rfc_9112_forbids_are_refused() {
    let cases: &[(&str, FramingError)] = &[
        ("+5\r\nhello\r\n0\r\n\r\n", FramingError::ChunkSize(b'+')),
        ("-0\r\n\r\n", FramingError::ChunkSize(b'-')),
        (" 5\r\nhello\r\n0\r\n\r\n", FramingError::ChunkSize(b' ')),
        ("0x5\r\nhello\r\n0\r\n\r\n", FramingError::ChunkSize(b'x')),
        ("\r\nhello\r\n0\r\n\r\n", FramingError::ChunkSize(b'\r')),
        ("5 5\r\nhello\r\n0\r\n\r\n", FramingError::ChunkSize(b'5')),
        ("5\nhello\r\n0\r\n\r\n", FramingError::ChunkLineEnd),
        ("5\r\rhello\r\n0\r\n\r\n", FramingError::ChunkLineEnd),
        ("5\r\nhello!\r\n0\r\n\r\n", FramingError::ChunkDataEnd),
        ("5\r\nhello\n0\r\n\r\n", FramingError::ChunkDataEnd),
        (
            "00000000000000005\r\nhello\r\n0\r\n\r\n",
            FramingError::ChunkSizeTooLong,
        ),
    ];
    for (body, error) in cases {
        assert_eq!(check(GET, &chunked(body)), Err(*error), "{body:?}");
    }
    // Every later input reports the error again.
    let mut framing = Http1Framing::new();
    framing.sent(GET);
    assert!(framing.received(&chunked("+5\r\n")).is_err());
    assert_eq!(
        framing.received(b"hello"),
        Err(FramingError::ChunkSize(b'+'))
    );
}

#[test]
fn chunk_sizes_rfc_9112_allows_pass() {
    for body in [
        "5\r\nhello\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5 ;name\r\nhello\r\n0\r\n\r\n",
        "5\t; a=\"b c\"\r\nhello\r\n0\r\n\r\n",
        "A\r\nhellohello\r\n0\r\n\r\n",
        "a\r\nhellohello\r\n0\r\n\r\n",
        "000000000000000a\r\nhellohello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\ntrailer: x\r\n\r\n",
    ] {
        assert_eq!(check(GET, &chunked(body)), Ok(()), "{body:?}");
    }
}

#[test]
fn bodies_without_bytes_are_known_by_request_and_status() {
    // A HEAD's response has a Content-Length and no body: the next response follows at once.
    let mut framing = Http1Framing::new();
    framing.sent(b"HEAD / HTTP/1.1\r\n\r\n");
    framing
        .received(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        .unwrap();
    framing.sent(GET);
    assert_eq!(
        framing.received(&chunked("+5\r\n")),
        Err(FramingError::ChunkSize(b'+'))
    );
    for status in ["204 No Content", "304 Not Modified"] {
        let mut framing = Http1Framing::new();
        framing.sent(GET);
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: 9\r\n\r\n");
        framing.received(head.as_bytes()).unwrap();
        framing.sent(GET);
        assert!(framing.received(&chunked("+5\r\n")).is_err(), "{status}");
    }
    // A method split across writes is still known.
    let mut framing = Http1Framing::new();
    framing.sent(b"HE");
    framing.sent(b"AD / HTTP/1.1\r\n\r\n");
    framing
        .received(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        .unwrap();
    framing.sent(GET);
    assert!(framing.received(&chunked("+5\r\n")).is_err());
    // An interim response, then the final one.
    let mut framing = Http1Framing::new();
    framing.sent(GET);
    framing.received(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    assert!(framing.received(&chunked("+5\r\n")).is_err());
}

#[test]
fn what_it_cannot_follow_it_stops_checking() {
    let stops = |request: &[u8], head: &str| {
        let mut framing = Http1Framing::new();
        framing.sent(request);
        framing.received(head.as_bytes()).unwrap();
        assert!(framing.is_unchecked(), "{head:?}");
        assert_eq!(framing.received(b"+5\r\n"), Ok(()), "{head:?}");
    };
    stops(
        GET,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
    );
    stops(b"CONNECT a:443 HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
    stops(GET, "HTTP/1.1 200 OK\r\n\r\n");
    stops(GET, "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
    stops(GET, "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n");
    stops(GET, "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n");
    stops(GET, "SSH-2.0-OpenSSH\r\n");
    stops(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "");
    let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_LINE));
    stops(GET, &long);
}

#[test]
fn a_body_may_pass_unseen() {
    let mut framing = Http1Framing::new();
    framing.sent(GET);
    framing
        .received(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        .unwrap();
    assert_eq!(framing.body_ahead(), 10);
    framing.skip(4);
    assert_eq!(framing.body_ahead(), 6);
    framing.skip(6);
    assert_eq!(framing.body_ahead(), 0);
    framing.sent(GET);
    framing.received(&chunked("3\r\n")).unwrap();
    assert_eq!(framing.body_ahead(), 3);
    framing.skip(3);
    assert_eq!(
        framing.received(b"\r\n+1\r\n"),
        Err(FramingError::ChunkSize(b'+'))
    );
}

/// One valid response: its bytes and whether its request is a HEAD.
fn response() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let sizes = prop::collection::vec(1usize..40, 0..5);
    prop_oneof![
        // Content-Length.
        (0usize..60).prop_map(|n| {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            r.extend(std::iter::repeat_n(b'\r', n));
            (false, r)
        }),
        // Chunked, sizes in either case, some with extensions and trailers.
        (sizes, any::<bool>(), any::<bool>()).prop_map(|(sizes, upper, trailer)| {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
            for (i, n) in sizes.iter().enumerate() {
                let size = if upper {
                    format!("{n:X}")
                } else {
                    format!("{n:x}")
                };
                let ext = if i % 2 == 1 { " ; x=y" } else { "" };
                r.extend(format!("{size}{ext}\r\n").bytes());
                r.extend(std::iter::repeat_n(b'\n', *n));
                r.extend(b"\r\n");
            }
            r.extend(if trailer {
                &b"0\r\nt: 1\r\n\r\n"[..]
            } else {
                b"0\r\n\r\n"
            });
            (false, r)
        }),
        // HEAD, 204 and 304 with a length and no body; an interim 100 first.
        Just((
            true,
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n".to_vec()
        )),
        Just((false, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())),
        Just((
            false,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()
        )),
    ]
}

proptest! {
    /// Valid responses on one connection, received in pieces of any size, some skipped
    /// unseen: never refused, and the check is never lost (a bad size after them is found).
    #[test]
    fn valid_streams_pass_however_they_are_split(
        responses in prop::collection::vec(response(), 1..6),
        cuts in prop::collection::vec(1usize..20, 1..50),
        skip_what_it_may in any::<bool>(),
    ) {
        let mut framing = Http1Framing::new();
        let mut cut = cuts.iter().cycle();
        for (head, bytes) in &responses {
            framing.sent(if *head { b"HEAD / HTTP/1.1\r\n\r\n" } else { GET });
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let ahead = usize::try_from(framing.body_ahead()).unwrap_or(usize::MAX);
                if skip_what_it_may && ahead > 0 {
                    let n = ahead.min(rest.len());
                    framing.skip(n as u64);
                    rest = &rest[n..];
                    continue;
                }
                let n = (*cut.next().unwrap()).min(rest.len());
                prop_assert_eq!(framing.received(&rest[..n]), Ok(()));
                rest = &rest[n..];
            }
        }
        framing.sent(GET);
        prop_assert!(framing.received(&chunked("+5\r\n")).is_err());
    }

    /// Any bytes, sent and received in any order: the check never panics.
    #[test]
    fn any_bytes_are_checked_without_panicking(
        inputs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)), 0..20),
    ) {
        let mut framing = Http1Framing::new();
        for (sent, bytes) in inputs {
            if sent {
                framing.sent(&bytes);
            } else {
                let _ = framing.received(&bytes);
            }
        }
    }
}
