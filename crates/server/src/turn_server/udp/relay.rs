//! Relay sockets: plain non-blocking UDP sockets in one epoll instance per
//! worker ([`RelayPoll`], itself registered with tokio as one readable file
//! descriptor) read by one task, so a held allocation costs a file
//! descriptor and a map entry, not a tokio registration and a task.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use turn::{PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Transport};

use super::batch::{ToClients, Trains};
use super::{MAX_DATAGRAM, RELAY_SOCKET_BUFFER};
use crate::turn_server::worker::{Shared, Worker};

/// The relay sockets of one worker, by local address. Each is registered
/// in the worker's [`RelayPoll`] with a token that encodes its address
/// (index of its IP in `ips`, then the port), so an event leads straight to
/// the socket.
pub(in crate::turn_server) struct Relays {
    sockets: HashMap<SocketAddr, std::net::UdpSocket>,
    ips: Vec<IpAddr>,
    registry: mio::Registry,
}

impl Relays {
    /// An empty set registering in `poll`.
    pub(in crate::turn_server) fn new(poll: &RelayPoll) -> io::Result<Self> {
        Ok(Relays {
            sockets: HashMap::new(),
            ips: Vec::new(),
            registry: poll.poll.borrow().registry().try_clone()?,
        })
    }

    /// The socket bound to `local`.
    pub(in crate::turn_server) fn get(&self, local: SocketAddr) -> Option<&std::net::UdpSocket> {
        self.sockets.get(&local)
    }

    /// Closes the socket bound to `local`.
    pub(in crate::turn_server) fn close(&mut self, local: SocketAddr) {
        if let Some(socket) = self.sockets.remove(&local) {
            let _ = self.registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
        }
    }

    fn token(&mut self, local: SocketAddr) -> mio::Token {
        let index = match self.ips.iter().position(|ip| *ip == local.ip()) {
            Some(i) => i,
            None => {
                self.ips.push(local.ip());
                self.ips.len() - 1
            }
        };
        mio::Token(index << 16 | usize::from(local.port()))
    }

    fn address(&self, token: mio::Token) -> Option<SocketAddr> {
        let ip = *self.ips.get(token.0 >> 16)?;
        let port = u16::try_from(token.0 & 0xFFFF).ok()?;
        Some(SocketAddr::new(ip, port))
    }
}

/// Binds relay sockets for the core.
pub(in crate::turn_server) struct RelayBinder<'a> {
    pub(in crate::turn_server) relays: &'a mut Relays,
}

impl RelaySockets for RelayBinder<'_> {
    fn bind(&mut self, local: SocketAddr) -> io::Result<()> {
        let socket = std::net::UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        // Room for bursts from peers; the kernel spends it only while queued.
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_recv_buffer_size(RELAY_SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(RELAY_SOCKET_BUFFER);
        let token = self.relays.token(local);
        self.relays.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        self.relays.sockets.insert(local, socket);
        Ok(())
    }
}

/// Sends a datagram from a relay socket with a direct non-blocking `sendto`
/// (a full socket buffer drops it, as UDP may).
pub(in crate::turn_server) fn send_from_relay(
    socket: &std::net::UdpSocket,
    to: SocketAddr,
    payload: &[u8],
) {
    let _ = socket.send_to(payload, to);
}

/// One epoll instance (mio) holding a worker's relay sockets
/// (edge-triggered), registered with tokio as one readable file descriptor.
pub(in crate::turn_server) struct RelayPoll {
    poll: RefCell<mio::Poll>,
    fd: RawFd,
}

impl AsRawFd for RelayPoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Events taken from the relay epoll at once.
const RELAY_EVENTS: usize = 256;

impl RelayPoll {
    /// A new epoll instance, registered with the current tokio runtime.
    pub(in crate::turn_server) fn new() -> io::Result<AsyncFd<RelayPoll>> {
        let poll = mio::Poll::new()?;
        let fd = poll.as_raw_fd();
        let poll = RelayPoll {
            poll: RefCell::new(poll),
            fd,
        };
        // `with_interest` is deprecated because an arbitrary `AsRawFd` may
        // close or change its descriptor while registered (tokio #8587); the
        // replacement is `unsafe`, which this workspace forbids. The contract
        // holds here: `RelayPoll` owns the `mio::Poll`, never replaces it,
        // and returns the same open descriptor until it is dropped.
        #[allow(deprecated)]
        AsyncFd::with_interest(poll, Interest::READABLE)
    }

