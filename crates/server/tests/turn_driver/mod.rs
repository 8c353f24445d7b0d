//! A small blocking driver for the sans-IO TURN client core
//! (`turn::client`) on real sockets with real time, shared by the tests
//! that talk to a TURN server over loopback.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stun::AddressFamily;
use turn::Transport;
use turn::client::{AllocateOptions, Client, ClientConfig, ClientEvent, FrameBuffer};

/// Longest any single exchange may take.
pub const STEP: Duration = Duration::from_secs(5);

/// A connection to the server: a connected UDP socket or a TCP stream.
pub enum Link {
    /// A connected UDP socket.
    Udp(UdpSocket),
    /// A TCP stream and the frames read from it.
    Tcp(TcpStream, FrameBuffer),
}

impl Link {
    pub fn send(&mut self, bytes: &[u8]) {
        match self {
            Link::Udp(s) => {
                // A connected UDP socket reports an earlier ICMP "port
                // unreachable" on its next send (a server still starting,
                // see wait_for_binding): that datagram is lost, like any.
                if let Err(e) = s.send(bytes) {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                }
            }
            Link::Tcp(s, _) => s.write_all(bytes).unwrap(),
        }
    }

    /// One datagram or frame, waiting at most `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let wait = wait.max(Duration::from_millis(1));
        let mut buf = vec![0u8; 65_536];
        match self {
            Link::Udp(s) => {
                s.set_read_timeout(Some(wait)).unwrap();
                let n = s.recv(&mut buf).ok()?;
                Some(buf[..n].to_vec())
            }
            Link::Tcp(s, frames) => {
                if let Some(f) = frames.next_frame().unwrap() {
                    return Some(f.to_vec());
                }
                s.set_read_timeout(Some(wait)).unwrap();
                let n = s.read(&mut buf).ok()?;
                assert!(n > 0, "server closed the TCP connection");
                frames.push(&buf[..n]);
                frames.next_frame().unwrap().map(<[u8]>::to_vec)
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Link::Udp(s) => s.local_addr().unwrap(),
            Link::Tcp(s, _) => s.local_addr().unwrap(),
        }
    }
}

/// Data a peer sent through the relay.
#[derive(Debug, PartialEq, Eq)]
pub struct Data {
    pub peer: SocketAddr,
    pub channel: Option<u16>,
    pub payload: Vec<u8>,
}

/// The client core on a real socket, with real time.
pub struct Driver {
    pub link: Link,
    pub client: Client,
    pub data: Vec<Data>,
}

impl Driver {
    pub fn udp(turn: SocketAddr, user: &str, password: &str) -> Driver {
        let s = UdpSocket::bind(loopback(turn)).unwrap();
        s.connect(turn).unwrap();
        Self::new(Link::Udp(s), turn, user, password, Transport::Udp)
    }

    pub fn tcp(turn: SocketAddr, user: &str, password: &str) -> Driver {
        let s = TcpStream::connect_timeout(&turn, STEP).unwrap();
        s.set_nodelay(true).unwrap();
        let link = Link::Tcp(s, FrameBuffer::default());
        Self::new(link, turn, user, password, Transport::Tcp)
    }

    pub fn new(link: Link, turn: SocketAddr, user: &str, pw: &str, t: Transport) -> Driver {
        let mut config = ClientConfig::new(turn, user, pw, t);
        config.software = Some("switchboard turn_loopback test".into());
        let seed = rand_seed();
        Driver {
            link,
            client: Client::new(config, Instant::now(), seed),
            data: Vec::new(),
        }
    }

    /// Sends, receives and fires timers until `done` or `limit` passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(b) = self.client.poll_transmit() {
                self.link.send(&b);
            }
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
                continue;
            }
            let until = self.client.poll_timeout().unwrap_or(deadline).min(deadline);
            if let Some(pkt) = self.link.recv(until.saturating_duration_since(now))
                && let Ok(Some(d)) = self.client.handle_input(Instant::now(), &pkt)
            {
                self.data.push(Data {
                    peer: d.peer,
                    channel: d.channel,
                    payload: d.payload.to_vec(),
                });
            }
        }
    }

    pub fn try_event(&mut self, limit: Duration) -> Option<ClientEvent> {
        let mut ev = None;
        self.run_until(limit, |d| {
            ev = d.client.poll_event();
            ev.is_some()
        });
        ev
    }

    pub fn event(&mut self) -> ClientEvent {
        self.try_event(STEP).expect("no event within 5 s")
    }

    pub fn data(&mut self) -> Data {
        assert!(
            self.run_until(STEP, |d| !d.data.is_empty()),
            "no peer data within 5 s"
        );
        self.data.remove(0)
    }

    /// Sends `payload` to `peer` through the relay; returns the bytes sent.
    pub fn send_to(&mut self, peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let bytes = self.client.send_to(peer, payload).unwrap().to_vec();
        self.link.send(&bytes);
        bytes
    }
}

pub fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    seed[..16].copy_from_slice(&nanos.to_be_bytes());
    seed[16..24].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
    seed
}

