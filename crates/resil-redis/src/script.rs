//! The one Lua script a sync runs (`sync.lua`), its keys and arguments from a
//! [`FleetBatch`], and its answer read back as a [`FleetReply`].

use std::time::Duration;

use redis::Value;
use resil_core::{FleetBatch, FleetOpen, FleetReply, LeaseAnswer, LeaseRequest};

/// The script, sent as `EVALSHA` (and loaded again when Redis lost its script cache).
pub(crate) fn script() -> redis::Script {
    redis::Script::new(include_str!("sync.lua"))
}

/// The keys of the fleet `name`, all in one hash slot (`{name}` is the hash tag).
pub(crate) fn keys(name: &str) -> [String; 10] {
    [
        "window",
        "nodes",
        "failing",
        "streak",
        "open",
        "generation",
        "lease",
        "recoveries",
        "budget",
        "clock",
    ]
    .map(|k| format!("resil:{{{name}}}:{k}"))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An invocation of `script` for `batch` on the fleet whose keys are `keys`; `test_clock`:
/// the script reads the time from the `clock` key instead of `TIME`.
pub(crate) fn invocation<'s>(
    script: &'s redis::Script,
    keys: &[String; 10],
    batch: &FleetBatch,
    test_clock: bool,
) -> redis::ScriptInvocation<'s> {
    let mut inv = script.prepare_invoke();
    for k in keys {
        inv.key(k);
    }
    let (op, token, ttl, passed) = match batch.lease {
        LeaseRequest::Acquire { token, ttl } => (1, token, ms(ttl), false),
        LeaseRequest::Release { token, passed } => (2, token, 0, passed),
        _ => (0, 0, 0, false),
    };
    let budget = batch.budget;
    inv.arg(batch.node.to_string())
        .arg(ms(batch.window))
        .arg(ms(batch.keep))
        .arg(batch.calls)
        .arg(batch.failures)
        .arg(batch.successes)
        .arg(batch.trailing_failures)
        .arg(u8::from(batch.failing))
        .arg(batch.announce_open.map_or(0, ms))
        .arg(op)
        .arg(token.to_string())
        .arg(ttl)
        .arg(u8::from(passed))
        .arg(u8::from(budget.is_some()))
        .arg(batch.deposits)
        .arg(batch.want_retries)
        .arg(budget.map_or(0, |b| b.ratio_ppm))
        .arg(budget.map_or(0, |b| b.reserve_micro))
        .arg(budget.map_or(0, |b| ms(b.window)))
        .arg(u8::from(test_clock));
    inv
}

/// The script's answer as a reply; `None` when it is not one (the sync then counts as
/// failed, as garbage from the store must).
pub(crate) fn reply(value: &Value) -> Option<FleetReply> {
    let Value::Array(items) = value else {
        return None;
    };
    let mut n = [0u64; 13];
    if items.len() != n.len() {
        return None;
    }
    for (slot, item) in n.iter_mut().zip(items) {
        *slot = match item {
            Value::Int(i) => u64::try_from(*i).ok()?,
            _ => return None,
        };
    }
    let u32_of = |v: u64| u32::try_from(v).ok();
    let mut r = FleetReply::default();
    r.calls = n[0];
    r.failures = n[1];
    r.nodes = u32_of(n[2])?;
    r.failing_nodes = u32_of(n[3])?;
    r.streak_failures = n[4];
    r.streak_nodes = u32_of(n[5])?;
    r.open = (n[6] != 0 && n[7] != 0).then(|| FleetOpen {
        generation: n[6],
        remaining: Duration::from_millis(n[7]),
    });
    r.recoveries = n[8];
    r.lease = match n[9] {
        0 => LeaseAnswer::None,
        1 => LeaseAnswer::Granted,
        2 => LeaseAnswer::Held {
            remaining: Duration::from_millis(n[10]),
        },
        _ => return None,
    };
    r.retries = u32_of(n[11])?;
    r.repaired = n[12] != 0;
    Some(r)
}
