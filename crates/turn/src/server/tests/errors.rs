//! Error responses (RFC 8489 §14.8, RFC 8656 §19): 400, 403, 420, 437,
//! 441, 442, 443, 486, 508, and EVEN-PORT reservations (RFC 8656 §7.2).

use std::net::{IpAddr, SocketAddr};

use stun::{Attribute, AttributeType, Message, Method, RawAttribute};

use super::harness::*;
use crate::client::{AllocateOptions, ClientConfig, ClientEvent};
use crate::policy::PeerPolicy;
use crate::{Event, Transport};

const UDP: u8 = 17;

#[test]
fn second_allocate_on_a_5_tuple_and_requests_without_allocation_get_437() {
    let mut net = Net::new(config());
    let a = net.add_user("alice", "secret");
    let ft = net.ft(a);
    net.allocate(a);
    // Another client core on the same 5-tuple: a different transaction id.
    let b = net.add(
        ClientConfig::new(ft.server, "alice", "secret", Transport::Udp),
        ft,
    );
    let ev = net.run(b, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 437));
    assert_eq!(net.server.allocation_count(), 1);

    let lone = Net::tuple(5, Transport::Udp, SERVER);
    let peer = Attribute::XorPeerAddress(addr("8.8.8.8:0"));
    for (method, attrs) in [
        (Method::CREATE_PERMISSION, vec![peer]),
        (Method::REFRESH, vec![]),
        (
            Method::CHANNEL_BIND,
            vec![Attribute::ChannelNumber(0x4000), peer],
        ),
    ] {
        let answer = net.signed(lone, method, &attrs, "alice", "secret");
        assert_eq!(error_code(&answer), Some(437), "{method:?}");
    }
}

#[test]
fn another_user_on_the_same_5_tuple_gets_441() {
    let mut net = Net::new(config());
    let a = net.add_user("alice", "secret");
    let ft = net.ft(a);
    net.allocate(a);
    let answer = net.signed(ft, Method::REFRESH, &[], "bob", "hunter2");
    assert_eq!(error_code(&answer), Some(441));
    let attrs = [Attribute::XorPeerAddress(addr("8.8.8.8:0"))];
    let answer = net.signed(ft, Method::CREATE_PERMISSION, &attrs, "bob", "hunter2");
    assert_eq!(error_code(&answer), Some(441));
    // Alice's allocation is untouched.
    assert_eq!(net.server.allocation_count(), 1);
    let answer = net.signed(ft, Method::REFRESH, &[], "alice", "secret");
    assert_eq!(error_code(&answer), None);
}

#[test]
fn bad_allocate_requests() {
    let mut net = Net::new(config());
    let ft = Net::tuple(0, Transport::Udp, SERVER);
    let tcp = [Attribute::RequestedTransport(6)];
    let answer = net.signed(ft, Method::ALLOCATE, &tcp, "alice", "secret");
    assert_eq!(error_code(&answer), Some(442));
    let answer = net.signed(ft, Method::ALLOCATE, &[], "alice", "secret");
    assert_eq!(error_code(&answer), Some(400));
    let unknown = [
        Attribute::RequestedTransport(UDP),
        Attribute::Other(RawAttribute {
            typ: AttributeType(0x7777),
            value: &[1, 2, 3, 4],
        }),
    ];
    let answer = net.signed(ft, Method::ALLOCATE, &unknown, "alice", "secret");
    assert_eq!(error_code(&answer), Some(420));
    let m = Message::decode(&answer).unwrap();
    let Some(Ok(Attribute::UnknownAttributes(u))) = m.attribute(AttributeType::UNKNOWN_ATTRIBUTES)
    else {
        panic!("no UNKNOWN-ATTRIBUTES")
    };
    assert_eq!(u.iter().collect::<Vec<_>>(), [AttributeType(0x7777)]);
    // Comprehension-optional unknowns are fine.
    let optional = [
        Attribute::RequestedTransport(UDP),
        Attribute::Other(RawAttribute {
            typ: AttributeType(0xC001),
            value: &[1, 2, 3, 4],
        }),
    ];
    let answer = net.signed(ft, Method::ALLOCATE, &optional, "alice", "secret");
    assert_eq!(error_code(&answer), None);
    assert_eq!(net.server.allocation_count(), 1);
    // Binding is answered 420 too, without credentials.
    let req = net.build(Method::BINDING, &unknown[1..]);
    assert_eq!(error_code(&net.raw(ft, &req)), Some(420));
}

