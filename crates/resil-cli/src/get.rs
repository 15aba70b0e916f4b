//! `resil get|post|put|delete`: one call through resil-blocking, narrated on stderr.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use resil_blocking::{Client, ErrorKind};
use resil_core::{
    Attempt, Backoff, CircuitBreaker, GiveUp, Jitter, RetryBudget, RetryPolicy, TripCondition,
};
use resil_http::{BodyFailure, CallInfo, EnvConfig, HedgeInfo, Hooks, RedirectInfo, RetryInfo};

use crate::hedge::HedgeSpec;

/// Options shared by the request commands.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The URL (http or https).
    url: String,
    /// A header, `name: value`; repeatable.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The request body; `@FILE` reads it from FILE and `@-` from stdin, bytes as they are
    /// (curl's `--data-binary`).
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// The request body exactly as given, even when it starts with `@`.
    #[arg(long = "data-raw", conflicts_with = "data")]
    data_raw: Option<String>,
    /// Retries after the first attempt.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Backoff: `exp:100ms` (doubling, full jitter), `const:250ms`, or `none`.
    #[arg(long, default_value = "exp:100ms")]
    backoff: String,
    /// Total deadline for the call, e.g. `30s`.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Per-attempt timeout, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    attempt_timeout: String,
    /// Connect timeout, e.g. `2s` [default: 5s].
    #[arg(long)]
    connect_timeout: Option<String>,
    /// Longest wait for data within an attempt (each socket read), e.g. `5s`; off by default.
    #[arg(long)]
    read_timeout: Option<String>,
    /// Send the call through this proxy, `http://[user:password@]host:port`, instead of the
    /// one the environment names (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY).
    #[arg(long, conflicts_with = "no_proxy")]
    proxy: Option<String>,
    /// Connect straight to the server, whatever proxy the environment names.
    #[arg(long)]
    no_proxy: bool,
    /// Consecutive failures that open the circuit breaker.
    #[arg(long, default_value_t = 5)]
    breaker: u32,
    /// The retry budget: `finagle` (20 % of calls + 10 retries/s over 10 s), `aws` (the AWS
    /// SDKs' 500-token retry quota), `aws-2026` (its 2026 costs), `grpc` (gRPC's retry
    /// throttling, 10 tokens, ratio 0.1) or `none`.
    #[arg(long, default_value = "finagle")]
    budget: String,
    /// Follow redirects (curl's name), by the rules every resil client follows: credentials
    /// dropped on a hop to another origin, never from https to http. Off: a 3xx is printed.
    #[arg(short = 'L', long = "location")]
    location: bool,
    /// The most redirects followed with -L.
    #[arg(long = "max-redirs", default_value_t = 10)]
    max_redirs: u32,
    /// Also print the response status line and headers on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Write the body to FILE (curl's name) instead of stdout: to a temporary file beside it,
    /// renamed to FILE only once the whole body arrived, so a failed call leaves no partial
    /// file (and an existing FILE as it was).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Hedge a GET (or another request that may be sent twice) that is slower than this:
    /// `20ms` sends a second copy after 20 ms and takes the first good answer; `p95` after
    /// the 95th percentile of recent latencies, which one call does not have, so after
    /// 100 ms. Each hedge counts as an attempt.
    #[arg(long)]
    hedge: Option<String>,
}

/// The delay `--hedge pNN` starts from: one call has no latencies to take a percentile of.
const HEDGE_FALLBACK: Duration = Duration::from_millis(100);

/// How much of a body is held in memory before any of it is written to stdout: a body that
/// fails before then is asked for again from its first byte (unless the server allows a
/// range, when it resumes); after, only a range can continue it.
const HOLD: usize = 1024 * 1024;

/// Narrates attempts on stderr.
struct Narrator;

