//! Hubs as nodes of one cluster, with a model of the Redis side (the
//! admission and leave scripts' rules, pub/sub delivered in order). The
//! real scripts against a real Redis are tested by the server's cluster
//! tests; these show the hub's side: who is told what, and when.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::error::{ErrorCode, SignalError};
use crate::hub::{HubConfig, SfuCommand, SfuPolicy};
use crate::protocol::RoomMode;
use serde_json::json;

const UNIX_NOW: u64 = 1_800_000_000;

#[derive(Default)]
struct RedisModel {
    rooms: BTreeMap<String, (u64, Vec<Member>, Option<String>)>,
    /// Messages published, in order: (to node, message).
    bus: VecDeque<(NodeId, NodeMessage)>,
    /// Admissions and snapshots held back (to reorder them).
    hold: bool,
    held: Vec<(usize, JoinTicket, Admission)>,
    version: u64,
}

impl RedisModel {
    fn admit(
        &mut self,
        member: Member,
        password: Option<String>,
        admin: bool,
        limits: RoomLimits,
        room: &str,
    ) -> Admission {
        let open = self.rooms.len();
        self.version += 1;
        let v = self.version;
        match self.rooms.get_mut(room) {
            None => {
                if open >= limits.max_rooms {
                    return Admission::Refused(SignalError::TooManyRooms(limits.max_rooms));
                }
                self.rooms
                    .insert(room.to_owned(), (v, vec![member.clone()], password));
                Admission::Admitted {
                    version: v,
                    members: vec![member],
                }
            }
            Some((version, members, pw)) => {
                if !admin && pw.is_some() && *pw != password {
                    return Admission::Refused(SignalError::BadPassword);
                }
                if members.len() >= limits.room_size {
                    return Admission::Refused(SignalError::RoomFull(limits.room_size));
                }
                members.push(member);
                *version = v;
                Admission::Admitted {
                    version: v,
                    members: members.clone(),
                }
            }
        }
    }
}

struct Cluster {
    hubs: Vec<Hub>,
    redis: RedisModel,
    now: Instant,
    /// Everything each node sent to its connections: (node, conn, message).
    sent: Vec<(usize, ConnId, ServerMessage)>,
    /// What each node told its SFU: (node, command).
    sfu: Vec<(usize, SfuCommand)>,
}

impl Cluster {
    fn new(nodes: usize, config: HubConfig) -> Cluster {
        let hubs = (0..nodes)
            .map(|i| {
                Hub::new(HubConfig {
                    node: NodeId::new(&format!("n{i}")),
                    ..config.clone()
                })
            })
            .collect();
        Cluster {
            hubs,
            redis: RedisModel::default(),
            now: Instant::now(),
            sent: Vec::new(),
            sfu: Vec::new(),
        }
    }

    fn node_index(node: &NodeId) -> usize {
        node.as_str()
            .trim_start_matches('n')
            .parse()
            .unwrap_or(usize::MAX)
    }

