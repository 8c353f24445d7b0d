//! Where the TURN worker's GSO trains ([`crate::udp_gso`]) leave from: the
//! client socket, and the relay sockets toward peers.

use std::net::SocketAddr;

use super::client_socket::ClientSocket;
use super::relays::Relays;
use crate::udp_gso::{Gso, Sink, segments};

/// Datagrams to peers, from the relay socket bound to `from`.
pub(crate) struct ToPeers<'a> {
    pub(crate) relays: &'a Relays,
    /// Whose kernel capabilities (GSO) the relay sockets share.
    pub(crate) socket: &'a ClientSocket,
}

impl Sink for ToPeers<'_> {
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64 {
        let Some(relay) = self.relays.get(from) else {
            // Closed while its datagrams waited: nobody to send them from.
            return segments(contents.len(), segment);
        };
        if contents.len() > segment {
            match self
                .socket
                .send_gso(relay.into(), to, None, contents, segment)
            {
                Gso::Sent => return 0,
                Gso::Dropped => return segments(contents.len(), segment),
                Gso::Refused => {}
            }
        }
        contents
            .chunks(segment.max(1))
            .map(|d| u64::from(!Relays::send(relay, to, d)))
            .sum()
    }

    fn max_segments(&self) -> usize {
        self.socket.max_segments()
    }
}

/// Datagrams to clients over UDP, from the client socket with source IP `from.ip()`.
pub(crate) struct ToClients<'a>(pub(crate) &'a ClientSocket);

impl Sink for ToClients<'_> {
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64 {
        self.0.send_segments(to, from.ip(), contents, segment)
    }

    fn max_segments(&self) -> usize {
        self.0.max_segments()
    }
}
