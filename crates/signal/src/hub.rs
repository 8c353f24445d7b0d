//! The room hub: connections join rooms, and offers, answers, candidates and
//! application messages are relayed to one named peer of the same room.
//!
//! Sans-IO: the driver reports what happened on its sockets with the
//! `handle_*` methods, passing the current time, then drains
//! [`Hub::poll_output`] and sends what it says. [`Hub::poll_timeout`] tells
//! when [`Hub::handle_timeout`] must next be called (heartbeats).
//!
//! Token mode ([`HubConfig::join_secret`]): a `join` must carry an invite
//! token for its room ([`crate::token`]), checked against the Unix time the
//! driver passes to [`Hub::handle_text`]. Drain ([`Hub::handle_drain`]):
//! every connection is told to `reconnect`, new joins are refused with
//! `draining`, and the rooms already joined keep relaying.
//!
//! SFU rooms ([`HubConfig::sfu`], rules in `hub/sfu_rooms.rs`): a room
//! whose members all declared the `sfu` feature moves its media to the
//! server's SFU (from the third member with [`SfuPolicy::Auto`]); the hub
//! tells its members `mode` and the driver what to do with the SFU
//! ([`Output::Sfu`]), and passes SDP between them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{ErrorCode, SignalError};
use crate::limit::{RateLimit, TokenBucket};
use crate::protocol::{
    ClientMessage, IceServers, LeaveReason, NodeId, PROTOCOL_VERSION, PeerId, PeerInfo, RoomMode,
    ServerMessage, parse_client_message,
};
use crate::token::{self, Secret};

mod cluster;
mod cluster_requests;
mod sfu_rooms;
pub use cluster_requests::{
    Admission, ClusterOutput, JoinTicket, RESYNC_GRACE, RoomLimits, password_hash,
};
pub use sfu_rooms::{SfuCommand, SfuPolicy};

/// A connection, named by the driver; unique among open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Hub limits and timings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Most peers in one room.
    pub room_size: usize,
    /// Most rooms open at once; a `join` that would open one more is refused
    /// with `too-many-rooms` (joining an existing room still works).
    pub max_rooms: usize,
    /// Largest accepted text frame, in bytes.
    pub max_message_bytes: usize,
    /// Per-connection message rate limit.
    pub rate: RateLimit,
    /// Ask for a sign of life after this long without one.
    pub ping_interval: Duration,
    /// Close a connection after this long without a sign of life.
    pub idle_timeout: Duration,
    /// Token mode: joins need an invite token signed with this secret
    /// (`--join-secret`). `None`: anyone may join, tokens are ignored.
    pub join_secret: Option<Secret>,
    /// When rooms use the SFU. [`SfuPolicy::Never`] (the default) when the
    /// driver runs none.
    pub sfu: SfuPolicy,
    /// Most peers in a room that may use the SFU (every member declared
    /// it); other rooms keep [`HubConfig::room_size`].
    pub sfu_room_size: usize,
    /// Cluster mode (`--redis`): this node's id. Joins are admitted by
    /// the cluster and rooms may span nodes (see `hub/cluster.rs`).
    pub node: Option<NodeId>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            room_size: 8,
            max_rooms: 10_000,
            max_message_bytes: 64 * 1024,
            rate: RateLimit::default(),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(45),
            join_secret: None,
            sfu: SfuPolicy::Never,
            sfu_room_size: 50,
            node: None,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `message` on connection `to`.
    Send {
        /// The connection.
        to: ConnId,
        /// The message (serialize with [`ServerMessage::to_json`]).
        message: ServerMessage,
    },
    /// Send a transport-level ping (WebSocket ping frame) on `conn`.
    Ping {
        /// The connection.
        conn: ConnId,
    },
    /// Close `conn`; the hub has already forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why (for the close frame and logs).
        reason: &'static str,
    },
    /// Tell the SFU (SFU rooms only).
    Sfu(SfuCommand),
    /// Ask or tell the cluster (cluster mode only).
    Cluster(ClusterOutput),
}

#[derive(Debug)]
struct Membership {
    /// The room's id, shared with the room table's key.
    room: Arc<str>,
    peer: PeerInfo,
    /// The client declared the `sfu` feature.
    sfu: bool,
}

/// One connection. Kept small: 10 000 of them sit in one table. The
/// membership is boxed (only joined connections have one).
#[derive(Debug)]
struct Conn {
    /// Handed out in `joined` (only the credential is the connection's own).
    ice_servers: IceServers,
    member: Option<Box<Membership>>,
    /// Cluster mode: a join waiting for the cluster's answer.
    joining: Option<Box<cluster_requests::PendingJoin>>,
    last_seen: Instant,
    last_ping: Option<Instant>,
    bucket: TokenBucket,
}

