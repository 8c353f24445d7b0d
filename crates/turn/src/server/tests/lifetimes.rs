//! Lifetimes (RFC 8656 §7.2–7.3, §9, §12): clamping, deletion, expiry of
//! allocations, permissions and channels, the channel cooldown, the
//! client's retransmissions and its automatic refreshes.

use stun::{Attribute, Message, Method};

use super::harness::*;
use crate::client::{AllocateOptions, ClientConfig, ClientEvent};
use crate::{Event, Server, Transport};

fn allocate_asking(net: &mut Net, i: usize, lifetime: u32) -> ClientEvent {
    let ev = net.run(i, |cl, now| {
        let o = AllocateOptions {
            lifetime: Some(lifetime),
            ..Default::default()
        };
        cl.allocate_with(now, o).unwrap();
    });
    ev.into_iter().next().unwrap()
}

#[test]
fn lifetimes_are_clamped() {
    let mut net = Net::new(config());
    let a = net.add_user("alice", "secret");
    let ClientEvent::Allocated { lifetime, .. } = allocate_asking(&mut net, a, 10) else {
        panic!()
    };
    assert_eq!(lifetime, secs(600));
    let b = net.add_user("alice", "secret");
    let ClientEvent::Allocated { lifetime, .. } = allocate_asking(&mut net, b, 99_999) else {
        panic!()
    };
    assert_eq!(lifetime, secs(3600));
    let ev = net.run(b, |cl, now| {
        cl.refresh(now, secs(10)).unwrap();
    });
    assert_eq!(
        ev,
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
    let ev = net.run(b, |cl, now| {
        cl.refresh(now, secs(7200)).unwrap();
    });
    assert_eq!(
        ev,
        [ClientEvent::Refreshed {
            lifetime: secs(3600)
        }]
    );
}

#[test]
fn refresh_with_lifetime_zero_deletes() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    let ev = net.run(c, |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    assert_eq!(ev, [ClientEvent::Released]);
    assert_eq!(net.take_server_events(), [Event::RelayClosed(relay)]);
    assert_eq!(net.server.allocation_count(), 0);
    assert_eq!(net.client(c).relayed(), None);
    assert_eq!(net.peer_sends(relay, peer, b"late"), None);
    // Deleting again: the client has nothing to refresh.
    let now = net.now;
    assert!(net.client(c).refresh(now, secs(0)).is_err());
}

#[test]
fn a_kept_relay_socket_is_reused_when_free_and_closed_when_not() {
    let mut net = Net::new(config());
    let a = net.add_user("alice", "secret");
    let relay = net.allocate(a);
    net.run(a, |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    assert_eq!(net.take_server_events(), [Event::RelayClosed(relay)]);
    // The driver kept the socket, plus one out of the range and one that
    // another allocation holds: the first acceptable one is taken, without
    // a new bind, and the refused ones are closed.
    let b = net.add_user("bob", "hunter2");
    let held = net.allocate(b);
    let outside = std::net::SocketAddr::new(relay.ip(), 1000);
    net.relays.kept = vec![outside, held, relay];
    let binds = net.relays.bound.len();
    let c = net.add_user("alice", "secret");
    assert_eq!(net.allocate(c), relay);
    assert_eq!(net.relays.bound.len(), binds, "no new bind");
    assert_eq!(net.relays.closed, [outside, held]);
    assert!(net.relays.kept.is_empty());
    // Relaying works on the reused socket.
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    assert!(net.send(c, peer, b"again").is_some());
    assert!(net.peer_sends(relay, peer, b"back").is_some());
}

#[test]
fn allocation_expires_after_600s() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.advance(secs(350), false);
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    net.advance(secs(249), false);
    assert_eq!(net.server.allocation_count(), 1);
    assert!(net.peer_sends(relay, peer, b"599").is_some());
    assert!(net.send(c, peer, b"599").is_some());
    assert_eq!(net.take_server_events(), []);
    net.advance(secs(1), false);
    assert_eq!(net.take_server_events(), [Event::RelayClosed(relay)]);
    assert_eq!(net.server.allocation_count(), 0);
    assert_eq!(net.peer_sends(relay, peer, b"600"), None);
    assert_eq!(net.send(c, peer, b"600"), None);
    // The client, not ticked, still believes in it; once ticked it knows.
    net.advance(secs(0), true);
    assert_eq!(net.take_events(c), [ClientEvent::Expired]);
}

#[test]
fn permission_expires_after_300s() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    net.advance(secs(299), false);
    assert!(net.peer_sends(relay, peer, b"a").is_some());
    // Permissions are per IP: another port of the peer is let in.
    assert!(net.peer_sends(relay, addr("8.8.8.8:54"), b"b").is_some());
    assert_eq!(
        net.send(c, peer, b"c").map(|p| p.payload),
        Some(b"c".to_vec())
    );
    net.advance(secs(1), false);
    assert_eq!(net.peer_sends(relay, peer, b"d"), None);
    assert_eq!(net.send(c, peer, b"e"), None);
    assert_eq!(net.server.allocation_count(), 1);
}

