//! A signal that lands while the blocking client waits for a response. Linux does not restart
//! a socket read that has a timeout, even for a handler installed with `SA_RESTART`
//! (signal(7)), and the client reads with one whenever the attempt has a deadline (the
//! default), so any program with a signal handler sees `EINTR` here. A binary of its own: the
//! handler is process-wide.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use resil_blocking::ResponseExt;

static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Whether thread `tid` of this process sleeps in `recvfrom` (a socket read waiting).
fn waits_in_recv(tid: libc::pid_t) -> bool {
    let read = |what: &str| std::fs::read_to_string(format!("/proc/self/task/{tid}/{what}"));
    let in_recv = read("syscall").is_ok_and(|s| s.split(' ').next() == Some("45"));
    // The state follows the command name, which is in parentheses.
    let sleeping =
        read("stat").is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('S')));
    in_recv && sleeping
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_signal_during_the_wait_for_a_response_does_not_fail_the_attempt() {
    // Without it the wait below could not see the read (some sandboxes hide it).
    if std::fs::read_to_string("/proc/thread-self/syscall").is_err() {
        eprintln!("skipped: /proc/thread-self/syscall cannot be read here");
        return;
    }
    // SAFETY: a handler that only counts (async-signal-safe), installed before any thread of
    // this test runs.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (answer, may_answer) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            assert_eq!(socket.read(&mut byte).unwrap(), 1, "the request broke off");
            request.push(byte[0]);
        }
        may_answer.recv().unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
    });
    let (tid_tx, tid_rx) = mpsc::channel();
    let client = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let response = resil_blocking::Client::new().get(&url).send()?;
        response.text()
    });
    let tid = tid_rx.recv().unwrap();
    // Three times, each while the read waits: it must go back to waiting every time. A
    // client that stopped instead has its error checked below.
    for handled in 1..=3 {
        while !waits_in_recv(tid) {
            if client.is_finished() {
                break;
            }
            thread::yield_now();
        }
        if client.is_finished() {
            break;
        }
        // SAFETY: the thread is alive (blocked in recvfrom) and SIGUSR1 has a handler.
        assert_eq!(
            unsafe { libc::pthread_kill(client.as_pthread_t(), libc::SIGUSR1) },
            0
        );
        while HANDLED.load(Ordering::SeqCst) < handled && !client.is_finished() {
            thread::yield_now();
        }
    }
    let _ = answer.send(());
    assert_eq!(client.join().unwrap().unwrap(), "ok");
    server.join().unwrap();
}
