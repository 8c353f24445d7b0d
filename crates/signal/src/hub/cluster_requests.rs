//! What the hub asks of the cluster and what the cluster answers
//! ([`super::cluster`] uses them; the driver runs them against Redis).

use std::sync::Arc;
use std::time::Duration;

use super::ConnId;
use crate::error::SignalError;
use crate::protocol::{LeaveReason, Member, NodeId, NodeMessage, PeerId, PeerInfo};

/// How long after Redis came back a room snapshot may be missing members
/// only because their nodes have not put them back yet.
pub const RESYNC_GRACE: Duration = Duration::from_secs(5);

/// What the driver does with the cluster for the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterOutput {
    /// Run the admission script for `ticket`; answer with
    /// [`Hub::handle_admission`].
    Admit {
        /// Echoed back with the answer.
        ticket: JoinTicket,
        /// The joiner as the room's hash keeps it.
        member: Member,
        /// The password it joined with, hashed ([`password_hash`]); the
        /// first joiner's becomes the room's.
        password: Option<String>,
        /// Joined with an admin token: no password needed.
        admin: bool,
        /// The limits to enforce.
        limits: RoomLimits,
    },
    /// Run the leave script for `peer`, then publish [`NodeMessage::Left`]
    /// with the version it returns to the room's other nodes.
    Leave {
        /// The room.
        room: Arc<str>,
        /// Who left.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Publish `message` on `node`'s channel.
    Publish {
        /// The receiving node.
        node: NodeId,
        /// What to tell it.
        message: NodeMessage,
    },
    /// Put this node's `members` back into `room` (Redis lost them, or
    /// declared this node gone); answer with [`Hub::handle_room_snapshot`]
    /// (not authoritative).
    Register {
        /// The room.
        room: Arc<str>,
        /// The room's password hash, if it has one.
        password: Option<String>,
        /// This node's members of it.
        members: Vec<Member>,
    },
    /// Read `room`'s members; answer with [`Hub::handle_room_snapshot`]
    /// (authoritative).
    Snapshot {
        /// The room.
        room: Arc<str>,
    },
}

/// A join waiting for the cluster's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTicket {
    /// The joining connection.
    pub conn: ConnId,
    /// The room.
    pub room: Arc<str>,
    /// The peer id the joiner gets.
    pub peer: PeerId,
}

/// The limits the admission script enforces across the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Most members of a room.
    pub room_size: usize,
    /// Most members of a room whose members all declared `sfu` (0: no
    /// such exception).
    pub sfu_room_size: usize,
    /// Most rooms open in the cluster.
    pub max_rooms: usize,
}

/// The admission script's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// In: the room's members after the join (the joiner too) at `version`.
    Admitted {
        /// The room's version after the join.
        version: u64,
        /// Everyone in the room.
        members: Vec<Member>,
    },
    /// Out, for this reason (`room-full`, `bad-password`,
    /// `too-many-rooms`, or the cluster unreachable).
    Refused(SignalError),
}

/// A join in flight, on its connection.
#[derive(Debug)]
pub(super) struct PendingJoin {
    pub(super) room: Arc<str>,
    pub(super) peer: PeerInfo,
    pub(super) sfu: bool,
    pub(super) password: Option<String>,
}

/// A room's cluster side: its members elsewhere, and what waits for an
/// admission answer.
#[derive(Debug, Default)]
pub(super) struct RoomCluster {
    pub(super) remote: Vec<Member>,
    /// The version of the last snapshot applied.
    pub(super) version: u64,
    /// Admissions out for this room.
    pub(super) admitting: u32,
    /// Events that arrived while an admission was out, with their version.
    pub(super) early: Vec<NodeMessage>,
}

impl RoomCluster {
    /// Whether an admission for the room is out.
    pub(super) fn admitting(&self) -> bool {
        self.admitting > 0
    }
}

/// The key of a room password in the cluster: HMAC-SHA256 of the room and
/// the password under a fixed key, so Redis never holds the password.
pub fn password_hash(room: &str, password: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(b"switchboard room password v1");
    let message = format!("{room}\u{0}{password}");
    key.ok()
        .and_then(|k| {
            jsonwebtoken::crypto::sign(message.as_bytes(), &k, jsonwebtoken::Algorithm::HS256).ok()
        })
        .unwrap_or_default()
}
