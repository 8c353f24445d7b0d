//! The per-source answer rate for unauthenticated requests (RFC 8489 §17
//! and RFC 8656 §21 on amplification), at its defaults and in virtual
//! time: an office or carrier NAT — 2 000 Binding/s and 500 new allocations/s
//! from one address — is served in full, while a flood from one address gets
//! back less than 1.5× the bytes it sent.

use std::time::Duration;

use stun::Method;

use super::harness::*;
use crate::client::ClientEvent;
use crate::{DropReason, FiveTuple, Transport};

/// The n-th port of the one client address the harness uses.
fn port(n: usize) -> FiveTuple {
    Net::tuple(n, Transport::Udp, SERVER)
}

#[test]
fn defaults_match_the_binary() {
    let c = config();
    assert_eq!(c.unauthenticated_rate.per_second, 3000.0);
    assert_eq!(c.unauthenticated_rate.burst, 300.0);
}

#[test]
fn two_thousand_bindings_and_five_hundred_allocations_a_second_from_one_address_are_all_served() {
    let mut net = Net::new(config());
    let t0 = net.now;
    let binding = net.build(Method::BINDING, &[]);
    let (mut bindings, mut answered, mut allocated, mut released) = (0, 0, 0, 0);
    // 2 s: every millisecond two Bindings, every other millisecond a new
    // client (a fresh 5-tuple: 401 challenge, authenticated Allocate) that
    // releases its allocation at once (Refresh with lifetime 0), so the
    // per-IP quota is never reached.
    for ms in 0..2000u64 {
        net.now = t0 + Duration::from_millis(ms);
        for k in 0..2 {
            let ft = port(3000 + ((ms as usize * 2 + k) % 64));
            bindings += 1;
            assert!(net.relay_from_client(ft, &binding).is_none());
            while let Some(t) = net.server.poll_transmit() {
                assert_eq!(t.to, ft);
                answered += 1;
            }
        }
        if ms % 2 == 0 {
            let c = net.add_user("alice", "secret");
            let now = net.now;
            net.client(c).allocate(now).unwrap();
            net.pump();
            if let [ClientEvent::Allocated { .. }] = net.take_events(c).as_slice() {
                allocated += 1;
            }
            net.client(c).refresh(now, Duration::ZERO).unwrap();
            net.pump();
            if net.take_events(c).contains(&ClientEvent::Released) {
                released += 1;
            }
        }
    }
    assert_eq!((bindings, answered), (4000, 4000));
    assert_eq!((allocated, released), (1000, 1000));
    let s = net.server.stats();
    assert_eq!(s.drops(DropReason::RateLimit), 0);
    assert_eq!(s.response_count("allocate", "401"), 1000);
    assert_eq!(s.response_count("allocate", "success"), 1000);
    assert_eq!(s.response_count("binding", "success"), 4000);
    assert_eq!(net.server.allocation_count(), 0);
}

/// Sends `n` copies of `req` from one address (cycling over 16 ports),
/// `gap` apart, and returns (bytes sent, bytes answered).
fn flood(net: &mut Net, req: &[u8], n: usize, gap: Duration) -> (usize, usize) {
    let t0 = net.now;
    let (mut sent, mut back) = (0, 0);
    for i in 0..n {
        net.now = t0 + gap * u32::try_from(i).unwrap();
        let ft = port(2000 + i % 16);
        sent += req.len();
        assert!(net.relay_from_client(ft, req).is_none());
        while let Some(t) = net.server.poll_transmit() {
            back += t.payload.len();
        }
    }
    (sent, back)
}

#[test]
fn a_flood_from_one_address_gets_back_less_than_one_and_a_half_times_its_bytes() {
    // 50 000 requests at once, at 1 000 000/s, 100 000/s and 10 000/s.
    let gaps = [0u64, 1, 10, 100].map(Duration::from_micros);
    for gap in gaps {
        let mut net = Net::new(config());
        let binding = net.build(Method::BINDING, &[]);
        let (sent, back) = flood(&mut net, &binding, 50_000, gap);
        let ratio = back as f64 / sent as f64;
        println!("Binding flood, {gap:?} apart: {sent} B in, {back} B out, {ratio:.3}");
        assert!(ratio <= 1.5, "{gap:?}: {sent} -> {back}");
        assert!(net.server.stats().drops(DropReason::RateLimit) > 0);

        // Unauthenticated Allocates, whose challenge is the largest answer.
        let mut net = Net::new(config());
        let allocate = net.build(Method::ALLOCATE, &[stun::Attribute::RequestedTransport(17)]);
        let (sent, back) = flood(&mut net, &allocate, 50_000, gap);
        let ratio = back as f64 / sent as f64;
        println!("Allocate flood, {gap:?} apart: {sent} B in, {back} B out, {ratio:.3}");
        assert!(ratio <= 1.5, "{gap:?}: {sent} -> {back}");
    }
}

#[test]
fn the_flooding_source_is_answered_again_a_tenth_of_a_second_later_and_others_all_along() {
    let mut net = Net::new(config());
    let binding = net.build(Method::BINDING, &[]);
    let (_, back) = flood(&mut net, &binding, 10_000, Duration::ZERO);
    assert_eq!(back / 32, 300, "the burst: a tenth of a second at 3 000/s");
    // Another address is unaffected.
    let other = FiveTuple {
        client: addr("203.0.113.7:5000"),
        ..port(0)
    };
    assert!(net.relay_from_client(other, &binding).is_none());
    assert!(net.server.poll_transmit().is_some());
    // 100 ms later the flooder has 300 answers again.
    net.now += Duration::from_millis(100);
    let (_, back) = flood(&mut net, &binding, 1_000, Duration::ZERO);
    assert_eq!(back / 32, 300);
}