impl Hooks for Narrator {
    fn on_request(&self, call: &CallInfo<'_>, attempt: Attempt) {
        note!(
            "resil: attempt {} -> {} {}",
            attempt.number(),
            call.method,
            call.url
        );
    }
    fn on_retry(&self, _: &CallInfo<'_>, r: &RetryInfo) {
        let why = match r.retry_after {
            Some(ra) => format!("the server asked for {ra:?} (Retry-After)"),
            None => "the --backoff policy".to_owned(),
        };
        note!(
            "resil: attempt {} failed: {}; retrying in {:?} ({why})",
            r.after.number(),
            r.cause,
            r.delay
        );
    }
    fn on_success(&self, _: &CallInfo<'_>, attempt: Attempt, status: u16) {
        note!("resil: attempt {} answered {status}", attempt.number());
    }
    fn on_failure(&self, _: &CallInfo<'_>, g: &GiveUp) {
        note!("resil: {g}");
    }
    fn on_body_failure(&self, _: &CallInfo<'_>, f: &BodyFailure) {
        let asking = if f.ranged {
            "asking for the rest"
        } else {
            "asking for the whole body again"
        };
        note!(
            "resil: the body broke off at byte {} ({}); {asking}",
            f.at_byte,
            f.kind
        );
    }
    fn on_hedge(&self, _: &CallInfo<'_>, h: &HedgeInfo) {
        match *h {
            HedgeInfo::Sent { attempt } => {
                note!(
                    "resil: attempt {} is a hedge: an earlier one is slow",
                    attempt.number()
                );
            }
            HedgeInfo::Won { attempt } => {
                note!("resil: the hedge, attempt {}, won", attempt.number())
            }
            HedgeInfo::Cancelled {
                attempt,
                lost: true,
            } => {
                note!("resil: attempt {} lost and was cancelled", attempt.number());
            }
            HedgeInfo::Cancelled { attempt, .. } => {
                note!(
                    "resil: attempt {} timed out and was cancelled",
                    attempt.number()
                );
            }
            _ => {}
        }
    }
    fn on_redirect(&self, _: &CallInfo<'_>, r: &RedirectInfo) {
        match r.refused {
            None => note!("resil: redirect {} ({}) -> {}", r.hop, r.status, r.to),
            Some(why) => note!(
                "resil: redirect {} ({}) not followed: {why}",
                r.hop,
                r.status
            ),
        }
    }
}

fn usage(message: &str) -> ExitCode {
    note!("resil: {message}");
    ExitCode::from(2)
}

/// The budget `--budget` names; `Some(None)` for none, `None` for a name it does not know.
pub fn budget(name: &str) -> Option<Option<RetryBudget>> {
    Some(match name {
        "finagle" => Some(RetryBudget::finagle()),
        "aws" => Some(RetryBudget::aws_standard()),
        "aws-2026" => Some(RetryBudget::aws_standard_2026()),
        // gRFC A6's example: maxTokens 10, tokenRatio 0.1.
        "grpc" => RetryBudget::grpc(10, 0.1).ok(),
        "none" => None,
        _ => return None,
    })
}

fn backoff(spec: &str) -> Option<(Backoff, Jitter)> {
    if spec == "none" {
        return Some((Backoff::Constant(Duration::ZERO), Jitter::None));
    }
    let (kind, value) = spec.split_once(':')?;
    let d = EnvConfig::parse_duration(value)?;
    match kind {
        "exp" => Some((Backoff::exponential(d), Jitter::Full)),
        "const" => Some((Backoff::Constant(d), Jitter::None)),
        _ => None,
    }
}

/// An optional duration option's value, or the usage error naming it.
fn optional_duration(option: &str, value: Option<&str>) -> Result<Option<Duration>, ExitCode> {
    value
        .map(|v| {
            EnvConfig::parse_duration(v).ok_or_else(|| {
                usage(&format!(
                    "{option} takes a duration above zero such as 5s or 500ms"
                ))
            })
        })
        .transpose()
}

