//! [`OriginBreakers`]: one circuit breaker per origin, for a client that calls several
//! backends, and with it the default limiter per origin (one overloaded backend does not
//! throttle calls to the others).

use std::boxed::Box;
use std::string::String;
use std::sync::{Arc, Mutex, OnceLock};
use std::vec::Vec;

use http::Uri;

use resil_core::{BreakerGate, CircuitBreaker, CircuitBreakerBuilder, PolicyError};

use crate::config::LimiterList;

/// Origins a client keeps a breaker of their own for; calls to any further origin share one.
pub(crate) const MAX_ORIGIN_BREAKERS: usize = 64;

/// Breakers for up to [`MAX_ORIGIN_BREAKERS`] origins (scheme, host and port, as the URL
/// writes them; the host in any case), made when the client is built. A call borrows its
/// origin's breaker for its whole life, so none can go away while a call holds it: an
/// origin keeps its breaker as long as the client lives.
pub(crate) struct OriginBreakers {
    slots: Box<[OriginSlot]>,
    /// For calls to origins past the last slot.
    overflow: OriginSlot,
}

/// One origin's breaker and limiters, and which origin took them.
struct OriginSlot {
    origin: OnceLock<Origin>,
    breaker: Mutex<CircuitBreaker>,
    gate: Arc<BreakerGate>,
    /// Empty: the origin's calls ask the client's limiters.
    limiters: LimiterList,
}

/// Makes an origin's own limiters (none: its calls ask the client's).
pub(crate) type MakeLimiters<'a> = &'a dyn Fn() -> Result<LimiterList, PolicyError>;

/// `scheme` and `authority`, the host lower-cased.
struct Origin {
    scheme: Box<str>,
    authority: Box<str>,
}

impl Origin {
    fn is(&self, scheme: &str, authority: &str) -> bool {
        *self.scheme == *scheme && self.authority.eq_ignore_ascii_case(authority)
    }
}

impl OriginSlot {
    fn new(
        template: &CircuitBreakerBuilder,
        limiters: MakeLimiters<'_>,
    ) -> Result<OriginSlot, PolicyError> {
        let breaker = template.clone().build()?;
        let gate = breaker.gate();
        Ok(OriginSlot {
            origin: OnceLock::new(),
            breaker: Mutex::new(breaker),
            gate,
            limiters: limiters()?,
        })
    }
}

impl OriginBreakers {
    /// Breakers built by `template`, each origin's limiters by `limiters`; their error if
    /// they cannot build one.
    pub(crate) fn new(
        template: &CircuitBreakerBuilder,
        limiters: MakeLimiters<'_>,
    ) -> Result<OriginBreakers, PolicyError> {
        let slots = (0..MAX_ORIGIN_BREAKERS)
            .map(|_| OriginSlot::new(template, limiters))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OriginBreakers {
            slots: slots.into_boxed_slice(),
            overflow: OriginSlot::new(template, limiters)?,
        })
    }

    /// The breaker of `uri`'s origin, its gate and its own limiters (empty: the client's), as
    /// a call borrows them (out of line: most clients have one breaker, and their calls
    /// should not carry this code).
    #[inline(never)]
    pub(crate) fn breaker_for(
        &self,
        uri: &Uri,
    ) -> (&Mutex<CircuitBreaker>, &BreakerGate, &LimiterList) {
        let slot = self.for_uri(uri);
        (&slot.breaker, &slot.gate, &slot.limiters)
    }

    /// The breaker of `uri`'s origin, taking a free one for an origin not seen before.
    fn for_uri(&self, uri: &Uri) -> &OriginSlot {
        let scheme = uri.scheme_str().unwrap_or("");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let start = hash(scheme, authority) % self.slots.len();
        for i in 0..self.slots.len() {
            let slot = &self.slots[(start + i) % self.slots.len()];
            let taken = slot.origin.get_or_init(|| Origin {
                scheme: scheme.into(),
                authority: authority.to_ascii_lowercase().into(),
            });
            // Ours, or taken (perhaps just now, by another thread) for another origin.
            if taken.is(scheme, authority) {
                return slot;
            }
        }
        &self.overflow
    }

    /// Origins that have a breaker of their own, in no particular order.
    pub(crate) fn origins(&self) -> impl Iterator<Item = (String, &Mutex<CircuitBreaker>)> {
        self.slots.iter().filter_map(|slot| {
            let origin = slot.origin.get()?;
            Some((
                std::format!("{}://{}", origin.scheme, origin.authority),
                &slot.breaker,
            ))
        })
    }
}

/// FNV-1a over the origin, the host's case folded (the slot is only a starting point).
fn hash(scheme: &str, authority: &str) -> usize {
    let bytes = scheme
        .bytes()
        .chain(authority.bytes().map(|b| b.to_ascii_lowercase()));
    bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) as usize
}
