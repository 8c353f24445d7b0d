//! Client → server: [`ClientMessage`] and its strict parser (the hub's side:
//! an unknown field is refused, so a typo is an error).

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::frame::{
    Members, bad_message, not_a_message, optional, read_members, required, truncate,
};
use super::{
    MAX_FEATURE_CHARS, MAX_FEATURES, MAX_NAME_CHARS, MAX_PASSWORD_LEN, MAX_ROOM_LEN,
    MAX_SESSION_LEN, MAX_VIEW_WIDTH, PROTOCOL_VERSION, PeerId, RawData, RelayKind,
};
use crate::error::SignalError;

/// A message from a client, parsed and checked.
///
/// Serializes to its wire form and deserializes (from JSON only: it reads
/// through [`RawValue`]) by [`parse_client_message`]'s rules, without its
/// size limit.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Enter a room. Must be the first message and carry the protocol version.
    Join {
        /// Room id from the page URL.
        room: String,
        /// Display name.
        name: String,
        /// Room password; the first peer in an empty room sets it.
        password: Option<String>,
        /// Invite token (token mode only; ignored otherwise).
        token: Option<String>,
        /// A random id of the client's session, kept across its reconnects.
        session: Option<String>,
        /// The client can take part in SFU rooms (`features` lists `"sfu"`).
        sfu: bool,
    },
    /// Relay `data` to peer `to` of the same room.
    Relay {
        /// What kind of message it is.
        kind: RelayKind,
        /// The addressee.
        to: PeerId,
        /// Opaque payload, relayed byte for byte (`null` when absent).
        data: RawData,
    },
    /// Application-level heartbeat; answered with `pong` carrying the same `id`.
    Ping {
        /// Echoed back byte for byte (`null` counts as absent).
        id: Option<RawData>,
    },
    /// Leave the room; the connection stays open and may join again.
    Leave,
    /// An SDP offer or answer for the room's SFU (SFU mode only).
    Sfu {
        /// Opaque payload (`RTCSessionDescription.toJSON()`), passed on
        /// byte for byte.
        data: RawData,
    },
    /// The client shows `peer`'s video in a tile `width` CSS pixels wide
    /// (0: not shown), so the SFU sends no larger layer than that.
    View {
        /// Whose video.
        peer: PeerId,
        /// The tile's width, 0..=[`MAX_VIEW_WIDTH`].
        width: u32,
    },
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        match self {
            ClientMessage::Join {
                room,
                name,
                password,
                token,
                session,
                sfu,
            } => {
                m.serialize_entry("type", "join")?;
                m.serialize_entry("v", &PROTOCOL_VERSION)?;
                m.serialize_entry("room", room)?;
                m.serialize_entry("name", name)?;
                for (key, value) in [
                    ("password", password),
                    ("token", token),
                    ("session", session),
                ] {
                    if let Some(value) = value {
                        m.serialize_entry(key, value)?;
                    }
                }
                if *sfu {
                    m.serialize_entry("features", &["sfu"])?;
                }
            }
            ClientMessage::Relay { kind, to, data } => {
                m.serialize_entry("type", kind.as_str())?;
                m.serialize_entry("to", to)?;
                m.serialize_entry("data", data)?;
            }
            ClientMessage::Ping { id } => {
                m.serialize_entry("type", "ping")?;
                if let Some(id) = id {
                    m.serialize_entry("id", id)?;
                }
            }
            ClientMessage::Leave => m.serialize_entry("type", "leave")?,
            ClientMessage::Sfu { data } => {
                m.serialize_entry("type", "sfu")?;
                m.serialize_entry("data", data)?;
            }
            ClientMessage::View { peer, width } => {
                m.serialize_entry("type", "view")?;
                m.serialize_entry("peer", peer)?;
                m.serialize_entry("width", width)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<RawValue>::deserialize(deserializer)?;
        parse_client_message(text.get(), usize::MAX).map_err(de::Error::custom)
    }
}

