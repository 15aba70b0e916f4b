//! Running a test again in a child process, alone, with an environment of its own (proxy
//! variables set or removed), without changing the environment of the running process.

/// The variables through which a process may be told of a proxy (curl's, both cases, and
/// CGI's `REQUEST_METHOD`, with which libraries ignore them).
pub const PROXY_VARIABLES: [&str; 9] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Set in the child process [`run_child`] starts.
const CHILD_MARK: &str = "RESIL_TESTS_CHILD";

/// Whether this process is the child [`run_child`] started to run the test `test` (whose body
/// should then run the part that needs the environment, and nothing else).
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_MARK).is_ok_and(|name| name == test)
}

/// Runs the test `test` of this test binary again, alone, in a child process whose
/// environment has none of the [`PROXY_VARIABLES`] but those in `vars`; panics with its
/// output unless it passes. The child finds itself with [`is_child`].
pub fn run_child(test: &str, vars: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut command = std::process::Command::new(exe);
    command.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).env(CHILD_MARK, test);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {test} in a child process: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // A name that matched no test would pass having run nothing.
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} in a child process with {vars:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts the test `test` of this test binary in a child process, as [`run_child`] does, but
/// without waiting for it: several run side by side. Read its outcome with
/// [`finish_child`].
pub fn spawn_child(test: &str, vars: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut command = std::process::Command::new(exe);
    command.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command
        .envs(vars.iter().copied())
        .env(CHILD_MARK, test)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {test} in a child process: {e}"))
}

/// Waits for a child from [`spawn_child`]; panics with its output unless it passed, and
/// returns what it printed on stdout.
pub fn finish_child(child: std::process::Child) -> String {
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for a child process: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child process: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