    /// Adds the addresses of relay sockets that became readable to `ready`;
    /// true if the epoll instance has no more events.
    fn collect(
        &self,
        events: &mut mio::Events,
        relays: &Relays,
        ready: &mut Vec<SocketAddr>,
    ) -> bool {
        let Ok(mut poll) = self.poll.try_borrow_mut() else {
            return false;
        };
        if poll.poll(events, Some(Duration::ZERO)).is_err() {
            return false;
        }
        let mut n = 0;
        for event in events.iter() {
            n += 1;
            if let Some(local) = relays.address(event.token()) {
                ready.push(local);
            }
        }
        n < RELAY_EVENTS
    }
}

/// Datagrams read from one relay socket per turn (one recvmmsg), so one
/// busy peer does not starve the others.
const RELAY_BATCH: usize = 32;
/// One read slot: headroom for the ChannelData header, the largest
/// datagram, tailroom for stream padding.
const SLOT: usize = PEER_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM;

/// A worker's buffers for reading relay sockets, shared by all of them so
/// an idle allocation costs no buffer memory (the kernel backs a slot's
/// pages only once a datagram that long has been read into it).
struct ReadBuffers {
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
    to_clients: Trains,
}

thread_local! {
    static RELAY_BUF: RefCell<ReadBuffers> = RefCell::new(ReadBuffers {
        storage: vec![0; RELAY_BATCH * SLOT],
        meta: vec![RecvMeta::default(); RELAY_BATCH],
        to_clients: Trains::default(),
    });
}

/// One recvmmsg on a relay socket into the slots of `storage`, each
/// datagram after [`PEER_HEADROOM`] bytes.
fn read_batch(
    state: &UdpSocketState,
    socket: &std::net::UdpSocket,
    storage: &mut [u8],
    meta: &mut [RecvMeta],
) -> io::Result<usize> {
    let mut slots = storage.chunks_mut(SLOT);
    let mut bufs: [IoSliceMut<'_>; RELAY_BATCH] = std::array::from_fn(|_| {
        let room = slots
            .next()
            .and_then(|s| s.get_mut(PEER_HEADROOM..PEER_HEADROOM + MAX_DATAGRAM));
        IoSliceMut::new(room.unwrap_or_default())
    });
    loop {
        match state.recv(socket.into(), &mut bufs, meta) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Reads the worker's relay sockets forever: waits for the epoll instance,
/// then reads each ready socket until it is empty (edge-triggered: a socket
/// left with data after its turn's batch stays on the list).
pub(in crate::turn_server) async fn relay_reader(worker: Rc<Worker>) {
    let mut events = mio::Events::with_capacity(RELAY_EVENTS);
    let mut ready: Vec<SocketAddr> = Vec::new();
    loop {
        if ready.is_empty() {
            let Ok(mut guard) = worker.relay_poll.readable().await else {
                return;
            };
            let shared = worker.shared();
            let drained =
                guard
                    .get_ref()
                    .get_ref()
                    .collect(&mut events, &shared.relays, &mut ready);
            drop(shared);
            if drained {
                // Events after this poll raise tokio's readiness again.
                guard.clear_ready();
            }
        } else {
            // Sockets still have data: let the listener run, then take any
            // new events and go on.
            tokio::task::yield_now().await;
            let shared = worker.shared();
            worker
                .relay_poll
                .get_ref()
                .collect(&mut events, &shared.relays, &mut ready);
        }
        read_ready(&worker, &mut ready);
    }
}

/// Reads up to [`RELAY_BATCH`] datagrams from each ready relay socket in
/// one recvmmsg; keeps on `ready` those that filled it (they may have more;
/// a shorter read emptied the socket, and edge-triggered epoll reports it
/// again when the next datagram arrives).
fn read_ready(worker: &Worker, ready: &mut Vec<SocketAddr>) {
    RELAY_BUF.with_borrow_mut(|bufs| {
        let ReadBuffers {
            storage,
            meta,
            to_clients: batch,
        } = bufs;
        let to_clients = ToClients(&worker.listener);
        let state = &worker.listener.state;
        let mut shared = worker.shared();
        let now = Instant::now();
        let Shared {
            core, relays, tcp, ..
        } = &mut *shared;
        ready.retain(|&local| {
            let Some(socket) = relays.get(local) else {
                return false;
            };
            let Ok(n) = read_batch(state, socket, storage, meta) else {
                return false;
            };
            for (slot, m) in storage.chunks_mut(SLOT).zip(meta.iter()).take(n) {
                if let Some(out) = core.handle_peer(now, local, m.addr, slot, m.len) {
                    match out.to.transport {
                        Transport::Udp => batch.push(
                            &to_clients,
                            SocketAddr::new(out.to.server.ip(), 0),
                            out.to.client,
                            out.payload,
                        ),
                        _ => worker.send_to_client(tcp, out.to, out.payload),
                    }
                }
            }
            n >= RELAY_BATCH.min(quinn_udp::BATCH_SIZE)
        });
        batch.flush(&to_clients);
        worker.flush(&mut shared);
    });
}
