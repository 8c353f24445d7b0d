//! The signaling wire protocol, version [`PROTOCOL_VERSION`] (see `docs/protocol.md`).
//!
//! Every WebSocket text frame is one JSON object with a `type` field. Client
//! messages are parsed into [`ClientMessage`] — a value that cannot be
//! invalid — and server messages are built as [`ServerMessage`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, SignalError};

/// The protocol version this hub speaks; a `join` must carry it as `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest room id, in bytes.
pub const MAX_ROOM_LEN: usize = 64;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest room password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Longest client session id, in bytes.
pub const MAX_SESSION_LEN: usize = 64;

/// A peer id assigned by the hub, unique within this hub's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub String);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A peer as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The hub-assigned id.
    pub id: PeerId,
    /// The display name the peer joined with (or its token's `name`).
    pub name: String,
    /// Joined with an invite token carrying `admin: true` (omitted when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// A tag derived from the `session` the peer sent in `join` (absent if
    /// it sent none): the same browser session has the same tag across
    /// reconnects, so the others can keep their call with it. The session
    /// itself is never shown to others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl PeerInfo {
    /// A peer without admin flag or session tag.
    pub fn new(id: PeerId, name: impl Into<String>) -> Self {
        PeerInfo {
            id,
            name: name.into(),
            admin: false,
            tag: None,
        }
    }
}

/// Why a peer left its room, as told to the others in `peer-left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// It sent `leave` (the user left the call).
    Left,
    /// Its connection closed or timed out; it may come back with the same
    /// session tag, and its calls may still be up.
    Disconnected,
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (absent for STUN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password (absent for STUN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A TURN credential of one connection (coturn's REST scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `EXPIRY:ID`.
    pub username: Box<str>,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: Box<str>,
}

/// An entry of a shared ICE server list: its URLs, and whether it takes
/// the connection's TURN credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedIceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// `turn:`/`turns:`: give it the connection's credential.
    pub takes_credential: bool,
}

/// The ICE servers of one connection, kept until it joins: a list shared
/// by every connection that reached the server under the same host name,
/// and the connection's own TURN credential. [`IceServers::to_list`] makes
/// the `iceServers` of `joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    shared: Option<std::sync::Arc<[SharedIceServer]>>,
    credential: Option<TurnCredential>,
}

impl IceServers {
    /// `shared` with `credential` for its TURN entries.
    pub fn new(
        shared: std::sync::Arc<[SharedIceServer]>,
        credential: Option<TurnCredential>,
    ) -> Self {
        IceServers {
            shared: Some(shared),
            credential,
        }
    }

    /// The list as sent in `joined`.
    pub fn to_list(&self) -> Vec<IceServer> {
        let Some(shared) = &self.shared else {
            return Vec::new();
        };
        shared
            .iter()
            .map(|s| {
                let cred = self.credential.as_ref().filter(|_| s.takes_credential);
                IceServer {
                    urls: s.urls.clone(),
                    username: cred.map(|c| c.username.to_string()),
                    credential: cred.map(|c| c.password.to_string()),
                }
            })
            .collect()
    }
}

impl From<Vec<IceServer>> for IceServers {
    /// A list of its own (tests): entries with a username keep theirs.
    fn from(list: Vec<IceServer>) -> Self {
        let credential = list.iter().find_map(|s| {
            Some(TurnCredential {
                username: s.username.as_deref()?.into(),
                password: s.credential.as_deref()?.into(),
            })
        });
        let shared: Vec<SharedIceServer> = list
            .into_iter()
            .map(|s| SharedIceServer {
                takes_credential: s.username.is_some(),
                urls: s.urls,
            })
            .collect();
        IceServers::new(shared.into(), credential)
    }
}

/// The kinds of message relayed verbatim to one named peer of the same room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
    /// A trickled ICE candidate (or `null` for end-of-candidates).
    Candidate,
    /// An application message.
    Message,
}

impl RelayKind {
    /// The `type` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayKind::Offer => "offer",
            RelayKind::Answer => "answer",
            RelayKind::Candidate => "candidate",
            RelayKind::Message => "message",
        }
    }
}

