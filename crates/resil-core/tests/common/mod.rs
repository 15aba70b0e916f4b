//! A scripted driver on a fake clock: runs a machine against canned replies and renders every
//! action and event as one line of a timeline.
#![allow(dead_code)]

use core::time::Duration;
use std::fmt::Write;

use resil_core::{
    Action, Event, Input, Instant, RequestInfo, ResponseHead, RetryAfter, RetryMachine,
    RetryPolicy, TransportErrorKind, UnixTime,
};

/// How the fake server answers one attempt (after `LATENCY`).
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// A status with this raw `Retry-After` value.
    RetryAfter(u16, &'static str),
    Error(TransportErrorKind),
    /// Never answers: the attempt runs into its deadline.
    Stall,
}

pub const LATENCY: Duration = Duration::from_millis(10);

/// The wall clock at the fake clock's origin, for HTTP-date `Retry-After`.
pub const WALL_ORIGIN: UnixTime = UnixTime(1_700_000_000);

pub fn ms(i: Instant) -> String {
    let nanos = i.as_nanos();
    if nanos == u64::MAX {
        "never".into()
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{:.3}ms", nanos as f64 / 1e6)
    }
}

pub struct Outcome {
    pub lines: Vec<String>,
    pub last: Action,
    pub now: Instant,
    pub sends: u32,
}

/// Drives `machine` to a terminal action (or 1000 steps) and records the timeline.
pub fn drive(machine: &mut RetryMachine<'_>, start: Instant, script: &[Reply]) -> Outcome {
    let mut now = start;
    let mut lines = Vec::new();
    let mut replies = script.iter().copied();
    let mut sends = 0;
    for _ in 0..1000 {
        let action = machine.poll_action();
        let mut line = format!("{:>7} ", ms(now));
        let terminal = match action {
            Action::Send { attempt, deadline } => {
                sends += 1;
                let reply = replies.next().unwrap_or(Reply::Status(200));
                write!(
                    line,
                    "send #{} (deadline {})",
                    attempt.number(),
                    ms(deadline)
                )
                .unwrap();
                lines.push(line);
                drain(machine, &mut lines);
                match reply {
                    Reply::Stall => {
                        // The driver sleeps until the Send's deadline.
                        now = deadline;
                        lines.push(format!("{:>7} #{} timer", ms(now), attempt.number()));
                        machine.handle_input(now, Input::Timer);
                    }
                    Reply::Status(s) => {
                        now = now + LATENCY;
                        lines.push(format!("{:>7} #{} <- {s}", ms(now), attempt.number()));
                        let head = ResponseHead::new(s);
                        machine.handle_input(now, Input::Response { attempt, head });
                    }
                    Reply::RetryAfter(s, v) => {
                        now = now + LATENCY;
                        lines.push(format!(
                            "{:>7} #{} <- {s} Retry-After: {v}",
                            ms(now),
                            attempt.number()
                        ));
                        let wall = UnixTime(WALL_ORIGIN.0 + now.as_nanos() / 1_000_000_000);
                        let head = ResponseHead::new(s)
                            .with_retry_after(RetryAfter::parse(v.as_bytes()), Some(wall));
                        machine.handle_input(now, Input::Response { attempt, head });
                    }
                    Reply::Error(kind) => {
                        now = now + LATENCY;
                        lines.push(format!(
                            "{:>7} #{} <- error {kind:?}",
                            ms(now),
                            attempt.number()
                        ));
                        machine.handle_input(now, Input::Error { attempt, kind });
                    }
                }
                drain(machine, &mut lines);
                continue;
            }
            Action::Sleep { until } => {
                write!(line, "sleep until {}", ms(until)).unwrap();
                now = until;
                lines.push(line);
                machine.handle_input(now, Input::Timer);
                false
            }
            Action::Cancel { attempt } => {
                write!(line, "cancel #{}", attempt.number()).unwrap();
                lines.push(line);
                false
            }
            Action::Done { attempt } => {
                write!(line, "done #{}", attempt.number()).unwrap();
                lines.push(line);
                true
            }
            Action::Fail(g) => {
                write!(line, "fail: {g}").unwrap();
                lines.push(line);
                true
            }
        };
        drain(machine, &mut lines);
        if terminal {
            return Outcome {
                lines,
                last: action,
                now,
                sends,
            };
        }
    }
    panic!(
        "machine did not finish within 1000 steps:\n{}",
        lines.join("\n")
    );
}

fn drain(machine: &mut RetryMachine<'_>, lines: &mut Vec<String>) {
    while let Some(e) = machine.poll_event() {
        let text = match e {
            Event::AttemptStarted { .. } => continue,
            Event::RetryScheduled {
                after,
                cause,
                delay,
                retry_after,
                ..
            } => format!(
                "  event: retry after #{} ({cause}) in {delay:?}{}",
                after.number(),
                retry_after
                    .map(|d| format!(", Retry-After {d:?}"))
                    .unwrap_or_default()
            ),
            Event::Completed { attempt, status } => {
                format!("  event: completed #{} with {status}", attempt.number())
            }
            Event::GaveUp(g) => format!("  event: gave up ({:?})", g.reason),
            Event::Breaker(t) => format!("  event: breaker {} -> {}", t.from, t.to),
            _ => format!("  event: {e:?}"),
        };
        lines.push(text);
    }
}

pub fn run(policy: &RetryPolicy, request: RequestInfo, script: &[Reply]) -> Outcome {
    let mut m = RetryMachine::new(policy, request, Instant::ZERO, 7);
    drive(&mut m, Instant::ZERO, script)
}

/// A policy without randomness, so transcripts are readable constants.
pub fn plain_policy() -> resil_core::RetryPolicyBuilder {
    RetryPolicy::builder()
        .jitter(resil_core::Jitter::None)
        .retry_after_spread(0.0)
}

pub fn assert_timeline(outcome: &Outcome, expected: &str) {
    let got = normalize(&outcome.lines.join("\n"));
    let want = normalize(expected);
    assert_eq!(got, want, "\n--- got ---\n{got}\n--- want ---\n{want}\n");
}

/// Lines trimmed, blank lines dropped: timelines compare by content, not indentation.
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
