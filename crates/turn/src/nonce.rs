//! Stateless nonces (RFC 8489 §9.2): the server keeps nothing per client.
//!
//! A nonce is the RFC 8489 §9.2 cookie `obMatJos2` with the security-feature
//! bits, then the expiry (seconds since the server started, hex) and a
//! truncated HMAC-SHA256 over the expiry and the client's IP. A nonce from
//! another client, a forged one or an expired one does not verify.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix announcing RFC 8489 features; `wAAA` is base64 of the 24 feature
/// bits with "password algorithms" and "username anonymity" set.
pub const NONCE_PREFIX: &str = "obMatJos2wAAA";

const MAC_LEN: usize = 8;

/// Mints and checks nonces with a per-process secret.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
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
        NonceKey { key }
    }

    fn tag(&self, expiry: u32, client: IpAddr) -> [u8; MAC_LEN] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
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
        use std::fmt::Write as _;
        out.clear();
        out.push_str(NONCE_PREFIX);
        let _ = write!(out, "{expiry:08x}");
        for b in self.tag(expiry, client) {
            let _ = write!(out, "{b:02x}");
        }
    }

    /// Checks a nonce from `client` at time `now` (seconds since start).
    pub fn verify(&self, nonce: &str, client: IpAddr, now: u32) -> Result<(), NonceError> {
        let rest = nonce
            .strip_prefix(NONCE_PREFIX)
            .ok_or(NonceError::Invalid)?;
        if rest.len() != 8 + 2 * MAC_LEN || !rest.is_ascii() {
            return Err(NonceError::Invalid);
        }
        let (exp, tag) = rest.split_at(8);
        let expiry = u32::from_str_radix(exp, 16).map_err(|_| NonceError::Invalid)?;
        let mut got = [0u8; MAC_LEN];
        for (i, g) in got.iter_mut().enumerate() {
            let hex = tag.get(2 * i..2 * i + 2).ok_or(NonceError::Invalid)?;
            *g = u8::from_str_radix(hex, 16).map_err(|_| NonceError::Invalid)?;
        }
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
        let forged = n.replace("00000258", "0000ffff");
        assert_eq!(k.verify(&forged, a, 10), Err(NonceError::Invalid));
        assert_eq!(k.verify("garbage", a, 10), Err(NonceError::Invalid));
        assert_eq!(k.verify("obMatJos2wAAAé", a, 10), Err(NonceError::Invalid));
    }
}
