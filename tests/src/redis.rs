//! A real Redis for tests: Debian's `redis-server` on a free loopback port, without
//! persistence, stopped by its pid when dropped (a panicking test drops it too). `.ci/run`
//! installs it with apt-get when it is missing.
//!
//! A small bash keeper starts it and kills it by its pid as soon as the test process's end of
//! a pipe closes: when the server is dropped, and also when the test process exits without
//! dropping it (a server in a `static`, a test binary killed), so none outlives its tests. The
//! keeper first closes every descriptor the test process let it inherit (a build lock's, say),
//! so the server holds none of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// The keeper, the pipe whose closing stops it, and the server's pid.
    child: Option<(Child, ChildStdin, u32)>,
}

/// Closes inherited descriptors, starts `redis-server "$@"`, prints its pid, and kills it by
/// that pid once stdin closes (or the server exits on its own).
const KEEPER: &str = r#"
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2> /dev/null; fi
done
redis-server "$@" < /dev/null > /dev/null 2>&1 &
server=$!
echo "$server"
read -r _
kill -9 "$server" 2> /dev/null
wait "$server" 2> /dev/null
exit 0
"#;

/// Whether the tests that need a real Redis can run: `redis-server` is installed. Without it
/// they are skipped with a notice on a developer's machine (the README's test command works on
/// a fresh one), and fail under `CI` (where `.ci/run` installs it) or `RESIL_REQUIRE_REDIS`.
pub fn redis_available() -> bool {
    if RedisServer::installed() {
        return true;
    }
    let required = ["CI", "RESIL_REQUIRE_REDIS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "false"));
    assert!(
        !required,
        "redis-server is not installed (apt-get install -y redis-server) and CI requires it"
    );
    eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
    false
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer { port, child: None };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Whether `redis-server` can be run here.
    pub fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn spawn(&mut self) -> Result<(), String> {
        if !RedisServer::installed() {
            return Err("redis-server is not installed (apt-get install -y redis-server)".into());
        }
        let mut child = Command::new("bash")
            .args(["-c", KEEPER, "resil-redis-keeper"])
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--enable-debug-command", "local", "--loglevel", "warning"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bash: {e}"))?;
        let pid = child
            .stdout
            .take()
            .and_then(|out| {
                let mut line = String::new();
                BufReader::new(out).read_line(&mut line).ok()?;
                line.trim().parse::<u32>().ok()
            })
            .ok_or("the keeper printed no pid")?;
        let stdin = child.stdin.take().ok_or("the keeper has no stdin")?;
        self.child = Some((child, stdin, pid));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return Ok(());
            }
            // Exited (a zombie until its keeper reaps it) or gone.
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid().unwrap_or(0)));
            if stat.map_or(true, |s| s.contains(") Z ")) {
                self.kill();
                return Err(format!("exited at start, port {}", self.port));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("no PONG within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|(_, _, pid)| *pid)
    }

    /// Kills it (by its pid, SIGKILL, from its keeper) and waits until it is gone:
    /// everything it held is lost.
    pub fn kill(&mut self) {
        if let Some((mut keeper, stdin, _)) = self.child.take() {
            drop(stdin);
            let _ = keeper.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger a moment after the kill.
                Err(e) if Instant::now() > deadline => panic!("redis-server restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `CLIENT PAUSE ms ALL`: every client's commands wait that long.
    pub fn pause(&self, d: Duration) {
        let ms = d.as_millis().to_string();
        let answer = self.command(&["CLIENT", "PAUSE", &ms, "ALL"]);
        assert_eq!(answer.as_deref(), Ok("+OK"), "CLIENT PAUSE");
    }

    /// Sends one command (RESP) and returns the first line of its answer (`+OK`, `:3`,
    /// `$5`…), or the error connecting.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        stream.write_all(&out).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end().to_owned();
        // A bulk string's body follows its length: read it too, so the server is not left
        // writing to a closed socket.
        if let Some(len) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).map_err(|e| e.to_string())?;
            return Ok(String::from_utf8_lossy(&body[..len]).into_owned());
        }
        Ok(line)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
