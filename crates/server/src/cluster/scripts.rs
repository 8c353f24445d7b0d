//! The cluster's state in Redis: key names, and the Lua scripts that change
//! it atomically (admission, leave, re-registration, sweeping dead nodes),
//! with their replies read into the hub's types. The layout is in
//! `docs/cluster.md`.

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};
use signal::{Admission, JoinTicket, Member, NodeId, PeerId, RoomLimits, SignalError};

/// Every key and channel starts with this.
pub const PREFIX: &str = "sb:";

/// The channel a node listens on.
pub fn node_channel(node: &NodeId) -> String {
    format!("{PREFIX}to:{node}")
}

/// The channel every node listens on.
pub fn all_channel() -> String {
    format!("{PREFIX}all")
}

/// A node's liveness key (refreshed every second, expires after 3).
pub fn alive_key(node: &NodeId) -> String {
    format!("{PREFIX}alive:{node}")
}

/// The set of nodes.
pub fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

/// The keys the room scripts take: member hash, password hash, version,
/// open rooms, the node's rooms.
fn room_keys(room: &str, node: &NodeId) -> [String; 5] {
    [
        format!("{PREFIX}room:{room}:m"),
        format!("{PREFIX}room:{room}:pw"),
        format!("{PREFIX}room:{room}:v"),
        format!("{PREFIX}rooms"),
        format!("{PREFIX}node:{node}:rooms"),
    ]
}

/// The scripts, loaded once (EVALSHA, EVAL when Redis lost them).
pub struct Scripts {
    admit: Script,
    leave: Script,
    register: Script,
    snapshot: Script,
    sweep: Script,
}

/// What a room script answered: the room's version and its members.
pub struct RoomState {
    pub version: u64,
    pub members: Vec<Member>,
}

impl RoomState {
    /// The nodes of the members, each once, without `except`.
    pub fn nodes(&self, except: &NodeId) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .members
            .iter()
            .map(|m| m.node.clone())
            .filter(|n| n != except)
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            admit: Script::new(concat!(
                include_str!("version.lua"),
                include_str!("admit.lua")
            )),
            leave: Script::new(concat!(
                include_str!("version.lua"),
                include_str!("leave.lua")
            )),
            register: Script::new(concat!(
                include_str!("version.lua"),
                include_str!("register.lua")
            )),
            snapshot: Script::new(include_str!("snapshot.lua")),
            sweep: Script::new(concat!(
                include_str!("version.lua"),
                include_str!("sweep.lua")
            )),
        }
    }

    /// Runs the admission script for `ticket`.
    pub async fn admit(
        &self,
        con: &mut impl ConnectionLike,
        ticket: &JoinTicket,
        member: &Member,
        password: Option<&str>,
        admin: bool,
        limits: RoomLimits,
    ) -> RedisResult<Admission> {
        let json = serde_json::to_string(member).unwrap_or_default();
        let reply: Vec<Value> = self
            .admit
            .key(&room_keys(&ticket.room, &member.node))
            .arg(&*ticket.room)
            .arg(&ticket.peer.0)
            .arg(json)
            .arg(password.unwrap_or(""))
            .arg(if admin { "1" } else { "0" })
            .arg(limits.room_size)
            .arg(limits.sfu_room_size)
            .arg(limits.max_rooms)
            .arg(if member.sfu { "1" } else { "0" })
            .invoke_async(con)
            .await?;
        let mut parts = reply.into_iter();
        let head = parts.next().and_then(text).unwrap_or_default();
        let second = parts.next();
        let limit = second
            .as_ref()
            .and_then(|v| text(v.clone()))
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        Ok(match head.as_str() {
            "ok" => {
                let state = room_state(second, parts.next());
                Admission::Admitted {
                    version: state.version,
                    members: state.members,
                }
            }
            "room-full" => Admission::Refused(SignalError::RoomFull(limit)),
            "too-many-rooms" => Admission::Refused(SignalError::TooManyRooms(limit)),
            "bad-password" => Admission::Refused(SignalError::BadPassword),
            _ => Admission::Refused(SignalError::Unavailable),
        })
    }

    /// Runs the leave script for each of `leaves` (room, peer of `node`)
    /// in one pipeline, the script loaded first in it (a Redis that
    /// restarted empty has it then): each one's answer in order, `None`
    /// where the peer was not in the room (a leave is idempotent).
    pub async fn leave(
        &self,
        con: &mut impl ConnectionLike,
        leaves: &[(&str, &PeerId)],
        node: &NodeId,
    ) -> RedisResult<Vec<Option<RoomState>>> {
        let calls: Vec<_> = leaves
            .iter()
            .map(|(room, peer)| {
                let mut call = self.leave.key(&room_keys(room, node));
                call.arg(*room).arg(&peer.0).arg(format!("{node}-p"));
                call
            })
            .collect();
        let mut pipe = redis::pipe();
        pipe.load_script(&self.leave).ignore();
        for call in &calls {
            pipe.invoke_script(call);
        }
        let replies: Vec<Vec<Value>> = pipe.query_async(con).await?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                let mut parts = reply.into_iter();
                if parts.next().and_then(text).as_deref() != Some("ok") {
                    return None;
                }
                Some(room_state(parts.next(), parts.next()))
            })
            .collect())
    }

    /// Puts `members` (of `node`) back into `room`.
    pub async fn register(
        &self,
        con: &mut impl ConnectionLike,
        room: &str,
        node: &NodeId,
        password: Option<&str>,
        members: &[Member],
    ) -> RedisResult<RoomState> {
        let mut call = self.register.key(&room_keys(room, node));
        call.arg(room).arg(password.unwrap_or(""));
        for m in members {
            call.arg(&m.peer.id.0)
                .arg(serde_json::to_string(m).unwrap_or_default());
        }
        let reply: Vec<Value> = call.invoke_async(con).await?;
        let mut parts = reply.into_iter();
        Ok(room_state(parts.next(), parts.next()))
    }

    /// `room`'s members now.
    pub async fn snapshot(
        &self,
        con: &mut impl ConnectionLike,
        room: &str,
        node: &NodeId,
    ) -> RedisResult<RoomState> {
        let [members, _, version, _, _] = room_keys(room, node);
        let reply: Vec<Value> = self
            .snapshot
            .key(members)
            .key(version)
            .invoke_async(con)
            .await?;
        let mut parts = reply.into_iter();
        Ok(room_state(parts.next(), parts.next()))
    }

    /// Removes the nodes whose liveness key expired (never `me`); returns
    /// them.
    pub async fn sweep(
        &self,
        con: &mut impl ConnectionLike,
        me: &NodeId,
    ) -> RedisResult<Vec<NodeId>> {
        let gone: Vec<String> = self
            .sweep
            .key(nodes_key())
            .arg(PREFIX)
            .arg(me.as_str())
            .invoke_async(con)
            .await?;
        Ok(gone.iter().filter_map(|n| NodeId::new(n)).collect())
    }
}

/// A script's `version, {member JSON…}` pair.
fn room_state(version: Option<Value>, members: Option<Value>) -> RoomState {
    let version = version
        .and_then(text)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let entries = match members {
        Some(Value::Array(items)) | Some(Value::Set(items)) => items,
        _ => Vec::new(),
    };
    let total = entries.len();
    let members: Vec<Member> = entries
        .into_iter()
        .filter_map(text)
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect();
    if members.len() < total {
        // Not written by a node of this version: skipped, not half-read.
        tracing::warn!(
            skipped = total - members.len(),
            "cluster: room members in Redis that do not parse"
        );
    }
    RoomState { version, members }
}

/// A reply element as text, if it is a string or a number.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}
