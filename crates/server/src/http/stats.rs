//! Counters of the signaling side, for the metrics endpoint: the hub's own
//! ([`signal::HubStats`], read under the hub's lock at snapshot time) and
//! the WebSocket driver's (atomics, bumped once per upgrade or request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use signal::HubStats;

use super::ws::Signaling;

/// Signaling counters; shared between the HTTP server and the metrics.
#[derive(Default)]
pub struct SignalingStats {
    hub: Mutex<Option<Weak<Signaling>>>,
    last_hub: Mutex<HubStats>,
    last_sfu: Mutex<Option<sfu::SfuStats>>,
    pub(super) ws_accepted: AtomicU64,
    pub(super) ws_refused_per_ip: AtomicU64,
    pub(super) ws_refused_origin: AtomicU64,
    pub(super) unauthorized_api: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalingSnapshot {
    /// The hub's counters (connections, rooms, peers, joins, relayed, errors by code).
    pub hub: HubStats,
    /// The SFU's counters, when it runs.
    pub sfu: Option<sfu::SfuStats>,
    /// The cluster driver's counters, in cluster mode.
    pub cluster: Option<crate::cluster::ClusterCounters>,
    /// WebSocket upgrades accepted since start.
    pub ws_accepted: u64,
    /// Upgrades refused with 429: the address had `--max-ws-per-ip` open.
    pub ws_refused_per_ip: u64,
    /// Upgrades refused with 403: a foreign `Origin`.
    pub ws_refused_origin: u64,
    /// `/api/ice` requests refused with 401 (token mode, missing or bad token).
    pub unauthorized_api: u64,
}

impl std::fmt::Debug for SignalingStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl SignalingStats {
    /// The counters now. Locks the hub for as long as copying its counters
    /// takes (once per scrape).
    pub fn snapshot(&self) -> SignalingSnapshot {
        let live = lock(&self.hub)
            .as_ref()
            .and_then(Weak::upgrade)
            .map(|s| (s.stats(), s.sfu_stats(), s.cluster_stats()));
        let (hub, sfu, cluster) = match live {
            Some((stats, sfu, cluster)) => {
                *lock(&self.last_hub) = stats;
                *lock(&self.last_sfu) = sfu;
                (stats, sfu, cluster)
            }
            None => (*lock(&self.last_hub), *lock(&self.last_sfu), None),
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SignalingSnapshot {
            hub,
            sfu,
            cluster,
            ws_accepted: get(&self.ws_accepted),
            ws_refused_per_ip: get(&self.ws_refused_per_ip),
            ws_refused_origin: get(&self.ws_refused_origin),
            unauthorized_api: get(&self.unauthorized_api),
        }
    }

    /// The hub whose counters [`SignalingStats::snapshot`] reads.
    pub(super) fn attach(&self, signaling: Weak<Signaling>) {
        *lock(&self.hub) = Some(signaling);
    }

    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is one assignment: a poisoned lock holds no half-done one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