/// The fields of each client message type, `type` first.
const JOIN_FIELDS: [&str; 8] = [
    "type", "v", "room", "name", "password", "token", "session", "features",
];
const RELAY_FIELDS: [&str; 3] = ["type", "to", "data"];
const PING_FIELDS: [&str; 2] = ["type", "id"];
const LEAVE_FIELDS: [&str; 1] = ["type"];
const SFU_FIELDS: [&str; 2] = ["type", "data"];
const VIEW_FIELDS: [&str; 3] = ["type", "peer", "width"];

/// Parses one text frame. `max_bytes` bounds its size.
///
/// The frame is read once into its members without parsing their values;
/// the opaque payload (`data` of a relay or of `sfu`, `id` of a `ping`) is
/// kept as its exact text, checked only against the JSON grammar.
/// Everything else is checked as before: the same inputs get the same
/// error codes.
pub fn parse_client_message(text: &str, max_bytes: usize) -> Result<ClientMessage, SignalError> {
    if text.len() > max_bytes {
        return Err(SignalError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    let members = read_members(text)?;
    let kind = members.kind();
    let kind = kind.as_ref().map(|k| k.0.as_ref());
    let relay = kind.and_then(RelayKind::from_type);
    let opaque = match kind {
        _ if relay.is_some() => Some("data"),
        Some("sfu") => Some("data"),
        Some("ping") => Some("id"),
        _ => None,
    };
    members.check_json(opaque)?;
    let Some(kind) = kind else {
        return Err(not_a_message());
    };
    if let Some(kind) = relay {
        let [_, to, data] = members.pick(&RELAY_FIELDS)?;
        return Ok(ClientMessage::Relay {
            kind,
            to: PeerId(required(to, "to")?),
            data: data.map_or_else(RawData::null, RawData::from),
        });
    }
    match kind {
        "join" => parse_join(&members),
        "ping" => {
            let [_, id] = members.pick(&PING_FIELDS)?;
            Ok(ClientMessage::Ping {
                id: id.filter(|id| id.get() != "null").map(RawData::from),
            })
        }
        "leave" => {
            let [_] = members.pick(&LEAVE_FIELDS)?;
            Ok(ClientMessage::Leave)
        }
        "sfu" => {
            let [_, data] = members.pick(&SFU_FIELDS)?;
            let data = data.ok_or_else(|| bad_message("missing field `data`"))?;
            Ok(ClientMessage::Sfu {
                data: RawData::from(data),
            })
        }
        "view" => {
            let [_, peer, width] = members.pick(&VIEW_FIELDS)?;
            let peer = PeerId(required(peer, "peer")?);
            let width: u32 = required(width, "width")?;
            if width > MAX_VIEW_WIDTH {
                return Err(SignalError::BadMessage(format!(
                    "width: 0-{MAX_VIEW_WIDTH} CSS pixels"
                )));
            }
            Ok(ClientMessage::View { peer, width })
        }
        other => Err(SignalError::UnknownType(truncate(other, 64))),
    }
}

fn parse_join(members: &Members<'_>) -> Result<ClientMessage, SignalError> {
    let [_, v, room, name, password, token, session, features] = members.pick(&JOIN_FIELDS)?;
    let v: u32 = required(v, "v")?;
    let room: String = required(room, "room")?;
    let name: String = required(name, "name")?;
    let password: Option<String> = optional(password)?;
    let token: Option<String> = optional(token)?;
    let session: Option<String> = optional(session)?;
    let features: Option<Vec<String>> = optional(features)?;
    if v != PROTOCOL_VERSION {
        return Err(SignalError::UnsupportedVersion(v));
    }
    Ok(ClientMessage::Join {
        room: check_room(&room)?,
        name: check_name(&name)?,
        password: match password {
            Some(p) if p.len() > MAX_PASSWORD_LEN => {
                return Err(SignalError::BadMessage("password too long".into()));
            }
            Some(p) if p.is_empty() => None,
            p => p,
        },
        token: token.filter(|t| !t.is_empty()),
        session: match session {
            Some(s) if s.is_empty() => None,
            Some(s) => Some(check_session(&s)?),
            None => None,
        },
        sfu: check_features(features.as_deref().unwrap_or_default())?,
    })
}

/// A `join`'s `features`: at most 16 strings of at most 32 characters.
/// Entries this version does not know are ignored (a newer client may list
/// more); whether `"sfu"` is among them is returned.
fn check_features(features: &[String]) -> Result<bool, SignalError> {
    if features.len() > MAX_FEATURES
        || features
            .iter()
            .any(|f| f.chars().count() > MAX_FEATURE_CHARS)
    {
        return Err(SignalError::BadMessage(format!(
            "features: at most {MAX_FEATURES} strings of at most {MAX_FEATURE_CHARS} characters"
        )));
    }
    Ok(features.iter().any(|f| f == "sfu"))
}

/// A room id: 1–64 bytes of `A-Z a-z 0-9 _ -`.
pub fn check_room(room: &str) -> Result<String, SignalError> {
    let ok = !room.is_empty()
        && room.len() <= MAX_ROOM_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(room.to_owned())
    } else {
        Err(SignalError::BadRoom)
    }
}

/// A display name: trimmed, 1–64 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, SignalError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(SignalError::BadName);
    }
    Ok(name.to_owned())
}

