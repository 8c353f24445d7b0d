//! The signaling wire protocol, version [`PROTOCOL_VERSION`] (see `docs/protocol.md`).
//!
//! Every WebSocket text frame is one JSON object with a `type` field. Client
//! messages are parsed into [`ClientMessage`] — a value that cannot be
//! invalid — and server messages are built as [`ServerMessage`]. Relayed
//! payloads stay the exact JSON text they arrived as ([`RawData`]).

use std::borrow::Cow;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    /// Every kind.
    pub const ALL: [RelayKind; 4] = [
        RelayKind::Offer,
        RelayKind::Answer,
        RelayKind::Candidate,
        RelayKind::Message,
    ];

    /// The `type` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayKind::Offer => "offer",
            RelayKind::Answer => "answer",
            RelayKind::Candidate => "candidate",
            RelayKind::Message => "message",
        }
    }

    /// The kind whose `type` string is `type_`.
    pub fn from_type(type_: &str) -> Option<RelayKind> {
        RelayKind::ALL.into_iter().find(|k| k.as_str() == type_)
    }
}

/// An opaque JSON value relayed byte for byte: the exact text it arrived as
/// (without the whitespace around it), so numbers such as `1.10`,
/// `123456789012345678901234567890` or `1e400`, key order, string escapes
/// and inner whitespace reach the other peer unchanged.
///
/// It is only known to be one well-formed JSON value (RFC 8259's grammar):
/// numbers are not converted, escapes not decoded, nesting not limited.
/// Compares by its text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawData(Box<RawValue>);

impl RawData {
    /// `null`.
    pub fn null() -> Self {
        RawData(RawValue::NULL.to_owned())
    }

    /// `text` if it is one well-formed JSON value; whitespace around it is
    /// dropped, everything inside it kept.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Box<RawValue>>(text).map(RawData)
    }

    /// The JSON text, exactly as received.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// As a [`RawValue`] (e.g. to deserialize it: `serde_json::from_str(raw.get())`).
    pub fn as_raw_value(&self) -> &RawValue {
        &self.0
    }

    /// The boxed [`RawValue`].
    pub fn into_raw_value(self) -> Box<RawValue> {
        self.0
    }
}

impl Default for RawData {
    /// `null`, what a relay without `data` carries.
    fn default() -> Self {
        RawData::null()
    }
}

impl From<Box<RawValue>> for RawData {
    fn from(raw: Box<RawValue>) -> Self {
        RawData(raw)
    }
}

impl From<&RawValue> for RawData {
    fn from(raw: &RawValue) -> Self {
        RawData(raw.to_owned())
    }
}

impl std::str::FromStr for RawData {
    type Err = serde_json::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RawData::from_json(text)
    }
}

impl PartialEq for RawData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for RawData {}

impl std::fmt::Debug for RawData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawData({})", self.get())
    }
}

impl std::fmt::Display for RawData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

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
const JOIN_FIELDS: [&str; 7] = ["type", "v", "room", "name", "password", "token", "session"];
const RELAY_FIELDS: [&str; 3] = ["type", "to", "data"];
const PING_FIELDS: [&str; 2] = ["type", "id"];
const LEAVE_FIELDS: [&str; 1] = ["type"];

/// A member name of a frame: borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of a frame's top-level object in order, duplicates included,
/// their values unparsed: read once, checked against the JSON grammar.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(4);
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

impl<'a> Members<'a> {
    /// The value of the last member named `name`, as a JSON object read
    /// into a map keeps it.
    fn last(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Every member but those named `opaque` must read as a
    /// `serde_json::Value` would read it in the frame: numbers within `f64`,
    /// string escapes forming Unicode text, nesting within its limit. The frame's
    /// opaque payload alone is exempt, so refusals elsewhere stay `bad-json`.
    fn check_json(&self, opaque: Option<&str>) -> Result<(), SignalError> {
        for (key, value) in &self.0 {
            // A string without escapes is text as it is (the grammar is
            // already checked): the common case, `type` and `to`.
            let text = value.get();
            if opaque == Some(key.as_ref()) || (text.starts_with('"') && !text.contains('\\')) {
                continue;
            }
            if let Err(e) = Strict::MEMBER.check(text) {
                return Err(SignalError::BadJson(format!(
                    "{} in `{}`",
                    without_position(&e),
                    truncate(key, 64)
                )));
            }
        }
        Ok(())
    }

    /// The last value of each of `names` (`type` first), refusing any
    /// other member as serde's `deny_unknown_fields` does.
    fn pick<const N: usize>(
        &self,
        names: &'static [&'static str; N],
    ) -> Result<[Option<&'a RawValue>; N], SignalError> {
        let mut values = [None; N];
        for (key, value) in &self.0 {
            match names.iter().position(|n| n == key) {
                Some(i) => {
                    if let Some(slot) = values.get_mut(i) {
                        *slot = Some(*value);
                    }
                }
                None => {
                    let e = <serde_json::Error as de::Error>::unknown_field(key, names);
                    return Err(bad_message(&e.to_string()));
                }
            }
        }
        Ok(values)
    }
}

