//! Cluster mode (`--redis URL`): the driver between the hub's
//! [`ClusterOutput`]s and Redis. See `docs/cluster.md`.
//!
//! One task owns the Redis connection (the `redis` crate's connection
//! manager: reconnects by itself, RESP3 push for pub/sub, resubscribes
//! after a reconnect) and works through the hub's requests in order, so
//! what one node publishes to another arrives in the order the hub said it.
//! Every second it refreshes this node's liveness key and, once it has been
//! connected for [`RESYNC_GRACE`], sweeps the nodes whose key expired and
//! tells everyone they are gone.
//!
//! While Redis is unreachable the node goes on with what it has: rooms
//! already joined keep relaying between the peers on this node, joins are
//! refused with `unavailable`, leaves are kept and replayed. When Redis is
//! back the hub is told ([`ClusterInput::Up`]) and registers its rooms
//! again. `/readyz` answers 503 meanwhile.

mod client;
mod scripts;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use signal::{
    Admission, ClusterOutput, JoinTicket, LeaveReason, Member, NodeId, NodeMessage, PeerId,
    RESYNC_GRACE, SignalError, parse_node_message,
};
use tokio::sync::{mpsc, watch};

pub use client::{RedisTls, check_url};
use scripts::Scripts;

/// How long one Redis request may take before the node counts Redis as
/// unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a liveness key lives without a refresh (refreshed every second).
const ALIVE_MS: u64 = 3000;
/// Requests taken in one go (publishes among them share a round trip).
const BATCH: usize = 256;

/// What the cluster tells the hub.
pub enum ClusterInput {
    /// The answer to an admission.
    Admission(JoinTicket, Admission),
    /// A message of another node.
    Node(NodeMessage),
    /// A room's members (after a register: add only; after a read: all).
    Snapshot {
        room: Arc<str>,
        version: u64,
        members: Vec<Member>,
        authoritative: bool,
    },
    /// Redis is reachable again.
    Up,
}

/// Hands a [`ClusterInput`] to the hub.
pub type Deliver = Box<dyn Fn(ClusterInput) + Send + Sync>;

/// Counters of the cluster driver, for metrics.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub up: AtomicBool,
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub bad_messages: AtomicU64,
    pub dropped_while_down: AtomicU64,
    pub nodes_swept: AtomicU64,
}

/// A copy of [`ClusterStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounters {
    pub up: bool,
    pub published: u64,
    pub received: u64,
    pub bad_messages: u64,
    pub dropped_while_down: u64,
    pub nodes_swept: u64,
}

impl ClusterStats {
    pub fn snapshot(&self) -> ClusterCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClusterCounters {
            up: self.up.load(Ordering::Relaxed),
            published: get(&self.published),
            received: get(&self.received),
            bad_messages: get(&self.bad_messages),
            dropped_while_down: get(&self.dropped_while_down),
            nodes_swept: get(&self.nodes_swept),
        }
    }
}

/// The running driver; dropping it stops nothing (it stops when told to
/// [`finish`](ClusterBus::finish), or with the runtime).
pub struct ClusterBus {
    requests: mpsc::UnboundedSender<ClusterOutput>,
    stats: Arc<ClusterStats>,
    node: NodeId,
    finish: watch::Sender<bool>,
    finished: watch::Receiver<bool>,
}

impl ClusterBus {
    /// Starts the driver for `node` on the Redis at `url` (`redis://` or
    /// `rediss://`, password and database in it; `tls`: its files). It
    /// connects in the background: an unreachable Redis is retried, never
    /// fatal.
    pub fn start(
        url: &str,
        tls: &RedisTls,
        node: NodeId,
        deliver: Deliver,
    ) -> anyhow::Result<ClusterBus> {
        let client = client::client(url, tls)?;
        let where_ = client.get_connection_info().addr().to_string();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let con = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
        let (requests, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ClusterStats::default());
        let driver = Driver {
            con,
            node: node.clone(),
            token: format!("{:016x}", rand::random::<u64>()),
            scripts: Scripts::new(),
            deliver,
            stats: stats.clone(),
            up_since: None,
            claimed: false,
            warned: false,
            leaves: VecDeque::new(),
            where_,
        };
        let (finish, finish_rx) = watch::channel(false);
        let (finished_tx, finished) = watch::channel(false);
        tokio::spawn(async move {
            driver.run(rx, push_rx, finish_rx).await;
            let _ = finished_tx.send(true);
        });
        Ok(ClusterBus {
            requests,
            stats,
            node,
            finish,
            finished,
        })
    }

