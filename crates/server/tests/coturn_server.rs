//! The TURN client core (`turn::client`) against coturn's `turnserver`, an
//! independent implementation: a legacy RFC 5766 server without the
//! RFC 8489 nonce cookie, so MD5 keys and MESSAGE-INTEGRITY — over UDP and
//! TCP, with Send indications and ChannelData to a loopback echo peer.
//!
//! `turnserver` comes from Debian's `coturn` package (scripts/test installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod turn_driver;

use std::process::{Command, Stdio};
use std::time::Instant;

use stun::Method;
use support::{Guard, free_port};
use turn::client::{ClientEvent, PasswordAlgorithm};
use turn_driver::{Driver, relay_round_trip, wait_for_binding};

/// Starts `turnserver` on a free loopback port; returns it and its address.
fn coturn() -> (Guard, std::net::SocketAddr) {
    let port = free_port();
    let low = free_port().min(65_000);
    let child = Command::new("turnserver")
        .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--no-stdout-log"])
        .args(["--log-file", "/dev/null", "--pidfile", "/dev/null"])
        .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
        .args(["--listening-port", &port.to_string()])
        .args(["--min-port", &low.to_string()])
        .args(["--max-port", &(low + 30).to_string()])
        .args(["--lt-cred-mech", "--user", "alice:secret"])
        .args(["--realm", "coturn.test", "--allow-loopback-peers"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn turnserver (is coturn installed? scripts/test installs it)");
    let guard = Guard(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_binding(addr);
    (guard, addr)
}

#[test]
fn udp_round_trip_through_coturn() {
    let (_coturn, addr) = coturn();
    let d = Driver::udp(addr, "alice", "secret");
    relay_round_trip(d);
}

#[test]
fn tcp_round_trip_through_coturn() {
    let (_coturn, addr) = coturn();
    let d = Driver::tcp(addr, "alice", "secret");
    relay_round_trip(d);
}

#[test]
fn coturn_gets_md5_and_refuses_a_wrong_password() {
    let (_coturn, addr) = coturn();
    let mut d = Driver::udp(addr, "alice", "secret");
    d.client.allocate(Instant::now()).unwrap();
    assert!(matches!(d.event(), ClientEvent::Allocated { .. }));
    assert_eq!(d.client.password_algorithm(), Some(PasswordAlgorithm::Md5));

    let mut d = Driver::udp(addr, "alice", "wrong");
    d.client.allocate(Instant::now()).unwrap();
    assert!(matches!(
        d.event(),
        ClientEvent::Failed {
            method: Method::ALLOCATE,
            code: 401,
            ..
        }
    ));
}