/// The bytes `-d` names: `@FILE`, `@-` (stdin), or the argument itself.
fn body_from(data: &str) -> Result<Vec<u8>, String> {
    match data.strip_prefix('@') {
        Some("-") => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
            Ok(body)
        }
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read the body from {path}: {e}"))
        }
        None => Ok(data.as_bytes().to_vec()),
    }
}

/// Runs one call and maps its outcome to the documented exit code.
pub fn run(method: http::Method, args: &RequestArgs) -> ExitCode {
    let Some((backoff, jitter)) = backoff(&args.backoff) else {
        return usage(
            "--backoff must be exp:<duration>, const:<duration> (a duration above zero such as \
             100ms) or none",
        );
    };
    let (Some(total), Some(attempt)) = (
        EnvConfig::parse_duration(&args.timeout),
        EnvConfig::parse_duration(&args.attempt_timeout),
    ) else {
        return usage(
            "--timeout and --attempt-timeout take durations above zero such as 30s or 500ms",
        );
    };
    let policy = match RetryPolicy::builder()
        .max_retries(args.retries)
        .backoff(backoff)
        .jitter(jitter)
        .total_timeout(Some(total))
        .attempt_timeout(Some(attempt))
        .build()
    {
        Ok(p) => p,
        Err(e) => return usage(&e.to_string()),
    };
    let Some(budget) = budget(&args.budget) else {
        return usage("--budget must be finagle, aws, aws-2026, grpc or none");
    };
    let breaker = match CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(args.breaker))
        .build()
    {
        Ok(b) => b,
        Err(e) => return usage(&e.to_string()),
    };
    let connect = match optional_duration("--connect-timeout", args.connect_timeout.as_deref()) {
        Ok(timeout) => timeout,
        Err(code) => return code,
    };
    let read = match optional_duration("--read-timeout", args.read_timeout.as_deref()) {
        Ok(timeout) => timeout,
        Err(code) => return code,
    };
    let mut builder = Client::builder()
        .policy(policy)
        .breaker(std::sync::Arc::new(std::sync::Mutex::new(breaker)));
    builder = match budget {
        Some(budget) => builder.budget(std::sync::Arc::new(std::sync::Mutex::new(budget))),
        None => builder.no_budget(),
    };
    let mut builder = builder
        .max_redirects(if args.location { args.max_redirs } else { 0 })
        .hooks(Narrator);
    if let Some(timeout) = connect {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(timeout) = read {
        builder = builder.read_timeout(timeout);
    }
    if let Some(spec) = &args.hedge {
        let hedging = match HedgeSpec::parse(spec) {
            Ok(spec) => spec.hedging(Some(HEDGE_FALLBACK)),
            Err(message) => return usage(&message),
        };
        if let Some((hedging, sketch)) = hedging {
            let sketch = match sketch.build() {
                Ok(sketch) => sketch,
                Err(e) => return usage(&format!("--hedge: {e}")),
            };
            builder = builder
                .hedge(hedging)
                .latency_sketch(std::sync::Arc::new(std::sync::Mutex::new(sketch)));
        }
    }
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy);
    } else if args.no_proxy {
        builder = builder.no_proxy();
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return usage(&format!("{e:#}")),
    };
    let mut request = client.request(method, &args.url);
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return usage(&format!("header {header:?} must look like 'name: value'"));
        };
        request = request.header(name.trim(), value.trim());
    }
    match (&args.data, &args.data_raw) {
        (Some(data), _) => match body_from(data) {
            Ok(body) => request = request.body(body),
            Err(message) => return usage(&message),
        },
        (None, Some(raw)) => request = request.body(raw.clone()),
        (None, None) => {}
    }
    let response = match request.send() {
        Ok(response) => response,
        Err(e) => match e.kind() {
            ErrorKind::InvalidUrl | ErrorKind::InvalidConfig => return usage(&format!("{e:#}")),
            // The hooks said which redirect and why; the 3xx is no answer to print.
            ErrorKind::Redirect(_) => {
                note!("resil: {e:#}");
                return ExitCode::from(1);
            }
            _ => {
                // What the transport saw, for a failure the hooks narrated without a response.
                let mut root = std::error::Error::source(&e);
                while let Some(deeper) = root.and_then(std::error::Error::source) {
                    root = Some(deeper);
                }
                let root = root.map(ToString::to_string);
                match e.into_response() {
                    // Gave up with a response in hand (e.g. 503 after the last retry): show it.
                    Some(response) => response,
                    None => {
                        if let Some(root) = root {
                            note!("resil: cause: {root}");
                        }
                        return ExitCode::from(1);
                    }
                }
            }
        },
    };
    let status = response.status().as_u16();
    if args.verbose {
        note!("resil: {:?} {}", response.version(), response.status());
        for (name, value) in response.headers() {
            note!("resil:   {name}: {}", value.to_str().unwrap_or("[binary]"));
        }
    }
    if status < 200 {
        // A final 1xx is no answer: an unasked protocol switch (101), or a server that broke
        // off after an interim response.
        note!("resil: the final response was {status}, not an answer with a body");
        return ExitCode::from(1);
    }
    let mut body = response.into_body();
    let copied = match &args.output {
        Some(path) => copy_to_file(&mut body, path),
        None => copy_to_stdout(&mut body),
    };
    match copied {
        Ok(()) => {}
        // The reader went away (`resil get URL | head -1`): it has what it wanted.
        Err(Copy::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(Copy::Write(e)) => {
            note!("resil: writing the response body failed: {e}");
            return ExitCode::from(1);
        }
        Err(Copy::Read(e)) => {
            note!("resil: reading the response body failed: {e}");
            return ExitCode::from(1);
        }
    }
    match status {
        0..400 => ExitCode::SUCCESS,
        400..500 => ExitCode::from(4),
        _ => ExitCode::from(5),
    }
}