#[test]
fn bad_channel_numbers_get_400() {
    let mut net = Net::new(config());
    let a = net.add_user("alice", "secret");
    let ft = net.ft(a);
    net.allocate(a);
    let peer = Attribute::XorPeerAddress(addr("8.8.8.8:53"));
    for n in [0x0000, 0x3FFF, 0x8000, 0xFFFF] {
        let attrs = [Attribute::ChannelNumber(n), peer];
        let answer = net.signed(ft, Method::CHANNEL_BIND, &attrs, "alice", "secret");
        assert_eq!(error_code(&answer), Some(400), "channel {n:#x}");
    }
    let attrs = [Attribute::ChannelNumber(0x4000)];
    let answer = net.signed(ft, Method::CHANNEL_BIND, &attrs, "alice", "secret");
    assert_eq!(error_code(&answer), Some(400), "no peer");
    let answer = net.signed(ft, Method::CREATE_PERMISSION, &[], "alice", "secret");
    assert_eq!(error_code(&answer), Some(400), "no peer");
}

#[test]
fn every_denied_peer_gets_403_by_permission_and_by_channel() {
    let mut net = Net::new(config());
    let v4 = net.add_user("alice", "secret");
    net.allocate(v4);
    let ft6 = Net::tuple(1, Transport::Udp, SERVER6);
    let v6 = net.add(
        ClientConfig::new(ft6.server, "alice", "secret", Transport::Udp),
        ft6,
    );
    // Without REQUESTED-ADDRESS-FAMILY the relay is IPv4 (RFC 8656 §7.2),
    // which this server has not for a client that came over IPv6.
    let ev = net.run(v6, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 440));
    let ev = net.run(v6, |cl, now| {
        let o = AllocateOptions {
            family: Some(stun::AddressFamily::V6),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    let [ClientEvent::Allocated { relayed, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(relayed.ip(), ft6.server.ip());
    for s in crate::policy::tests::DENIED {
        let ip: IpAddr = s.parse().unwrap();
        let c = if ip.is_ipv4() { v4 } else { v6 };
        let ev = net.run(c, |cl, now| {
            cl.create_permission(now, &[ip]).unwrap();
        });
        assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 403), "{s}");
        let ev = net.run(c, |cl, now| {
            cl.channel_bind(now, SocketAddr::new(ip, 9)).unwrap();
        });
        assert_eq!(failed(&ev), (Method::CHANNEL_BIND, 403), "{s}");
        assert_eq!(net.client(c).channel_of(SocketAddr::new(ip, 9)), None);
    }
    // One denied peer among allowed ones refuses the whole request.
    let ev = net.run(v4, |cl, now| {
        let peers = ["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        cl.create_permission(now, &peers).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 403));
    assert_eq!(
        net.peer_sends(net.relays.bound[0], addr("8.8.8.8:1"), b"x"),
        None
    );
}

#[test]
fn loopback_opt_in_permits_loopback_peers_only() {
    let mut cfg = config();
    cfg.policy = PeerPolicy::new(vec![], vec![], true);
    let mut net = Net::new(cfg);
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let lo = addr("127.0.0.1:9999");
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &[lo.ip()]).unwrap();
    });
    assert_eq!(
        ev,
        [ClientEvent::PermissionCreated {
            peers: vec![lo.ip()]
        }]
    );
    let ev = net.run(c, |cl, now| {
        cl.channel_bind(now, lo).unwrap();
    });
    assert!(matches!(ev.as_slice(), [ClientEvent::ChannelBound { .. }]));
    assert!(net.peer_sends(relay, lo, b"hi").is_some());
    for denied in ["10.0.0.1", "0.0.0.0", "169.254.169.254"] {
        let ev = net.run(c, |cl, now| {
            cl.create_permission(now, &[denied.parse().unwrap()])
                .unwrap();
        });
        assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 403), "{denied}");
    }
}

