//! A hedging retry machine under arbitrary settings and arbitrary answers, in any order, at
//! any time: never a panic, never more attempts out than allowed or in all than
//! `max_attempts`, a cancel only for an attempt still out, the winner one that was sent, and
//! nothing sent once the call ended.
#![no_main]

use core::time::Duration;
use std::sync::Mutex;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{
    Action, Attempt, Hedging, Input, Instant, LatencySketch, Method, RequestInfo, ResponseHead,
    RetryAfter, RetryMachine, RetryPolicy, TransportErrorKind,
};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let delay = Duration::from_millis(u.int_in_range(1..=500u64).unwrap_or(10));
    let hedging = if bool::arbitrary(&mut u).unwrap_or(false) {
        Hedging::fixed(delay)
    } else {
        Hedging::adaptive().fallback(delay)
    };
    let in_flight_limit = u.int_in_range(2..=4u8).unwrap_or(2);
    let Ok(policy) = RetryPolicy::builder()
        .max_attempts(u.int_in_range(1..=8u32).unwrap_or(4))
        .attempt_timeout(Some(Duration::from_millis(
            u.int_in_range(1..=2_000u64).unwrap_or(100),
        )))
        .hedge(hedging.max_in_flight(in_flight_limit))
        .build()
    else {
        return;
    };
    let sketch = Mutex::new(
        LatencySketch::builder()
            .min_samples(u.int_in_range(1..=50u32).unwrap_or(20))
            .build()
            .unwrap_or_else(|_| unreachable!("a valid sketch")),
    );
    let mut now = Instant::from_nanos(u.int_in_range(0..=1u64 << 40).unwrap_or(0));
    let mut m =
        RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, 7).with_latency(&sketch);
    // Attempts out, with their deadlines; those whose deadline passed (a call that is not
    // hedging at that moment ends them without a cancel, a hedging one cancels them).
    let mut out: Vec<(Attempt, Instant)> = Vec::new();
    let mut expired: Vec<Attempt> = Vec::new();
    let mut clock = now;
    let mut sent = 0u32;
    let mut ended = false;
    for _ in 0..128 {
        let action = m.poll_action();
        while m.poll_event().is_some() {}
        match action {
            Action::Send { attempt, deadline } => {
                assert!(!ended, "sent after the call ended");
                sent += 1;
                assert_eq!(attempt.number(), sent);
                assert!(sent <= policy.max_attempts(), "more attempts than allowed");
                out.push((attempt, deadline));
                assert!(
                    out.len() <= usize::from(in_flight_limit),
                    "too many out at once"
                );
            }
            Action::Cancel { attempt } => {
                let known = out.iter().any(|(a, _)| *a == attempt) || expired.contains(&attempt);
                assert!(known, "cancelled {attempt}, which is not out");
                out.retain(|(a, _)| *a != attempt);
            }
            Action::Done { attempt } => {
                assert!(attempt.number() >= 1 && attempt.number() <= sent);
                ended = true;
            }
            Action::Fail(_) => ended = true,
            Action::Sleep { .. } => {}
        }
        if ended && out.is_empty() && bool::arbitrary(&mut u).unwrap_or(true) {
            return;
        }
        // Time moves on (or back); an answer for any attempt, a timer, or nothing.
        let step = Duration::from_millis(u.int_in_range(0..=300u64).unwrap_or(0));
        now = if u.ratio(1u8, 16).unwrap_or(false) {
            Instant::from_nanos(now.as_nanos().saturating_sub(step.as_nanos() as u64))
        } else {
            now + step
        };
        clock = clock.max(now);
        let pick = u.int_in_range(0..=sent + 1).unwrap_or(0).max(1);
        let attempt = Attempt::new(pick);
        match u.int_in_range(0..=3u8).unwrap_or(3) {
            0 => {
                let status = *u.choose(&[200u16, 404, 429, 500, 503]).unwrap_or(&200);
                let raw: &[u8] = if bool::arbitrary(&mut u).unwrap_or(false) {
                    b"1"
                } else {
                    b""
                };
                let head = ResponseHead::new(status).with_retry_after(RetryAfter::parse(raw), None);
                m.handle_input(now, Input::Response { attempt, head });
                out.retain(|(a, _)| *a != attempt);
            }
            1 => {
                let kind = *u
                    .choose(&[
                        TransportErrorKind::Reset,
                        TransportErrorKind::Timeout,
                        TransportErrorKind::Connect,
                        TransportErrorKind::TlsHandshake,
                    ])
                    .unwrap_or(&TransportErrorKind::Reset);
                m.handle_input(now, Input::Error { attempt, kind });
                out.retain(|(a, _)| *a != attempt);
            }
            _ => {
                m.handle_input(now, Input::Timer);
                for (a, deadline) in &out {
                    if clock >= *deadline {
                        expired.push(*a);
                    }
                }
                out.retain(|(_, deadline)| clock < *deadline);
            }
        }
    }
});
