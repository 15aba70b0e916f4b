//! `RateLimit`, `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-12) and
//! `X-RateLimit-*` parsing: what is read, and every way a value is ignored.

use core::time::Duration;

use resil_core::{
    QuotaUnit, RateLimitField, RateLimitPolicyField, ServerQuota, ServiceLimit, UnixTime,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn service_limits_are_read_with_their_parameters() {
    let field = RateLimitField::parse(
        br#""default";r=50;t=30, "daily";r=999;pk=:dHJpYWwxMjEzMjM=:;acme-note="x""#,
    )
    .expect("valid");
    let limits: Vec<_> = field.iter().collect();
    assert_eq!(
        limits,
        [
            ServiceLimit {
                policy: "default",
                remaining: 50,
                reset: Some(secs(30)),
                partition_key: None,
            },
            ServiceLimit {
                policy: "daily",
                remaining: 999,
                reset: None,
                partition_key: Some("dHJpYWwxMjEzMjM="),
            },
        ]
    );
}

#[test]
fn policies_are_read_with_their_unit_and_window() {
    let field = RateLimitPolicyField::parse(
        br#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:, "burst";q=100"#,
    )
    .expect("valid");
    let policies: Vec<_> = field
        .iter()
        .map(|p| (p.policy, p.quota, p.unit, p.window))
        .collect();
    assert_eq!(
        policies,
        [
            ("peruser", 65535, QuotaUnit::ContentBytes, Some(secs(10))),
            ("burst", 100, QuotaUnit::Requests, None),
        ]
    );
}

#[test]
fn earlier_drafts_token_names_are_accepted() {
    let field = RateLimitField::parse(b"default;r=1;t=7").expect("a token names a policy too");
    assert_eq!(field.iter().next().map(|l| l.policy), Some("default"));
}

#[test]
fn malformed_fields_are_ignored_whole() {
    let ignored: &[&[u8]] = &[
        b"",
        b"   ",
        br#""a";t=30"#,                   // r is required
        br#""a";r=-1;t=30"#,              // negative
        br#""a";r=1.5;t=30"#,             // not an integer
        br#""a";r=5;t=-3"#,               // negative window
        br#""a";r="5";t=3"#,              // a string, not an integer
        br#""a";r=1234567890123456;t=1"#, // 16 digits: not a Structured Field integer
        br#""a";r=5;pk=abc"#,             // a partition key must be a byte sequence
        br#""a";r=5,"#,                   // trailing comma
        br#""a";r=5 "b";r=1"#,            // missing comma
        br#""a";r=5,"a";r=0"#,            // one policy twice: contradictory
        br#"("a" "b");r=5"#,              // an inner list
        br#""a;r=5"#,                     // an unterminated string
        br#""a";R=5"#,                    // keys are lowercase
        br#"5;r=5"#,                      // a number does not name a policy
        "\"a\";r=5;t=3\r\n".as_bytes(),   // CR LF inside
        "\"á\";r=5".as_bytes(),           // not ASCII
    ];
    for value in ignored {
        assert!(
            RateLimitField::parse(value).is_none(),
            "{:?} was accepted",
            String::from_utf8_lossy(value)
        );
    }
    assert!(
        RateLimitPolicyField::parse(br#""a";w=60"#).is_none(),
        "q is required"
    );
    assert!(
        RateLimitPolicyField::parse(br#""a";q=10;w=0"#).is_none(),
        "zero window"
    );
    assert!(
        RateLimitPolicyField::parse(br#""a";q=10;qu=requests"#).is_none(),
        "qu is a string"
    );
}

#[test]
fn a_field_with_absurdly_many_items_is_ignored() {
    let many: Vec<String> = (0..65).map(|i| format!("p{i};r=1;t=1")).collect();
    assert!(RateLimitField::parse(many.join(",").as_bytes()).is_none());
    assert!(RateLimitField::parse(many[..64].join(",").as_bytes()).is_some());
}

#[test]
fn enormous_numbers_are_kept_for_the_pacer_to_bound() {
    let field = RateLimitField::parse(br#""a";r=999999999999999;t=999999999999999"#).unwrap();
    let limit = field.iter().next().unwrap();
    assert_eq!(limit.remaining, 999_999_999_999_999);
    assert_eq!(limit.reset, Some(secs(999_999_999_999_999)));
}

fn quota(rate_limit: &[u8], policy: Option<&[u8]>) -> Option<ServerQuota> {
    let policies = policy.and_then(RateLimitPolicyField::parse);
    ServerQuota::from_fields(RateLimitField::parse(rate_limit)?, policies)
}

#[test]
fn the_binding_limit_is_the_longest_exhausted_window_else_the_fewest_left() {
    assert_eq!(
        quota(br#""a";r=0;t=10,"b";r=0;t=40,"c";r=5;t=1"#, None),
        Some(ServerQuota {
            remaining: 0,
            reset: secs(40)
        })
    );
    assert_eq!(
        quota(br#""a";r=9;t=10,"b";r=3;t=40,"c";r=3;t=20"#, None),
        Some(ServerQuota {
            remaining: 3,
            reset: secs(40)
        })
    );
    assert_eq!(
        quota(br#""a";r=0"#, None),
        None,
        "no window: nothing to pace by"
    );
}

#[test]
fn a_limit_above_its_policys_quota_contradicts_it_and_neither_is_believed() {
    let policy: &[u8] = br#""a";q=100;w=60"#;
    assert_eq!(quota(br#""a";r=101;t=30"#, Some(policy)), None);
    assert_eq!(
        quota(br#""a";r=100;t=30"#, Some(policy)),
        Some(ServerQuota {
            remaining: 100,
            reset: secs(30)
        })
    );
}

#[test]
fn only_an_exhausted_quota_counts_when_its_unit_is_not_requests() {
    let policy: &[u8] = br#""bytes";q=65535;qu="content-bytes";w=10,"req";q=100;w=60"#;
    assert_eq!(
        quota(br#""bytes";r=10;t=5,"req";r=50;t=30"#, Some(policy)),
        Some(ServerQuota {
            remaining: 50,
            reset: secs(30)
        })
    );
    assert_eq!(
        quota(br#""bytes";r=0;t=5,"req";r=50;t=30"#, Some(policy)),
        Some(ServerQuota {
            remaining: 0,
            reset: secs(5)
        })
    );
}

#[test]
fn x_rate_limit_reset_is_seconds_or_a_unix_time() {
    let wall = Some(UnixTime(1_700_000_000));
    let read =
        |remaining: &[u8], reset: &[u8]| ServerQuota::from_x_rate_limit(remaining, reset, wall);
    assert_eq!(
        read(b"7", b"30"),
        Some(ServerQuota {
            remaining: 7,
            reset: secs(30)
        })
    );
    assert_eq!(
        read(b" 0 ", b"1.5"),
        Some(ServerQuota {
            remaining: 0,
            reset: Duration::from_millis(1500)
        })
    );
    assert_eq!(read(b"0", b"1700000090").map(|q| q.reset), Some(secs(90)));
    assert_eq!(
        read(b"0", b"1600000000").map(|q| q.reset),
        Some(Duration::ZERO),
        "past"
    );
    assert_eq!(
        ServerQuota::from_x_rate_limit(b"0", b"1700000090", None),
        None,
        "a Unix time needs the wall clock"
    );
    assert_eq!(
        read(b"99999999999999999999999", b"1").map(|q| q.remaining),
        Some(u64::MAX)
    );
    for (remaining, reset) in [
        (&b"-1"[..], &b"30"[..]),
        (b"1", b"-30"),
        (b"", b"30"),
        (b"1", b""),
        (b"1e3", b"30"),
        (b"1", b"30s"),
        (b"1", b"1."),
        (b"1", b".5"),
        (b"1", b"1.0000000001"),
    ] {
        assert_eq!(read(remaining, reset), None, "{remaining:?} {reset:?}");
    }
}

#[test]
fn the_standard_fields_win_over_the_older_ones_and_garbage_falls_back() {
    let both: [(&str, &[u8]); 3] = [
        ("RateLimit", br#""a";r=4;t=9"#),
        ("X-RateLimit-Remaining", b"0"),
        ("X-RateLimit-Reset", b"60"),
    ];
    assert_eq!(
        ServerQuota::from_headers(&both, None),
        Some(ServerQuota {
            remaining: 4,
            reset: secs(9)
        })
    );
    let garbage: [(&str, &[u8]); 3] = [
        ("RateLimit", b"a;r=;;"),
        ("X-RateLimit-Remaining", b"0"),
        ("X-RateLimit-Reset", b"60"),
    ];
    assert_eq!(
        ServerQuota::from_headers(&garbage, None),
        Some(ServerQuota {
            remaining: 0,
            reset: secs(60)
        })
    );
    let none: [(&str, &[u8]); 1] = [("Content-Type", b"text/plain")];
    assert_eq!(ServerQuota::from_headers(&none, None), None);
}
