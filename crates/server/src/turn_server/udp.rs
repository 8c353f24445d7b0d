//! UDP: the client-facing listener (batched receive with the destination IP,
//! via quinn-udp) and the per-allocation relay sockets.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use turn::{FiveTuple, PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Transport};

use super::worker::{RelaySocket, Shared, Worker};

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
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: Some(segment),
            src_ip: self.local.ip().is_unspecified().then_some(src),
        };
        match self.state.try_send((&self.socket).into(), &transmit) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                for datagram in contents.chunks(segment) {
                    self.send(to, src, datagram);
                }
            }
        }
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    fn max_segments(&self) -> usize {
        self.state.max_gso_segments().min(GSO_MAX_SEGMENTS)
    }
}

/// Most datagrams in one GSO send (the kernel's limit is 64).
const GSO_MAX_SEGMENTS: usize = 32;

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
                worker.client_packet(&mut shared, now, from, datagram);
            }
        }
        worker.flush(&mut shared);
    }
}

/// Binds relay sockets for the core and starts their readers.
pub(super) struct RelayBinder<'a> {
    pub(super) worker: &'a Rc<Worker>,
    pub(super) relays: &'a mut std::collections::HashMap<SocketAddr, RelaySocket>,
}

impl RelaySockets for RelayBinder<'_> {
    fn bind(&mut self, local: SocketAddr) -> io::Result<()> {
        let std = std::net::UdpSocket::bind(local)?;
        std.set_nonblocking(true)?;
        // Room for bursts from peers; the kernel spends it only while queued.
        let sock = socket2::SockRef::from(&std);
        let _ = sock.set_recv_buffer_size(RELAY_SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(RELAY_SOCKET_BUFFER);
        let socket = Rc::new(UdpSocket::from_std(std)?);
        let task =
            tokio::task::spawn_local(relay_reader(self.worker.clone(), socket.clone(), local));
        self.relays.insert(
            local,
            RelaySocket {
                socket,
                task: task.abort_handle(),
            },
        );
        Ok(())
    }
}

/// Sends a datagram from a relay socket with a direct non-blocking
/// `sendto`. tokio's `try_send_to` consults its readiness cache, which for a
/// socket bound a moment ago says "not writable" and would drop the first
/// datagram of a new allocation.
pub(super) fn send_from_relay(socket: &UdpSocket, to: SocketAddr, payload: &[u8]) {
    let _ = socket2::SockRef::from(socket).send_to(payload, &to.into());
}

thread_local! {
    /// One receive buffer per worker thread, shared by all relay sockets, so
    /// an idle allocation costs no buffer memory.
    static RELAY_BUF: RefCell<(Vec<u8>, ClientBatch)> = RefCell::new((
        vec![0; PEER_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM],
        ClientBatch::new(),
    ));
}

/// Most datagrams read from one relay socket per lock.
const RELAY_BATCH: usize = 32;

/// Reads datagrams from peers on one relay socket until aborted.
async fn relay_reader(worker: Rc<Worker>, socket: Rc<UdpSocket>, local: SocketAddr) {
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        RELAY_BUF.with_borrow_mut(|(buf, batch)| {
            let mut shared = None;
            for _ in 0..RELAY_BATCH {
                let Some(room) = buf.get_mut(PEER_HEADROOM..PEER_HEADROOM + MAX_DATAGRAM) else {
                    return;
                };
                let (len, peer) = match socket.try_recv_from(room) {
                    Ok(r) => r,
                    Err(_) => break,
                };
                let shared = shared.get_or_insert_with(|| worker.shared());
                let Shared { core, tcp, .. } = &mut **shared;
                if let Some(out) = core.handle_peer(Instant::now(), local, peer, buf, len) {
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
            batch.flush(&worker.listener);
            if let Some(mut shared) = shared {
                worker.flush(&mut shared);
            }
        });
    }
}
