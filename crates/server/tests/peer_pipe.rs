//! Issue 12, must-show 3: `switchboard pipe --unreliable` carries 10 000
//! small messages between two native peers over real loopback sockets; the
//! receiver counts them, and any loss is reported on stderr, not hidden.
//! The reliable pipe must carry all 10 000, in order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::Switchboard;

const MESSAGES: usize = 10_000;
const LIMIT: Duration = Duration::from_secs(60);

/// A `switchboard pipe` process, killed on drop; its stdout and stderr are
/// read on threads so it never blocks on a full pipe.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Peer {
    fn start(server: &Switchboard, room: &str, name: &str, unreliable: bool) -> Peer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("pipe")
            .arg(format!("http://{}/r/{room}", server.http))
            .arg("--name")
            .arg(name);
        if unreliable {
            cmd.arg("--unreliable");
        }
        let mut child = cmd
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard pipe");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Peer {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Waits for exit until `deadline`; `None` if it is still running.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (if still running) and returns (stdout, stderr).
    fn finish(&mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        let out = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
        (out.unwrap_or_default(), err.unwrap_or_default())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The numbers of `pipe: sent N messages, received M, dropped D …`.
fn summary(stderr: &str) -> Option<(u64, u64, u64)> {
    let line = stderr.lines().find(|l| l.starts_with("pipe: sent "))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums[..] {
        [sent, received, dropped, ..] => Some((sent, received, dropped)),
        _ => None,
    }
}

struct Outcome {
    /// Lines the receiver printed.
    lines: Vec<String>,
    /// The receiver's (sent, received, dropped).
    rx: (u64, u64, u64),
    /// The sender's (sent, received, dropped).
    tx: (u64, u64, u64),
    elapsed: Duration,
}

/// Runs a receiver and a sender in a fresh room on a fresh server; the
/// sender pipes `MESSAGES` lines and closes stdin.
fn run(unreliable: bool) -> Outcome {
    let server = Switchboard::start(&["--allow-loopback-peers", "--metrics-listen", "off"]);
    let room = if unreliable {
        "pipe-unreliable"
    } else {
        "pipe-reliable"
    };
    let started = Instant::now();
    // The receiver's stdin stays open (held in `rx.stdin`): at EOF a pipe
    // would leave on its own once its (empty) backlog had drained.
    let mut rx = Peer::start(&server, room, "rx", unreliable);
    let mut tx = Peer::start(&server, room, "tx", unreliable);

    let mut input = String::with_capacity(MESSAGES * 10);
    for i in 1..=MESSAGES {
        input.push_str(&format!("msg-{i:05}\n"));
    }
    let mut stdin = tx.stdin.take().expect("sender stdin");
    let writer = std::thread::spawn(move || {
        let r = stdin.write_all(input.as_bytes());
        drop(stdin); // EOF: the sender drains its buffer and leaves.
        r
    });

    let deadline = started + LIMIT;
    let tx_status = tx.wait_until(deadline);
    let rx_status = rx.wait_until(deadline);
    let write_result = writer.join().expect("writer thread");
    let elapsed = started.elapsed();
    let (tx_out, tx_err) = tx.finish();
    let (rx_out, rx_err) = rx.finish();
    drop(server);

    let context = format!(
        "--- sender stderr ---\n{tx_err}\n--- sender stdout ({} bytes) ---\n\
         --- receiver stderr ---\n{rx_err}\n--- receiver stdout: {} lines ---",
        tx_out.len(),
        rx_out.lines().count()
    );
    let (Some(tx_status), Some(rx_status)) = (tx_status, rx_status) else {
        panic!(
            "pipe peers did not finish within {LIMIT:?} (sender done: {}, receiver done: {}); killed\n{context}",
            tx_status.is_some(),
            rx_status.is_some()
        );
    };
    assert!(
        write_result.is_ok(),
        "writing the sender's stdin: {write_result:?}\n{context}"
    );
    assert!(tx_status.success(), "sender exited {tx_status}\n{context}");
    assert!(
        rx_status.success(),
        "receiver exited {rx_status}\n{context}"
    );
    let tx_sum = summary(&tx_err)
        .unwrap_or_else(|| panic!("no `pipe: sent …` summary from the sender\n{context}"));
    let rx_sum = summary(&rx_err)
        .unwrap_or_else(|| panic!("no `pipe: sent …` summary from the receiver\n{context}"));
    Outcome {
        lines: rx_out.lines().map(str::to_owned).collect(),
        rx: rx_sum,
        tx: tx_sum,
        elapsed,
    }
}

fn index(line: &str) -> Option<usize> {
    let digits = line.strip_prefix("msg-")?;
    if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=MESSAGES).contains(n))
}

/// The missing message numbers as ranges, e.g. `17-20 9998-10000`.
fn missing_ranges(seen: &HashSet<usize>) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for n in (1..=MESSAGES).filter(|n| !seen.contains(n)) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => ranges.push((n, n)),
        }
    }
    let shown: Vec<String> = ranges
        .iter()
        .take(20)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let more = ranges.len().saturating_sub(shown.len());
    match (shown.is_empty(), more) {
        (true, _) => "none".to_owned(),
        (false, 0) => shown.join(" "),
        (false, more) => format!("{} (+{more} more ranges)", shown.join(" ")),
    }
}

#[test]
fn unreliable_pipe_counts_and_reports_loss() {
    let o = run(true);
    let mut seen = HashSet::new();
    for line in &o.lines {
        let n = index(line).unwrap_or_else(|| panic!("malformed line on stdout: {line:?}"));
        assert!(seen.insert(n), "duplicate message {line:?}");
    }
    let (sent, _, dropped) = o.tx;
    let (_, received, _) = o.rx;
    assert_eq!(sent, MESSAGES as u64, "sender summary {:?}", o.tx);
    assert_eq!(
        dropped, 0,
        "sender dropped messages before a peer: {:?}",
        o.tx
    );
    assert_eq!(
        received,
        o.lines.len() as u64,
        "receiver's `received` count disagrees with its stdout"
    );
    let lost = MESSAGES as u64 - received;
    let percent = lost as f64 * 100.0 / MESSAGES as f64;
    println!(
        "unreliable pipe: sent {sent}, received {received}, lost {lost} ({percent:.2} %) in {:?}; missing: {}",
        o.elapsed,
        missing_ranges(&seen)
    );
    assert!(
        percent < 5.0,
        "unreliable pipe lost {lost} of {MESSAGES} ({percent:.2} %) on loopback"
    );
}

#[test]
fn reliable_pipe_carries_every_message_in_order() {
    let o = run(false);
    let (sent, _, dropped) = o.tx;
    let (_, received, _) = o.rx;
    println!(
        "reliable pipe: sent {sent}, received {received}, lines {} in {:?}",
        o.lines.len(),
        o.elapsed
    );
    assert_eq!(sent, MESSAGES as u64, "sender summary {:?}", o.tx);
    assert_eq!(dropped, 0, "sender summary {:?}", o.tx);
    assert_eq!(received, MESSAGES as u64, "receiver summary {:?}", o.rx);
    assert_eq!(o.lines.len(), MESSAGES, "receiver stdout line count");
    for (i, line) in o.lines.iter().enumerate() {
        assert_eq!(
            line,
            &format!("msg-{:05}", i + 1),
            "line {} out of order",
            i + 1
        );
    }
}
