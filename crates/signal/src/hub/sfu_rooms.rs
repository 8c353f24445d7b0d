//! Which rooms use the SFU, and the hub's side of their signaling.
//!
//! A room's mode follows from its members alone, recomputed after every
//! join and leave: with [`SfuPolicy::Auto`] a room of three or more whose
//! members all declared the `sfu` feature is in SFU mode, any other room is
//! peer to peer; [`SfuPolicy::Always`] moves every such room from its first
//! member; [`SfuPolicy::Never`] none. On a change every member is told
//! `mode` and the driver gets an [`SfuCommand`] per member (`Join` into the
//! SFU, or `Leave` out of it); a member joining a room already in SFU mode
//! gets `mode` right after `joined`. Rooms that may use the SFU are limited
//! by [`HubConfig::sfu_room_size`](super::HubConfig::sfu_room_size)
//! instead of the mesh's room size.
//!
//! Cluster mode: the mode follows from all the room's members, on every
//! node, so each node computes the same. The session runs on one node, the
//! least node id among the members' nodes (LiveKit keeps a room on one
//! node too); each node sends its own members' commands there, as
//! [`NodeMessage::ToSfu`] when it is another, and that node's SFU answers
//! them as [`NodeMessage::FromSfu`]. When the session's node has no member
//! left (they left, or it died), the next one takes over: every member is
//! told `mode` `sfu` again and offers to the new node's SFU.

use std::sync::Arc;

use super::ClusterOutput;
use super::{ConnId, Hub, Output, Room};
use crate::error::SignalError;
use crate::protocol::{NodeId, NodeMessage, PeerId, RawData, RoomMode, ServerMessage, SfuRequest};

/// `--sfu`: when rooms use the SFU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SfuPolicy {
    /// No room does (also when the server runs no SFU).
    #[default]
    Never,
    /// Peer to peer for two, the SFU from three.
    Auto,
    /// The SFU from the first member.
    Always,
}

impl SfuPolicy {
    /// The mode of a room of `members` peers, `all_capable` if each of them
    /// declared the `sfu` feature.
    pub fn mode(self, members: usize, all_capable: bool) -> RoomMode {
        let sfu = all_capable
            && match self {
                SfuPolicy::Never => false,
                SfuPolicy::Auto => members >= 3,
                SfuPolicy::Always => members >= 1,
            };
        if sfu { RoomMode::Sfu } else { RoomMode::P2p }
    }
}

/// What the driver tells the SFU; peers are named by their hub peer id,
/// which is also their stream id (label) at the others.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuCommand {
    /// `peer` (on connection `conn`, whose transport tells which server
    /// address it reached) takes part in `room` through the SFU; its offer
    /// follows as a `Signal`.
    Join {
        /// The member's signaling connection (`None`: it is on another
        /// node, and reaches this SFU at its public address).
        conn: Option<ConnId>,
        /// The member.
        peer: PeerId,
        /// Its room.
        room: Arc<str>,
    },
    /// An SDP offer or answer from `peer`, as it sent it.
    Signal {
        /// The member.
        peer: PeerId,
        /// `{"type": "offer"|"answer", "sdp": …}`.
        data: RawData,
    },
    /// `peer` shows `of`'s video in a tile `width` CSS pixels wide.
    View {
        /// The subscriber.
        peer: PeerId,
        /// The publisher.
        of: PeerId,
        /// Tile width; 0: not shown.
        width: u32,
    },
    /// `peer` is out of the SFU (it left, or its room went back to P2P).
    Leave {
        /// The member.
        peer: PeerId,
    },
}

impl Hub {
    /// Replaces the policy; for the driver at start-up (its SFU did not
    /// start), before any room exists: rooms already in SFU mode keep it
    /// until their next join or leave.
    pub fn set_sfu_policy(&mut self, policy: SfuPolicy) {
        self.config.sfu = policy;
    }

