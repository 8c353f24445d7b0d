//! Stateless nonces (RFC 8489 §9.2): the server keeps nothing per client.
//!
//! A nonce is the RFC 8489 §9.2 cookie `obMatJos2` with the security-feature
//! bits, then base64url of the expiry (seconds since the server started,
//! 4 bytes) and a truncated HMAC-SHA256 over the expiry and the client's IP
//! (8 bytes): 29 characters in all, kept short because a 401 that carries it
//! is what an unauthenticated client can make the server send. A nonce from
//! another client, a forged one or an expired one does not verify.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix announcing RFC 8489 features; `wAAA` is base64 of the 24 feature
/// bits with "password algorithms" and "username anonymity" set.
pub const NONCE_PREFIX: &str = "obMatJos2wAAA";

const MAC_LEN: usize = 8;

/// Mints and checks nonces with a per-process secret.
#[derive(Clone)]
pub struct NonceKey {
    /// HMAC keyed once: its inner and outer pad blocks are already
    /// compressed, so a tag costs two SHA-256 blocks instead of four (a tag
    /// is computed for every 401 and every authenticated request).
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Well-formed and ours, but past its expiry: answer 438.
    Stale,
    /// Not a nonce this server minted for this client: answer 438 as well
    /// (RFC 8489 §9.2.4), but it is also a sign of tampering.
    Invalid,
}

impl NonceKey {
    /// A key from 32 random bytes.
    pub fn new(key: [u8; 32]) -> Self {
        let keyed = match Hmac::<Sha256>::new_from_slice(&key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        NonceKey { keyed }
    }

    fn tag(&self, expiry: u32, client: IpAddr) -> [u8; MAC_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(&expiry.to_be_bytes());
        match client {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(full.get(..MAC_LEN).unwrap_or(&[0; MAC_LEN]));
        out
    }

    /// Writes a nonce valid until `expiry` (seconds since start) into `out`.
    pub fn mint(&self, expiry: u32, client: IpAddr, out: &mut String) {
        let mut raw = [0u8; 4 + MAC_LEN];
        let (exp, tag) = raw.split_at_mut(4);
        exp.copy_from_slice(&expiry.to_be_bytes());
        tag.copy_from_slice(&self.tag(expiry, client));
        out.clear();
        out.push_str(NONCE_PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw, out);
    }

    /// Checks a nonce from `client` at time `now` (seconds since start).
    pub fn verify(&self, nonce: &str, client: IpAddr, now: u32) -> Result<(), NonceError> {
        let rest = nonce
            .strip_prefix(NONCE_PREFIX)
            .ok_or(NonceError::Invalid)?;
        let mut raw = [0u8; 4 + MAC_LEN];
        match URL_SAFE_NO_PAD.decode_slice(rest, &mut raw) {
            Ok(n) if n == raw.len() => {}
            _ => return Err(NonceError::Invalid),
        }
        let (exp, got) = raw.split_first_chunk::<4>().ok_or(NonceError::Invalid)?;
        let expiry = u32::from_be_bytes(*exp);
        let want = self.tag(expiry, client);
        // Constant-time compare of the tag.
        let diff = want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(NonceError::Invalid);
        }
        if now >= expiry {
            return Err(NonceError::Stale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_verify_expire_and_bind_to_client() {
        let k = NonceKey::new([7; 32]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut n = String::new();
        k.mint(600, a, &mut n);
        assert!(n.starts_with("obMatJos2"));
        assert_eq!(k.verify(&n, a, 10), Ok(()));
        assert_eq!(k.verify(&n, a, 600), Err(NonceError::Stale));
        assert_eq!(k.verify(&n, b, 10), Err(NonceError::Invalid));
        assert_eq!(
            NonceKey::new([8; 32]).verify(&n, a, 10),
            Err(NonceError::Invalid)
        );
        assert_eq!(n.len(), 29);
        let mut forged = n.clone().into_bytes();
        forged[14] ^= 1;
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(k.verify(&forged, a, 10), Err(NonceError::Invalid));
        assert_eq!(k.verify(&n[..28], a, 10), Err(NonceError::Invalid));
        assert_eq!(k.verify("garbage", a, 10), Err(NonceError::Invalid));
        assert_eq!(k.verify("obMatJos2wAAAé", a, 10), Err(NonceError::Invalid));
    }

    /// The pre-keyed state gives the same tag as HMAC keyed afresh, and
    /// stays unchanged across tags.
    #[test]
    fn pre_keyed_tag_is_plain_hmac_sha256() {
        let k = NonceKey::new([7; 32]);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for expiry in [1u32, 600, u32::MAX] {
            let mut fresh = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
            fresh.update(&expiry.to_be_bytes());
            fresh.update(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            let want = fresh.finalize().into_bytes();
            assert_eq!(k.tag(expiry, ip), want[..MAC_LEN]);
        }
    }
}
