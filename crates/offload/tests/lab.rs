//! The relay between real sockets: client namespace — veth — server
//! namespace (forwarding, the program attached to both veths) — veth —
//! peer namespace. ChannelData from the client reaches the peer's socket
//! stripped and from the relay address, the peer's answer comes back to
//! the client as ChannelData from the listen address, the counters count
//! both, and after `remove` the same datagrams reach the server
//! namespace's own sockets. Once with TC only, once with native XDP on the
//! veths (their outer ends get GRO so they take redirected frames).
//!
//! The outer ends send with checksum offload off, like packets from a
//! wire: a checksum a local sender leaves to the device is not relayed
//! (see `everything_else_passes_unchanged`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Netns, channel_data};
use offload::{Channel, ChannelKey, Config, Offload, UNLIMITED, XdpPolicy};

struct Lab {
    client: UdpSocket,
    peer: UdpSocket,
    /// The server namespace's own sockets: the TURN listener and the relay.
    listener: UdpSocket,
    relay_socket: UdpSocket,
    channel: Channel,
    offload: Offload,
    /// Last, so it is dropped after the offload and the sockets.
    _namespaces: [Netns; 3],
}

fn addrs(v6: bool) -> [&'static str; 4] {
    // client, server (listen), relay, peer
    if v6 {
        [
            "fd00:202:1::2",
            "fd00:202:1::1",
            "fd00:202:2::1",
            "fd00:202:2::2",
        ]
    } else {
        ["10.202.1.2", "10.202.1.1", "10.202.2.1", "10.202.2.2"]
    }
}

fn bind(ns: &Netns, addr: SocketAddr) -> UdpSocket {
    ns.run(move || {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    })
}

fn lab(v6: bool, xdp: XdpPolicy) -> Lab {
    let a = Netns::new("cli");
    let s = Netns::new("srv");
    let c = Netns::new("peer");
    let [client, server, relay, peer] = addrs(v6);
    let plen = if v6 { "/64" } else { "/24" };
    for (outer, inner, ns, outer_ip, inner_ip) in [
        ("a0", "s0", &a, client, server),
        ("c0", "s1", &c, peer, relay),
    ] {
        s.ip(&["link", "add", inner, "type", "veth", "peer", "name", outer]);
        s.ip(&["link", "set", outer, "netns", &ns.name]);
        s.ip(&["link", "set", inner, "up"]);
        ns.ip(&["link", "set", outer, "up"]);
        let inner_cidr = format!("{inner_ip}{plen}");
        let outer_cidr = format!("{outer_ip}{plen}");
        if v6 {
            s.ip(&["addr", "add", &inner_cidr, "dev", inner, "nodad"]);
            ns.ip(&["addr", "add", &outer_cidr, "dev", outer, "nodad"]);
        } else {
            s.ip(&["addr", "add", &inner_cidr, "dev", inner]);
            ns.ip(&["addr", "add", &outer_cidr, "dev", outer]);
        }
        // Full checksums, as from a wire; GRO so the veth takes XDP frames.
        ns.exec("ethtool", &["-K", outer, "tx", "off"]);
        if xdp != XdpPolicy::Never {
            ns.exec("ethtool", &["-K", outer, "gro", "on"]);
        }
    }
    s.sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    let sa = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
    let channel = Channel {
        key: ChannelKey {
            client: sa(client, 40000),
            server: sa(server, 3478),
            channel: 0x4001,
        },
        relay: sa(relay, 50000),
        peer: sa(peer, 60000),
    };
    let listener = bind(&s, channel.key.server);
    let relay_socket = bind(&s, channel.relay);
    let client_socket = bind(&a, channel.key.client);
    let peer_socket = bind(&c, channel.peer);
    let offload = s.run(move || {
        let mut config = Config::new(&["s0".to_owned(), "s1".to_owned()], &[channel.key.server]);
        config.xdp = xdp;
        let mut o = Offload::attach_with(&config).unwrap();
        o.insert(&channel, UNLIMITED).unwrap();
        o
    });
    let attached = offload.attachments();
    assert_eq!(attached.len(), 2);
    assert!(
        attached
            .iter()
            .all(|x| x.tc && x.xdp == (xdp == XdpPolicy::Always)),
        "{attached:?}"
    );
    Lab {
        client: client_socket,
        peer: peer_socket,
        listener,
        relay_socket,
        channel,
        offload,
        _namespaces: [a, s, c],
    }
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).ok()?;
    Some((buf[..n].to_vec(), from))
}