/// A message from a client, parsed and checked.
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
    },
    /// Relay `data` to peer `to` of the same room.
    Relay {
        /// What kind of message it is.
        kind: RelayKind,
        /// The addressee.
        to: PeerId,
        /// Opaque payload, relayed as is.
        data: Value,
    },
    /// Application-level heartbeat; answered with `pong` carrying the same `id`.
    Ping {
        /// Echoed back.
        id: Option<Value>,
    },
    /// Leave the room; the connection stays open and may join again.
    Leave,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinFields {
    #[serde(rename = "type")]
    _type: String,
    v: u32,
    room: String,
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    session: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFields {
    #[serde(rename = "type")]
    _type: String,
    to: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingFields {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveFields {
    #[serde(rename = "type")]
    _type: String,
}

fn fields<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, SignalError> {
    // serde's message may quote an unknown field name: bound what is echoed.
    serde_json::from_value(value)
        .map_err(|e| SignalError::BadMessage(truncate(&e.to_string(), 200)))
}

/// Parses one text frame. `max_bytes` bounds its size.
pub fn parse_client_message(text: &str, max_bytes: usize) -> Result<ClientMessage, SignalError> {
    if text.len() > max_bytes {
        return Err(SignalError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| SignalError::BadJson(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(SignalError::BadMessage(
            "expected an object with a string `type`".into(),
        ));
    };
    let relay = |kind: RelayKind, value: Value| -> Result<ClientMessage, SignalError> {
        let f: RelayFields = fields(value)?;
        Ok(ClientMessage::Relay {
            kind,
            to: PeerId(f.to),
            data: f.data,
        })
    };
    match kind {
        "join" => {
            let f: JoinFields = fields(value)?;
            if f.v != PROTOCOL_VERSION {
                return Err(SignalError::UnsupportedVersion(f.v));
            }
            Ok(ClientMessage::Join {
                room: check_room(&f.room)?,
                name: check_name(&f.name)?,
                password: match f.password {
                    Some(p) if p.len() > MAX_PASSWORD_LEN => {
                        return Err(SignalError::BadMessage("password too long".into()));
                    }
                    Some(p) if p.is_empty() => None,
                    p => p,
                },
                token: f.token.filter(|t| !t.is_empty()),
                session: match f.session {
                    Some(s) if s.is_empty() => None,
                    Some(s) => Some(check_session(&s)?),
                    None => None,
                },
            })
        }
        "offer" => relay(RelayKind::Offer, value),
        "answer" => relay(RelayKind::Answer, value),
        "candidate" => relay(RelayKind::Candidate, value),
        "message" => relay(RelayKind::Message, value),
        "ping" => {
            let f: PingFields = fields(value)?;
            Ok(ClientMessage::Ping { id: f.id })
        }
        "leave" => {
            let _: LeaveFields = fields(value)?;
            Ok(ClientMessage::Leave)
        }
        other => Err(SignalError::UnknownType(truncate(other, 64))),
    }
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

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// A message from the hub to one client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// The answer to `join`.
    Joined {
        /// Protocol version.
        v: u32,
        /// The room joined.
        room: String,
        /// This connection's peer id.
        you: PeerId,
        /// The peers already in the room, in join order.
        peers: Vec<PeerInfo>,
        /// `RTCConfiguration.iceServers` to use.
        ice_servers: Vec<IceServer>,
    },
    /// Another peer entered the room.
    PeerJoined {
        /// Who.
        peer: PeerInfo,
    },
    /// A peer left the room (leave, close, or heartbeat timeout).
    PeerLeft {
        /// Who.
        id: PeerId,
        /// `left` (it sent `leave`) or `disconnected`.
        reason: LeaveReason,
    },
    /// The server is draining: connect again (and rejoin) soon. Everything
    /// else keeps working on this connection until the server goes.
    Reconnect {
        /// Why (today always `draining`).
        reason: &'static str,
    },
    /// A relayed SDP offer.
    Offer {
        /// Sender.
        from: PeerId,
        /// Payload as sent.
        data: Value,
    },
    /// A relayed SDP answer.
    Answer {
        /// Sender.
        from: PeerId,
        /// Payload as sent.
        data: Value,
    },
    /// A relayed ICE candidate.
    Candidate {
        /// Sender.
        from: PeerId,
        /// Payload as sent.
        data: Value,
    },
    /// A relayed application message.
    Message {
        /// Sender.
        from: PeerId,
        /// Payload as sent.
        data: Value,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `id`, if it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// The answer to `leave`.
    Left,
    /// A request was refused; the connection stays open.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// A finer reason for some codes (`unauthorized`: `missing`,
        /// `invalid`, `expired`, `wrong-room`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
}

impl ServerMessage {
    /// Wraps relayed data in the message of its kind.
    pub fn relayed(kind: RelayKind, from: PeerId, data: Value) -> Self {
        match kind {
            RelayKind::Offer => ServerMessage::Offer { from, data },
            RelayKind::Answer => ServerMessage::Answer { from, data },
            RelayKind::Candidate => ServerMessage::Candidate { from, data },
            RelayKind::Message => ServerMessage::Message { from, data },
        }
    }

    /// The error message for `err`.
    pub fn error(err: &SignalError) -> Self {
        ServerMessage::Error {
            code: err.code(),
            message: err.to_string(),
            reason: err.reason(),
        }
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs to a string cannot fail (no maps
        // with non-string keys, no failing Serialize impls).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            })
        );
        let m = parse_client_message(r#"{"type":"candidate","to":"p2","data":null}"#, 1024);
        assert_eq!(
            m.ok(),
            Some(ClientMessage::Relay {
                kind: RelayKind::Candidate,
                to: PeerId("p2".into()),
                data: Value::Null
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

    #[test]
    fn serializes_camel_case() {
        let m = ServerMessage::Joined {
            v: 1,
            room: "r".into(),
            you: PeerId("p1".into()),
            peers: vec![],
            ice_servers: vec![IceServer {
                urls: vec!["stun:1.2.3.4:3478".into()],
                username: None,
                credential: None,
            }],
        };
        assert_eq!(
            m.to_json(),
            r#"{"type":"joined","v":1,"room":"r","you":"p1","peers":[],"iceServers":[{"urls":["stun:1.2.3.4:3478"]}]}"#
        );
        let e = ServerMessage::error(&SignalError::RoomFull(8)).to_json();
        assert!(
            e.starts_with(r#"{"type":"error","code":"room-full","#),
            "{e}"
        );
    }

    #[test]
    fn ice_servers_share_urls_and_keep_their_own_credential() {
        let list = vec![
            IceServer {
                urls: vec!["stun:h:3478".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:h:3478?transport=udp".into()],
                username: Some("1:a".into()),
                credential: Some("pw".into()),
            },
        ];
        let ice = IceServers::from(list.clone());
        assert_eq!(ice.to_list(), list);
        assert_eq!(IceServers::default().to_list(), vec![]);
        // Serialized as RTCIceServer objects, STUN without credential fields.
        let json = serde_json::to_string(&ice.to_list()).unwrap_or_default();
        assert_eq!(
            json,
            r#"[{"urls":["stun:h:3478"]},{"urls":["turn:h:3478?transport=udp"],"username":"1:a","credential":"pw"}]"#
        );
    }
}
