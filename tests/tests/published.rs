//! Published results, reproduced with resil-sim driving resil-core's real machines on a fake
//! clock. Each runs in milliseconds of real time.

use std::time::Duration;

use resil_core::{Backoff, CircuitBreaker, Jitter, RetryBudget, RetryPolicy, TripCondition};
use resil_sim::{Arrivals, Latency, Outage, RateLimit, Report, Scenario, Scope, run};

/// AWS Architecture Blog, "Exponential Backoff And Jitter" (Marc Brooker, 2015): N clients
/// race to update one resource under optimistic concurrency. Published shape: no backoff
/// does the most work; un-jittered exponential backoff takes far longer and does far more
/// work than any jittered strategy; full jitter is among the least work.
#[test]
fn aws_contention_experiment_has_the_published_shape() {
    let strategies = [
        (
            "no backoff",
            Backoff::Constant(Duration::ZERO),
            Jitter::None,
        ),
        (
            "exponential",
            Backoff::exponential(Duration::from_millis(5)),
            Jitter::None,
        ),
        (
            "full jitter",
            Backoff::exponential(Duration::from_millis(5)),
            Jitter::Full,
        ),
        (
            "equal jitter",
            Backoff::exponential(Duration::from_millis(5)),
            Jitter::Equal,
        ),
        (
            "decorrelated",
            Backoff::DecorrelatedJitter {
                base: Duration::from_millis(5),
            },
            Jitter::None,
        ),
    ];
    for seed in [1, 2, 3] {
        let runs: Vec<(&str, Report)> = strategies
            .iter()
            .map(|(name, backoff, jitter)| {
                let mut s = Scenario::new(seed);
                s.clients = 100;
                s.arrivals = Arrivals::AtOnce;
                s.requests_per_client = Some(1);
                s.server.optimistic_concurrency = true;
                s.server.latency =
                    Latency::Uniform(Duration::from_millis(5), Duration::from_millis(15));
                s.policy = RetryPolicy::builder()
                    .max_attempts(10_000)
                    .backoff(*backoff)
                    .jitter(*jitter)
                    .max_delay(Duration::from_secs(10))
                    .retry_statuses(&[409])
                    .attempt_timeout(None)
                    .total_timeout(None)
                    .build()
                    .unwrap();
                (*name, run(&s))
            })
            .collect();
        let calls = |i: usize| runs[i].1.attempts;
        let time = |i: usize| runs[i].1.completion;
        for (name, r) in &runs {
            assert_eq!(
                r.succeeded, 100,
                "seed {seed}: {name} must finish every client"
            );
        }
        let jittered = [2, 3, 4];
        let least_jittered = jittered.iter().map(|&i| calls(i)).min().unwrap();
        let most_jittered = jittered.iter().map(|&i| calls(i)).max().unwrap();
        assert!(
            (0..5).all(|i| i == 0 || calls(0) > calls(i)),
            "seed {seed}: no backoff does the most calls: {:?}",
            runs.iter()
                .map(|(n, r)| (n, r.attempts))
                .collect::<Vec<_>>()
        );
        assert!(
            (most_jittered as f64) < 0.75 * calls(1) as f64,
            "seed {seed}: jittered strategies do far less work than plain exponential"
        );
        assert!(
            (calls(2) as f64) <= 1.05 * least_jittered as f64,
            "seed {seed}: full jitter is among the least work"
        );
        for i in jittered {
            assert!(
                time(1) > time(i) * 10,
                "seed {seed}: plain exponential finishes last by far"
            );
        }
    }
}

fn amplification_run(p: f64, budget: Option<RetryBudget>) -> Report {
    let mut s = Scenario::new(7);
    s.clients = 10;
    s.duration = Duration::from_secs(60);
    s.arrivals = Arrivals::Poisson(Duration::from_millis(10));
    s.server.failure_probability = p;
    s.policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    s.budget = budget.map(|b| (b, Scope::Fleet));
    run(&s)
}

const PS: [f64; 6] = [0.05, 0.1, 0.2, 0.5, 0.9, 1.0];

/// Without a budget, 4 attempts amplify load by 1 + p + p² + p³.
#[test]
fn amplification_without_a_budget_follows_the_geometric_series() {
    for p in PS {
        let r = amplification_run(p, None);
        let expected = 1.0 + p + p * p + p * p * p;
        assert!(
            (r.amplification() - expected).abs() < 0.01 * expected,
            "p={p}: {:.4} vs {expected:.4}",
            r.amplification()
        );
    }
}

