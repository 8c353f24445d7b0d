//! Invite tokens: JWTs signed with HS256 and the server's `--join-secret`.
//!
//! Claims: `room` (the room the token admits to), `exp` (Unix seconds; the
//! token is valid while `now < exp`, no leeway — the same server mints and
//! checks them), optional `name` (the peer's display name, which then wins
//! over the one the client sends) and optional `admin` (may enter a room
//! with a password without knowing it; shown to the others as
//! `admin: true`). Other claims (`iat`, `sub`, …) are ignored.
//!
//! Sans-IO: [`verify`] takes the current time as an argument, and
//! jsonwebtoken's own clock-based checks are turned off.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Longest token accepted, in bytes (a token with a 64-character room and
/// name is about 250 bytes).
pub const MAX_TOKEN_LEN: usize = 2048;

/// The claims of an invite token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room this token admits to.
    pub room: String,
    /// Expiry, Unix seconds: valid while the current time is before it.
    pub exp: u64,
    /// Display name; when present it replaces the name the client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// May join a room with a password without knowing it; marked `admin`
    /// in the peer info the others see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was sent.
    #[error("this room needs an invite link (missing token)")]
    Missing,
    /// Not a JWT, not HS256, wrongly signed or with malformed claims.
    #[error("the invite token is invalid")]
    Invalid,
    /// Past its `exp`.
    #[error("the invite token has expired")]
    Expired,
    /// Valid, but for another room.
    #[error("the invite token is for another room (wrong room)")]
    WrongRoom,
}

impl TokenError {
    /// A short machine-readable word for the reason (`missing`, `invalid`,
    /// `expired`, `wrong-room`), also the start of the error message the
    /// app reads.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Invalid => "invalid",
            TokenError::Expired => "expired",
            TokenError::WrongRoom => "wrong-room",
        }
    }
}

/// The join secret. Its `Debug` prints `<redacted>` so that a logged
/// configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Signs `claims` with `secret` (HS256). An empty secret cannot sign (HMAC
/// keys must not be empty): the result is then an empty string, which no
/// verifier accepts.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let Ok(key) = EncodingKey::from_secret(secret) else {
        return String::new();
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap_or_default()
}

/// Checks `token`'s signature and expiry at `now_unix` (Unix seconds) and
/// returns its claims, for any room.
pub fn verify(secret: &[u8], token: &str, now_unix: u64) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Invalid);
    }
    let key = DecodingKey::from_secret(secret).map_err(|_| TokenError::Invalid)?;
    let mut validation = Validation::new(Algorithm::HS256);
    // Sans-IO: `exp` is checked below against the time passed in.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| TokenError::Invalid)?;
    let claims = data.claims;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Like [`verify`], and the token must be for `room`.
pub fn verify_for_room(
    secret: &[u8],
    token: Option<&str>,
    room: &str,
    now_unix: u64,
) -> Result<Claims, TokenError> {
    let claims = verify(secret, token.unwrap_or_default(), now_unix)?;
    if claims.room != room {
        return Err(TokenError::WrongRoom);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str, exp: u64) -> Claims {
        Claims {
            room: room.into(),
            exp,
            name: None,
            admin: false,
        }
    }

    #[test]
    fn mint_then_verify() {
        let c = Claims {
            name: Some("Ann".into()),
            admin: true,
            ..claims("room-1", 1000)
        };
        let t = mint(b"secret", &c);
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(verify(b"secret", &t, 999), Ok(c.clone()));
        assert_eq!(
            verify_for_room(b"secret", Some(&t), "room-1", 0),
            Ok(c.clone())
        );
        assert_eq!(
            verify_for_room(b"secret", Some(&t), "room-2", 0),
            Err(TokenError::WrongRoom)
        );
        // exp is exclusive, no leeway.
        assert_eq!(verify(b"secret", &t, 1000), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &t, 0), Err(TokenError::Invalid));
    }

    #[test]
    fn refuses_missing_malformed_and_tampered() {
        assert_eq!(
            verify_for_room(b"s", None, "r", 0),
            Err(TokenError::Missing)
        );
        assert_eq!(verify(b"s", "", 0), Err(TokenError::Missing));
        for bad in ["x", "a.b.c", "..", "a.b", &"a".repeat(5000)] {
            assert_eq!(verify(b"s", bad, 0), Err(TokenError::Invalid), "{bad}");
        }
        let t = mint(b"s", &claims("r", 100));
        // Change the room in the payload, keep the signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = mint(b"x", &claims("q", 100));
        let other_payload = other.split('.').nth(1).unwrap_or_default().to_owned();
        if let Some(p) = parts.get_mut(1) {
            *p = &other_payload;
        }
        assert_eq!(verify(b"s", &parts.join("."), 0), Err(TokenError::Invalid));
        // alg none is refused.
        let none = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            t.split('.').nth(1).unwrap_or_default()
        );
        assert_eq!(verify(b"s", &none, 0), Err(TokenError::Invalid));
        assert_eq!(mint(b"", &claims("r", 1)), "");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