/// A UDP peer on loopback that the test answers by hand.
pub fn peer() -> UdpSocket {
    peer_near(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Port 0 on the loopback address of `addr`'s family.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    }
}

/// A peer on the loopback address of `addr`'s family.
pub fn peer_near(addr: SocketAddr) -> UdpSocket {
    let p = UdpSocket::bind(loopback(addr)).unwrap();
    p.set_read_timeout(Some(STEP)).unwrap();
    p
}

/// Receives one datagram at the peer, checks it came from `relay`, and
/// echoes it back.
pub fn echo(peer: &UdpSocket, relay: SocketAddr, expected: &[u8]) {
    let mut buf = [0u8; 2048];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("peer got nothing within 5 s");
    assert_eq!(from, relay);
    assert_eq!(&buf[..n], expected);
    peer.send_to(&buf[..n], from).unwrap();
}

/// Waits until the server at `turn` answers a Binding request over UDP.
pub fn wait_for_binding(turn: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut d = Driver::udp(turn, "alice", "secret");
        d.client.binding(Instant::now()).unwrap();
        if d.try_event(Duration::from_millis(500)).is_some() {
            return;
        }
    }
    panic!("no Binding answer from {turn} within 20 s");
}

/// Allocate, CreatePermission, a Send indication echoed back as a Data
/// indication, ChannelBind, ChannelData both ways, Refresh and delete,
/// against a server that relays to loopback peers.
pub fn relay_round_trip(mut d: Driver) {
    let server = d.client.server();
    let family = match server {
        SocketAddr::V4(_) => None,
        SocketAddr::V6(_) => Some(AddressFamily::V6),
    };
    let options = AllocateOptions {
        family,
        ..Default::default()
    };
    d.client.allocate_with(Instant::now(), options).unwrap();
    let ClientEvent::Allocated {
        relayed,
        mapped,
        lifetime,
        ..
    } = d.event()
    else {
        panic!("allocate failed")
    };
    assert_eq!(relayed.ip(), server.ip());
    assert_eq!(mapped, d.link.local_addr());
    assert_eq!(lifetime, Duration::from_secs(600));

    let p = peer_near(server);
    let peer_addr = p.local_addr().unwrap();
    d.client
        .create_permission(Instant::now(), &[peer_addr.ip()])
        .unwrap();
    assert_eq!(
        d.event(),
        ClientEvent::PermissionCreated {
            peers: vec![peer_addr.ip()]
        }
    );

    // Send indication out, Data indication back.
    let sent = d.send_to(peer_addr, b"via Send indication");
    assert_eq!(sent[..2], [0x00, 0x16]);
    echo(&p, relayed, b"via Send indication");
    assert_eq!(
        d.data(),
        Data {
            peer: peer_addr,
            channel: None,
            payload: b"via Send indication".to_vec()
        }
    );

    // ChannelData both ways (odd length: padded on TCP).
    let channel = d.client.channel_bind(Instant::now(), peer_addr).unwrap();
    assert_eq!(
        d.event(),
        ClientEvent::ChannelBound {
            peer: peer_addr,
            channel
        }
    );
    let sent = d.send_to(peer_addr, b"via ChannelData");
    assert_eq!(sent[..2], channel.to_be_bytes());
    let padded = matches!(d.link, Link::Tcp(..));
    assert_eq!(sent.len(), if padded { 20 } else { 19 });
    echo(&p, relayed, b"via ChannelData");
    assert_eq!(
        d.data(),
        Data {
            peer: peer_addr,
            channel: Some(channel),
            payload: b"via ChannelData".to_vec()
        }
    );

    d.client
        .refresh(Instant::now(), Duration::from_secs(1200))
        .unwrap();
    assert_eq!(
        d.event(),
        ClientEvent::Refreshed {
            lifetime: Duration::from_secs(1200)
        }
    );

    d.client.refresh(Instant::now(), Duration::ZERO).unwrap();
    assert_eq!(d.event(), ClientEvent::Released);
    // The relay is gone: what the peer sends reaches nobody.
    p.send_to(b"after delete", relayed).unwrap();
    d.run_until(Duration::from_millis(300), |_| false);
    assert_eq!(d.data, []);
}

/// A port free on `[::]` for UDP and TCP right now (dual stack: on IPv4 too).
pub fn dual_stack_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("[::]:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("::", port)).is_ok() {
            return port;
        }
    }
    panic!("no free dual-stack port");
}

/// The `switchboard` binary started with exactly `args` (which must name
/// the listen addresses); killed on drop.
pub struct Binary {
    child: std::process::Child,
    /// What it printed up to its "web app" line.
    pub banner: Vec<String>,
}

impl Binary {
    pub fn start(args: &[&str]) -> Binary {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(args)
            // Tests run side by side: only one that asks (--sfu-listen) gets an SFU.
            .env("SWITCHBOARD_SFU_LISTEN", "off")
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut binary = Binary {
            child,
            banner: Vec::new(),
        };
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("switchboard did not start within 20 s");
            let done = line.starts_with("Switchboard web app");
            binary.banner.push(line);
            if done {
                return binary;
            }
        }
    }

    /// The binary on `--turn-listen [::]:PORT` (HTTP on a loopback port);
    /// returns it and PORT.
    pub fn dual_stack(extra: &[&str]) -> (Binary, u16) {
        let port = dual_stack_port();
        let http = dual_stack_port();
        let turn = format!("[::]:{port}");
        let http = format!("127.0.0.1:{http}");
        let mut args = vec!["--turn-listen", &turn, "--http-listen", &http];
        args.extend_from_slice(extra);
        let binary = Binary::start(&args);
        wait_for_binding(SocketAddr::from(([127, 0, 0, 1], port)));
        (binary, port)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
