//! Crafted frames through both hooks with BPF_PROG_TEST_RUN, inside a
//! namespace with routes and static neighbours so `bpf_fib_lookup` finds
//! next hops: valid ChannelData is rewritten exactly (every header field
//! checked, checksums recomputed from scratch), everything else comes back
//! unchanged with "pass", budgets and counters hold. IPv4 and IPv6.
//!
//! Run: `cargo test -p switchboard-offload --features kernel -- --test-threads=1` (root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Netns, Opts, channel_data, frame, parse};
use offload::{Channel, ChannelKey, Config, Hook, Offload, UNLIMITED, Verdict, XdpPolicy};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];
const NEAR_PEER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 3];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];

/// One family's addresses: t0 is the client side, t1 the peer side.
#[derive(Clone, Copy)]
struct Net {
    server: IpAddr,
    client: IpAddr,
    near_peer: IpAddr,
    relay: IpAddr,
    peer: IpAddr,
}

fn net(v6: bool) -> Net {
    let p = |s: &str| s.parse().unwrap();
    if v6 {
        Net {
            server: p("fd00:201:1::1"),
            client: p("fd00:201:1::2"),
            near_peer: p("fd00:201:1::3"),
            relay: p("fd00:201:2::1"),
            peer: p("fd00:201:2::2"),
        }
    } else {
        Net {
            server: p("10.201.1.1"),
            client: p("10.201.1.2"),
            near_peer: p("10.201.1.3"),
            relay: p("10.201.2.1"),
            peer: p("10.201.2.2"),
        }
    }
}

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// Channel `n` of a family: 0 routes out of t1 (egress ≠ ingress), 1 to a
/// peer beside the client (out of t0 again), 2 has a small budget.
fn channel(n: &Net, i: u16) -> Channel {
    let (relay, peer) = if i == 1 {
        (n.server, n.near_peer)
    } else {
        (n.relay, n.peer)
    };
    Channel {
        key: ChannelKey {
            client: sa(n.client, 40000 + i),
            server: sa(n.server, 3478),
            channel: 0x4001 + i,
        },
        relay: sa(relay, 50000 + i),
        peer: sa(peer, 60000 + i),
    }
}

