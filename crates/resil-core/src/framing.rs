//! [`Http1Framing`]: a check of how the responses on one HTTP/1.1 connection are framed, fed
//! the bytes a driver's connection already moves. It refuses what RFC 9112 forbids and a
//! lenient parser would read another way (a chunk size with a sign, a space, `0x` or more
//! than 16 hex digits; chunk data not followed by CRLF), where the HTTP parser underneath is
//! a dependency's and accepts it. It parses no more than it must to find each message's end:
//! what it cannot follow (a head line past [`MAX_LINE`], a body delimited by the connection's
//! close, a protocol switch) it stops checking and leaves to the parser.

use alloc::vec::Vec;
use core::fmt;

/// The longest head line kept to be read; a longer one ends the check (the parser above
/// decides what it is).
pub const MAX_LINE: usize = 16 * 1024;

/// The most hex digits a chunk size may have: 16 is a `u64`, and more is how a size is
/// padded past a parser that counts digits (curl refuses more too).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a response stream is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A chunk-size line that does not start with a hex digit, or has a byte other than a hex
    /// digit, whitespace before `;`, or `;` after them (a sign, a space before the size,
    /// `0x`): the byte found.
    ChunkSize(u8),
    /// A chunk size of more than 16 hex digits.
    ChunkSizeTooLong,
    /// A chunk-size or chunk-extension line that ends without CR before its LF.
    ChunkLineEnd,
    /// A chunk's data not followed by CRLF.
    ChunkDataEnd,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed chunked body: ")?;
        match self {
            FramingError::ChunkSize(byte) if byte.is_ascii_graphic() => write!(
                f,
                "a chunk size must be hex digits only, found {:?}",
                char::from(*byte)
            ),
            FramingError::ChunkSize(byte) => write!(
                f,
                "a chunk size must be hex digits only, found byte 0x{byte:02x}"
            ),
            FramingError::ChunkSizeTooLong => {
                f.write_str("a chunk size has more than 16 hex digits")
            }
            FramingError::ChunkLineEnd => f.write_str("a chunk-size line ends without CRLF"),
            FramingError::ChunkDataEnd => f.write_str("a chunk's data is not followed by CRLF"),
        }
    }
}

impl core::error::Error for FramingError {}

/// What the request a response answers says of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    /// A response to `HEAD` has no body, whatever its head says.
    Head,
    /// A `2xx` to `CONNECT` turns the connection into a tunnel.
    Connect,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the status line.
    StatusLine,
    /// Reading header lines.
    Headers,
    /// This many bytes of a `Content-Length` body are left.
    Fixed(u64),
    /// Reading a chunk-size line: the digits so far, the size they make, and where in the
    /// line it is.
    ChunkSize { digits: u8, size: u64, at: SizeLine },
    /// This many bytes of a chunk's data are left.
    ChunkData(u64),
    /// After a chunk's data: whether its CR came.
    ChunkDataEnd { cr: bool },
    /// Reading trailer lines.
    Trailers,
    /// Nothing more is checked on this connection.
    Unchecked,
}

/// Where in a chunk-size line the check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SizeLine {
    Digits,
    /// Whitespace after the digits: only more of it, `;` or CR may follow.
    Space,
    /// A chunk extension, read to its CR.
    Extension,
    /// The CR came; LF must follow.
    Cr,
}

/// What the head being read says of its body.
#[derive(Clone, Copy, Debug, Default)]
struct HeadSoFar {
    status: u16,
    length: Option<u64>,
    /// A `Content-Length` that is no number or disagrees with another.
    bad_length: bool,
    transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    chunked: bool,
}