    /// Most members `room` may have when a peer (`capable`: it declared
    /// `sfu`) asks to join it.
    pub(super) fn room_limit(&self, room: &Room, capable: bool) -> usize {
        let may_use_sfu = self.config.sfu != SfuPolicy::Never
            && capable
            && room.members.iter().all(|m| self.is_capable(*m));
        if may_use_sfu {
            self.config.sfu_room_size
        } else {
            self.config.room_size
        }
    }

    /// Recomputes `room`'s mode (and in cluster mode the node running its
    /// session) after a join (`newcomer`) or a leave, and tells its members
    /// and the SFU what changed.
    pub(super) fn update_mode(&mut self, room: &Arc<str>, newcomer: Option<ConnId>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let all_capable =
            r.members.iter().all(|m| self.is_capable(*m)) && r.cluster.remote.iter().all(|m| m.sfu);
        let count = r.members.len() + r.cluster.remote.len();
        let want = self.config.sfu.mode(count, all_capable);
        let at = match want {
            RoomMode::Sfu => self.session_node(r),
            RoomMode::P2p => None,
        };
        let (was, was_at, members) = (r.mode, r.sfu_at.clone(), r.members.clone());
        if want == was && at == was_at {
            if let (RoomMode::Sfu, Some(conn)) = (want, newcomer) {
                self.enter_sfu(conn, room);
            }
            return;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.mode = want;
            r.sfu_at = at;
        }
        for conn in members {
            // A newcomer was never in the SFU; P2P is what it assumes.
            let was_in = was == RoomMode::Sfu && Some(conn) != newcomer;
            if want == RoomMode::P2p && was_in {
                self.send(
                    conn,
                    ServerMessage::Mode {
                        mode: RoomMode::P2p,
                    },
                );
            }
            if was_in && let Some(peer) = self.peer_id(conn) {
                self.send_to_session(room, was_at.as_ref(), SfuCommand::Leave { peer });
            }
            if want == RoomMode::Sfu {
                self.enter_sfu(conn, room);
            }
        }
    }

    /// The node to run `r`'s session (cluster mode): the least of its
    /// members' nodes.
    fn session_node(&self, r: &Room) -> Option<NodeId> {
        let here = self.config.node.as_ref().filter(|_| !r.members.is_empty());
        r.cluster
            .remote
            .iter()
            .map(|m| &m.node)
            .chain(here)
            .min()
            .cloned()
    }

    /// Sends `command` to the SFU running `room`'s session at `at`: this
    /// node's (`None`, or this node), or another node's through the cluster.
    pub(super) fn send_to_session(
        &mut self,
        room: &Arc<str>,
        at: Option<&NodeId>,
        command: SfuCommand,
    ) {
        let Some(node) = at.filter(|n| Some(*n) != self.config.node.as_ref()) else {
            self.out.push_back(Output::Sfu(command));
            return;
        };
        let (peer, request) = match command {
            SfuCommand::Join { peer, .. } => (peer, SfuRequest::Join),
            SfuCommand::Signal { peer, data } => (peer, SfuRequest::Signal { data }),
            SfuCommand::View { peer, of, width } => (peer, SfuRequest::View { of, width }),
            SfuCommand::Leave { peer } => (peer, SfuRequest::Leave),
        };
        self.out.push_back(Output::Cluster(ClusterOutput::Publish {
            node: node.clone(),
            message: NodeMessage::ToSfu {
                room: room.to_string(),
                peer,
                request,
            },
        }));
    }

    /// A member on another node acts in a session this node runs: its
    /// command goes to this node's SFU, if the room is known here.
    pub(super) fn sfu_request_in(&mut self, room: &str, peer: PeerId, request: SfuRequest) {
        let Some(key) = self.rooms.get_key_value(room).map(|(k, _)| k.clone()) else {
            if request == SfuRequest::Leave {
                self.out.push_back(Output::Sfu(SfuCommand::Leave { peer }));
            }
            return;
        };
        let command = match request {
            SfuRequest::Join => SfuCommand::Join {
                conn: None,
                peer,
                room: key,
            },
            SfuRequest::Signal { data } => SfuCommand::Signal { peer, data },
            SfuRequest::View { of, width } => SfuCommand::View { peer, of, width },
            SfuRequest::Leave => SfuCommand::Leave { peer },
        };
        self.out.push_back(Output::Sfu(command));
    }

