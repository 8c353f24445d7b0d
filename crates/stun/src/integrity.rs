//! MESSAGE-INTEGRITY (RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256 (§14.6),
//! FINGERPRINT (§14.7), long-term keys (§9.2.2) and USERHASH (§14.4).

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

use crate::{HEADER_LEN, IntegrityError};

/// XORed into the CRC-32 of FINGERPRINT.
pub(crate) const FINGERPRINT_XOR: u32 = 0x5354_554E;

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The header of `msg` with its length field set as if the message ended
/// `extra` bytes after `upto`: what an integrity attribute at `upto` covers.
fn header_for(msg: &[u8], upto: usize, extra: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    if let Some(src) = msg.first_chunk::<HEADER_LEN>() {
        h = *src;
    }
    let len = u16::try_from(upto + extra - HEADER_LEN).unwrap_or(u16::MAX);
    h[2..4].copy_from_slice(&len.to_be_bytes());
    h
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8]) -> M {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// HMAC-SHA1 over `msg[..upto]` with the length adjusted to cover a
/// MESSAGE-INTEGRITY attribute at `upto`.
pub(crate) fn hmac_sha1(msg: &[u8], upto: usize, key: &[u8]) -> Hmac<Sha1> {
    let mut m: Hmac<Sha1> = mac(key);
    m.update(&header_for(msg, upto, 24));
    m.update(msg.get(HEADER_LEN..upto).unwrap_or(&[]));
    m
}

/// HMAC-SHA256 over `msg[..upto]` with the length adjusted to cover a
/// MESSAGE-INTEGRITY-SHA256 attribute of `mac_len` bytes at `upto`.
pub(crate) fn hmac_sha256(msg: &[u8], upto: usize, key: &[u8], mac_len: usize) -> Hmac<Sha256> {
    let mut m: Hmac<Sha256> = mac(key);
    m.update(&header_for(msg, upto, 4 + mac_len));
    m.update(msg.get(HEADER_LEN..upto).unwrap_or(&[]));
    m
}

pub(crate) fn verify_sha1(
    msg: &[u8],
    upto: usize,
    key: &[u8],
    expected: &[u8],
) -> Result<(), IntegrityError> {
    hmac_sha1(msg, upto, key)
        .verify_slice(expected)
        .map_err(|_| IntegrityError::Mismatch)
}

pub(crate) fn verify_sha256(
    msg: &[u8],
    upto: usize,
    key: &[u8],
    expected: &[u8],
) -> Result<(), IntegrityError> {
    hmac_sha256(msg, upto, key, expected.len())
        .verify_truncated_left(expected)
        .map_err(|_| IntegrityError::Mismatch)
}

/// The long-term credential key for the MD5 password algorithm:
/// MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
///
/// The inputs are used as given; OpaqueString preparation (RFC 8265) of
/// non-ASCII input is the caller's business.
pub fn long_term_key_md5(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    for part in [username, ":", realm, ":", password] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// The long-term credential key for the SHA-256 password algorithm
/// (RFC 8489 §9.2.2).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm, ":", password] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// USERHASH: SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}
