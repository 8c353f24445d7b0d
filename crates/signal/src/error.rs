//! The one error type of the signaling hub, and the wire codes it maps to.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::token::TokenError;

/// The `code` of an `error` message (see `docs/protocol.md`).
///
/// Deserializes from the codes of this protocol version only: a code it
/// does not know (from a newer server) is an error, `unknown error code
/// "…"`, not a catch-all variant. So the enum stays `Copy`, indexes
/// [`ErrorCode::ALL`] (the hub's counters) and serializes only real codes;
/// a client that meets such a frame gets `bad-message` from
/// [`parse_server_message`](crate::parse_server_message) naming the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    BadJson,
    /// Valid JSON, but not a well-formed message of its type.
    BadMessage,
    /// The `type` is not one this protocol version knows.
    UnknownType,
    /// The frame is larger than the limit.
    TooLarge,
    /// Binary frames are not part of the protocol.
    BinaryUnsupported,
    /// `join` carried a protocol version this hub does not speak.
    UnsupportedVersion,
    /// The room id is not 1–64 characters of `A-Za-z0-9_-`.
    BadRoom,
    /// The display name is empty, too long or has control characters.
    BadName,
    /// The room has reached its size limit.
    RoomFull,
    /// The room does not exist and the server already has its most rooms open.
    TooManyRooms,
    /// The room has a password and this one does not match.
    BadPassword,
    /// A room message was sent before `join`.
    NotJoined,
    /// `join` was sent twice on one connection.
    AlreadyJoined,
    /// The addressee is not a peer of the sender's room.
    UnknownPeer,
    /// The connection sent messages faster than its rate limit.
    RateLimited,
    /// Token mode: the `join` carried no valid invite token for the room.
    Unauthorized,
    /// The server is draining (shutting down): no new joins.
    Draining,
    /// An `sfu` message from a peer whose room is not in SFU mode, or who
    /// has not joined.
    NotSfu,
    /// Cluster mode: the node cannot reach Redis, so it cannot admit a
    /// join now (rooms already joined go on).
    Unavailable,
}

