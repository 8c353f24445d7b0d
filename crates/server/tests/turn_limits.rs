//! Driver limits over real loopback sockets: TCP slowloris and idle
//! connections are closed, connections per IP are capped, a connection with
//! an allocation is kept, and a flood of malformed datagrams leaves the server
//! answering with flat memory. Connections per address count as
//! `per_address` counts them (the WebSocket rule): IPv4 clients of a
//! dual-stack listener as IPv4, IPv6 per /64 — the /64 shown with two
//! addresses of one prefix inside a network namespace the test makes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod turn_driver;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId};
use support::Switchboard;
use turn::Transport;
use turn::client::{Client, ClientConfig, ClientEvent};

fn binding_request(tid: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    MessageBuilder::new(
        &mut buf,
        Class::Request,
        Method::BINDING,
        TransactionId([tid; 12]),
    );
    buf
}

/// Reads one STUN message from a stream.
fn read_stun(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 20];
    s.read_exact(&mut head).expect("header");
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    [head.to_vec(), body].concat()
}

/// True if the server closed the connection within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0) | Err(_))
        && {
            // A timeout is an error too: tell them apart.
            s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
            !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
        }
}

#[test]
fn slowloris_and_idle_tcp_connections_are_closed() {
    let sb = Switchboard::start(&["--tcp-idle-timeout", "2"]);
    // A whole request is answered; then silence closes the connection.
    let mut idle = TcpStream::connect(sb.turn).unwrap();
    idle.write_all(&binding_request(1)).unwrap();
    let resp = read_stun(&mut idle);
    assert_eq!(Message::decode(&resp).unwrap().class(), Class::Success);

    // Slowloris: a byte every 500 ms never completes a message.
    let mut slow = TcpStream::connect(sb.turn).unwrap();
    let req = binding_request(2);
    let start = Instant::now();
    let mut closed_at = None;
    for b in req.iter().take(12) {
        if slow.write_all(&[*b]).is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let closed_at = closed_at.unwrap_or_else(|| {
        assert!(
            closed_within(&mut slow, Duration::from_secs(3)),
            "slowloris kept open"
        );
        start.elapsed()
    });
    assert!(
        closed_at < Duration::from_secs(6),
        "closed after {closed_at:?}"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)),
        "idle connection kept open"
    );
}

#[test]
fn tcp_connection_with_an_allocation_is_not_idle() {
    let sb = Switchboard::start(&["--tcp-idle-timeout", "1", "--user", "u:p"]);
    let mut stream = TcpStream::connect(sb.turn).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut client = Client::new(
        ClientConfig::new(sb.turn, "u", "p", Transport::Tcp),
        Instant::now(),
        [3; 32],
    );
    client.allocate(Instant::now()).unwrap();
    let mut allocated = false;
    for _ in 0..4 {
        while let Some(out) = client.poll_transmit() {
            stream.write_all(&out).unwrap();
        }
        let msg = read_stun(&mut stream);
        client.handle_input(Instant::now(), &msg).unwrap();
        while let Some(ev) = client.poll_event() {
            if matches!(ev, ClientEvent::Allocated { .. }) {
                allocated = true;
            }
        }
        if allocated {
            break;
        }
    }
    assert!(allocated);
    std::thread::sleep(Duration::from_millis(2500));
    // Still served: a Binding on the same connection is answered.
    stream.write_all(&binding_request(9)).unwrap();
    let resp = read_stun(&mut stream);
    assert_eq!(
        Message::decode(&resp).unwrap().transaction_id(),
        TransactionId([9; 12])
    );
}

#[test]
fn tcp_connections_per_ip_are_capped() {
    let sb = Switchboard::start(&["--max-tcp-per-ip", "3"]);
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(sb.turn).unwrap())
        .collect();
    for (i, s) in open.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&binding_request(i as u8)).unwrap();
        read_stun(s);
    }
    let mut fourth = TcpStream::connect(sb.turn).unwrap();
    let _ = fourth.write_all(&binding_request(4));
    assert!(
        closed_within(&mut fourth, Duration::from_secs(3)),
        "4th connection served"
    );
    // Closing one frees a slot.
    drop(open.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(sb.turn).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    again.write_all(&binding_request(5)).unwrap();
    read_stun(&mut again);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

/// Sends a Binding request and waits for its answer.
fn binding_answered(sock: &UdpSocket, server: SocketAddr, tid: u8) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..10 {
        sock.send_to(&binding_request(tid), server).unwrap();
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(m) = Message::decode(&buf[..n])
                && m.transaction_id() == TransactionId([tid; 12])
            {
                let mapped = m.attribute(AttributeType::XOR_MAPPED_ADDRESS);
                return matches!(mapped, Some(Ok(Attribute::XorMappedAddress(a))) if a == sock.local_addr().unwrap());
            }
        }
    }
    false
}

