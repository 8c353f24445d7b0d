#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Malformed input: every truncation, bad length, bad padding, wrong cookie
//! and corrupted byte returns an error or a valid message, never a panic.

use stun::{Attribute, DecodeError, Message};

fn sample() -> Vec<u8> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/vectors/rfc5769_2_1_request.hex",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("vector");
    let hex: String = text.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Decodes and reads every attribute, as a server would.
fn exercise(bytes: &[u8]) -> Result<(), DecodeError> {
    let msg = Message::decode(bytes)?;
    for raw in msg.attributes() {
        let _ = Attribute::decode(raw, &msg.transaction_id());
    }
    let _ = msg.verify_integrity(b"key");
    let _ = msg.verify_integrity_sha256(b"key");
    let _ = msg.unknown_comprehension_required().count();
    Ok(())
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(exercise(&bytes[..len]).is_err(), "prefix of {len} bytes");
    }
    assert_eq!(
        Message::decode(&bytes[..10]).err(),
        Some(DecodeError::TooShort)
    );
}

#[test]
fn wrong_cookie() {
    let mut bytes = sample();
    bytes[4] ^= 1;
    assert_eq!(
        Message::decode(&bytes).err(),
        Some(DecodeError::WrongCookie)
    );
}

#[test]
fn not_stun_first_bits() {
    let mut bytes = sample();
    bytes[0] |= 0x40;
    assert_eq!(Message::decode(&bytes).err(), Some(DecodeError::NotStun));
}

#[test]
fn bad_length_fields() {
    let mut bytes = sample();
    bytes[3] = bytes[3].wrapping_add(4);
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::LengthMismatch { .. })
    ));
    bytes[3] = bytes[3].wrapping_sub(3);
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::UnalignedLength(_))
    ));
    // Trailing bytes after the message.
    let mut long = sample();
    long.extend_from_slice(&[0; 4]);
    assert!(Message::decode(&long).is_err());
}

#[test]
fn attribute_running_past_the_end_or_its_padding() {
    // Header + one USERNAME attribute of declared length 5 whose padding is missing.
    let mut m = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&[0x00, 0x06, 0x00, 0x05, b'a', b'b', b'c', b'd']);
    assert_eq!(
        Message::decode(&m).err(),
        Some(DecodeError::TruncatedAttribute(0x0006))
    );
    // Declared value longer than the message.
    m[22..24].copy_from_slice(&[0x01, 0x00]);
    assert_eq!(
        Message::decode(&m).err(),
        Some(DecodeError::TruncatedAttribute(0x0006))
    );
}

#[test]
fn corrupted_fingerprint_and_attribute_after_it() {
    let mut bytes = sample();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    assert_eq!(
        Message::decode(&bytes).err(),
        Some(DecodeError::BadFingerprint)
    );

    let mut bytes = sample();
    bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
    let len = u16::from_be_bytes([bytes[2], bytes[3]]) + 4;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Message::decode(&bytes).err(),
        Some(DecodeError::AttributeAfterFingerprint)
    );
}

#[test]
fn every_single_byte_corruption_is_handled() {
    let bytes = sample();
    for i in 0..bytes.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= x;
            let _ = exercise(&b);
        }
    }
}

#[test]
fn bad_attribute_values_are_errors() {
    let tid = stun::TransactionId([0; 12]);
    let cases: &[(u16, &[u8])] = &[
        (0x0020, &[0, 1, 0]),                // short address
        (0x0020, &[0, 9, 0, 0, 1, 2, 3, 4]), // unknown family
        (0x0009, &[0, 0, 7, 0]),             // error class 7
        (0x0009, &[0, 0, 4, 100]),           // error number 100
        (0x0006, &[0xff, 0xfe]),             // username not UTF-8
        (0x000D, &[0, 0, 1]),                // lifetime of 3 bytes
        (0x001A, &[0]),                      // DONT-FRAGMENT with a value
        (0x001C, &[0; 12]),                  // MI-SHA256 shorter than 16
        (0x001D, &[0, 2, 0, 8]),             // PASSWORD-ALGORITHM params missing
    ];
    for (t, v) in cases {
        let raw = stun::RawAttribute {
            typ: stun::AttributeType(*t),
            value: v,
        };
        assert!(Attribute::decode(raw, &tid).is_err(), "type 0x{t:04x}");
    }
}
