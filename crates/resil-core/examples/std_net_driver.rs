//! A complete blocking HTTP/1.1 driver over `std::net::TcpStream`, the proof that resil-core
//! is sans-IO: the machine makes every decision; this file only moves bytes and keeps time.
//! `cargo run -p resil-core --features std --example std_net_driver -- http://127.0.0.1:PORT/`

use resil_core::{Action, Backoff, Input, Instant, Jitter, Method, RequestInfo, ResponseHead};
use resil_core::{PolicyError, RetryAfter, RetryMachine, RetryPolicy, TransportErrorKind as Kind};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::{io, io::ErrorKind, io::Read, io::Write, process::ExitCode, thread, time::Duration};

/// One attempt, all by `until`: the response's status, Retry-After and body length.
fn get(host: &str, path: &str, until: Instant) -> Result<(ResponseHead<'static>, usize), Kind> {
    let left = || (until - Instant::now()).max(Duration::from_micros(1));
    let sent = |e: io::Error| match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Kind::Timeout,
        _ => Kind::Reset,
    };
    let stream = TcpStream::connect_timeout(&host.parse().map_err(|_| Kind::Dns)?, left());
    let stream = stream.map_err(|_| Kind::Connect)?; // refused or unreachable: never sent
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.set_write_timeout(Some(left())).map_err(sent)?;
    (&stream).write_all(request.as_bytes()).map_err(sent)?;
    let _ = stream.shutdown(Shutdown::Write); // so that even a keep-alive server ends at EOF
    let mut response = Vec::new();
    stream.set_read_timeout(Some(left())).map_err(sent)?;
    (&stream).read_to_end(&mut response).map_err(sent)?; // Connection: close, so up to EOF
    let end = response.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = response.split_at(end.ok_or(Kind::Protocol)? + 4);
    let head = String::from_utf8_lossy(head);
    let retry_after = (head.lines().filter_map(|l| l.split_once(':')))
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| RetryAfter::parse(value.trim().as_bytes()));
    let status = (head.strip_prefix("HTTP/1.")).and_then(|l| l.get(2..5)?.parse().ok());
    let head = ResponseHead::new(status.ok_or(Kind::Protocol)?);
    Ok((head.with_retry_after(retry_after, None), body.len()))
}

fn main() -> Result<ExitCode, PolicyError> {
    let url = std::env::args().nth(1).unwrap_or_default();
    let rest = url.strip_prefix("http://").unwrap_or_default();
    let (host, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    if host.parse::<SocketAddr>().is_err() || url.contains(char::is_whitespace) {
        eprintln!("usage: std_net_driver http://IP:PORT/PATH (plain http, an IP); got {url:?}");
        return Ok(ExitCode::from(2));
    }
    let backoff = Backoff::Constant(Duration::from_millis(10));
    let policy = RetryPolicy::builder().max_attempts(4).jitter(Jitter::None);
    let policy = policy.backoff(backoff).retry_after_spread(0.0).build()?; // no RNG: seed 0
    let mut machine = RetryMachine::new(&policy, RequestInfo::new(Method::Get), Instant::now(), 0);
    let (mut status, mut body) = (0, 0);
    loop {
        let input = match machine.poll_action() {
            Action::Send { attempt, deadline } => match get(host, path, deadline) {
                Ok((head, b)) => {
                    (status, body) = (head.status, b);
                    println!("{attempt}: {status}");
                    Input::Response { attempt, head }
                }
                Err(kind) => {
                    println!("{attempt}: {kind}");
                    Input::Error { attempt, kind }
                }
            },
            Action::Sleep { until } => {
                thread::sleep(until - Instant::now());
                Input::Timer
            }
            // One attempt at a time (this policy does not hedge): nothing is ever cancelled.
            Action::Cancel { .. } => continue,
            Action::Done { attempt } => {
                println!("done: {status} on {attempt}, body {body} bytes");
                return Ok(ExitCode::from(u8::from(!(200..300).contains(&status))));
            }
            Action::Fail(give_up) => {
                println!("{give_up}");
                return Ok(ExitCode::FAILURE);
            }
        };
        machine.handle_input(Instant::now(), input);
    }
}