    /// Runs every hub's outputs against the model until all is quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.hubs.len() {
                while let Some(out) = self.hubs[i].poll_output() {
                    busy = true;
                    self.run(i, out);
                }
            }
            if let Some((to, m)) = self.redis.bus.pop_front() {
                busy = true;
                if let Some(hub) = self.hubs.get_mut(Self::node_index(&to)) {
                    hub.handle_node_message(m, self.now);
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn run(&mut self, i: usize, out: Output) {
        let me = self.hubs[i].node().cloned().unwrap();
        match out {
            Output::Send { to, message } => self.sent.push((i, to, message)),
            Output::Cluster(ClusterOutput::Admit {
                ticket,
                member,
                password,
                admin,
                limits,
            }) => {
                let a = self
                    .redis
                    .admit(member, password, admin, limits, &ticket.room);
                if self.redis.hold {
                    self.redis.held.push((i, ticket, a));
                } else {
                    self.hubs[i].handle_admission(ticket, a);
                }
            }
            Output::Cluster(ClusterOutput::Leave { room, peer, reason }) => {
                self.redis.version += 1;
                let v = self.redis.version;
                let Some((version, members, _)) = self.redis.rooms.get_mut(&*room) else {
                    return;
                };
                members.retain(|m| m.peer.id != peer);
                *version = v;
                let mut nodes: Vec<NodeId> = members.iter().map(|m| m.node.clone()).collect();
                nodes.sort();
                nodes.dedup();
                if members.is_empty() {
                    self.redis.rooms.remove(&*room);
                }
                for n in nodes.into_iter().filter(|n| *n != me) {
                    self.redis.bus.push_back((
                        n,
                        NodeMessage::Left {
                            room: room.to_string(),
                            version: v,
                            peer: peer.clone(),
                            reason,
                        },
                    ));
                }
            }
            Output::Cluster(ClusterOutput::Publish { node, message }) => {
                self.redis.bus.push_back((node, message));
            }
            Output::Cluster(ClusterOutput::Register {
                room,
                password,
                members,
            }) => {
                self.redis.version += 1;
                let v = self.redis.version;
                let entry =
                    self.redis
                        .rooms
                        .entry(room.to_string())
                        .or_insert((v, Vec::new(), password));
                for m in members {
                    if !entry.1.iter().any(|x| x.peer.id == m.peer.id) {
                        entry.1.push(m);
                    }
                }
                entry.0 = v;
                let all = entry.1.clone();
                self.hubs[i].handle_room_snapshot(&room, v, all, false);
            }
            Output::Cluster(ClusterOutput::Snapshot { room }) => {
                let (v, all) = self
                    .redis
                    .rooms
                    .get(&*room)
                    .map(|(v, m, _)| (*v, m.clone()))
                    .unwrap_or_default();
                self.hubs[i].handle_room_snapshot(&room, v, all, true);
            }
            Output::Sfu(command) => self.sfu.push((i, command)),
            Output::Ping { .. } | Output::Close { .. } => {}
        }
    }

    fn connect(&mut self, node: usize, conn: u64) {
        self.hubs[node].handle_connect(ConnId(conn), Default::default(), self.now);
    }

    fn text(&mut self, node: usize, conn: u64, v: serde_json::Value) {
        self.hubs[node].handle_text(ConnId(conn), &v.to_string(), self.now, UNIX_NOW);
        self.settle();
    }

    fn join(&mut self, node: usize, conn: u64, room: &str, name: &str) {
        self.connect(node, conn);
        self.text(
            node,
            conn,
            json!({"type":"join","v":1,"room":room,"name":name}),
        );
    }

    /// What (node, conn) was sent, and forget it.
    fn take(&mut self, node: usize, conn: u64) -> Vec<ServerMessage> {
        let (mine, rest) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|(n, c, _)| *n == node && *c == ConnId(conn));
        self.sent = rest;
        mine.into_iter().map(|(_, _, m)| m).collect()
    }
}

fn joined_peers(msgs: &[ServerMessage]) -> Option<(PeerId, Vec<String>)> {
    msgs.iter().find_map(|m| match m {
        ServerMessage::Joined { you, peers, .. } => {
            Some((you.clone(), peers.iter().map(|p| p.name.clone()).collect()))
        }
        _ => None,
    })
}

