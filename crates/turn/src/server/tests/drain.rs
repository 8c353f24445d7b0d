//! Draining (graceful restart): a new Allocate is refused after
//! authentication with 300 Try Alternate and ALTERNATE-SERVER (RFC 8489
//! §10, §14.15) when an alternate of the right family is set, else 508;
//! everything an existing allocation does goes on.

use std::net::SocketAddr;

use stun::{Attribute, AttributeType, Message, Method};

use super::harness::*;
use crate::client::{ClientConfig, ClientEvent};
use crate::{DropReason, FiveTuple, Transport};

/// The last message the server sent to `ft`.
fn last_to(net: &Net, ft: FiveTuple) -> Vec<u8> {
    net.responses
        .iter()
        .rev()
        .find(|(to, _)| *to == ft)
        .map(|(_, b)| b.clone())
        .expect("nothing sent")
}

fn alternate_of(bytes: &[u8]) -> Option<SocketAddr> {
    match Message::decode(bytes)
        .ok()?
        .attribute(AttributeType::ALTERNATE_SERVER)?
    {
        Ok(Attribute::AlternateServer(a)) => Some(a),
        _ => None,
    }
}

#[test]
fn while_draining_existing_allocations_work_and_new_ones_get_508() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:5000");
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    assert!(!net.server.is_draining());
    net.server.set_draining(None);
    assert!(net.server.is_draining());

    // A new Allocate: challenged as usual, then refused once authenticated.
    let n = net.add_user("bob", "hunter2");
    let ev = net.run(n, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));
    assert_eq!(net.error_codes(net.ft(n)), [401, 508]);
    assert_eq!(net.server.allocation_count(), 1);
    assert_eq!(net.config_total(), 1, "the refusal took no quota");

    // The old one: data both ways, permissions, channels, refresh, Binding.
    assert!(net.send(c, peer, b"media").is_some());
    assert!(net.peer_sends(relay, peer, b"back").is_some());
    let other = addr("1.1.1.1:5000");
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &[other.ip()]).unwrap();
    });
    assert!(matches!(
        ev.as_slice(),
        [ClientEvent::PermissionCreated { .. }]
    ));
    let ev = net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    assert!(matches!(ev.as_slice(), [ClientEvent::ChannelBound { .. }]));
    assert!(net.send(c, peer, b"on a channel").is_some());
    let ev = net.run(c, |cl, now| {
        cl.refresh(now, secs(600)).unwrap();
    });
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Refreshed { .. }]),
        "{ev:?}"
    );
    let ev = net.run(c, |cl, now| {
        cl.binding(now).unwrap();
    });
    assert!(
        ev.iter().any(|e| matches!(e, ClientEvent::Mapped { .. })),
        "{ev:?}"
    );

    let s = net.server.stats();
    assert_eq!(s.response_count("allocate", "508"), 1);
    assert_eq!(s.drops(DropReason::Draining), 1);
    assert_eq!(s.drops(DropReason::Capacity), 0);
}

#[test]
fn while_draining_with_an_alternate_new_allocates_get_300_try_alternate() {
    let mut net = Net::new(config());
    let alt = addr("198.51.100.9:3478");
    net.server.set_draining(Some(alt));
    let n = net.add_user("alice", "secret");
    let ev = net.run(n, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 300));
    let answer = last_to(&net, net.ft(n));
    assert_eq!(alternate_of(&answer), Some(alt));
    // Signed like every answer to an authenticated request (RFC 8489 §10).
    let m = Message::decode(&answer).unwrap();
    let md5 = stun::long_term_key_md5("alice", REALM, "secret");
    let sha = stun::long_term_key_sha256("alice", REALM, "secret");
    assert!(
        m.verify_integrity_sha256(&sha).is_ok()
            || m.verify_integrity(&sha).is_ok()
            || m.verify_integrity(&md5).is_ok(),
        "the 300 is not signed"
    );

    // An IPv6 client gets 508: the alternate is IPv4 only.
    let ft6 = Net::tuple(5, Transport::Udp, SERVER6);
    let v6 = net.add(
        ClientConfig::new(ft6.server, "alice", "secret", Transport::Udp),
        ft6,
    );
    let ev = net.run(v6, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));
    assert_eq!(alternate_of(&last_to(&net, ft6)), None);

    // An IPv6 alternate then serves the IPv6 client and not the IPv4 one.
    let alt6 = addr("[2001:db8::9]:3478");
    net.server.set_draining(Some(alt6));
    let v6b = net.add(
        ClientConfig::new(ft6.server, "alice", "secret", Transport::Udp),
        Net::tuple(6, Transport::Udp, SERVER6),
    );
    let ev = net.run(v6b, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 300));
    assert_eq!(alternate_of(&last_to(&net, net.ft(v6b))), Some(alt6));
    let v4 = net.add_user("alice", "secret");
    let ev = net.run(v4, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 508));

    let s = net.server.stats();
    assert_eq!(s.response_count("allocate", "300"), 2);
    assert_eq!(s.response_count("allocate", "508"), 2);
    assert_eq!(s.drops(DropReason::Draining), 4);
    assert_eq!(net.server.allocation_count(), 0);
}

#[test]
fn a_retransmitted_allocate_of_an_allocation_made_before_the_drain_still_succeeds() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.drop_successes = 1;
    let ev = net.run(c, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(ev, []);
    assert_eq!(net.server.allocation_count(), 1);
    net.server.set_draining(Some(addr("198.51.100.9:3478")));
    net.advance(std::time::Duration::from_millis(500), true);
    let ev = net.take_events(c);
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Allocated { .. }]),
        "{ev:?}"
    );
    assert_eq!(net.server.stats().drops(DropReason::Draining), 0);
}

impl Net {
    /// Allocations the shared ledger counts.
    fn config_total(&self) -> usize {
        self.server.config.ledger.total()
    }
}
