//! Ephemeral TURN credentials compatible with coturn's `use-auth-secret`
//! (the "TURN REST API" draft, draft-uberti-behave-turn-rest-00 §2.2).
//!
//! The username is `EXPIRY_UNIX_TIME` or `EXPIRY_UNIX_TIME:ID`, the password is
//! `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the
//! password from the username, so no state is shared but the secret.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A username/password pair for a TURN server's long-term credential mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `EXPIRY` or `EXPIRY:ID`.
    pub username: String,
    /// base64 of HMAC-SHA1(secret, username).
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Mints a credential valid until `expires_unix` (seconds since the Unix epoch).
pub fn mint(secret: &[u8], expires_unix: u64, id: Option<&str>) -> Credential {
    let username = match id {
        Some(id) => format!("{expires_unix}:{id}"),
        None => expires_unix.to_string(),
    };
    let password = password_for(secret, &username);
    Credential { username, password }
}

/// The password the server expects for an ephemeral `username`.
pub fn password_for(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The expiry time encoded in an ephemeral username, if it has one.
///
/// coturn takes the leading run of digits before the first `:`; a username
/// without a numeric prefix is not ephemeral.
pub fn expiry_of(username: &str) -> Option<u64> {
    let head = username.split(':').next().unwrap_or(username);
    head.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_check() {
        let c = mint(b"secret", 1_700_000_000, Some("alice"));
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.password, password_for(b"secret", "1700000000:alice"));
        assert_ne!(c.password, password_for(b"other", "1700000000:alice"));
        assert_eq!(expiry_of(&c.username), Some(1_700_000_000));
        assert_eq!(expiry_of("alice"), None);
        assert!(!format!("{c:?}").contains(&c.password));
    }
}