/// Which side of a copy failed.
enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// The body to stdout, whole and once: up to [`HOLD`] is kept in memory first, so a body
/// that fails before then starts again without a byte written twice; past it, the body
/// streams and only a range can continue it.
fn copy_to_stdout(body: &mut resil_blocking::Body) -> Result<(), Copy> {
    let mut out = std::io::stdout().lock();
    let mut held = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    body.set_restartable(true);
    loop {
        let n = read_some(body, &mut buf)?;
        if body.restarted() {
            held.clear();
        }
        if n == 0 {
            break;
        }
        if body.is_restartable() {
            held.extend_from_slice(&buf[..n]);
            if held.len() > HOLD {
                out.write_all(&held).map_err(Copy::Write)?;
                held = Vec::new();
                body.set_restartable(false);
            }
        } else {
            out.write_all(&buf[..n]).map_err(Copy::Write)?;
        }
    }
    out.write_all(&held).map_err(Copy::Write)?;
    out.flush().map_err(Copy::Write)
}

/// The body to `path` through a temporary file beside it, renamed on success and removed on
/// failure. The file can always be emptied, so the body may start again at any point.
fn copy_to_file(body: &mut resil_blocking::Body, path: &Path) -> Result<(), Copy> {
    let name = path
        .file_name()
        .map_or_else(|| "resil".into(), |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.resil-{}.part", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&partial).map_err(Copy::Write)?;
        let mut buf = vec![0; 64 * 1024];
        body.set_restartable(true);
        loop {
            let n = read_some(body, &mut buf)?;
            if body.restarted() {
                file.set_len(0).map_err(Copy::Write)?;
                file.rewind().map_err(Copy::Write)?;
            }
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(Copy::Write)?;
        }
        file.sync_all().map_err(Copy::Write)?;
        std::fs::rename(&partial, path).map_err(Copy::Write)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// One read of the body, retried when interrupted.
fn read_some(body: &mut resil_blocking::Body, buf: &mut [u8]) -> Result<usize, Copy> {
    loop {
        match body.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(Copy::Read),
        }
    }
}
