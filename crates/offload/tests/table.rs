//! The channel table's rules on a loaded but unattached program: what
//! `insert` refuses, capacity and slot reuse, lookups by IPv4-mapped
//! addresses, and the errors the server sees without the `kernel` feature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;

use offload::{Channel, ChannelKey, Config, Offload, OffloadError, UNLIMITED};

fn ch(client: &str, relay: &str, peer: &str, channel: u16) -> Channel {
    let server = if client.starts_with('[') {
        "[fd00::1]:3478"
    } else {
        "10.0.0.1:3478"
    };
    Channel {
        key: ChannelKey {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            channel,
        },
        relay: relay.parse().unwrap(),
        peer: peer.parse().unwrap(),
    }
}

#[test]
fn without_the_feature_attach_says_not_built() {
    if offload::built() {
        println!("skipping without_the_feature_attach_says_not_built: built with `kernel`");
        return;
    }
    let listen: SocketAddr = "[::]:3478".parse().unwrap();
    let err = Offload::attach(&["eth0".to_owned()], &[listen]).unwrap_err();
    assert!(matches!(err, OffloadError::NotBuilt), "{err}");
    assert!(err.to_string().contains("`kernel` feature"));
}

#[test]
fn insert_rules_capacity_and_lookups() {
    if common::skipped("insert_rules_capacity_and_lookups") {
        return;
    }
    let mut config = Config::new(&[], &["0.0.0.0:3478".parse().unwrap()]);
    config.max_channels = 2;
    let mut o = Offload::load(&config).unwrap();
    assert!(o.is_empty() && o.attachments().is_empty());

    let a = ch("10.0.0.2:1000", "10.1.0.1:50000", "10.1.0.2:6000", 0x4000);
    let b = ch(
        "[fd00::2]:1000",
        "[fd01::1]:50000",
        "[fd01::2]:6000",
        0x7fff,
    );
    o.insert(&a, UNLIMITED).unwrap();
    o.insert(&b, 100).unwrap();
    assert_eq!(o.len(), 2);

    let err = |r: Result<(), OffloadError>| r.unwrap_err();
    let mixed = ch("10.0.0.2:1001", "[fd01::1]:50001", "[fd01::2]:6001", 0x4001);
    assert!(matches!(
        err(o.insert(&mixed, 1)),
        OffloadError::MixedFamily
    ));
    let high = ch("10.0.0.2:1001", "10.1.0.1:50001", "10.1.0.2:6001", 0x8000);
    assert!(matches!(
        err(o.insert(&high, 1)),
        OffloadError::BadChannel(0x8000)
    ));
    // The same peer on the same relay address under another channel.
    let taken = ch("10.0.0.2:1000", "10.1.0.1:50000", "10.1.0.2:6000", 0x4001);
    assert!(matches!(
        err(o.insert(&taken, 1)),
        OffloadError::PeerTaken { .. }
    ));
    let third = ch("10.0.0.3:1000", "10.1.0.1:50002", "10.1.0.2:6002", 0x4000);
    assert!(matches!(err(o.insert(&third, 1)), OffloadError::Full(2)));
    let missing = third.key;
    assert!(matches!(
        err(o.add_budget(&missing, 1)),
        OffloadError::NotFound
    ));
    assert!(matches!(
        err(o.set_budget(&missing, 1)),
        OffloadError::NotFound
    ));
    assert_eq!(o.counters(&missing).unwrap(), None);

    // IPv4-mapped addresses name the IPv4 entry (the server canonicalizes).
    let mut mapped = a.key;
    mapped.client = "[::ffff:10.0.0.2]:1000".parse().unwrap();
    let c = o.counters(&mapped).unwrap().unwrap();
    assert_eq!((c.to_peer_packets, c.budget_left), (0, UNLIMITED));
    assert_eq!(o.counters(&b.key).unwrap().unwrap().budget_left, 100);
    o.add_budget(&b.key, 50).unwrap();
    assert_eq!(o.counters(&b.key).unwrap().unwrap().budget_left, 150);
    // A budget never turns into "unlimited" by saturation.
    o.add_budget(&b.key, u64::MAX - 10).unwrap();
    assert_eq!(
        o.counters(&b.key).unwrap().unwrap().budget_left,
        UNLIMITED - 1
    );

    // A freed slot is reused and starts from zero; the key moves to a new
    // peer by inserting it again.
    assert!(o.remove(&mapped).unwrap().is_some());
    o.insert(&third, 7).unwrap();
    assert_eq!(o.counters(&third.key).unwrap().unwrap().budget_left, 7);
    let mut moved = b;
    moved.peer = "[fd01::3]:6000".parse().unwrap();
    o.insert(&moved, UNLIMITED).unwrap();
    assert_eq!(o.len(), 2);
    assert_eq!(o.counters(&b.key).unwrap().unwrap().budget_left, UNLIMITED);
    // The old peer is free again.
    let reuse = ch(
        "[fd00::9]:1000",
        "[fd01::1]:50000",
        "[fd01::2]:6000",
        0x4000,
    );
    assert!(matches!(err(o.insert(&reuse, 1)), OffloadError::Full(2)));
    o.remove(&third.key).unwrap();
    o.insert(&reuse, 1).unwrap();
}

#[test]
fn attach_needs_interfaces_and_listen_addresses() {
    if common::skipped("attach_needs_interfaces_and_listen_addresses") {
        return;
    }
    let listen: SocketAddr = "0.0.0.0:3478".parse().unwrap();
    assert!(matches!(
        Offload::attach(&[], &[listen]).unwrap_err(),
        OffloadError::NothingToAttach
    ));
    assert!(matches!(
        Offload::attach(&["sbo-missing0".to_owned()], &[listen]).unwrap_err(),
        OffloadError::NoSuchInterface(_)
    ));
}
