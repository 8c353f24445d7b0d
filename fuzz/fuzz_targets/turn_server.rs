//! The TURN server core fed arbitrary datagrams from arbitrary clients and
//! peers, with time moving forward: no panic, no unbounded growth.
//!
//! Input: records of `[kind][who][len: u16 BE][bytes]`; kind 0 = UDP client
//! datagram, 1 = TCP client frame, 2 = peer datagram to relay `who % 16`,
//! 3 = time passes (`who` seconds), 4 = TCP client `who` disconnects. Seeds
//! in `fuzz/seeds/turn_server` are real sessions in this framing.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use turn::auth::Users;
use turn::policy::PeerPolicy;
use turn::{FiveTuple, PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Server, ServerConfig, Transport};

struct AlwaysBind;
impl RelaySockets for AlwaysBind {
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

fn client(who: u8, tcp: bool) -> FiveTuple {
    FiveTuple {
        transport: if tcp { Transport::Tcp } else { Transport::Udp },
        client: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40000 + u16::from(who % 8)),
        server: "127.0.0.1:3478".parse().expect("addr"),
    }
}

fuzz_target!(|data: &[u8]| {
    let users = Users::new("switchboard", [("alice", "wonderland")], Some(b"interop-secret".to_vec()));
    let mut config = ServerConfig::new(users);
    config.relay_ports = 50000..=50015;
    config.policy = PeerPolicy::new(vec![], vec![], true);
    let mut now = Instant::now();
    let mut server = Server::new(config, now, 1_700_000_000, [7; 32]);
    let mut buf = vec![0u8; PEER_HEADROOM + 65_535 + PEER_TAILROOM];
    let mut rest = data;
    while let [kind, who, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        match kind % 5 {
            0 | 1 => {
                let _ = server.handle_client(now, client(*who, kind % 5 == 1), bytes, &mut AlwaysBind);
            }
            2 => {
                let relay = SocketAddr::new([127, 0, 0, 1].into(), 50000 + u16::from(who % 16));
                let peer = SocketAddr::new([127, 0, 0, 1].into(), 3480);
                buf[PEER_HEADROOM..PEER_HEADROOM + len].copy_from_slice(bytes);
                let _ = server.handle_peer(now, relay, peer, &mut buf, len);
            }
            3 => {
                now += Duration::from_secs(u64::from(*who));
                server.handle_timeout(now);
            }
            _ => server.client_disconnected(&client(*who, true)),
        }
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        assert!(server.allocation_count() <= 16);
    }
});
