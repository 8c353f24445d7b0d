//! A worker: the only owner of a [`turn::Server`], with one method per
//! input and one egress. The transports (`transport/`) are read loops that
//! hand it what they read; it calls the core and queues what the core
//! returns; [`Worker::flush`] sends it. Read loops call `flush` once per
//! read batch (so a batch's datagrams to one destination leave in one GSO
//! send); single events (timer, stream opened/closed, control) flush
//! themselves.
//!
//! The worker lives in an `Rc<RefCell<_>>` on its thread; a transport
//! borrows it between awaits only, so a borrow never meets another.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use turn::{Event, FiveTuple, Server, Transport};

use super::egress::{Egress, StreamQueue};
use super::kernel::WorkerKernel;
use super::socket::client_socket::ClientSocket;
use super::socket::relays::{RelayBinder, Relays};
use super::stats::{StatsBoard, StreamCounters, WorkerStats};

/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Messages from outside the worker's thread (one channel per worker).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// Refuse new allocations from now on (300 to `alternate`, else 508).
    Drain { alternate: Option<SocketAddr> },
}

/// A worker's core, relay sockets, egress and counters.
pub(crate) struct Worker {
    core: Server,
    relays: Relays,
    egress: Egress,
    counters: StreamCounters,
    board: Arc<StatsBoard>,
    index: usize,
    next_publish: Instant,
    /// The kernel fast path's channels of this worker, when it is on.
    kernel: Option<WorkerKernel>,
}

impl Worker {
    pub(crate) fn new(
        core: Server,
        relays: Relays,
        socket: Rc<ClientSocket>,
        board: Arc<StatsBoard>,
        index: usize,
        kernel: Option<WorkerKernel>,
    ) -> Self {
        Worker {
            core,
            relays,
            egress: Egress::new(socket),
            counters: StreamCounters::default(),
            board,
            index,
            next_publish: Instant::now(),
            kernel,
        }
    }

    // ---- Inputs ----

    /// A datagram from a UDP client, or a frame cut from a stream: the core
    /// answers it (queued in the core) or relays it (queued here).
    pub(crate) fn client_message(&mut self, now: Instant, from: FiveTuple, bytes: &[u8]) {
        let Worker {
            core,
            relays,
            egress,
            ..
        } = self;
        if let Some(send) = core.handle_client(now, from, bytes, &mut RelayBinder(relays)) {
            egress.for_peer(relays, send.relay, send.peer, send.payload);
        }
    }

    /// A datagram a peer sent to relay socket `relay`, read into `slot`
    /// after the core's headroom (`len` bytes).
    pub(crate) fn peer_datagram(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        slot: &mut [u8],
        len: usize,
    ) {
        let Worker { core, egress, .. } = self;
        if let Some(out) = core.handle_peer(now, relay, peer, slot, len) {
            egress.for_client(out.to, out.payload);
        }
    }

    /// The timer fired: expiry in the core, and the counters' snapshot when
    /// due. Returns when to call again.
    pub(crate) fn timer(&mut self, now: Instant) -> Instant {
        self.core.handle_timeout(now);
        if let Some(kernel) = &mut self.kernel {
            kernel.poll(&mut self.core, now);
        }
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH_EVERY;
        }
        self.flush();
        self.next_timer()
    }

    /// A stream connection is served from now on; frames for it go to `queue`.
    pub(crate) fn stream_opened(&mut self, ft: FiveTuple, queue: StreamQueue) {
        self.egress.stream_opened(ft, queue);
        match ft.transport {
            Transport::Tls => self.counters.tls_open += 1,
            _ => self.counters.tcp_open += 1,
        }
    }

    /// A stream connection ended: its allocation ends with it.
    pub(crate) fn stream_closed(&mut self, ft: FiveTuple) {
        self.egress.stream_closed(&ft);
        self.core.client_disconnected(&ft);
        let open = match ft.transport {
            Transport::Tls => &mut self.counters.tls_open,
            _ => &mut self.counters.tcp_open,
        };
        *open = open.saturating_sub(1);
        self.flush();
    }

    /// A message from outside the thread.
    pub(crate) fn control(&mut self, message: Control) {
        match message {
            Control::Drain { alternate } => self.core.set_draining(alternate),
        }
        self.flush();
    }

    // ---- The one egress ----

    /// Sends what the inputs since the last flush produced, and closes the
    /// relay sockets of allocations that ended.
    pub(crate) fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.egress.for_client(t.to, &t.payload);
        }
        self.egress.flush(&self.relays);
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::RelayClosed(addr) => self.relays.close(addr),
                Event::RelayUnbound(addr) => self.relays.unbind(addr),
                Event::Offload(ch) => {
                    if let Some(kernel) = &mut self.kernel {
                        kernel.start(&mut self.core, Instant::now(), ch);
                    }
                }
                Event::OffloadEnd(ch) => {
                    if let Some(kernel) = &mut self.kernel {
                        kernel.end(&mut self.core, Instant::now(), ch);
                    }
                }
            }
        }
    }

    // ---- What transports ask ----

    /// When [`Worker::timer`] is due next.
    pub(crate) fn next_timer(&self) -> Instant {
        let kernel = self.kernel.as_ref().and_then(WorkerKernel::next_poll);
        [self.core.poll_timeout(), kernel]
            .into_iter()
            .flatten()
            .fold(self.next_publish, Instant::min)
    }

    /// The relay sockets (to map readiness events to sockets).
    pub(crate) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// Whether `ft` holds an allocation (a quiet stream with one is not idle).
    pub(crate) fn has_allocation(&self, ft: &FiveTuple, now: Instant) -> bool {
        self.core.has_allocation(ft, now)
    }

    /// Counts one TCP connection accepted on a listener of this worker.
    pub(crate) fn stream_accepted(&mut self) {
        self.counters.tcp_accepted += 1;
    }

    /// Counts one connection refused for its address's connection count.
    pub(crate) fn refused_per_ip(&mut self) {
        self.counters.tcp_refused_per_ip += 1;
    }

    /// Counts one TLS handshake on `--turns-listen`.
    pub(crate) fn tls_handshake(&mut self, ok: bool) {
        match ok {
            true => self.counters.tls_handshakes += 1,
            false => self.counters.tls_handshake_failures += 1,
        }
    }

    /// Counts one connection handed over by the shared HTTPS port.
    pub(crate) fn handed_over(&mut self) {
        self.counters.tls_handed_over += 1;
    }

    fn publish(&self) {
        let c = self.counters;
        let stats = WorkerStats {
            core: self.core.stats(),
            tcp_open: c.tcp_open,
            tls_open: c.tls_open,
            tcp_accepted: c.tcp_accepted,
            tls_handshakes: c.tls_handshakes,
            tls_handshake_failures: c.tls_handshake_failures,
            tcp_refused_per_ip: c.tcp_refused_per_ip,
            tls_handed_over: c.tls_handed_over,
            relay_sockets: u64::try_from(self.relays.len()).unwrap_or(u64::MAX),
            relay_sockets_kept: u64::try_from(self.relays.kept()).unwrap_or(u64::MAX),
            udp_send_dropped: self.egress.udp_dropped(),
            stream_send_dropped: self.egress.stream_dropped(),
        };
        self.board.publish(self.index, stats);
    }
}