#[test]
fn channel_expires_after_600s() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let ClientEvent::Allocated { relayed: relay, .. } = allocate_asking(&mut net, c, 3600) else {
        panic!()
    };
    let peer = addr("8.8.8.8:53");
    let ev = net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    assert_eq!(
        ev,
        [ClientEvent::ChannelBound {
            peer,
            channel: 0x4000
        }]
    );
    // The binding's own permission lasts 300 s; renew it by hand.
    net.advance(secs(500), false);
    net.run(c, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    net.advance(secs(99), false);
    let cd = net.peer_sends(relay, peer, b"on channel").unwrap();
    assert_eq!(&cd[..4], &[0x40, 0x00, 0, 10]);
    let sent = net.send(c, peer, b"up").unwrap();
    assert_eq!(sent.payload, b"up");
    net.advance(secs(1), false);
    // Channel gone, permission still there: Data indications, and the
    // client's ChannelData is dropped.
    let di = net.peer_sends(relay, peer, b"indication").unwrap();
    assert_eq!(di[0], 0x00);
    assert_eq!(net.send(c, peer, b"up"), None);
}

#[test]
fn channel_rebinding_rules_and_cooldown() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let ft = net.ft(c);
    allocate_asking(&mut net, c, 3600);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:53"));
    let bind = |net: &mut Net, channel: u16, peer| {
        let attrs = [
            Attribute::ChannelNumber(channel),
            Attribute::XorPeerAddress(peer),
        ];
        let answer = net.signed(ft, Method::CHANNEL_BIND, &attrs, "alice", "secret");
        error_code(&answer).unwrap_or(200)
    };
    assert_eq!(bind(&mut net, 0x4000, p1), 200);
    assert_eq!(bind(&mut net, 0x4000, p2), 400);
    assert_eq!(bind(&mut net, 0x4001, p1), 400);
    assert_eq!(bind(&mut net, 0x4000, p1), 200);
    assert_eq!(bind(&mut net, 0x4001, p2), 200);
    net.advance(secs(601), false);
    // Expired, but neither number nor peer is free for 5 more minutes.
    assert_eq!(bind(&mut net, 0x4002, p1), 400);
    assert_eq!(bind(&mut net, 0x4001, p1), 400);
    net.advance(secs(298), false);
    assert_eq!(bind(&mut net, 0x4000, p2), 400);
    net.advance(secs(1), false);
    assert_eq!(bind(&mut net, 0x4000, p2), 200);
    assert_eq!(bind(&mut net, 0x4001, p1), 200);
}

