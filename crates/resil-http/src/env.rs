//! Opt-in configuration from environment variables, parsed the same way by every driver.

use std::fmt;
use std::string::String;
use std::time::Duration;

/// Settings read from `RESIL_*` environment variables; unset variables are `None`.
///
/// | variable | meaning | example |
/// |---|---|---|
/// | `RESIL_TIMEOUT` | total deadline per call | `30s`, `1500ms`, `2m`, `10` (seconds) |
/// | `RESIL_ATTEMPT_TIMEOUT` | per-attempt timeout | `10s` |
/// | `RESIL_CONNECT_TIMEOUT` | connect timeout | `2s` |
/// | `RESIL_READ_TIMEOUT` | longest wait for data within an attempt | `5s` |
/// | `RESIL_MAX_RETRIES` | retries after the first attempt | `3` |
/// | `RESIL_BASE_URL` | base URL for relative request URLs | `http://127.0.0.1:8080/api` |
///
/// Non-exhaustive, so a new variable is not a breaking change: start from
/// [`EnvConfig::default`] (or [`from_lookup`](EnvConfig::from_lookup)) and set fields.
///
/// ```
/// use std::time::Duration;
///
/// let mut env = resil_http::EnvConfig::default();
/// env.total_timeout = Some(Duration::from_secs(30));
/// let read = resil_http::EnvConfig::from_lookup(|name| {
///     (name == "RESIL_TIMEOUT").then(|| "30s".to_owned())
/// });
/// assert_eq!(read, Ok(env));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvConfig {
    /// `RESIL_TIMEOUT`.
    pub total_timeout: Option<Duration>,
    /// `RESIL_ATTEMPT_TIMEOUT`.
    pub attempt_timeout: Option<Duration>,
    /// `RESIL_CONNECT_TIMEOUT`.
    pub connect_timeout: Option<Duration>,
    /// `RESIL_READ_TIMEOUT`.
    pub read_timeout: Option<Duration>,
    /// `RESIL_MAX_RETRIES`.
    pub max_retries: Option<u32>,
    /// `RESIL_BASE_URL`.
    pub base_url: Option<String>,
}

/// An environment variable with a value that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    variable: &'static str,
    value: String,
    expected: &'static str,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment variable {}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for EnvError {}

/// The environment's settings that belong to a driver's transport rather than to
/// [`ClientConfig`](crate::ClientConfig), handed over by
/// [`ClientConfig::take_transport_env`](crate::ClientConfig::take_transport_env).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportEnv {
    /// `RESIL_CONNECT_TIMEOUT`.
    pub connect_timeout: Option<Duration>,
    /// `RESIL_READ_TIMEOUT`.
    pub read_timeout: Option<Duration>,
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<EnvConfig, EnvError> {
        EnvConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (for tests, or another source of settings).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvConfig, EnvError> {
        let duration = |variable: &'static str| -> Result<Option<Duration>, EnvError> {
            lookup(variable)
                .map(|v| {
                    EnvConfig::parse_duration(&v).ok_or(EnvError {
                        variable,
                        value: v,
                        expected: "a positive duration such as 30s, 250ms or 2m",
                    })
                })
                .transpose()
        };
        let max_retries = lookup("RESIL_MAX_RETRIES")
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| EnvError {
                    variable: "RESIL_MAX_RETRIES",
                    value: v,
                    expected: "a whole number of retries",
                })
            })
            .transpose()?;
        Ok(EnvConfig {
            total_timeout: duration("RESIL_TIMEOUT")?,
            attempt_timeout: duration("RESIL_ATTEMPT_TIMEOUT")?,
            connect_timeout: duration("RESIL_CONNECT_TIMEOUT")?,
            read_timeout: duration("RESIL_READ_TIMEOUT")?,
            max_retries,
            base_url: lookup("RESIL_BASE_URL").filter(|v| !v.trim().is_empty()),
        })
    }

    /// Parses a duration as the variables take it: `250ms`, `30s`, `2m`, `1h` or a bare
    /// number of seconds; zero and garbage are `None`.
    pub fn parse_duration(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let d = match unit.trim() {
            "" | "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        (!d.is_zero()).then_some(d)
    }
}