/// A client session id: 1–64 bytes of `A-Z a-z 0-9 _ -`.
fn check_session(session: &str) -> Result<String, SignalError> {
    let ok = session.len() <= MAX_SESSION_LEN
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(session.to_owned())
    } else {
        Err(SignalError::BadMessage(
            "session: 1-64 characters of A-Z, a-z, 0-9, '-' and '_'".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_join_and_relays() {
        let m = parse_client_message(
            r#"{"type":"join","v":1,"room":"abc-1","name":" Ann ","password":""}"#,
            1024,
        );
        assert_eq!(
            m.ok(),
            Some(ClientMessage::Join {
                room: "abc-1".into(),
                name: "Ann".into(),
                password: None,
                token: None,
                session: None,
                sfu: false,
            })
        );
        let m = parse_client_message(r#"{"type":"candidate","to":"p2","data":null}"#, 1024);
        assert_eq!(
            m.ok(),
            Some(ClientMessage::Relay {
                kind: RelayKind::Candidate,
                to: PeerId("p2".into()),
                data: RawData::null()
            })
        );
    }

    #[test]
    fn refuses_bad_input_with_codes() {
        let code = |t: &str| parse_client_message(t, 64).err().map(|e| e.code());
        assert_eq!(code("{"), Some(ErrorCode::BadJson));
        assert_eq!(code("[1]"), Some(ErrorCode::BadMessage));
        assert_eq!(code(r#"{"type":"nope"}"#), Some(ErrorCode::UnknownType));
        assert_eq!(code(r#"{"type":"offer"}"#), Some(ErrorCode::BadMessage));
        assert_eq!(
            code(r#"{"type":"join","v":2,"room":"a","name":"b"}"#),
            Some(ErrorCode::UnsupportedVersion)
        );
        assert_eq!(
            code(r#"{"type":"join","v":1,"room":"a/b","name":"b"}"#),
            Some(ErrorCode::BadRoom)
        );
        assert_eq!(
            code(r#"{"type":"join","v":1,"room":"a","name":"\u0007"}"#),
            Some(ErrorCode::BadName)
        );
        assert_eq!(code(&"x".repeat(65)), Some(ErrorCode::TooLarge));
        let long_field = format!(r#"{{"type":"leave","{}":1}}"#, "f".repeat(5000));
        match parse_client_message(&long_field, 10_000) {
            Err(SignalError::BadMessage(m)) => assert!(m.chars().count() <= 200, "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod raw_tests;

#[cfg(test)]
#[path = "client_sfu_tests.rs"]
mod sfu_tests;
