//! Faults after the response head that every driver runs ([`BodyFaultWorld`]): bodies cut at
//! their first byte, mid-chunk and mid-`Content-Length`, a stall past the attempt's
//! deadline, resumes answered with `206`, with `200`, with another version or another range,
//! a `POST` cut short, a gzip body cut (resumed on its raw bytes). Each case is read whole
//! (`bytes()`, which may start again) and as a stream (which may only resume).

use std::time::Duration;

use crate::server::{Recorded, Reply, TestServer};

/// The length of every case's body.
pub const BODY_LEN: usize = 1_500;

/// Where the first attempt's body stops.
pub const CUT_AT: usize = 500;

/// Every case's body: 1,500 bytes that tell their offset apart (a splice would show).
pub fn full_body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A head of `status` with `headers`, a `Content-Length` of the whole body unless the
/// headers frame it otherwise. It says the connection closes (the server closes it after
/// every reply here), so no client sends the next case's request on it.
fn head(status: u16, headers: &[(&str, &str)]) -> String {
    let mut head = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(n, _)| *n == "transfer-encoding" || *n == "content-length")
    {
        head.push_str(&format!("content-length: {BODY_LEN}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A head and the first `CUT_AT` bytes, then close.
fn cut(headers: &[(&str, &str)]) -> Reply {
    let mut bytes = head(200, headers).into_bytes();
    bytes.extend_from_slice(&full_body()[..CUT_AT]);
    Reply::Bytes(bytes)
}

/// The whole body with `headers`.
fn whole(headers: &[(&str, &str)]) -> Reply {
    let mut bytes = head(200, headers).into_bytes();
    bytes.extend_from_slice(&full_body());
    Reply::Bytes(bytes)
}

/// A `206` of the body from `CUT_AT` on, with `headers` (a `Content-Range` among them).
fn rest(headers: &[(&str, &str)]) -> Reply {
    let mut reply = format!(
        "HTTP/1.1 206 Partial Content\r\nconnection: close\r\ncontent-length: {}\r\n",
        BODY_LEN - CUT_AT
    );
    for (name, value) in headers {
        reply.push_str(&format!("{name}: {value}\r\n"));
    }
    reply.push_str("\r\n");
    let mut bytes = reply.into_bytes();
    bytes.extend_from_slice(&full_body()[CUT_AT..]);
    Reply::Bytes(bytes)
}

/// The gzip case's body on the wire: [`full_body`] in a gzip member of stored (uncompressed)
/// blocks, so a cut at [`CUT_AT`] falls inside its data.
pub fn gzipped_body() -> Vec<u8> {
    let body = full_body();
    // Header: magic, deflate, no flags, no time, no extra flags, unknown OS.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    // One final stored block: BFINAL=1, BTYPE=00, then LEN and its complement.
    let len = body.len() as u16;
    gz.push(1);
    gz.extend_from_slice(&len.to_le_bytes());
    gz.extend_from_slice(&(!len).to_le_bytes());
    gz.extend_from_slice(&body);
    gz.extend_from_slice(&crc32(&body).to_le_bytes());
    gz.extend_from_slice(&(body.len() as u32).to_le_bytes());
    gz
}

/// CRC-32 (IEEE), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The gzip case: the first request's body is cut at [`CUT_AT`] bytes of the wire; a range
/// request gets the rest of the wire bytes, any other request the whole.
fn gzip_reply(request: &Recorded, index: usize) -> Reply {
    let wire = gzipped_body();
    let len = wire.len();
    let mut head = String::from(
        "connection: close\r\ncontent-encoding: gzip\r\naccept-ranges: bytes\r\netag: \"v1\"\r\n",
    );
    let (status, body) = match (index, request.header("range")) {
        (0, _) => {
            head.push_str(&format!("content-length: {len}\r\n"));
            ("200 OK", &wire[..CUT_AT])
        }
        (_, Some(_)) => {
            let rest = &wire[CUT_AT..];
            head.push_str(&format!(
                "content-length: {}\r\ncontent-range: bytes {CUT_AT}-{}/{len}\r\n",
                rest.len(),
                len - 1
            ));
            ("206 Partial Content", rest)
        }
        (_, None) => {
            head.push_str(&format!("content-length: {len}\r\n"));
            ("200 OK", &wire[..])
        }
    };
    let mut bytes = format!("HTTP/1.1 {status}\r\n{head}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

const RANGES: [(&str, &str); 2] = [("accept-ranges", "bytes"), ("etag", "\"v1\"")];

/// How a case reads the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAs {
    /// Whole, through the driver's `bytes()`: the body may start again.
    Whole,
    /// As a stream (`Read`, or polling frames): the body may only resume.
    Stream,
}

/// What a case must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyOutcome {
    /// Exactly [`full_body`].
    Full,
    /// Exactly [`gzipped_body`] (not decoded).
    Gzipped,
    /// An error whose `{:#}` contains this.
    Error(&'static str),
}

/// One body-fault case.
#[derive(Clone, Debug)]
pub struct BodyFaultCase {
    /// Name for messages.
    pub name: &'static str,
    /// The method.
    pub method: http::Method,
    /// The URL.
    pub url: String,
    /// How the body is read.
    pub read: ReadAs,
    /// What the read must end with.
    pub outcome: BodyOutcome,
    /// Requests the server must have seen for this case.
    pub requests: usize,
    /// Checks the requests the server saw for this case.
    check: fn(&[Recorded]),
}

/// A server scripted with every case, on its own path per case and read mode.
#[derive(Debug)]
pub struct BodyFaultWorld {
    /// The server.
    pub server: TestServer,
}

/// The attempt timeout a client needs for the stall case (the stall lasts longer).
pub const STALL_TIMEOUT: Duration = Duration::from_millis(300);

impl BodyFaultWorld {
    /// Starts the server.
    pub fn start() -> BodyFaultWorld {
        let server = TestServer::start();
        for read in ["whole", "stream"] {
            let path = |name: &str| format!("/{read}/{name}");
            server.script(&path("cut-length"), vec![cut(&[]), whole(&[])]);
            let chunked = [("transfer-encoding", "chunked")];
            let mut first = head(200, &chunked).into_bytes();
            first.extend_from_slice(format!("{BODY_LEN:x}\r\n").as_bytes());
            first.extend_from_slice(&full_body()[..CUT_AT]);
            let mut second = head(200, &chunked).into_bytes();
            second.extend_from_slice(format!("{BODY_LEN:x}\r\n").as_bytes());
            second.extend_from_slice(&full_body());
            second.extend_from_slice(b"\r\n0\r\n\r\n");
            server.script(
                &path("cut-chunk"),
                vec![Reply::Bytes(first), Reply::Bytes(second)],
            );
            server.script(
                &path("cut-at-zero"),
                vec![Reply::Bytes(head(200, &[]).into_bytes()), whole(&[])],
            );
            let mut stalled = head(200, &[]).into_bytes();
            stalled.extend_from_slice(&full_body()[..CUT_AT]);
            server.script(
                &path("stall"),
                vec![
                    Reply::BytesThenStall(stalled, STALL_TIMEOUT * 4),
                    whole(&[]),
                ],
            );
            let range = ("content-range", "bytes 500-1499/1500");
            server.script(
                &path("resume"),
                vec![cut(&RANGES), rest(&[range, ("etag", "\"v1\"")])],
            );
            server.script(&path("resume-200"), vec![cut(&RANGES), whole(&RANGES)]);
            server.script(
                &path("resume-changed"),
                vec![cut(&RANGES), rest(&[range, ("etag", "\"v2\"")])],
            );
            let elsewhere = ("content-range", "bytes 0-999/1500");
            server.script(
                &path("resume-wrong-range"),
                vec![cut(&RANGES), rest(&[elsewhere, ("etag", "\"v1\"")])],
            );
            server.script(&path("post-cut"), vec![cut(&[]), whole(&[])]);
            server.handle(&path("gzip"), gzip_reply);
        }
        BodyFaultWorld { server }
    }

    /// Every case, for a driver that hands out the body's bytes as the server sent them.
    pub fn cases(&self) -> Vec<BodyFaultCase> {
        self.cases_for(false)
    }

    /// Every case, for a driver that decodes a gzip body (curl, in resil-isahc): it cannot
    /// resume one with a range, whose offsets count the bytes on the wire, so it starts it
    /// again.
    pub fn cases_decoding(&self) -> Vec<BodyFaultCase> {
        self.cases_for(true)
    }

    fn cases_for(&self, decodes: bool) -> Vec<BodyFaultCase> {
        let mut cases = Vec::new();
        for read in [ReadAs::Whole, ReadAs::Stream] {
            let dir = if read == ReadAs::Whole {
                "whole"
            } else {
                "stream"
            };
            let case = |name, path: &str, outcome, requests, check| BodyFaultCase {
                name,
                method: http::Method::GET,
                url: self.server.url(&format!("/{dir}/{path}")),
                read,
                outcome,
                requests,
                check,
            };
            let from_scratch =
                |requests: &[Recorded]| assert_eq!(requests[1].header("range"), None);
            let asked_the_rest = |requests: &[Recorded]| {
                assert_eq!(requests[1].header("range"), Some("bytes=500-"));
                assert_eq!(requests[1].header("if-range"), Some("\"v1\""));
            };
            // Without ranges the body starts again: a whole read can; a stream cannot once
            // bytes reached the caller, and asks for nothing.
            let (restart, restart_requests) = match read {
                ReadAs::Whole => (BodyOutcome::Full, 2),
                ReadAs::Stream => (BodyOutcome::Error("cannot resume"), 1),
            };
            let restart_check = match read {
                ReadAs::Whole => from_scratch,
                ReadAs::Stream => |_: &[Recorded]| {},
            };
            // A range answered with the whole body: a stream that had bytes cannot splice it.
            let answered_whole = match read {
                ReadAs::Whole => BodyOutcome::Full,
                ReadAs::Stream => BodyOutcome::Error("cannot be spliced"),
            };
            cases.extend([
                case(
                    "a body cut mid-Content-Length",
                    "cut-length",
                    restart,
                    restart_requests,
                    restart_check,
                ),
                case(
                    "a body cut mid-chunk",
                    "cut-chunk",
                    restart,
                    restart_requests,
                    restart_check,
                ),
                case(
                    "a body cut at its first byte",
                    "cut-at-zero",
                    BodyOutcome::Full,
                    2,
                    from_scratch,
                ),
                case(
                    "a body that stalls past the attempt's deadline",
                    "stall",
                    restart,
                    restart_requests,
                    restart_check,
                ),
                case(
                    "a cut body resumes with a range",
                    "resume",
                    BodyOutcome::Full,
                    2,
                    asked_the_rest,
                ),
                case(
                    "a resume answered whole",
                    "resume-200",
                    answered_whole,
                    2,
                    asked_the_rest,
                ),
                case(
                    "a resume of another version",
                    "resume-changed",
                    BodyOutcome::Error("another version"),
                    2,
                    asked_the_rest,
                ),
                case(
                    "a resume of another range",
                    "resume-wrong-range",
                    BodyOutcome::Error("the server sent bytes 0-999/1500"),
                    2,
                    asked_the_rest,
                ),
                if decodes {
                    case(
                        "a decoded gzip body starts again",
                        "gzip",
                        restart,
                        restart_requests,
                        restart_check,
                    )
                } else {
                    case(
                        "a gzip body resumes on its raw bytes",
                        "gzip",
                        BodyOutcome::Gzipped,
                        2,
                        asked_the_rest,
                    )
                },
                BodyFaultCase {
                    method: http::Method::POST,
                    ..case(
                        "a POST whose body is cut is not sent again",
                        "post-cut",
                        // A stream could not go on after its bytes even for a GET.
                        match read {
                            ReadAs::Whole => BodyOutcome::Error("not replayed"),
                            ReadAs::Stream => BodyOutcome::Error("cannot resume"),
                        },
                        1,
                        |_| {},
                    )
                },
            ]);
        }
        cases
    }

    /// Checks what `case` ended with: the body read, or the error's `{:#}`.
    pub fn check(&self, driver: &str, case: &BodyFaultCase, result: Result<Vec<u8>, String>) {
        let name = case.name;
        let read = case.read;
        match (case.outcome, &result) {
            (BodyOutcome::Full | BodyOutcome::Gzipped, Ok(body)) => {
                let want = match case.outcome {
                    BodyOutcome::Gzipped => gzipped_body(),
                    _ => full_body(),
                };
                assert!(
                    body == &want,
                    "{driver}: {name} ({read:?}): {} bytes, not the body",
                    body.len()
                );
            }
            (BodyOutcome::Error(said), Err(error)) => assert!(
                error.contains(said),
                "{driver}: {name} ({read:?}): expected {said:?} in {error}"
            ),
            (want, got) => panic!(
                "{driver}: {name} ({read:?}): expected {want:?}, got {:?}",
                got.as_ref().map(Vec::len)
            ),
        }
        let path = case
            .url
            .split_once("/whole/")
            .or(case.url.split_once("/stream/"));
        let path = path.map_or("", |(_, p)| p);
        let dir = if read == ReadAs::Whole {
            "whole"
        } else {
            "stream"
        };
        let requests: Vec<_> = self
            .server
            .requests()
            .into_iter()
            .filter(|r| r.path == format!("/{dir}/{path}"))
            .collect();
        assert_eq!(requests.len(), case.requests, "{driver}: {name} ({read:?})");
        (case.check)(&requests);
    }
}