    /// A request of the hub.
    pub fn send(&self, request: ClusterOutput) {
        let _ = self.requests.send(request);
    }

    /// Runs what the hub asked so far (its last leaves), takes this node
    /// out of Redis, and stops the driver; waits for that at most `limit`.
    pub async fn finish(&self, limit: Duration) {
        let _ = self.finish.send(true);
        let mut finished = self.finished.clone();
        let _ = tokio::time::timeout(limit, finished.wait_for(|f| *f)).await;
    }

    /// Whether Redis is reachable now.
    pub fn is_up(&self) -> bool {
        self.stats.up.load(Ordering::Relaxed)
    }

    /// The driver's counters.
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// This node.
    pub fn node(&self) -> &NodeId {
        &self.node
    }
}

/// The node id: `--node-id` (checked at start), else a random one.
pub fn node_id(configured: Option<&str>) -> NodeId {
    configured
        .and_then(NodeId::new)
        .or_else(|| NodeId::new(&format!("n{:08x}", rand::random::<u32>())))
        .unwrap_or_else(|| unreachable!("n and 8 hex digits are a node id"))
}

struct Driver {
    con: ConnectionManager,
    node: NodeId,
    /// This process's value of the liveness key: another process with the
    /// same node id is told apart by it.
    token: String,
    scripts: Scripts,
    deliver: Deliver,
    stats: Arc<ClusterStats>,
    /// Connected since (None: Redis unreachable).
    up_since: Option<Instant>,
    /// The liveness key is ours (set NX once).
    claimed: bool,
    /// "Unreachable" was logged since the last time Redis answered.
    warned: bool,
    /// Leaves that could not reach Redis, replayed when it is back.
    leaves: VecDeque<(Arc<str>, PeerId, LeaveReason)>,
    /// Where Redis is (host:port, never the password).
    where_: String,
}