#[derive(Debug, Default)]
struct Room {
    password: Option<String>,
    /// Members in join order.
    members: Vec<ConnId>,
    /// Where the room's media flows now.
    mode: RoomMode,
    /// Cluster mode, in SFU mode: the node running its session.
    sfu_at: Option<NodeId>,
    /// Cluster mode: its members on other nodes.
    cluster: cluster_requests::RoomCluster,
}

/// Plain counters of a hub, for metrics ([`Hub::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections open now.
    pub connections: u64,
    /// Rooms open now.
    pub rooms: u64,
    /// Peers joined to a room now.
    pub peers: u64,
    /// Successful joins since start.
    pub joins: u64,
    /// Offers, answers, candidates and messages relayed since start.
    pub relayed: u64,
    /// Rooms in SFU mode now.
    pub sfu_rooms: u64,
    /// `error` messages sent, by code, indexed like [`ErrorCode::ALL`].
    errors: [u64; ErrorCode::ALL.len()],
}

impl HubStats {
    /// `error` messages sent since start, for every code (also those at 0),
    /// as (wire code, count).
    pub fn errors(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ErrorCode::ALL
            .iter()
            .zip(self.errors.iter())
            .map(|(code, n)| (code.as_str(), *n))
    }

    /// `error` messages sent with `code` since start.
    pub fn errors_with(&self, code: ErrorCode) -> u64 {
        self.errors.get(code.index()).copied().unwrap_or(0)
    }
}

