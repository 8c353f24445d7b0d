//! The kernel fast path (issue 17) in a network-namespace lab the test
//! builds and removes: client ns — veth — server ns — veth — peer ns.
//! coturn's `turnutils_uclient` in the client ns relays through the
//! `switchboard` binary (built with `--features kernel-offload`) in the
//! server ns to a `turnutils_peer` echo in the peer ns, over UDP channels.
//! Shown: 0 % loss with the channels relayed in the kernel (the table held
//! them, and the kernel's datagrams are counted in the metrics); the
//! channels leave the table when the clients delete their allocations; a
//! `--max-bps` cap limits an offloaded channel as it limits one in
//! userspace. (Expiry of permissions and channels runs on the core's
//! virtual clock in `crates/turn`'s offload tests.)
//!
//! Needs root, iproute2, ethtool and coturn's tools; prints why and passes
//! when it cannot run (a build without the feature, not root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Guard, loss, run_with_timeout};

const SERVER_IP: &str = "10.71.1.1";
const CLIENT_IP: &str = "10.71.1.2";
const PEER_SIDE_IP: &str = "10.71.2.1";
const PEER_IP: &str = "10.71.2.2";
const TURN_PORT: &str = "3478";
const PEER_PORT: &str = "3480";
const METRICS: &str = "127.0.0.1:9641";

