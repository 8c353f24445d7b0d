//! The `switchboard` binary's STUN/TURN service over real loopback sockets,
//! driven by the crate's own sans-IO client core (`turn::client`) with a
//! small blocking driver: Binding, Allocate, CreatePermission, Send
//! indications and ChannelData to a UDP echo peer and back, Refresh and
//! delete — over UDP and over TCP — and the default refusal of loopback
//! peers, but for the server's own SFU port. Then the driver in this process (`turn_server::start`, no
//! binary): IPv4 and IPv6 clients of one dual-stack `[::]` listener, the
//! workers' stats board, and drain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod turn_driver;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stun::Method;
use support::{Switchboard, free_port};
use turn::client::ClientEvent;
use turn_driver::{Binary, Driver, peer, relay_round_trip, wait_for_binding};

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

/// The SFU's counter of datagrams from no participant, from `/metrics`.
fn sfu_unrouted(metrics: SocketAddr) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find(|l| l.starts_with("switchboard_sfu_dropped_datagrams_total{reason=\"unrouted\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// With loopback peers refused (the default), a relay still reaches the
/// server's own SFU on 127.0.0.1 — a relay-only browser's path to it — and
/// nothing else on that IP: another port is refused by ChannelBind, and
/// datagrams to or from it are dropped.
#[test]
fn relays_reach_the_servers_own_sfu_and_no_other_port_of_its_ip() {
    let sfu: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (sfu_arg, metrics_arg) = (sfu.to_string(), metrics.to_string());
    let sb = Switchboard::start(&[
        "--user",
        "alice:secret",
        "--sfu",
        "always",
        "--sfu-listen",
        &sfu_arg,
        "--metrics-listen",
        &metrics_arg,
    ]);
    wait_for_binding(sb.turn);
    let other = peer();
    other
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let other_addr = other.local_addr().unwrap();
    let mut d = Driver::udp(sb.turn, "alice", "secret");
    d.client.allocate(Instant::now()).unwrap();
    let ClientEvent::Allocated { relayed, .. } = d.event() else {
        panic!("allocate failed")
    };
    // The SFU's IP gets a permission (for the SFU's port only).
    d.client
        .create_permission(Instant::now(), &[sfu.ip()])
        .unwrap();
    assert!(matches!(d.event(), ClientEvent::PermissionCreated { .. }));
    // Another port of that IP: no channel, and nothing passes either way.
    d.client.channel_bind(Instant::now(), other_addr).unwrap();
    assert!(matches!(
        d.event(),
        ClientEvent::Failed {
            method: Method::CHANNEL_BIND,
            code: 403,
            ..
        }
    ));
    d.send_to(other_addr, b"not for you");
    let mut buf = [0u8; 64];
    assert!(
        other.recv_from(&mut buf).is_err(),
        "relayed to another port"
    );
    other.send_to(b"nor this", relayed).unwrap();
    assert!(
        !d.run_until(Duration::from_millis(500), |d| !d.data.is_empty()),
        "another port reached the client"
    );
    // The SFU's port: by Send indication, then on a channel. The SFU
    // counts them as from no participant (they are not ICE). The relay
    // sends the four same-size ChannelData payloads as one GSO train,
    // which the SFU must split by its stride to count four.
    let before = sfu_unrouted(metrics);
    d.send_to(sfu, b"hello SFU");
    d.client.channel_bind(Instant::now(), sfu).unwrap();
    assert!(matches!(d.event(), ClientEvent::ChannelBound { .. }));
    for _ in 0..4 {
        let sent = d.send_to(sfu, b"hello SFU");
        assert!(
            sent.first().is_some_and(|b| b & 0xC0 == 0x40),
            "ChannelData"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while sfu_unrouted(metrics) < before + 5 {
        assert!(
            Instant::now() < deadline,
            "the SFU did not get 5 datagrams through the relay within 5 s"
        );
        std::thread::sleep(Duration::from_millis(200));
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
        // Tests run side by side: only one that asks (--sfu-listen) gets an SFU.
        .env("SWITCHBOARD_SFU_LISTEN", "off")
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

#[test]
fn dual_stack_binary_serves_ipv4_clients_as_ipv4() {
    let (_sb, port) = Binary::dual_stack(&["--user", "alice:secret", "--allow-loopback-peers"]);
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    // Mapped address 127.0.0.1 (not ::ffff:127.0.0.1), relay on 127.0.0.1.
    relay_round_trip(Driver::udp(v4, "alice", "secret"));
    relay_round_trip(Driver::tcp(v4, "alice", "secret"));
    relay_round_trip(Driver::udp(v6, "alice", "secret"));
    relay_round_trip(Driver::tcp(v6, "alice", "secret"));
}

/// The driver in this process on `[::]:0` with `workers` workers; relays
/// to loopback peers; static user alice:secret.
fn in_process(workers: usize) -> switchboard::turn_server::Bound {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = Instant::now();
    let ledger = std::sync::Arc::new(turn::ledger::Ledger::new(turn::ledger::Quotas {
        per_user: 16,
        per_static_user: 0,
        per_ip: 64,
        total: 10_000,
    }));
    let core = |i: usize| {
        let users = turn::auth::Users::new("switchboard", [("alice", "secret")], None);
        let mut config = turn::ServerConfig::new(users);
        config.policy = turn::policy::PeerPolicy::new(Vec::new(), Vec::new(), true);
        config.ledger = ledger.clone();
        config.nonce_secret = Some([7; 32]);
        let mut seed = turn_driver::rand_seed();
        seed[31] ^= i as u8;
        turn::Server::new(config, start, unix, seed)
    };
    let limits = switchboard::turn_server::DriverOptions {
        tcp_idle_timeout: Duration::from_secs(30),
        max_tcp_per_ip: 64,
        kernel: None,
    };
    let any: SocketAddr = "[::]:0".parse().unwrap();
    let bound = switchboard::turn_server::start(any, None, workers, core, limits).unwrap();
    assert_eq!(bound.udp.ip(), any.ip(), "dual stack, no fallback here");
    bound
}

#[test]
fn dual_stack_driver_relays_for_ipv4_and_ipv6_clients() {
    let bound = in_process(2);
    let v4 = SocketAddr::from(([127, 0, 0, 1], bound.udp.port()));
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bound.udp.port()));
    wait_for_binding(v4);
    for turn in [v4, v6] {
        relay_round_trip(Driver::udp(turn, "alice", "secret"));
        relay_round_trip(Driver::tcp(turn, "alice", "secret"));
        let mut d = Driver::udp(turn, "x", "y");
        d.client.binding(Instant::now()).unwrap();
        let local = d.link.local_addr();
        assert_eq!(d.event(), ClientEvent::Mapped { mapped: local });
    }
}

/// Polls the stats board (published about once a second) until `done`.
fn board_until(
    bound: &switchboard::turn_server::Bound,
    mut done: impl FnMut(&[switchboard::turn_server::WorkerStats]) -> bool,
) -> Vec<switchboard::turn_server::WorkerStats> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = bound.stats.snapshot();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn workers_publish_stats_and_drain_refuses_new_allocations() {
    let bound = in_process(2);
    let turn = SocketAddr::from(([127, 0, 0, 1], bound.udp.port()));
    wait_for_binding(turn);
    assert_eq!(bound.stats.snapshot().len(), 2, "one slot per worker");

    let mut udp = Driver::udp(turn, "alice", "secret");
    udp.client.allocate(Instant::now()).unwrap();
    assert!(matches!(udp.event(), ClientEvent::Allocated { .. }));
    let mut tcp = Driver::tcp(turn, "alice", "secret");
    tcp.client.allocate(Instant::now()).unwrap();
    assert!(matches!(tcp.event(), ClientEvent::Allocated { .. }));
    let s = board_until(&bound, |s| {
        s.iter().map(|w| w.core.allocations_total()).sum::<u64>() == 2
            && s.iter().map(|w| w.tcp_open).sum::<u64>() == 1
    });
    let sum = |f: fn(&switchboard::turn_server::WorkerStats) -> u64| s.iter().map(f).sum::<u64>();
    assert_eq!(sum(|w| w.core.allocations_total()), 2, "{s:?}");
    assert_eq!(sum(|w| w.relay_sockets), 2, "{s:?}");
    assert_eq!(sum(|w| w.tcp_open), 1, "{s:?}");
    assert!(sum(|w| w.tcp_accepted) >= 1, "{s:?}");
    assert_eq!(sum(|w| w.core.response_count("allocate", "success")), 2);

    bound.drain(None);
    std::thread::sleep(Duration::from_millis(200));
    // Every worker refuses (clients from many ports reach both workers).
    for _ in 0..6 {
        let mut d = Driver::udp(turn, "alice", "secret");
        d.client.allocate(Instant::now()).unwrap();
        assert!(
            matches!(
                d.event(),
                ClientEvent::Failed {
                    method: Method::ALLOCATE,
                    code: 508,
                    ..
                }
            ),
            "a new allocation while draining"
        );
    }
    // Established ones go on.
    udp.client
        .refresh(Instant::now(), Duration::from_secs(600))
        .unwrap();
    assert!(matches!(udp.event(), ClientEvent::Refreshed { .. }));
    drop(tcp);
    let s = board_until(&bound, |s| s.iter().map(|w| w.tcp_open).sum::<u64>() == 0);
    assert_eq!(s.iter().map(|w| w.tcp_open).sum::<u64>(), 0, "{s:?}");
    assert_eq!(s.iter().map(|w| w.core.allocations_total()).sum::<u64>(), 1);
}

#[test]
fn a_deleted_allocations_relay_socket_serves_the_next_one() {
    let bound = in_process(1);
    let turn = SocketAddr::from(([127, 0, 0, 1], bound.udp.port()));
    wait_for_binding(turn);
    let kept = |s: &[switchboard::turn_server::WorkerStats]| {
        let sum = |f: fn(&switchboard::turn_server::WorkerStats) -> u64| s.iter().map(f).sum();
        (sum(|w| w.relay_sockets), sum(|w| w.relay_sockets_kept))
    };

    let mut first = Driver::udp(turn, "alice", "secret");
    first.client.allocate(Instant::now()).unwrap();
    let ClientEvent::Allocated { relayed, .. } = first.event() else {
        panic!("allocate failed")
    };
    first
        .client
        .refresh(Instant::now(), Duration::ZERO)
        .unwrap();
    assert_eq!(first.event(), ClientEvent::Released);
    let s = board_until(&bound, |s| kept(s) == (0, 1));
    assert_eq!(kept(&s), (0, 1), "the socket is kept bound: {s:?}");
    // Its port stays bound: nobody else can take it meanwhile.
    assert!(std::net::UdpSocket::bind(relayed).is_err());

    // The next allocation gets that socket, and peers reach it through it.
    let mut second = Driver::udp(turn, "alice", "secret");
    second.client.allocate(Instant::now()).unwrap();
    let ClientEvent::Allocated { relayed: again, .. } = second.event() else {
        panic!("allocate failed")
    };
    assert_eq!(again, relayed);
    let p = peer();
    let peer_addr = p.local_addr().unwrap();
    second
        .client
        .create_permission(Instant::now(), &[peer_addr.ip()])
        .unwrap();
    assert!(matches!(
        second.event(),
        ClientEvent::PermissionCreated { .. }
    ));
    p.send_to(b"to the reused relay", relayed).unwrap();
    assert_eq!(second.data().payload, b"to the reused relay");
    let s = board_until(&bound, |s| kept(s) == (1, 0));
    assert_eq!(kept(&s), (1, 0), "{s:?}");
}
