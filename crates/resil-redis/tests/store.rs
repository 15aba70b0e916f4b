//! The sync script on a real Redis (one `redis-server` for this test binary; every test a
//! fleet name of its own): the same answers as resil-core's `MemoryStore`, garbage repaired,
//! fleets apart, every key expiring.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::Duration;

use resil_core::rand::SplitMix64;
use resil_core::{BudgetRule, FleetBatch, FleetReply, LeaseAnswer, LeaseRequest, MemoryStore};
use resil_redis::RedisFleet;
use resil_tests::RedisServer;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A fleet on the test clock: the script reads the time from the fleet's `clock` key.
fn fleet(name: &str) -> RedisFleet {
    RedisFleet::builder(&server().url(), name)
        .test_clock(true)
        .build()
        .unwrap()
}

fn at(fleet: &RedisFleet, now_ms: u64, batch: &FleetBatch) -> FleetReply {
    let clock = format!("resil:{{{}}}:clock", fleet.name());
    server()
        .command(&["SET", &clock, &now_ms.to_string()])
        .unwrap();
    fleet.exchange(batch).unwrap()
}

fn batch(node: u64) -> FleetBatch {
    let mut b = FleetBatch::default();
    b.node = node;
    b.window = Duration::from_secs(10);
    b.keep = Duration::from_secs(20);
    b
}

#[test]
fn the_script_answers_as_the_reference_model_does() {
    if !resil_tests::redis_available() {
        return;
    }
    let f = fleet("differential");
    let mut model = MemoryStore::new();
    let mut rng = SplitMix64(7);
    let mut next = move |n: u64| rng.next_value() % n;
    let mut now = 1_000_000u64;
    for step in 0..1500 {
        now += match next(20) {
            0 => 25_000, // past `keep`: everything but an open or a lease lapses
            1..=4 => 0,
            _ => next(1500),
        };
        let mut b = batch(1 + next(4));
        b.calls = next(50) as u32;
        b.failures = next(u64::from(b.calls) + 1) as u32;
        b.successes = b.calls - b.failures;
        b.trailing_failures = if b.successes > 0 {
            next(u64::from(b.failures) + 1) as u32
        } else {
            b.failures
        };
        b.failing = next(2) == 0;
        if next(12) == 0 {
            b.announce_open = Some(Duration::from_millis(1 + next(5000)));
        }
        b.lease = match next(6) {
            0 => LeaseRequest::Acquire {
                token: 1 + next(3),
                ttl: Duration::from_millis(1 + next(4000)),
            },
            1 => LeaseRequest::Release {
                token: 1 + next(3),
                passed: next(2) == 0,
            },
            _ => LeaseRequest::None,
        };
        if next(3) > 0 {
            b.budget = Some(BudgetRule {
                ratio_ppm: 200_000,
                reserve_micro: 100_000_000,
                window: Duration::from_secs(10),
            });
            b.deposits = next(40) as u32;
            b.want_retries = next(20) as u32;
        }
        let want = model.exchange(now, &b);
        let got = at(&f, now, &b);
        assert_eq!(got, want, "step {step} at {now}: {b:?}");
    }
}

#[test]
fn garbage_under_any_key_is_replaced_and_said_once() {
    if !resil_tests::redis_available() {
        return;
    }
    let f = fleet("garbage");
    let key = |k: &str| format!("resil:{{garbage}}:{k}");
    let mut b = batch(1);
    b.calls = 3;
    b.failures = 3;
    let clean = at(&f, 10_000, &b);
    assert!(!clean.repaired);
    let s = server();
    for (cmd, args) in [
        ("SET", vec![key("window"), "garbage".into()]),
        (
            "HSET",
            vec![key("window"), "c3".into(), "not a number".into()],
        ),
        ("SET", vec![key("open"), "???".into()]),
        ("SET", vec![key("generation"), "-5".into()]),
        ("LPUSH", vec![key("lease"), "x".into()]),
        ("SET", vec![key("nodes"), "1".into()]),
        ("HSET", vec![key("budget"), "w1".into(), "1.5".into()]),
    ] {
        let mut full = vec![cmd];
        full.extend(args.iter().map(String::as_str));
        s.command(&full).unwrap();
        let mut b = batch(1);
        b.budget = Some(BudgetRule {
            ratio_ppm: 200_000,
            reserve_micro: 0,
            window: Duration::from_secs(10),
        });
        let r = at(&f, 11_000, &b);
        assert!(r.repaired, "{full:?} was not noticed");
        assert!(!at(&f, 11_000, &b).repaired, "{full:?} was not replaced");
    }
}

