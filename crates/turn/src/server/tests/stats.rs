//! The core's counters ([`crate::ServerStats`]): each request counted once
//! by method and response, relayed data per direction, drops by reason,
//! the allocation gauge by transport and relay family — and no user name
//! or address in any of it.

use std::time::Duration;

use stun::{Attribute, Method};

use super::harness::*;
use crate::client::{AllocateOptions, ClientConfig, ClientEvent};
use crate::{DropReason, Transport};

fn count(net: &Net, method: &str, outcome: &str) -> u64 {
    net.server.stats().response_count(method, outcome)
}

#[test]
fn requests_relayed_data_drops_and_allocations_are_counted() {
    let mut net = Net::new(config());
    assert_eq!(net.server.stats(), crate::ServerStats::default());

    // Binding.
    let ft = Net::tuple(50, Transport::Udp, SERVER);
    let req = net.build(Method::BINDING, &[]);
    net.raw(ft, &req);
    let s = net.server.stats();
    assert_eq!(s.bindings_answered, 1);
    assert_eq!(
        s.responses().collect::<Vec<_>>(),
        [("binding", "success", 1)]
    );

    // Allocate: the challenge, then the success; the gauge by transport and family.
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    assert_eq!(count(&net, "allocate", "401"), 1);
    assert_eq!(count(&net, "allocate", "success"), 1);
    let tcp_ft = Net::tuple(1, Transport::Tcp, SERVER);
    let t = net.add(
        ClientConfig::new(tcp_ft.server, "bob", "hunter2", Transport::Tcp),
        tcp_ft,
    );
    net.allocate(t);
    let v6_ft = Net::tuple(2, Transport::Udp, SERVER6);
    let v6 = net.add(
        ClientConfig::new(v6_ft.server, "bob", "hunter2", Transport::Udp),
        v6_ft,
    );
    let ev = net.run(v6, |cl, now| {
        let o = AllocateOptions {
            family: Some(stun::AddressFamily::V6),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Allocated { .. }]),
        "{ev:?}"
    );
    let s = net.server.stats();
    let gauge: Vec<_> = s.allocations().filter(|e| e.2 > 0).collect();
    assert_eq!(
        gauge,
        [("udp", "ipv4", 1), ("udp", "ipv6", 1), ("tcp", "ipv4", 1)]
    );
    assert_eq!(s.allocations_total(), 3);

    // A refused peer: 403 and a policy drop; a Send indication to it too.
    let denied = addr("127.0.0.1:9");
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &[denied.ip()]).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 403));
    assert_eq!(count(&net, "create_permission", "403"), 1);
    assert_eq!(net.server.stats().drops(DropReason::PeerPolicy), 1);
    assert_eq!(net.send(c, denied, b"probe"), None);
    assert_eq!(net.server.stats().drops(DropReason::PeerPolicy), 2);

    // Relayed data, both directions, payload bytes.
    let peer = addr("8.8.8.8:5000");
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    assert_eq!(count(&net, "create_permission", "success"), 1);
    assert!(net.send(c, peer, &[1; 100]).is_some());
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    assert_eq!(count(&net, "channel_bind", "success"), 1);
    assert!(net.send(c, peer, &[2; 50]).is_some());
    assert!(net.peer_sends(relay, peer, &[3; 70]).is_some());
    let s = net.server.stats();
    assert_eq!((s.client_to_peer_packets, s.client_to_peer_bytes), (2, 150));
    assert_eq!((s.peer_to_client_packets, s.peer_to_client_bytes), (1, 70));

    // Data without a permission, both ways; data without an allocation.
    let stranger = addr("1.1.1.1:5000");
    assert_eq!(net.send(c, stranger, b"x"), None);
    assert_eq!(net.peer_sends(relay, stranger, b"y"), None);
    assert_eq!(net.server.stats().drops(DropReason::NoPermission), 2);
    let nobody = Net::tuple(60, Transport::Udp, SERVER);
    assert_eq!(net.relay_from_client(nobody, &[0x40, 0, 0, 1, 9]), None);
    assert_eq!(net.peer_sends(addr("192.0.2.1:1"), peer, b"z"), None);
    assert_eq!(net.server.stats().drops(DropReason::NoAllocation), 2);

    // Garbage.
    assert_eq!(net.relay_from_client(nobody, &[0x00, 0x01, 0x00]), None);
    assert_eq!(net.relay_from_client(nobody, &[0xFF; 30]), None);
    assert_eq!(net.relay_from_client(nobody, &[0x40, 0, 0, 200, 1]), None);
    assert_eq!(net.server.stats().drops(DropReason::Malformed), 3);

    // Wrong credentials.
    let g = net.add_user("alice", "guess");
    let ev = net.run(g, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 401));
    assert_eq!(net.server.stats().drops(DropReason::AuthFailure), 1);

    // Unknown method and a Refresh without an allocation.
    let req = net.build(Method::new(0x0ff).unwrap(), &[]);
    net.raw(nobody, &req);
    assert_eq!(count(&net, "other", "400"), 1);
    let req = net.build(Method::REFRESH, &[Attribute::Lifetime(0)]);
    net.raw(nobody, &req);
    assert_eq!(count(&net, "refresh", "437"), 1);

    // Releasing lowers the gauge.
    let ev = net.run(c, |cl, now| {
        cl.refresh(now, Duration::ZERO).unwrap();
    });
    assert!(ev.contains(&ClientEvent::Released));
    assert_eq!(count(&net, "refresh", "success"), 1);
    net.server.client_disconnected(&tcp_ft);
    let s = net.server.stats();
    assert_eq!(s.allocations_total(), 1);
    assert!(s.allocations().any(|e| e == ("udp", "ipv6", 1)));
    // Expiry too.
    net.advance(secs(3601), false);
    assert_eq!(net.server.stats().allocations_total(), 0);

    // Nothing in there names a user or an address.
    let dump = format!("{:?}", net.server.stats());
    for secret in [
        "alice",
        "bob",
        "192.0.2",
        "2001:db8",
        "8.8.8.8",
        "127.0.0.1",
    ] {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
}

