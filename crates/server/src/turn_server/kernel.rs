//! The kernel fast path (issue 17): bound UDP channels relayed by the eBPF
//! program of `crates/offload`, steered by the cores.
//!
//! One [`KernelOffload`] per process holds the attached program and its
//! tables; each worker's [`WorkerKernel`] acts on its core's
//! `Event::Offload` / `Event::OffloadEnd` (insert, remove) and every
//! [`POLL`] reads what the kernel relayed per channel, reports it to the
//! core (counters, bandwidth limits) and writes back the byte budget the
//! core grants. So an offloaded channel obeys the same lifetimes, policy
//! and `--max-bps` / `--total-bps` as one relayed in userspace; the kernel
//! hands a channel's datagrams up once its budget is spent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use offload::{Channel, ChannelKey, Counters, Offload, OffloadError};
use turn::{FiveTuple, OffloadChannel, OffloadReport, Server};

/// How often a worker reads its channels' counters and renews budgets.
pub const POLL: Duration = Duration::from_millis(100);

/// The attached program and its tables, shared by the workers.
pub struct KernelOffload {
    table: Mutex<Offload>,
    interfaces: Vec<String>,
}

impl KernelOffload {
    /// Loads the program and attaches it to `interfaces` (all that are up,
    /// loopback aside, when empty) for the UDP listeners `listen`.
    pub fn attach(interfaces: &[String], listen: &[SocketAddr]) -> Result<Self, OffloadError> {
        let interfaces = if interfaces.is_empty() {
            interfaces_up()
        } else {
            interfaces.to_vec()
        };
        let table = Offload::attach(&interfaces, listen)?;
        Ok(KernelOffload {
            table: Mutex::new(table),
            interfaces,
        })
    }

    /// The interfaces it runs on.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    fn table(&self) -> MutexGuard<'_, Offload> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Interfaces that are up, except loopback (`/sys/class/net`).
fn interfaces_up() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .filter(|e| {
            let state = std::fs::read_to_string(e.path().join("operstate")).unwrap_or_default();
            let flags = std::fs::read_to_string(e.path().join("flags")).unwrap_or_default();
            // IFF_LOOPBACK is 0x8.
            let loopback = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
                .is_ok_and(|f| f & 0x8 != 0);
            !loopback && matches!(state.trim(), "up" | "unknown")
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// One worker's offloaded channels and what the kernel had relayed on
/// each at the last poll.
pub(crate) struct WorkerKernel {
    shared: Arc<KernelOffload>,
    channels: HashMap<(FiveTuple, u16), Counters>,
    next_poll: Instant,
}

fn key(ch: &OffloadChannel) -> ChannelKey {
    ChannelKey {
        client: ch.client.client,
        server: ch.client.server,
        channel: ch.channel,
    }
}

/// What was relayed between two readings of one channel's counters.
fn since(now: &Counters, before: &Counters) -> OffloadReport {
    OffloadReport {
        to_peer_packets: now.to_peer_packets.saturating_sub(before.to_peer_packets),
        to_peer_bytes: now.to_peer_bytes.saturating_sub(before.to_peer_bytes),
        to_client_packets: now
            .to_client_packets
            .saturating_sub(before.to_client_packets),
        to_client_bytes: now.to_client_bytes.saturating_sub(before.to_client_bytes),
    }
}

impl WorkerKernel {
    pub(crate) fn new(shared: Arc<KernelOffload>) -> Self {
        WorkerKernel {
            shared,
            channels: HashMap::new(),
            next_poll: Instant::now(),
        }
    }

    /// The core offers `ch`: relay it in the kernel with the budget the
    /// core grants. A channel the kernel cannot take (table full, the peer
    /// on another entry) stays in userspace, and the core is told.
    pub(crate) fn start(&mut self, core: &mut Server, now: Instant, ch: OffloadChannel) {
        if !core.is_offloaded(&ch) {
            // Ended in the same batch as it began.
            return;
        }
        let budget =
            core.handle_offload_report(now, ch.client, ch.channel, OffloadReport::default());
        let entry = Channel {
            key: key(&ch),
            relay: ch.relay,
            peer: ch.peer,
        };
        match self.shared.table().insert(&entry, budget) {
            Ok(()) => {
                self.channels
                    .insert((ch.client, ch.channel), Counters::default());
            }
            Err(e) => {
                tracing::debug!(channel = ch.channel, client = %ch.client.client, error = %e,
                    "channel stays in userspace");
                core.handle_offload_refused(&ch);
            }
        }
    }

    /// The core ends `ch`: out of the kernel, and what it relayed last
    /// reported.
    pub(crate) fn end(&mut self, core: &mut Server, now: Instant, ch: OffloadChannel) {
        let Some(before) = self.channels.remove(&(ch.client, ch.channel)) else {
            return;
        };
        match self.shared.table().remove(&key(&ch)) {
            Ok(Some(last)) => {
                core.handle_offload_report(now, ch.client, ch.channel, since(&last, &before));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "removing an offloaded channel failed"),
        }
    }

    /// Reads every channel's counters, reports them, renews budgets.
    pub(crate) fn poll(&mut self, core: &mut Server, now: Instant) {
        if now < self.next_poll {
            return;
        }
        self.next_poll = now + POLL;
        if self.channels.is_empty() {
            return;
        }
        let mut table = self.shared.table();
        for ((client, channel), before) in self.channels.iter_mut() {
            let k = ChannelKey {
                client: client.client,
                server: client.server,
                channel: *channel,
            };
            let Ok(Some(counters)) = table.counters(&k) else {
                continue;
            };
            let budget =
                core.handle_offload_report(now, *client, *channel, since(&counters, before));
            *before = counters;
            if budget != counters.budget_left
                && let Err(e) = table.set_budget(&k, budget)
            {
                tracing::debug!(error = %e, "renewing an offloaded channel's budget failed");
            }
        }
    }

    /// When [`WorkerKernel::poll`] is due, if there is anything to poll.
    pub(crate) fn next_poll(&self) -> Option<Instant> {
        (!self.channels.is_empty()).then_some(self.next_poll)
    }
}
