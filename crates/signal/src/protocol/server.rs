//! Server → client: [`ServerMessage`], built by the hub and serialized, and
//! its lenient parser for clients ([`parse_server_message`]).

use std::borrow::Cow;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::frame::{Members, bad_message, not_a_message, read_members, truncate, without_position};
use super::{IceServer, LeaveReason, PeerId, PeerInfo, RawData, RelayKind, RoomMode};
use crate::error::{ErrorCode, SignalError};

/// A message from the hub to one client.
///
/// Serializes to its wire form and deserializes from it (from JSON only: it
/// reads through [`RawValue`]) by [`parse_server_message`]'s rules. Unlike
/// [`ClientMessage`](super::ClientMessage), reading is lenient: members it
/// does not know, here and inside `peers`, `peer` and `iceServers`, are
/// ignored, since a later protocol version may add optional fields.
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
        reason: Cow<'static, str>,
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
        /// The ping's `id`, if it had one; read back byte for byte (an
        /// `id` of `null` is `Some`, as sent).
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RawData>,
    },
    /// The answer to `leave`.
    Left,
    /// How the room's media flows now: sent right after `joined` when the
    /// room is in SFU mode, and to every member when the room switches.
    Mode {
        /// `p2p` or `sfu`.
        mode: RoomMode,
    },
    /// An SDP offer or answer from the room's SFU.
    Sfu {
        /// Payload, byte for byte as the SFU gave it.
        data: RawData,
    },
    /// A request was refused; the connection stays open.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// A finer reason for some codes (`unauthorized`: `missing`,
        /// `invalid`, `expired`, `wrong-room`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<Cow<'static, str>>,
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
            reason: err.reason().map(Cow::Borrowed),
        }
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs to a string cannot fail (no maps
        // with non-string keys, no failing Serialize impls).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<RawValue>::deserialize(deserializer)?;
        parse_server_message(text.get()).map_err(de::Error::custom)
    }
}

/// The members each server message type reads (besides `type`).
const JOINED_FIELDS: [&str; 5] = ["v", "room", "you", "peers", "iceServers"];
const PEER_JOINED_FIELDS: [&str; 1] = ["peer"];
const PEER_LEFT_FIELDS: [&str; 2] = ["id", "reason"];
const RECONNECT_FIELDS: [&str; 1] = ["reason"];
const RELAYED_FIELDS: [&str; 2] = ["from", "data"];
const PONG_FIELDS: [&str; 1] = ["id"];
const MODE_FIELDS: [&str; 1] = ["mode"];
const SFU_FIELDS: [&str; 1] = ["data"];
const ERROR_FIELDS: [&str; 3] = ["code", "message", "reason"];

/// Parses one text frame from the server, for a client.
///
/// The frame is read once into its members; relayed `data`, `sfu`'s `data`
/// and `pong`'s `id` are kept as their exact text ([`RawData`], checked only against the
/// JSON grammar). Lenient where the protocol lets a newer server grow:
/// members it does not know are ignored (a later version may add optional
/// fields), here and inside `peers`, `peer` and `iceServers`; of a member
/// given twice the last counts. Optional members (`id`, `reason` of
/// `error`, a peer's `tag`) may be `null` or absent, a peer's `admin`
/// absent. Everything else is checked:
///
/// - not one JSON value: `bad-json`;
/// - not an object with a string `type`, a member missing or of the wrong
///   type, a `peer-left` `reason` other than `left`/`disconnected`, a
///   `mode` other than `p2p`/`sfu`, or an `error` `code` this version does
///   not know: `bad-message`, naming the member;
/// - a `type` this version does not know: `unknown-type` (a newer server's
///   message; a client may skip it).
///
/// No size limit: the transport bounds frames. Never panics.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, SignalError> {
    let members = read_members(text)?;
    let Some(kind) = members.kind() else {
        return Err(not_a_message());
    };
    let kind = kind.0.as_ref();
    if let Some(kind) = RelayKind::from_type(kind) {
        let [from, data] = members.values(&RELAYED_FIELDS);
        return Ok(ServerMessage::relayed(
            kind,
            member(from, "from")?,
            RawData::from(present(data, "data")?),
        ));
    }
    match kind {
        "joined" => parse_joined(&members),
        "peer-joined" => {
            let [peer] = members.values(&PEER_JOINED_FIELDS);
            Ok(ServerMessage::PeerJoined {
                peer: member(peer, "peer")?,
            })
        }
        "peer-left" => {
            let [id, reason] = members.values(&PEER_LEFT_FIELDS);
            Ok(ServerMessage::PeerLeft {
                id: member(id, "id")?,
                reason: member(reason, "reason")?,
            })
        }
        "reconnect" => {
            let [reason] = members.values(&RECONNECT_FIELDS);
            Ok(ServerMessage::Reconnect {
                reason: Cow::Owned(member(reason, "reason")?),
            })
        }
        "pong" => {
            let [id] = members.values(&PONG_FIELDS);
            Ok(ServerMessage::Pong {
                id: id.map(RawData::from),
            })
        }
        "left" => Ok(ServerMessage::Left),
        "mode" => {
            let [mode] = members.values(&MODE_FIELDS);
            Ok(ServerMessage::Mode {
                mode: member(mode, "mode")?,
            })
        }
        "sfu" => {
            let [data] = members.values(&SFU_FIELDS);
            Ok(ServerMessage::Sfu {
                data: RawData::from(present(data, "data")?),
            })
        }
        "error" => {
            let [code, message, reason] = members.values(&ERROR_FIELDS);
            let reason: Option<String> = optional_member(reason, "reason")?;
            Ok(ServerMessage::Error {
                code: member(code, "code")?,
                message: member(message, "message")?,
                reason: reason.map(Cow::Owned),
            })
        }
        other => Err(SignalError::UnknownType(truncate(other, 64))),
    }
}

fn parse_joined(members: &Members<'_>) -> Result<ServerMessage, SignalError> {
    let [v, room, you, peers, ice_servers] = members.values(&JOINED_FIELDS);
    Ok(ServerMessage::Joined {
        v: member(v, "v")?,
        room: member(room, "room")?,
        you: member(you, "you")?,
        peers: member(peers, "peers")?,
        ice_servers: member(ice_servers, "iceServers")?,
    })
}

/// A required member, unparsed.
fn present<'a>(value: Option<&'a RawValue>, name: &str) -> Result<&'a RawValue, SignalError> {
    value.ok_or_else(|| bad_message(&format!("missing field `{name}`")))
}

/// A required member as `T`; a wrong type is `bad-message` naming it.
fn member<'a, T: Deserialize<'a>>(
    value: Option<&'a RawValue>,
    name: &str,
) -> Result<T, SignalError> {
    let value = present(value, name)?;
    serde_json::from_str(value.get())
        .map_err(|e| bad_message(&format!("`{name}`: {}", without_position(&e))))
}

/// An optional member as `T`; `null` is absent.
fn optional_member<'a, T: Deserialize<'a>>(
    value: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<T>, SignalError> {
    match value {
        Some(_) => member::<Option<T>>(value, name),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod wire_tests;
