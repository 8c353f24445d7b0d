//! UDP: the client-facing listener (batched receive with the destination IP,
//! via quinn-udp) and the per-allocation relay sockets.
//!
//! Relay sockets are plain non-blocking sockets in one epoll instance per
//! worker ([`RelayPoll`], itself registered with tokio) read by one task: a
//! held allocation costs a file descriptor and a map entry here, not a tokio
//! registration and a task of its own. Datagrams of one listener read batch
//! that go from one relay socket to one peer with one size leave in one UDP
//! GSO send ([`PeerBatch`]); the way back batches per client ([`ClientBatch`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use turn::{FiveTuple, PEER_HEADROOM, PEER_TAILROOM, PeerSend, RelaySockets, Transport};

use super::worker::{Shared, Worker};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Listener socket buffers asked of the kernel (coturn uses the same order).
const SOCKET_BUFFER: usize = 4 << 20;
/// Relay socket buffers (the kernel caps them at net.core.rmem_max/wmem_max).
const RELAY_SOCKET_BUFFER: usize = 4 << 20;

/// The client-facing UDP socket.
pub(super) struct Listener {
    socket: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl Listener {
    /// Wraps a bound, non-blocking socket.
    pub(super) fn new(std: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&std).into())?;
        let _ = state.set_recv_buffer_size((&std).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&std).into(), SOCKET_BUFFER);
        let local = std.local_addr()?;
        Ok(Listener {
            socket: UdpSocket::from_std(std)?,
            state,
            local,
        })
    }

    /// Sends without blocking, from `src` when the socket is bound to a
    /// wildcard address (so the reply leaves from the address the client used).
    pub(super) fn send(&self, to: SocketAddr, src: IpAddr, payload: &[u8]) {
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents: payload,
            segment_size: None,
            src_ip: self.local.ip().is_unspecified().then_some(src),
        };
        // A direct non-blocking sendmsg: tokio's readiness cache would refuse
        // sends until its reactor has seen the socket writable.
        let _ = self.state.try_send((&self.socket).into(), &transmit);
    }

    /// Sends `contents`, datagrams of `segment` bytes (the last may be
    /// shorter), to one client in one sendmsg with UDP GSO; segment by
    /// segment if the kernel refuses.
    fn send_segments(&self, to: SocketAddr, src: IpAddr, contents: &[u8], segment: usize) {
        if contents.len() <= segment {
            return self.send(to, src, contents);
        }
        let src_ip = self.local.ip().is_unspecified().then_some(src);
        let sent = self.send_gso((&self.socket).into(), to, src_ip, contents, segment);
        if !sent {
            for datagram in contents.chunks(segment) {
                self.send(to, src, datagram);
            }
        }
    }

    /// One GSO sendmsg on `socket` (the listener's or a relay socket: the
    /// capability is the kernel's, so one state serves both). False if the
    /// kernel refused it; a full socket buffer drops the datagrams, as UDP may.
    fn send_gso(
        &self,
        socket: UdpSockRef<'_>,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        contents: &[u8],
        segment: usize,
    ) -> bool {
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: Some(segment),
            src_ip,
        };
        match self.state.try_send(socket, &transmit) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    fn max_segments(&self) -> usize {
        self.state.max_gso_segments().min(GSO_MAX_SEGMENTS)
    }
}

/// Most datagrams in one GSO send (the kernel's limit is 64).
const GSO_MAX_SEGMENTS: usize = 32;
/// Largest datagram sent with GSO: the kernel refuses a segment larger than
/// the path MTU allows (EINVAL, and quinn-udp then turns GSO off for good),
/// so only datagrams that fit the IPv6 minimum MTU (1280 − 40 − 8) are
/// batched; larger ones go one by one.
const GSO_MAX_SEGMENT: usize = 1232;

/// Datagrams from one relay socket's read batch on their way to its client:
/// equal-sized ones leave together in one GSO send.
struct ClientBatch {
    to: Option<(SocketAddr, IpAddr)>,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the train; nothing more may follow it.
    closed: bool,
    buf: Vec<u8>,
}

impl ClientBatch {
    fn new() -> Self {
        ClientBatch {
            to: None,
            segment: 0,
            count: 0,
            closed: false,
            buf: Vec::with_capacity(GSO_MAX_SEGMENTS * 1500),
        }
    }

