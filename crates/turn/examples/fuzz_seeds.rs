//! Writes authenticated TURN sessions, made by the client core against a
//! server configured exactly as `fuzz/fuzz_targets/turn_server.rs` does, in
//! that target's record framing. Nonces depend only on the server's seeded
//! key and its start time, so the fuzzer's server accepts these sessions and
//! fuzzing starts past authentication.
//!
//! `cargo run -p switchboard-turn --example fuzz_seeds -- fuzz/seeds/turn_server`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn::auth::Users;
use turn::client::{Client, ClientConfig};
use turn::policy::PeerPolicy;
use turn::{FiveTuple, RelaySockets, Server, ServerConfig, Transport};

struct AlwaysBind;
impl RelaySockets for AlwaysBind {
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

/// Mirrors the fuzz target's server.
fn server(now: Instant) -> Server {
    let users = Users::new(
        "switchboard",
        [("alice", "wonderland")],
        Some(b"interop-secret".to_vec()),
    );
    let mut config = ServerConfig::new(users);
    config.relay_ports = 50000..=50015;
    config.policy = PeerPolicy::new(vec![], vec![], true);
    Server::new(config, now, 1_700_000_000, [7; 32])
}

fn session(tcp: bool, channel: bool) -> Vec<u8> {
    let now = Instant::now();
    let mut s = server(now);
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    let ft = FiveTuple {
        transport,
        client: "127.0.0.1:40000".parse().unwrap(),
        server: "127.0.0.1:3478".parse().unwrap(),
    };
    let mut c = Client::new(
        ClientConfig::new(ft.server, "alice", "wonderland", transport),
        now,
        [1; 32],
    );
    let kind = u8::from(tcp);
    let mut records = Vec::new();
    let exchange = |c: &mut Client, s: &mut Server, records: &mut Vec<u8>| {
        for _ in 0..4 {
            let Some(out) = c.poll_transmit() else { break };
            records.extend_from_slice(&[kind, 0]);
            records.extend_from_slice(&(out.len() as u16).to_be_bytes());
            records.extend_from_slice(&out);
            s.handle_client(now, ft, &out, &mut AlwaysBind);
            while let Some(t) = s.poll_transmit() {
                let _ = c.handle_input(now, &t.payload);
            }
        }
    };
    c.allocate(now).unwrap();
    exchange(&mut c, &mut s, &mut records);
    let peer: SocketAddr = "127.0.0.1:3480".parse().unwrap();
    c.create_permission(now, &[peer.ip()]).unwrap();
    exchange(&mut c, &mut s, &mut records);
    if channel {
        c.channel_bind(now, peer).unwrap();
        exchange(&mut c, &mut s, &mut records);
    }
    for payload in [&b"hello"[..], &[0u8; 100][..]] {
        let out = c.send_to(peer, payload).unwrap().to_vec();
        records.extend_from_slice(&[kind, 0]);
        records.extend_from_slice(&(out.len() as u16).to_be_bytes());
        records.extend_from_slice(&out);
    }
    // The peer answers on relay 0, then time passes and the client refreshes.
    records.extend_from_slice(&[2, 0, 0, 4, 1, 2, 3, 4]);
    records.extend_from_slice(&[3, 200, 0, 0]);
    c.refresh(now, Duration::ZERO).unwrap();
    exchange(&mut c, &mut s, &mut records);
    records
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_seeds DIR");
    std::fs::create_dir_all(&dir).unwrap();
    for (tcp, channel) in [(false, false), (false, true), (true, false), (true, true)] {
        let name = format!(
            "{dir}/session-{}-{}",
            if tcp { "tcp" } else { "udp" },
            if channel { "channel" } else { "send" }
        );
        std::fs::write(&name, session(tcp, channel)).unwrap();
        println!("{name}");
    }
}