fn errors(msgs: &[ServerMessage]) -> Vec<ErrorCode> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn peers_on_two_nodes_see_each_other_relay_and_leave() {
    let mut c = Cluster::new(2, HubConfig::default());
    c.join(0, 1, "r", "Ann");
    let (ann, peers) = joined_peers(&c.take(0, 1)).unwrap();
    assert_eq!(ann.0, "n0-p1");
    assert!(peers.is_empty());
    c.join(1, 1, "r", "Ben");
    let (ben, peers) = joined_peers(&c.take(1, 1)).unwrap();
    assert_eq!((ben.0.as_str(), peers), ("n1-p1", vec!["Ann".to_owned()]));
    assert!(matches!(
        c.take(0, 1).as_slice(),
        [ServerMessage::PeerJoined { peer }] if peer.id == ben
    ));

    // Written by hand: the payload's text must arrive as it was sent.
    let offer = format!(r#"{{"type":"offer","to":"{ann}","data":{{"sdp":"v=0","n":1.10}}}}"#);
    c.hubs[1].handle_text(ConnId(1), &offer, c.now, UNIX_NOW);
    c.settle();
    let got = c.take(0, 1);
    let [ServerMessage::Offer { from, data }] = got.as_slice() else {
        panic!("{got:?}");
    };
    assert_eq!((from, data.get()), (&ben, r#"{"sdp":"v=0","n":1.10}"#));
    assert_eq!(c.hubs[1].stats().relayed, 1);
    c.text(1, 1, json!({"type":"message","to":"n0-p9","data":1}));
    assert_eq!(errors(&c.take(1, 1)), vec![ErrorCode::UnknownPeer]);

    c.hubs[0].handle_disconnect(ConnId(1));
    c.settle();
    assert!(matches!(
        c.take(1, 1).as_slice(),
        [ServerMessage::PeerLeft { id, reason: LeaveReason::Disconnected }] if *id == ann
    ));
    assert_eq!(c.hubs[0].room_count(), 0);
    assert_eq!(c.redis.rooms["r"].1.len(), 1);
}

#[test]
fn room_size_and_password_hold_across_nodes() {
    let mut c = Cluster::new(
        3,
        HubConfig {
            room_size: 2,
            ..HubConfig::default()
        },
    );
    c.connect(0, 1);
    c.text(
        0,
        1,
        json!({"type":"join","v":1,"room":"r","name":"Ann","password":"s3cret"}),
    );
    c.connect(1, 1);
    c.text(
        1,
        1,
        json!({"type":"join","v":1,"room":"r","name":"Ben","password":"guess"}),
    );
    assert_eq!(errors(&c.take(1, 1)), vec![ErrorCode::BadPassword]);
    assert_eq!(c.hubs[1].room_count(), 0, "a refused join leaves nothing");
    c.text(
        1,
        1,
        json!({"type":"join","v":1,"room":"r","name":"Ben","password":"s3cret"}),
    );
    assert!(joined_peers(&c.take(1, 1)).is_some());
    c.connect(2, 1);
    c.text(
        2,
        1,
        json!({"type":"join","v":1,"room":"r","name":"Cleo","password":"s3cret"}),
    );
    assert_eq!(errors(&c.take(2, 1)), vec![ErrorCode::RoomFull]);
    // Redis holds a hash of the password, never the password.
    let stored = c.redis.rooms["r"].2.clone().unwrap();
    assert!(!stored.contains("s3cret"));
    assert_eq!(stored, password_hash("r", "s3cret"));
    assert_ne!(stored, password_hash("r2", "s3cret"));
}

#[test]
fn events_racing_an_admission_are_applied_once_and_in_order() {
    let mut c = Cluster::new(3, HubConfig::default());
    c.join(0, 1, "r", "Ann");
    c.take(0, 1);
    // Ben's admission (node 1) is answered late; meanwhile Cleo joins on
    // node 2 and Ann leaves: node 1 hears both before its answer.
    c.redis.hold = true;
    c.join(1, 1, "r", "Ben");
    c.redis.hold = false;
    c.join(2, 1, "r", "Cleo");
    c.hubs[0].handle_disconnect(ConnId(1));
    c.settle();
    let (i, ticket, answer) = c.redis.held.pop().unwrap();
    c.hubs[i].handle_admission(ticket, answer);
    c.settle();
    let got = c.take(1, 1);
    // Ben's snapshot (taken before Cleo and the leave) has Ann only; the
    // newer events follow it: Cleo joins, Ann leaves.
    assert_eq!(joined_peers(&got).unwrap().1, vec!["Ann".to_owned()]);
    let after: Vec<String> = got
        .iter()
        .filter_map(|m| match m {
            ServerMessage::PeerJoined { peer } => Some(format!("+{}", peer.name)),
            ServerMessage::PeerLeft { id, .. } => Some(format!("-{id}")),
            _ => None,
        })
        .collect();
    assert_eq!(after, vec!["+Cleo".to_owned(), "-n0-p1".to_owned()]);
    // Cleo, admitted after Ben, got him in her list and nothing twice.
    let cleo = c.take(2, 1);
    let (_, peers) = joined_peers(&cleo).unwrap();
    assert_eq!(peers, vec!["Ann".to_owned(), "Ben".to_owned()]);
    assert!(
        !cleo
            .iter()
            .any(|m| matches!(m, ServerMessage::PeerJoined { .. })),
        "{cleo:?}"
    );
}

#[test]
fn a_leave_older_than_a_later_join_is_not_lost() {
    let mut c = Cluster::new(2, HubConfig::default());
    c.join(0, 1, "r", "Ann");
    c.join(1, 1, "r", "Ben");
    let ann = joined_peers(&c.take(0, 1)).map(|(id, _)| id).unwrap();
    c.take(1, 1);
    // Ann leaves on n0 and Redis publishes her `left`; before n1 reads it,
    // Cleo joins on n1 and her admission (newer) comes back first.
    c.hubs[0].handle_disconnect(ConnId(1));
    while let Some(out) = c.hubs[0].poll_output() {
        c.run(0, out);
    }
    c.connect(1, 2);
    c.hubs[1].handle_text(
        ConnId(2),
        &json!({"type":"join","v":1,"room":"r","name":"Cleo"}).to_string(),
        c.now,
        UNIX_NOW,
    );
    while let Some(out) = c.hubs[1].poll_output() {
        c.run(1, out);
    }
    c.settle();
    let (_, peers) = joined_peers(&c.take(1, 2)).unwrap();
    assert_eq!(peers, vec!["Ben".to_owned()]);
    let left: Vec<PeerId> = c
        .take(1, 1)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::PeerLeft { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(left, vec![ann]);
}

#[test]
fn an_answer_for_a_connection_gone_meanwhile_takes_the_member_out_again() {
    let mut c = Cluster::new(1, HubConfig::default());
    c.redis.hold = true;
    c.join(0, 1, "r", "Ann");
    c.hubs[0].handle_disconnect(ConnId(1));
    let (i, ticket, answer) = c.redis.held.pop().unwrap();
    c.redis.hold = false;
    c.hubs[i].handle_admission(ticket, answer);
    c.settle();
    assert!(c.redis.rooms.is_empty());
    assert_eq!(c.hubs[0].room_count(), 0);
}

#[test]
fn a_dead_nodes_peers_are_announced_gone() {
    let mut c = Cluster::new(2, HubConfig::default());
    c.join(0, 1, "r", "Ann");
    c.join(1, 1, "r", "Ben");
    c.join(1, 2, "r", "Cleo");
    c.take(0, 1);
    c.hubs[0].handle_node_message(
        NodeMessage::NodeGone {
            node: NodeId::new("n1").unwrap(),
        },
        c.now,
    );
    c.settle();
    let left: Vec<String> = c
        .take(0, 1)
        .iter()
        .filter_map(|m| match m {
            ServerMessage::PeerLeft { id, .. } => Some(id.0.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(left, vec!["n1-p1".to_owned(), "n1-p2".to_owned()]);
    // Told again: nothing more.
    c.hubs[0].handle_node_message(
        NodeMessage::NodeGone {
            node: NodeId::new("n1").unwrap(),
        },
        c.now,
    );
    c.settle();
    assert!(c.take(0, 1).is_empty());
}

#[test]
fn after_redis_returns_members_are_put_back_and_stale_ones_go_after_the_grace() {
    let mut c = Cluster::new(2, HubConfig::default());
    c.join(0, 1, "r", "Ann");
    c.join(1, 1, "r", "Ben");
    c.join(1, 2, "r", "Cleo");
    c.take(0, 1);
    // Redis restarts empty; meanwhile Cleo left (nobody could be told).
    c.redis.rooms.clear();
    c.hubs[1].handle_disconnect(ConnId(2));
    while c.hubs[1].poll_output().is_some() {}
    c.redis.bus.clear();
    // Node 0 is back first: its snapshot lacks node 1's members, and
    // nobody is announced gone for that.
    c.hubs[0].handle_cluster_up(c.now);
    c.settle();
    assert!(c.take(0, 1).is_empty());
    c.hubs[1].handle_cluster_up(c.now);
    c.settle();
    assert!(c.take(0, 1).is_empty(), "Ben was known already");
    assert_eq!(c.redis.rooms["r"].1.len(), 2);
    // After the grace, the room is read again: Cleo is gone.
    let later = c.now + RESYNC_GRACE;
    assert!(c.hubs[0].poll_timeout().is_some_and(|t| t <= later));
    c.hubs[0].handle_timeout(later);
    c.settle();
    assert!(matches!(
        c.take(0, 1).as_slice(),
        [ServerMessage::PeerLeft { id, .. }] if id.0 == "n1-p2"
    ));
}

#[test]
fn rooms_joined_after_redis_came_up_are_not_read_again() {
    let mut c = Cluster::new(2, HubConfig::default());
    // The first connect: nothing to register, so nothing to read later.
    c.hubs[0].handle_cluster_up(c.now);
    c.join(0, 1, "r", "Ann");
    c.join(1, 1, "r", "Ben");
    c.settle();
    let later = c.now + RESYNC_GRACE;
    c.hubs[0].handle_timeout(later);
    let mut snapshots = 0;
    while let Some(out) = c.hubs[0].poll_output() {
        if matches!(out, Output::Cluster(ClusterOutput::Snapshot { .. })) {
            snapshots += 1;
        }
    }
    assert_eq!(snapshots, 0, "a room admitted with a snapshot is current");
    // Redis back after a loss: the room this node registered is read once.
    c.hubs[0].handle_cluster_up(later);
    c.settle();
    c.hubs[0].handle_timeout(later + RESYNC_GRACE);
    let mut read = Vec::new();
    while let Some(out) = c.hubs[0].poll_output() {
        if let Output::Cluster(ClusterOutput::Snapshot { room }) = out {
            read.push(room.to_string());
        }
    }
    assert_eq!(read, vec!["r".to_owned()]);
}

/// What each node's SFU was told since the last call (`here`: a member on
/// that node, `remote`: on another), sorted: nodes settle in no fixed order.
fn sfu_log(c: &mut Cluster) -> Vec<(usize, String)> {
    let mut log = std::mem::take(&mut c.sfu)
        .into_iter()
        .map(|(i, cmd)| {
            let what = match cmd {
                SfuCommand::Join { conn, peer, .. } => {
                    format!(
                        "join {} {}",
                        peer.0,
                        if conn.is_some() { "here" } else { "remote" }
                    )
                }
                SfuCommand::Signal { peer, .. } => format!("signal {}", peer.0),
                SfuCommand::View { peer, of, width } => format!("view {} {} {width}", peer.0, of.0),
                SfuCommand::Leave { peer } => format!("leave {}", peer.0),
            };
            (i, what)
        })
        .collect::<Vec<_>>();
    log.sort();
    log
}

fn modes(msgs: &[ServerMessage]) -> Vec<RoomMode> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Mode { mode } => Some(*mode),
            _ => None,
        })
        .collect()
}

#[test]
fn an_sfu_room_across_nodes_runs_on_one_node_and_moves_when_it_empties() {
    let mut c = Cluster::new(
        3,
        HubConfig {
            sfu: SfuPolicy::Auto,
            ..HubConfig::default()
        },
    );
    for (node, name) in [(1, "Ann"), (2, "Ben"), (0, "Cleo")] {
        c.connect(node, 1);
        c.text(
            node,
            1,
            json!({"type":"join","v":1,"room":"r","name":name,"features":["sfu"]}),
        );
    }
    // Three members: the room moves to the SFU of the least node, n0.
    for node in 0..3 {
        assert_eq!(modes(&c.take(node, 1)), vec![RoomMode::Sfu], "node {node}");
    }
    assert_eq!(
        sfu_log(&mut c),
        vec![
            (0, "join n0-p1 here".to_owned()),
            (0, "join n1-p1 remote".to_owned()),
            (0, "join n2-p1 remote".to_owned()),
        ]
    );
    // Ann's offer and view reach n0's SFU; its answer comes back to her.
    c.text(
        1,
        1,
        json!({"type":"sfu","data":{"type":"offer","sdp":"v=0"}}),
    );
    c.text(1, 1, json!({"type":"view","peer":"n2-p1","width":320}));
    assert_eq!(
        sfu_log(&mut c),
        vec![
            (0, "signal n1-p1".to_owned()),
            (0, "view n1-p1 n2-p1 320".to_owned())
        ]
    );
    let answer = RawData::from_json(r#"{"type":"answer","sdp":"v=0"}"#).unwrap();
    c.hubs[0].handle_sfu_signal(&PeerId("n1-p1".into()), answer);
    c.settle();
    assert!(matches!(
        c.take(1, 1).as_slice(),
        [ServerMessage::Sfu { data }] if data.get().contains("answer")
    ));
    // Cleo (the only member on n0) leaves: three would be too few anyway,
    // so a fourth joins first, on n2; then the session moves to n1.
    c.connect(2, 2);
    c.text(
        2,
        2,
        json!({"type":"join","v":1,"room":"r","name":"Dan","features":["sfu"]}),
    );
    assert_eq!(sfu_log(&mut c), vec![(0, "join n2-p2 remote".to_owned())]);
    assert_eq!(modes(&c.take(2, 2)), vec![RoomMode::Sfu]);
    c.hubs[0].handle_disconnect(ConnId(1));
    c.settle();
    assert_eq!(
        sfu_log(&mut c),
        vec![
            (0, "leave n0-p1".to_owned()),
            (0, "leave n1-p1".to_owned()),
            (0, "leave n2-p1".to_owned()),
            (0, "leave n2-p2".to_owned()),
            (1, "join n1-p1 here".to_owned()),
            (1, "join n2-p1 remote".to_owned()),
            (1, "join n2-p2 remote".to_owned()),
        ]
    );
    // Everyone left offers again, to the new session.
    assert_eq!(modes(&c.take(1, 1)), vec![RoomMode::Sfu]);
    assert_eq!(modes(&c.take(2, 1)), vec![RoomMode::Sfu]);
    assert_eq!(modes(&c.take(2, 2)), vec![RoomMode::Sfu]);
    // Down to two: peer to peer again, and out of n1's SFU.
    c.hubs[2].handle_disconnect(ConnId(2));
    c.settle();
    assert_eq!(
        sfu_log(&mut c),
        vec![
            (1, "leave n1-p1".to_owned()),
            (1, "leave n2-p1".to_owned()),
            (1, "leave n2-p2".to_owned()),
        ]
    );
    assert_eq!(modes(&c.take(1, 1)), vec![RoomMode::P2p]);
    assert_eq!(modes(&c.take(2, 1)), vec![RoomMode::P2p]);
}
