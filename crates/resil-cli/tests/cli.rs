//! The `resil` binary end to end: against the embedded demo server, against loopback servers
//! that misbehave on purpose, and on the shipped scenario files.

use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use resil_tests::{Reply, TestServer, refused_addr, shared_load};

fn resil() -> Command {
    Command::cargo_bin("resil").unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_runs_offline_and_summarises() {
    let _load = shared_load();
    let out = resil()
        .args(["demo", "--requests", "120", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "| logical requests | 120 |",
        "| attempts sent |",
        "| Retry-After honoured |",
        "| breaker transitions |",
        "| success rate |",
        "| latency p50 / p99 |",
        "| tail latency p50 / p99 / p99.9 |",
        "| tail attempts per request |",
        "| hedges sent / won |",
        "| `Client::builder()` defaults |",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn get_narrates_retries_and_prints_the_body() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/r",
        vec![
            Reply::with_header(503, "retry-after", "0"),
            Reply::body(200, "hello"),
        ],
    );
    let out = resil()
        .args(["get", &server.url("/r"), "--backoff", "const:1ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("attempt 1 failed: status 503; retrying in"),
        "{stderr}"
    );
    assert!(stderr.contains("(Retry-After)"), "{stderr}");
    assert!(stderr.contains("attempt 2 answered 200"), "{stderr}");
}

#[test]
fn exit_codes_follow_the_outcome() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/missing", vec![Reply::body(404, "no")]);
    server.script("/down", vec![Reply::body(503, "down")]);
    let code = |args: &[&str]| resil().args(args).output().unwrap().status.code();
    assert_eq!(code(&["get", &server.url("/missing")]), Some(4));
    let out = resil()
        .args([
            "get",
            &server.url("/down"),
            "--retries",
            "1",
            "--backoff",
            "none",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        text(&out.stdout),
        "down",
        "the last response's body is still printed"
    );
    assert!(
        text(&out.stderr).contains("gave up after 2 attempts"),
        "{}",
        text(&out.stderr)
    );
    let refused = format!("http://{}/x", refused_addr());
    let out = resil()
        .args(["get", &refused, "--retries", "1", "--backoff", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .lines()
            .any(|line| line.starts_with("resil: cause: ") && line.contains("refused")),
        "the root cause of a failure without a response: {}",
        text(&out.stderr)
    );
    assert_eq!(code(&["get", "not a url"]), Some(2));
    assert_eq!(
        code(&["get", &server.url("/missing"), "--backoff", "sometimes"]),
        Some(2)
    );
    assert_eq!(
        code(&["get", &server.url("/missing"), "-H", "no-colon"]),
        Some(2)
    );
    assert_eq!(code(&["get"]), Some(2), "clap usage error");
    assert_eq!(code(&["demo", "--threads", "0"]), Some(2), "no workers");
    assert_eq!(
        code(&["get", &server.url("/missing"), "--timeout", "0s"]),
        Some(2),
        "a deadline of zero"
    );
    for option in ["--connect-timeout", "--read-timeout"] {
        assert_eq!(
            code(&["get", &server.url("/missing"), option, "0s"]),
            Some(2),
            "{option} of zero"
        );
    }
}

#[test]
fn a_read_timeout_ends_a_stalled_attempt_long_before_the_attempt_timeout() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/stall",
        vec![
            Reply::Stall(Duration::from_secs(5)),
            Reply::body(200, "late"),
        ],
    );
    let start = std::time::Instant::now();
    let out = resil()
        .args(["get", &server.url("/stall"), "--backoff", "none"])
        .args(["--read-timeout", "50ms", "--connect-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "late", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    // The 10 s attempt timeout and the 5 s stall would both take seconds.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

/// Runs `resil` with stdout and stderr both pipes whose reading ends are already closed, as
/// in `resil get URL 2>&1 | head -0`; its exit code.
#[allow(
    clippy::incompatible_msrv,
    reason = "std::io::pipe is 1.87; the tests need 1.88 anyway (proptest)"
)]
fn code_with_readers_gone(args: &[&str]) -> Option<i32> {
    let pipe = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        writer
    };
    std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(pipe())
        .stderr(pipe())
        .status()
        .unwrap()
        .code()
}

#[test]
fn a_reader_that_goes_away_ends_nothing_in_a_panic() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/r",
        vec![Reply::status(503), Reply::body(200, &"x".repeat(100_000))],
    );
    server.script("/down", vec![Reply::body(503, "down")]);
    let code = code_with_readers_gone;
    // 101 would be a panic writing the narration or the body.
    assert_eq!(
        code(&["get", &server.url("/r"), "--backoff", "none"]),
        Some(0)
    );
    assert_eq!(server.hits("/r"), 2, "the narrated retry still happened");
    assert_eq!(
        code(&["get", &server.url("/down"), "--retries", "0"]),
        Some(5)
    );
    assert_eq!(code(&["get", "not a url"]), Some(2));
    assert_eq!(code(&["demo", "--requests", "8", "--quiet"]), Some(0));
}

