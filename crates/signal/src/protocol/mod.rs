//! The signaling wire protocol, version [`PROTOCOL_VERSION`] (see `docs/protocol.md`).
//!
//! Every WebSocket text frame is one JSON object with a `type` field. Client
//! messages are parsed into [`ClientMessage`] — a value that cannot be
//! invalid — and server messages are built as [`ServerMessage`]. Both
//! serialize to their wire form and parse from it, so a native client uses
//! the hub's own types. Relayed payloads stay the exact JSON text they
//! arrived as ([`RawData`]).
//!
//! - `client`: [`ClientMessage`], read strictly by [`parse_client_message`]
//!   (its SFU additions tested in `client_sfu_tests.rs`);
//! - `server`: [`ServerMessage`], read leniently by [`parse_server_message`];
//! - `ice`: the `iceServers` of `joined`;
//! - `node`: [`NodeMessage`], what cluster nodes tell each other;
//! - `frame`: reading a frame once into its members (shared by both parsers).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

mod client;
mod frame;
mod ice;
mod node;
mod server;

pub use client::{ClientMessage, check_name, check_room, parse_client_message};
pub use ice::{IceServer, IceServers, SharedIceServer, TurnCredential};
pub use node::{
    MAX_NODE_ID_LEN, Member, NodeId, NodeMessage, NodeMessageError, SfuRequest, parse_node_message,
};
pub use server::{ServerMessage, parse_server_message};

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
/// Most entries in a `join`'s `features`.
pub const MAX_FEATURES: usize = 16;
/// Longest entry of a `join`'s `features`, in characters.
pub const MAX_FEATURE_CHARS: usize = 32;
/// Widest tile a `view` may name, in CSS pixels (a 16K screen).
pub const MAX_VIEW_WIDTH: u32 = 16_384;

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
///
/// Deserializes leniently, as the rest of a server message: `admin` may be
/// absent (false), `tag` absent or `null`, and members it does not know are
/// ignored (a later protocol version may add optional fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The hub-assigned id.
    pub id: PeerId,
    /// The display name the peer joined with (or its token's `name`).
    pub name: String,
    /// Joined with an invite token carrying `admin: true` (omitted when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// A tag derived from the `session` the peer sent in `join` (absent if
    /// it sent none): the same browser session has the same tag across
    /// reconnects, so the others can keep their call with it. The session
    /// itself is never shown to others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
///
/// Deserializes from `left` or `disconnected` only: another word is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// It sent `leave` (the user left the call).
    Left,
    /// Its connection closed or timed out; it may come back with the same
    /// session tag, and its calls may still be up.
    Disconnected,
}

/// How a room's media flows, as told in `mode`.
///
/// Deserializes from `p2p` or `sfu` only: another word is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomMode {
    /// Peer to peer: every member calls every other (a full mesh). A room
    /// starts so, and a client that got no `mode` is in it.
    #[default]
    P2p,
    /// Through the server's selective forwarding unit: each member has one
    /// connection, to the SFU, and exchanges its SDP with it via `sfu`.
    Sfu,
}

impl RoomMode {
    /// The `mode` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomMode::P2p => "p2p",
            RoomMode::Sfu => "sfu",
        }
    }
}

/// The kinds of message relayed verbatim to one named peer of the same room.
/// (Serialized as its `type` string, between nodes.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
