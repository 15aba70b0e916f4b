//! The redirect decision, case by case: what is followed, how, and what ends the call.

use resil_core::{
    Hop, Method, RedirectDecision, RedirectInput, RedirectPolicy, RedirectRefusal, RedirectTarget,
};

fn same_origin() -> RedirectTarget {
    RedirectTarget::Http {
        https: false,
        same_origin: true,
        seen: false,
    }
}

fn input(status: u16, method: Method) -> RedirectInput {
    RedirectInput {
        status,
        method,
        from_https: false,
        target: same_origin(),
        hops: 0,
        body_replayable: true,
    }
}

fn follows(to_get: bool, strip_credentials: bool) -> RedirectDecision {
    RedirectDecision::Follow(Hop {
        to_get,
        strip_credentials,
    })
}

#[test]
fn methods_and_bodies_follow_rfc_9110_and_the_browsers() {
    let policy = RedirectPolicy::default();
    let cases = [
        (303, Method::Post, follows(true, false)),
        (303, Method::Put, follows(true, false)),
        (303, Method::Get, follows(true, false)),
        (303, Method::Head, follows(false, false)),
        (301, Method::Post, follows(true, false)),
        (302, Method::Post, follows(true, false)),
        (301, Method::Put, follows(false, false)),
        (302, Method::Get, follows(false, false)),
        (307, Method::Post, follows(false, false)),
        (308, Method::Patch, follows(false, false)),
        (300, Method::Get, RedirectDecision::Return),
        (304, Method::Get, RedirectDecision::Return),
        (305, Method::Get, RedirectDecision::Return),
        (306, Method::Get, RedirectDecision::Return),
        (200, Method::Get, RedirectDecision::Return),
    ];
    for (status, method, expected) in cases {
        assert_eq!(
            policy.decide(&input(status, method)),
            expected,
            "{status} {method:?}"
        );
    }
}

#[test]
fn a_body_that_cannot_be_sent_again_returns_the_3xx_unless_the_hop_drops_it() {
    let policy = RedirectPolicy::default();
    for (status, method, expected) in [
        (307, Method::Post, RedirectDecision::Return),
        (308, Method::Put, RedirectDecision::Return),
        (301, Method::Put, RedirectDecision::Return),
        (303, Method::Post, follows(true, false)),
        (302, Method::Post, follows(true, false)),
    ] {
        let streamed = RedirectInput {
            body_replayable: false,
            ..input(status, method)
        };
        assert_eq!(policy.decide(&streamed), expected, "{status} {method:?}");
    }
}

#[test]
fn credentials_are_dropped_on_any_hop_to_another_origin() {
    let to = |https, same_origin| RedirectInput {
        target: RedirectTarget::Http {
            https,
            same_origin,
            seen: false,
        },
        ..input(302, Method::Get)
    };
    let policy = RedirectPolicy::default();
    assert_eq!(policy.decide(&to(false, false)), follows(false, true));
    assert_eq!(policy.decide(&to(false, true)), follows(false, false));
    assert_eq!(
        policy.decide(&to(true, false)),
        follows(false, true),
        "up to https"
    );
}

#[test]
fn what_ends_the_call_and_what_returns_the_3xx() {
    let policy = RedirectPolicy::default();
    let with = |target| RedirectInput {
        target,
        ..input(302, Method::Get)
    };
    assert_eq!(
        policy.decide(&with(RedirectTarget::Missing)),
        RedirectDecision::Return
    );
    assert_eq!(
        policy.decide(&with(RedirectTarget::Invalid)),
        RedirectDecision::Fail(RedirectRefusal::InvalidLocation)
    );
    assert_eq!(
        policy.decide(&with(RedirectTarget::UnsupportedScheme)),
        RedirectDecision::Fail(RedirectRefusal::UnsupportedScheme)
    );
    let visited = RedirectTarget::Http {
        https: false,
        same_origin: false,
        seen: true,
    };
    assert_eq!(
        policy.decide(&with(visited)),
        RedirectDecision::Fail(RedirectRefusal::Loop)
    );
    let tenth = RedirectInput {
        hops: 9,
        ..input(302, Method::Get)
    };
    assert_eq!(policy.decide(&tenth), follows(false, false));
    let eleventh = RedirectInput {
        hops: 10,
        ..input(302, Method::Get)
    };
    assert_eq!(
        policy.decide(&eleventh),
        RedirectDecision::Fail(RedirectRefusal::TooManyHops { max: 10 })
    );
}

#[test]
fn https_to_http_only_when_allowed() {
    let down = RedirectInput {
        from_https: true,
        ..input(302, Method::Get)
    };
    assert_eq!(
        RedirectPolicy::default().decide(&down),
        RedirectDecision::Fail(RedirectRefusal::Downgrade)
    );
    let allowed = RedirectPolicy::default().allow_https_to_http(true);
    assert_eq!(allowed.decide(&down), follows(false, false));
}

#[test]
fn off_means_every_3xx_is_the_answer() {
    for status in [301, 302, 303, 307, 308] {
        assert_eq!(
            RedirectPolicy::none().decide(&input(status, Method::Post)),
            RedirectDecision::Return
        );
    }
    assert!(RedirectPolicy::follow(51).check().is_err());
    assert!(RedirectPolicy::follow(50).check().is_ok());
}
