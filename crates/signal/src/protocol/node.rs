//! What the nodes of a cluster tell each other (`--redis`; see
//! `docs/cluster.md`): one JSON object per Redis pub/sub message, published
//! on the receiving node's channel.
//!
//! A room's members live in Redis (a hash per room, changed only by the
//! admission and leave scripts, which also bump the room's version); a node
//! that admits or removes a member tells the other nodes of that room with
//! [`NodeMessage::Joined`] or [`NodeMessage::Left`], carrying the version
//! the script returned, so that a node still waiting for its own admission
//! can tell which events its snapshot already holds. What one peer relays
//! to a peer on another node travels as [`NodeMessage::Relay`]. A room in
//! SFU mode has its session on one node (see `hub::sfu_rooms`); members on
//! other nodes reach it with [`NodeMessage::ToSfu`], and its SDP comes back
//! as [`NodeMessage::FromSfu`].
//!
//! Read strictly ([`parse_node_message`]): a message that is not exactly one
//! of these is dropped by the receiving node and counted, never half-applied.

use serde::{Deserialize, Serialize};

use super::{LeaveReason, PeerId, PeerInfo, RawData, RelayKind};

/// Longest node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 32;

/// A node of the cluster, named at start (`--node-id`, or random). Its
/// peers' ids start with it (`<node>-p<n>`), so ids stay unique across the
/// cluster. Letters, digits and `_` only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// `id` if it is 1 to [`MAX_NODE_ID_LEN`] ASCII letters, digits or `_`.
    pub fn new(id: &str) -> Option<NodeId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_NODE_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| NodeId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `peer` was named by this node.
    pub fn named(&self, peer: &PeerId) -> bool {
        peer.0
            .strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.starts_with("-p"))
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::new(&s).ok_or_else(|| serde::de::Error::custom("not a node id"))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room member as the cluster knows it: the peer, the node its
/// WebSocket is on, and whether it declared the `sfu` feature. Also the
/// value of its field in the room's Redis hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The peer as the others see it.
    pub peer: PeerInfo,
    /// Its node.
    pub node: NodeId,
    /// It declared the `sfu` feature.
    #[serde(default)]
    pub sfu: bool,
}

/// One message from a node to another: `{"<kind>": {…}}` (externally
/// tagged, so that a relayed payload is read once, as raw text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum NodeMessage {
    /// `member` joined `room` on the sending node; `version` is the room's
    /// version after the join.
    Joined {
        /// The room.
        room: String,
        /// The room's version after the join.
        version: u64,
        /// Who joined.
        member: Member,
    },
    /// `peer` left `room`; `version` is the room's version after it.
    Left {
        /// The room.
        room: String,
        /// The room's version after the leave.
        version: u64,
        /// Who left.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// An offer, answer, candidate or message from `from` to `to`, a peer
    /// of the receiving node in `room`.
    Relay {
        /// The room both are in.
        room: String,
        /// The sender.
        from: PeerId,
        /// The receiver, on the receiving node.
        to: PeerId,
        /// What it is.
        kind: RelayKind,
        /// The payload, as the sender wrote it.
        data: RawData,
    },
    /// `node` stopped refreshing its liveness key: its peers are gone.
    NodeGone {
        /// The node.
        node: NodeId,
    },
    /// To the node running `room`'s SFU session: what `peer`, a member on
    /// the sending node, does in it.
    ToSfu {
        /// The room.
        room: String,
        /// The member.
        peer: PeerId,
        /// What it does.
        request: SfuRequest,
    },
    /// From the node running the SFU session: SDP of its SFU for `peer`, a
    /// member on the receiving node (sent to it as `sfu`).
    FromSfu {
        /// The member.
        peer: PeerId,
        /// `{"type": "offer"|"answer", "sdp": …}`.
        data: RawData,
    },
}

/// What a member on another node does in an SFU session
/// ([`NodeMessage::ToSfu`]); the hub's `SfuCommand`s, named by peer id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SfuRequest {
    /// It takes part; its offer follows.
    Join,
    /// Its SDP, as it sent it.
    Signal {
        /// `{"type": "offer"|"answer", "sdp": …}`.
        data: RawData,
    },
    /// It shows `of`'s video `width` CSS pixels wide (0: not shown).
    View {
        /// The publisher.
        of: PeerId,
        /// Tile width.
        width: u32,
    },
    /// It is out of the session.
    Leave,
}

