//! Issue 27's benchmark: 8 client processes, each with its own breaker, call a loopback
//! server that fails every request for 10 s and then recovers, local-only and then
//! fleet-shared through a real `redis-server`; 1 of the 8 sends 1 request/s, the rest as fast
//! as they can. Then the same 8 against a healthy server while Redis is killed mid-run.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin fleet_outage
//! target/release/fleet_outage                    # the outage runs and the Redis kill
//! crates/resil-bench/callgrind.sh target/release/fleet_outage local   # success-path CPU
//! crates/resil-bench/callgrind.sh target/release/fleet_outage fleet
//! ```
//!
//! The binary runs itself again as each client process (`FLEET_CHILD=1`) and, for the
//! success-path runs (`ONLY=local|fleet`), as the `/ok` server (`--server`). The outage server
//! runs in this process and logs every attempt (time, process). Redis is Debian's
//! `redis-server` on a free loopback port, killed by its pid (resil-tests' `RedisServer`).
//! Open and close times are each process's wall clock (one host: the clocks are the same).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use resil_blocking::{BreakerState, CircuitBreaker, ErrorKind, RetryPolicy, TripCondition};
use resil_core::HalfOpen;
use resil_redis::{FleetPolicy, RedisFleet};
use resil_tests::RedisServer;