/// The check of one HTTP/1.1 connection's responses. Feed it what the connection sends
/// ([`sent`](Self::sent)) and receives ([`received`](Self::received)), in order; it needs the
/// requests only to know their methods. A body's bytes may pass unseen
/// ([`body_ahead`](Self::body_ahead), [`skip`](Self::skip)), so a driver copies nothing it
/// need not look at.
///
/// ```
/// use resil_core::{FramingError, Http1Framing};
///
/// let mut framing = Http1Framing::new();
/// framing.sent(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
/// framing.received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
/// // hyper refuses `+5`; a lenient parser reads it as 5.
/// assert_eq!(framing.received(b"+5\r\nhello\r\n0\r\n\r\n"), Err(FramingError::ChunkSize(b'+')));
/// # Ok::<(), FramingError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Http1Framing {
    state: State,
    /// The head line being read, without its line end.
    line: Vec<u8>,
    head: HeadSoFar,
    /// The request the response being read answers.
    asked: Asked,
    /// The start of the request being sent, until its method is known.
    method: [u8; 8],
    method_len: u8,
    /// The next bytes sent begin a request.
    request_start: bool,
    /// An error found: every later input reports it again.
    failed: Option<FramingError>,
}

impl Default for Http1Framing {
    fn default() -> Self {
        Http1Framing::new()
    }
}

impl Http1Framing {
    /// A check for a fresh connection.
    pub fn new() -> Http1Framing {
        Http1Framing {
            state: State::StatusLine,
            line: Vec::new(),
            head: HeadSoFar::default(),
            asked: Asked::Other,
            method: [0; 8],
            method_len: 0,
            request_start: true,
            failed: None,
        }
    }

    /// Whether the check has stopped (a protocol switch, a body read to the connection's
    /// close, HTTP/2, something it cannot follow): nothing need be fed from now on.
    pub fn is_unchecked(&self) -> bool {
        self.state == State::Unchecked
    }

    /// Bytes the connection sent: the start of each request names its method.
    pub fn sent(&mut self, bytes: &[u8]) {
        if !self.request_start || bytes.is_empty() || self.state == State::Unchecked {
            return;
        }
        if self.method_len == 0 && bytes.len() > self.method.len() {
            // The whole method in this write (as good as always).
            self.request_start = false;
            self.asked = if bytes.starts_with(b"HEAD ") {
                Asked::Head
            } else if bytes.starts_with(b"CONNECT ") {
                Asked::Connect
            } else {
                if bytes.starts_with(b"PRI ") {
                    self.state = State::Unchecked;
                }
                Asked::Other
            };
            return;
        }
        let room = self.method.len() - usize::from(self.method_len);
        let end = bytes.iter().take(room).position(|&b| b == b' ');
        let take = end.unwrap_or(room.min(bytes.len()));
        let at = usize::from(self.method_len);
        self.method[at..at + take].copy_from_slice(&bytes[..take]);
        // At most the array's length.
        self.method_len += take as u8;
        if end.is_none() && usize::from(self.method_len) < self.method.len() {
            // The method goes on in the next write.
            return;
        }
        self.request_start = false;
        let method = &self.method[..usize::from(self.method_len)];
        self.asked = match method {
            b"HEAD" => Asked::Head,
            b"CONNECT" => Asked::Connect,
            // HTTP/2's preface (h2c with prior knowledge): not HTTP/1 at all.
            b"PRI" => {
                self.state = State::Unchecked;
                Asked::Other
            }
            _ => Asked::Other,
        };
        self.method_len = 0;
    }

    /// Body bytes that come next and may pass unseen ([`skip`](Self::skip)): what is left of
    /// a `Content-Length` body or a chunk's data; everything once the check stopped.
    pub fn body_ahead(&self) -> u64 {
        match self.state {
            State::Fixed(n) | State::ChunkData(n) => n,
            State::Unchecked => u64::MAX,
            _ => 0,
        }
    }

    /// `n` bytes were received unseen; `n` is at most [`body_ahead`](Self::body_ahead)
    /// (more is read as that much).
    pub fn skip(&mut self, n: u64) {
        match self.state {
            State::Fixed(left) => {
                let left = left.saturating_sub(n);
                if left == 0 {
                    self.message_ended();
                } else {
                    self.state = State::Fixed(left);
                }
            }
            State::ChunkData(left) => {
                let left = left.saturating_sub(n);
                self.state = if left == 0 {
                    State::ChunkDataEnd { cr: false }
                } else {
                    State::ChunkData(left)
                };
            }
            _ => {}
        }
    }