/// Reads one JSON value as `serde_json::Value` would (the same parser
/// paths and limits) without building it, nesting at most `levels` deep.
#[derive(Clone, Copy)]
struct Strict {
    levels: u8,
}

/// How deep serde_json nests a whole text (its recursion limit).
const JSON_LEVELS: u8 = 127;

impl Strict {
    /// A member of a frame: its object is one level already.
    const MEMBER: Strict = Strict {
        levels: JSON_LEVELS - 1,
    };

    /// One JSON text as `serde_json::Value` reads it.
    fn check(self, text: &str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        de::DeserializeSeed::deserialize(self, &mut de)?;
        de.end()
    }

    /// One level down, or the error serde_json gives past its limit.
    fn inner<E: de::Error>(self) -> Result<Strict, E> {
        match self.levels.checked_sub(1) {
            Some(levels) => Ok(Strict { levels }),
            None => Err(E::custom("recursion limit exceeded")),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// serde_json's message without its " at line L column C": positions
/// inside one member would mislead.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

fn bad_message(message: &str) -> SignalError {
    // serde's message may quote an unknown field name: bound what is echoed.
    SignalError::BadMessage(truncate(message, 200))
}

fn not_a_message() -> SignalError {
    SignalError::BadMessage("expected an object with a string `type`".into())
}

/// A member's value as `T` (a wrong type is `bad-message`).
fn field<'a, T: Deserialize<'a>>(value: &'a RawValue) -> Result<T, SignalError> {
    serde_json::from_str(value.get()).map_err(|e| bad_message(&without_position(&e)))
}

/// A required member as `T`.
fn required<'a, T: Deserialize<'a>>(
    value: Option<&'a RawValue>,
    name: &'static str,
) -> Result<T, SignalError> {
    match value {
        Some(value) => field(value),
        None => Err(bad_message(
            &<serde_json::Error as de::Error>::missing_field(name).to_string(),
        )),
    }
}

/// An optional member as `T`; `null` is absent.
fn optional<'a, T: Deserialize<'a>>(value: Option<&'a RawValue>) -> Result<Option<T>, SignalError> {
    match value {
        Some(value) => field(value),
        None => Ok(None),
    }
}

/// Parses one text frame. `max_bytes` bounds its size.
///
/// The frame is read once into its members without parsing their values;
/// the opaque payload (`data` of a relay, `id` of a `ping`) is kept as its
/// exact text, checked only against the JSON grammar. Everything else is
/// checked as before: the same inputs get the same error codes.
pub fn parse_client_message(text: &str, max_bytes: usize) -> Result<ClientMessage, SignalError> {
    if text.len() > max_bytes {
        return Err(SignalError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    let members: Members<'_> = match serde_json::from_str(text) {
        Ok(members) => members,
        // Not JSON, or JSON but not an object: tell which.
        Err(_) => {
            let whole = Strict {
                levels: JSON_LEVELS,
            };
            return Err(match whole.check(text) {
                Err(e) => SignalError::BadJson(e.to_string()),
                Ok(()) => not_a_message(),
            });
        }
    };
    let kind: Option<Key<'_>> = members
        .last("type")
        .and_then(|t| serde_json::from_str(t.get()).ok());
    let kind = kind.as_ref().map(|k| k.0.as_ref());
    let relay = kind.and_then(RelayKind::from_type);
    let opaque = match kind {
        _ if relay.is_some() => Some("data"),
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
        other => Err(SignalError::UnknownType(truncate(other, 64))),
    }
}

fn parse_join(members: &Members<'_>) -> Result<ClientMessage, SignalError> {
    let [_, v, room, name, password, token, session] = members.pick(&JOIN_FIELDS)?;
    let v: u32 = required(v, "v")?;
    let room: String = required(room, "room")?;
    let name: String = required(name, "name")?;
    let password: Option<String> = optional(password)?;
    let token: Option<String> = optional(token)?;
    let session: Option<String> = optional(session)?;
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
    })
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
        /// Payload, byte for byte as sent.
        data: RawData,
    },
    /// A relayed SDP answer.
    Answer {
        /// Sender.
        from: PeerId,
        /// Payload, byte for byte as sent.
        data: RawData,
    },
    /// A relayed ICE candidate.
    Candidate {
        /// Sender.
        from: PeerId,
        /// Payload, byte for byte as sent.
        data: RawData,
    },
    /// A relayed application message.
    Message {
        /// Sender.
        from: PeerId,
        /// Payload, byte for byte as sent.
        data: RawData,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `id`, if it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RawData>,
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
    pub fn relayed(kind: RelayKind, from: PeerId, data: RawData) -> Self {
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

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod raw_tests;
