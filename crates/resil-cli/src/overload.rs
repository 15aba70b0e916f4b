//! Overload: `resil sim` on an `[overload]` scenario (a server of limited capacity and a fleet
//! offering more, one run per client kind, a chart of goodput, server load and the client's
//! limit over time), and `resil demo`'s overload section (the same against the embedded
//! server).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use plotters::coord::Shift;
use plotters::prelude::*;
use resil_sim::{
    LimiterKind, OverloadClient, OverloadReport, OverloadScenario, Rejection, run_overload,
};
use resil_tests::{Reply, TestServer};
use serde::Deserialize;

/// A scenario file with an `[overload]` table instead of the fleet keys.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    seed: u64,
    overload: OverloadFile,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct OverloadFile {
    duration_secs: u64,
    warmup_secs: Option<u64>,
    clients: u32,
    capacity_per_second: f64,
    /// Offered load as a multiple of capacity.
    offered: f64,
    queue_ms: Option<u64>,
    latency_ms: Option<u64>,
    /// `429` (with `Retry-After`) or `503` (without).
    rejection: u16,
    retry_after_secs: Option<u64>,
    reject_cost: Option<f64>,
    deadline_ms: Option<u64>,
    /// One breaker, budget and limiter for the fleet instead of one per client.
    shared: Option<bool>,
    /// The clients to compare: `no_retries`, `retries`, `budget`, `defaults`, and the limiters
    /// `adaptive_rate`, `throttle`, `aimd`, `gradient`, `quota`, `throttle+aimd`.
    compare: Vec<String>,
}

/// Whether a scenario file is an overload scenario (has an `[overload]` table).
pub fn is_overload(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("overload"))
}

/// The most client kinds one file compares.
const MAX_COMPARED: usize = 10;
/// The largest run: calls over all compared kinds.
const MAX_CALLS: u64 = 20_000_000;

