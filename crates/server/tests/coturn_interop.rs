//! Interop with coturn's own clients over real loopback sockets:
//! `turnutils_stunclient` against the STUN server, and `turnutils_uclient`
//! relaying through Switchboard to a `turnutils_peer` echo — over UDP and
//! TCP, with ChannelData and with Send indications, with a static user and
//! with ephemeral (`-W secret`) credentials; and over TLS (`-S`), on the
//! `--turns-listen` port and on the HTTPS port it shares; and against a
//! dual-stack `[::]` listener over IPv4 and IPv6.
//!
//! coturn's tools come from Debian's `coturn` package (scripts/test installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod turn_driver;

use std::process::Command;
use std::time::Duration;

use support::{Guard, Switchboard, free_port, loss, run_with_timeout};
use turn_driver::Binary;

const SECRET: &str = "interop-secret";

fn server() -> Switchboard {
    Switchboard::start(&[
        "--allow-loopback-peers",
        "--user",
        "alice:wonderland",
        "--auth-secret",
        SECRET,
    ])
}

/// Starts a `turnutils_peer` UDP echo on a free loopback port.
fn echo_peer() -> (Guard, u16) {
    echo_peer_on("127.0.0.1")
}

/// Starts a `turnutils_peer` UDP echo on a free port of `ip`.
fn echo_peer_on(ip: &str) -> (Guard, u16) {
    let port = free_port();
    let child = Command::new("turnutils_peer")
        .args(["-L", ip, "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn turnutils_peer (is coturn installed? scripts/test installs it)");
    std::thread::sleep(Duration::from_millis(200));
    (Guard(child), port)
}

/// Relays `-m 4` clients × 200 messages of 100 bytes through the server.
fn relay(extra: &[&str], credentials: &[&str]) {
    relay_to(&server(), |sb| sb.turn.port(), extra, credentials);
}

/// Like [`relay`], through `sb` on the port `port` picks.
fn relay_to(
    sb: &Switchboard,
    port: impl Fn(&Switchboard) -> u16,
    extra: &[&str],
    credentials: &[&str],
) {
    let (_peer, peer_port) = echo_peer();
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(extra)
        .args(credentials)
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &port(sb).to_string()])
        .args(["-m", "4", "-n", "200", "-l", "100", "-z", "5", "-c"])
        .arg("127.0.0.1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    let (lost, sent, received) = loss(&out);
    assert_eq!(sent, 800, "all messages sent:\n{out}");
    assert_eq!((lost, received), (0, 800), "0 % loss expected:\n{out}");
}

const STATIC: &[&str] = &["-u", "alice", "-w", "wonderland"];
const EPHEMERAL: &[&str] = &["-W", SECRET, "-u", "interop"];

#[test]
fn udp_channel_data_static_user() {
    relay(&[], STATIC);
}

#[test]
fn udp_send_indication_static_user() {
    relay(&["-s"], STATIC);
}

#[test]
fn tcp_channel_data_static_user() {
    relay(&["-t"], STATIC);
}

#[test]
fn tcp_send_indication_static_user() {
    relay(&["-t", "-s"], STATIC);
}

#[test]
fn udp_channel_data_ephemeral() {
    relay(&[], EPHEMERAL);
}

#[test]
fn tcp_send_indication_ephemeral() {
    relay(&["-t", "-s"], EPHEMERAL);
}

fn tls_server() -> Switchboard {
    Switchboard::start(&[
        "--allow-loopback-peers",
        "--user",
        "alice:wonderland",
        "--tls-self-signed",
        "--turns-listen",
        "127.0.0.1:0",
    ])
}

#[test]
fn tls_channel_data_on_the_turns_port() {
    let sb = tls_server();
    let port = |sb: &Switchboard| sb.turns_port("").expect("a turns: URL in the banner");
    relay_to(&sb, port, &["-S", "-t"], STATIC);
}

#[test]
fn tls_send_indication_on_the_shared_https_port() {
    let sb = tls_server();
    let port = |sb: &Switchboard| {
        let p = sb
            .turns_port("shares the HTTPS port")
            .expect("a shared turns: URL in the banner");
        assert_eq!(p, sb.http.port());
        p
    };
    relay_to(&sb, port, &["-S", "-t", "-s"], STATIC);
}

