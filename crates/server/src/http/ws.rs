//! The signaling WebSocket: drives the sans-IO [`signal::Hub`] from axum
//! WebSocket connections and a heartbeat ticker.
//!
//! The hub sits behind one mutex that is never held across an `.await`; each
//! connection has a bounded outbox drained by its own writer. A connection
//! whose outbox is full (a reader that stopped reading) is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use signal::{ConnId, Hub, HubConfig, HubStats, IceServer, Output};
use tokio::sync::{mpsc, watch};

/// Largest WebSocket message accepted at all; larger ones close the
/// connection. Up to this size the hub answers `too-large` and the
/// connection survives.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Messages queued for one connection before it counts as stuck.
const OUTBOX: usize = 512;

enum Outgoing {
    Text(String),
    Ping,
    Close(&'static str),
}

struct Shared {
    hub: Hub,
    outboxes: HashMap<ConnId, mpsc::Sender<Outgoing>>,
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

    /// Calls the hub's timers once a second until shutdown.
    pub async fn run_ticker(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => self.with_hub(|hub| hub.handle_timeout(Instant::now())),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Serves one upgraded WebSocket until it closes.
    pub async fn run_connection(self: Arc<Self>, socket: WebSocket, ice_servers: Vec<IceServer>) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, mut rx) = mpsc::channel(OUTBOX);
        {
            let mut s = self.lock();
            s.outboxes.insert(id, tx);
            s.hub.handle_connect(id, ice_servers, Instant::now());
            s.dispatch();
        }
        let (mut sink, mut stream) = socket.split();

        let writer = async {
            while let Some(out) = rx.recv().await {
                let msg = match out {
                    Outgoing::Text(t) => Message::Text(Utf8Bytes::from(t)),
                    Outgoing::Ping => Message::Ping(Default::default()),
                    Outgoing::Close(reason) => {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code: 4000,
                                reason: Utf8Bytes::from_static(reason),
                            })))
                            .await;
                        break;
                    }
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        let reader = async {
            while let Some(Ok(msg)) = stream.next().await {
                let now = Instant::now();
                match msg {
                    Message::Text(t) => {
                        let unix = unix_now();
                        self.with_hub(|hub| hub.handle_text(id, t.as_str(), now, unix))
                    }
                    Message::Binary(b) => self.with_hub(|hub| hub.handle_binary(id, b.len(), now)),
                    Message::Ping(_) | Message::Pong(_) => {
                        self.with_hub(|hub| hub.handle_pong(id, now))
                    }
                    Message::Close(_) => break,
                }
            }
        };
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = writer => {}
            _ = reader => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        let mut s = self.lock();
        s.outboxes.remove(&id);
        s.hub.handle_disconnect(id);
        s.dispatch();
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
                    if let Some(tx) = self.outboxes.remove(&conn) {
                        let _ = tx.try_send(Outgoing::Close(reason));
                    }
                    continue;
                }
            };
            let Some(tx) = self.outboxes.get(&conn) else {
                continue;
            };
            if tx.try_send(item).is_err() {
                // Stuck or gone: forget it; dropping the sender ends its writer.
                tracing::debug!(conn = conn.0, "signaling outbox full; dropping connection");
                self.outboxes.remove(&conn);
                self.hub.handle_disconnect(conn);
            }
        }
    }
}

/// Wall-clock time in Unix seconds (invite tokens expire by it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
