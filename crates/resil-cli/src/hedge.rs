//! `--hedge` and a scenario's `hedge`: `20ms` (a fixed delay), `p95` (a latency quantile),
//! or `none`.

use std::time::Duration;

use resil_core::{Hedging, LatencySketchBuilder};
use resil_http::EnvConfig;

/// How a hedge setting reads.
#[derive(Clone, Copy, Debug)]
pub enum HedgeSpec {
    /// No hedging.
    None,
    /// After this long.
    Fixed(Duration),
    /// At this quantile of recent latencies.
    Quantile(f64),
}

impl HedgeSpec {
    /// Reads `none`, a duration (`20ms`, `1s`) or a percentile (`p95`, `p99.9`).
    pub fn parse(spec: &str) -> Result<HedgeSpec, String> {
        let bad = || format!("hedge {spec:?} is not none, a delay (20ms) or a percentile (p95)");
        if spec == "none" {
            return Ok(HedgeSpec::None);
        }
        if let Some(p) = spec.strip_prefix('p') {
            let percent: f64 = p.parse().map_err(|_| bad())?;
            if !(percent > 0.0 && percent < 100.0) {
                return Err(format!(
                    "hedge {spec:?}: the percentile must be in (0, 100)"
                ));
            }
            return Ok(HedgeSpec::Quantile(percent / 100.0));
        }
        match EnvConfig::parse_duration(spec) {
            Some(d) if !d.is_zero() => Ok(HedgeSpec::Fixed(d)),
            Some(_) => Err(format!("hedge {spec:?}: a hedge delay must not be zero")),
            None => Err(bad()),
        }
    }

    /// The policy's hedging (an adaptive one hedges after `fallback` until the sketch knows
    /// enough), and the sketch's settings.
    pub fn hedging(self, fallback: Option<Duration>) -> Option<(Hedging, LatencySketchBuilder)> {
        let sketch = resil_core::LatencySketch::builder();
        match self {
            HedgeSpec::None => None,
            HedgeSpec::Fixed(d) => Some((Hedging::fixed(d), sketch)),
            HedgeSpec::Quantile(q) => {
                let adaptive = match fallback {
                    Some(d) => Hedging::adaptive().fallback(d),
                    None => Hedging::adaptive(),
                };
                Some((adaptive, sketch.hedge_quantile(q)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HedgeSpec;

    #[test]
    fn hedge_settings_read_as_documented() {
        assert!(matches!(HedgeSpec::parse("none"), Ok(HedgeSpec::None)));
        assert!(matches!(HedgeSpec::parse("20ms"), Ok(HedgeSpec::Fixed(d)) if d.as_millis() == 20));
        assert!(
            matches!(HedgeSpec::parse("p95"), Ok(HedgeSpec::Quantile(q)) if (q - 0.95).abs() < 1e-9)
        );
        for bad in ["0ms", "p0", "p100", "p", "fast", ""] {
            assert!(HedgeSpec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