    /// Queues a datagram, sending what was queued first if it cannot join.
    fn push(&mut self, listener: &Listener, to: SocketAddr, src: IpAddr, datagram: &[u8]) {
        let joins = self.to == Some((to, src))
            && !self.closed
            && datagram.len() <= self.segment
            && self.segment <= GSO_MAX_SEGMENT
            && self.count < listener.max_segments()
            && self.buf.len() + datagram.len() <= MAX_DATAGRAM;
        if !joins {
            self.flush(listener);
            self.to = Some((to, src));
            self.segment = datagram.len();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.segment;
    }

    fn flush(&mut self, listener: &Listener) {
        if let Some((to, src)) = self.to.take()
            && !self.buf.is_empty()
        {
            listener.send_segments(to, src, &self.buf, self.segment);
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

/// Reads the listener forever.
pub(super) async fn serve(worker: Rc<Worker>) {
    let batch = quinn_udp::BATCH_SIZE.max(1);
    // Each slot holds one datagram or one GRO train of up to 64 KiB.
    let chunk = MAX_DATAGRAM;
    let mut storage = vec![0u8; batch * chunk];
    // Built once: datagrams are read back through the same slices, so the
    // receive loop allocates nothing.
    let mut bufs: Vec<IoSliceMut<'_>> = storage.chunks_mut(chunk).map(IoSliceMut::new).collect();
    let mut meta = vec![RecvMeta::default(); batch];
    let listener = &worker.listener;
    let mut to_peers = PeerBatch::default();
    loop {
        if listener.socket.readable().await.is_err() {
            continue;
        }
        let got = listener.socket.try_io(Interest::READABLE, || {
            listener
                .state
                .recv((&listener.socket).into(), &mut bufs, &mut meta)
        });
        let Ok(n) = got else { continue };
        let now = Instant::now();
        let mut shared = worker.shared();
        for (m, buf) in meta.iter().zip(bufs.iter()).take(n) {
            let server = SocketAddr::new(
                m.dst_ip.unwrap_or(listener.local.ip()),
                listener.local.port(),
            );
            let from = FiveTuple {
                transport: Transport::Udp,
                client: m.addr,
                server,
            };
            let data = buf.get(..m.len).unwrap_or(&[]);
            for datagram in data.chunks(m.stride.max(1)) {
                worker.client_datagram(&mut shared, now, from, datagram, &mut to_peers);
            }
        }
        to_peers.flush(&shared.relays, listener);
        worker.flush(&mut shared);
    }
}

/// Datagrams of one relay socket to one peer, of one size (the last may be
/// shorter), on their way out in one GSO send.
#[derive(Default)]
struct PeerTrain {
    relay: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    segment: usize,
    count: usize,
    closed: bool,
    buf: Vec<u8>,
}

impl PeerTrain {
    fn joins(&self, send: &PeerSend<'_>, max_segments: usize) -> bool {
        !self.closed
            && send.payload.len() <= self.segment
            && self.segment <= GSO_MAX_SEGMENT
            && self.count < max_segments
            && self.buf.len() + send.payload.len() <= MAX_DATAGRAM
    }

    fn start(&mut self, send: &PeerSend<'_>) {
        self.relay = Some(send.relay);
        self.peer = Some(send.peer);
        self.segment = send.payload.len();
        self.buf.clear();
        self.buf.extend_from_slice(send.payload);
        self.count = 1;
        self.closed = false;
    }

    fn append(&mut self, payload: &[u8]) {
        self.buf.extend_from_slice(payload);
        self.count += 1;
        self.closed = payload.len() < self.segment;
    }

    fn send(&mut self, relays: &Relays, listener: &Listener) {
        if let (Some(relay), Some(peer)) = (self.relay.take(), self.peer.take())
            && let Some(socket) = relays.get(relay)
        {
            let sent = self.count > 1
                && listener.send_gso(socket.into(), peer, None, &self.buf, self.segment);
            if !sent {
                for datagram in self.buf.chunks(self.segment.max(1)) {
                    send_from_relay(socket, peer, datagram);
                }
            }
        }
        self.buf.clear();
        self.count = 0;
    }
}

/// Open trains per listener read batch; a datagram for another flow sends
/// the open ones first.
const PEER_TRAINS: usize = 8;

/// Datagrams of one listener read batch on their way to peers, grouped by
/// relay socket and peer (order within a flow is kept).
#[derive(Default)]
pub(super) struct PeerBatch {
    trains: Vec<PeerTrain>,
    open: usize,
}

impl PeerBatch {
    /// Queues a datagram, sending its flow's train first if it cannot join.
    pub(super) fn push(&mut self, relays: &Relays, listener: &Listener, send: &PeerSend<'_>) {
        let max_segments = listener.max_segments();
        let open = self.trains.iter_mut().take(self.open);
        let mut flow = open.filter(|t| t.relay == Some(send.relay) && t.peer == Some(send.peer));
        if let Some(t) = flow.next() {
            if t.joins(send, max_segments) {
                t.append(send.payload);
            } else {
                t.send(relays, listener);
                t.start(send);
            }
            return;
        }
        if self.open >= PEER_TRAINS {
            self.flush(relays, listener);
        }
        if self.trains.len() <= self.open {
            self.trains.push(PeerTrain::default());
        }
        if let Some(t) = self.trains.get_mut(self.open) {
            t.start(send);
            self.open += 1;
        }
    }

    /// Sends every open train.
    pub(super) fn flush(&mut self, relays: &Relays, listener: &Listener) {
        for t in self.trains.iter_mut().take(self.open) {
            t.send(relays, listener);
        }
        self.open = 0;
    }
}

/// The relay sockets of one worker, by local address. Each is registered
/// in the worker's [`RelayPoll`] with a token that encodes its address
/// (index of its IP in `ips`, then the port), so an event leads straight to
/// the socket.
pub(super) struct Relays {
    sockets: HashMap<SocketAddr, std::net::UdpSocket>,
    ips: Vec<IpAddr>,
    registry: mio::Registry,
}

impl Relays {
    /// An empty set registering in `poll`.
    pub(super) fn new(poll: &RelayPoll) -> io::Result<Self> {
        Ok(Relays {
            sockets: HashMap::new(),
            ips: Vec::new(),
            registry: poll.poll.borrow().registry().try_clone()?,
        })
    }

    /// The socket bound to `local`.
    pub(super) fn get(&self, local: SocketAddr) -> Option<&std::net::UdpSocket> {
        self.sockets.get(&local)
    }

    /// Closes the socket bound to `local`.
    pub(super) fn close(&mut self, local: SocketAddr) {
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
pub(super) struct RelayBinder<'a> {
    pub(super) relays: &'a mut Relays,
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
pub(super) fn send_from_relay(socket: &std::net::UdpSocket, to: SocketAddr, payload: &[u8]) {
    let _ = socket.send_to(payload, to);
}

/// One epoll instance (mio) holding a worker's relay sockets
/// (edge-triggered), registered with tokio as one readable file descriptor.
pub(super) struct RelayPoll {
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
    pub(super) fn new() -> io::Result<AsyncFd<RelayPoll>> {
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

thread_local! {
    /// One receive buffer per worker thread, shared by all relay sockets, so
    /// an idle allocation costs no buffer memory.
    static RELAY_BUF: RefCell<(Vec<u8>, ClientBatch)> = RefCell::new((
        vec![0; PEER_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM],
        ClientBatch::new(),
    ));
}

/// Most datagrams read from one relay socket per turn, so one busy peer
/// does not starve the others.
const RELAY_BATCH: usize = 32;

/// Reads the worker's relay sockets forever: waits for the epoll instance,
/// then reads each ready socket until it is empty (edge-triggered: a socket
/// left with data after its turn's batch stays on the list).
pub(super) async fn relay_reader(worker: Rc<Worker>) {
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

/// Reads up to [`RELAY_BATCH`] datagrams from each ready relay socket;
/// keeps on `ready` those that may have more.
fn read_ready(worker: &Worker, ready: &mut Vec<SocketAddr>) {
    RELAY_BUF.with_borrow_mut(|(buf, batch)| {
        let mut shared = worker.shared();
        let now = Instant::now();
        let Shared {
            core, relays, tcp, ..
        } = &mut *shared;
        ready.retain(|&local| {
            let Some(socket) = relays.get(local) else {
                return false;
            };
            for _ in 0..RELAY_BATCH {
                let Some(room) = buf.get_mut(PEER_HEADROOM..PEER_HEADROOM + MAX_DATAGRAM) else {
                    return false;
                };
                let (len, peer) = match socket.recv_from(room) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                };
                if let Some(out) = core.handle_peer(now, local, peer, buf, len) {
                    match out.to.transport {
                        Transport::Udp => batch.push(
                            &worker.listener,
                            out.to.client,
                            out.to.server.ip(),
                            out.payload,
                        ),
                        _ => worker.send_to_client(tcp, out.to, out.payload),
                    }
                }
            }
            true
        });
        batch.flush(&worker.listener);
        worker.flush(&mut shared);
    });
}
