//! The hub as one node of a cluster ([`HubConfig::node`](super::HubConfig::node),
//! `--redis`; the design in `docs/cluster.md`).
//!
//! A room may have members on other nodes. The cluster's truth is in Redis:
//! a join is admitted by the driver's admission script (room size, room
//! password and the cluster's room count, atomically), and a leave is
//! removed by its leave script, each bumping the room's version. The hub
//! asks for these with [`ClusterOutput`]s and learns the answers and what
//! other nodes did as inputs ([`Hub::handle_admission`],
//! [`Hub::handle_node_message`], [`Hub::handle_room_snapshot`],
//! [`Hub::handle_cluster_up`]). Locally it keeps, per room with members of
//! its own, the remote members, so that `joined` lists them and relays to
//! them go out as [`NodeMessage::Relay`].
//!
//! Ordering: an admission answer is a snapshot of the room at a version;
//! events of other nodes that arrive while an admission is out are kept
//! and applied after it if they are newer. Events are idempotent (a member
//! joined twice is announced once), so a node re-registering its members
//! after Redis came back may tell everyone again.

use std::sync::Arc;
use std::time::Instant;

use super::cluster_requests::{
    Admission, ClusterOutput, JoinTicket, PendingJoin, RESYNC_GRACE, RoomLimits, password_hash,
};
use super::{ConnId, Hub, Membership, Output, Room};
use crate::protocol::{
    LeaveReason, Member, NodeId, NodeMessage, PROTOCOL_VERSION, PeerId, PeerInfo, RawData,
    RelayKind, ServerMessage,
};

impl Hub {
    /// This hub's node, in cluster mode.
    pub fn node(&self) -> Option<&NodeId> {
        self.config.node.as_ref()
    }