/// The room hub. See the module docs.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<Arc<str>, Room>,
    next_peer: u64,
    out: VecDeque<Output>,
    draining: bool,
    /// Cluster mode: when to read again the rooms registered after Redis
    /// came back, and which.
    resync: Option<(Instant, Vec<Arc<str>>)>,
    peers: u64,
    joins: u64,
    relayed: u64,
    errors: [u64; ErrorCode::ALL.len()],
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        Hub {
            config,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            next_peer: 1,
            out: VecDeque::new(),
            draining: false,
            resync: None,
            peers: 0,
            joins: 0,
            relayed: 0,
            errors: [0; ErrorCode::ALL.len()],
        }
    }

    /// The hub's counters now.
    pub fn stats(&self) -> HubStats {
        HubStats {
            connections: self.conns.len() as u64,
            rooms: self.rooms.len() as u64,
            peers: self.peers,
            joins: self.joins,
            relayed: self.relayed,
            sfu_rooms: self
                .rooms
                .values()
                .filter(|r| r.mode == RoomMode::Sfu)
                .count() as u64,
            errors: self.errors,
        }
    }

    /// Whether [`Hub::handle_drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// The server is going away: every open connection gets `reconnect`
    /// (once), and from now on `join` is refused with `draining`. Relaying
    /// between peers already joined goes on. Calling it again does nothing.
    pub fn handle_drain(&mut self, _now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        for conn in conns {
            self.send(
                conn,
                ServerMessage::Reconnect {
                    reason: "draining".into(),
                },
            );
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of open rooms (a room closes when its last peer leaves).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A new connection, with the ICE servers to hand it when it joins
    /// (the driver mints its TURN credentials).
    pub fn handle_connect(&mut self, conn: ConnId, ice_servers: IceServers, now: Instant) {
        if self.conns.contains_key(&conn) {
            self.handle_disconnect(conn);
        }
        self.conns.insert(
            conn,
            Conn {
                ice_servers,
                member: None,
                joining: None,
                last_seen: now,
                last_ping: None,
                bucket: TokenBucket::new(self.config.rate, now),
            },
        );
    }

    /// A text frame arrived on `conn`; `unix_now` is the wall-clock time in
    /// Unix seconds (invite tokens expire by it).
    pub fn handle_text(&mut self, conn: ConnId, text: &str, now: Instant, unix_now: u64) {
        if !self.admit(conn, now) {
            return;
        }
        let result = parse_client_message(text, self.config.max_message_bytes)
            .and_then(|msg| self.apply(conn, msg, unix_now));
        if let Err(err) = result {
            self.send(conn, ServerMessage::error(&err));
        }
    }

    /// A text message of `len` bytes arrived on `conn` that the transport
    /// discarded unread because it is over [`HubConfig::max_message_bytes`]:
    /// answered `too-large`, like a text over the limit, and the connection
    /// stays.
    pub fn handle_oversized_text(&mut self, conn: ConnId, len: usize, now: Instant) {
        if !self.admit(conn, now) {
            return;
        }
        let err = SignalError::TooLarge {
            size: len,
            limit: self.config.max_message_bytes,
        };
        self.send(conn, ServerMessage::error(&err));
    }

    /// The largest text message the hub parses; the transport may discard
    /// larger ones unread and report them with [`Hub::handle_oversized_text`].
    pub fn max_message_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    /// A binary frame of `len` bytes arrived on `conn` (not part of the protocol).
    pub fn handle_binary(&mut self, conn: ConnId, len: usize, now: Instant) {
        if !self.admit(conn, now) {
            return;
        }
        let err = if len > self.config.max_message_bytes {
            SignalError::TooLarge {
                size: len,
                limit: self.config.max_message_bytes,
            }
        } else {
            SignalError::BinaryUnsupported
        };
        self.send(conn, ServerMessage::error(&err));
    }

    /// A sign of life other than a message (e.g. a WebSocket pong) on `conn`.
    pub fn handle_pong(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_seen = now;
        }
    }

    /// `conn` closed; its peer, if any, is announced as gone.
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        self.leave(conn, LeaveReason::Disconnected);
        self.conns.remove(&conn);
    }

    /// Heartbeats: pings idle connections and closes dead ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut dead = Vec::new();
        for (&id, c) in &mut self.conns {
            let idle = now.saturating_duration_since(c.last_seen);
            if idle >= self.config.idle_timeout {
                dead.push(id);
            } else if idle >= self.config.ping_interval
                && c.last_ping
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.config.ping_interval)
            {
                c.last_ping = Some(now);
                self.out.push_back(Output::Ping { conn: id });
            }
        }
        dead.sort();
        for id in dead {
            self.handle_disconnect(id);
            self.out.push_back(Output::Close {
                conn: id,
                reason: "heartbeat timeout",
            });
        }
        self.resync_if_due(now);
    }

    /// When [`Hub::handle_timeout`] should next be called, if any connection is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .map(|c| {
                let ping = match c.last_ping {
                    Some(t) if t >= c.last_seen => t + self.config.ping_interval,
                    _ => c.last_seen + self.config.ping_interval,
                };
                ping.min(c.last_seen + self.config.idle_timeout)
            })
            .chain(self.resync.as_ref().map(|(at, _)| *at))
            .min()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Records activity and applies the rate limit; `false` drops the frame.
    fn admit(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        c.last_seen = now;
        if c.bucket.take(now) {
            return true;
        }
        if c.bucket.should_report(now) {
            self.send(conn, ServerMessage::error(&SignalError::RateLimited));
        }
        false
    }

    fn apply(
        &mut self,
        conn: ConnId,
        msg: ClientMessage,
        unix_now: u64,
    ) -> Result<(), SignalError> {
        match msg {
            ClientMessage::Join {
                room,
                name,
                password,
                token,
                session,
                sfu,
            } => self.join(
                conn,
                JoinRequest {
                    room,
                    name,
                    password,
                    token,
                    session,
                    sfu,
                },
                unix_now,
            ),
            ClientMessage::Relay { kind, to, data } => {
                let (room, from) = self.membership(conn)?;
                let local = self
                    .rooms
                    .get(&room)
                    .into_iter()
                    .flat_map(|r| r.members.iter())
                    .copied()
                    .find(|m| {
                        *m != conn
                            && self
                                .conns
                                .get(m)
                                .and_then(|c| c.member.as_ref())
                                .is_some_and(|mm| mm.peer.id == to)
                    });
                match local {
                    Some(target) => self.send(target, ServerMessage::relayed(kind, from, data)),
                    None if self.relay_out(&room, &from, &to, kind, &data) => {}
                    None => {
                        return Err(SignalError::UnknownPeer(to.0.chars().take(64).collect()));
                    }
                }
                self.relayed += 1;
                Ok(())
            }
            ClientMessage::Ping { id } => {
                self.send(conn, ServerMessage::Pong { id });
                Ok(())
            }
            ClientMessage::Leave => {
                self.membership(conn)?;
                self.leave(conn, LeaveReason::Left);
                self.send(conn, ServerMessage::Left);
                Ok(())
            }
            ClientMessage::Sfu { data } => self.sfu_signal_from(conn, data),
            ClientMessage::View { peer, width } => self.view(conn, peer, width),
        }
    }

    fn membership(&self, conn: ConnId) -> Result<(Arc<str>, PeerId), SignalError> {
        self.conns
            .get(&conn)
            .and_then(|c| c.member.as_ref())
            .map(|m| (m.room.clone(), m.peer.id.clone()))
            .ok_or(SignalError::NotJoined)
    }

    fn join(
        &mut self,
        conn: ConnId,
        request: JoinRequest,
        unix_now: u64,
    ) -> Result<(), SignalError> {
        let JoinRequest {
            room: room_id,
            mut name,
            password,
            token,
            session,
            sfu,
        } = request;
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        if c.member.is_some() || c.joining.is_some() {
            return Err(SignalError::AlreadyJoined);
        }
        if self.draining {
            return Err(SignalError::Draining);
        }
        let mut admin = false;
        if let Some(secret) = &self.config.join_secret {
            let claims =
                token::verify_for_room(secret.as_bytes(), token.as_deref(), &room_id, unix_now)
                    .map_err(SignalError::Unauthorized)?;
            if let Some(claimed) = &claims.name {
                name = crate::protocol::check_name(claimed)?;
            }
            admin = claims.admin;
        }
        if let Some(node) = self.config.node.clone() {
            let peer = PeerInfo {
                id: PeerId(format!("{node}-p{}", self.next_peer)),
                name,
                admin,
                tag: session.as_deref().map(session_tag),
            };
            self.next_peer += 1;
            let member = crate::protocol::Member { peer, node, sfu };
            self.join_cluster(conn, &room_id, member, password, admin);
            return Ok(());
        }
        let ice_servers = c.ice_servers.to_list();
        if let Some(room) = self.rooms.get(room_id.as_str()) {
            if !admin
                && let Some(expected) = &room.password
                && !password
                    .as_deref()
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()))
            {
                return Err(SignalError::BadPassword);
            }
            let limit = self.room_limit(room, sfu);
            if room.members.len() >= limit {
                return Err(SignalError::RoomFull(limit));
            }
        } else if self.rooms.len() >= self.config.max_rooms {
            return Err(SignalError::TooManyRooms(self.config.max_rooms));
        }
        let peer = PeerInfo {
            id: PeerId(format!("p{}", self.next_peer)),
            name,
            admin,
            tag: session.as_deref().map(session_tag),
        };
        self.next_peer += 1;
        self.peers += 1;
        self.joins += 1;
        let key: Arc<str> = match self.rooms.get_key_value(room_id.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(room_id.as_str()),
        };
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            password,
            members: Vec::with_capacity(self.config.room_size.min(4)),
            ..Room::default()
        });
        let others: Vec<ConnId> = room.members.clone();
        room.members.push(conn);
        let peers: Vec<PeerInfo> = others
            .iter()
            .filter_map(|m| self.conns.get(m)?.member.as_ref().map(|mm| mm.peer.clone()))
            .collect();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some(Box::new(Membership {
                room: key.clone(),
                peer: peer.clone(),
                sfu,
            }));
        }
        self.send(
            conn,
            ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                room: room_id,
                you: peer.id.clone(),
                peers,
                ice_servers,
            },
        );
        for other in others {
            self.send(other, ServerMessage::PeerJoined { peer: peer.clone() });
        }
        self.update_mode(&key, Some(conn));
        Ok(())
    }

    /// Takes `conn` out of its room, announcing it to the others.
    fn leave(&mut self, conn: ConnId, reason: LeaveReason) {
        let Some(member) = self.conns.get_mut(&conn).and_then(|c| c.member.take()) else {
            return;
        };
        self.peers = self.peers.saturating_sub(1);
        let Some(room) = self.rooms.get_mut(&member.room) else {
            return;
        };
        if room.mode == RoomMode::Sfu {
            let at = room.sfu_at.clone();
            let leave = SfuCommand::Leave {
                peer: member.peer.id.clone(),
            };
            self.send_to_session(&member.room, at.as_ref(), leave);
        }
        let Some(room) = self.rooms.get_mut(&member.room) else {
            return;
        };
        room.members.retain(|m| *m != conn);
        let others = room.members.clone();
        if others.is_empty() && !room.cluster.admitting() {
            self.rooms.remove(&member.room);
        }
        self.leave_cluster(&member.room, &member.peer.id, reason);
        for other in others {
            self.send(
                other,
                ServerMessage::PeerLeft {
                    id: member.peer.id.clone(),
                    reason,
                },
            );
        }
        self.update_mode(&member.room, None);
    }

    fn send(&mut self, to: ConnId, message: ServerMessage) {
        if let ServerMessage::Error { code, .. } = &message
            && let Some(n) = self.errors.get_mut(code.index())
        {
            *n += 1;
        }
        self.out.push_back(Output::Send { to, message });
    }
}

/// The fields of a `join`.
struct JoinRequest {
    room: String,
    name: String,
    password: Option<String>,
    token: Option<String>,
    session: Option<String>,
    sfu: bool,
}

/// The public tag of a client session: HMAC-SHA256 under a fixed key,
/// base64url, 22 characters (128 bits). One-way, so seeing a peer's tag does
/// not let anyone claim its session; the same on every server, so it
/// survives a restart.
fn session_tag(session: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(b"switchboard session tag v1");
    key.ok()
        .and_then(|k| {
            jsonwebtoken::crypto::sign(session.as_bytes(), &k, jsonwebtoken::Algorithm::HS256).ok()
        })
        .map(|t| t.chars().take(22).collect())
        .unwrap_or_default()
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
