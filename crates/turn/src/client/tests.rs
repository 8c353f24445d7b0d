//! The client against hand-made server responses: a server without the
//! RFC 8489 nonce cookie (MD5, no negotiation, as coturn), responses whose
//! integrity fails, endless 438s, and malformed input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, PasswordAlgorithms};

use super::*;

const SERVER: &str = "192.0.2.1:3478";

fn client(now: Instant) -> Client {
    let server: SocketAddr = SERVER.parse().unwrap();
    Client::new(
        ClientConfig::new(server, "user", "pass", Transport::Udp),
        now,
        [3; 32],
    )
}

/// A response of `class` to `request` with `attrs`, signed with `key`.
fn respond(request: &[u8], class: Class, attrs: &[Attribute<'_>], key: Option<&[u8]>) -> Vec<u8> {
    let req = Message::decode(request).unwrap();
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(&mut buf, class, req.method(), req.transaction_id());
    for a in attrs {
        b.add(a).unwrap();
    }
    if let Some(k) = key {
        b.add_message_integrity(k).unwrap();
    }
    buf
}

fn error(code: u16) -> Attribute<'static> {
    Attribute::ErrorCode(stun::ErrorCode { code, reason: "x" })
}

fn allocated(relayed: SocketAddr) -> [Attribute<'static>; 3] {
    [
        Attribute::XorRelayedAddress(relayed),
        Attribute::Lifetime(600),
        Attribute::XorMappedAddress("192.0.2.100:40000".parse().unwrap()),
    ]
}

#[test]
fn legacy_server_gets_md5_and_no_negotiation() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.allocate(t0).unwrap();
    let first = c.poll_transmit().unwrap();
    // PASSWORD-ALGORITHMS without the nonce cookie is not a negotiation.
    let offered = [0, 2, 0, 0];
    let challenge = respond(
        &first,
        Class::Error,
        &[
            error(401),
            Attribute::Realm("legacy"),
            Attribute::Nonce("abcdef"),
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_encoded(&offered)),
        ],
        None,
    );
    assert_eq!(c.handle_input(t0, &challenge), Ok(None));
    let signed = c.poll_transmit().unwrap();
    let m = Message::decode(&signed).unwrap();
    assert_ne!(
        m.transaction_id(),
        Message::decode(&first).unwrap().transaction_id()
    );
    assert_eq!(
        m.attribute(AttributeType::USERNAME),
        Some(Ok(Attribute::Username("user")))
    );
    assert!(m.attribute(AttributeType::PASSWORD_ALGORITHM).is_none());
    assert!(m.attribute(AttributeType::PASSWORD_ALGORITHMS).is_none());
    let key = stun::long_term_key_md5("user", "legacy", "pass");
    assert!(m.has_integrity() && !m.has_integrity_sha256());
    assert_eq!(m.verify_integrity(&key), Ok(()));
    assert_eq!(c.password_algorithm(), Some(PasswordAlgorithm::Md5));

    let relayed: SocketAddr = "192.0.2.1:50000".parse().unwrap();
    // Unsigned, or signed with another key: ignored, still waiting.
    let unsigned = respond(&signed, Class::Success, &allocated(relayed), None);
    assert_eq!(c.handle_input(t0, &unsigned), Err(ClientError::Integrity));
    let forged = respond(&signed, Class::Success, &allocated(relayed), Some(&[0; 16]));
    assert_eq!(c.handle_input(t0, &forged), Err(ClientError::Integrity));
    assert_eq!(c.poll_event(), None);
    let ok = respond(&signed, Class::Success, &allocated(relayed), Some(&key));
    assert_eq!(c.handle_input(t0, &ok), Ok(None));
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Allocated { relayed: r, .. }) if r == relayed
    ));
    // A duplicate (the answer to a retransmission) is recognised as such.
    assert_eq!(
        c.handle_input(t0, &ok),
        Err(ClientError::UnknownTransaction)
    );
}

#[test]
fn md5_only_offer_is_followed_and_echoed() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.allocate(t0).unwrap();
    let first = c.poll_transmit().unwrap();
    let offered = [0, 1, 0, 0];
    let challenge = respond(
        &first,
        Class::Error,
        &[
            error(401),
            Attribute::Realm("r"),
            Attribute::Nonce("obMatJos2gAAAnonce"),
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_encoded(&offered)),
        ],
        None,
    );
    c.handle_input(t0, &challenge).unwrap();
    let signed = c.poll_transmit().unwrap();
    let m = Message::decode(&signed).unwrap();
    let Some(Ok(Attribute::PasswordAlgorithms(list))) =
        m.attribute(AttributeType::PASSWORD_ALGORITHMS)
    else {
        panic!("not echoed")
    };
    assert_eq!(list.as_bytes(), offered);
    let Some(Ok(Attribute::PasswordAlgorithm(p))) = m.attribute(AttributeType::PASSWORD_ALGORITHM)
    else {
        panic!("no PASSWORD-ALGORITHM")
    };
    assert_eq!(p.algorithm, stun::PasswordAlgorithm::MD5);
    // No anonymity bit in "gAAA": USERNAME even though not asked otherwise.
    assert!(m.attribute(AttributeType::USERNAME).is_some());
}

