//! The relay sockets of one worker: plain non-blocking UDP sockets, bound
//! when the core asks ([`RelayBinder`], the core's `RelaySockets`), kept by
//! local address and registered in the worker's [`RelayPoll`] with a token
//! that encodes that address, so a readiness event leads straight to its
//! socket. A held allocation costs a file descriptor and a map entry.
//!
//! [`RelayPoll`]: super::relay_poll::RelayPoll

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use turn::RelaySockets;

use super::relay_poll::RelayPoll;

/// Relay socket buffers (the kernel caps them at net.core.rmem_max/wmem_max).
const RELAY_SOCKET_BUFFER: usize = 4 << 20;

/// The relay sockets of one worker, by local address.
pub(crate) struct Relays {
    sockets: HashMap<SocketAddr, std::net::UdpSocket>,
    /// The local IPs tokens index (one per address clients reach us at).
    ips: Vec<IpAddr>,
    registry: mio::Registry,
}

impl Relays {
    /// An empty set registering in `poll`.
    pub(crate) fn new(poll: &RelayPoll) -> io::Result<Self> {
        Ok(Relays {
            sockets: HashMap::new(),
            ips: Vec::new(),
            registry: poll.registry()?,
        })
    }

    /// The socket bound to `local`.
    pub(crate) fn get(&self, local: SocketAddr) -> Option<&std::net::UdpSocket> {
        self.sockets.get(&local)
    }

    /// Sockets open now.
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Closes the socket bound to `local`.
    pub(crate) fn close(&mut self, local: SocketAddr) {
        if let Some(socket) = self.sockets.remove(&local) {
            let _ = self.registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
        }
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
        let socket = std::net::UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        // Room for bursts from peers; the kernel spends it only while queued.
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_recv_buffer_size(RELAY_SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(RELAY_SOCKET_BUFFER);
        let relays = &mut *self.0;
        let token = relays.token(local);
        relays.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        relays.sockets.insert(local, socket);
        Ok(())
    }
}
