//! A loopback HTTP/1.1 server that answers with the statuses it is given, for running a
//! driver (such as resil-core's `std_net_driver` example) against from a shell.
//!
//! `scripted_server 503 200` prints its base URL (`http://127.0.0.1:PORT/`) as the first line
//! of stdout, answers the first request to `/` with 503 and every later one with 200 (the last
//! status repeats; a 2xx carries the body `hello`), and serves until its stdin is closed. Then
//! it prints how many requests it got on stderr and exits 0. Bad arguments exit 2.

use std::io::{self, Write};
use std::process::ExitCode;

use resil_tests::{Reply, TestServer};

fn main() -> ExitCode {
    let statuses: Result<Vec<u16>, String> = std::env::args()
        .skip(1)
        .map(|arg| match arg.parse::<u16>() {
            Ok(status) if (200..=599).contains(&status) => Ok(status),
            _ => Err(arg),
        })
        .collect();
    let statuses = match statuses {
        Ok(statuses) if !statuses.is_empty() => statuses,
        Ok(_) => return usage("no status given"),
        Err(arg) => return usage(&format!("{arg:?} is not a status from 200 to 599")),
    };
    let replies = statuses
        .into_iter()
        .map(|status| match status {
            200..=299 => Reply::body(status, "hello"),
            _ => Reply::status(status),
        })
        .collect();
    let server = TestServer::start();
    server.script("/", replies);
    let mut stdout = io::stdout().lock();
    if writeln!(stdout, "{}", server.url("/"))
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("scripted_server: cannot write the URL to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Serve until whoever started us closes our stdin (EOF, or an error reading it).
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    let requests = server.requests().len();
    eprintln!("scripted_server: served {requests} requests");
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("scripted_server: {problem}");
    eprintln!("usage: scripted_server STATUS... (e.g. `503 200`; the last one repeats)");
    ExitCode::from(2)
}
