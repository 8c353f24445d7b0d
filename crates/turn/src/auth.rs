//! Long-term credentials (RFC 8489 §9.2): static users and coturn-compatible
//! ephemeral users, keys for the MD5 and SHA-256 password algorithms, and
//! USERHASH lookup. Keys are derived once per credential, never per packet.

use std::collections::HashMap;

use crate::credentials;

/// The password algorithm a key was derived with (RFC 8489 §18.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAlgorithm {
    /// MD5(username:realm:password), the RFC 5389 default.
    Md5,
    /// SHA-256(username:realm:password).
    Sha256,
}

/// A long-term credential key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key {
    algorithm: PasswordAlgorithm,
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, <redacted>)", self.algorithm)
    }
}

impl Key {
    /// An MD5 key.
    pub fn md5(k: [u8; 16]) -> Self {
        let mut bytes = [0; 32];
        bytes[..16].copy_from_slice(&k);
        Key {
            algorithm: PasswordAlgorithm::Md5,
            bytes,
        }
    }

    /// A SHA-256 key.
    pub fn sha256(bytes: [u8; 32]) -> Self {
        Key {
            algorithm: PasswordAlgorithm::Sha256,
            bytes,
        }
    }

    /// Derives the key for a credential.
    pub fn derive(alg: PasswordAlgorithm, username: &str, realm: &str, password: &str) -> Self {
        match alg {
            PasswordAlgorithm::Md5 => Key::md5(stun::long_term_key_md5(username, realm, password)),
            PasswordAlgorithm::Sha256 => {
                Key::sha256(stun::long_term_key_sha256(username, realm, password))
            }
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> PasswordAlgorithm {
        self.algorithm
    }

    /// The key bytes (16 for MD5, 32 for SHA-256).
    pub fn as_bytes(&self) -> &[u8] {
        match self.algorithm {
            PasswordAlgorithm::Md5 => &self.bytes[..16],
            PasswordAlgorithm::Sha256 => &self.bytes,
        }
    }
}

struct StaticUser {
    md5: Key,
    sha256: Key,
}

/// The users a server accepts.
pub struct Users {
    realm: String,
    statics: HashMap<String, StaticUser>,
    by_userhash: HashMap<[u8; 32], String>,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("realm", &self.realm)
            .field("static_users", &self.statics.len())
            .field("ephemeral", &self.secret.is_some())
            .finish()
    }
}

impl Users {
    /// Static users (name, password) and an optional shared secret for
    /// ephemeral credentials.
    pub fn new<'a>(
        realm: &str,
        statics: impl IntoIterator<Item = (&'a str, &'a str)>,
        secret: Option<Vec<u8>>,
    ) -> Self {
        let mut users = Users {
            realm: realm.to_owned(),
            statics: HashMap::new(),
            by_userhash: HashMap::new(),
            secret,
        };
        for (name, password) in statics {
            users.statics.insert(
                name.to_owned(),
                StaticUser {
                    md5: Key::derive(PasswordAlgorithm::Md5, name, realm, password),
                    sha256: Key::derive(PasswordAlgorithm::Sha256, name, realm, password),
                },
            );
            users
                .by_userhash
                .insert(stun::userhash(name, realm), name.to_owned());
        }
        users
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The key for `username`, or `None` if the user is unknown or its
    /// ephemeral credential has expired at `unix_now`.
    pub fn key(&self, username: &str, alg: PasswordAlgorithm, unix_now: u64) -> Option<Key> {
        if let Some(u) = self.statics.get(username) {
            return Some(match alg {
                PasswordAlgorithm::Md5 => u.md5,
                PasswordAlgorithm::Sha256 => u.sha256,
            });
        }
        let secret = self.secret.as_deref()?;
        let expiry = credentials::expiry_of(username)?;
        if expiry <= unix_now {
            return None;
        }
        let password = credentials::password_for(secret, username);
        Some(Key::derive(alg, username, &self.realm, &password))
    }

    /// True if `username` is a static user (`--user`); anything else that
    /// authenticates is an ephemeral credential.
    pub fn is_static(&self, username: &str) -> bool {
        self.statics.contains_key(username)
    }

    /// True if `username` is an ephemeral credential past its expiry. Checked
    /// on every request, as coturn does, so a cached key cannot keep an
    /// allocation alive beyond its credential.
    pub fn expired(&self, username: &str, unix_now: u64) -> bool {
        !self.statics.contains_key(username)
            && self.secret.is_some()
            && credentials::expiry_of(username).is_some_and(|e| e <= unix_now)
    }

    /// The static user whose USERHASH is `hash` (ephemeral users cannot be
    /// found by hash: their names are not known in advance).
    pub fn by_userhash(&self, hash: &[u8; 32]) -> Option<&str> {
        self.by_userhash.get(hash).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_ephemeral_keys() {
        let users = Users::new("r", [("alice", "pw")], Some(b"s3cret".to_vec()));
        let k = users.key("alice", PasswordAlgorithm::Md5, 0).unwrap();
        assert_eq!(k.as_bytes(), stun::long_term_key_md5("alice", "r", "pw"));
        assert_eq!(
            users.by_userhash(&stun::userhash("alice", "r")),
            Some("alice")
        );
        assert!(users.key("bob", PasswordAlgorithm::Md5, 0).is_none());

        let c = credentials::mint(b"s3cret", 1000, Some("bob"));
        let k = users
            .key(&c.username, PasswordAlgorithm::Sha256, 999)
            .unwrap();
        assert_eq!(
            k.as_bytes(),
            stun::long_term_key_sha256(&c.username, "r", &c.password)
        );
        assert!(
            users
                .key(&c.username, PasswordAlgorithm::Md5, 1000)
                .is_none()
        );
        assert!(!format!("{k:?}").contains("0x"));
    }
}