/// Finagle's budget (20 % of first attempts + 10 retries/s) caps amplification at 1.2 plus
/// the minimum: here ~1,000 requests/s, so 10/s adds 0.01.
#[test]
fn ratio_budget_caps_amplification_at_twenty_percent_plus_the_minimum() {
    for p in PS {
        let budget = RetryBudget::ratio(0.2, 10, Duration::from_secs(10)).unwrap();
        let r = amplification_run(p, Some(budget));
        let uncapped = 1.0 + p + p * p + p * p * p;
        assert!(
            r.amplification() <= 1.2 + 0.01 + 0.005,
            "p={p}: {:.4}",
            r.amplification()
        );
        assert!(
            r.amplification() >= uncapped.min(1.2) - 0.01,
            "p={p}: budget should not cut below what it allows: {:.4}",
            r.amplification()
        );
    }
}

/// gRPC's token bucket (10 tokens, ratio 0.1): retries stop once the failure fraction passes
/// 0.1 / 1.1 ≈ 9 %.
#[test]
fn token_bucket_stops_retries_past_its_threshold() {
    let threshold = 0.1 / 1.1;
    for p in PS {
        let r = amplification_run(p, Some(RetryBudget::token_bucket(10, 0.1).unwrap()));
        if p < threshold {
            let expected = 1.0 + p + p * p + p * p * p;
            assert!(
                (r.amplification() - expected).abs() < 0.01,
                "p={p}: {:.4}",
                r.amplification()
            );
        } else if p >= 2.0 * threshold {
            assert!(r.amplification() < 1.001, "p={p}: {:.4}", r.amplification());
        } else {
            assert!(
                r.amplification() < 1.0 + p * 0.5,
                "p={p}: {:.4}",
                r.amplification()
            );
        }
    }
}

/// An outage with a shared breaker: load on the backend drops to probes within the open
/// time, and recovers within one open period after the outage ends.
#[test]
fn breaker_sheds_load_during_an_outage_and_recovers_within_one_open_period() {
    let open = Duration::from_secs(5);
    let mut s = Scenario::new(3);
    s.clients = 50;
    s.duration = Duration::from_secs(60);
    s.arrivals = Arrivals::Fixed(Duration::from_millis(100));
    s.server.outages = vec![Outage {
        start: Duration::from_secs(10),
        end: Duration::from_secs(40),
    }];
    s.policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Constant(Duration::from_millis(50)))
        .build()
        .unwrap();
    s.breaker = Some((
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(5))
            .open_for(open),
        Scope::Fleet,
    ));
    let r = run(&s);
    let normal = r.seconds[5].attempts;
    assert_eq!(normal, 500);
    // From one second into the outage, only half-open probes reach the backend: one per
    // open period.
    let during = r.attempts_between(11, 40);
    assert!(during <= 29 / 5 + 1, "{during} attempts during the outage");
    // Within one open period after the outage, load is back to normal.
    let back = 40 + open.as_secs() as usize + 1;
    assert!(
        r.seconds[back].attempts >= normal * 95 / 100,
        "{:?}",
        r.seconds[back]
    );
    let closed_at = r
        .transitions
        .iter()
        .rev()
        .find(|(_, _, to)| *to == resil_core::BreakerState::Closed)
        .map(|(t, _, _)| *t)
        .unwrap();
    assert!(
        closed_at <= Duration::from_secs(40) + open,
        "closed at {closed_at:?}"
    );
}

/// A 429 storm: 300 clients burst at once into a 120/s limit. Clients that wait what
/// `Retry-After` asks (plus the 10 % spread) come back in later windows, so every request
/// gets through and no second is hammered beyond the limit by retries.
#[test]
fn rate_limit_storm_is_absorbed_by_honouring_retry_after() {
    let mut s = Scenario::new(11);
    s.clients = 300;
    s.arrivals = Arrivals::AtOnce;
    s.requests_per_client = Some(1);
    s.server.rate_limit = Some(RateLimit {
        per_second: 120,
        retry_after: Duration::from_secs(1),
    });
    s.policy = RetryPolicy::builder().build().unwrap();
    let r = run(&s);
    assert_eq!(r.succeeded, 300, "{r}");
    assert!(r.retry_after_honoured >= 180, "{r}");
    // Retries wait at least the second the server asked for: none in the first second.
    assert_eq!(r.seconds[0].attempts, 300);
    assert!(r.amplification() < 2.0, "{r}");
}

#[test]
fn same_seed_same_event_log_and_another_seed_differs() {
    let mut s = Scenario::new(5);
    s.clients = 30;
    s.duration = Duration::from_secs(20);
    s.arrivals = Arrivals::Poisson(Duration::from_millis(50));
    s.server.failure_probability = 0.3;
    s.server.latency = Latency::Exponential(Duration::from_millis(20));
    s.breaker = Some((CircuitBreaker::builder(), Scope::PerClient));
    s.budget = Some((RetryBudget::default(), Scope::Fleet));
    let a = run(&s);
    let b = run(&s);
    assert_eq!(a, b);
    s.seed = 6;
    assert_ne!(run(&s).log_hash, a.log_hash);
}