#[test]
fn malformed_flood_leaves_memory_flat_and_service_up() {
    let sb = Switchboard::start(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(binding_answered(&sock, sb.turn, 1));
    let before = rss_kib(sb.pid());
    // 100k malformed datagrams of many shapes: truncated headers, bad
    // cookies, lengths past the end, ChannelData on unbound channels, junk.
    let mut x: u32 = 0x1234_5678;
    let valid = binding_request(7);
    for i in 0..100_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut d = match i % 5 {
            0 => valid[..(x as usize % 20)].to_vec(),
            1 => {
                let mut v = valid.clone();
                v[4] ^= 0xff;
                v
            }
            2 => {
                let mut v = valid.clone();
                v[3] = 0x40;
                v.extend_from_slice(&[0x00, 0x06, 0xff, 0xff]);
                v
            }
            3 => vec![0x40, (x & 0xff) as u8, 0x00, 0x10, 1, 2, 3],
            _ => x.to_be_bytes().repeat(1 + (x as usize % 30)),
        };
        d.truncate(1200);
        let _ = sock.send_to(&d, sb.turn);
        if i % 2000 == 0 {
            // Pace a little so the kernel buffer is not the thing measured.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(
        binding_answered(&sock, sb.turn, 2),
        "valid request not answered after the flood"
    );
    let after = rss_kib(sb.pid());
    assert!(
        after < before + 4096,
        "RSS grew from {before} KiB to {after} KiB after 100k malformed datagrams"
    );
}

/// Opens a TCP connection to `server` from `source` (port 0).
fn connect_from(source: std::net::IpAddr, server: SocketAddr) -> TcpStream {
    let domain = socket2::Domain::for_address(server);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(source, 0).into()).unwrap();
    s.connect_timeout(&server.into(), Duration::from_secs(5))
        .unwrap();
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// True if a Binding request on `s` is answered.
fn served(s: &mut TcpStream, tid: u8) -> bool {
    if s.write_all(&binding_request(tid)).is_err() {
        return false;
    }
    let mut head = [0u8; 20];
    s.read_exact(&mut head).is_ok()
}

/// With `--max-tcp-per-ip 2` on `[::]:PORT`: two connections from `a`
/// are served, a third from `same_prefix` (counted as `a`) is refused, one
/// from `other` is served.
fn per_address_cap(
    port: u16,
    a: std::net::IpAddr,
    same_prefix: std::net::IpAddr,
    other: std::net::IpAddr,
) {
    let at = |ip: std::net::IpAddr| {
        SocketAddr::new(
            if ip.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                ip
            },
            port,
        )
    };
    let mut first = connect_from(a, at(a));
    let mut second = connect_from(a, at(a));
    assert!(
        served(&mut first, 1) && served(&mut second, 2),
        "first two served"
    );
    let mut third = connect_from(same_prefix, at(same_prefix));
    let _ = third.write_all(&binding_request(3));
    assert!(
        closed_within(&mut third, Duration::from_secs(3)),
        "a third connection from {same_prefix} (counted with {a}) was served"
    );
    let mut elsewhere = connect_from(other, at(other));
    assert!(served(&mut elsewhere, 4), "{other} has its own count");
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect_from(same_prefix, at(same_prefix));
    assert!(
        served(&mut again, 5),
        "a closed connection gives its slot back"
    );
    // Close everything and let the server see it, so a caller that checks
    // another address next starts from empty counts.
    drop((second, third, elsewhere, again));
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn tcp_connections_per_ip_on_a_dual_stack_listener() {
    let (_sb, port) = turn_driver::Binary::dual_stack(&["--max-tcp-per-ip", "2"]);
    let v6: std::net::IpAddr = "::1".parse().unwrap();
    let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // IPv6 (::1), then IPv4 through the same [::] socket: counted apart,
    // each with its own limit.
    per_address_cap(port, v6, v6, v4);
    per_address_cap(port, v4, v4, v6);
}

/// The network namespace of [`tcp_connections_count_per_64`], deleted on drop.
struct Netns(String);

impl Netns {
    fn ip(&self, args: &[&str]) {
        let status = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "ip"])
            .args(args)
            .status()
            .expect("run ip");
        assert!(status.success(), "ip {args:?} in {}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Two addresses of one /64 share one count; another /64 has its own.
/// Runs [`per_64_inside_a_namespace`] (this test binary again) inside a
/// namespace of its own whose loopback holds 2001:db8:5b::1, ::2 and
/// 2001:db8:5b:1::1 (documentation addresses; no traffic leaves it).
#[test]
fn tcp_connections_count_per_64() {
    let ns = Netns(format!("sb-per64-{}", std::process::id()));
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .expect("run ip (iproute2)");
    assert!(status.success(), "ip netns add (the tests run as root)");
    ns.ip(&["link", "set", "lo", "up"]);
    for a in [
        "2001:db8:5b::1/64",
        "2001:db8:5b::2/64",
        "2001:db8:5b:1::1/64",
    ] {
        ns.ip(&["-6", "addr", "add", a, "dev", "lo", "nodad"]);
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([
            "--exact",
            "per_64_inside_a_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env("SB_INSIDE_NETNS", "1");
    let out = support::run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(out.contains("1 passed"), "inside the namespace:\n{out}");
}

/// The inside of [`tcp_connections_count_per_64`]; skipped unless it runs it.
#[test]
#[ignore = "run by tcp_connections_count_per_64 inside its namespace"]
fn per_64_inside_a_namespace() {
    assert!(
        std::env::var_os("SB_INSIDE_NETNS").is_some(),
        "run through tcp_connections_count_per_64"
    );
    let (_sb, port) = turn_driver::Binary::dual_stack(&["--max-tcp-per-ip", "2"]);
    let a = "2001:db8:5b::1".parse().unwrap();
    let same_64 = "2001:db8:5b::2".parse().unwrap();
    let other_64 = "2001:db8:5b:1::1".parse().unwrap();
    per_address_cap(port, a, same_64, other_64);
}
