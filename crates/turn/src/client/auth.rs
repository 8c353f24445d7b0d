//! The client side of the long-term credential mechanism (RFC 8489 §9.2.3
//! forming requests, §9.2.5 receiving responses): REALM and NONCE from a 401
//! or 438, the nonce cookie and its security feature bits (§9.2), the
//! PASSWORD-ALGORITHMS choice (§9.2.5, §14.11–14.12) and USERHASH (§14.4).
//!
//! The key is derived once per realm and algorithm, not per request.

use base64::Engine as _;
use stun::{Attribute, AttributeType, EncodeError, Message, MessageBuilder, PasswordAlgorithms};

use super::{ClientConfig, ClientError};
use crate::auth::{Key, PasswordAlgorithm};

/// The RFC 8489 §9.2 nonce cookie; four base64 characters of security
/// feature bits follow it.
pub const NONCE_COOKIE: &str = "obMatJos2";
/// Feature bit 0: password algorithms (RFC 8489 §9.2, §18.1).
const FEATURE_PASSWORD_ALGORITHMS: u32 = 0x80_0000;
/// Feature bit 1: username anonymity (USERHASH).
const FEATURE_USERNAME_ANONYMITY: u32 = 0x40_0000;

/// The credential state learned from the server's challenges.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<Key>,
    /// The server's PASSWORD-ALGORITHMS, echoed in every request when the
    /// RFC 8489 negotiation is in use.
    offered: Option<Vec<u8>>,
    userhash: Option<[u8; 32]>,
}

/// The security feature bits of a nonce that starts with the cookie.
fn features(nonce: &str) -> Option<u32> {
    let bits = nonce.strip_prefix(NONCE_COOKIE)?.get(..4)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(bits)
        .ok()?;
    match bytes.as_slice() {
        [a, b, c] => Some(u32::from_be_bytes([0, *a, *b, *c])),
        _ => None,
    }
}

/// The algorithm to use among those the server offered: the configured
/// preference if offered, else the first offered one this client supports.
fn choose(
    offered: PasswordAlgorithms<'_>,
    preference: Option<PasswordAlgorithm>,
) -> Option<PasswordAlgorithm> {
    let supported = offered
        .iter()
        .filter(|a| a.params.is_empty())
        .filter_map(|a| match a.algorithm {
            stun::PasswordAlgorithm::MD5 => Some(PasswordAlgorithm::Md5),
            stun::PasswordAlgorithm::SHA256 => Some(PasswordAlgorithm::Sha256),
            _ => None,
        });
    let mut first = None;
    for alg in supported {
        if Some(alg) == preference {
            return Some(alg);
        }
        first = first.or(Some(alg));
    }
    first
}

impl Credentials {
    /// The algorithm of the current key.
    pub fn algorithm(&self) -> Option<PasswordAlgorithm> {
        self.key.map(|k| k.algorithm())
    }

    /// Takes REALM, NONCE and PASSWORD-ALGORITHMS from a 401 or 438 error
    /// response (RFC 8489 §9.2.5). The key is re-derived only if the realm
    /// or the algorithm changed.
    pub fn take_challenge(
        &mut self,
        msg: &Message<'_>,
        config: &ClientConfig,
    ) -> Result<(), ClientError> {
        let realm = match msg.attribute(AttributeType::REALM) {
            Some(Ok(Attribute::Realm(r))) => r,
            _ => return Err(ClientError::BadChallenge("no REALM")),
        };
        let nonce = match msg.attribute(AttributeType::NONCE) {
            Some(Ok(Attribute::Nonce(n))) => n,
            _ => return Err(ClientError::BadChallenge("no NONCE")),
        };
        let features = features(nonce).unwrap_or(0);
        let offered = match msg.attribute(AttributeType::PASSWORD_ALGORITHMS) {
            Some(Ok(Attribute::PasswordAlgorithms(l))) => Some(l),
            _ => None,
        };
        let (algorithm, offered) = match offered {
            // Only a server that announces the feature in its nonce takes
            // part in the negotiation (RFC 8489 §9.2.5); otherwise MD5.
            Some(list) if features & FEATURE_PASSWORD_ALGORITHMS != 0 => {
                let alg = choose(list, config.password_algorithm)
                    .ok_or(ClientError::BadChallenge("no supported password algorithm"))?;
                (alg, Some(list.as_bytes().to_vec()))
            }
            _ => (PasswordAlgorithm::Md5, None),
        };
        let same_key = self.realm.as_deref() == Some(realm)
            && self.key.is_some_and(|k| k.algorithm() == algorithm);
        if !same_key {
            self.key = Some(Key::derive(
                algorithm,
                &config.username,
                realm,
                &config.password,
            ));
        }
        self.userhash = (config.use_userhash && features & FEATURE_USERNAME_ANONYMITY != 0)
            .then(|| stun::userhash(&config.username, realm));
        self.realm = Some(realm.to_owned());
        self.nonce = Some(nonce.to_owned());
        self.offered = offered;
        Ok(())
    }

