//! The UDP socket clients reach (`--turn-listen`): batched receive with the
//! destination IP (recvmmsg and IP_PKTINFO via quinn-udp) and non-blocking
//! sends, single or as GSO trains. On a dual-stack `[::]` socket, addresses
//! are IPv4 past this module ([`ClientSocket::five_tuple`]) and mapped back
//! on the way out.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use turn::{FiveTuple, Transport};

use crate::socket_bind::{canonical, for_socket};
use crate::udp_gso::{GSO_MAX_SEGMENTS, Gso, segments, send_gso};

/// Listener socket buffers asked of the kernel (coturn uses the same order).
const SOCKET_BUFFER: usize = 4 << 20;

/// The client-facing UDP socket, registered with tokio for reading only:
/// with write interest too, every datagram sent (the kernel freeing its
/// buffer) raised an EPOLLOUT event that woke the worker once more.
pub(crate) struct ClientSocket {
    socket: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    local: SocketAddr,
    /// Bound to `0.0.0.0` or `[::]`: replies name their source IP.
    wildcard: bool,
}

impl ClientSocket {
    /// Wraps a bound, non-blocking socket.
    pub(crate) fn new(std: std::net::UdpSocket) -> io::Result<Self> {
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
        Ok(ClientSocket {
            socket,
            state,
            local,
            wildcard: local.ip().is_unspecified(),
        })
    }

    /// Waits until the socket may have datagrams.
    pub(crate) async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, std::net::UdpSocket>> {
        self.socket.readable().await
    }

    /// One recvmmsg into `bufs`; `meta` says what each slot holds.
    pub(crate) fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.state.recv((&self.socket).into(), bufs, meta)
    }

    /// The 5-tuple of a received datagram: its source, and the address it
    /// was sent to (IP_PKTINFO, so a wildcard listener knows which), both
    /// IPv4 when the client is.
    pub(crate) fn five_tuple(&self, meta: &RecvMeta) -> FiveTuple {
        let server_ip = meta.dst_ip.unwrap_or(self.local.ip());
        FiveTuple {
            transport: Transport::Udp,
            client: canonical(meta.addr),
            server: canonical(SocketAddr::new(server_ip, self.local.port())),
        }
    }

    /// The kernel's UDP capabilities (GSO, GRO), shared with the relay
    /// sockets: one state serves every socket of the worker.
    pub(crate) fn state(&self) -> &UdpSocketState {
        &self.state
    }

    /// Sends one datagram without blocking, from `src` when the socket is
    /// bound to a wildcard address (so the reply leaves from the address
    /// the client used). False if the kernel refused it (a full buffer).
    pub(crate) fn send(&self, to: SocketAddr, src: IpAddr, payload: &[u8]) -> bool {
        let transmit = quinn_udp::Transmit {
            destination: for_socket(self.local, to),
            ecn: None,
            contents: payload,
            segment_size: None,
            src_ip: self.wildcard.then_some(src),
        };
        // A direct non-blocking sendmsg: tokio's readiness cache would refuse
        // sends until its reactor has seen the socket writable.
        self.state
            .try_send((&self.socket).into(), &transmit)
            .is_ok()
    }

    /// Sends `contents`, datagrams of `segment` bytes (the last may be
    /// shorter), to one client in one sendmsg with UDP GSO; segment by
    /// segment if the kernel refuses GSO. Returns the datagrams dropped.
    pub(crate) fn send_segments(
        &self,
        to: SocketAddr,
        src: IpAddr,
        contents: &[u8],
        segment: usize,
    ) -> u64 {
        if contents.len() <= segment {
            return u64::from(!self.send(to, src, contents));
        }
        let src_ip = self.wildcard.then_some(src);
        let to = for_socket(self.local, to);
        match self.send_gso((&self.socket).into(), to, src_ip, contents, segment) {
            Gso::Sent => 0,
            Gso::Dropped => segments(contents.len(), segment),
            Gso::Refused => contents
                .chunks(segment.max(1))
                .map(|d| u64::from(!self.send(to, src, d)))
                .sum(),
        }
    }

    /// One GSO sendmsg on `socket` (this one or a relay socket).
    pub(crate) fn send_gso(
        &self,
        socket: UdpSockRef<'_>,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        contents: &[u8],
        segment: usize,
    ) -> Gso {
        send_gso(&self.state, socket, to, src_ip, contents, segment)
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments().min(GSO_MAX_SEGMENTS)
    }
}
