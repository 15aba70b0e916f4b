//! The HTTP/1.1 framing check under any bytes: never a panic, and the same verdict however
//! the connection splits what it receives (whole, byte by byte, or with the body bytes it
//! may skip passed unseen).
#![no_main]

use libfuzzer_sys::fuzz_target;
use resil_core::Http1Framing;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the request's method; the rest is the response stream.
    let Some((&method, received)) = data.split_first() else {
        return;
    };
    let request: &[u8] = match method % 3 {
        0 => b"GET / HTTP/1.1\r\n\r\n",
        1 => b"HEAD / HTTP/1.1\r\n\r\n",
        _ => b"CONNECT a:1 HTTP/1.1\r\n\r\n",
    };
    let fresh = || {
        let mut framing = Http1Framing::new();
        framing.sent(request);
        framing
    };
    let mut whole = fresh();
    let verdict = whole.received(received);

    let mut bytewise = fresh();
    let mut bytewise_verdict = Ok(());
    for byte in received {
        bytewise_verdict = bytewise.received(core::slice::from_ref(byte));
        if bytewise_verdict.is_err() {
            break;
        }
    }
    assert_eq!(verdict, bytewise_verdict);

    let mut skipping = fresh();
    let mut rest = received;
    let mut skipping_verdict = Ok(());
    while !rest.is_empty() && skipping_verdict.is_ok() {
        let ahead = usize::try_from(skipping.body_ahead()).unwrap_or(usize::MAX);
        if ahead > 0 {
            let n = ahead.min(rest.len());
            skipping.skip(n as u64);
            rest = &rest[n..];
        } else {
            let n = 7.min(rest.len());
            skipping_verdict = skipping.received(&rest[..n]);
            rest = &rest[n..];
        }
    }
    assert_eq!(verdict, skipping_verdict);
});
