#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! RFC 5769 §2.1–2.4 and RFC 8489 Appendix B.1 test vectors: each is decoded,
//! its integrity and fingerprint checked, and re-encoded byte for byte.

use stun::{
    Attribute, AttributeType, Class, DecodeError, IntegrityError, Message, MessageBuilder, Method,
};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

const SHORT_TERM: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

/// Re-encodes every attribute before the integrity attributes, then adds
/// what the original carried, and compares with the original bytes.
fn reencode(msg: &Message<'_>, key: &[u8], padding: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(&mut buf, msg.class(), msg.method(), msg.transaction_id());
    b.padding_byte(padding);
    for raw in msg.attributes() {
        let attr = Attribute::decode(raw, &msg.transaction_id()).expect("attribute parses");
        b.add(&attr).expect("encodes");
    }
    if msg.has_integrity() {
        b.add_message_integrity(key).expect("MI");
    }
    if msg.has_integrity_sha256() {
        b.add_message_integrity_sha256(key).expect("MI-SHA256");
    }
    if msg.has_fingerprint() {
        b.add_fingerprint().expect("FP");
    }
    b.finish().to_vec()
}

#[test]
fn rfc5769_sample_request() {
    let bytes = vector("rfc5769_2_1_request.hex");
    let msg = Message::decode(&bytes).expect("decodes");
    assert_eq!(msg.class(), Class::Request);
    assert_eq!(msg.method(), Method::BINDING);
    assert!(msg.has_fingerprint());
    assert_eq!(msg.verify_integrity(SHORT_TERM), Ok(()));
    assert_eq!(
        msg.verify_integrity(b"wrong"),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(
        msg.attribute(AttributeType::SOFTWARE),
        Some(Ok(Attribute::Software("STUN test client")))
    );
    assert_eq!(
        msg.attribute(AttributeType::USERNAME),
        Some(Ok(Attribute::Username("evtj:h6vY")))
    );
    assert_eq!(
        msg.attribute(AttributeType::PRIORITY),
        Some(Ok(Attribute::Priority(0x6e0001ff)))
    );
    assert_eq!(
        msg.attribute(AttributeType::ICE_CONTROLLED),
        Some(Ok(Attribute::IceControlled(0x932ff9b151263b36)))
    );
    assert_eq!(reencode(&msg, SHORT_TERM, b' '), bytes);
}

#[test]
fn rfc5769_sample_ipv4_response() {
    let bytes = vector("rfc5769_2_2_ipv4_response.hex");
    let msg = Message::decode(&bytes).expect("decodes");
    assert_eq!(msg.class(), Class::Success);
    assert_eq!(msg.verify_integrity(SHORT_TERM), Ok(()));
    assert_eq!(
        msg.attribute(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(
            "192.0.2.1:32853".parse().expect("addr")
        )))
    );
    assert_eq!(reencode(&msg, SHORT_TERM, b' '), bytes);
}

#[test]
fn rfc5769_sample_ipv6_response() {
    let bytes = vector("rfc5769_2_3_ipv6_response.hex");
    let msg = Message::decode(&bytes).expect("decodes");
    assert_eq!(msg.verify_integrity(SHORT_TERM), Ok(()));
    assert_eq!(
        msg.attribute(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .expect("addr")
        )))
    );
    assert_eq!(reencode(&msg, SHORT_TERM, b' '), bytes);
}

#[test]
fn rfc5769_long_term_request() {
    let bytes = vector("rfc5769_2_4_long_term_request.hex");
    let msg = Message::decode(&bytes).expect("decodes");
    let key = stun::long_term_key_md5("マトリックス", "example.org", "TheMatrIX");
    assert_eq!(
        key,
        [
            0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda,
            0xb2, 0xa9
        ]
    );
    assert_eq!(msg.verify_integrity(&key), Ok(()));
    assert_eq!(
        msg.attribute(AttributeType::NONCE),
        Some(Ok(Attribute::Nonce("f//499k954d6OL34oL9FSTvy64sA")))
    );
    assert_eq!(
        msg.attribute(AttributeType::REALM),
        Some(Ok(Attribute::Realm("example.org")))
    );
    assert_eq!(reencode(&msg, &key, 0), bytes);
}

/// RFC 8489 B.1 as published has a length field of 0x9c for 0x88 bytes of
/// attributes (erratum 6268): a strict decoder must refuse it.
#[test]
fn rfc8489_b1_as_published_is_refused() {
    let bytes = vector("rfc8489_b_1_request.hex");
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::LengthMismatch { .. })
    ));
}

/// RFC 8489 B.1 as corrected by erratum 6268: USERHASH, PASSWORD-ALGORITHM
/// SHA-256 and MESSAGE-INTEGRITY-SHA256.
#[test]
fn rfc8489_b1_userhash_and_sha256_integrity() {
    let bytes = vector("rfc8489_b_1_request_eid6268.hex");
    let msg = Message::decode(&bytes).expect("decodes");
    let (user, realm) = ("マトリックス", "example.org");
    let hash = stun::userhash(user, realm);
    assert_eq!(
        msg.attribute(AttributeType::USERHASH),
        Some(Ok(Attribute::Userhash(&hash)))
    );
    let key = stun::long_term_key_sha256(user, realm, "TheMatrIX");
    assert_eq!(msg.verify_integrity_sha256(&key), Ok(()));
    assert_eq!(
        msg.verify_integrity_sha256(&[0; 32]),
        Err(IntegrityError::Mismatch)
    );
    match msg.attribute(AttributeType::PASSWORD_ALGORITHM) {
        Some(Ok(Attribute::PasswordAlgorithm(p))) => {
            assert_eq!(p.algorithm, stun::PasswordAlgorithm::SHA256)
        }
        other => panic!("PASSWORD-ALGORITHM: {other:?}"),
    }
    assert_eq!(reencode(&msg, &key, 0), bytes);
}