fn scenario(file: &File) -> Result<(OverloadScenario, Vec<OverloadClient>), String> {
    let o = &file.overload;
    let mut s = OverloadScenario::new(file.seed);
    if o.duration_secs == 0 || o.duration_secs > 24 * 3600 {
        return Err("overload.duration_secs must be 1 to 86400".into());
    }
    s.duration = Duration::from_secs(o.duration_secs);
    s.warmup = Duration::from_secs(o.warmup_secs.unwrap_or(o.duration_secs / 6));
    if s.warmup >= s.duration {
        return Err("overload.warmup_secs must be shorter than duration_secs".into());
    }
    if o.clients == 0 || o.clients > 1_000_000 {
        return Err("overload.clients must be 1 to 1000000".into());
    }
    s.clients = o.clients;
    if !(o.capacity_per_second.is_finite() && o.capacity_per_second >= 1.0) {
        return Err("overload.capacity_per_second must be at least 1".into());
    }
    s.capacity = o.capacity_per_second;
    if !(o.offered.is_finite() && o.offered > 0.0 && o.offered <= 100.0) {
        return Err("overload.offered must be above 0 and at most 100".into());
    }
    s.offered = o.offered;
    s.queue = Duration::from_millis(o.queue_ms.unwrap_or(25));
    s.latency = Duration::from_millis(o.latency_ms.unwrap_or(1));
    s.rejection = match o.rejection {
        429 => Rejection::TooManyRequests {
            retry_after_secs: o.retry_after_secs.unwrap_or(1).min(3600),
        },
        503 => Rejection::Unavailable,
        other => return Err(format!("overload.rejection {other} is not 429 or 503")),
    };
    let cost = o.reject_cost.unwrap_or(0.1);
    if !(cost.is_finite() && (0.0..=10.0).contains(&cost)) {
        return Err("overload.reject_cost must be 0 to 10".into());
    }
    s.reject_cost = cost;
    s.deadline = Duration::from_millis(o.deadline_ms.unwrap_or(2000).clamp(1, 3_600_000));
    s.shared = o.shared.unwrap_or(false);
    if o.compare.is_empty() || o.compare.len() > MAX_COMPARED {
        return Err(format!(
            "overload.compare names 1 to {MAX_COMPARED} clients"
        ));
    }
    let clients = o
        .compare
        .iter()
        .map(|name| {
            OverloadClient::parse(name).ok_or_else(|| {
                format!(
                    "overload.compare: {name:?} is not no_retries, retries, budget, defaults, \
                     adaptive_rate, throttle, aimd, gradient, quota or throttle+aimd"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if s.expected_calls().saturating_mul(clients.len() as u64) > MAX_CALLS {
        return Err(format!(
            "the runs would start about {} calls; at most {MAX_CALLS}",
            s.expected_calls().saturating_mul(clients.len() as u64)
        ));
    }
    Ok((s, clients))
}

/// `resil sim` on an overload scenario; `only` runs one client kind of its list (or any).
pub fn run(path: &Path, text: &str, svg: Option<&Path>, only: Option<&str>) -> ExitCode {
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            note!("resil sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let (scenario, mut clients) = match scenario(&file) {
        Ok(s) => s,
        Err(e) => {
            note!("resil sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if let Some(only) = only {
        match OverloadClient::parse(only) {
            Some(client) => clients = vec![client],
            None => {
                note!(
                    "resil sim: --client {only:?} is not no_retries, retries, budget, defaults, \
                     adaptive_rate, throttle, aimd, gradient, quota or throttle+aimd"
                );
                return ExitCode::from(2);
            }
        }
    }
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("overload".into(), |s| s.to_string_lossy().into_owned())
    });
    let runs: Vec<(OverloadClient, OverloadReport)> = clients
        .into_iter()
        .map(|c| {
            let report = run_overload(&scenario, &c);
            (c, report)
        })
        .collect();
    say!("scenario           {name}");
    say!(
        "{} clients offering {:.1}x a capacity of {}/s for {:?} (steady after {:?}), {} per call",
        scenario.clients,
        scenario.offered,
        scenario.capacity,
        scenario.duration,
        scenario.warmup,
        format_args!("{:?}", scenario.deadline)
    );
    say!(
        "{:<16} {:>8} {:>12} {:>9} {:>10} {:>8} {:>8} {:>13}",
        "client",
        "goodput",
        "rejections/",
        "attempts/",
        "rejected",
        "p50 ms",
        "p99 ms",
        "breaker"
    );
    say!(
        "{:<16} {:>8} {:>12} {:>9} {:>10} {:>8} {:>8} {:>13}",
        "",
        "(x C)",
        "success",
        "call",
        "locally",
        "",
        "",
        "openings"
    );
    for (client, r) in &runs {
        say!(
            "{:<16} {:>8.2} {:>12} {:>9.2} {:>10} {:>8.1} {:>8.1} {:>13}",
            client.name(),
            r.goodput(&scenario),
            if r.goodput(&scenario) > 0.0 {
                format!("{:.2}", r.rejections_per_success(&scenario))
            } else {
                "no success".into()
            },
            r.attempts_per_call(),
            r.local_rejections,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.breaker_opened
        );
    }
    let out = svg
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.with_extension("svg"));
    match chart(&runs, &scenario, &name, &out) {
        Ok(()) => {
            say!("chart              {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            note!("resil sim: writing {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

const COLORS: [RGBColor; 10] = [
    BLUE,
    RGBColor(0, 140, 0),
    RED,
    MAGENTA,
    BLACK,
    CYAN,
    RGBColor(230, 140, 0),
    RGBColor(120, 60, 160),
    RGBColor(120, 120, 120),
    RGBColor(160, 90, 40),
];

/// Three panels over simulated time, a line per client kind: goodput (successes per second
/// as a fraction of capacity), server load (attempts reaching it, the same unit) and the
/// client's limit (client 0's, in each limiter's unit, log scale).
fn chart(
    runs: &[(OverloadClient, OverloadReport)],
    scenario: &OverloadScenario,
    title: &str,
    path: &Path,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (960, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    let seconds = runs
        .iter()
        .map(|(_, r)| r.seconds.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let c = scenario.capacity;
    let goodput = |r: &OverloadReport| -> Vec<(f64, f64)> {
        r.seconds
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64 + 0.5, s.ok as f64 / c))
            .collect()
    };
    let load = |r: &OverloadReport| -> Vec<(f64, f64)> {
        r.seconds
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64 + 0.5, s.attempts as f64 / c))
            .collect()
    };
    let series =
        |f: &dyn Fn(&OverloadReport) -> Vec<(f64, f64)>| -> Vec<(String, Vec<(f64, f64)>)> {
            runs.iter().map(|(k, r)| (k.name(), f(r))).collect()
        };
    panel(
        &panels[0],
        "goodput (successes/s ÷ capacity)",
        seconds,
        &series(&goodput),
        false,
    )?;
    panel(
        &panels[1],
        "server load (attempts/s ÷ capacity)",
        seconds,
        &series(&load),
        false,
    )?;
    let limits: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .filter_map(|(k, r)| match k {
            OverloadClient::Limiter(kind) => Some((
                format!("{} ({})", kind.name(), kind.unit()),
                r.seconds
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.limit.map(|l| (i as f64 + 0.5, l.max(0.01))))
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    panel(&panels[2], "client 0's limit (log)", seconds, &limits, true)?;
    root.present().map_err(|e| e.to_string())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    what: &str,
    seconds: f64,
    lines: &[(String, Vec<(f64, f64)>)],
    log: bool,
) -> Result<(), String> {
    let top = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("simulated second")
                .y_desc(what)
                .draw()
                .map_err(|e| e.to_string())?;
            for ((name, points), color) in lines.iter().zip(COLORS) {
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            if !lines.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    if log {
        draw!(
            builder
                .build_cartesian_2d(0f64..seconds, (0.01f64..top.max(1.0)).log_scale())
                .map_err(|e| e.to_string())?
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d(0f64..seconds, 0f64..top)
                .map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `resil demo`'s overload section.

/// The demo server's capacity, per second, and how long a row runs.
const DEMO_CAPACITY: f64 = 200.0;
const DEMO_RUN: Duration = Duration::from_secs(3);
const DEMO_TASKS: u32 = 16;
/// How far ahead the demo server queues a request before it answers 429.
const DEMO_QUEUE: Duration = Duration::from_millis(25);

/// The demo server's bucket: a turn every 1/C, a queue of [`DEMO_QUEUE`], a tenth of a turn
/// lost per rejection.
struct DemoBucket {
    next: Instant,
    served: usize,
}

impl DemoBucket {
    fn reply(&mut self, now: Instant) -> Reply {
        let per = Duration::from_secs_f64(1.0 / DEMO_CAPACITY);
        let turn = self.next.max(now);
        if turn - now <= DEMO_QUEUE {
            self.next = turn + per;
            self.served += 1;
            Reply::late(turn - now, Reply::body(200, "{\"ok\":true}"))
        } else {
            self.next += per / 10;
            Reply::with_header(429, "retry-after", "1")
        }
    }
}

/// One demo row: calls offered, successes within the run, what the server served, server
/// requests and connections.
struct DemoRow {
    calls: u64,
    ok: u64,
    served: usize,
    server_requests: usize,
    connections: usize,
}

fn demo_row(
    configure: &dyn Fn(resil_tokio::ClientBuilder) -> resil_tokio::ClientBuilder,
    seed: u64,
) -> Result<DemoRow, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = TestServer::start();
        let bucket = Arc::new(Mutex::new(DemoBucket {
            next: Instant::now(),
            served: 0,
        }));
        let handler = bucket.clone();
        server.handle("/api/busy", move |_, _| {
            handler
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reply(Instant::now())
        });
        let client = configure(
            resil_tokio::Client::builder()
                .no_proxy()
                .base_url(&server.url("/api"))
                .seed(seed),
        )
        .build()
        .map_err(|e| format!("{e:#}"))?;
        let ok = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let period = Duration::from_secs_f64(f64::from(DEMO_TASKS) / (3.0 * DEMO_CAPACITY));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for task in 0..DEMO_TASKS {
            let (client, ok, calls) = (client.clone(), ok.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let mut at = start + period.mul_f64(f64::from(task) / f64::from(DEMO_TASKS));
                let mut inflight = Vec::new();
                while at < start + DEMO_RUN {
                    tokio::time::sleep_until(at).await;
                    calls.fetch_add(1, Ordering::Relaxed);
                    let (client, ok) = (client.clone(), ok.clone());
                    inflight.push(tokio::spawn(async move {
                        use resil_tokio::ResponseExt;
                        let call = client.get("busy").timeout(Duration::from_secs(2));
                        if let Ok(r) = call.send().await {
                            // Goodput counts what the server served within the run.
                            let in_time = tokio::time::Instant::now() < start + DEMO_RUN;
                            if r.status() == 200 && r.text().await.is_ok() && in_time {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                    at += period;
                }
                for call in inflight {
                    let _ = call.await;
                }
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())?;
        }
        Ok(DemoRow {
            calls: calls.load(Ordering::Relaxed),
            ok: ok.load(Ordering::Relaxed),
            served: bucket.lock().unwrap_or_else(PoisonError::into_inner).served,
            server_requests: server.hits("/api/busy"),
            connections: server.connections(),
        })
    })
}

/// The rows of the demo's overload section: a name and how it configures the client.
type DemoConfig = (
    &'static str,
    Box<dyn Fn(resil_tokio::ClientBuilder) -> resil_tokio::ClientBuilder>,
);

fn demo_rows() -> Vec<DemoConfig> {
    vec![
        (
            "retries only (no breaker, budget or limiter)",
            Box::new(|b: resil_tokio::ClientBuilder| b.no_breaker().no_budget().no_limiters()),
        ),
        (
            "`Client::builder()` defaults",
            Box::new(|b: resil_tokio::ClientBuilder| b),
        ),
        (
            "`.limiter(AIMD ConcurrencyLimiter)`",
            Box::new(
                |b: resil_tokio::ClientBuilder| match resil_core::ConcurrencyLimiter::builder()
                    .algorithm(resil_core::LimitAlgorithm::aimd())
                    .build()
                {
                    Ok(aimd) => b.limiter(Arc::new(Mutex::new(aimd))),
                    Err(_) => b,
                },
            ),
        ),
    ]
}

/// The demo's overload section: 16 tasks offering 3× an embedded server's capacity.
pub fn demo_section(seed: u64) -> Result<(), String> {
    say!(
        "\nOverload: {DEMO_TASKS} tokio tasks offer {} calls/s for {DEMO_RUN:?} to an embedded server that serves {DEMO_CAPACITY}/s\n\
         (a {DEMO_QUEUE:?} queue, then 429 + Retry-After: 1), each call with a 2 s deadline.",
        3.0 * DEMO_CAPACITY
    );
    say!(
        "\n| client | goodput within the run (x capacity) | server rejections / success | attempts / call | failed calls | connections |"
    );
    say!("|---|---|---|---|---|---|");
    for (name, configure) in demo_rows() {
        let row = demo_row(&*configure, seed)?;
        // The server answers 200 or 429: what it did not serve, it rejected.
        let rejected = row.server_requests.saturating_sub(row.served);
        say!(
            "| {name} | {:.2} | {:.2} | {:.2} | {} | {} |",
            row.ok as f64 / DEMO_RUN.as_secs_f64() / DEMO_CAPACITY,
            rejected as f64 / row.served.max(1) as f64,
            row.server_requests as f64 / row.calls.max(1) as f64,
            row.calls.saturating_sub(row.ok),
            row.connections
        );
    }
    let _ = LimiterKind::ALL;
    Ok(())
}
