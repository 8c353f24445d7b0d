//! UDP: the client-facing listener (batched receive with the destination IP,
//! via quinn-udp), the relay sockets ([`relay`]) and GSO batching of what
//! leaves ([`batch`]): datagrams of one listener read batch that go from one
//! relay socket to one peer with one size leave in one send, and so do
//! datagrams of one relay read round to one client, and STUN responses to
//! one client.

mod batch;
mod relay;

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use turn::{FiveTuple, Transport};

pub(super) use batch::{ToClients, ToPeers, Trains};
pub(super) use relay::{RelayBinder, RelayPoll, Relays, relay_reader, send_from_relay};

use super::worker::Worker;
use batch::GSO_MAX_SEGMENTS;

/// Largest UDP payload.
pub(super) const MAX_DATAGRAM: usize = 65_535;
/// Listener socket buffers asked of the kernel (coturn uses the same order).
const SOCKET_BUFFER: usize = 4 << 20;
/// Relay socket buffers (the kernel caps them at net.core.rmem_max/wmem_max).
pub(super) const RELAY_SOCKET_BUFFER: usize = 4 << 20;

/// The client-facing UDP socket, registered with tokio for reading only:
/// with write interest too, every datagram sent (the kernel freeing its
/// buffer) raised an EPOLLOUT event that woke the worker once more.
pub(super) struct Listener {
    socket: AsyncFd<std::net::UdpSocket>,
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
        // `with_interest` is deprecated because an arbitrary `AsRawFd` may
        // close or change its descriptor while registered (tokio #8587); the
        // replacement is `unsafe`, which this workspace forbids. A
        // `std::net::UdpSocket` owns its descriptor, so the contract holds.
        #[allow(deprecated)]
        let socket = AsyncFd::with_interest(std, Interest::READABLE)?;
        Ok(Listener {
            socket,
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
    let mut to_peers = Trains::default();
    loop {
        let Ok(mut guard) = listener.socket.readable().await else {
            continue;
        };
        let n = match listener
            .state
            .recv((&listener.socket).into(), &mut bufs, &mut meta)
        {
            Ok(n) => {
                if n < batch {
                    // recvmmsg stopped short: the queue is empty. Saying so
                    // now clears tokio's readiness (a datagram arriving
                    // meanwhile raises it again), so the next turn waits in
                    // epoll instead of calling recvmmsg once more for EAGAIN.
                    guard.clear_ready();
                }
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                guard.clear_ready();
                continue;
            }
            Err(_) => continue,
        };
        drop(guard);
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
        let sink = ToPeers {
            relays: &shared.relays,
            listener,
        };
        to_peers.flush(&sink);
        worker.flush(&mut shared);
    }
}