#[test]
fn ipv6_peer_on_ipv4_relay_gets_443() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    let peer: SocketAddr = addr("[2606:4700:4700::1111]:53");
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 443));
    let ev = net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CHANNEL_BIND, 443));
}

#[test]
fn user_quota_486_and_total_quota_508() {
    let mut cfg = config();
    cfg.ledger = std::sync::Arc::new(crate::ledger::Ledger::new(crate::ledger::Quotas {
        per_user: 2,
        per_static_user: 2,
        per_ip: 64,
        total: 3,
    }));
    let mut net = Net::new(cfg);
    let a: Vec<usize> = (0..3).map(|_| net.add_user("alice", "secret")).collect();
    net.allocate(a[0]);
    net.allocate(a[1]);
    let ev = net.run(a[2], |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 486));
    let b: Vec<usize> = (0..2).map(|_| net.add_user("bob", "hunter2")).collect();
    net.allocate(b[0]);
    let ev = net.run(b[1], |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));
    // Freeing one of alice's makes room for her again.
    net.run(a[0], |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    net.allocate(a[2]);
    assert_eq!(net.server.allocation_count(), 3);
}

#[test]
fn port_exhaustion_gets_508() {
    let mut cfg = config();
    cfg.relay_ports = 50000..=50001;
    let mut net = Net::new(cfg);
    let c: Vec<usize> = (0..3).map(|_| net.add_user("alice", "secret")).collect();
    net.allocate(c[0]);
    net.allocate(c[1]);
    let ev = net.run(c[2], |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));

    // Ports free in the core but refused by the OS count as exhausted too.
    let mut net = Net::new(config());
    net.relays.refuse = (50000..=50099).collect();
    let d = net.add_user("alice", "secret");
    let ev = net.run(d, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));
    assert!(net.relays.bound.is_empty());
}