    /// The answer to a [`ClusterOutput::Admit`].
    pub fn handle_admission(&mut self, ticket: JoinTicket, admission: Admission) {
        let JoinTicket { conn, room, peer } = ticket;
        let pending = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.joining.take_if(|j| j.peer.id == peer));
        if let Some(r) = self.rooms.get_mut(&room) {
            r.cluster.admitting = r.cluster.admitting.saturating_sub(1);
        }
        match (pending, admission) {
            (None, Admission::Admitted { .. }) => {
                // It went away meanwhile: out again.
                self.out.push_back(Output::Cluster(ClusterOutput::Leave {
                    room: room.clone(),
                    peer,
                    reason: LeaveReason::Disconnected,
                }));
            }
            (None, Admission::Refused(_)) => {}
            (Some(_), Admission::Refused(err)) => self.send(conn, ServerMessage::error(&err)),
            (Some(p), Admission::Admitted { version, members }) => {
                self.admitted(conn, *p, version, members);
            }
        }
        self.flush_early(&room);
        self.forget_if_empty(&room);
    }

    /// A message from another node, at `now`.
    pub fn handle_node_message(&mut self, message: NodeMessage, now: Instant) {
        match message {
            NodeMessage::Relay {
                room,
                from,
                to,
                kind,
                data,
            } => self.relay_in(&room, from, &to, kind, data),
            NodeMessage::NodeGone { node } => self.node_gone(&node, now),
            NodeMessage::ToSfu {
                room,
                peer,
                request,
            } => self.sfu_request_in(&room, peer, request),
            NodeMessage::FromSfu { peer, data } => self.sfu_signal_to_member(&peer, data),
            NodeMessage::Joined { ref room, .. } | NodeMessage::Left { ref room, .. } => {
                let Some(r) = self.rooms.get_mut(room.as_str()) else {
                    return;
                };
                if r.cluster.admitting > 0 {
                    r.cluster.early.push(message);
                } else {
                    self.apply_event(message);
                }
            }
        }
    }

    /// `room`'s members as Redis has them at `version` (the answer to a
    /// [`ClusterOutput::Register`] or [`ClusterOutput::Snapshot`]). Members
    /// new to this node are announced; with `authoritative`, remote members
    /// missing from it are announced gone.
    pub fn handle_room_snapshot(
        &mut self,
        room: &str,
        version: u64,
        members: Vec<Member>,
        authoritative: bool,
    ) {
        let Some(key) = self.rooms.get_key_value(room).map(|(k, _)| k.clone()) else {
            return;
        };
        self.apply_snapshot(&key, version, members, authoritative, None);
    }

    /// Redis is reachable again (or it declared this node gone): every room
    /// with members here is registered again, and read again once the
    /// other nodes had [`RESYNC_GRACE`] to do the same. Only those rooms:
    /// one joined later came with a fresh snapshot (at the first connect,
    /// none is read again).
    pub fn handle_cluster_up(&mut self, now: Instant) {
        let Some(node) = self.config.node.clone() else {
            return;
        };
        let mut rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
        rooms.sort();
        let mut registered = Vec::new();
        for room in rooms {
            let members = self.local_members(&room, &node);
            if members.is_empty() {
                continue;
            }
            let password = self.rooms.get(&room).and_then(|r| r.password.clone());
            self.out.push_back(Output::Cluster(ClusterOutput::Register {
                room: room.clone(),
                password,
                members,
            }));
            registered.push(room);
        }
        // A resync still due keeps its rooms too.
        if let Some((_, earlier)) = self.resync.take() {
            registered.extend(earlier);
            registered.sort();
            registered.dedup();
        }
        if !registered.is_empty() {
            self.resync = Some((now + RESYNC_GRACE, registered));
        }
    }

    /// The resync after [`Hub::handle_cluster_up`], when due.
    pub(super) fn resync_if_due(&mut self, now: Instant) {
        if self.resync.as_ref().is_none_or(|(at, _)| now < *at) {
            return;
        }
        let Some((_, rooms)) = self.resync.take() else {
            return;
        };
        for room in rooms {
            if !self.rooms.contains_key(&room) {
                continue;
            }
            self.out
                .push_back(Output::Cluster(ClusterOutput::Snapshot { room }));
        }
    }

    /// Cluster mode's `join`, once the local checks passed: the room is
    /// reserved here, the cluster asked.
    pub(super) fn join_cluster(
        &mut self,
        conn: ConnId,
        room_id: &str,
        member: Member,
        password: Option<String>,
        admin: bool,
    ) {
        let key: Arc<str> = match self.rooms.get_key_value(room_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(room_id),
        };
        let password = password.map(|p| password_hash(room_id, &p));
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            password: password.clone(),
            ..Room::default()
        });
        room.cluster.admitting += 1;
        let (peer, sfu) = (member.peer.clone(), member.sfu);
        let ticket = JoinTicket {
            conn,
            room: key.clone(),
            peer: peer.id.clone(),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.joining = Some(Box::new(PendingJoin {
                room: key,
                peer,
                sfu,
                password: password.clone(),
            }));
        }
        let sfu_room_size = if self.config.sfu == super::SfuPolicy::Never {
            0
        } else {
            self.config.sfu_room_size
        };
        self.out.push_back(Output::Cluster(ClusterOutput::Admit {
            ticket,
            member,
            password,
            admin,
            limits: RoomLimits {
                room_size: self.config.room_size,
                sfu_room_size,
                max_rooms: self.config.max_rooms,
            },
        }));
    }

    /// Cluster mode's part of a leave: the cluster is told.
    pub(super) fn leave_cluster(&mut self, room: &Arc<str>, peer: &PeerId, reason: LeaveReason) {
        if self.config.node.is_some() {
            self.out.push_back(Output::Cluster(ClusterOutput::Leave {
                room: room.clone(),
                peer: peer.clone(),
                reason,
            }));
        }
    }

    /// A relay to `to`, a member of `room` on another node, if it is one.
    pub(super) fn relay_out(
        &mut self,
        room: &Arc<str>,
        from: &PeerId,
        to: &PeerId,
        kind: RelayKind,
        data: &RawData,
    ) -> bool {
        let Some(node) = self
            .rooms
            .get(room)
            .and_then(|r| r.cluster.remote.iter().find(|m| m.peer.id == *to))
            .map(|m| m.node.clone())
        else {
            return false;
        };
        self.out.push_back(Output::Cluster(ClusterOutput::Publish {
            node,
            message: NodeMessage::Relay {
                room: room.to_string(),
                from: from.clone(),
                to: to.clone(),
                kind,
                data: data.clone(),
            },
        }));
        true
    }

    fn admitted(&mut self, conn: ConnId, p: PendingJoin, version: u64, members: Vec<Member>) {
        let PendingJoin {
            room,
            peer,
            sfu,
            password,
        } = p;
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.password.is_none() {
            r.password = password;
        }
        let others: Vec<ConnId> = r.members.clone();
        r.members.push(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some(Box::new(Membership {
                room: room.clone(),
                peer: peer.clone(),
                sfu,
            }));
        }
        self.peers += 1;
        self.joins += 1;
        // The answer holds every member Redis has: one known here but not
        // in it left before (its `left` is older than this answer and will
        // be dropped as such). Not while Redis is being refilled after a
        // restart: other nodes' members may not be back in it yet.
        let authoritative = self.resync.is_none();
        self.apply_snapshot(&room, version, members, authoritative, Some(conn));
        let mut peers: Vec<PeerInfo> = others
            .iter()
            .filter_map(|m| self.conns.get(m)?.member.as_ref().map(|mm| mm.peer.clone()))
            .collect();
        let remote = self
            .rooms
            .get(&room)
            .map(|r| r.cluster.remote.clone())
            .unwrap_or_default();
        peers.extend(remote.iter().map(|m| m.peer.clone()));
        let ice_servers = self
            .conns
            .get(&conn)
            .map(|c| c.ice_servers.to_list())
            .unwrap_or_default();
        self.send(
            conn,
            ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                room: room.to_string(),
                you: peer.id.clone(),
                peers,
                ice_servers,
            },
        );
        for other in others {
            self.send(other, ServerMessage::PeerJoined { peer: peer.clone() });
        }
        let Some(node) = self.config.node.clone() else {
            return;
        };
        let member = Member { peer, node, sfu };
        for to in distinct_nodes(&remote) {
            self.out.push_back(Output::Cluster(ClusterOutput::Publish {
                node: to,
                message: NodeMessage::Joined {
                    room: room.to_string(),
                    version,
                    member: member.clone(),
                },
            }));
        }
        self.update_mode(&room, Some(conn));
    }

    /// Makes `room`'s remote members those of a snapshot at `version`
    /// (unless a newer one was applied), announcing the differences to the
    /// local members but `except` (a joiner, told in `joined`).
    fn apply_snapshot(
        &mut self,
        room: &Arc<str>,
        version: u64,
        members: Vec<Member>,
        authoritative: bool,
        except: Option<ConnId>,
    ) {
        let Some(node) = self.config.node.clone() else {
            return;
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if version < r.cluster.version {
            return;
        }
        r.cluster.version = version;
        let incoming: Vec<Member> = members.into_iter().filter(|m| m.node != node).collect();
        let gone: Vec<PeerId> = if authoritative {
            r.cluster
                .remote
                .iter()
                .filter(|m| !incoming.iter().any(|i| i.peer.id == m.peer.id))
                .map(|m| m.peer.id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let locals: Vec<ConnId> = r
            .members
            .iter()
            .copied()
            .filter(|c| Some(*c) != except)
            .collect();
        r.cluster.remote.retain(|m| !gone.contains(&m.peer.id));
        let mut new = Vec::new();
        for m in incoming {
            if !r.cluster.remote.iter().any(|x| x.peer.id == m.peer.id) {
                new.push(m.peer.clone());
                r.cluster.remote.push(m);
            }
        }
        for id in gone {
            for c in &locals {
                self.send(
                    *c,
                    ServerMessage::PeerLeft {
                        id: id.clone(),
                        reason: LeaveReason::Disconnected,
                    },
                );
            }
        }
        for peer in new {
            for c in &locals {
                self.send(*c, ServerMessage::PeerJoined { peer: peer.clone() });
            }
        }
    }

    /// A `joined` or `left` of another node, in order.
    fn apply_event(&mut self, message: NodeMessage) {
        match message {
            NodeMessage::Joined {
                room,
                version,
                member,
            } => {
                let Some(key) = self
                    .rooms
                    .get_key_value(room.as_str())
                    .map(|(k, _)| k.clone())
                else {
                    return;
                };
                let ours = Some(&member.node) == self.config.node.as_ref();
                let Some(r) = self.rooms.get_mut(&key) else {
                    return;
                };
                let known = r.cluster.remote.iter().any(|m| m.peer.id == member.peer.id);
                if version <= r.cluster.version || known || ours {
                    return;
                }
                let peer = member.peer.clone();
                r.cluster.remote.push(member);
                for c in r.members.clone() {
                    self.send(c, ServerMessage::PeerJoined { peer: peer.clone() });
                }
                self.update_mode(&key, None);
            }
            NodeMessage::Left {
                room,
                version,
                peer,
                reason,
            } => {
                let Some((key, r)) = self.rooms.get_key_value(room.as_str()) else {
                    return;
                };
                if version <= r.cluster.version {
                    return;
                }
                let key = key.clone();
                self.remove_remote(&key, |m| m.peer.id == peer, reason);
            }
            NodeMessage::Relay { .. }
            | NodeMessage::NodeGone { .. }
            | NodeMessage::ToSfu { .. }
            | NodeMessage::FromSfu { .. } => {}
        }
    }

    /// Events kept while `room`'s admissions were out, once none is.
    fn flush_early(&mut self, room: &Arc<str>) {
        let early = match self.rooms.get_mut(room) {
            Some(r) if r.cluster.admitting == 0 => std::mem::take(&mut r.cluster.early),
            _ => return,
        };
        for e in early {
            self.apply_event(e);
        }
    }

    /// Drops `room` here once it has no local member and no admission out.
    fn forget_if_empty(&mut self, room: &Arc<str>) {
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.members.is_empty() && r.cluster.admitting == 0)
        {
            self.rooms.remove(room);
        }
    }

    fn relay_in(&mut self, room: &str, from: PeerId, to: &PeerId, kind: RelayKind, data: RawData) {
        let target = self.rooms.get(room).and_then(|r| {
            r.members.iter().copied().find(|m| {
                self.conns
                    .get(m)
                    .and_then(|c| c.member.as_ref())
                    .is_some_and(|mm| mm.peer.id == *to)
            })
        });
        if let Some(target) = target {
            self.send(target, ServerMessage::relayed(kind, from, data));
            self.relayed += 1;
        }
    }

    fn node_gone(&mut self, node: &NodeId, now: Instant) {
        if Some(node) == self.config.node.as_ref() {
            // Declared gone while cut off: put our members back.
            self.handle_cluster_up(now);
            return;
        }
        let mut rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
        rooms.sort();
        for room in rooms {
            self.remove_remote(&room, |m| m.node == *node, LeaveReason::Disconnected);
        }
    }

    /// Removes `room`'s remote members that `gone` picks, announcing each.
    fn remove_remote(
        &mut self,
        room: &Arc<str>,
        gone: impl Fn(&Member) -> bool,
        reason: LeaveReason,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let left: Vec<PeerId> = r
            .cluster
            .remote
            .iter()
            .filter(|m| gone(m))
            .map(|m| m.peer.id.clone())
            .collect();
        if left.is_empty() {
            return;
        }
        r.cluster.remote.retain(|m| !gone(m));
        for c in r.members.clone() {
            for id in &left {
                self.send(
                    c,
                    ServerMessage::PeerLeft {
                        id: id.clone(),
                        reason,
                    },
                );
            }
        }
        self.update_mode(room, None);
    }

    fn local_members(&self, room: &Arc<str>, node: &NodeId) -> Vec<Member> {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|r| r.members.iter())
            .filter_map(|c| self.conns.get(c)?.member.as_ref())
            .map(|m| Member {
                peer: m.peer.clone(),
                node: node.clone(),
                sfu: m.sfu,
            })
            .collect()
    }
}

/// The nodes of `members`, each once, in order.
fn distinct_nodes(members: &[Member]) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = members.iter().map(|m| m.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