    /// Bytes the connection received, in order. An error is final: the connection's data can
    /// no longer be trusted, and every later call reports it again.
    pub fn received(&mut self, mut bytes: &[u8]) -> Result<(), FramingError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        while !bytes.is_empty() {
            let ahead = self.body_ahead();
            if ahead > 0 {
                if self.state == State::Unchecked {
                    return Ok(());
                }
                let n = ahead.min(bytes.len() as u64);
                self.skip(n);
                // `n` fits in `bytes.len()`.
                bytes = &bytes[usize::try_from(n).unwrap_or(bytes.len())..];
                continue;
            }
            if matches!(
                self.state,
                State::StatusLine | State::Headers | State::Trailers
            ) {
                bytes = self.head_bytes(bytes);
                continue;
            }
            let byte = bytes[0];
            bytes = &bytes[1..];
            if let Err(error) = self.byte(byte) {
                self.failed = Some(error);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Head (or trailer) bytes up to the end of the line they are in, read a line at a time
    /// (a byte at a time would cost most of a request's checking); returns the rest.
    fn head_bytes<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
            if self.line.len() + bytes.len() > MAX_LINE {
                self.stop();
            } else {
                self.line.extend_from_slice(bytes);
            }
            return &[];
        };
        let (part, rest) = (&bytes[..end], &bytes[end + 1..]);
        if self.line.is_empty() {
            // The whole line is in this read: no copy.
            self.head_line(strip_cr(part));
        } else if self.line.len() + part.len() > MAX_LINE {
            self.stop();
        } else {
            let mut line = core::mem::take(&mut self.line);
            line.extend_from_slice(part);
            self.head_line(strip_cr(&line));
            // Keeps the line's allocation for the next one.
            line.clear();
            self.line = line;
        }
        rest
    }

    /// One byte outside a body's data.
    fn byte(&mut self, byte: u8) -> Result<(), FramingError> {
        match self.state {
            State::ChunkSize { digits, size, at } => self.size_byte(byte, digits, size, at),
            State::ChunkDataEnd { cr: false } if byte == b'\r' => {
                self.state = State::ChunkDataEnd { cr: true };
                Ok(())
            }
            State::ChunkDataEnd { cr: true } if byte == b'\n' => {
                self.state = State::ChunkSize {
                    digits: 0,
                    size: 0,
                    at: SizeLine::Digits,
                };
                Ok(())
            }
            State::ChunkDataEnd { .. } => Err(FramingError::ChunkDataEnd),
            // Handled by `received` before a byte gets here.
            State::StatusLine
            | State::Headers
            | State::Trailers
            | State::Fixed(_)
            | State::ChunkData(_)
            | State::Unchecked => Ok(()),
        }
    }