/// The namespace: veths t0 and t1 with both families, forwarding on,
/// permanent neighbours for the client and both peers.
fn lab() -> Netns {
    let ns = Netns::new("run");
    for (dev, peer) in [("t0", "t0p"), ("t1", "t1p")] {
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
        ns.ip(&["link", "set", dev, "up"]);
        ns.ip(&["link", "set", peer, "up"]);
    }
    ns.sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    ns.ip(&["addr", "add", "10.201.1.1/24", "dev", "t0"]);
    ns.ip(&["addr", "add", "10.201.2.1/24", "dev", "t1"]);
    ns.ip(&["addr", "add", "fd00:201:1::1/64", "dev", "t0", "nodad"]);
    ns.ip(&["addr", "add", "fd00:201:2::1/64", "dev", "t1", "nodad"]);
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for (ip, m, dev) in [
        ("10.201.1.2", CLIENT_MAC, "t0"),
        ("10.201.1.3", NEAR_PEER_MAC, "t0"),
        ("10.201.2.2", PEER_MAC, "t1"),
        ("fd00:201:1::2", CLIENT_MAC, "t0"),
        ("fd00:201:1::3", NEAR_PEER_MAC, "t0"),
        ("fd00:201:2::2", PEER_MAC, "t1"),
    ] {
        ns.ip(&[
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac(m),
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }
    ns
}

/// Everything one namespace thread needs.
struct Run {
    o: Offload,
    t0: u32,
    t1: u32,
    t0_mac: [u8; 6],
    t1_mac: [u8; 6],
}

impl Run {
    fn run(&self, hook: Hook, f: &[u8], ifindex: u32) -> offload::TestRun {
        self.o.test_run(hook, f, ifindex).unwrap()
    }

    /// Asserts both hooks leave `f` alone.
    fn passes(&self, what: &str, f: &[u8], ifindex: u32) {
        for hook in [Hook::Xdp, Hook::Tc] {
            let r = self.run(hook, f, ifindex);
            assert_eq!(r.verdict, Verdict::Pass, "{what}: {hook:?}");
            assert_eq!(r.frame, f, "{what}: {hook:?} changed the frame");
        }
    }
}

/// A client's ChannelData frame for channel `ch` arriving on t0.
fn from_client(r: &Run, ch: &Channel, message: &[u8], o: Opts) -> Vec<u8> {
    frame(
        r.t0_mac,
        CLIENT_MAC,
        ch.key.client,
        ch.key.server,
        message,
        o,
    )
}

/// A peer's datagram to the relay address of `ch` arriving on t1.
fn from_peer(r: &Run, ch: &Channel, data: &[u8]) -> Vec<u8> {
    frame(r.t1_mac, PEER_MAC, ch.peer, ch.relay, data, Opts::default())
}

fn setup(ns: &Netns) -> Run {
    let t0 = ns.ifindex("t0");
    let t1 = ns.ifindex("t1");
    let (t0_mac, t1_mac) = (ns.mac("t0"), ns.mac("t1"));
    ns.run(move || {
        let mut config = Config::new(
            &["t0".to_owned(), "t1".to_owned()],
            &["0.0.0.0:3478".parse().unwrap()],
        );
        // Both veths become XDP egresses, so the XDP hook's TX and redirect
        // verdicts show (a test run sends nothing).
        config.xdp = XdpPolicy::Always;
        let mut o = Offload::attach_with(&config).unwrap();
        for v6 in [false, true] {
            let n = net(v6);
            o.insert(&channel(&n, 0), UNLIMITED).unwrap();
            o.insert(&channel(&n, 1), UNLIMITED).unwrap();
            o.insert(&channel(&n, 2), 10).unwrap();
        }
        Run {
            o,
            t0,
            t1,
            t0_mac,
            t1_mac,
        }
    })
}

/// Runs `f` in the namespace with the offload set up.
fn in_lab(f: impl FnOnce(&mut Run) + Send + 'static) {
    let ns = lab();
    let mut r = setup(&ns);
    ns.run(move || f(&mut r));
}

#[test]
fn client_to_peer_is_rewritten_exactly() {
    if common::skipped("client_to_peer_is_rewritten_exactly") {
        return;
    }
    in_lab(|r| {
        for v6 in [false, true] {
            let n = net(v6);
            let ch = channel(&n, 0);
            let hdr = if v6 { 14 + 40 + 8 } else { 14 + 20 + 8 };
            // Lengths 0..=8 cover no padding and 1, 2 and 3 padding bytes
            // at odd and even offsets; the padding is not zero on purpose.
            for len in 0..=8usize {
                let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
                for padded in [false, true] {
                    let pad = if padded {
                        &[0xa5, 0x3c, 0xf0][..(4 - len % 4) % 4]
                    } else {
                        &[][..]
                    };
                    let msg = channel_data(ch.key.channel, &data, pad);
                    let input = from_client(r, &ch, &msg, Opts::default());
                    for hook in [Hook::Xdp, Hook::Tc] {
                        let out = r.run(hook, &input, r.t0);
                        let what = format!("v6={v6} len={len} pad={} {hook:?}", pad.len());
                        assert_eq!(out.verdict, Verdict::Redirect, "{what}");
                        assert_eq!(out.frame.len(), hdr + len, "{what}");
                        let p = parse(&out.frame);
                        assert_eq!(p.dst_mac, PEER_MAC, "{what}");
                        assert_eq!(p.src_mac, r.t1_mac, "{what}");
                        assert_eq!(p.src, ch.relay, "{what}");
                        assert_eq!(p.dst, ch.peer, "{what}");
                        assert_eq!(p.ttl, 63, "{what}: TTL decremented");
                        assert_eq!(p.tos, 0xb8, "{what}: DSCP/ECN kept");
                        if v6 {
                            assert_eq!(p.flow_label, 0x5_4321, "{what}");
                        } else {
                            assert_eq!((p.ip_id, p.df), (0x1234, true), "{what}");
                        }
                        assert!(p.ip_ok && p.udp_ok && p.lengths_ok, "{what}: {p:?}");
                        assert_eq!(p.payload, data, "{what}");
                    }
                }
            }
        }
    });
}

#[test]
fn peer_to_client_gets_the_header() {
    if common::skipped("peer_to_client_gets_the_header") {
        return;
    }
    in_lab(|r| {
        for v6 in [false, true] {
            let n = net(v6);
            let ch = channel(&n, 0);
            for len in [0usize, 1, 5, 12, 1200] {
                let data: Vec<u8> = (0..len).map(|b| (b * 7) as u8).collect();
                let input = from_peer(r, &ch, &data);
                for hook in [Hook::Xdp, Hook::Tc] {
                    let what = format!("v6={v6} len={len} {hook:?}");
                    let out = r.run(hook, &input, r.t1);
                    assert_eq!(out.verdict, Verdict::Redirect, "{what}");
                    let p = parse(&out.frame);
                    assert_eq!((p.dst_mac, p.src_mac), (CLIENT_MAC, r.t0_mac), "{what}");
                    assert_eq!((p.src, p.dst), (ch.key.server, ch.key.client), "{what}");
                    assert_eq!((p.ttl, p.tos), (63, 0xb8), "{what}");
                    assert!(p.ip_ok && p.udp_ok && p.lengths_ok, "{what}: {p:?}");
                    assert_eq!(
                        p.payload,
                        channel_data(ch.key.channel, &data, &[]),
                        "{what}"
                    );
                }
            }
        }
    });
}

#[test]
fn same_interface_is_xdp_tx_and_edge_cases_forward() {
    if common::skipped("same_interface_is_xdp_tx_and_edge_cases_forward") {
        return;
    }
    in_lab(|r| {
        for v6 in [false, true] {
            let n = net(v6);
            let near = channel(&n, 1);
            let msg = channel_data(near.key.channel, b"data", &[]);
            let input = from_client(r, &near, &msg, Opts::default());
            let out = r.run(Hook::Xdp, &input, r.t0);
            assert_eq!(
                out.verdict,
                Verdict::Tx,
                "v6={v6}: out of the interface it came in on"
            );
            let p = parse(&out.frame);
            assert_eq!((p.dst_mac, p.src_mac), (NEAR_PEER_MAC, r.t0_mac));
            assert_eq!((p.src, p.dst), (near.relay, near.peer));
            assert!(p.ip_ok && p.udp_ok && p.lengths_ok);
            let tc = r.run(Hook::Tc, &input, r.t0);
            assert_eq!(tc.verdict, Verdict::Redirect);
            assert_eq!(
                tc.frame, out.frame,
                "v6={v6}: both hooks write the same frame"
            );
        }
        let n = net(false);
        let ch = channel(&n, 0);
        // IPv4 without a UDP checksum stays without one.
        let msg = channel_data(ch.key.channel, b"abc", &[]);
        let zero = Opts {
            zero_checksum: true,
            ..Opts::default()
        };
        for hook in [Hook::Xdp, Hook::Tc] {
            let out = r.run(hook, &from_client(r, &ch, &msg, zero), r.t0);
            assert_eq!(out.verdict, Verdict::Redirect);
            let p = parse(&out.frame);
            assert_eq!((p.udp_check, p.payload.as_slice()), (0, &b"abc"[..]));
        }
        // A short frame padded to Ethernet's 60 bytes leaves without the
        // Ethernet padding, in both directions.
        let mut short = from_client(
            r,
            &ch,
            &channel_data(ch.key.channel, b"hi", &[]),
            Opts::default(),
        );
        short.resize(60, 0);
        let mut short_peer = from_peer(r, &ch, b"yo");
        short_peer.resize(60, 0);
        for hook in [Hook::Xdp, Hook::Tc] {
            let out = r.run(hook, &short, r.t0);
            assert_eq!(
                (out.verdict, out.frame.len()),
                (Verdict::Redirect, 14 + 20 + 8 + 2)
            );
            assert!(parse(&out.frame).udp_ok);
            let out = r.run(hook, &short_peer, r.t1);
            assert_eq!(
                (out.verdict, out.frame.len()),
                (Verdict::Redirect, 14 + 20 + 8 + 6)
            );
            assert!(parse(&out.frame).lengths_ok && parse(&out.frame).udp_ok);
        }
    });
}

#[test]
fn everything_else_passes_unchanged() {
    if common::skipped("everything_else_passes_unchanged") {
        return;
    }
    in_lab(|r| {
        for v6 in [false, true] {
            let n = net(v6);
            let ch = channel(&n, 0);
            let cd = |data: &[u8]| channel_data(ch.key.channel, data, &[]);
            let o = Opts::default();
            let c = |msg: &[u8], o: Opts| from_client(r, &ch, msg, o);
            let with_len = |len: u16, body: &[u8]| {
                let mut m = ch.key.channel.to_be_bytes().to_vec();
                m.extend_from_slice(&len.to_be_bytes());
                m.extend_from_slice(body);
                m
            };
            let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            stun.extend_from_slice(&[7; 12]);
            let mut cases: Vec<(&str, Vec<u8>, u32)> = vec![
                ("short datagram", c(&[0x40, 0x01], o), r.t0),
                ("empty datagram", c(&[], o), r.t0),
                (
                    "length beyond the datagram",
                    c(&with_len(9, b"12345678"), o),
                    r.t0,
                ),
                (
                    "length too short for the datagram",
                    c(&with_len(3, b"12345678"), o),
                    r.t0,
                ),
                (
                    "padding not to a 4-byte boundary",
                    c(&with_len(5, b"123456"), o),
                    r.t0,
                ),
                (
                    "unknown channel",
                    c(&channel_data(0x4fff, b"x", &[]), o),
                    r.t0,
                ),
                (
                    "channel number out of range",
                    c(&channel_data(0x8001, b"x", &[]), o),
                    r.t0,
                ),
                ("STUN Binding request", c(&stun, o), r.t0),
                ("TTL 1", c(&cd(b"x"), Opts { ttl: 1, ..o }), r.t0),
                (
                    "checksum left to the device",
                    c(
                        &cd(b"abcd"),
                        Opts {
                            partial_checksum: true,
                            ..o
                        },
                    ),
                    r.t0,
                ),
                ("not UDP", c(&cd(b"x"), Opts { protocol: 6, ..o }), r.t0),
            ];
            let mut wrong_port = ch;
            wrong_port.key.client.set_port(40999);
            cases.push((
                "wrong client port",
                from_client(r, &wrong_port, &cd(b"x"), o),
                r.t0,
            ));
            let mut wrong_ip = ch;
            wrong_ip.key.client.set_ip(n.near_peer);
            cases.push((
                "wrong client address",
                from_client(r, &wrong_ip, &cd(b"x"), o),
                r.t0,
            ));
            let mut wrong_server = ch;
            wrong_server.key.server.set_ip(n.relay);
            cases.push((
                "other server address",
                from_client(r, &wrong_server, &cd(b"x"), o),
                r.t0,
            ));
            let mut wrong_peer = ch;
            wrong_peer.peer.set_port(60999);
            cases.push((
                "peer: wrong source port",
                from_peer(r, &wrong_peer, b"x"),
                r.t1,
            ));
            wrong_peer = ch;
            wrong_peer.peer.set_ip(n.near_peer);
            cases.push((
                "peer: wrong source address",
                from_peer(r, &wrong_peer, b"x"),
                r.t1,
            ));
            wrong_peer = ch;
            wrong_peer.relay.set_port(50999);
            cases.push((
                "peer: other relay port",
                from_peer(r, &wrong_peer, b"x"),
                r.t1,
            ));
            if v6 {
                cases.push((
                    "IPv6 zero checksum",
                    c(
                        &cd(b"x"),
                        Opts {
                            zero_checksum: true,
                            ..o
                        },
                    ),
                    r.t0,
                ));
            } else {
                cases.push((
                    "first fragment",
                    c(
                        &cd(b"x"),
                        Opts {
                            more_fragments: true,
                            ..o
                        },
                    ),
                    r.t0,
                ));
                let mut options = c(&cd(b"x"), o);
                options[14] = 0x46; // IHL 6: one option word (the frame is not re-checksummed: it must not matter)
                cases.push(("IPv4 options", options, r.t0));
            }
            let mut truncated = c(&cd(b"12345678"), o);
            truncated.truncate(truncated.len() - 3);
            cases.push(("truncated frame", truncated, r.t0));
            for (what, f, ifindex) in &cases {
                r.passes(&format!("v6={v6}: {what}"), f, *ifindex);
            }
        }
        let s = r.o.stats().unwrap();
        for h in [s.xdp, s.tc] {
            assert_eq!(h.forwarded, 0, "{s:?}");
            assert!(
                h.no_entry >= 2 && h.bad_length >= 2 && h.unsupported >= 2,
                "{s:?}"
            );
        }
    });
}

#[test]
fn budget_counters_and_removal() {
    if common::skipped("budget_counters_and_removal") {
        return;
    }
    in_lab(|r| {
        for v6 in [false, true] {
            let n = net(v6);
            let ch = channel(&n, 2); // budget 10 bytes
            let input = from_client(
                r,
                &ch,
                &channel_data(ch.key.channel, b"12345678", &[]),
                Opts::default(),
            );
            let back = from_peer(r, &ch, b"1234");
            assert_eq!(r.run(Hook::Xdp, &input, r.t0).verdict, Verdict::Redirect);
            // 2 bytes left: neither hook relays 8 or 4 more.
            r.passes("over budget", &input, r.t0);
            r.passes("over budget back", &back, r.t1);
            let c = r.o.counters(&ch.key).unwrap().unwrap();
            assert_eq!(
                (c.to_peer_packets, c.to_peer_bytes, c.budget_left),
                (1, 8, 2)
            );
            r.o.add_budget(&ch.key, 10).unwrap();
            assert_eq!(r.run(Hook::Tc, &back, r.t1).verdict, Verdict::Redirect);
            assert_eq!(r.run(Hook::Xdp, &input, r.t0).verdict, Verdict::Redirect);
            let c = r.o.counters(&ch.key).unwrap().unwrap();
            assert_eq!(
                (
                    c.to_peer_packets,
                    c.to_peer_bytes,
                    c.to_client_packets,
                    c.to_client_bytes,
                    c.budget_left
                ),
                (2, 16, 1, 4, 0)
            );
            r.o.set_budget(&ch.key, 8).unwrap();
            assert_eq!(r.o.counters(&ch.key).unwrap().unwrap().budget_left, 8);
            assert_eq!(r.run(Hook::Tc, &input, r.t0).verdict, Verdict::Redirect);
            r.passes("budget spent again", &back, r.t1);
            r.o.set_budget(&ch.key, UNLIMITED).unwrap();
            for _ in 0..3 {
                assert_eq!(r.run(Hook::Xdp, &back, r.t1).verdict, Verdict::Redirect);
            }
            // Inserting the same channel again keeps the counters.
            r.o.insert(&ch, UNLIMITED).unwrap();
            let last = r.o.remove(&ch.key).unwrap().unwrap();
            assert_eq!(
                (
                    last.to_peer_packets,
                    last.to_client_packets,
                    last.to_client_bytes,
                    last.budget_left
                ),
                (3, 4, 16, UNLIMITED)
            );
            assert_eq!(r.o.counters(&ch.key).unwrap(), None);
            r.passes("removed", &input, r.t0);
            r.passes("removed back", &back, r.t1);
            assert_eq!(r.o.remove(&ch.key).unwrap(), None);
        }
        let s = r.o.stats().unwrap();
        assert!(s.xdp.over_budget >= 2 && s.tc.over_budget >= 2, "{s:?}");
        assert!(s.xdp.forwarded >= 8 && s.tc.forwarded >= 4, "{s:?}");
    });
}
