//! UDP GSO trains: datagrams from one source socket to one destination,
//! of one size (the last may be shorter), leave in one `sendmsg` with
//! `UDP_SEGMENT` instead of one syscall each. The worker's egress queues
//! into trains while it handles an input batch (a listener read, a relay
//! read round, a stream read) and sends them when the batch is done.

use std::net::SocketAddr;

use super::MAX_DATAGRAM;
use super::client_socket::{ClientSocket, Gso, segments};
use super::relays::Relays;

/// Most datagrams in one GSO send (the kernel's limit is 64).
pub(crate) const GSO_MAX_SEGMENTS: usize = 32;
/// Largest datagram sent with GSO: the kernel refuses a segment larger than
/// the path MTU allows (EINVAL, and quinn-udp then turns GSO off for good),
/// so only datagrams that fit the IPv6 minimum MTU (1280 − 40 − 8) are
/// batched; larger ones go one by one.
pub(crate) const GSO_MAX_SEGMENT: usize = 1232;
/// Trains open at once; a datagram for one more flow sends them all first.
const OPEN_TRAINS: usize = 8;

/// Where trains leave from.
pub(crate) trait Sink {
    /// Sends `contents`: datagrams of `segment` bytes, the last may be
    /// shorter. Returns how many were dropped (a full socket buffer).
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64;
    /// Most datagrams one send may carry.
    fn max_segments(&self) -> usize;
}

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

    /// Sends the train; returns the datagrams dropped.
    fn send(&mut self, sink: &impl Sink) -> u64 {
        let dropped = match self.flow.take() {
            Some((from, to)) => sink.send(from, to, &self.buf, self.segment),
            None => 0,
        };
        self.buf.clear();
        self.count = 0;
        dropped
    }
}

/// Datagrams on their way out, grouped by flow (source socket, destination);
/// order within a flow is kept. Buffers are kept between uses: nothing is
/// allocated per datagram once they have grown.
#[derive(Default)]
pub(crate) struct Trains {
    trains: Vec<Train>,
    open: usize,
    /// Datagrams the kernel dropped (full socket buffers), ever.
    dropped: u64,
}

impl Trains {
    /// Queues a datagram from `from` to `to`, sending its flow's train
    /// first if it cannot join.
    pub(crate) fn push(
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
                self.dropped += t.send(sink);
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
    pub(crate) fn flush(&mut self, sink: &impl Sink) {
        for t in self.trains.iter_mut().take(self.open) {
            self.dropped += t.send(sink);
        }
        self.open = 0;
    }

    /// Datagrams dropped so far because a socket buffer was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}