const PROCESSES: usize = 8;
/// Each breaker's open period: `OPEN_MS` (default 1000).
fn open_for() -> Duration {
    Duration::from_millis(
        std::env::var("OPEN_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000)
            .max(1),
    )
}
/// Healthy before the outage, the outage, and after it (a progressive half-open closes in
/// six stages of one open period each).
const BEFORE: u64 = 2_000;
const OUTAGE: u64 = 10_000;
const AFTER: u64 = 12_000;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

fn env_u64(k: &str) -> u64 {
    env(k).parse().unwrap_or(0)
}

fn main() {
    let (requests, _) = resil_bench::requests_and_rounds(5_000, 1);
    if env("FLEET_CHILD") == "1" {
        return child();
    }
    if let Ok(only) = std::env::var("ONLY") {
        return success_path(&only, requests);
    }
    let local = outage_run(false);
    let fleet = outage_run(true);
    println!(
        "\n== 8 processes, 10 s outage (open {:?}, 5 consecutive failures, progressive half-open)",
        open_for()
    );
    println!(
        "{:<13} {:>18} {:>22} {:>16} {:>26} {:>28}",
        "state",
        "attempts in outage",
        "probes after opening",
        "probes / period",
        "opened after start (ms)",
        "closed after recovery (ms)"
    );
    for (name, r) in [("local-only", &local), ("fleet-shared", &fleet)] {
        r.print(name);
    }
    println!(
        "fleet / local attempts in the outage: {:.3}",
        fleet.in_outage as f64 / local.in_outage.max(1) as f64
    );
    redis_kill_run();
}

/// One process of the fleet: calls `/call` until `STOP_MS` (every `EVERY_MS`, or as fast as
/// it can when 0), watching its breaker, and prints what it saw.
fn child() {
    let every = Duration::from_millis(env_u64("EVERY_MS"));
    let proc_id = env("PROC");
    let breaker = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(5))
        .open_for(open_for())
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .open_jitter(0.1, env_u64("PROC") + 1)
        .build()
        .expect("breaker");
    let breaker = Arc::new(Mutex::new(breaker));
    let mut builder = resil_blocking::Client::builder()
        .base_url(&env("SERVER"))
        .no_proxy()
        .policy(
            RetryPolicy::builder()
                .max_attempts(1)
                .build()
                .expect("policy"),
        )
        .no_budget()
        .breaker(breaker.clone());
    let redis = env("REDIS");
    if !redis.is_empty() {
        let policy = FleetPolicy::builder().build().expect("fleet policy");
        let fleet = RedisFleet::builder(&redis, &env("FLEET_NAME"))
            .policy(policy)
            .build()
            .expect("fleet");
        builder = builder.fleet(fleet);
    }
    let client = builder.build().expect("client");
    let (start, end, stop) = (env_u64("START_MS"), env_u64("END_MS"), env_u64("STOP_MS"));
    let (mut ok, mut failed, mut rejected, mut other) = (0u64, 0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let (mut opened, mut closed) = (None, None);
    let mut watch = |now: u64| {
        let state = breaker
            .lock()
            .map(|b| b.state())
            .unwrap_or(BreakerState::Closed);
        if opened.is_none() && state != BreakerState::Closed && now >= start {
            opened = Some(now);
        }
        if opened.is_some() && closed.is_none() && state == BreakerState::Closed && now >= end {
            closed = Some(now);
        }
    };
    loop {
        let now = wall_ms();
        if now >= stop {
            break;
        }
        let t = Instant::now();
        let result = client.get("/call").header("x-proc", &proc_id).send();
        slowest = slowest.max(t.elapsed());
        match result {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(_) => other += 1,
            Err(e) => match e.kind() {
                ErrorKind::Status(500) => failed += 1,
                ErrorKind::CircuitOpen => rejected += 1,
                _ => other += 1,
            },
        }
        watch(wall_ms());
        if every.is_zero() {
            // A rejection returns at once; seven processes spinning on them would starve the
            // two cores the server, Redis and the sync threads share.
            if rejected > 0
                && breaker
                    .lock()
                    .is_ok_and(|b| b.state() == BreakerState::Open)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        // The quiet process watches its breaker between calls: the fleet opens it.
        let next = t + every;
        while Instant::now() < next && wall_ms() < stop {
            watch(wall_ms());
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let stats = client.stats();
    println!(
        "result ok={ok} failed={failed} rejected={rejected} other={other} opened={} closed={} \
         slowest_us={} syncs={} failed_syncs={}",
        opened.unwrap_or(0),
        closed.unwrap_or(0),
        slowest.as_micros(),
        stats.fleet_syncs,
        stats.fleet_sync_failures
    );
}

/// What one run measured.
struct Outcome {
    in_outage: u64,
    probes: u64,
    /// Open periods fleet-wide: from the first open to the outage's end, in open periods.
    periods: f64,
    opened: Vec<Option<u64>>,
    closed: Vec<Option<u64>>,
}

impl Outcome {
    fn print(&self, name: &str) {
        let list = |v: &[Option<u64>]| {
            v.iter()
                .map(|t| t.map_or("never".to_owned(), |t| t.to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{name:<13} {:>18} {:>22} {:>16.2}   open [{}]  closed [{}]",
            self.in_outage,
            self.probes,
            self.probes as f64 / self.periods.max(1.0),
            list(&self.opened),
            list(&self.closed)
        );
        let first = self.opened.iter().flatten().min();
        if let (Some(first), Some(Some(quiet))) = (first, self.opened.first()) {
            println!(
                "{:<13} quiet process opened {} ms after the first",
                "",
                quiet - first
            );
        }
    }
}

/// The server's log: (wall ms, process) of every attempt at `/call`.
type Log = Arc<Mutex<Vec<(u64, u32)>>>;

/// A keep-alive HTTP/1.1 server on a free loopback port answering `/call` with 500 while
/// `now` is in `[start, end)` of `window`, else 200; every attempt logged.
fn outage_server(window: Arc<(AtomicU64, AtomicU64)>, log: Log) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (window, log) = (window.clone(), log.clone());
            std::thread::spawn(move || serve(stream, &window, &log));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn serve(stream: TcpStream, window: &(AtomicU64, AtomicU64), log: &Mutex<Vec<(u64, u32)>>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut proc_id = u32::MAX;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("x-proc") {
                    proc_id = v.trim().parse().unwrap_or(u32::MAX);
                }
            }
        }
        let now = wall_ms();
        if let Ok(mut log) = log.lock() {
            log.push((now, proc_id));
        }
        let down =
            (window.0.load(Ordering::Relaxed)..window.1.load(Ordering::Relaxed)).contains(&now);
        let answer: &[u8] = if down {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// One child's `result` line, as key → value.
fn parse(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| l.split_once("result "))
        .flat_map(|(_, rest)| rest.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
        .collect()
}

fn spawn_children(vars: &[(&str, String)]) -> Vec<Child> {
    let exe = std::env::current_exe().expect("current exe");
    (0..PROCESSES)
        .map(|i| {
            // Process 0 is the quiet one: one call a second.
            let every = if i == 0 { "1000" } else { "0" };
            let mut cmd = Command::new(&exe);
            cmd.env("FLEET_CHILD", "1")
                .env("PROC", i.to_string())
                .env("EVERY_MS", every)
                .env("NO_PROXY", "127.0.0.0/8,127.*,localhost")
                .env("no_proxy", "127.0.0.0/8,127.*,localhost")
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            for (k, v) in vars {
                cmd.env(k, v);
            }
            cmd.spawn().expect("spawn a client process")
        })
        .collect()
}

fn collect(children: Vec<Child>) -> Vec<BTreeMap<String, u64>> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("client process");
            parse(&String::from_utf8_lossy(&out.stdout))
        })
        .collect()
}

fn outage_run(fleet: bool) -> Outcome {
    let redis = fleet.then(RedisServer::start);
    let window = Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)));
    let log: Log = Arc::default();
    let server = outage_server(window.clone(), log.clone());
    // The processes start together, after a moment to connect.
    let begin = wall_ms() + 1_000;
    let (start, end) = (begin + BEFORE, begin + BEFORE + OUTAGE);
    let stop = end + AFTER;
    window.0.store(start, Ordering::Relaxed);
    window.1.store(end, Ordering::Relaxed);
    let name = format!("bench-{}", std::process::id());
    let vars = [
        ("SERVER", server),
        (
            "REDIS",
            redis.as_ref().map(RedisServer::url).unwrap_or_default(),
        ),
        ("FLEET_NAME", name),
        ("START_MS", start.to_string()),
        ("END_MS", end.to_string()),
        ("STOP_MS", stop.to_string()),
    ];
    eprintln!(
        "{} run: 8 processes for {} s",
        if fleet { "fleet-shared" } else { "local-only" },
        (stop - wall_ms()) / 1000
    );
    let results = collect(spawn_children(&vars));
    drop(redis);
    let opened: Vec<Option<u64>> = results
        .iter()
        .map(|r| {
            r.get("opened")
                .copied()
                .filter(|t| *t > 0)
                .map(|t| t - start)
        })
        .collect();
    let closed: Vec<Option<u64>> = results
        .iter()
        .map(|r| r.get("closed").copied().filter(|t| *t > 0).map(|t| t - end))
        .collect();
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let in_outage = log.iter().filter(|(t, _)| (start..end).contains(t)).count() as u64;
    // A process whose breaker opened sends only probes until the outage ends.
    let probes = log
        .iter()
        .filter(|(t, p)| {
            (start..end).contains(t)
                && opened
                    .get(*p as usize)
                    .copied()
                    .flatten()
                    .is_some_and(|o| *t > start + o)
        })
        .count() as u64;
    let first = opened.iter().flatten().min().copied().unwrap_or(OUTAGE);
    let periods = (OUTAGE.saturating_sub(first)) as f64 / open_for().as_millis() as f64;
    for (i, r) in results.iter().enumerate() {
        eprintln!("  process {i}: {r:?}");
    }
    Outcome {
        in_outage,
        probes,
        periods,
        opened,
        closed,
    }
}

