//! UDP GSO batching: datagrams from one source socket to one destination,
//! of one size (the last may be shorter), leave in one `sendmsg` with
//! `UDP_SEGMENT` instead of one syscall each. Used for the datagrams of one
//! listener read batch on their way to peers, for those of one relay read
//! round on their way to clients, and for STUN responses.

use std::net::SocketAddr;

use super::{Listener, MAX_DATAGRAM, Relays, send_from_relay};

/// Most datagrams in one GSO send (the kernel's limit is 64).
pub(in crate::turn_server) const GSO_MAX_SEGMENTS: usize = 32;
/// Largest datagram sent with GSO: the kernel refuses a segment larger than
/// the path MTU allows (EINVAL, and quinn-udp then turns GSO off for good),
/// so only datagrams that fit the IPv6 minimum MTU (1280 − 40 − 8) are
/// batched; larger ones go one by one.
pub(in crate::turn_server) const GSO_MAX_SEGMENT: usize = 1232;
/// Trains open at once; a datagram for one more flow sends them all first.
const OPEN_TRAINS: usize = 8;

/// Where trains leave from.
pub(in crate::turn_server) trait Sink {
    /// Sends `contents`: datagrams of `segment` bytes, the last may be shorter.
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize);
    /// Most datagrams one send may carry.
    fn max_segments(&self) -> usize;
}

/// Datagrams to peers, from the relay socket bound to `from`.
pub(in crate::turn_server) struct ToPeers<'a> {
    pub(in crate::turn_server) relays: &'a Relays,
    pub(in crate::turn_server) listener: &'a Listener,
}

impl Sink for ToPeers<'_> {
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) {
        let Some(socket) = self.relays.get(from) else {
            return;
        };
        let sent = contents.len() > segment
            && self
                .listener
                .send_gso(socket.into(), to, None, contents, segment);
        if !sent {
            for datagram in contents.chunks(segment.max(1)) {
                send_from_relay(socket, to, datagram);
            }
        }
    }

    fn max_segments(&self) -> usize {
        self.listener.max_segments()
    }
}

/// Datagrams to clients over UDP, from the listener with source IP `from.ip()`.
pub(in crate::turn_server) struct ToClients<'a>(pub(in crate::turn_server) &'a Listener);

impl Sink for ToClients<'_> {
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) {
        self.0.send_segments(to, from.ip(), contents, segment);
    }

    fn max_segments(&self) -> usize {
        self.0.max_segments()
    }
}

/// One flow's queued datagrams.
#[derive(Default)]
struct Train {
    flow: Option<(SocketAddr, SocketAddr)>,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the train; nothing more may join.
    closed: bool,
    buf: Vec<u8>,
}

impl Train {
    fn joins(&self, datagram: &[u8], max_segments: usize) -> bool {
        !self.closed
            && datagram.len() <= self.segment
            && self.segment <= GSO_MAX_SEGMENT
            && self.count < max_segments
            && self.buf.len() + datagram.len() <= MAX_DATAGRAM
    }

    fn start(&mut self, flow: (SocketAddr, SocketAddr), datagram: &[u8]) {
        self.flow = Some(flow);
        self.segment = datagram.len();
        self.buf.clear();
        self.buf.extend_from_slice(datagram);
        self.count = 1;
        self.closed = false;
    }

    fn append(&mut self, datagram: &[u8]) {
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.segment;
    }

    fn send(&mut self, sink: &impl Sink) {
        if let Some((from, to)) = self.flow.take() {
            sink.send(from, to, &self.buf, self.segment);
        }
        self.buf.clear();
        self.count = 0;
    }
}

/// Datagrams on their way out, grouped by flow (source socket, destination);
/// order within a flow is kept. Buffers are kept between uses: nothing is
/// allocated per datagram once they have grown.
#[derive(Default)]
pub(in crate::turn_server) struct Trains {
    trains: Vec<Train>,
    open: usize,
}

impl Trains {
    /// Queues a datagram from `from` to `to`, sending its flow's train
    /// first if it cannot join.
    pub(in crate::turn_server) fn push(
        &mut self,
        sink: &impl Sink,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &[u8],
    ) {
        let flow = (from, to);
        let max_segments = sink.max_segments();
        let open = self.trains.iter_mut().take(self.open);
        if let Some(t) = open.into_iter().find(|t| t.flow == Some(flow)) {
            if t.joins(datagram, max_segments) {
                t.append(datagram);
            } else {
                t.send(sink);
                t.start(flow, datagram);
            }
            return;
        }
        if self.open >= OPEN_TRAINS {
            self.flush(sink);
        }
        if self.trains.len() <= self.open {
            self.trains.push(Train::default());
        }
        if let Some(t) = self.trains.get_mut(self.open) {
            t.start(flow, datagram);
            self.open += 1;
        }
    }

    /// Sends every open train.
    pub(in crate::turn_server) fn flush(&mut self, sink: &impl Sink) {
        for t in self.trains.iter_mut().take(self.open) {
            t.send(sink);
        }
        self.open = 0;
    }
}
