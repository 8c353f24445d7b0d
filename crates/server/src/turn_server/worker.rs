//! One worker: a single-threaded runtime that owns a TURN core and its
//! sockets. Nothing here is shared with other threads but the quota ledger
//! inside the core and the TCP connection counts.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use turn::{Event, FiveTuple, Server, Transport};

use super::handoff::HandedOff;
use super::udp::{self, Listener, RelayPoll, Relays, ToClients, ToPeers, Trains};
use super::{DriverLimits, TcpCounts};
use crate::tls::Tls;

/// The core and the handles its outputs go through.
pub(super) struct Shared {
    pub(super) core: Server,
    pub(super) relays: Relays,
    pub(super) tcp: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
}

/// A worker's state. Borrowed mutably only between awaits.
pub(super) struct Worker {
    shared: RefCell<Shared>,
    pub(super) listener: Listener,
    /// The epoll instance of the relay sockets in `shared.relays`.
    pub(super) relay_poll: AsyncFd<RelayPoll>,
    /// STUN responses to UDP clients on their way out (GSO per client).
    responses: RefCell<Trains>,
    pub(super) limits: DriverLimits,
    pub(super) tcp_counts: TcpCounts,
}

impl Worker {
    pub(super) fn shared(&self) -> RefMut<'_, Shared> {
        self.shared.borrow_mut()
    }

    /// Sends queued responses and acts on events.
    pub(super) fn flush(&self, shared: &mut Shared) {
        if let Ok(mut responses) = self.responses.try_borrow_mut() {
            let sink = ToClients(&self.listener);
            while let Some(t) = shared.core.poll_transmit() {
                match t.to.transport {
                    Transport::Udp => {
                        let from = SocketAddr::new(t.to.server.ip(), 0);
                        responses.push(&sink, from, t.to.client, &t.payload);
                    }
                    _ => self.send_to_client(&shared.tcp, t.to, &t.payload),
                }
            }
            responses.flush(&sink);
        }
        while let Some(Event::RelayClosed(addr)) = shared.core.poll_event() {
            shared.relays.close(addr);
        }
    }

    pub(super) fn send_to_client(
        &self,
        tcp: &HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
        to: FiveTuple,
        payload: &[u8],
    ) {
        match to.transport {
            Transport::Udp => self.listener.send(to.client, to.server.ip(), payload),
            Transport::Tcp | Transport::Tls => {
                if let Some(tx) = tcp.get(&to) {
                    // A client that does not read loses data, not the server memory.
                    let _ = tx.try_send(payload.to_vec());
                }
            }
        }
    }

    /// Handles one packet from a client; data for a peer leaves at once.
    pub(super) fn client_packet(
        &self,
        shared: &mut Shared,
        now: Instant,
        from: FiveTuple,
        p: &[u8],
    ) {
        let Shared { core, relays, .. } = shared;
        let mut binder = udp::RelayBinder { relays };
        if let Some(send) = core.handle_client(now, from, p, &mut binder)
            && let Some(socket) = relays.get(send.relay)
        {
            udp::send_from_relay(socket, send.peer, send.payload);
        }
    }

    /// Handles one datagram from a UDP client; data for a peer joins
    /// `to_peers`, sent when the read batch is done.
    pub(super) fn client_datagram(
        &self,
        shared: &mut Shared,
        now: Instant,
        from: FiveTuple,
        p: &[u8],
        to_peers: &mut Trains,
    ) {
        let Shared { core, relays, .. } = shared;
        let mut binder = udp::RelayBinder { relays };
        if let Some(send) = core.handle_client(now, from, p, &mut binder) {
            let sink = ToPeers {
                relays,
                listener: &self.listener,
            };
            to_peers.push(&sink, send.relay, send.peer, send.payload);
        }
    }
}

/// What a worker listens on.
pub(super) struct Sockets {
    pub(super) udp: std::net::UdpSocket,
    pub(super) tcp: std::net::TcpListener,
    /// The `--turns-listen` socket and the TLS configuration, if on.
    pub(super) tls: Option<(std::net::TcpListener, Arc<Tls>)>,
    /// TURN connections handed over from the shared HTTPS port.
    pub(super) handoff: mpsc::Receiver<HandedOff>,
}

/// Runs a worker on the current thread until the process ends.
pub(super) fn run(
    core: Server,
    sockets: Sockets,
    limits: DriverLimits,
    tcp_counts: TcpCounts,
) -> anyhow::Result<()> {
    let Sockets {
        udp,
        tcp,
        tls,
        handoff,
    } = sockets;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = Listener::new(udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let relay_poll = RelayPoll::new()?;
        let relays = Relays::new(relay_poll.get_ref())?;
        let worker = Rc::new(Worker {
            shared: RefCell::new(Shared {
                core,
                relays,
                tcp: HashMap::new(),
            }),
            listener,
            relay_poll,
            responses: RefCell::default(),
            limits,
            tcp_counts,
        });
        tokio::task::spawn_local(super::tcp::serve(worker.clone(), tcp));
        if let Some((listener, tls)) = tls {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::task::spawn_local(super::tls::serve(worker.clone(), listener, tls));
        }
        tokio::task::spawn_local(super::tls::receive(worker.clone(), handoff));
        tokio::task::spawn_local(timers(worker.clone()));
        tokio::task::spawn_local(udp::relay_reader(worker.clone()));
        udp::serve(worker).await;
        Ok(())
    })
}

/// Drives the core's expiry timers.
async fn timers(worker: Rc<Worker>) {
    loop {
        let now = Instant::now();
        let next = worker.shared().core.poll_timeout();
        let wake = next.map_or(now + Duration::from_secs(1), |t| {
            t.min(now + Duration::from_secs(1))
        });
        tokio::time::sleep_until(wake.into()).await;
        let mut shared = worker.shared();
        shared.core.handle_timeout(Instant::now());
        worker.flush(&mut shared);
    }
}
