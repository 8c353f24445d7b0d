//! UDP GSO trains: datagrams from one source to one destination, of one
//! size (the last may be shorter), leave in one `sendmsg` with
//! `UDP_SEGMENT` instead of one syscall each, and the kernel builds one
//! packet's headers and route for all of them. A driver queues what a core
//! sends while it handles an input batch and sends the trains when the
//! batch is done. Shared by the TURN workers (to clients and to peers) and
//! the SFU (to participants); where trains leave from is a [`Sink`].

use std::io;
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{UdpSockRef, UdpSocketState};

/// Most datagrams in one GSO send (the kernel's limit is 64).
pub(crate) const GSO_MAX_SEGMENTS: usize = 32;
/// Largest datagram sent with GSO: the kernel refuses a segment larger than
/// the path MTU allows (EINVAL, and quinn-udp then turns GSO off for good),
/// so only datagrams that fit the IPv6 minimum MTU (1280 − 40 − 8) are
/// batched; larger ones go one by one.
pub(crate) const GSO_MAX_SEGMENT: usize = 1232;
/// Trains open at once by default; a datagram for one more flow sends
/// them all first.
const OPEN_TRAINS: usize = 8;

/// Largest train: one UDP payload.
const MAX_TRAIN: usize = 65_535;

/// Where trains leave from.
pub(crate) trait Sink {
    /// Sends `contents`: datagrams of `segment` bytes, the last may be
    /// shorter. Returns how many were dropped (a full socket buffer).
    fn send(&self, from: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64;
    /// Most datagrams one send may carry.
    fn max_segments(&self) -> usize;
}

/// What became of a GSO send.
pub(crate) enum Gso {
    /// All datagrams left.
    Sent,
    /// The socket buffer was full: all were dropped, as UDP may.
    Dropped,
    /// The kernel refused GSO for this send: send them one by one.
    Refused,
}

/// Datagrams in a train of `len` bytes cut every `segment`.
pub(crate) fn segments(len: usize, segment: usize) -> u64 {
    u64::try_from(len.div_ceil(segment.max(1))).unwrap_or(u64::MAX)
}

/// One GSO sendmsg of `contents`, cut every `segment` bytes, on `socket`.
pub(crate) fn send_gso(
    state: &UdpSocketState,
    socket: UdpSockRef<'_>,
    to: SocketAddr,
    src_ip: Option<IpAddr>,
    contents: &[u8],
    segment: usize,
) -> Gso {
    let transmit = quinn_udp::Transmit {
        destination: to,
        ecn: None,
        contents,
        segment_size: Some(segment),
        src_ip,
    };
    match state.try_send(socket, &transmit) {
        Ok(()) => Gso::Sent,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Gso::Dropped,
        Err(_) => Gso::Refused,
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
            && self.buf.len() + datagram.len() <= MAX_TRAIN
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
pub(crate) struct Trains {
    trains: Vec<Train>,
    open: usize,
    /// Most trains open at once.
    max_open: usize,
    /// Datagrams the kernel dropped (full socket buffers), ever.
    dropped: u64,
}

impl Default for Trains {
    fn default() -> Self {
        Trains::with_open(OPEN_TRAINS)
    }
}

impl Trains {
    /// Trains for up to `max_open` flows at once (each push looks through
    /// the open ones).
    pub(crate) fn with_open(max_open: usize) -> Self {
        Trains {
            trains: Vec::new(),
            open: 0,
            max_open: max_open.max(1),
            dropped: 0,
        }
    }

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
        if self.open >= self.max_open {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::cell::RefCell;

    use super::*;

    /// Records every send: (to, datagram sizes).
    #[derive(Default)]
    struct Record(RefCell<Vec<(SocketAddr, Vec<usize>)>>);

    impl Sink for Record {
        fn send(&self, _: SocketAddr, to: SocketAddr, contents: &[u8], segment: usize) -> u64 {
            let sizes = contents.chunks(segment).map(<[u8]>::len).collect();
            self.0.borrow_mut().push((to, sizes));
            0
        }
        fn max_segments(&self) -> usize {
            4
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn interleaved_flows_each_leave_as_one_train_in_order() {
        let sink = Record::default();
        let mut trains = Trains::with_open(16);
        let from = addr(1);
        // A frame of three packets to each of ten subscribers, round robin,
        // as str0m's pacer releases them.
        for size in [1100, 1100, 300] {
            for sub in 0..10 {
                trains.push(&sink, from, addr(100 + sub), &vec![0; size]);
            }
        }
        assert!(
            sink.0.borrow().is_empty(),
            "nothing leaves before the flush"
        );
        trains.flush(&sink);
        let sent = sink.0.borrow();
        assert_eq!(sent.len(), 10);
        for (i, (to, sizes)) in sent.iter().enumerate() {
            assert_eq!(*to, addr(100 + i as u16));
            assert_eq!(sizes, &[1100, 1100, 300]);
        }
    }

    #[test]
    fn a_train_ends_at_a_shorter_datagram_a_longer_one_or_the_segment_limit() {
        let sink = Record::default();
        let mut trains = Trains::default();
        let (from, to) = (addr(1), addr(2));
        for size in [500, 500, 200, 500, 800, 800, 800, 800, 800] {
            trains.push(&sink, from, to, &vec![0; size]);
        }
        trains.flush(&sink);
        let sizes: Vec<Vec<usize>> = sink.0.borrow().iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(
            sizes,
            vec![
                vec![500, 500, 200],
                vec![500],
                vec![800, 800, 800, 800],
                vec![800]
            ]
        );
    }

    #[test]
    fn one_flow_too_many_sends_the_open_trains_first() {
        let sink = Record::default();
        let mut trains = Trains::with_open(2);
        for port in [10, 11, 12] {
            trains.push(&sink, addr(1), addr(port), &[0; 100]);
        }
        assert_eq!(sink.0.borrow().len(), 2);
        trains.flush(&sink);
        assert_eq!(sink.0.borrow().len(), 3);
    }
}