#[test]
fn unsupported_algorithms_fail_the_request() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.allocate(t0).unwrap();
    let first = c.poll_transmit().unwrap();
    let offered = [0, 9, 0, 0];
    let challenge = respond(
        &first,
        Class::Error,
        &[
            error(401),
            Attribute::Realm("r"),
            Attribute::Nonce("obMatJos2wAAAnonce"),
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_encoded(&offered)),
        ],
        None,
    );
    c.handle_input(t0, &challenge).unwrap();
    assert_eq!(c.poll_transmit(), None);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Failed {
            method: Method::ALLOCATE,
            code: 401,
            ..
        })
    ));
    // Allocating again is allowed.
    assert!(c.allocate(t0).is_ok());
}

#[test]
fn endless_438_gives_up_after_three_retries() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.allocate(t0).unwrap();
    let mut sends = 0;
    while let Some(req) = c.poll_transmit() {
        sends += 1;
        assert!(sends < 10);
        let code = if sends == 1 { 401 } else { 438 };
        let answer = respond(
            &req,
            Class::Error,
            &[error(code), Attribute::Realm("r"), Attribute::Nonce("n")],
            None,
        );
        c.handle_input(t0, &answer).unwrap();
    }
    assert_eq!(sends, 4);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Failed { code: 438, .. })
    ));
}

#[test]
fn malformed_input_is_reported_and_changes_nothing() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.binding(t0).unwrap();
    let req = c.poll_transmit().unwrap();
    // Success without a mapped address.
    let empty = respond(&req, Class::Success, &[], None);
    assert!(matches!(
        c.handle_input(t0, &empty),
        Err(ClientError::Malformed(_))
    ));
    // Error without ERROR-CODE.
    let bare = respond(&req, Class::Error, &[], None);
    assert!(matches!(
        c.handle_input(t0, &bare),
        Err(ClientError::Malformed(_))
    ));
    // Data indication from a peer without permission (and no allocation).
    let mut di = Vec::new();
    let mut b = MessageBuilder::new(
        &mut di,
        Class::Indication,
        Method::DATA,
        stun::TransactionId([2; 12]),
    );
    b.add(&Attribute::XorPeerAddress("8.8.4.4:53".parse().unwrap()))
        .unwrap();
    b.add(&Attribute::Data(b"hi")).unwrap();
    assert_eq!(
        c.handle_input(t0, &di),
        Err(ClientError::NoPermission("8.8.4.4".parse().unwrap()))
    );
    // Data indication without DATA.
    let mut buf = Vec::new();
    let peer: SocketAddr = "8.8.8.8:53".parse().unwrap();
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::Indication,
        Method::DATA,
        stun::TransactionId([1; 12]),
    );
    b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    assert!(matches!(
        c.handle_input(t0, &buf),
        Err(ClientError::Malformed(_))
    ));
    assert!(matches!(
        c.handle_input(t0, &req[..10]),
        Err(ClientError::Decode(_))
    ));
    // The Binding is still pending and completes.
    let mapped: SocketAddr = "192.0.2.100:4000".parse().unwrap();
    let ok = respond(
        &req,
        Class::Success,
        &[Attribute::XorMappedAddress(mapped)],
        None,
    );
    c.handle_input(t0, &ok).unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Mapped { mapped }));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(c.poll_transmit(), None);
}

#[test]
fn mutated_input_never_panics() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.allocate(t0).unwrap();
    let first = c.poll_transmit().unwrap();
    let challenge = respond(
        &first,
        Class::Error,
        &[
            error(401),
            Attribute::Realm("r"),
            Attribute::Nonce("obMatJos2wAAAnonce"),
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_encoded(&[0, 2, 0, 0])),
        ],
        None,
    );
    let relayed: SocketAddr = "192.0.2.1:50000".parse().unwrap();
    let success = respond(&first, Class::Success, &allocated(relayed), None);
    let mut di = Vec::new();
    let mut b = MessageBuilder::new(
        &mut di,
        Class::Indication,
        Method::DATA,
        stun::TransactionId([2; 12]),
    );
    b.add(&Attribute::XorPeerAddress("8.8.8.8:53".parse().unwrap()))
        .unwrap();
    b.add(&Attribute::Data(b"payload")).unwrap();
    let cd = [0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
    for packet in [&challenge[..], &success[..], &di[..], &cd[..]] {
        for i in 0..packet.len() {
            for bit in 0..8 {
                let mut p = packet.to_vec();
                p[i] ^= 1 << bit;
                let mut fresh = client(t0);
                fresh.allocate(t0).unwrap();
                let _ = fresh.handle_input(t0, &p);
                let _ = c.handle_input(t0, &p);
            }
            let _ = c.handle_input(t0, &packet[..i]);
        }
    }
    let _ = c.handle_input(t0, &[]);
}

#[test]
fn debug_output_hides_the_password() {
    let c = client(Instant::now());
    let shown = format!("{c:?}");
    assert!(shown.contains("user"));
    assert!(!shown.contains("pass\""), "{shown}");
}
