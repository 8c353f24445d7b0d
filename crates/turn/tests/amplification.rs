//! What an unauthenticated client can make the server send, measured against
//! what it sent: every kind of request that gets an answer without
//! credentials, at its smallest. Run with `--nocapture` to see the table.
//!
//! The RFCs fix two answers above 1.5×: a Binding success must carry
//! XOR-MAPPED-ADDRESS (32 bytes for a 20-byte request) and a 401 must carry
//! REALM, NONCE and — with RFC 8489's nonce cookie — PASSWORD-ALGORITHMS.
//! Those are kept at their minimum and bounded per source by rate limiting,
//! which the last test shows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::Instant;

use stun::{Attribute, AttributeType, Class, MessageBuilder, Method, TransactionId};
use turn::auth::Users;
use turn::{FiveTuple, RelaySockets, Server, ServerConfig, Transport};

struct NoBind;
impl RelaySockets for NoBind {
    fn bind(&mut self, _: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

fn server() -> Server {
    let users = Users::new("switchboard", [("alice", "pw")], None);
    Server::new(ServerConfig::new(users), Instant::now(), 0, [9; 32])
}

fn from(n: u8) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: SocketAddr::from(([198, 51, 100, n], 40000)),
        server: "192.0.2.1:3478".parse().unwrap(),
    }
}

fn request(method: Method, attrs: &[Attribute<'_>], fingerprint: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(&mut buf, Class::Request, method, TransactionId([5; 12]));
    for a in attrs {
        b.add(a).unwrap();
    }
    if fingerprint {
        b.add_fingerprint().unwrap();
    }
    buf
}

/// A request with a MESSAGE-INTEGRITY that will not verify.
fn bad_auth_allocate() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::Request,
        Method::ALLOCATE,
        TransactionId([6; 12]),
    );
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    b.add(&Attribute::Username("alice")).unwrap();
    b.add(&Attribute::Realm("switchboard")).unwrap();
    b.add(&Attribute::Nonce("obMatJos2wAAAxxxxxxxxxxxxxxxx"))
        .unwrap();
    b.add_message_integrity(b"wrong").unwrap();
    buf
}

/// The answer to one request from a fresh source.
fn answer(req: &[u8], n: u8) -> Vec<u8> {
    let mut s = server();
    assert!(
        s.handle_client(Instant::now(), from(n), req, &mut NoBind)
            .is_none()
    );
    s.poll_transmit().map(|t| t.payload).unwrap_or_default()
}

#[test]
fn unauthenticated_answers_are_small() {
    let unknown = Attribute::Other(stun::RawAttribute {
        typ: AttributeType(0x7777),
        value: &[],
    });
    let cases: Vec<(&str, Vec<u8>, f64)> = vec![
        ("Binding", request(Method::BINDING, &[], false), 1.6),
        (
            "Binding + FINGERPRINT",
            request(Method::BINDING, &[], true),
            1.5,
        ),
        (
            "Binding, unknown attribute (420)",
            request(Method::BINDING, &[unknown], false),
            1.5,
        ),
        (
            "unknown method (400)",
            request(Method::new(0x0ff).unwrap(), &[], false),
            1.5,
        ),
        (
            "Allocate, no credentials (401)",
            request(
                Method::ALLOCATE,
                &[Attribute::RequestedTransport(17)],
                false,
            ),
            3.3,
        ),
        (
            "Refresh, no allocation (437)",
            request(Method::REFRESH, &[], false),
            1.5,
        ),
        (
            "CreatePermission, no allocation (437)",
            request(Method::CREATE_PERMISSION, &[], false),
            1.5,
        ),
        ("Allocate, wrong password (401)", bad_auth_allocate(), 1.5),
    ];
    println!(
        "{:<36} {:>8} {:>9} {:>6}",
        "request", "in (B)", "out (B)", "ratio"
    );
    for (i, (name, req, bound)) in cases.iter().enumerate() {
        let out = answer(req, i as u8 + 1);
        assert!(!out.is_empty(), "{name}: no answer");
        let ratio = out.len() as f64 / req.len() as f64;
        println!("{name:<36} {:>8} {:>9} {ratio:>6.2}", req.len(), out.len());
        assert!(
            ratio <= *bound,
            "{name}: {} -> {} bytes, ratio {ratio:.2} > {bound}",
            req.len(),
            out.len()
        );
    }
    // The largest answer is the challenge: fixed by the RFC's attributes.
    let challenge = answer(&cases[4].1, 99);
    assert!(challenge.len() <= 92, "401 is {} bytes", challenge.len());
}

#[test]
fn one_source_gets_a_bounded_number_of_answers() {
    let mut s = server();
    let req = request(
        Method::ALLOCATE,
        &[Attribute::RequestedTransport(17)],
        false,
    );
    let now = Instant::now();
    let mut answered = 0;
    for _ in 0..10_000 {
        s.handle_client(now, from(1), &req, &mut NoBind);
        while s.poll_transmit().is_some() {
            answered += 1;
        }
    }
    // Default: 3 000 per second with a burst of 300 (a tenth of a second).
    assert_eq!(answered, 300);
    // Another source is unaffected.
    s.handle_client(now, from(2), &req, &mut NoBind);
    assert!(s.poll_transmit().is_some());
    // And the first is answered again after a second.
    s.handle_client(
        now + std::time::Duration::from_secs(1),
        from(1),
        &req,
        &mut NoBind,
    );
    assert!(s.poll_transmit().is_some());
}
