//! Abuse limits of the core: per-IP quota, permission and channel caps,
//! bandwidth buckets, failed-authentication budgets, and Send indications to
//! refused peers, which must not leave the relay.

use std::net::{IpAddr, SocketAddr};

use stun::Method;

use super::harness::*;
use crate::client::{ClientConfig, ClientEvent};
use crate::rate_limit::Rate;
use crate::{FiveTuple, Transport};

fn allocated(ev: &[ClientEvent]) -> bool {
    ev.iter()
        .any(|e| matches!(e, ClientEvent::Allocated { .. }))
}

#[test]
fn allocations_per_client_ip_are_capped_with_486() {
    let mut c = config();
    c.ledger = std::sync::Arc::new(crate::ledger::Ledger::new(crate::ledger::Quotas {
        per_user: 16,
        per_static_user: 0,
        per_ip: 2,
        total: 10000,
    }));
    let mut net = Net::new(c);
    // Different users, one IP (the harness gives every client 192.0.2.100).
    let a = net.add_user("alice", "secret");
    let b = net.add_user("bob", "hunter2");
    let a2 = net.add_user("alice", "secret");
    net.allocate(a);
    net.allocate(b);
    let ev = net.run(a2, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 486));
    // Freeing one makes room.
    let ev = net.run(b, |cl, now| {
        cl.refresh(now, std::time::Duration::ZERO).unwrap();
    });
    assert!(ev.contains(&ClientEvent::Released));
    assert!(allocated(&net.run(a2, |cl, now| {
        cl.allocate(now).unwrap();
    })));
}

#[test]
fn permissions_and_channels_per_allocation_are_capped_with_508() {
    let mut c = config();
    c.max_permissions = 2;
    c.max_channels = 1;
    let mut net = Net::new(c);
    let a = net.add_user("alice", "secret");
    net.allocate(a);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let three = [ip("8.8.8.8"), ip("8.8.4.4"), ip("1.1.1.1")];
    let ev = net.run(a, |cl, now| {
        cl.create_permission(now, &three).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 508));
    let ev = net.run(a, |cl, now| {
        cl.create_permission(now, &three[..2]).unwrap();
    });
    assert!(matches!(
        ev.as_slice(),
        [ClientEvent::PermissionCreated { .. }]
    ));
    // Refreshing the same two is fine; a third is not.
    let ev = net.run(a, |cl, now| {
        cl.create_permission(now, &three[..2]).unwrap();
    });
    assert!(matches!(
        ev.as_slice(),
        [ClientEvent::PermissionCreated { .. }]
    ));
    let ev = net.run(a, |cl, now| {
        cl.create_permission(now, &three[2..]).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 508));

    let p1 = SocketAddr::new(three[0], 5000);
    let p2 = SocketAddr::new(three[1], 5000);
    let ev = net.run(a, |cl, now| {
        cl.channel_bind(now, p1).unwrap();
    });
    assert!(matches!(ev.as_slice(), [ClientEvent::ChannelBound { .. }]));
    let ev = net.run(a, |cl, now| {
        cl.channel_bind(now, p2).unwrap();
    });
    assert_eq!(failed(&ev), (Method::CHANNEL_BIND, 508));
}

#[test]
fn relay_bandwidth_per_allocation_is_a_token_bucket() {
    let mut c = config();
    // 100 kB/s: a bucket of one largest datagram (65 535 bytes).
    c.allocation_bytes_per_second = 100_000;
    let mut net = Net::new(c);
    let a = net.add_user("alice", "secret");
    net.allocate(a);
    let peer: SocketAddr = "8.8.8.8:5000".parse().unwrap();
    net.run(a, |cl, now| {
        cl.create_permission(now, &[peer.ip()]).unwrap();
    });
    let payload = [7u8; 1000];
    let passed = (0..200)
        .filter(|_| net.send(a, peer, &payload).is_some())
        .count();
    assert_eq!(passed, 65, "burst of 65 535 bytes");
    net.advance(secs(1), false);
    let passed = (0..200)
        .filter(|_| net.send(a, peer, &payload).is_some())
        .count();
    assert_eq!(passed, 65, "refilled to the burst after a second");
}

