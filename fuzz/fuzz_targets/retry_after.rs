//! `Retry-After` and HTTP-date parsing: never a panic, and dates agree with the `httpdate`
//! crate on every input both are meant to judge alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resil_core::{RetryAfter, parse_http_date};

fuzz_target!(|data: &[u8]| {
    let parsed = RetryAfter::parse(data);
    if let Some(RetryAfter::Delay(_)) = parsed {
        let trimmed = data.iter().filter(|b| !matches!(b, b' ' | b'\t'));
        assert!(
            trimmed.clone().all(u8::is_ascii_digit),
            "only digits make a delay"
        );
    }
    // httpdate trims every ASCII whitespace; resil only SP and HTAB (CR/LF in a header value
    // is an injection, not whitespace). Compare where the two rules coincide.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if data
        .iter()
        .any(|b| matches!(b, b'\n' | b'\r' | 0x0b | 0x0c))
    {
        return;
    }
    let ours = parse_http_date(data).map(|t| t.0);
    let theirs = httpdate::parse_http_date(text).ok().map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    if ours.is_none() && theirs.is_some() {
        // httpdate's RFC 850 parser does not check the byte between year and time; RFC 9110
        // requires a space there, so resil rejects what httpdate lets through. Any other
        // disagreement is a bug, so check that this is the only difference.
        if let Some(fixed) = rfc850_with_space_restored(text) {
            assert_eq!(
                parse_http_date(fixed.as_bytes()).map(|t| t.0),
                theirs,
                "input {text:?}"
            );
            return;
        }
    }
    assert_eq!(ours, theirs, "input {text:?}");
});

/// `text` with the year/time separator of an RFC 850 date set to a space, if it had another
/// byte there.
fn rfc850_with_space_restored(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let comma = trimmed.find(", ")?;
    let separator = comma + 11;
    let bytes = trimmed.as_bytes();
    if bytes.get(separator).is_none_or(|&b| b == b' ') {
        return None;
    }
    let mut fixed = trimmed.as_bytes().to_vec();
    fixed[separator] = b' ';
    String::from_utf8(fixed).ok()
}