    /// Appends USERNAME or USERHASH, REALM, NONCE, the password algorithm
    /// attributes if negotiated, and MESSAGE-INTEGRITY (MD5 key) or
    /// MESSAGE-INTEGRITY-SHA256 (SHA-256 key). Returns false, adding
    /// nothing, before the first challenge.
    pub fn sign(
        &self,
        b: &mut MessageBuilder<'_>,
        config: &ClientConfig,
    ) -> Result<bool, EncodeError> {
        let (Some(realm), Some(nonce), Some(key)) = (&self.realm, &self.nonce, &self.key) else {
            return Ok(false);
        };
        match &self.userhash {
            Some(h) => b.add(&Attribute::Userhash(h))?,
            None => b.add(&Attribute::Username(&config.username))?,
        };
        b.add(&Attribute::Realm(realm))?;
        b.add(&Attribute::Nonce(nonce))?;
        if let Some(list) = &self.offered {
            let algorithm = match key.algorithm() {
                PasswordAlgorithm::Md5 => stun::PasswordAlgorithm::MD5,
                PasswordAlgorithm::Sha256 => stun::PasswordAlgorithm::SHA256,
            };
            b.add(&Attribute::PasswordAlgorithms(
                PasswordAlgorithms::from_encoded(list),
            ))?;
            b.add(&Attribute::PasswordAlgorithm(stun::PasswordAlgorithm {
                algorithm,
                params: &[],
            }))?;
        }
        match key.algorithm() {
            PasswordAlgorithm::Md5 => b.add_message_integrity(key.as_bytes())?,
            PasswordAlgorithm::Sha256 => b.add_message_integrity_sha256(key.as_bytes())?,
        };
        Ok(true)
    }

    /// Checks the integrity of a response to a signed request (RFC 8489
    /// §9.2.5): MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY.
    pub fn verify(&self, msg: &Message<'_>) -> Result<(), ClientError> {
        let key = self.key.ok_or(ClientError::Integrity)?;
        let checked = if msg.has_integrity_sha256() {
            msg.verify_integrity_sha256(key.as_bytes())
        } else {
            msg.verify_integrity(key.as_bytes())
        };
        checked.map_err(|_| ClientError::Integrity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_bits_of_the_nonce_cookie() {
        // RFC 8489 §9.2: "obMatJos2" + base64 of 24 bits; bit 0 first.
        assert_eq!(features("obMatJos2wAAAxyz"), Some(0xC0_0000));
        assert_eq!(features("obMatJos2gAAA"), Some(0x80_0000));
        assert_eq!(features("obMatJos2"), None);
        assert_eq!(features("f//499k954d6OL34oL9FSTvy64sA"), None);
    }

    #[test]
    fn follows_the_server_order_unless_told_otherwise() {
        let both = [0, 2, 0, 0, 0, 1, 0, 0];
        let list = PasswordAlgorithms::from_encoded(&both);
        assert_eq!(choose(list, None), Some(PasswordAlgorithm::Sha256));
        assert_eq!(
            choose(list, Some(PasswordAlgorithm::Md5)),
            Some(PasswordAlgorithm::Md5)
        );
        let md5_only = [0, 1, 0, 0];
        let list = PasswordAlgorithms::from_encoded(&md5_only);
        assert_eq!(
            choose(list, Some(PasswordAlgorithm::Sha256)),
            Some(PasswordAlgorithm::Md5)
        );
        let unknown = [0, 9, 0, 0];
        assert_eq!(
            choose(PasswordAlgorithms::from_encoded(&unknown), None),
            None
        );
    }
}
