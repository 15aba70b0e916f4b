//! The circuit breaker against a small reference model (proptest-state-machine): every
//! acquire answer, every state and every failure count must match after every step.

use core::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use resil_core::{BreakerState, CallOutcome, CircuitBreaker, Instant, Permit, TripCondition};

const TRIP_AFTER: u32 = 3;
const OPEN_MS: u64 = 1_000;

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    Acquire,
    Record(Index, bool),
    Release(Index),
    Isolate,
    Reset,
}

/// A permit as the model sees it.
#[derive(Clone, Copy, Debug)]
struct ModelPermit {
    generation: u32,
    probe: bool,
}

#[derive(Clone, Debug)]
struct Model {
    probes: u32,
    now_ms: u64,
    state: BreakerState,
    generation: u32,
    consecutive: u32,
    open_until_ms: u64,
    probes_out: u32,
    probe_successes: u32,
    held: Vec<ModelPermit>,
    last_acquire: Option<bool>,
}

impl Model {
    fn enter(&mut self, to: BreakerState) {
        self.state = to;
        self.generation += 1;
        self.probes_out = 0;
        self.probe_successes = 0;
        match to {
            BreakerState::Open => self.open_until_ms = self.now_ms + OPEN_MS,
            BreakerState::Closed => self.consecutive = 0,
            _ => {}
        }
    }

    fn acquire(&mut self) -> bool {
        if self.state == BreakerState::Open && self.now_ms >= self.open_until_ms {
            self.enter(BreakerState::HalfOpen);
        }
        let granted = match self.state {
            BreakerState::Closed => Some(false),
            BreakerState::HalfOpen if self.probes_out < self.probes => {
                self.probes_out += 1;
                Some(true)
            }
            _ => None,
        };
        if let Some(probe) = granted {
            self.held.push(ModelPermit {
                generation: self.generation,
                probe,
            });
        }
        granted.is_some()
    }

    fn record(&mut self, permit: ModelPermit, failure: bool) {
        if permit.generation != self.generation {
            return;
        }
        match self.state {
            BreakerState::Closed if failure => {
                self.consecutive += 1;
                if self.consecutive >= TRIP_AFTER {
                    self.enter(BreakerState::Open);
                }
            }
            BreakerState::Closed => self.consecutive = 0,
            BreakerState::HalfOpen if permit.probe => {
                self.probes_out -= 1;
                if failure {
                    self.enter(BreakerState::Open);
                } else {
                    self.probe_successes += 1;
                    if self.probe_successes >= self.probes {
                        self.enter(BreakerState::Closed);
                    }
                }
            }
            _ => {}
        }
    }
}

struct BreakerModel;

impl ReferenceStateMachine for BreakerModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (1u32..4)
            .prop_map(|probes| Model {
                probes,
                now_ms: 0,
                state: BreakerState::Closed,
                generation: 0,
                consecutive: 0,
                open_until_ms: 0,
                probes_out: 0,
                probe_successes: 0,
                held: Vec::new(),
                last_acquire: None,
            })
            .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        prop_oneof![
            // Long enough jumps and mostly failures, so sequences reach Open, HalfOpen with
            // several probes out, and back.
            3 => (0u64..1_500).prop_map(Step::Advance),
            5 => Just(Step::Acquire),
            4 => (any::<Index>(), prop::bool::weighted(0.7)).prop_map(|(i, f)| Step::Record(i, f)),
            1 => any::<Index>().prop_map(Step::Release),
            1 => Just(Step::Isolate),
            1 => Just(Step::Reset),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.last_acquire = None;
        match step {
            Step::Advance(ms) => state.now_ms += ms,
            Step::Acquire => state.last_acquire = Some(state.acquire()),
            Step::Record(i, failure) => {
                if !state.held.is_empty() {
                    let permit = state.held.remove(i.index(state.held.len()));
                    state.record(permit, *failure);
                }
            }
            Step::Release(i) => {
                if !state.held.is_empty() {
                    let permit = state.held.remove(i.index(state.held.len()));
                    if permit.generation == state.generation && permit.probe {
                        state.probes_out -= 1;
                    }
                }
            }
            Step::Isolate => {
                if state.state != BreakerState::Isolated {
                    state.enter(BreakerState::Isolated);
                }
            }
            Step::Reset => {
                if state.state == BreakerState::Closed {
                    state.consecutive = 0;
                    state.generation += 1;
                } else {
                    state.enter(BreakerState::Closed);
                }
            }
        }
        state
    }
}

struct Real {
    breaker: CircuitBreaker,
    now: Instant,
    held: Vec<Permit>,
    last_acquire: Option<bool>,
}

struct BreakerTest;

impl StateMachineTest for BreakerTest {
    type SystemUnderTest = Real;
    type Reference = BreakerModel;

    fn init_test(model: &Model) -> Real {
        Real {
            breaker: CircuitBreaker::builder()
                .trip(TripCondition::ConsecutiveFailures(TRIP_AFTER))
                .open_for(Duration::from_millis(OPEN_MS))
                .half_open_probes(model.probes)
                .probe_timeout(Duration::from_secs(1_000_000))
                .build()
                .unwrap(),
            now: Instant::ZERO,
            held: Vec::new(),
            last_acquire: None,
        }
    }

    fn apply(mut real: Real, _: &Model, step: Step) -> Real {
        real.last_acquire = None;
        match step {
            Step::Advance(ms) => real.now = real.now + Duration::from_millis(ms),
            Step::Acquire => match real.breaker.try_acquire(real.now) {
                Ok(p) => {
                    real.held.push(p);
                    real.last_acquire = Some(true);
                }
                Err(_) => real.last_acquire = Some(false),
            },
            Step::Record(i, failure) => {
                if !real.held.is_empty() {
                    let p = real.held.remove(i.index(real.held.len()));
                    let outcome = if failure {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    };
                    real.breaker.record(real.now, p, outcome);
                }
            }
            Step::Release(i) => {
                if !real.held.is_empty() {
                    let p = real.held.remove(i.index(real.held.len()));
                    real.breaker.release(p);
                }
            }
            Step::Isolate => real.breaker.isolate(real.now),
            Step::Reset => real.breaker.reset(real.now),
        }
        real
    }

    fn check_invariants(real: &Real, model: &Model) {
        assert_eq!(real.last_acquire, model.last_acquire, "acquire answer");
        assert_eq!(real.breaker.state(), model.state, "state");
        assert_eq!(
            real.breaker.consecutive_failures(),
            model.consecutive,
            "consecutive failures"
        );
        assert_eq!(real.held.len(), model.held.len());
        for (r, m) in real.held.iter().zip(&model.held) {
            assert_eq!(r.is_probe(), m.probe);
        }
        let live_probes = model
            .held
            .iter()
            .filter(|p| p.probe && p.generation == model.generation)
            .count() as u32;
        assert!(live_probes <= model.probes, "at most K probes in flight");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(sequential 1..120 => BreakerTest);
}