fn round_trips(v6: bool, xdp: XdpPolicy) {
    let lab = lab(v6, xdp);
    let ch = lab.channel;
    const ROUNDS: u64 = 20;
    for i in 0..ROUNDS {
        let data = format!("hello{i:02}");
        // Odd-length data padded to 4 bytes, as a stream client would.
        let msg = channel_data(ch.key.channel, data.as_bytes(), &[0]);
        lab.client.send_to(&msg, ch.key.server).unwrap();
        let (got, from) = recv(&lab.peer).expect("the peer got the datagram");
        assert_eq!((got.as_slice(), from), (data.as_bytes(), ch.relay));

        let answer = format!("world {i:02}!");
        lab.peer.send_to(answer.as_bytes(), ch.relay).unwrap();
        let (got, from) = recv(&lab.client).unwrap_or_else(|| {
            panic!("round {i}: no answer; {:?}", lab.offload.stats());
        });
        assert_eq!(got, channel_data(ch.key.channel, answer.as_bytes(), &[]));
        assert_eq!(from, ch.key.server);
    }
    // None of it went through the server's sockets.
    lab.listener.set_nonblocking(true).unwrap();
    lab.relay_socket.set_nonblocking(true).unwrap();
    assert!(recv(&lab.listener).is_none() && recv(&lab.relay_socket).is_none());
    lab.listener.set_nonblocking(false).unwrap();
    lab.relay_socket.set_nonblocking(false).unwrap();

    let c = lab.offload.counters(&ch.key).unwrap().unwrap();
    assert_eq!((c.to_peer_packets, c.to_peer_bytes), (ROUNDS, ROUNDS * 7));
    assert_eq!(
        (c.to_client_packets, c.to_client_bytes),
        (ROUNDS, ROUNDS * 9)
    );
    let stats = lab.offload.stats().unwrap();
    assert_eq!(
        stats.xdp.forwarded + stats.tc.forwarded,
        2 * ROUNDS,
        "{stats:?}"
    );
    if xdp == XdpPolicy::Always {
        // The first datagrams wait for neighbour resolution in TC; the
        // rest leave from XDP.
        assert!(stats.xdp.forwarded >= ROUNDS, "{stats:?}");
    } else {
        assert_eq!(stats.xdp, Default::default());
    }

    // Removed: the stack delivers to the server's own sockets again.
    let mut lab = lab;
    let last = lab.offload.remove(&ch.key).unwrap().unwrap();
    assert_eq!(last.to_peer_packets, ROUNDS);
    let msg = channel_data(ch.key.channel, b"to userspace", &[]);
    lab.client.send_to(&msg, ch.key.server).unwrap();
    let (got, from) = recv(&lab.listener).expect("the listener got it");
    assert_eq!((got, from), (msg, ch.key.client));
    lab.peer.send_to(b"to the relay socket", ch.relay).unwrap();
    let (got, from) = recv(&lab.relay_socket).expect("the relay socket got it");
    assert_eq!(
        (got.as_slice(), from),
        (&b"to the relay socket"[..], ch.peer)
    );
}

fn lab_test(name: &str, v6: bool, xdp: XdpPolicy) {
    if common::skipped(name) {
        return;
    }
    if std::process::Command::new("ethtool")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipping {name}: needs ethtool");
        return;
    }
    round_trips(v6, xdp);
}

#[test]
fn lab_tc_ipv4() {
    lab_test("lab_tc_ipv4", false, XdpPolicy::Never);
}

#[test]
fn lab_tc_ipv6() {
    lab_test("lab_tc_ipv6", true, XdpPolicy::Never);
}

#[test]
fn lab_xdp_ipv4() {
    lab_test("lab_xdp_ipv4", false, XdpPolicy::Always);
}

#[test]
fn lab_xdp_ipv6() {
    lab_test("lab_xdp_ipv6", true, XdpPolicy::Always);
}

/// Set in the helper process [`crash_leaves_nothing_attached`] starts.
const HELPER_ENV: &str = "SBO_OFFLOAD_HELPER";

/// Not a test on its own: attaches in the namespace named by
/// `SBO_OFFLOAD_HELPER` (`NS:READY_FILE`), says so, and waits to be killed.
#[test]
#[ignore = "helper process of crash_leaves_nothing_attached"]
fn helper_attach_and_wait() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (ns, ready) = spec.split_once(':').unwrap();
    let ns = Netns::adopt(ns);
    let offload = ns.run(|| {
        let mut config = Config::new(&["s0".to_owned()], &["0.0.0.0:3478".parse().unwrap()]);
        config.xdp = XdpPolicy::Always;
        Offload::attach_with(&config).unwrap()
    });
    std::fs::write(ready, format!("{:?}", offload.attachments())).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// The bpf_links process `pid` holds, from its fds' fdinfo: (type, id).
fn links_of(pid: u32) -> Vec<(String, u32)> {
    let mut links = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let info = std::fs::read_to_string(fd.unwrap().path()).unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if let (Some(kind), Some(id)) = (field("link_type:"), field("link_id:")) {
            links.push((kind, id.parse().unwrap()));
        }
    }
    links.sort();
    links
}

/// True while the kernel still has link `id`.
fn link_exists(id: u32) -> bool {
    std::process::Command::new("bpftool")
        .args(["link", "show", "id", &id.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The helper process, killed (if still running) and its file removed on drop.
struct Helper(std::process::Child, std::path::PathBuf);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

#[test]
fn crash_leaves_nothing_attached() {
    if common::skipped("crash_leaves_nothing_attached") {
        return;
    }
    if std::process::Command::new("bpftool")
        .arg("version")
        .output()
        .is_err()
    {
        println!("skipping crash_leaves_nothing_attached: needs bpftool");
        return;
    }
    let ns = Netns::new("crash");
    ns.ip(&["link", "add", "s0", "type", "veth", "peer", "name", "s0p"]);
    ns.ip(&["link", "set", "s0", "up"]);
    let ready = std::env::temp_dir().join(format!("{}-ready", ns.name));
    let _ = std::fs::remove_file(&ready);
    let mut child = Helper(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "helper_attach_and_wait",
                "--nocapture",
            ])
            .env(HELPER_ENV, format!("{}:{}", ns.name, ready.display()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        ready.clone(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "helper never attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let xdp_on_s0 = || {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns.name, "link", "show", "dev", "s0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    let links = links_of(child.0.id());
    let kinds: Vec<&str> = links.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["tcx", "xdp"], "the helper holds one link per hook");
    assert!(xdp_on_s0() && links.iter().all(|&(_, id)| link_exists(id)));
    child.0.kill().unwrap(); // SIGKILL: no destructor runs
    child.0.wait().unwrap();
    // The kernel releases the links with the last file descriptor.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while xdp_on_s0() || links.iter().any(|&(_, id)| link_exists(id)) {
        assert!(
            std::time::Instant::now() < deadline,
            "hooks outlived the process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
