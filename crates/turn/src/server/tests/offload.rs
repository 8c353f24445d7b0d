//! Channels offered to the driver to relay itself (`ServerConfig::offload`).

use super::harness::*;
use crate::server::offload::UNLIMITED;
use crate::{Event, OffloadChannel, OffloadReport, ServerConfig, Transport};

fn offloading() -> ServerConfig {
    let mut c = config();
    c.offload = true;
    c
}

fn offloads(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .copied()
        .filter(|e| matches!(e, Event::Offload(_) | Event::OffloadEnd(_)))
        .collect()
}

#[test]
fn a_bound_udp_channel_is_offloaded_until_its_permission_lapses() {
    let mut net = Net::new(offloading());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, peer), Ok(0x4000));
    });
    let ch = OffloadChannel {
        client: net.ft(c),
        channel: 0x4000,
        relay,
        peer,
    };
    assert_eq!(net.take_server_events(), [Event::Offload(ch)]);
    assert_eq!(net.server.offloaded_channels(), 1);
    assert_eq!(net.server.stats().offloaded_channels, 1);
    // Refreshing the binding (and with it the permission) is no new event.
    net.advance(secs(200), false);
    net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, peer), Ok(0x4000));
    });
    net.advance(secs(299), false);
    assert_eq!(offloads(&net.take_server_events()), []);
    // The permission (300 s since the refresh) lapses before the channel
    // (600 s): the driver must stop, as the core stops relaying.
    net.advance(secs(2), false);
    assert_eq!(offloads(&net.take_server_events()), [Event::OffloadEnd(ch)]);
    assert_eq!(net.server.offloaded_channels(), 0);
    assert_eq!(net.server.stats().offloaded_channels, 0);
    // A new ChannelBind offers it again.
    net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, peer), Ok(0x4000));
    });
    assert_eq!(offloads(&net.take_server_events()), [Event::Offload(ch)]);
}

#[test]
fn deleting_or_expiring_the_allocation_ends_its_channels_first() {
    let mut net = Net::new(offloading());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:5353"));
    net.run(c, |cl, now| {
        cl.channel_bind(now, p1).unwrap();
        cl.channel_bind(now, p2).unwrap();
    });
    let ends: Vec<Event> = net
        .take_server_events()
        .into_iter()
        .map(|e| match e {
            Event::Offload(ch) => Event::OffloadEnd(ch),
            other => other,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    net.run(c, |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    let mut want = ends;
    want.push(Event::RelayClosed(relay));
    assert_eq!(net.take_server_events(), want);
    assert_eq!(net.server.offloaded_channels(), 0);

    // Expiry: the allocation's 600 s pass without a refresh.
    let c = net.add_user("bob", "hunter2");
    let relay = net.allocate(c);
    net.run(c, |cl, now| {
        cl.channel_bind(now, p1).unwrap();
    });
    let Some(Event::Offload(ch)) = net.take_server_events().first().copied() else {
        panic!("not offloaded")
    };
    for _ in 0..3 {
        net.advance(secs(200), false);
        net.run(c, |cl, now| {
            cl.channel_bind(now, p1).unwrap();
        });
    }
    assert_eq!(
        net.take_server_events(),
        [Event::OffloadEnd(ch), Event::RelayClosed(relay)]
    );
}

#[test]
fn a_channel_the_driver_refuses_stays_with_the_core() {
    let mut net = Net::new(offloading());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    assert_eq!(offloads(&net.take_server_events()).len(), 1);
    let ch = OffloadChannel {
        client: net.ft(c),
        channel: 0x4000,
        relay: net.client(c).relayed().unwrap(),
        peer,
    };
    assert!(net.server.is_offloaded(&ch));
    net.server.handle_offload_refused(&ch);
    assert!(!net.server.is_offloaded(&ch));
    assert_eq!(net.server.offloaded_channels(), 0);
    assert_eq!(net.server.stats().offloaded_channels, 0);
    // The core relays it, and its end is no event for the driver.
    assert!(net.send(c, peer, b"in userspace").is_some());
    net.run(c, |cl, now| {
        cl.refresh(now, secs(0)).unwrap();
    });
    assert_eq!(offloads(&net.take_server_events()), []);
}

#[test]
fn only_udp_clients_of_the_peers_family_are_offloaded() {
    // Off by default.
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    net.run(c, |cl, now| {
        cl.channel_bind(now, addr("8.8.8.8:53")).unwrap();
    });
    assert_eq!(offloads(&net.take_server_events()), []);
    // TCP clients stay with the core.
    let mut net = Net::new(offloading());
    let ft = Net::tuple(1, Transport::Tcp, SERVER);
    let cc = crate::client::ClientConfig::new(ft.server, "alice", "secret", Transport::Tcp);
    let c = net.add(cc, ft);
    net.allocate(c);
    net.run(c, |cl, now| {
        cl.channel_bind(now, addr("8.8.8.8:53")).unwrap();
    });
    assert_eq!(offloads(&net.take_server_events()), []);
}

#[test]
fn reports_are_counted_and_budgets_follow_the_bandwidth_limits() {
    let mut cfg = offloading();
    // 100 kB/s: the bucket holds a burst of 65 535 bytes.
    cfg.allocation_bytes_per_second = 100_000;
    let mut net = Net::new(cfg);
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    let ft = net.ft(c);
    let report = OffloadReport {
        to_peer_packets: 40,
        to_peer_bytes: 40_000,
        to_client_packets: 20,
        to_client_bytes: 20_000,
    };
    let now = net.now;
    let budget = net.server.handle_offload_report(now, ft, 0x4000, report);
    assert_eq!(budget, 65_535 - 60_000);
    let s = net.server.stats();
    assert_eq!((s.offloaded_packets, s.offloaded_bytes), (60, 60_000));
    assert_eq!(s.client_to_peer_bytes, 40_000);
    assert_eq!(s.peer_to_client_packets, 20);
    // Over the limit: nothing more until the bucket refills (at 100 kB/s).
    let budget = net.server.handle_offload_report(now, ft, 0x4000, report);
    assert_eq!(budget, 0);
    let later = now + std::time::Duration::from_secs(1);
    let budget = net
        .server
        .handle_offload_report(later, ft, 0x4000, OffloadReport::default());
    // In debt by 54 465 bytes, refilled by 100 000.
    assert!((45_000..=46_000).contains(&budget), "{budget}");
    // A channel not offloaded (any more) gets nothing, but what it relayed counts.
    let budget = net.server.handle_offload_report(later, ft, 0x4001, report);
    assert_eq!(budget, 0);
    assert_eq!(net.server.stats().offloaded_packets, 180);

    // Without limits: unlimited.
    let mut net = Net::new(offloading());
    let c = net.add_user("alice", "secret");
    net.allocate(c);
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    let (ft, now) = (net.ft(c), net.now);
    let budget = net.server.handle_offload_report(now, ft, 0x4000, report);
    assert_eq!(budget, UNLIMITED);
}
