//! What the driver counts, and the board workers publish it on.
//!
//! Each worker keeps plain counters (nothing shared, nothing atomic) and
//! copies a snapshot, with its core's [`turn::ServerStats`], into the
//! [`StatsBoard`] about once a second from its timer. Readers (the metrics
//! endpoint) take the board's lock; a packet never does.

use std::sync::{Arc, Mutex};

/// One worker's counters, as last published.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// The TURN core's counters (requests, relayed data, drops, allocations).
    pub core: turn::ServerStats,
    /// TURN-over-TCP connections open now.
    pub tcp_open: u64,
    /// TURN-over-TLS connections open now (`--turns-listen` and handed over
    /// from the HTTPS port).
    pub tls_open: u64,
    /// TCP connections accepted on `--turn-listen` and `--turns-listen`
    /// (TLS ones before their handshake).
    pub tcp_accepted: u64,
    /// TLS handshakes completed on `--turns-listen`.
    pub tls_handshakes: u64,
    /// TLS handshakes on `--turns-listen` that failed or timed out.
    pub tls_handshake_failures: u64,
    /// TCP/TLS connections refused: their address held `--max-tcp-per-ip`.
    pub tcp_refused_per_ip: u64,
    /// TURN-over-TLS connections handed over by the shared HTTPS port.
    pub tls_handed_over: u64,
    /// Relay sockets open now (allocations and held reservations).
    pub relay_sockets: u64,
    /// Relay sockets of ended allocations kept bound for the next ones.
    pub relay_sockets_kept: u64,
    /// UDP datagrams dropped on the way out because a socket buffer was full.
    pub udp_send_dropped: u64,
    /// Frames dropped on the way to a stream client whose write queue was full.
    pub stream_send_dropped: u64,
}

/// The driver's own counters a worker keeps between snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamCounters {
    pub(crate) tcp_open: u64,
    pub(crate) tls_open: u64,
    pub(crate) tcp_accepted: u64,
    pub(crate) tls_handshakes: u64,
    pub(crate) tls_handshake_failures: u64,
    pub(crate) tcp_refused_per_ip: u64,
    pub(crate) tls_handed_over: u64,
}

/// The workers' latest snapshots, one slot each.
#[derive(Debug)]
pub struct StatsBoard {
    workers: Mutex<Vec<WorkerStats>>,
}

impl StatsBoard {
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        Arc::new(StatsBoard {
            workers: Mutex::new(vec![WorkerStats::default(); workers]),
        })
    }

    /// Every worker's latest snapshot (at most about a second old).
    pub fn snapshot(&self) -> Vec<WorkerStats> {
        self.lock().clone()
    }

    pub(crate) fn publish(&self, worker: usize, stats: WorkerStats) {
        if let Some(slot) = self.lock().get_mut(worker) {
            *slot = stats;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WorkerStats>> {
        // Each update replaces a whole slot: a poisoned lock holds no half-done one.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}