#[test]
fn lost_allocate_response_is_retransmitted_and_answered_the_same() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.drop_successes = 1;
    let ev = net.run(c, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(ev, []);
    assert_eq!(net.relays.bound.len(), 1);
    let first = net.relays.bound[0];
    net.advance(secs(0) + std::time::Duration::from_millis(500), true);
    let ev = net.take_events(c);
    let [
        ClientEvent::Allocated {
            relayed, lifetime, ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*relayed, first);
    // 600 s minus the half second the response was late.
    assert_eq!(*lifetime, secs(599));
    assert_eq!(net.relays.bound.len(), 1);
    let allocs = net.requests(c, Method::ALLOCATE);
    assert_eq!(allocs.len(), 3);
    assert_eq!(allocs[1], allocs[2]);
}

#[test]
fn requests_time_out_after_rc_sends_over_udp_and_once_over_tcp() {
    let mut net = Net::new(config());
    net.blackhole = true;
    let u = net.add_user("alice", "secret");
    let ft = Net::tuple(9, Transport::Tcp, SERVER);
    let t = net.add(
        ClientConfig::new(ft.server, "alice", "secret", Transport::Tcp),
        ft,
    );
    for i in [u, t] {
        net.run(i, |cl, now| {
            cl.binding(now).unwrap();
        });
    }
    net.advance(std::time::Duration::from_millis(39_499), true);
    assert_eq!(net.requests(u, Method::BINDING).len(), 7);
    assert_eq!(net.requests(t, Method::BINDING).len(), 1);
    assert_eq!(net.take_events(u), []);
    net.advance(std::time::Duration::from_millis(1), true);
    for i in [u, t] {
        assert_eq!(
            net.take_events(i),
            [ClientEvent::TimedOut {
                method: Method::BINDING
            }]
        );
    }
    // Every send was the same message.
    let sends = net.requests(u, Method::BINDING);
    assert!(sends.iter().all(|s| *s == sends[0]));
    assert!(Message::decode(&sends[0]).is_ok());
}

#[test]
fn automatic_refreshes_keep_a_two_hour_call_alive() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:53"));
    net.run(c, |cl, now| {
        cl.create_permission(now, &[p1.ip()]).unwrap();
    });
    net.run(c, |cl, now| {
        cl.channel_bind(now, p2).unwrap();
    });
    net.take_events(c);
    for minute in 1..=120 {
        net.advance(secs(60), true);
        assert!(
            net.peer_sends(relay, p1, b"indication").is_some(),
            "minute {minute}"
        );
        let cd = net.peer_sends(relay, p2, b"channel").unwrap();
        assert_eq!(&cd[..2], &[0x40, 0x00], "minute {minute}");
        assert_eq!(net.send(c, p2, b"up").unwrap().peer, p2);
        assert_eq!(net.send(c, p1, b"up").unwrap().peer, p1);
    }
    assert_eq!(net.server.allocation_count(), 1);
    assert_eq!(net.take_server_events(), []);
    let ev = net.take_events(c);
    let count = |f: fn(&ClientEvent) -> bool| ev.iter().filter(|e| f(e)).count();
    // Allocation every 540 s, channel every 540 s, permissions every 240 s.
    assert_eq!(count(|e| matches!(e, ClientEvent::Refreshed { .. })), 13);
    assert_eq!(count(|e| matches!(e, ClientEvent::ChannelBound { .. })), 13);
    assert!(count(|e| matches!(e, ClientEvent::PermissionCreated { .. })) >= 29);
    assert_eq!(
        count(|e| matches!(
            e,
            ClientEvent::Failed { .. } | ClientEvent::TimedOut { .. } | ClientEvent::Expired
        )),
        0
    );
    assert_eq!(net.received.len(), 240);
}

