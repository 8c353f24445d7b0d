//! TURN server core micro-benchmarks (RFC 8656 §12.4–§12.5, RFC 8489 §7):
//! the per-packet work of the relay, in memory, with no sockets.
//!
//! An allocation and a channel to one peer are set up first by the client
//! core (`turn::client`) talking to the server core in memory, as the unit
//! tests' harness does; then:
//! - `channel_data_client_to_peer`: 100 bytes of ChannelData through
//!   [`Server::handle_client`] (the fast path: decode, channel lookup,
//!   bandwidth check, borrow the payload);
//! - `channel_data_peer_to_client`: 100 bytes from the peer through
//!   [`Server::handle_peer`] (permission and channel lookup, header written
//!   into the buffer's headroom);
//! - `binding_request`: a Binding request answered and its response taken
//!   with [`Server::poll_transmit`].
//!
//! `cargo bench -p switchboard-turn --bench relay`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stun::{Class, MessageBuilder, Method, TransactionId};
use turn::auth::Users;
use turn::client::{Client, ClientConfig, ClientEvent};
use turn::policy::PeerPolicy;
use turn::rate_limit::Rate;
use turn::{
    FiveTuple, PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Server, ServerConfig, Transport,
};

/// Payload size of the relayed datagrams (issue 5's `turnutils_uclient -l 100`).
const PAYLOAD: usize = 100;

/// Accepts every bind: relay sockets exist only as addresses here.
struct MemoryRelays;

impl RelaySockets for MemoryRelays {
    fn bind(&mut self, _local: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server core with one allocation and one channel bound to `peer`.
struct Setup {
    server: Server,
    ft: FiveTuple,
    relay: SocketAddr,
    peer: SocketAddr,
    channel: u16,
    now: Instant,
}

/// Moves messages between the client and the server until both are quiet;
/// returns the client's events.
fn pump(server: &mut Server, client: &mut Client, ft: FiveTuple, now: Instant) -> Vec<ClientEvent> {
    for _ in 0..100 {
        let mut progress = false;
        while let Some(bytes) = client.poll_transmit() {
            progress = true;
            server.handle_client(now, ft, &bytes, &mut MemoryRelays);
        }
        while let Some(t) = server.poll_transmit() {
            progress = true;
            client.handle_input(now, &t.payload).unwrap();
        }
        if !progress {
            break;
        }
    }
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn setup() -> Setup {
    let now = Instant::now();
    let mut config = ServerConfig::new(Users::new("bench.test", [("alice", "secret")], None));
    config.relay_ports = 50_000..=50_099;
    config.policy = PeerPolicy::new(Vec::new(), Vec::new(), true);
    // A fixed clock never refills buckets: make them bottomless.
    config.unauthenticated_rate = Rate {
        per_second: 1e9,
        burst: 1e9,
    };
    let mut server = Server::new(config, now, 1_700_000_000, [7; 32]);
    let ft = FiveTuple {
        transport: Transport::Udp,
        client: "127.0.0.1:40000".parse().unwrap(),
        server: "127.0.0.1:3478".parse().unwrap(),
    };
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut client = Client::new(
        ClientConfig::new(ft.server, "alice", "secret", Transport::Udp),
        now,
        [1; 32],
    );
    client.allocate(now).unwrap();
    let relay = match pump(&mut server, &mut client, ft, now).as_slice() {
        [ClientEvent::Allocated { relayed, .. }] => *relayed,
        other => panic!("expected Allocated, got {other:?}"),
    };
    let channel = client.channel_bind(now, peer).unwrap();
    let events = pump(&mut server, &mut client, ft, now);
    assert_eq!(events, [ClientEvent::ChannelBound { peer, channel }]);
    Setup {
        server,
        ft,
        relay,
        peer,
        channel,
        now,
    }
}

fn relay(c: &mut Criterion) {
    let Setup {
        mut server,
        ft,
        relay,
        peer,
        channel,
        now,
    } = setup();
    let mut g = c.benchmark_group("turn");
    g.throughput(Throughput::Elements(1));

    let mut to_peer = Vec::with_capacity(4 + PAYLOAD);
    to_peer.extend_from_slice(&channel.to_be_bytes());
    to_peer.extend_from_slice(&(PAYLOAD as u16).to_be_bytes());
    to_peer.resize(4 + PAYLOAD, 0xAB);
    let sent = server
        .handle_client(now, ft, &to_peer, &mut MemoryRelays)
        .unwrap();
    assert_eq!(
        (sent.relay, sent.peer, sent.payload.len()),
        (relay, peer, PAYLOAD)
    );
    g.bench_function("channel_data_client_to_peer", |b| {
        b.iter(|| {
            let p = server
                .handle_client(now, black_box(ft), black_box(&to_peer), &mut MemoryRelays)
                .unwrap();
            black_box(p.payload.len())
        })
    });

    let mut from_peer = vec![0xCD; PEER_HEADROOM + PAYLOAD + PEER_TAILROOM];
    let back = server
        .handle_peer(now, relay, peer, &mut from_peer, PAYLOAD)
        .unwrap();
    assert_eq!((back.to, back.payload.len()), (ft, 4 + PAYLOAD));
    g.bench_function("channel_data_peer_to_client", |b| {
        b.iter(|| {
            let s = server
                .handle_peer(
                    now,
                    black_box(relay),
                    black_box(peer),
                    &mut from_peer,
                    PAYLOAD,
                )
                .unwrap();
            black_box(s.payload.len())
        })
    });

    let mut binding = Vec::new();
    MessageBuilder::new(
        &mut binding,
        Class::Request,
        Method::BINDING,
        TransactionId([0x5A; 12]),
    );
    let other = FiveTuple {
        client: "127.0.0.1:40001".parse().unwrap(),
        ..ft
    };
    g.bench_function("binding_request", |b| {
        b.iter(|| {
            server.handle_client(
                now,
                black_box(other),
                black_box(&binding),
                &mut MemoryRelays,
            );
            black_box(server.poll_transmit().unwrap().payload.len())
        })
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