/// Without `-c` every client also makes an RTCP allocation with the
/// RESERVATION-TOKEN of its EVEN-PORT allocation, from another local port:
/// with 4 workers the kernel mostly hands it to another worker than the
/// one that reserved.
#[test]
fn reservation_tokens_work_across_workers() {
    let sb = Switchboard::start(&[
        "--allow-loopback-peers",
        "--user",
        "alice:wonderland",
        "--workers",
        "4",
    ]);
    let (_peer, peer_port) = echo_peer();
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(STATIC)
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &sb.turn.port().to_string()])
        .args(["-m", "4", "-n", "50", "-l", "100", "-z", "5"])
        .arg("127.0.0.1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(
        !out.contains("error 508"),
        "a reservation token was refused:\n{out}"
    );
    let (lost, sent, received) = loss(&out);
    assert_eq!((lost, received), (0, sent), "0 % loss expected:\n{out}");
    assert!(sent >= 200, "{out}");
}

#[test]
fn wrong_password_relays_nothing() {
    let sb = server();
    let (_peer, peer_port) = echo_peer();
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(["-u", "alice", "-w", "wrong"])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-p", &sb.turn.port().to_string()])
        .args(["-m", "1", "-n", "10", "-l", "100", "-z", "5", "-c"])
        .arg("127.0.0.1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        !out.contains("Received relay addr"),
        "no allocation expected:\n{out}"
    );
}

#[test]
fn stunclient_gets_its_mapped_address() {
    let sb = server();
    let addr = stunclient_mapped(sb.turn.port(), "127.0.0.1");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_ne!(
        addr.port(),
        sb.turn.port(),
        "mapped port is the client's, not ours"
    );
}

/// The reflexive address `turnutils_stunclient` reports for `server`:`port`.
fn stunclient_mapped(port: u16, server: &str) -> std::net::SocketAddr {
    let mut cmd = Command::new("turnutils_stunclient");
    cmd.args(["-p", &port.to_string(), server]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10));
    let line = out
        .lines()
        .find(|l| l.contains("UDP reflexive addr"))
        .unwrap_or_else(|| panic!("no reflexive address:\n{out}"));
    // `IP:PORT`, IPv6 without brackets (`::1:40000`).
    line.rsplit(' ')
        .next()
        .and_then(|a| a.trim().rsplit_once(':'))
        .and_then(|(ip, port)| {
            Some(std::net::SocketAddr::new(
                ip.parse().ok()?,
                port.parse().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("unparsable: {line}"))
}

/// A server on `[::]:PORT` (the default `--turn-listen` form).
fn dual_stack_server() -> (Binary, u16) {
    Binary::dual_stack(&["--allow-loopback-peers", "--user", "alice:wonderland"])
}

/// Before: `::ffff:127.0.0.1` (the dual-stack socket's view of an IPv4 client).
#[test]
fn dual_stack_stunclient_over_ipv4_gets_plain_ipv4() {
    let (_sb, port) = dual_stack_server();
    let addr = stunclient_mapped(port, "127.0.0.1");
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{addr}");
    assert_ne!(addr.port(), port);
}

#[test]
fn dual_stack_stunclient_over_ipv6_gets_ipv6() {
    let (_sb, port) = dual_stack_server();
    let addr = stunclient_mapped(port, "::1");
    assert_eq!(addr.ip().to_string(), "::1", "{addr}");
}

/// Relays `-m 4` × 200 messages through a `[::]` server reached at
/// `server`, to an echo peer on `peer_ip`; 0 lost.
fn dual_stack_relay(server: &str, peer_ip: &str, extra: &[&str]) {
    let (_sb, port) = dual_stack_server();
    let (_peer, peer_port) = echo_peer_on(peer_ip);
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(extra)
        .args(STATIC)
        .args(["-e", peer_ip, "-r", &peer_port.to_string()])
        .args(["-p", &port.to_string()])
        .args(["-m", "4", "-n", "200", "-l", "100", "-z", "5", "-c"])
        .arg(server);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(!out.contains("error 440"), "address family refused:\n{out}");
    let (lost, sent, received) = loss(&out);
    assert_eq!(sent, 800, "all messages sent:\n{out}");
    assert_eq!((lost, received), (0, 800), "0 % loss expected:\n{out}");
}

/// Before: Allocate got 440 (the core saw an IPv6 server address and an
/// IPv4 relay request).
#[test]
fn dual_stack_uclient_udp_over_ipv4() {
    dual_stack_relay("127.0.0.1", "127.0.0.1", &[]);
}

#[test]
fn dual_stack_uclient_tcp_over_ipv4() {
    dual_stack_relay("127.0.0.1", "127.0.0.1", &["-t"]);
}

#[test]
fn dual_stack_uclient_udp_over_ipv6() {
    dual_stack_relay("::1", "::1", &[]);
}

#[test]
fn dual_stack_uclient_tcp_over_ipv6() {
    dual_stack_relay("::1", "::1", &["-t"]);
}
