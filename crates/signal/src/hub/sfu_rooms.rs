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

use std::sync::Arc;

use super::{ConnId, Hub, Output, Room};
use crate::error::SignalError;
use crate::protocol::{PeerId, RawData, RoomMode, ServerMessage};

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
        /// The member's signaling connection.
        conn: ConnId,
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

    /// Recomputes `room`'s mode after a join (`newcomer`) or a leave, and
    /// tells its members and the SFU what changed.
    pub(super) fn update_mode(&mut self, room: &Arc<str>, newcomer: Option<ConnId>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let all_capable = r.members.iter().all(|m| self.is_capable(*m));
        let want = self.config.sfu.mode(r.members.len(), all_capable);
        let (was, members) = (r.mode, r.members.clone());
        if want == was {
            if let (RoomMode::Sfu, Some(conn)) = (want, newcomer) {
                self.enter_sfu(conn, room);
            }
            return;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.mode = want;
        }
        for conn in members {
            match want {
                RoomMode::Sfu => self.enter_sfu(conn, room),
                // A newcomer was never in the SFU; P2P is what it assumes.
                RoomMode::P2p if Some(conn) == newcomer => {}
                RoomMode::P2p => {
                    self.send(
                        conn,
                        ServerMessage::Mode {
                            mode: RoomMode::P2p,
                        },
                    );
                    if let Some(peer) = self.peer_id(conn) {
                        self.out.push_back(Output::Sfu(SfuCommand::Leave { peer }));
                    }
                }
            }
        }
    }

    /// `sfu` from a member: its SDP goes to the SFU.
    pub(super) fn sfu_signal_from(
        &mut self,
        conn: ConnId,
        data: RawData,
    ) -> Result<(), SignalError> {
        let peer = self.sfu_member(conn)?;
        self.out
            .push_back(Output::Sfu(SfuCommand::Signal { peer, data }));
        Ok(())
    }

    /// `view` from a member: the tile size it shows `of` at goes to the SFU.
    pub(super) fn view(&mut self, conn: ConnId, of: PeerId, width: u32) -> Result<(), SignalError> {
        let peer = self.sfu_member(conn)?;
        self.out
            .push_back(Output::Sfu(SfuCommand::View { peer, of, width }));
        Ok(())
    }

    /// SDP from the SFU for `peer`: sent to it as `sfu` if it is still a
    /// member of a room in SFU mode, else dropped (it left meanwhile).
    pub fn handle_sfu_signal(&mut self, peer: &PeerId, data: RawData) {
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
        if let Some(peer) = self.peer_id(conn) {
            self.out.push_back(Output::Sfu(SfuCommand::Join {
                conn,
                peer,
                room: room.clone(),
            }));
        }
    }

    /// The peer id of `conn` if its room is in SFU mode.
    fn sfu_member(&self, conn: ConnId) -> Result<PeerId, SignalError> {
        let m = self
            .conns
            .get(&conn)
            .and_then(|c| c.member.as_ref())
            .ok_or(SignalError::NotSfu)?;
        match self.rooms.get(&m.room) {
            Some(r) if r.mode == RoomMode::Sfu => Ok(m.peer.id.clone()),
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
