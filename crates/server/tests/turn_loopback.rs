//! The `switchboard` binary's STUN/TURN service over real loopback sockets,
//! driven by the crate's own sans-IO client core (`turn::client`) with a
//! small blocking driver: Binding, Allocate, CreatePermission, Send
//! indications and ChannelData to a UDP echo peer and back, Refresh and
//! delete — over UDP and over TCP — and the default refusal of loopback
//! peers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod turn_driver;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stun::Method;
use support::{Switchboard, free_port};
use turn::client::ClientEvent;
use turn_driver::{Driver, peer, relay_round_trip, wait_for_binding};

/// Starts the binary with a static user, an auth secret and a small relay
/// port range, and waits until it answers a Binding request.
fn server(allow_loopback: bool) -> Switchboard {
    let low = free_port().min(65_000);
    let ports = format!("{low}-{}", low + 30);
    let mut args = vec![
        "--user",
        "alice:secret",
        "--auth-secret",
        "s3",
        "--relay-ports",
        &ports,
    ];
    if allow_loopback {
        args.push("--allow-loopback-peers");
    }
    let sb = Switchboard::start(&args);
    wait_for_binding(sb.turn);
    sb
}

#[test]
fn udp_allocate_send_channel_refresh_delete() {
    let sb = server(true);
    relay_round_trip(Driver::udp(sb.turn, "alice", "secret"));
}

#[test]
fn tcp_allocate_send_channel_refresh_delete() {
    let sb = server(true);
    relay_round_trip(Driver::tcp(sb.turn, "alice", "secret"));
}

#[test]
fn ephemeral_credentials_and_wrong_passwords() {
    let sb = server(true);
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = turn::credentials::mint(b"s3", unix + 600, Some("loopback"));
    let mut d = Driver::udp(sb.turn, &good.username, &good.password);
    d.client.allocate(Instant::now()).unwrap();
    assert!(matches!(d.event(), ClientEvent::Allocated { .. }));

    let expired = turn::credentials::mint(b"s3", unix - 10, Some("loopback"));
    let mut d = Driver::tcp(sb.turn, &expired.username, &expired.password);
    d.client.allocate(Instant::now()).unwrap();
    assert!(matches!(
        d.event(),
        ClientEvent::Failed {
            method: Method::ALLOCATE,
            code: 401,
            ..
        }
    ));

    let mut d = Driver::udp(sb.turn, "alice", "wrong");
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

#[test]
fn binding_returns_the_mapped_address_over_udp_and_tcp() {
    let sb = server(false);
    for mut d in [
        Driver::udp(sb.turn, "x", "y"),
        Driver::tcp(sb.turn, "x", "y"),
    ] {
        d.client.binding(Instant::now()).unwrap();
        let local = d.link.local_addr();
        assert_eq!(d.event(), ClientEvent::Mapped { mapped: local });
    }
}

#[test]
fn loopback_peers_are_refused_by_default() {
    let sb = server(false);
    for mut d in [
        Driver::udp(sb.turn, "alice", "secret"),
        Driver::tcp(sb.turn, "alice", "secret"),
    ] {
        d.client.allocate(Instant::now()).unwrap();
        assert!(matches!(d.event(), ClientEvent::Allocated { .. }));
        d.client
            .create_permission(Instant::now(), &[IpAddr::from([127, 0, 0, 1])])
            .unwrap();
        assert!(matches!(
            d.event(),
            ClientEvent::Failed {
                method: Method::CREATE_PERMISSION,
                code: 403,
                ..
            }
        ));
        let loopback: SocketAddr = "127.0.0.1:9".parse().unwrap();
        d.client.channel_bind(Instant::now(), loopback).unwrap();
        assert!(matches!(
            d.event(),
            ClientEvent::Failed {
                method: Method::CHANNEL_BIND,
                code: 403,
                ..
            }
        ));
    }
}

/// The first datagram right after an allocation reaches the peer. (tokio's
/// `try_send_to` answered `WouldBlock` without trying while its reactor had
/// not yet seen a new socket writable, dropping it about 1 run in 8; the
/// driver now sends with a direct non-blocking `sendto`.)
#[test]
fn first_datagram_out_of_a_new_relay_reaches_the_peer() {
    let sb = server(true);
    let p = peer();
    p.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let peer_addr = p.local_addr().unwrap();
    for round in 0..20 {
        let mut d = Driver::udp(sb.turn, "alice", "secret");
        d.client.allocate(Instant::now()).unwrap();
        let ClientEvent::Allocated { relayed, .. } = d.event() else {
            panic!("allocate failed")
        };
        d.client
            .create_permission(Instant::now(), &[peer_addr.ip()])
            .unwrap();
        assert!(matches!(d.event(), ClientEvent::PermissionCreated { .. }));
        d.send_to(peer_addr, b"first");
        let mut buf = [0u8; 64];
        let got = p.recv_from(&mut buf);
        assert!(
            matches!(got, Ok((5, from)) if from == relayed),
            "round {round}: {got:?}"
        );
        d.client.refresh(Instant::now(), Duration::ZERO).unwrap();
        assert_eq!(d.event(), ClientEvent::Released);
    }
}

/// A port free for UDP and TCP on `[::1]` right now.
fn free_port_v6() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on [::1]");
}

/// The binary listening for STUN/TURN on `[::1]`, killed on drop.
fn server_v6() -> (support::Guard, SocketAddr) {
    let turn = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_port_v6()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let low = free_port().min(65_000);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--turn-listen", &turn.to_string()])
        .args(["--http-listen", &http.to_string()])
        .args(["--user", "alice:secret", "--allow-loopback-peers"])
        .args(["--relay-ports", &format!("{low}-{}", low + 30)])
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn switchboard");
    let guard = support::Guard(child);
    wait_for_binding(turn);
    (guard, turn)
}

#[test]
fn ipv6_udp_and_tcp_relay_round_trip() {
    let (_sb, turn) = server_v6();
    relay_round_trip(Driver::udp(turn, "alice", "secret"));
    relay_round_trip(Driver::tcp(turn, "alice", "secret"));
    let mut d = Driver::udp(turn, "alice", "secret");
    d.client.binding(Instant::now()).unwrap();
    let local = d.link.local_addr();
    assert_eq!(d.event(), ClientEvent::Mapped { mapped: local });
}