fn why_not() -> Option<String> {
    if !cfg!(feature = "kernel-offload") {
        return Some("built without the kernel-offload feature".into());
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root (eBPF, network namespaces)".into());
    }
    for tool in ["ip", "ethtool", "turnutils_uclient", "curl"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The three namespaces; deleted on drop, pass or fail.
struct Lab {
    client: String,
    server: String,
    peer: String,
}

impl Lab {
    fn new() -> Lab {
        let tag = std::process::id();
        let lab = Lab {
            client: format!("sbk-{tag}-c"),
            server: format!("sbk-{tag}-s"),
            peer: format!("sbk-{tag}-p"),
        };
        for ns in [&lab.client, &lab.server, &lab.peer] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (c, s, p) = (&lab.client, &lab.server, &lab.peer);
        sh(&[
            "ip", "-n", s, "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", c,
        ]);
        sh(&[
            "ip", "-n", s, "link", "add", "s1", "type", "veth", "peer", "name", "p0", "netns", p,
        ]);
        for (ns, dev, addr) in [
            (s, "s0", format!("{SERVER_IP}/24")),
            (s, "s1", format!("{PEER_SIDE_IP}/24")),
            (c, "c0", format!("{CLIENT_IP}/24")),
            (p, "p0", format!("{PEER_IP}/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        sh(&["ip", "-n", c, "route", "add", "default", "via", SERVER_IP]);
        sh(&[
            "ip",
            "-n",
            p,
            "route",
            "add",
            "default",
            "via",
            PEER_SIDE_IP,
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        // The senders' datagrams carry finished checksums, as from a wire
        // (a local sender's checksum left to the device stays in userspace).
        sh(&["ip", "netns", "exec", c, "ethtool", "-K", "c0", "tx", "off"]);
        sh(&["ip", "netns", "exec", p, "ethtool", "-K", "p0", "tx", "off"]);
        lab
    }

    fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// Starts the server with `extra` flags; waits for its metrics.
    fn switchboard(&self, extra: &[&str]) -> Guard {
        let mut cmd = self.cmd(&self.server, env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(["--turn-listen", &format!("{SERVER_IP}:{TURN_PORT}")])
            .args(["--http-listen", "127.0.0.1:8080", "--turns-listen", "off"])
            .args(["--metrics-listen", METRICS, "--workers", "2"])
            .args(["--user", "alice:wonderland", "--allow-peer", "10.71.2.0/24"])
            .args(["--kernel-offload-interfaces", "s0,s1", "--log", "info"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let guard = Guard(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.metrics().is_none() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        guard
    }

    fn metrics(&self) -> Option<String> {
        metrics(&self.server)
    }

    fn metric(&self, name: &str) -> u64 {
        metric(&self.server, name)
    }

    fn echo_peer(&self) -> Guard {
        let mut cmd = self.cmd(&self.peer, "turnutils_peer");
        cmd.args(["-L", PEER_IP, "-p", PEER_PORT])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let g = Guard(cmd.spawn().unwrap());
        std::thread::sleep(Duration::from_millis(300));
        g
    }

    /// `turnutils_uclient` over UDP channels from the client ns; while it
    /// runs, the most channels the kernel held at once.
    fn uclient(&self, args: &[&str]) -> (String, u64) {
        let mut cmd = self.cmd(&self.client, "turnutils_uclient");
        cmd.args(["-u", "alice", "-w", "wonderland", "-c"])
            .args(["-e", PEER_IP, "-r", PEER_PORT, "-p", TURN_PORT])
            .args(args)
            .arg(SERVER_IP);
        let watcher = {
            let server = self.server.clone();
            std::thread::spawn(move || {
                let mut most = 0;
                let deadline = Instant::now() + Duration::from_secs(8);
                while Instant::now() < deadline {
                    most = most.max(metric(&server, "switchboard_turn_kernel_channels"));
                    std::thread::sleep(Duration::from_millis(200));
                }
                most
            })
        };
        let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
        (out, watcher.join().unwrap())
    }
}

/// The server's metrics page, read from inside its namespace.
fn metrics(server_ns: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", server_ns, "curl", "-sf"])
        .arg(format!("http://{METRICS}/metrics"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of metric `name` (its first sample; `name` may include labels).
fn metric(server_ns: &str, name: &str) -> u64 {
    let text = metrics(server_ns).unwrap_or_default();
    text.lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn channels_relay_in_the_kernel_without_loss_and_obey_max_bps() {
    if let Some(why) = why_not() {
        println!("skipping the kernel fast path lab: {why}");
        return;
    }
    let lab = Lab::new();
    let _peer = lab.echo_peer();

    // 1. No cap: 4 clients × 600 messages of 100 bytes, 0 % loss, relayed
    // in the kernel.
    {
        let _sb = lab.switchboard(&["--max-bps", "0"]);
        let (out, most) = lab.uclient(&["-m", "4", "-n", "600", "-l", "100", "-z", "10"]);
        let (lost, sent, received) = loss(&out);
        assert_eq!((lost, received), (0, sent), "0 % loss expected:\n{out}");
        assert!(sent >= 2400, "{out}");
        assert!(most >= 4, "the kernel held {most} channels (4 clients)");
        let kernel = lab.metric("switchboard_turn_kernel_relayed_packets_total");
        eprintln!(
            "no cap: sent {sent}, lost {lost}, kernel held up to {most} channels, relayed {kernel} datagrams"
        );
        // Each message is relayed twice (to the echo and back); the first
        // ones before the channel is bound go through userspace.
        assert!(
            kernel >= sent,
            "the kernel relayed {kernel} datagrams of {} (2 × {sent})",
            2 * sent
        );
        // The clients deleted their allocations: no channel is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lab.metric("switchboard_turn_kernel_channels") > 0 {
            assert!(
                Instant::now() < deadline,
                "channels left in the kernel after the clients left"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // 2. --max-bps 80000 (10 kB/s per allocation, each direction counted;
    // a burst of 64 KiB): one client sends ~1 MB in 5 s. What is relayed,
    // kernel and userspace together, stays within the cap, and most of it
    // is dropped as over the bandwidth.
    {
        let _sb = lab.switchboard(&["--max-bps", "80000"]);
        let start = Instant::now();
        let (out, most) = lab.uclient(&["-m", "1", "-n", "1000", "-l", "1000", "-z", "5"]);
        let secs = start.elapsed().as_secs_f64();
        assert!(most >= 1, "the channel was not offloaded");
        let (lost, sent, _) = loss(&out);
        assert!(
            lost > sent / 2,
            "the cap dropped only {lost} of {sent}:\n{out}"
        );
        let relayed = lab.metric("switchboard_turn_relayed_bytes_total");
        let cap = (10_000.0 * secs) as u64 + 65_535 + 1000;
        assert!(
            relayed <= cap,
            "relayed {relayed} bytes in {secs:.1} s, over the cap {cap}"
        );
        let kernel = lab.metric("switchboard_turn_kernel_relayed_bytes_total");
        eprintln!(
            "--max-bps 80000: sent {sent} × 1000 B in {secs:.1} s, lost {lost}; relayed {relayed} B to the peer (cap {cap}), {kernel} B of both directions in the kernel"
        );
        assert!(kernel > 0, "nothing was relayed in the kernel");
        assert!(lab.metric("switchboard_turn_dropped_total{reason=\"bandwidth\"}") > 0);
    }
}