impl ErrorCode {
    /// Every code, in a fixed order (for counters).
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::BadJson,
        ErrorCode::BadMessage,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::BinaryUnsupported,
        ErrorCode::UnsupportedVersion,
        ErrorCode::BadRoom,
        ErrorCode::BadName,
        ErrorCode::RoomFull,
        ErrorCode::TooManyRooms,
        ErrorCode::BadPassword,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::UnknownPeer,
        ErrorCode::RateLimited,
        ErrorCode::Unauthorized,
        ErrorCode::Draining,
        ErrorCode::NotSfu,
        ErrorCode::Unavailable,
    ];

    /// The code as on the wire (`bad-json`, `room-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad-json",
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::BinaryUnsupported => "binary-unsupported",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::BadRoom => "bad-room",
            ErrorCode::BadName => "bad-name",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::TooManyRooms => "too-many-rooms",
            ErrorCode::BadPassword => "bad-password",
            ErrorCode::NotJoined => "not-joined",
            ErrorCode::AlreadyJoined => "already-joined",
            ErrorCode::UnknownPeer => "unknown-peer",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Draining => "draining",
            ErrorCode::NotSfu => "not-sfu",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The code whose wire spelling is `code` (`bad-json` → [`ErrorCode::BadJson`]).
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The position of this code in [`ErrorCode::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        ErrorCode::from_code(&code).ok_or_else(|| {
            let shown: String = code.chars().take(64).collect();
            de::Error::custom(format_args!("unknown error code {shown:?}"))
        })
    }
}

/// Why the hub refused a client message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// See [`ErrorCode::BadJson`].
    #[error("invalid JSON: {0}")]
    BadJson(String),
    /// See [`ErrorCode::BadMessage`].
    #[error("malformed message: {0}")]
    BadMessage(String),
    /// See [`ErrorCode::UnknownType`].
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// See [`ErrorCode::TooLarge`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the refused frame.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// See [`ErrorCode::BinaryUnsupported`].
    #[error("binary frames are not supported; send JSON text")]
    BinaryUnsupported,
    /// See [`ErrorCode::UnsupportedVersion`].
    #[error("protocol version {0} is not supported (this server speaks 1)")]
    UnsupportedVersion(u32),
    /// See [`ErrorCode::BadRoom`].
    #[error("room ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'")]
    BadRoom,
    /// See [`ErrorCode::BadName`].
    #[error("names are 1-64 characters without control characters")]
    BadName,
    /// See [`ErrorCode::RoomFull`].
    #[error("the room is full ({0} peers)")]
    RoomFull(usize),
    /// See [`ErrorCode::TooManyRooms`]; carries the limit.
    #[error("the server has its most rooms open ({0}); try again later")]
    TooManyRooms(usize),
    /// See [`ErrorCode::BadPassword`].
    #[error("wrong room password")]
    BadPassword,
    /// See [`ErrorCode::NotJoined`].
    #[error("join a room first")]
    NotJoined,
    /// See [`ErrorCode::AlreadyJoined`].
    #[error("already in a room; send leave first")]
    AlreadyJoined,
    /// See [`ErrorCode::UnknownPeer`].
    #[error("no peer {0:?} in this room")]
    UnknownPeer(String),
    /// See [`ErrorCode::RateLimited`].
    #[error("too many messages; slow down (message dropped)")]
    RateLimited,
    /// See [`ErrorCode::Unauthorized`]; carries which check failed.
    #[error("{0}")]
    Unauthorized(TokenError),
    /// See [`ErrorCode::Draining`].
    #[error("the server is restarting; join again in a few seconds")]
    Draining,
    /// See [`ErrorCode::NotSfu`].
    #[error("this room is not in SFU mode")]
    NotSfu,
    /// See [`ErrorCode::Unavailable`].
    #[error("the server cannot reach its cluster; join again in a few seconds")]
    Unavailable,
}

impl SignalError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            SignalError::BadJson(_) => ErrorCode::BadJson,
            SignalError::BadMessage(_) => ErrorCode::BadMessage,
            SignalError::UnknownType(_) => ErrorCode::UnknownType,
            SignalError::TooLarge { .. } => ErrorCode::TooLarge,
            SignalError::BinaryUnsupported => ErrorCode::BinaryUnsupported,
            SignalError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            SignalError::BadRoom => ErrorCode::BadRoom,
            SignalError::BadName => ErrorCode::BadName,
            SignalError::RoomFull(_) => ErrorCode::RoomFull,
            SignalError::TooManyRooms(_) => ErrorCode::TooManyRooms,
            SignalError::BadPassword => ErrorCode::BadPassword,
            SignalError::NotJoined => ErrorCode::NotJoined,
            SignalError::AlreadyJoined => ErrorCode::AlreadyJoined,
            SignalError::UnknownPeer(_) => ErrorCode::UnknownPeer,
            SignalError::RateLimited => ErrorCode::RateLimited,
            SignalError::Unauthorized(_) => ErrorCode::Unauthorized,
            SignalError::Draining => ErrorCode::Draining,
            SignalError::NotSfu => ErrorCode::NotSfu,
            SignalError::Unavailable => ErrorCode::Unavailable,
        }
    }

    /// A finer reason for some codes: for `unauthorized`, which token check
    /// failed (`missing`, `invalid`, `expired`, `wrong-room`).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            SignalError::Unauthorized(e) => Some(e.reason()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_codes_in_order_and_spelled_as_serde_does() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), i);
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: Result<ErrorCode, _> = serde_json::from_str(&json);
            assert_eq!(back.ok(), Some(*code));
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(*code));
        }
    }

    #[test]
    fn unknown_codes_are_a_clear_error() {
        assert_eq!(ErrorCode::from_code("Bad-Json"), None);
        let e = serde_json::from_str::<ErrorCode>("\"kicked\"").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("unknown error code \"kicked\"")
        );
        assert!(serde_json::from_str::<ErrorCode>("5").is_err());
    }
}