#[test]
fn every_request_is_counted_once_and_unanswered_ones_as_dropped() {
    let mut c = config();
    c.unauthenticated_rate = crate::rate_limit::Rate {
        per_second: 1.0,
        burst: 3.0,
    };
    let mut net = Net::new(c);
    let ft = Net::tuple(50, Transport::Udp, SERVER);
    let req = net.build(Method::BINDING, &[]);
    for _ in 0..10 {
        net.relay_from_client(ft, &req);
    }
    let answered = std::iter::from_fn(|| net.server.poll_transmit()).count();
    assert_eq!(answered, 3);
    let s = net.server.stats();
    assert_eq!(s.response_count("binding", "success"), 3);
    assert_eq!(s.response_count("binding", "dropped"), 7);
    assert_eq!(s.bindings_answered, 3);
    assert_eq!(s.drops(DropReason::RateLimit), 7);
    let total: u64 = s.responses().map(|(_, _, n)| n).sum();
    assert_eq!(total, 10);
}

#[test]
fn quota_and_capacity_refusals_are_counted_as_drops() {
    let mut c = config();
    c.ledger = std::sync::Arc::new(crate::ledger::Ledger::new(crate::ledger::Quotas {
        per_user: 16,
        per_static_user: 1,
        per_ip: 64,
        total: 2,
    }));
    let mut net = Net::new(c);
    let a = net.add_user("alice", "secret");
    let a2 = net.add_user("alice", "secret");
    let b = net.add_user("bob", "hunter2");
    net.allocate(a);
    let ev = net.run(a2, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 486));
    net.allocate(b);
    let mint = crate::credentials::mint(SECRET, UNIX0 + 3600, Some("carol"));
    let ft = Net::tuple(9, Transport::Udp, SERVER);
    let e = net.add(
        ClientConfig::new(ft.server, mint.username, mint.password, Transport::Udp),
        ft,
    );
    let ev = net.run(e, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));
    let s = net.server.stats();
    assert_eq!(s.drops(DropReason::Quota), 1);
    assert_eq!(s.drops(DropReason::Capacity), 1);
    assert_eq!(s.response_count("allocate", "486"), 1);
    assert_eq!(s.response_count("allocate", "508"), 1);
}