/// The 8 processes against a healthy server, fleet-shared; Redis killed (by pid) halfway.
fn redis_kill_run() {
    let mut redis = RedisServer::start();
    let window = Arc::new((AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)));
    let log: Log = Arc::default();
    let server = outage_server(window, log.clone());
    let begin = wall_ms() + 1_000;
    let stop = begin + 6_000;
    let vars = [
        ("SERVER", server),
        ("REDIS", redis.url()),
        ("FLEET_NAME", format!("bench-kill-{}", std::process::id())),
        ("START_MS", begin.to_string()),
        ("END_MS", stop.to_string()),
        ("STOP_MS", stop.to_string()),
    ];
    eprintln!("Redis kill run: 8 processes for 6 s, Redis killed 3 s in");
    let children = spawn_children(&vars);
    std::thread::sleep(Duration::from_millis(
        (begin + 3_000).saturating_sub(wall_ms()),
    ));
    redis.kill();
    let killed_at = wall_ms();
    let results = collect(children);
    let sum = |k: &str| {
        results
            .iter()
            .map(|r| r.get(k).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let slowest = results
        .iter()
        .filter_map(|r| r.get("slowest_us").copied())
        .max()
        .unwrap_or(0);
    println!("\n== Redis killed mid-run (healthy server, fleet-shared, 8 processes, 6 s)");
    println!(
        "calls ok {}  failed (500) {}  rejected by a breaker {}  other errors {}  slowest call {} µs  \
         syncs {} of which failed {}  (Redis killed {} ms into the run)",
        sum("ok"),
        sum("failed"),
        sum("rejected"),
        sum("other"),
        slowest,
        sum("syncs"),
        sum("failed_syncs"),
        killed_at.saturating_sub(begin)
    );
    let served = log.lock().map_or(0, |l| l.len());
    println!("the server answered {served} attempts (every call one attempt)");
}

/// `ONLY=local|fleet`: `--requests N` sequential GETs to a healthy `/ok` (the server a child
/// process) with the breaker the outage runs use, alone or in a fleet through a real Redis.
fn success_path(which: &str, requests: usize) {
    let (mut server, base) = resil_bench::spawn_server();
    let redis = (which == "fleet").then(RedisServer::start);
    let breaker = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(5))
        .open_for(open_for())
        .half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
        .build()
        .expect("breaker");
    let mut builder = resil_blocking::Client::builder()
        .base_url(&base)
        .no_proxy()
        .policy(
            RetryPolicy::builder()
                .max_attempts(1)
                .build()
                .expect("policy"),
        )
        .no_budget()
        .breaker(Arc::new(Mutex::new(breaker)));
    if let Some(redis) = &redis {
        let fleet = RedisFleet::new(&redis.url(), "bench-success-path").expect("fleet");
        builder = builder.fleet(fleet);
    }
    let client = builder.build().expect("client");
    let cpu = resil_bench::cpu_micros();
    let mut ok = 0;
    for _ in 0..requests {
        if client.get("/ok").send().is_ok_and(|r| r.status() == 200) {
            ok += 1;
        }
    }
    let cpu = resil_bench::cpu_micros() - cpu;
    eprintln!(
        "{which}: {ok} of {requests} ok, {:.2} µs CPU/request (syncs {})",
        cpu as f64 / requests as f64,
        client.stats().fleet_syncs
    );
    drop(client);
    drop(redis);
    drop(server.stdin.take());
    let _ = server.wait();
}