#[test]
fn even_port_reserves_the_next_port_for_a_reservation_token() {
    let mut cfg = config();
    cfg.relay_ports = 50000..=50009;
    let mut net = Net::new(cfg);
    let (relayed, token) = reserve(&mut net);
    assert_eq!(relayed.port() % 2, 0);
    let next = SocketAddr::new(relayed.ip(), relayed.port() + 1);
    // The next port was checked free and let go: it is held in the shared
    // ledger, not by a socket, so any worker can bind it for the token.
    assert_eq!(net.relays.bound, [relayed, next]);
    assert_eq!(net.take_server_events(), [Event::RelayUnbound(next)]);

    let ev = claim(&mut net, token);
    let [
        ClientEvent::Allocated {
            relayed: second, ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*second, next);
    assert_eq!(net.relays.bound, [relayed, next, next]);
    // A token works once.
    assert_eq!(failed(&claim(&mut net, token)), (Method::ALLOCATE, 508));
}

/// Allocates with EVEN-PORT and its R bit on `net`; returns the relayed
/// address (the held port is the next one) and the token.
fn reserve(net: &mut Net) -> (SocketAddr, [u8; 8]) {
    let a = net.add_user("alice", "secret");
    let ev = net.run(a, |cl, now| {
        let o = AllocateOptions {
            even_port: Some(true),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    let [
        ClientEvent::Allocated {
            relayed,
            reservation_token: Some(token),
            ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    (*relayed, *token)
}

/// Allocates on `net` with `token`.
fn claim(net: &mut Net, token: [u8; 8]) -> Vec<ClientEvent> {
    let c = net.add_user("alice", "secret");
    net.run(c, |cl, now| {
        let o = AllocateOptions {
            reservation_token: Some(token),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    })
}

#[test]
fn unclaimed_reservation_ends_after_30s() {
    let mut net = Net::new(config());
    let (_, token) = reserve(&mut net);
    net.advance(secs(30), false);
    assert_eq!(failed(&claim(&mut net, token)), (Method::ALLOCATE, 508));
}

#[test]
fn a_reservation_made_by_one_worker_is_claimed_at_another() {
    // Two cores sharing one ledger, as the server's workers do: the kernel
    // may hand the claiming Allocate (another client port) to either.
    let cfg = config();
    let ledger = cfg.ledger.clone();
    let mut first = Net::new(cfg);
    let mut other = config();
    other.ledger = ledger;
    let mut second = Net::new(other);
    let (relayed, token) = reserve(&mut first);
    let held = SocketAddr::new(relayed.ip(), relayed.port() + 1);
    let ev = claim(&mut second, token);
    let [ClientEvent::Allocated { relayed, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(*relayed, held);
    assert_eq!(second.relays.bound, [held]);
    // Once.
    assert_eq!(failed(&claim(&mut first, token)), (Method::ALLOCATE, 508));
}

#[test]
fn address_family_errors_440_and_443() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let ev = net.run(c, |cl, now| {
        let o = AllocateOptions {
            family: Some(stun::AddressFamily::V6),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 440));
    let ft = net.ft(c);
    net.allocate(c);
    let v6 = [Attribute::RequestedAddressFamily(stun::AddressFamily::V6)];
    let answer = net.signed(ft, Method::REFRESH, &v6, "alice", "secret");
    assert_eq!(error_code(&answer), Some(443));
    // ADDITIONAL-ADDRESS-FAMILY: the IPv4 relay is granted, the IPv6 one
    // refused inside the success with ADDRESS-ERROR-CODE 440.
    let ft2 = Net::tuple(3, Transport::Udp, SERVER);
    let attrs = [
        Attribute::RequestedTransport(UDP),
        Attribute::AdditionalAddressFamily(stun::AddressFamily::V6),
    ];
    let answer = net.signed(ft2, Method::ALLOCATE, &attrs, "alice", "secret");
    assert_eq!(error_code(&answer), None);
    let m = Message::decode(&answer).unwrap();
    let Some(Ok(Attribute::AddressErrorCode(fam, e))) =
        m.attribute(AttributeType::ADDRESS_ERROR_CODE)
    else {
        panic!("no ADDRESS-ERROR-CODE")
    };
    assert_eq!((fam, e.code), (stun::AddressFamily::V6, 440));
}

#[test]
fn allocate_on_a_5_tuple_whose_allocation_expired_unswept_replaces_it_cleanly() {
    let mut cfg = config();
    cfg.ledger = std::sync::Arc::new(crate::ledger::Ledger::new(crate::ledger::Quotas {
        per_user: 1,
        per_static_user: 1,
        per_ip: 64,
        total: 10000,
    }));
    let mut net = Net::new(cfg);
    let c = net.add_user("alice", "secret");
    let old = net.allocate(c);
    // The allocation has expired but the driver has not called
    // handle_timeout yet when the same 5-tuple allocates again.
    net.now += secs(600);
    let fresh = Net::tuple(0, Transport::Udp, SERVER);
    assert_eq!(net.ft(c), fresh);
    let d = net.add(
        ClientConfig::new(fresh.server, "alice", "secret", Transport::Udp),
        fresh,
    );
    let new = net.allocate(d);
    assert_ne!(new, old);
    assert_eq!(net.server.allocation_count(), 1);
    // The old relay is closed and relays nothing any more.
    net.server.handle_timeout(net.now);
    net.pump();
    assert_eq!(net.take_server_events(), [Event::RelayClosed(old)]);
    let peer = addr("8.8.8.8:53");
    net.run(d, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    assert_eq!(net.peer_sends(old, peer, b"stale relay"), None);
    assert!(net.peer_sends(new, peer, b"new relay").is_some());
    // The quota of one counts the new allocation only: deleting it frees it.
    net.run(d, |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    let e = net.add_user("alice", "secret");
    net.allocate(e);
}

#[test]
fn retransmitted_allocate_with_even_port_repeats_the_reservation_token() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.drop_successes = 1;
    net.run(c, |cl, now| {
        let o = AllocateOptions {
            even_port: Some(true),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    net.advance(std::time::Duration::from_millis(500), true);
    let ev = net.take_events(c);
    let [
        ClientEvent::Allocated {
            reservation_token, ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert!(
        reservation_token.is_some(),
        "the retransmission lost the token"
    );
}
