//! The signaling WebSocket: drives the sans-IO [`signal::Hub`] from
//! WebSocket connections ([`connection`], framed by the sans-IO
//! `websocket` crate) and a heartbeat ticker; [`upgrade`] answers the
//! opening handshake.
//!
//! The hub sits behind one mutex that is never held across an `.await`;
//! each connection has a bounded outbox, kept beside the hub under the same
//! lock and drained by the connection itself. A connection whose outbox is
//! full (a reader that stopped reading) is dropped.
//!
//! Memory per connection is what it holds: 10 000 idle connections must fit
//! in a few tens of MiB. Between messages a connection keeps no read or
//! write buffer (see [`connection`]); the outbox is an empty queue that
//! allocates when a message waits and frees its storage when drained; a
//! connection is one task, one hand-written future (no channel, no timer,
//! no second task); the hub keeps the ICE server list once per host name,
//! and per connection only its TURN credential.
//!
//! SFU rooms: the hub's [`Output::Sfu`] commands go to the running
//! [`SfuServer`] (attached with [`Signaling::attach_sfu`]), each `Join` with
//! the server address that member's WebSocket reached; the SFU's SDP comes
//! back through [`Hub::handle_sfu_signal`].
//!
//! Cluster mode: the hub's [`Output::Cluster`] requests go to the
//! [`ClusterBus`] (attached with [`Signaling::attach_cluster`]), and what
//! it hears comes back as the hub's cluster inputs.

mod connection;
pub mod upgrade;

pub use connection::Connection;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signal::{ConnId, Hub, HubConfig, HubStats, IceServers, Output, PeerId, RawData, SfuCommand};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::cluster::{ClusterBus, ClusterInput};
use crate::sfu_server::{self, SfuServer};

/// Largest WebSocket message accepted at all; larger ones close the
/// connection (status 1009). Over the hub's parse limit and up to this
/// size, a text is skipped unread, answered `too-large`, and the
/// connection survives.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Messages queued for one connection before it counts as stuck.
const OUTBOX: usize = 512;

/// How long a connection the hub closed may take to send what was queued
/// and its close frame before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