#[test]
fn total_relay_bandwidth_is_shared() {
    let mut c = config();
    c.total_bytes_per_second = 100_000;
    let mut net = Net::new(c);
    let a = net.add_user("alice", "secret");
    let b = net.add_user("bob", "hunter2");
    net.allocate(a);
    net.allocate(b);
    let peer: SocketAddr = "8.8.8.8:5000".parse().unwrap();
    for i in [a, b] {
        net.run(i, |cl, now| {
            cl.create_permission(now, &[peer.ip()]).unwrap();
        });
    }
    let payload = [7u8; 1000];
    let from_a = (0..40)
        .filter(|_| net.send(a, peer, &payload).is_some())
        .count();
    let from_b = (0..40)
        .filter(|_| net.send(b, peer, &payload).is_some())
        .count();
    assert_eq!((from_a, from_b), (40, 25));
}

#[test]
fn failed_authentication_budget_stops_guessing_but_not_the_users_own_allocation() {
    let mut c = config();
    c.auth_failure_rate = Rate {
        per_second: 0.5,
        burst: 10.0,
    };
    let mut net = Net::new(c);
    let own = net.add_user("alice", "secret");
    net.allocate(own);
    // Each Allocate with a wrong password is one failure (the first 401 is
    // the ordinary challenge).
    for _ in 0..10 {
        let g = net.add_user("alice", "guess");
        let ev = net.run(g, |cl, now| {
            cl.allocate(now).unwrap();
        });
        assert_eq!(failed(&ev), (Method::ALLOCATE, 401));
    }
    // Out of budget: even the right password gets no answer now, from this
    // source (same IP) — guessing learns nothing.
    let late = net.add_user("alice", "secret");
    let ev = net.run(late, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert!(!allocated(&ev), "{ev:?}");
    // From another IP too, for this user (per-username budget).
    let other_ip = FiveTuple {
        transport: Transport::Udp,
        client: "203.0.113.50:40000".parse().unwrap(),
        server: addr(SERVER),
    };
    let elsewhere = net.add(
        ClientConfig::new(addr(SERVER), "alice", "secret", Transport::Udp),
        other_ip,
    );
    assert!(!allocated(&net.run(elsewhere, |cl, now| {
        cl.allocate(now).unwrap();
    })));
    // Another user from another IP is unaffected.
    let bob_ft = FiveTuple {
        client: "203.0.113.51:40000".parse().unwrap(),
        ..other_ip
    };
    let bob = net.add(
        ClientConfig::new(addr(SERVER), "bob", "hunter2", Transport::Udp),
        bob_ft,
    );
    net.allocate(bob);
    // The user's own allocation keeps refreshing.
    let ev = net.run(own, |cl, now| {
        cl.refresh(now, secs(600)).unwrap();
    });
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Refreshed { .. }]),
        "{ev:?}"
    );
    // After the budget refills, the right password works again.
    net.advance(secs(30), false);
    let again = net.add_user("alice", "secret");
    net.allocate(again);
}

#[test]
fn send_indications_to_refused_peers_never_leave() {
    let mut net = Net::new(config());
    let v4 = net.add_user("alice", "secret");
    net.allocate(v4);
    for s in crate::policy::tests::DENIED {
        let ip: IpAddr = s.parse().unwrap();
        if !ip.is_ipv4() {
            continue;
        }
        let peer = SocketAddr::new(ip, 9);
        let ev = net.run(v4, |cl, now| {
            cl.create_permission(now, &[ip]).unwrap();
        });
        assert_eq!(failed(&ev), (Method::CREATE_PERMISSION, 403), "{s}");
        // The client core refuses to send without a permission; hand-make
        // the Send indication as an attacker would.
        let mut buf = Vec::new();
        let mut b = stun::MessageBuilder::new(
            &mut buf,
            stun::Class::Indication,
            Method::SEND,
            stun::TransactionId([3; 12]),
        );
        b.add(&stun::Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&stun::Attribute::Data(b"probe")).unwrap();
        let ft = net.ft(v4);
        assert_eq!(net.relay_from_client(ft, &buf), None, "{s}");
    }
    assert!(net.to_peer.is_empty());
}

