//! `resil`: resilient HTTP requests from the command line, an offline demo against an
//! embedded misbehaving server, and fleet simulations with SVG charts.
//!
//! Exit codes: 0 success (final status 200-399, the whole body written once); 1 the call
//! failed without a usable response (transport error, timeout, deadline, open breaker,
//! exhausted budget, a redirect `-L` would not follow, a final 1xx, a body that broke off and
//! could not be had whole); 2 invalid
//! arguments, URL or scenario file; 4 the final response was a 4xx; 5 the final response was
//! a 5xx (also after retries ran out). A reader that stops early (`resil get URL | head -1`)
//! is not a failure: the body stops quietly and the code still follows the response.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// `eprintln!` that does not panic when stderr is closed or a broken pipe (`resil get URL
/// 2>&1 | head -1`): a diagnostic nobody can read is dropped.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `println!` that does not panic when stdout is closed or a broken pipe (`resil demo |
/// head -3`): the command still finishes its work (a `sim` still writes its chart).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod demo;
mod get;
mod hedge;
mod overload;
mod sim;

#[derive(Parser, Debug)]
#[command(
    name = "resil",
    version,
    about = "Resilient HTTP: retries, Retry-After, deadlines, circuit breaking, budgets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// GET a URL through resil; one line per attempt on stderr, the body on stdout.
    Get(get::RequestArgs),
    /// POST a URL (the body from -d).
    Post(get::RequestArgs),
    /// PUT a URL (the body from -d).
    Put(get::RequestArgs),
    /// DELETE a URL.
    Delete(get::RequestArgs),
    /// Run a workload against an embedded misbehaving server on 127.0.0.1 and summarise.
    Demo(DemoArgs),
    /// Simulate a fleet from a scenario file; print a summary and write an SVG chart (at most
    /// 1,000,000 clients and 20,000,000 logical requests, about ten seconds).
    Sim(SimArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Logical requests in the workload (paced at 20/s per thread).
    #[arg(long, default_value_t = 800)]
    requests: u32,
    /// Concurrent workers (threads for the blocking client, tasks for tokio), 1 to 1024.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Seed for jitter.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// No progress bar (for logs and tests).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct SimArgs {
    /// The scenario file (TOML; see crates/resil-cli/scenarios/).
    scenario: PathBuf,
    /// Where to write the chart (default: the scenario's name with .svg).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// In an overload scenario, run only this client of its `compare` list (or any other:
    /// `no_retries`, `retries`, `budget`, `defaults`).
    #[arg(long)]
    client: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Get(args) => get::run(http::Method::GET, &args),
        Command::Post(args) => get::run(http::Method::POST, &args),
        Command::Put(args) => get::run(http::Method::PUT, &args),
        Command::Delete(args) => get::run(http::Method::DELETE, &args),
        Command::Demo(args) => demo::run(args.requests, args.threads, args.seed, args.quiet),
        Command::Sim(args) => sim::run(&args.scenario, args.svg.as_deref(), args.client.as_deref()),
    }
}