    /// One byte of a chunk-size line.
    fn size_byte(
        &mut self,
        byte: u8,
        digits: u8,
        size: u64,
        at: SizeLine,
    ) -> Result<(), FramingError> {
        let next = |at| State::ChunkSize { digits, size, at };
        self.state = match (at, byte) {
            (SizeLine::Digits, _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(FramingError::ChunkSizeTooLong);
                }
                let digit = u64::from(char::from(byte).to_digit(16).unwrap_or(0));
                State::ChunkSize {
                    digits: digits + 1,
                    size: size << 4 | digit,
                    at: SizeLine::Digits,
                }
            }
            // Anything but a hex digit first: a sign, a space, nothing.
            (SizeLine::Digits, _) if digits == 0 => return Err(FramingError::ChunkSize(byte)),
            (SizeLine::Digits | SizeLine::Space, b' ' | b'\t') => next(SizeLine::Space),
            (SizeLine::Digits | SizeLine::Space, b';') => next(SizeLine::Extension),
            (SizeLine::Digits | SizeLine::Space | SizeLine::Extension, b'\r') => next(SizeLine::Cr),
            (_, b'\n') if at != SizeLine::Cr => return Err(FramingError::ChunkLineEnd),
            (SizeLine::Extension, _) => next(SizeLine::Extension),
            (SizeLine::Cr, b'\n') if size == 0 => State::Trailers,
            (SizeLine::Cr, b'\n') => State::ChunkData(size),
            (SizeLine::Cr, _) => return Err(FramingError::ChunkLineEnd),
            (_, other) => return Err(FramingError::ChunkSize(other)),
        };
        Ok(())
    }

    /// A whole head (or trailer) line, without its line end.
    fn head_line(&mut self, line: &[u8]) {
        match self.state {
            State::StatusLine => {
                // "HTTP/1.1 200 OK": the status is the three digits after the first space.
                let space = if line.starts_with(b"HTTP/1.") {
                    Some(8)
                } else {
                    line.iter().position(|&b| b == b' ')
                };
                let status = space
                    .filter(|&space| line.get(space) == Some(&b' '))
                    .and_then(|space| line.get(space + 1..space + 4))
                    .filter(|digits| digits.iter().all(u8::is_ascii_digit))
                    .map(|d| d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')));
                match status {
                    Some(status) => {
                        self.head = HeadSoFar {
                            status,
                            ..HeadSoFar::default()
                        };
                        self.state = State::Headers;
                    }
                    // Not a status line the check can follow: the parser decides.
                    None => self.stop(),
                }
            }
            State::Headers if line.is_empty() => self.head_ended(),
            State::Headers => self.header(line),
            State::Trailers if line.is_empty() => self.message_ended(),
            _ => {}
        }
    }

    /// A header line: only the ones that frame the body matter.
    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &line[..colon];
        // Most names are neither: their length says so without comparing them.
        if name.len() != 14 && name.len() != 17 {
            return;
        }
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            if let Some(n) = parse_decimal(value) {
                // One number, as good as always.
                match self.head.length {
                    Some(seen) if seen != n => self.head.bad_length = true,
                    _ => self.head.length = Some(n),
                }
                return;
            }
            for part in value.split(|&b| b == b',').map(trim) {
                let n = parse_decimal(part);
                match (n, self.head.length) {
                    (Some(n), Some(seen)) if n != seen => self.head.bad_length = true,
                    (Some(n), _) => self.head.length = Some(n),
                    (None, _) => self.head.bad_length = true,
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.transfer_encoding = true;
            if let Some(last) = value.split(|&b| b == b',').map(trim).next_back() {
                self.head.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    /// The empty line after the headers: what follows is a body, framed by the head, or the
    /// next response.
    fn head_ended(&mut self) {
        let head = self.head;
        self.state = match head.status {
            // A protocol switch: what follows is not HTTP/1.
            101 => State::Unchecked,
            // An interim response: the final one follows.
            100..=199 => State::StatusLine,
            _ if self.asked == Asked::Head || matches!(head.status, 204 | 304) => {
                self.message_ended();
                return;
            }
            200..=299 if self.asked == Asked::Connect => State::Unchecked,
            _ if head.transfer_encoding && head.chunked => State::ChunkSize {
                digits: 0,
                size: 0,
                at: SizeLine::Digits,
            },
            // Another coding last, or a length the parser must refuse: read to the close.
            _ if head.transfer_encoding || head.bad_length => State::Unchecked,
            _ => match head.length {
                Some(0) => {
                    self.message_ended();
                    return;
                }
                Some(n) => State::Fixed(n),
                None => State::Unchecked,
            },
        };
    }

    /// The response ended: the next request begins.
    fn message_ended(&mut self) {
        self.state = State::StatusLine;
        self.request_start = true;
        self.asked = Asked::Other;
    }

    /// Stops checking this connection.
    fn stop(&mut self) {
        self.state = State::Unchecked;
        self.line = Vec::new();
    }
}

/// A line without the CR before its LF (RFC 9112 2.2 lets a recipient take a bare LF too).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `bytes` without the spaces and tabs around them.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// A decimal number of digits only (no sign, no space), if it fits a `u64`.
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}
