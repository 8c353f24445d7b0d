//! The relay sockets of one worker: plain non-blocking UDP sockets, bound
//! when the core asks ([`RelayBinder`], the core's `RelaySockets`), kept by
//! local address and registered in the worker's [`RelayPoll`] with a token
//! that encodes that address, so a readiness event leads straight to its
//! socket. A held allocation costs a file descriptor and a map entry.
//!
//! A socket the core is done with is kept bound, up to [`KEPT_SOCKETS`]
//! per worker, and offered for the next allocation (the core decides, see
//! `RelaySockets::reuse`): creating, binding, registering and closing a
//! socket is most of an allocation's cost, and a client that allocates and
//! deletes in a loop pays it once per kept socket, not once per allocation.
//! Kept sockets are handed over oldest first, so a port goes back into use
//! only after the others kept.
//!
//! [`RelayPoll`]: super::relay_poll::RelayPoll

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use turn::RelaySockets;

use super::relay_poll::RelayPoll;

/// Relay socket buffers (the kernel caps them at net.core.rmem_max/wmem_max).
const RELAY_SOCKET_BUFFER: usize = 4 << 20;

/// Sockets of ended allocations a worker keeps bound for the next ones.
pub(crate) const KEPT_SOCKETS: usize = 64;

/// The relay sockets of one worker, by local address.
pub(crate) struct Relays {
    sockets: HashMap<SocketAddr, std::net::UdpSocket>,
    /// Sockets of ended allocations, still bound and registered, oldest first.
    kept: VecDeque<(SocketAddr, std::net::UdpSocket)>,
    /// The local IPs tokens index (one per address clients reach us at).
    ips: Vec<IpAddr>,
    registry: mio::Registry,
}

impl Relays {
    /// An empty set registering in `poll`.
    pub(crate) fn new(poll: &RelayPoll) -> io::Result<Self> {
        Ok(Relays {
            sockets: HashMap::new(),
            kept: VecDeque::new(),
            ips: Vec::new(),
            registry: poll.registry()?,
        })
    }

    /// The socket bound to `local`: an allocation's, or a kept one (read
    /// too, so what peers still send to it is dropped by the core, counted,
    /// rather than left queued).
    pub(crate) fn get(&self, local: SocketAddr) -> Option<&std::net::UdpSocket> {
        self.sockets.get(&local).or_else(|| {
            self.kept
                .iter()
                .find_map(|(a, socket)| (*a == local).then_some(socket))
        })
    }

    /// Sockets of allocations now.
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Sockets kept bound for the next allocations.
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }

    /// The core is done with the socket bound to `local`: kept for reuse
    /// while there is room, else closed (closing also takes it out of the
    /// epoll set).
    pub(crate) fn close(&mut self, local: SocketAddr) {
        if let Some(socket) = self.sockets.remove(&local)
            && self.kept.len() < KEPT_SOCKETS
        {
            self.kept.push_back((local, socket));
        }
    }

    /// Closes the socket bound to `local` (the port must become free).
    pub(crate) fn unbind(&mut self, local: SocketAddr) {
        self.sockets.remove(&local);
        self.kept.retain(|(a, _)| *a != local);
    }

    /// Takes the kept socket at `index` into use again. (Kept sockets are
    /// read like the others, so what peers of the last allocation sent was
    /// dropped by the core already; what arrives now meets the new
    /// allocation's permissions.)
    fn take_kept(&mut self, index: usize) -> Option<SocketAddr> {
        let (local, socket) = self.kept.remove(index)?;
        self.sockets.insert(local, socket);
        Some(local)
    }

    /// Sends a datagram from a relay socket with a direct non-blocking
    /// `sendto`; false if it was dropped (a full socket buffer, as UDP may).
    pub(crate) fn send(socket: &std::net::UdpSocket, to: SocketAddr, payload: &[u8]) -> bool {
        socket.send_to(payload, to).is_ok()
    }

    /// The address a readiness token stands for.
    pub(crate) fn address(&self, token: mio::Token) -> Option<SocketAddr> {
        let ip = *self.ips.get(token.0 >> 16)?;
        let port = u16::try_from(token.0 & 0xFFFF).ok()?;
        Some(SocketAddr::new(ip, port))
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
}

/// Binds relay sockets for the core.
pub(crate) struct RelayBinder<'a>(pub(crate) &'a mut Relays);

impl RelaySockets for RelayBinder<'_> {
    fn bind(&mut self, local: SocketAddr) -> io::Result<()> {
        let relays = &mut *self.0;
        if let Some(i) = relays.kept.iter().position(|(a, _)| *a == local) {
            relays.take_kept(i);
            return Ok(());
        }
        // Non-blocking from the start (no fcntl afterwards).
        let ty = socket2::Type::DGRAM.nonblocking().cloexec();
        let socket = socket2::Socket::new(socket2::Domain::for_address(local), ty, None)?;
        socket.bind(&local.into())?;
        // Room for bursts from peers; the kernel spends it only while queued.
        let _ = socket.set_recv_buffer_size(RELAY_SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(RELAY_SOCKET_BUFFER);
        let socket = std::net::UdpSocket::from(socket);
        let token = relays.token(local);
        relays.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        relays.sockets.insert(local, socket);
        Ok(())
    }

    fn reuse(&mut self, ip: IpAddr, acceptable: &mut dyn FnMut(u16) -> bool) -> Option<u16> {
        let relays = &mut *self.0;
        let mut i = 0;
        while let Some((local, _)) = relays.kept.get(i) {
            let local = *local;
            if local.ip() != ip {
                i += 1;
            } else if acceptable(local.port()) {
                return relays.take_kept(i).map(|a| a.port());
            } else {
                relays.kept.remove(i);
            }
        }
        None
    }
}
