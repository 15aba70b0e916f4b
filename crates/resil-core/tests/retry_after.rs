//! The `Retry-After` bad-input table and HTTP-date formats, through the public API and the
//! machine (garbage must fall back to the computed backoff).

mod common;

use core::time::Duration;

use common::{Reply, plain_policy, run};
use resil_core::{
    Action, GiveUpReason, Method, RequestInfo, RetryAfter, UnixTime, parse_http_date,
};

const SECS: fn(u64) -> Option<RetryAfter> = |s| Some(RetryAfter::Delay(Duration::from_secs(s)));

#[test]
fn bad_input_table() {
    let cases: &[(&[u8], Option<RetryAfter>)] = &[
        (b"120", SECS(120)),
        (b"  7\t", SECS(7)),
        (b"0", SECS(0)),
        (b"999999999", SECS(999_999_999)),
        // Too big for u64: huge, not zero and not an error.
        (b"1234567890123456789012345", SECS(u64::MAX)),
        (b"-5", None),
        (b"+5", None),
        (b"1.5", None),
        (b"5s", None),
        (b"", None),
        (b"   ", None),
        ("\u{0665}".as_bytes(), None), // ARABIC-INDIC DIGIT FIVE
        ("５".as_bytes(), None),       // FULLWIDTH DIGIT FIVE
        (b"5\r\n", None),
        (b"5\r\nSet-Cookie: x=1", None),
        (b"\n5", None),
        (b"0x10", None),
        (b"1e3", None),
        (
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            Some(RetryAfter::Date(UnixTime(784_111_777))),
        ),
        (
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            Some(RetryAfter::Date(UnixTime(784_111_777))),
        ),
        (
            b"Sun Nov  6 08:49:37 1994",
            Some(RetryAfter::Date(UnixTime(784_111_777))),
        ),
        (
            b"Fri, 31 Dec 9999 23:59:59 GMT",
            Some(RetryAfter::Date(UnixTime(253_402_300_799))),
        ),
        // Wrong weekday, impossible dates, wrong zone, lower case: ignored.
        (b"Mon, 06 Nov 1994 08:49:37 GMT", None),
        (b"Sun, 31 Feb 1994 08:49:37 GMT", None),
        (b"Sun, 06 Nov 1994 24:00:00 GMT", None),
        (b"Sun, 06 Nov 1994 08:49:37 UTC", None),
        (b"sun, 06 nov 1994 08:49:37 gmt", None),
        // Found by the differential fuzz target: httpdate accepts any byte between an RFC 850
        // date's year and time; RFC 9110 requires a space.
        (b"Sunday, 06-Nov-88_08:49:37 GMT", None),
        (
            b"Thu, 01 Jan 1970 00:00:00 GMT",
            Some(RetryAfter::Date(UnixTime(0))),
        ),
        (b"Wed, 31 Dec 1969 23:59:59 GMT", None),
    ];
    for (input, want) in cases {
        assert_eq!(
            RetryAfter::parse(input),
            *want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn leap_days_and_rfc850_century() {
    assert_eq!(
        parse_http_date(b"Thu, 29 Feb 2024 00:00:00 GMT"),
        Some(UnixTime(1_709_164_800))
    );
    assert_eq!(parse_http_date(b"Thu, 29 Feb 2023 00:00:00 GMT"), None);
    // Two-digit years below 70 are 20xx.
    assert_eq!(
        parse_http_date(b"Tuesday, 14-Nov-23 22:13:20 GMT"),
        Some(UnixTime(1_700_000_000))
    );
}

#[test]
fn two_retry_after_headers_must_agree() {
    let five: &[u8] = b"5";
    assert_eq!(RetryAfter::parse_all([five, five]), SECS(5));
    assert_eq!(RetryAfter::parse_all([five, b"6" as &[u8]]), None);
    assert_eq!(RetryAfter::parse_all([five, b"x" as &[u8]]), None);
    assert_eq!(RetryAfter::parse_all(std::iter::empty()), None);
}

#[test]
fn date_delay_is_relative_to_the_wall_clock_and_past_means_zero() {
    let at = RetryAfter::Date(UnixTime(1_000));
    assert_eq!(at.delay(Some(UnixTime(990))), Some(Duration::from_secs(10)));
    assert_eq!(at.delay(Some(UnixTime(5_000))), Some(Duration::ZERO));
    assert_eq!(at.delay(None), None);
}

/// Garbage is ignored by the machine: the computed 100 ms backoff is used instead.
#[test]
fn machine_falls_back_to_backoff_on_garbage() {
    let policy = plain_policy().build().unwrap();
    for garbage in [
        "-5",
        "+5",
        "1.5",
        "5s",
        "",
        "5\r\n",
        "Mon, 06 Nov 1994 08:49:37 GMT",
    ] {
        let out = run(
            &policy,
            RequestInfo::new(Method::Get),
            &[Reply::RetryAfter(503, garbage), Reply::Status(200)],
        );
        assert!(
            out.lines.iter().any(|l| l.ends_with("sleep until 110ms")),
            "{garbage:?}: {:#?}",
            out.lines
        );
    }
}

#[test]
fn machine_past_date_waits_the_backoff_and_far_date_gives_up() {
    let policy = plain_policy().build().unwrap();
    let past = [
        Reply::RetryAfter(503, "Sun, 06 Nov 1994 08:49:37 GMT"),
        Reply::Status(200),
    ];
    let out = run(&policy, RequestInfo::new(Method::Get), &past);
    // A past date asks for no wait: the backoff (100 ms) is the floor's other side.
    assert!(
        out.lines.iter().any(|l| l.ends_with("sleep until 110ms")),
        "{:#?}",
        out.lines
    );
    assert!(matches!(out.last, Action::Done { .. }));
    let exact = plain_policy().retry_after_exact(true).build().unwrap();
    let out = run(&exact, RequestInfo::new(Method::Get), &past);
    assert!(
        !out.lines.iter().any(|l| l.contains("sleep")),
        "exactly what the server said: at once: {:#?}",
        out.lines
    );

    for far in [
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "1234567890123456789012345",
        "999999999",
    ] {
        let out = run(
            &policy,
            RequestInfo::new(Method::Get),
            &[Reply::RetryAfter(503, far)],
        );
        match out.last {
            Action::Fail(g) => assert!(
                matches!(g.reason, GiveUpReason::RetryAfterTooLong { .. }),
                "{far}: {g}"
            ),
            other => panic!("{far}: {other:?}"),
        }
    }
}

/// With spread, the wait lands in [d, 1.1·d], never below what the server asked.
#[test]
fn spread_goes_above_the_servers_ask_only() {
    let policy = resil_core::RetryPolicy::builder().build().unwrap();
    for seed in 0..200 {
        let mut m = resil_core::RetryMachine::new(
            &policy,
            RequestInfo::new(Method::Get),
            resil_core::Instant::ZERO,
            seed,
        );
        let out = common::drive(
            &mut m,
            resil_core::Instant::ZERO,
            &[Reply::RetryAfter(503, "10")],
        );
        let sleep = out
            .lines
            .iter()
            .find_map(|l| l.split("sleep until ").nth(1).map(str::to_owned))
            .expect("a sleep");
        let until: f64 = sleep.trim_end_matches("ms").parse().unwrap();
        assert!(
            (10_010.0..=11_010.0).contains(&until),
            "seed {seed}: {until}"
        );
    }
}

#[test]
fn retry_after_zero_on_every_503_cannot_make_a_tight_loop() {
    // The report: every 503 said `Retry-After: 0`, and four attempts went in ~5 ms.
    let policy = plain_policy().max_attempts(4).build().unwrap();
    let zero = || Reply::RetryAfter(503, "0");
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[zero(), zero(), zero(), zero()],
    );
    let sleeps: Vec<_> = out
        .lines
        .iter()
        .filter(|l| l.contains("sleep until"))
        .collect();
    assert_eq!(sleeps.len(), 3, "{:#?}", out.lines);
    assert!(
        out.lines.iter().all(|l| !l.contains("in 0ns")),
        "every wait is at least the backoff: {:#?}",
        out.lines
    );
}

#[test]
fn a_retry_after_longer_than_the_backoff_is_waited_with_its_spread_above_it() {
    let policy = plain_policy().retry_after_spread(0.0).build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(503, "2"), Reply::Status(200)],
    );
    assert!(
        out.lines.iter().any(|l| l.ends_with("sleep until 2010ms")),
        "{:#?}",
        out.lines
    );
}