impl NodeMessage {
    /// The message as the JSON text published.
    pub fn to_json(&self) -> String {
        // A derived Serialize of strings, numbers and raw JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a node message was dropped.
#[derive(Debug, thiserror::Error)]
#[error("bad node message: {0}")]
pub struct NodeMessageError(#[from] serde_json::Error);

/// Reads one node message.
pub fn parse_node_message(text: &str) -> Result<NodeMessage, NodeMessageError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_short_words_and_name_their_peers() {
        assert!(NodeId::new("").is_none());
        assert!(NodeId::new("a-b").is_none());
        assert!(NodeId::new(&"x".repeat(33)).is_none());
        let n = NodeId::new("n1").unwrap();
        assert!(n.named(&PeerId("n1-p4".into())));
        assert!(!n.named(&PeerId("n12-p4".into())));
        assert!(!n.named(&PeerId("p4".into())));
    }

    #[test]
    fn messages_round_trip_and_strangers_are_refused() {
        let member = Member {
            peer: PeerInfo::new(PeerId("n1-p1".into()), "Ann"),
            node: NodeId::new("n1").unwrap(),
            sfu: true,
        };
        let messages = [
            NodeMessage::Joined {
                room: "r".into(),
                version: 3,
                member,
            },
            NodeMessage::Left {
                room: "r".into(),
                version: 4,
                peer: PeerId("n1-p1".into()),
                reason: LeaveReason::Disconnected,
            },
            NodeMessage::Relay {
                room: "r".into(),
                from: PeerId("n1-p1".into()),
                to: PeerId("n2-p1".into()),
                kind: RelayKind::Candidate,
                data: RawData::from_json(r#"{"candidate":"x","n":1.10}"#).unwrap(),
            },
            NodeMessage::NodeGone {
                node: NodeId::new("n3").unwrap(),
            },
            NodeMessage::ToSfu {
                room: "r".into(),
                peer: PeerId("n1-p1".into()),
                request: SfuRequest::Join,
            },
            NodeMessage::ToSfu {
                room: "r".into(),
                peer: PeerId("n1-p1".into()),
                request: SfuRequest::Signal {
                    data: RawData::from_json(r#"{"type":"offer","sdp":"v=0"}"#).unwrap(),
                },
            },
            NodeMessage::ToSfu {
                room: "r".into(),
                peer: PeerId("n1-p1".into()),
                request: SfuRequest::View {
                    of: PeerId("n2-p1".into()),
                    width: 320,
                },
            },
            NodeMessage::ToSfu {
                room: "r".into(),
                peer: PeerId("n1-p1".into()),
                request: SfuRequest::Leave,
            },
            NodeMessage::FromSfu {
                peer: PeerId("n1-p1".into()),
                data: RawData::from_json(r#"{"type":"answer","sdp":"v=0"}"#).unwrap(),
            },
        ];
        for m in messages {
            let text = m.to_json();
            assert_eq!(parse_node_message(&text).unwrap(), m, "{text}");
        }
        assert!(text_has(
            &NodeMessage::Relay {
                room: "r".into(),
                from: PeerId("a-p1".into()),
                to: PeerId("b-p1".into()),
                kind: RelayKind::Offer,
                data: RawData::from_json("1.10").unwrap(),
            },
            r#""data":1.10"#
        ));
        for bad in [
            "",
            "{}",
            r#"{"node-gone":{"node":"a-b"}}"#,
            r#"{"node-gone":{"node":"a","x":1}}"#,
            r#"{"node-gone":{"node":"a"},"left":{}}"#,
            r#"{"left":{"room":"r","version":-1,"peer":"p","reason":"left"}}"#,
            r#"{"relay":{"room":"r","from":"a","to":"b","kind":"shout","data":1}}"#,
            r#"{"to-sfu":{"room":"r","peer":"a-p1","request":"dance"}}"#,
            r#"{"to-sfu":{"room":"r","peer":"a-p1","request":{"view":{"of":"b-p1","width":-1}}}}"#,
        ] {
            assert!(parse_node_message(bad).is_err(), "{bad}");
        }
    }

    fn text_has(m: &NodeMessage, part: &str) -> bool {
        m.to_json().contains(part)
    }
}