impl Driver {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<ClusterOutput>,
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
        mut finish: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                first = requests.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match requests.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    self.requests(batch).await;
                }
                Some(push) = pushes.recv() => self.push(push),
                _ = tick.tick() => self.heartbeat().await,
                finishing = async { finish.wait_for(|f| *f).await.is_ok() } => {
                    if !finishing {
                        return;
                    }
                    // What the hub asked before the end still goes out (the
                    // leaves of the last connections, above all).
                    let mut batch = Vec::new();
                    while let Ok(r) = requests.try_recv() {
                        batch.push(r);
                    }
                    self.requests(batch).await;
                    if self.up_since.is_some() {
                        // Gone at once rather than when the key expires.
                        let _: Result<(), _> = redis::cmd("DEL")
                            .arg(scripts::alive_key(&self.node))
                            .exec_async(&mut self.con)
                            .await;
                    }
                    return;
                }
            }
        }
    }

    /// Works through the hub's requests in order; consecutive publishes go
    /// out in one pipeline, and so do consecutive leaves (a node whose
    /// browsers all went at once does not hold the others' messages up
    /// for a round trip per leave).
    async fn requests(&mut self, batch: Vec<ClusterOutput>) {
        let mut publishes: Vec<(NodeId, String)> = Vec::new();
        for request in batch {
            match request {
                ClusterOutput::Publish { node, message } => {
                    self.replay_leaves().await;
                    publishes.push((node, message.to_json()));
                }
                ClusterOutput::Leave { room, peer, reason } => {
                    self.publish(std::mem::take(&mut publishes)).await;
                    self.leaves.push_back((room, peer, reason));
                }
                request => {
                    self.publish(std::mem::take(&mut publishes)).await;
                    self.replay_leaves().await;
                    self.request(request).await;
                }
            }
        }
        self.publish(publishes).await;
        self.replay_leaves().await;
    }

    async fn publish(&mut self, messages: Vec<(NodeId, String)>) {
        if messages.is_empty() {
            return;
        }
        let n = messages.len() as u64;
        if self.up_since.is_none() {
            self.stats
                .dropped_while_down
                .fetch_add(n, Ordering::Relaxed);
            return;
        }
        let mut pipe = redis::pipe();
        for (node, text) in &messages {
            pipe.cmd("PUBLISH")
                .arg(scripts::node_channel(node))
                .arg(text)
                .ignore();
        }
        match pipe.exec_async(&mut self.con).await {
            Ok(()) => {
                self.stats.published.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .dropped_while_down
                    .fetch_add(n, Ordering::Relaxed);
                self.down(&e);
            }
        }
    }

    async fn request(&mut self, request: ClusterOutput) {
        match request {
            ClusterOutput::Admit {
                ticket,
                member,
                password,
                admin,
                limits,
            } => {
                let answer = if self.up_since.is_none() {
                    Admission::Refused(SignalError::Unavailable)
                } else {
                    let r = self
                        .scripts
                        .admit(
                            &mut self.con,
                            &ticket,
                            &member,
                            password.as_deref(),
                            admin,
                            limits,
                        )
                        .await;
                    r.unwrap_or_else(|e| {
                        self.down(&e);
                        Admission::Refused(SignalError::Unavailable)
                    })
                };
                (self.deliver)(ClusterInput::Admission(ticket, answer));
            }
            ClusterOutput::Leave { room, peer, reason } => {
                self.leaves.push_back((room, peer, reason));
                self.replay_leaves().await;
            }
            ClusterOutput::Register {
                room,
                password,
                members,
            } => {
                if self.up_since.is_none() {
                    return;
                }
                let r = self
                    .scripts
                    .register(
                        &mut self.con,
                        &room,
                        &self.node,
                        password.as_deref(),
                        &members,
                    )
                    .await;
                match r {
                    Ok(state) => {
                        // The others learn our members (again): a node
                        // that swept us, or lost them with Redis. One
                        // round trip for all of them.
                        let mut messages = Vec::new();
                        for node in state.nodes(&self.node) {
                            for m in &members {
                                let message = NodeMessage::Joined {
                                    room: room.to_string(),
                                    version: state.version,
                                    member: m.clone(),
                                };
                                messages.push((node.clone(), message.to_json()));
                            }
                        }
                        self.publish(messages).await;
                        (self.deliver)(ClusterInput::Snapshot {
                            room,
                            version: state.version,
                            members: state.members,
                            authoritative: false,
                        });
                    }
                    Err(e) => self.down(&e),
                }
            }
            ClusterOutput::Snapshot { room } => {
                if self.up_since.is_none() {
                    return;
                }
                match self
                    .scripts
                    .snapshot(&mut self.con, &room, &self.node)
                    .await
                {
                    Ok(state) => (self.deliver)(ClusterInput::Snapshot {
                        room,
                        version: state.version,
                        members: state.members,
                        authoritative: true,
                    }),
                    Err(e) => self.down(&e),
                }
            }
            ClusterOutput::Publish { node, message } => {
                self.publish(vec![(node, message.to_json())]).await;
            }
        }
    }

    /// Runs the leaves waiting, in order, while Redis answers, up to
    /// [`BATCH`] in one round trip; each one's room's other nodes are told.
    async fn replay_leaves(&mut self) {
        while self.up_since.is_some() && !self.leaves.is_empty() {
            let n = self.leaves.len().min(BATCH);
            let batch: Vec<(&str, &PeerId)> = self
                .leaves
                .iter()
                .take(n)
                .map(|(room, peer, _)| (&**room, peer))
                .collect();
            match self.scripts.leave(&mut self.con, &batch, &self.node).await {
                Ok(states) => {
                    let mut messages = Vec::new();
                    for ((room, peer, reason), state) in self.leaves.drain(..n).zip(states) {
                        let Some(state) = state else { continue };
                        for node in state.nodes(&self.node) {
                            let message = NodeMessage::Left {
                                room: room.to_string(),
                                version: state.version,
                                peer: peer.clone(),
                                reason,
                            };
                            messages.push((node, message.to_json()));
                        }
                    }
                    self.publish(messages).await;
                }
                Err(e) => self.down(&e),
            }
        }
    }

    /// A push from Redis: a message on one of our channels, or the
    /// connection lost.
    fn push(&mut self, push: PushInfo) {
        match push.kind {
            PushKind::Message => {
                let text = push.data.into_iter().nth(1).and_then(|v| match v {
                    Value::BulkString(b) => String::from_utf8(b).ok(),
                    Value::SimpleString(s) => Some(s),
                    _ => None,
                });
                match text.as_deref().map(parse_node_message) {
                    Some(Ok(m)) => {
                        self.stats.received.fetch_add(1, Ordering::Relaxed);
                        (self.deliver)(ClusterInput::Node(m));
                    }
                    Some(Err(e)) => {
                        self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("cluster: dropped a message: {e}");
                    }
                    None => {
                        self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            PushKind::Disconnection => {
                self.down(&redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connection lost",
                )));
            }
            _ => {}
        }
    }

    /// Every second: refresh the liveness key; on the way up, subscribe
    /// and tell the hub; once up long enough, sweep dead nodes.
    async fn heartbeat(&mut self) {
        let alive = scripts::alive_key(&self.node);
        let mut set = redis::cmd("SET");
        set.arg(&alive).arg(&self.token).arg("PX").arg(ALIVE_MS);
        if !self.claimed {
            set.arg("NX");
        }
        let claimed: Result<Option<String>, _> = set.query_async(&mut self.con).await;
        match claimed {
            Ok(Some(_)) => self.claimed = true,
            Ok(None) => {
                // Someone holds our node id: ours only if the token is.
                let holder: Result<Option<String>, _> = redis::cmd("GET")
                    .arg(&alive)
                    .query_async(&mut self.con)
                    .await;
                if holder.ok().flatten().as_deref() != Some(self.token.as_str()) {
                    tracing::error!(
                        node = %self.node,
                        "cluster: another live node has this node id (--node-id); waiting for it to go"
                    );
                    return;
                }
                self.claimed = true;
            }
            Err(e) => {
                self.down(&e);
                return;
            }
        }
        let registered: Result<(), _> = redis::cmd("SADD")
            .arg(scripts::nodes_key())
            .arg(self.node.as_str())
            .exec_async(&mut self.con)
            .await;
        if let Err(e) = registered {
            self.down(&e);
            return;
        }
        let Some(since) = self.up_since else {
            self.up().await;
            return;
        };
        if since.elapsed() < RESYNC_GRACE {
            return;
        }
        match self.scripts.sweep(&mut self.con, &self.node).await {
            Ok(gone) => {
                for node in gone {
                    tracing::info!(%node, "cluster: node gone (no heartbeat); its peers leave their rooms");
                    self.stats.nodes_swept.fetch_add(1, Ordering::Relaxed);
                    let message = NodeMessage::NodeGone { node };
                    let r: Result<(), _> = redis::cmd("PUBLISH")
                        .arg(scripts::all_channel())
                        .arg(message.to_json())
                        .exec_async(&mut self.con)
                        .await;
                    if let Err(e) = r {
                        self.down(&e);
                        return;
                    }
                }
            }
            Err(e) => self.down(&e),
        }
    }

    /// Redis answers again (or for the first time).
    async fn up(&mut self) {
        let subscribed = async {
            self.con
                .subscribe(scripts::node_channel(&self.node))
                .await?;
            self.con.subscribe(scripts::all_channel()).await
        }
        .await;
        if let Err(e) = subscribed {
            self.down(&e);
            return;
        }
        tracing::info!(node = %self.node, redis = %self.where_, "cluster: connected to Redis");
        self.up_since = Some(Instant::now());
        self.warned = false;
        self.stats.up.store(true, Ordering::Relaxed);
        self.replay_leaves().await;
        (self.deliver)(ClusterInput::Up);
    }

    /// A request failed: Redis counts as unreachable until a heartbeat
    /// gets through.
    fn down(&mut self, e: &redis::RedisError) {
        self.up_since = None;
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                redis = %self.where_,
                "cluster: Redis unreachable ({e}); rooms on this node go on, new joins wait"
            );
        }
        self.claimed = false;
        self.stats.up.store(false, Ordering::Relaxed);
    }
}