enum Outgoing {
    Text(String),
    Ping,
    Close(&'static str),
}

/// Where a connection's outbox stands.
enum State {
    Open,
    /// The hub closed it (a close frame is queued) at this time.
    Closing(Instant),
    /// Drop the connection now (stuck reader, grace over, shutdown).
    Gone,
}

/// What waits to be sent on one connection.
struct Outbox {
    /// Empty (no allocation) while nothing waits.
    queue: VecDeque<Outgoing>,
    /// The connection's task, when it waits for the outbox.
    waker: Option<Waker>,
    state: State,
    /// The server address the connection reached (where its SFU media
    /// goes), if known.
    via: Option<IpAddr>,
}

impl Outbox {
    fn new(via: Option<IpAddr>) -> Self {
        Outbox {
            queue: VecDeque::new(),
            waker: None,
            state: State::Open,
            via,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The connection is to be dropped: nothing more will be sent.
    fn kill(&mut self) {
        self.state = State::Gone;
        self.queue = VecDeque::new();
        self.wake();
    }

    /// The next message, if any; frees the queue's storage once drained.
    fn pop(&mut self) -> Option<Outgoing> {
        let item = self.queue.pop_front();
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
        item
    }
}

struct Shared {
    hub: Hub,
    outboxes: HashMap<ConnId, Outbox>,
    /// The SFU, when SFU rooms are on.
    sfu: Option<SfuServer>,
    /// The cluster driver, in cluster mode.
    cluster: Option<ClusterBus>,
}

/// The hub and the connections it talks to.
pub struct Signaling {
    shared: Mutex<Shared>,
    next_conn: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Signaling {
    /// A hub with `config`; connections close when `shutdown` turns true.
    pub fn new(config: HubConfig, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Signaling {
            shared: Mutex::new(Shared {
                hub: Hub::new(config),
                outboxes: HashMap::new(),
                sfu: None,
                cluster: None,
            }),
            next_conn: AtomicU64::new(1),
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the hub half-updated in
        // a way worse than dropping the poisoned flag: keep serving.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the hub, then delivers everything it produced.
    fn with_hub(&self, f: impl FnOnce(&mut Hub)) {
        let mut s = self.lock();
        f(&mut s.hub);
        s.dispatch();
    }

    /// Starts the SFU on `listen` and routes the hub's SFU rooms to it;
    /// its SDP for a member comes back to that member as `sfu`. The hub
    /// must have been made with an [`signal::SfuPolicy`] other than `Never`.
    pub fn attach_sfu(
        self: &Arc<Self>,
        socket: std::net::UdpSocket,
        config: sfu::SfuConfig,
        external_ip: Option<IpAddr>,
    ) -> anyhow::Result<std::net::SocketAddr> {
        let weak: Weak<Signaling> = Arc::downgrade(self);
        let reply: sfu_server::Reply = Box::new(move |peer, json| {
            let (Some(signaling), Ok(data)) = (weak.upgrade(), RawData::from_json(&json)) else {
                return;
            };
            signaling.with_hub(|hub| hub.handle_sfu_signal(&PeerId(peer.to_owned()), data));
        });
        let server = SfuServer::start(socket, config, external_ip, reply)?;
        let addr = server.local_addr();
        self.lock().sfu = Some(server);
        Ok(addr)
    }

    /// Cluster mode: starts the driver on the Redis at `url` (with the TLS
    /// files of `tls`) for the hub's node (the hub must have been made
    /// with [`HubConfig::node`]).
    pub fn attach_cluster(
        self: &Arc<Self>,
        url: &str,
        tls: &crate::cluster::RedisTls,
    ) -> anyhow::Result<()> {
        let node = self
            .lock()
            .hub
            .node()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the hub has no node id"))?;
        let weak: Weak<Signaling> = Arc::downgrade(self);
        let deliver: crate::cluster::Deliver = Box::new(move |input| {
            let Some(signaling) = weak.upgrade() else {
                return;
            };
            signaling.with_hub(|hub| match input {
                ClusterInput::Admission(ticket, answer) => hub.handle_admission(ticket, answer),
                ClusterInput::Node(message) => hub.handle_node_message(message, Instant::now()),
                ClusterInput::Snapshot {
                    room,
                    version,
                    members,
                    authoritative,
                } => hub.handle_room_snapshot(&room, version, members, authoritative),
                ClusterInput::Up => hub.handle_cluster_up(Instant::now()),
            });
        });
        let bus = ClusterBus::start(url, tls, node, deliver)?;
        self.lock().cluster = Some(bus);
        Ok(())
    }

    /// Cluster mode, once the connections are closed: the driver sends
    /// the last leaves and takes the node out of Redis (within 2 s), so
    /// the other nodes announce its peers gone at once instead of when its
    /// liveness key expires.
    pub async fn finish_cluster(&self) {
        let bus = self.lock().cluster.take();
        if let Some(bus) = bus {
            bus.finish(Duration::from_secs(2)).await;
        }
    }

    /// Cluster mode: the driver's counters (`None`: one node).
    pub fn cluster_stats(&self) -> Option<crate::cluster::ClusterCounters> {
        self.lock().cluster.as_ref().map(|c| c.stats().snapshot())
    }

    /// Cluster mode: whether Redis is reachable now (`None`: one node).
    pub fn cluster_up(&self) -> Option<bool> {
        self.lock().cluster.as_ref().map(ClusterBus::is_up)
    }

    /// No SFU after all (it failed to start): every room stays a mesh.
    pub fn disable_sfu(&self) {
        self.lock().hub.set_sfu_policy(signal::SfuPolicy::Never);
    }

    /// The SFU's counters (as of the last second), when it runs.
    pub fn sfu_stats(&self) -> Option<sfu::SfuStats> {
        self.lock().sfu.as_ref().map(SfuServer::stats)
    }

    /// The hub's counters now.
    pub fn stats(&self) -> HubStats {
        self.lock().hub.stats()
    }

    /// Starts the drain: every connection is told to reconnect, new joins
    /// are refused (see [`Hub::handle_drain`]).
    pub fn drain(&self) {
        self.with_hub(|hub| hub.handle_drain(Instant::now()));
    }

    /// Drains once `draining` turns true (or at once if it already is).
    pub async fn drain_on(self: Arc<Self>, mut draining: watch::Receiver<bool>) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            r = draining.wait_for(|d| *d) => if r.is_ok() { self.drain() },
            _ = shutdown.wait_for(|s| *s) => {}
        }
    }

    /// Calls the hub's timers once a second, and drops the connections
    /// whose close grace is over, until shutdown; then drops them all
    /// (graceful shutdown waits for open connections).
    pub async fn run_ticker(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut s = self.lock();
                    s.hub.handle_timeout(now);
                    s.dispatch();
                    for out in s.outboxes.values_mut() {
                        if let State::Closing(since) = out.state
                            && now.saturating_duration_since(since) >= CLOSE_GRACE
                        {
                            out.kill();
                        }
                    }
                }
                r = shutdown.wait_for(|stop| *stop) => {
                    if r.is_ok() {
                        for out in self.lock().outboxes.values_mut() {
                            out.kill();
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Registers an upgraded WebSocket with the hub; the future serves it
    /// until it closes, and the connection leaves the hub when the future
    /// ends or is dropped. `guard` (e.g. its per-address slot) is held as
    /// long. A plain future rather than an `async fn`: an async block keeps
    /// its arguments beside the futures it awaits, and the socket would be
    /// held (in size) twice or three times over in every task. `via`: the
    /// server address the client reached, for its SFU media.
    pub fn run_connection<S, G>(
        self: Arc<Self>,
        socket: S,
        ice_servers: IceServers,
        via: Option<IpAddr>,
        guard: G,
    ) -> Connection<S, G>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        G: Unpin,
    {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        {
            let mut s = self.lock();
            let mut outbox = Outbox::new(via);
            if *self.shutdown.borrow() {
                outbox.state = State::Gone;
            }
            s.outboxes.insert(id, outbox);
            s.hub.handle_connect(id, ice_servers, Instant::now());
            s.dispatch();
        }
        Connection::new(self, id, socket, guard)
    }
}

impl Shared {
    /// Delivers the hub's outputs to the connections' outboxes.
    fn dispatch(&mut self) {
        while let Some(out) = self.hub.poll_output() {
            let (conn, item) = match out {
                Output::Send { to, message } => (to, Outgoing::Text(message.to_json())),
                Output::Ping { conn } => (conn, Outgoing::Ping),
                Output::Close { conn, reason } => {
                    tracing::debug!(conn = conn.0, reason, "closing signaling connection");
                    if let Some(out) = self.outboxes.get_mut(&conn)
                        && matches!(out.state, State::Open)
                    {
                        out.queue.push_back(Outgoing::Close(reason));
                        out.state = State::Closing(Instant::now());
                        out.wake();
                    }
                    continue;
                }
                Output::Sfu(command) => {
                    self.to_sfu(command);
                    continue;
                }
                Output::Cluster(request) => {
                    if let Some(bus) = &self.cluster {
                        bus.send(request);
                    }
                    continue;
                }
            };
            let Some(out) = self.outboxes.get_mut(&conn) else {
                continue;
            };
            if !matches!(out.state, State::Open) {
                continue;
            }
            if out.queue.len() >= OUTBOX {
                // Stuck: forget it; its task ends at once.
                tracing::debug!(conn = conn.0, "signaling outbox full; dropping connection");
                out.kill();
                self.hub.handle_disconnect(conn);
                continue;
            }
            out.queue.push_back(item);
            out.wake();
        }
    }
}

impl Shared {
    /// Hands an SFU command of the hub to the SFU's thread.
    fn to_sfu(&self, command: SfuCommand) {
        let Some(sfu) = &self.sfu else {
            return;
        };
        let command = match command {
            SfuCommand::Join { conn, peer, room } => {
                // A member on another node: its SFU media comes to this
                // node's public address (--external-ip or the bound one).
                let via = conn.and_then(|c| self.outboxes.get(&c)).and_then(|o| o.via);
                sfu_server::Command::Join {
                    peer: peer.0,
                    room: room.to_string(),
                    via,
                }
            }
            SfuCommand::Signal { peer, data } => sfu_server::Command::Signal {
                peer: peer.0,
                data: data.get().to_owned(),
            },
            SfuCommand::View { peer, of, width } => sfu_server::Command::View {
                peer: peer.0,
                of: of.0,
                width,
            },
            SfuCommand::Leave { peer } => sfu_server::Command::Leave { peer: peer.0 },
        };
        sfu.send(command);
    }
}

/// Wall-clock time in Unix seconds (invite tokens expire by it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
