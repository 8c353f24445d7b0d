//! Everything that leaves a worker: STUN responses and relayed data to UDP
//! clients (GSO trains from the client socket), relayed data to peers (GSO
//! trains per relay socket and peer), and frames for stream clients (each
//! connection's bounded write queue). Queued while the worker handles one
//! input batch; [`Egress::flush`] sends what the trains hold.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::sync::mpsc::{self, error::TrySendError};
use turn::{FiveTuple, Transport};

use crate::turn_server::socket::client_socket::ClientSocket;
use crate::turn_server::socket::gso::{ToClients, ToPeers};
use crate::turn_server::socket::relays::Relays;
use crate::udp_gso::Trains;

/// A stream connection's write queue (frames; the connection's writer task
/// drains it). Bounded: a client that does not read loses data, not the
/// server memory.
pub(crate) type StreamQueue = mpsc::Sender<Vec<u8>>;

/// A worker's way out.
pub(crate) struct Egress {
    socket: Rc<ClientSocket>,
    to_clients: Trains,
    to_peers: Trains,
    streams: HashMap<FiveTuple, StreamQueue>,
    stream_dropped: u64,
}

impl Egress {
    pub(crate) fn new(socket: Rc<ClientSocket>) -> Self {
        Egress {
            socket,
            to_clients: Trains::default(),
            to_peers: Trains::default(),
            streams: HashMap::new(),
            stream_dropped: 0,
        }
    }

    /// Queues a message for a client: into a train from the address a UDP
    /// client reached, or onto a stream connection's queue.
    pub(crate) fn for_client(&mut self, to: FiveTuple, payload: &[u8]) {
        match to.transport {
            Transport::Udp => self.to_clients.push(
                &ToClients(&self.socket),
                SocketAddr::new(to.server.ip(), 0),
                to.client,
                payload,
            ),
            Transport::Tcp | Transport::Tls => {
                if let Some(queue) = self.streams.get(&to)
                    && let Err(TrySendError::Full(_)) = queue.try_send(payload.to_vec())
                {
                    self.stream_dropped += 1;
                }
            }
        }
    }

    /// Queues a datagram for a peer, from the relay socket bound to `relay`.
    pub(crate) fn for_peer(
        &mut self,
        relays: &Relays,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) {
        let sink = ToPeers {
            relays,
            socket: &self.socket,
        };
        self.to_peers.push(&sink, relay, peer, payload);
    }

    /// Sends every queued train.
    pub(crate) fn flush(&mut self, relays: &Relays) {
        self.to_clients.flush(&ToClients(&self.socket));
        let sink = ToPeers {
            relays,
            socket: &self.socket,
        };
        self.to_peers.flush(&sink);
    }

    pub(crate) fn stream_opened(&mut self, ft: FiveTuple, queue: StreamQueue) {
        self.streams.insert(ft, queue);
    }

    pub(crate) fn stream_closed(&mut self, ft: &FiveTuple) {
        self.streams.remove(ft);
    }

    /// UDP datagrams dropped so far (full socket buffers).
    pub(crate) fn udp_dropped(&self) -> u64 {
        self.to_clients.dropped() + self.to_peers.dropped()
    }

    /// Stream frames dropped so far (full write queues).
    pub(crate) fn stream_dropped(&self) -> u64 {
        self.stream_dropped
    }
}