#[test]
fn an_allocation_cannot_be_refreshed_past_its_ephemeral_credentials_expiry() {
    let mut net = Net::new(config());
    let c = crate::credentials::mint(SECRET, UNIX0 + 100, Some("carol"));
    let ft = Net::tuple(0, Transport::Udp, SERVER);
    let i = net.add(
        ClientConfig::new(ft.server, c.username, c.password, Transport::Udp),
        ft,
    );
    net.allocate(i);
    let ev = net.run(i, |cl, now| {
        cl.refresh(now, secs(600)).unwrap();
    });
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Refreshed { .. }]),
        "{ev:?}"
    );
    net.advance(secs(101), false);
    let ev = net.run(i, |cl, now| {
        cl.refresh(now, secs(600)).unwrap();
    });
    assert_eq!(failed(&ev), (Method::REFRESH, 401));
}

#[test]
fn one_static_user_shared_by_every_client_is_not_capped_by_the_user_quota() {
    // The defaults: --user-quota 16 for ephemeral names, no limit for a
    // static --user, --ip-quota 64.
    let mut net = Net::new(config());
    let logs = crate::ledger::tests::captured_logs(|| {
        for _ in 0..40 {
            let c = net.add_user("alice", "secret");
            net.allocate(c);
        }
    });
    assert_eq!(net.server.allocation_count(), 40);
    assert!(logs.is_empty(), "{logs}");
}

#[test]
fn an_ephemeral_username_is_capped_by_the_user_quota_and_the_refusal_is_logged_with_its_flag() {
    let mut net = Net::new(config());
    let cred = crate::credentials::mint(SECRET, UNIX0 + 3600, Some("peer1"));
    let logs = crate::ledger::tests::captured_logs(|| {
        for i in 0..18 {
            let ft = FiveTuple {
                client: SocketAddr::new(IpAddr::from([198, 51, 100, i]), 40000),
                ..Net::tuple(0, Transport::Udp, SERVER)
            };
            let c = net.add(
                ClientConfig::new(ft.server, &cred.username, &cred.password, Transport::Udp),
                ft,
            );
            let ev = net.run(c, |cl, now| {
                cl.allocate(now).unwrap();
            });
            if i < 16 {
                assert!(allocated(&ev), "{i}: {ev:?}");
            } else {
                assert_eq!(failed(&ev), (Method::ALLOCATE, 486));
            }
        }
    });
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 1, "once per burst: {logs}");
    assert!(lines[0].contains("--user-quota 16 reached"), "{logs}");
    assert!(!logs.contains(&cred.password), "{logs}");
    assert_eq!(net.server.stats().drops(crate::DropReason::Quota), 2);
}

#[test]
fn a_static_user_quota_applies_when_set_and_names_its_flag() {
    let mut c = config();
    c.ledger = std::sync::Arc::new(crate::ledger::Ledger::new(crate::ledger::Quotas {
        per_user: 16,
        per_static_user: 3,
        per_ip: 64,
        total: 10000,
    }));
    let mut net = Net::new(c);
    let logs = crate::ledger::tests::captured_logs(|| {
        for _ in 0..3 {
            let a = net.add_user("alice", "secret");
            net.allocate(a);
        }
        let a = net.add_user("alice", "secret");
        let ev = net.run(a, |cl, now| {
            cl.allocate(now).unwrap();
        });
        assert_eq!(failed(&ev), (Method::ALLOCATE, 486));
    });
    assert!(logs.contains("--static-user-quota 3 reached"), "{logs}");
    // Another static user has its own count.
    let b = net.add_user("bob", "hunter2");
    net.allocate(b);
}