#[test]
fn refreshes_go_out_at_240_and_540_seconds() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:53"));
    net.run(c, |cl, now| {
        cl.create_permission(now, &[p1.ip()]).unwrap();
        cl.channel_bind(now, p2).unwrap();
    });
    let count = |net: &Net, m| net.requests(c, m).len();
    net.advance(secs(239), true);
    assert_eq!(count(&net, Method::CREATE_PERMISSION), 1);
    net.advance(secs(1), true);
    // Both peers' permissions in one request.
    let perms = net.requests(c, Method::CREATE_PERMISSION);
    assert_eq!(perms.len(), 2);
    let m = Message::decode(&perms[1]).unwrap();
    let peers = m
        .attributes()
        .filter(|a| a.typ == stun::AttributeType::XOR_PEER_ADDRESS)
        .count();
    assert_eq!(peers, 2);
    net.advance(secs(299), true);
    assert_eq!(count(&net, Method::REFRESH), 0);
    assert_eq!(count(&net, Method::CHANNEL_BIND), 1);
    net.advance(secs(1), true);
    assert_eq!(count(&net, Method::REFRESH), 1);
    assert_eq!(count(&net, Method::CHANNEL_BIND), 2);
    assert_eq!(count(&net, Method::CREATE_PERMISSION), 3);
}

#[test]
fn unanswered_refreshes_end_in_expired() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    net.blackhole = true;
    net.advance(secs(599), true);
    let ev = net.take_events(c);
    assert!(
        ev.contains(&ClientEvent::TimedOut {
            method: Method::REFRESH
        }),
        "{ev:?}"
    );
    assert!(!ev.contains(&ClientEvent::Expired));
    // The server did refresh (only the answers were lost).
    assert_eq!(net.server.allocation_count(), 1);
    assert_eq!(net.client(c).relayed(), Some(relay));
    net.advance(secs(1), true);
    assert_eq!(net.take_events(c), [ClientEvent::Expired]);
    assert_eq!(net.client(c).relayed(), None);
}

#[test]
fn refresh_answered_437_forgets_the_allocation() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    // The server restarted and lost it.
    net.server = Server::new(config(), net.now, UNIX0, [9; 32]);
    let ev = net.run(c, |cl, now| {
        cl.refresh(now, secs(600)).unwrap();
    });
    assert_eq!(failed(&ev), (Method::REFRESH, 437));
    assert_eq!(net.client(c).relayed(), None);
    assert_eq!(net.allocate(c).ip(), addr(SERVER).ip());
    // The same for a CreatePermission (after a 438: the new server's
    // nonce key differs).
    net.server = Server::new(config(), net.now, UNIX0, [10; 32]);
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &["8.8.8.8".parse().unwrap()])
            .unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 437));
    assert_eq!(net.client(c).relayed(), None);
    assert_eq!(net.client(c).poll_timeout(), None);
}

#[test]
fn same_channel_and_peer_can_be_rebound_during_the_cooldown() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let ClientEvent::Allocated { relayed: relay, .. } = allocate_asking(&mut net, c, 3600) else {
        panic!()
    };
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    net.advance(secs(700), false);
    assert_eq!(net.send(c, peer, b"expired"), None);
    // RFC 8656 §12: only a different number or peer must wait 5 minutes.
    let ev = net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, peer), Ok(0x4000));
    });
    assert_eq!(
        ev,
        [ClientEvent::ChannelBound {
            peer,
            channel: 0x4000
        }]
    );
    assert_eq!(net.send(c, peer, b"again").unwrap().payload, b"again");
    let cd = net.peer_sends(relay, peer, b"back").unwrap();
    assert_eq!(&cd[..4], &[0x40, 0x00, 0, 4]);
}

#[test]
fn closing_a_tcp_connection_ends_its_allocation() {
    let mut net = Net::new(config());
    let ft = Net::tuple(0, Transport::Tcp, SERVER);
    let c = net.add(
        ClientConfig::new(ft.server, "alice", "secret", Transport::Tcp),
        ft,
    );
    let relay = net.allocate(c);
    net.server.client_disconnected(&ft);
    net.pump();
    assert_eq!(net.take_server_events(), [Event::RelayClosed(relay)]);
    assert_eq!(net.server.allocation_count(), 0);
}