    /// `sfu` from a member: its SDP goes to the SFU.
    pub(super) fn sfu_signal_from(
        &mut self,
        conn: ConnId,
        data: RawData,
    ) -> Result<(), SignalError> {
        let (room, at, peer) = self.sfu_member(conn)?;
        self.send_to_session(&room, at.as_ref(), SfuCommand::Signal { peer, data });
        Ok(())
    }

    /// `view` from a member: the tile size it shows `of` at goes to the SFU.
    pub(super) fn view(&mut self, conn: ConnId, of: PeerId, width: u32) -> Result<(), SignalError> {
        let (room, at, peer) = self.sfu_member(conn)?;
        self.send_to_session(&room, at.as_ref(), SfuCommand::View { peer, of, width });
        Ok(())
    }

    /// SDP from this node's SFU for `peer`: sent to it as `sfu` if it is
    /// still a member of a room in SFU mode, here or (cluster mode) on the
    /// node its member entry names, else dropped (it left meanwhile).
    pub fn handle_sfu_signal(&mut self, peer: &PeerId, data: RawData) {
        let remote = self.rooms.values().find_map(|r| {
            let m = r.cluster.remote.iter().find(|m| m.peer.id == *peer)?;
            (r.mode == RoomMode::Sfu).then(|| m.node.clone())
        });
        if let Some(node) = remote {
            self.out.push_back(Output::Cluster(ClusterOutput::Publish {
                node,
                message: NodeMessage::FromSfu {
                    peer: peer.clone(),
                    data,
                },
            }));
            return;
        }
        self.sfu_signal_to_member(peer, data);
    }

    /// SDP of an SFU for `peer`, a member here, as `sfu`.
    pub(super) fn sfu_signal_to_member(&mut self, peer: &PeerId, data: RawData) {
        let conn = self.conns.iter().find_map(|(id, c)| {
            let m = c.member.as_ref()?;
            let in_sfu = self
                .rooms
                .get(&m.room)
                .is_some_and(|r| r.mode == RoomMode::Sfu);
            (m.peer.id == *peer && in_sfu).then_some(*id)
        });
        if let Some(conn) = conn {
            self.send(conn, ServerMessage::Sfu { data });
        }
    }

    fn enter_sfu(&mut self, conn: ConnId, room: &Arc<str>) {
        self.send(
            conn,
            ServerMessage::Mode {
                mode: RoomMode::Sfu,
            },
        );
        let at = self.rooms.get(room).and_then(|r| r.sfu_at.clone());
        if let Some(peer) = self.peer_id(conn) {
            let join = SfuCommand::Join {
                conn: Some(conn),
                peer,
                room: room.clone(),
            };
            self.send_to_session(room, at.as_ref(), join);
        }
    }

    /// The room of `conn`, where its session runs and its peer id, if its
    /// room is in SFU mode.
    fn sfu_member(&self, conn: ConnId) -> Result<(Arc<str>, Option<NodeId>, PeerId), SignalError> {
        let m = self
            .conns
            .get(&conn)
            .and_then(|c| c.member.as_ref())
            .ok_or(SignalError::NotSfu)?;
        match self.rooms.get_key_value(&m.room) {
            Some((key, r)) if r.mode == RoomMode::Sfu => {
                Ok((key.clone(), r.sfu_at.clone(), m.peer.id.clone()))
            }
            _ => Err(SignalError::NotSfu),
        }
    }

    fn is_capable(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| c.member.as_ref())
            .is_some_and(|m| m.sfu)
    }

    fn peer_id(&self, conn: ConnId) -> Option<PeerId> {
        Some(self.conns.get(&conn)?.member.as_ref()?.peer.id.clone())
    }
}

#[cfg(test)]
#[path = "sfu_rooms_tests.rs"]
mod tests;