#[test]
fn two_fleets_with_different_names_do_not_meet() {
    if !resil_tests::redis_available() {
        return;
    }
    let (a, b) = (fleet("orders"), fleet("payments"));
    let mut open = batch(1);
    open.announce_open = Some(Duration::from_secs(5));
    open.calls = 10;
    open.failures = 10;
    let ra = at(&a, 50_000, &open);
    assert!(ra.open.is_some());
    let mut quiet = batch(2);
    quiet.calls = 4;
    let rb = at(&b, 50_000, &quiet);
    assert_eq!(rb.open, None);
    assert_eq!((rb.calls, rb.failures, rb.nodes), (4, 0, 1));
    let mut ask = batch(2);
    ask.lease = LeaseRequest::Acquire {
        token: 9,
        ttl: Duration::from_secs(1),
    };
    assert_eq!(at(&b, 50_001, &ask).lease, LeaseAnswer::Granted);
}

#[test]
fn every_key_expires_and_shares_one_hash_slot() {
    if !resil_tests::redis_available() {
        return;
    }
    let f = fleet("expiring");
    let mut b = batch(1);
    b.calls = 5;
    b.failures = 5;
    b.failing = true;
    b.budget = Some(BudgetRule {
        ratio_ppm: 200_000,
        reserve_micro: 1_000_000,
        window: Duration::from_secs(10),
    });
    b.want_retries = 1;
    at(&f, 70_000, &b);
    let mut b = batch(2);
    b.announce_open = Some(Duration::from_secs(3));
    at(&f, 70_000, &b);
    let mut b = batch(3);
    b.lease = LeaseRequest::Acquire {
        token: 5,
        ttl: Duration::from_secs(60),
    };
    at(&f, 80_000, &b);
    for key in f.keys() {
        assert!(key.starts_with("resil:{expiring}:"), "{key}");
        if key.ends_with(":clock") {
            continue;
        }
        let ttl = server().command(&["PTTL", &key]).unwrap();
        // -2: not there (the run's failures were reset by the open); never -1 (no TTL).
        assert_ne!(ttl, ":-1", "{key} never expires");
    }
}

#[test]
fn the_store_clock_is_redis_time_without_the_test_clock() {
    if !resil_tests::redis_available() {
        return;
    }
    let f = RedisFleet::new(&server().url(), "real-clock").unwrap();
    let mut b = batch(1);
    b.announce_open = Some(Duration::from_secs(2));
    let r = f.exchange(&b).unwrap();
    let open = r.open.unwrap();
    assert!(open.remaining <= Duration::from_secs(2) && open.remaining > Duration::from_secs(1));
    // The generation starts from Redis's own time in milliseconds.
    assert!(open.generation > 1_600_000_000_000, "{}", open.generation);
}

#[test]
fn bad_settings_are_named_without_the_password() {
    let e = RedisFleet::new("http://user:hunter2@cache:6379", "x").unwrap_err();
    assert!(e.to_string().contains("redis://"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    for name in ["", "a{b}", "has space", &"x".repeat(101)] {
        let e = RedisFleet::new("redis://127.0.0.1", name).unwrap_err();
        assert!(e.to_string().contains("fleet name"), "{e}");
    }
    let f = RedisFleet::new("redis://user:hunter2@127.0.0.1:1/0", "x").unwrap();
    assert!(!format!("{f:?}").contains("hunter2"));
    let e = f.exchange(&batch(1)).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("[redacted]@127.0.0.1:1"), "{e}");
    #[cfg(not(feature = "tls"))]
    {
        let e = RedisFleet::new("rediss://127.0.0.1", "x").unwrap_err();
        assert!(e.to_string().contains("tls"), "{e}");
    }
}

#[test]
fn a_wrong_password_is_refused_without_showing_it() {
    if !resil_tests::redis_available() {
        return;
    }
    let s = RedisServer::start();
    s.command(&["CONFIG", "SET", "requirepass", "right-one"])
        .unwrap();
    let url = format!("redis://:wrong-one@127.0.0.1:{}/0", s.addr().port());
    let f = RedisFleet::new(&url, "auth").unwrap();
    let e = f.exchange(&batch(1)).unwrap_err().to_string();
    assert!(!e.contains("wrong-one") && !e.contains("right-one"), "{e}");
    let url = format!("redis://:right-one@127.0.0.1:{}/0", s.addr().port());
    let f = RedisFleet::new(&url, "auth").unwrap();
    assert!(f.exchange(&batch(1)).is_ok());
}
