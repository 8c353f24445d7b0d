//! Starting the real `switchboard` binary on free loopback ports for tests,
//! and stopping it (by its own handle) when the test ends, pass or fail.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed on drop.
pub struct Switchboard {
    child: Child,
    /// STUN/TURN address (UDP and TCP).
    pub turn: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    /// What the server printed up to its "web app" line (URLs, fingerprint).
    pub banner: Vec<String>,
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

impl Switchboard {
    /// Starts the binary with `args` plus listen addresses, and waits until
    /// it has printed its banner.
    pub fn start(args: &[&str]) -> Switchboard {
        let turn: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--turn-listen")
            .arg(turn.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .args(args)
            // Tests run side by side: only one that asks (--sfu-listen) gets an SFU.
            .env("SWITCHBOARD_SFU_LISTEN", "off")
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Switchboard {
            child,
            turn,
            http,
            banner: Vec::new(),
        };
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("switchboard did not start within 20 s");
            let done = line.starts_with("Switchboard web app");
            server.banner.push(line);
            if done {
                break;
            }
        }
        server
    }

    /// The port of the first printed `turns:` URL whose line contains `note`.
    pub fn turns_port(&self, note: &str) -> Option<u16> {
        self.banner
            .iter()
            .filter(|l| l.contains(note))
            .find_map(|l| l.split("turns:").nth(1))
            .and_then(|rest| rest.split('?').next())
            .and_then(|hostport| hostport.rsplit(':').next())
            .and_then(|p| p.parse().ok())
    }
}

impl Switchboard {
    /// `kill -9`: the process dies without a word to anyone.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command with a time limit; returns its combined output.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("spawn {cmd:?}: {e} (is coturn installed? scripts/test installs it)")
        });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// Parses `Total lost packets N (P%)` and the message counts from the
/// client's output. It exits 0 even at 100 % loss, so this is the verdict.
pub fn loss(output: &str) -> (u64, u64, u64) {
    let lost_line = output
        .lines()
        .find(|l| l.contains("Total lost packets"))
        .unwrap_or_else(|| panic!("no loss line in turnutils_uclient output:\n{output}"));
    let lost: u64 = lost_line
        .split("Total lost packets")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("lost count");
    let totals = output
        .lines()
        .rev()
        .find(|l| l.contains("tot_send_msgs=") && !l.contains("msz="))
        .unwrap_or_else(|| panic!("no totals line:\n{output}"));
    let num = |key: &str| -> u64 {
        totals
            .split(key)
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .expect("count")
    };
    (lost, num("tot_send_msgs="), num("tot_recv_msgs="))
}
