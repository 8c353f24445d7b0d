//! The TURN server core fed arbitrary datagrams from arbitrary clients and
//! peers, with time moving forward: no panic, no unbounded growth.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use turn::auth::Users;
use turn::policy::PeerPolicy;
use turn::{FiveTuple, PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Server, ServerConfig, Transport};

#[derive(Arbitrary, Debug)]
enum Input {
    Client { who: u8, tcp: bool, bytes: Vec<u8> },
    Peer { relay: u8, who: u8, bytes: Vec<u8> },
    Wait { secs: u16 },
    Disconnect { who: u8 },
}

struct AlwaysBind;
impl RelaySockets for AlwaysBind {
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

fn client(who: u8, tcp: bool) -> FiveTuple {
    FiveTuple {
        transport: if tcp { Transport::Tcp } else { Transport::Udp },
        client: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, who % 8)), 40000 + u16::from(who)),
        server: "192.0.2.1:3478".parse().expect("addr"),
    }
}

fuzz_target!(|inputs: Vec<Input>| {
    let users = Users::new("fuzz", [("user", "pass")], Some(b"secret".to_vec()));
    let mut config = ServerConfig::new(users);
    config.relay_ports = 50000..=50015;
    config.policy = PeerPolicy::new(vec![], vec![], true);
    let mut now = Instant::now();
    let mut server = Server::new(config, now, 1_700_000_000, [7; 32]);
    let mut buf = vec![0u8; PEER_HEADROOM + 65_535 + PEER_TAILROOM];
    for input in inputs {
        match input {
            Input::Client { who, tcp, bytes } => {
                let _ = server.handle_client(now, client(who, tcp), &bytes, &mut AlwaysBind);
            }
            Input::Peer { relay, who, bytes } => {
                let relay: SocketAddr = SocketAddr::new([192, 0, 2, 1].into(), 50000 + u16::from(relay % 16));
                let peer = SocketAddr::new([127, 0, 0, 1].into(), 1000 + u16::from(who));
                let len = bytes.len().min(65_535);
                buf[PEER_HEADROOM..PEER_HEADROOM + len].copy_from_slice(&bytes[..len]);
                let _ = server.handle_peer(now, relay, peer, &mut buf, len);
            }
            Input::Wait { secs } => {
                now += Duration::from_secs(u64::from(secs));
                server.handle_timeout(now);
            }
            Input::Disconnect { who } => server.client_disconnected(&client(who, true)),
        }
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        assert!(server.allocation_count() <= 16);
    }
});
