//! The redirect decision under every input: never a panic, and never a hop the rules forbid
//! (past the limit, https to http unless allowed, a visited target, credentials kept on the
//! way to another origin, a body sent again that cannot be, a method changed by 307/308).
#![no_main]

use libfuzzer_sys::fuzz_target;
use resil_core::{
    Method, RedirectDecision, RedirectInput, RedirectPolicy, RedirectRefusal, RedirectTarget,
};

const METHODS: [Method; 10] = [
    Method::Get,
    Method::Head,
    Method::Options,
    Method::Trace,
    Method::Put,
    Method::Delete,
    Method::Post,
    Method::Patch,
    Method::Connect,
    Method::Other,
];

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied().chain(core::iter::repeat(0));
    let mut next = move || bytes.next().unwrap_or(0);
    let max_hops = u32::from(next() % 60);
    let allow_downgrade = next() & 1 == 1;
    let policy = RedirectPolicy::follow(max_hops).allow_https_to_http(allow_downgrade);
    let target = match next() % 4 {
        0 => RedirectTarget::Missing,
        1 => RedirectTarget::Invalid,
        2 => RedirectTarget::UnsupportedScheme,
        _ => RedirectTarget::Http {
            https: next() & 1 == 1,
            same_origin: next() & 1 == 1,
            seen: next() & 1 == 1,
        },
    };
    let input = RedirectInput {
        status: u16::from_le_bytes([next(), next()]) % 1000,
        method: METHODS[usize::from(next()) % METHODS.len()],
        from_https: next() & 1 == 1,
        target,
        hops: u32::from(next()),
        body_replayable: next() & 1 == 1,
    };
    let decision = policy.decide(&input);
    if policy.check().is_err() {
        return;
    }
    let RedirectDecision::Follow(hop) = decision else {
        if let RedirectDecision::Fail(RedirectRefusal::TooManyHops { max }) = decision {
            assert!(input.hops >= max, "{input:?}");
        }
        return;
    };
    let RedirectTarget::Http {
        https,
        same_origin,
        seen,
    } = input.target
    else {
        panic!("followed a target that is no http(s) URL: {input:?}");
    };
    assert!(
        matches!(input.status, 301 | 302 | 303 | 307 | 308),
        "{input:?}"
    );
    assert!(input.hops < max_hops, "past the limit: {input:?}");
    assert!(!seen, "a loop: {input:?}");
    assert!(
        https || !input.from_https || allow_downgrade,
        "a downgrade: {input:?}"
    );
    assert!(
        same_origin || hop.strip_credentials,
        "credentials kept: {input:?}"
    );
    if matches!(input.status, 307 | 308) {
        assert!(!hop.to_get, "307/308 keep the method: {input:?}");
    }
    if !hop.to_get {
        assert!(
            input.body_replayable,
            "a body sent again that cannot be: {input:?}"
        );
    }
});