#[test]
fn post_sends_headers_and_body() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/items", vec![Reply::status(201)]);
    let out = resil()
        .args([
            "post",
            &server.url("/items"),
            "-H",
            "content-type: application/json",
            "-d",
            "{\"a\":1}",
            "-v",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.body, b"{\"a\":1}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(text(&out.stderr).contains("201"), "{}", text(&out.stderr));
}

#[test]
fn post_bodies_come_from_a_file_stdin_or_the_argument_as_curl_reads_them() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/echo", |_, _| Reply::status(204));
    let dir = std::env::temp_dir().join(format!("resil-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.bin");
    std::fs::write(&file, b"\x00from a file\n").unwrap();
    let url = server.url("/echo");

    let post = |args: &[&str], stdin: &[u8]| {
        resil()
            .arg("post")
            .arg(&url)
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap()
    };
    let at_file = format!("@{}", file.display());
    assert!(post(&["-d", &at_file], b"").status.success());
    assert!(post(&["-d", "@-"], b"from stdin").status.success());
    assert!(post(&["--data-raw", "@not-a-file"], b"").status.success());
    assert!(post(&["-d", "plain"], b"").status.success());
    let bodies: Vec<Vec<u8>> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies,
        [
            &b"\x00from a file\n"[..],
            b"from stdin",
            b"@not-a-file",
            b"plain"
        ]
    );

    let missing = format!("@{}", dir.join("missing").display());
    let out = post(&["-d", &missing], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read the body from"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.hits("/echo"), 4, "nothing sent without its body");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn sim_runs_every_shipped_scenario_and_writes_well_formed_svg() {
    let dir = std::env::temp_dir().join(format!("resil-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "outage-no-budget.toml",
        "outage-with-budget.toml",
        "rate-limit-storm.toml",
        "jitter-comparison.toml",
        "budget-comparison.toml",
        "fleet-sharing.toml",
    ] {
        let svg = dir.join(name).with_extension("svg");
        let out = resil()
            .args([
                "sim",
                scenario(name).to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("logical requests"), "{name}");
        let doc = std::fs::read_to_string(&svg).unwrap();
        let parsed = roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.root_element().tag_name().name(), "svg");
        assert!(
            parsed
                .descendants()
                .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
                .count()
                >= 4,
            "{name}: lines drawn"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_budget_bounds_load_during_the_outage() {
    let run = |name: &str| {
        let out = resil()
            .args([
                "sim",
                scenario(name).to_str().unwrap(),
                "--svg",
                "/dev/null",
            ])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("attempts"))
            .unwrap()
            .to_owned();
        let per_request: f64 = line
            .split('(')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        per_request
    };
    let without = run("outage-no-budget.toml");
    let with = run("outage-with-budget.toml");
    assert!(without > 1.5, "{without}");
    assert!(with < 1.25, "{with}");
}

/// The budget comparison: without a budget the outage's retries become a storm the backend
/// does not recover from while calls keep coming; each of the three budget kinds (Finagle's
/// ratio, the AWS SDKs' quota, gRPC's throttling) holds the load near the first attempts' and
/// the backend answers well again within seconds of the outage's end.
#[test]
fn every_budget_kind_keeps_an_outage_from_becoming_a_retry_storm() {
    let out = resil()
        .args([
            "sim",
            scenario("budget-comparison.toml").to_str().unwrap(),
            "--svg",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // budget, attempts per request, attempts per second in the outage, recovered.
    let row = |budget: &str| -> (f64, f64, String) {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(budget))
            .unwrap_or_else(|| panic!("no {budget} row in\n{stdout}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        let recovered = match cells[6] {
            "never" => "never".to_owned(),
            _ => format!("{} {}", cells[6], cells[7]),
        };
        (
            cells[2].parse().unwrap(),
            cells[3].parse().unwrap(),
            recovered,
        )
    };
    let (storm, storm_load, storm_recovered) = row("none");
    assert!(storm > 2.5, "{stdout}");
    assert_eq!(storm_recovered, "never", "{stdout}");
    for budget in ["finagle", "aws", "grpc"] {
        let (amplification, load, recovered) = row(budget);
        assert!(amplification < 1.1, "{budget}: {stdout}");
        assert!(load < storm_load / 2.5, "{budget}: {stdout}");
        let seconds: u64 = recovered
            .trim_start_matches('+')
            .trim_end_matches(" s")
            .parse()
            .unwrap_or_else(|_| panic!("{budget} never recovered: {stdout}"));
        assert!(seconds <= 5, "{budget}: {stdout}");
    }
}

#[test]
fn get_takes_a_budget_by_its_peers_name() {
    let _load = shared_load();
    let server = TestServer::start();
    for budget in ["finagle", "aws", "aws-2026", "grpc", "none"] {
        server.script("/r", vec![Reply::status(503), Reply::body(200, "ok")]);
        let out = resil()
            .args(["get", &server.url("/r"), "--backoff", "none"])
            .args(["--budget", budget])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{budget}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "ok", "{budget}");
    }
    let out = resil()
        .args(["get", &server.url("/r"), "--budget", "generous"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--budget must be"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_overload_scenarios_compare_every_client_and_chart_goodput_load_and_limit() {
    let dir = std::env::temp_dir().join(format!("resil-overload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = |name: &str, extra: &[&str]| {
        let svg = dir.join(name).with_extension("svg");
        let out = resil()
            .args([
                "sim",
                scenario(name).to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let doc = std::fs::read_to_string(&svg).unwrap();
        let parsed = roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let lines = parsed
            .descendants()
            .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
            .count();
        (text(&out.stdout), lines)
    };
    // Every shipped overload scenario runs (one client each, to keep the test short)...
    for name in [
        "overload-429.toml",
        "overload-503.toml",
        "overload-429-one-process.toml",
        "overload-503-one-process.toml",
    ] {
        let (stdout, _) = sim(name, &["--client", "aimd"]);
        assert!(
            stdout.contains("aimd") && !stdout.contains("retries only"),
            "{name}: {stdout}"
        );
    }
    // ...and one compares its whole list.
    let (stdout, lines) = sim("overload-429-one-process.toml", &[]);
    for client in [
        "no retries",
        "retries + budget",
        "defaults",
        "aimd",
        "throttle+aimd",
    ] {
        assert!(stdout.contains(client), "no {client:?} row in\n{stdout}");
    }
    // Ten clients on goodput and on load, six limiters on the limit panel.
    assert!(lines >= 26, "{lines} lines drawn");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_overload_files_are_usage_errors() {
    let dir = std::env::temp_dir().join(format!("resil-bad-overload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = "seed = 1\n[overload]\nduration_secs = 10\nclients = 10\n\
                capacity_per_second = 100\noffered = 3.0\n";
    let refused = |name: &str, rest: &str, extra: &[&str], says: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{base}{rest}")).unwrap();
        let out = resil()
            .args(["sim", path.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{name}: {stderr}");
    };
    refused(
        "teapot.toml",
        "rejection = 418\ncompare = ['aimd']\n",
        &[],
        "418 is not 429 or 503",
    );
    refused(
        "unknown.toml",
        "rejection = 429\ncompare = ['vegas']\n",
        &[],
        "\"vegas\" is not",
    );
    refused(
        "none.toml",
        "rejection = 429\ncompare = []\n",
        &[],
        "names 1 to",
    );
    refused(
        "client.toml",
        "rejection = 503\ncompare = ['aimd']\n",
        &["--client", "vegas"],
        "--client \"vegas\" is not",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_scenario_files_are_usage_errors() {
    let dir = std::env::temp_dir().join(format!("resil-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Exit code 2 and a message that says this.
    let refused = |name: &str, contents: Option<&str>, says: &str| {
        let path = dir.join(name);
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let out = resil()
            .args(["sim", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{name}: {stderr}");
    };
    refused(
        "bad.toml",
        Some("seed = 1\nduration_secs = 'soon'\n"),
        "bad.toml",
    );
    refused("missing.toml", None, "cannot read");
    // A run that would take hours or exhaust memory is refused before it starts.
    refused(
        "huge.toml",
        Some(
            "seed = 1\nduration_secs = 86400\nclients = 100000\narrivals = 'fixed'\n\
             interval_ms = 10\n[policy]\n[server]\n",
        ),
        "logical requests and resil sim runs at most",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn proxy_sends_the_call_through_the_proxy_it_names_and_refuses_one_it_cannot_speak_to() {
    let (proxy, _server, proxy_url, page) = resil_tests::proxy_and_server();
    // The environment exempts loopback: the option wins over it.
    let exempt = resil_tests::LOOPBACK_NO_PROXY;
    let out = resil()
        .args(["get", &page, "--proxy", &proxy_url])
        .env("NO_PROXY", exempt)
        .env("no_proxy", exempt)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "relayed", "{}", text(&out.stderr));
    resil_tests::assert_went_through(&proxy, "CONNECT 127.0.0.1:");
    let refused = resil()
        .args(["get", &page, "--proxy", resil_tests::REFUSED_PROXY.0])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = text(&refused.stderr);
    assert!(said.contains(resil_tests::REFUSED_PROXY.1), "{said}");
    assert!(!said.contains("secret"), "{said}");
}

#[test]
fn no_proxy_goes_straight_to_the_server_past_the_proxy_the_environment_names() {
    let server = TestServer::start();
    server.script("/direct", vec![Reply::body(200, "direct")]);
    // Nothing listens on port 9: a call that went to that proxy would fail.
    let dead = "http://127.0.0.1:9";
    let call = |extra: &[&str]| {
        let mut command = resil();
        for name in resil_tests::PROXY_VARIABLES {
            command.env_remove(name);
        }
        command
            .args(["get", &server.url("/direct"), "--retries", "0"])
            .args(extra)
            .env("ALL_PROXY", dead)
            .env("http_proxy", dead)
            .output()
            .unwrap()
    };
    let direct = call(&["--no-proxy"]);
    assert_eq!(text(&direct.stdout), "direct", "{}", text(&direct.stderr));
    let proxied = call(&[]);
    assert_ne!(proxied.status.code(), Some(0), "{}", text(&proxied.stderr));
    assert_eq!(server.hits("/direct"), 1);
}

#[test]
fn get_follows_redirects_only_with_location_and_names_each_hop() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landed", vec![Reply::body(200, "landed")]);
    let server = TestServer::start();
    server.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landed"))],
    );
    // Without -L, as curl: the 3xx is the answer, exit 0, and nothing else is asked.
    let out = resil().args(["get", &server.url("/go")]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(other.hits("/landed"), 0);
    let out = resil()
        .args([
            "get",
            "-L",
            &server.url("/go"),
            "-H",
            "authorization: Bearer s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "landed");
    let stderr = text(&out.stderr);
    let hop = format!("resil: redirect 1 (302) -> {}", other.url("/landed"));
    assert!(stderr.contains(&hop), "{stderr}");
    assert_eq!(
        other.requests()[0].header("authorization"),
        None,
        "credentials reached another origin"
    );
    // --max-redirs bounds the chain, and a refusal says why.
    let out = resil()
        .args(["get", "-L", "--max-redirs", "0", &server.url("/go")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "--max-redirs 0 follows none");
    server.script("/loop", vec![Reply::with_header(302, "location", "/loop")]);
    let out = resil()
        .args(["get", "-L", &server.url("/loop")])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("a redirect loop"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_body_cut_short_is_written_whole_and_once() {
    let _load = shared_load();
    // Without ranges the body is asked for again; with them it resumes where it stopped.
    for path in ["/whole/cut-length", "/whole/cut-chunk", "/whole/resume"] {
        let world = resil_tests::BodyFaultWorld::start();
        let out = resil()
            .args(["get", &world.server.url(path), "--backoff", "const:1ms"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
        assert!(
            out.stdout == resil_tests::full_body(),
            "{path}: {} bytes",
            out.stdout.len()
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("the body broke off at byte 500"),
            "{stderr}"
        );
    }
}

#[test]
fn output_goes_to_a_file_only_when_the_whole_body_arrived() {
    let _load = shared_load();
    let dir = ScratchDir::new("output");
    let file = dir.0.join("body.bin");
    let world = resil_tests::BodyFaultWorld::start();
    let url = world.server.url("/whole/cut-length");
    let out = resil()
        .args(["get", &url, "--backoff", "const:1ms", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(std::fs::read(&file).unwrap() == resil_tests::full_body());

    // Every attempt's body is cut: the call fails, and FILE is as it was.
    let server = TestServer::start();
    server.script(
        "/cut",
        vec![Reply::Truncated {
            declared: 100,
            body: b"forty bytes and not a single one more ..".to_vec(),
        }],
    );
    std::fs::write(&file, "before").unwrap();
    let out = resil()
        .args(["get", &server.url("/cut"), "--backoff", "const:1ms", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ended before its whole body arrived"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "before");
    let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(left.len(), 1, "no partial file is left: {left:?}");
}

#[test]
fn a_final_1xx_and_a_misframed_body_are_failures() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/switch",
        vec![Reply::Raw(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        )],
    );
    server.script(
        "/plus",
        vec![Reply::Raw(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        )],
    );
    let out = resil()
        .args(["get", &server.url("/switch")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("101"), "{}", text(&out.stderr));
    let out = resil()
        .args(["get", &server.url("/plus")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("chunk size"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.hits("/plus"), 1);
}

/// A directory of this test's own, removed when the test ends, passed or failed.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("resil-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn get_hedges_a_slow_answer_and_says_so() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![
            Reply::late(Duration::from_millis(800), Reply::body(200, "first")),
            Reply::body(200, "hedge"),
        ],
    );
    let out = resil()
        .args(["get", &server.url("/slow"), "--hedge", "30ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hedge");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("attempt 2 is a hedge"), "{stderr}");
    assert!(stderr.contains("the hedge, attempt 2, won"), "{stderr}");
    for bad in ["0ms", "p100", "soon"] {
        let out = resil()
            .args(["get", &server.url("/slow"), "--hedge", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
    }
}

#[test]
fn the_tail_at_scale_scenario_cuts_the_tail_tenfold() {
    let dir = ScratchDir::new("tail");
    let svg = dir.0.join("tail.svg");
    let out = resil()
        .args(["sim"])
        .arg(scenario("tail-at-scale.toml"))
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // hedge, p50, p99, p99.9, max, attempts/request, ...
    let row = |name: &str| -> Vec<f64> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{stdout}"));
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (none, p97) = (row("none"), row("p97"));
    assert!(none[1] >= 10.0 * p97[1], "p99: {none:?} vs {p97:?}");
    assert!(none[2] >= 10.0 * p97[2], "p99.9: {none:?} vs {p97:?}");
    assert!(p97[4] <= 1.05, "extra attempts: {p97:?}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}
