//! Channels a driver may relay outside the core, e.g. in an eBPF program
//! (RFC 8656 §12 ChannelData over UDP; the permission rules of §9 and the
//! channel lifetimes of §12 still decide).
//!
//! With [`ServerConfig::offload`](super::ServerConfig::offload) on, the core
//! says when a channel may be relayed without it ([`Event::Offload`]): a
//! channel bound over UDP, client and peer of one address family, while the
//! allocation lives, the channel is bound and the peer's permission is
//! valid. It says when that ends ([`Event::OffloadEnd`]): the channel or
//! the permission expired, the allocation was deleted, expired or its
//! stream closed. Refreshes keep an offloaded channel going without an
//! event. The driver reports what it relayed
//! ([`Server::handle_offload_report`]): the core counts it like its own
//! relaying, charges the bandwidth limits with it, and answers how many
//! bytes the channel may relay until the next report.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::{Event, FiveTuple, Server, Transport, bandwidth_rate};

/// A channel relayed without the core: ChannelData from `client` on
/// `channel` goes to `peer` from `relay`; datagrams from `peer` to `relay`
/// go to `client` as ChannelData on `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffloadChannel {
    /// The client's 5-tuple (always UDP).
    pub client: FiveTuple,
    /// The channel number.
    pub channel: u16,
    /// The local relay socket address (what the driver bound).
    pub relay: SocketAddr,
    /// The peer bound to the channel.
    pub peer: SocketAddr,
}

/// What the driver relayed on one channel since its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadReport {
    /// Datagrams client → peer.
    pub to_peer_packets: u64,
    /// Payload bytes client → peer (without the ChannelData header).
    pub to_peer_bytes: u64,
    /// Datagrams peer → client.
    pub to_client_packets: u64,
    /// Payload bytes peer → client.
    pub to_client_bytes: u64,
}

/// Bytes a channel may relay when no bandwidth limit is set.
pub const UNLIMITED: u64 = u64::MAX;

/// The channels handed to the driver, by client 5-tuple.
#[derive(Debug, Default)]
pub(super) struct Offloaded {
    by_client: HashMap<FiveTuple, Vec<OffloadChannel>>,
    count: usize,
}

impl Offloaded {
    fn contains(&self, client: &FiveTuple, channel: u16) -> bool {
        self.by_client
            .get(client)
            .is_some_and(|v| v.iter().any(|c| c.channel == channel))
    }

    /// Offloaded channels of `client`.
    fn of(&self, client: &FiveTuple) -> usize {
        self.by_client.get(client).map_or(0, Vec::len)
    }
}

impl Server {
    /// A ChannelBind succeeded: offer the channel to the driver if it can
    /// relay it and has not got it yet.
    pub(super) fn offer_offload(&mut self, client: FiveTuple, channel: u16, peer: SocketAddr) {
        if !self.config.offload
            || client.transport != Transport::Udp
            || client.client.is_ipv4() != peer.is_ipv4()
            || self.offloaded.contains(&client, channel)
        {
            return;
        }
        let Some(relay) = self.allocations.get(&client).map(|a| a.relay) else {
            return;
        };
        let ch = OffloadChannel {
            client,
            channel,
            relay,
            peer,
        };
        self.offloaded.by_client.entry(client).or_default().push(ch);
        self.offloaded.count += 1;
        self.stats.offloaded_channels += 1;
        self.events.push_back(Event::Offload(ch));
    }

    /// Ends the offloaded channels that are no longer bound, whose peer
    /// lost its permission, or whose allocation is gone.
    pub(super) fn check_offloads(&mut self, now: Instant) {
        if self.offloaded.count == 0 {
            return;
        }
        let allocations = &self.allocations;
        let events = &mut self.events;
        let mut ended = 0;
        self.offloaded.by_client.retain(|ft, channels| {
            channels.retain(|ch| {
                let valid = allocations.get(ft).is_some_and(|a| {
                    a.expires > now
                        && a.peer_for_channel(ch.channel, now) == Some(ch.peer)
                        && a.permits(ch.peer, now)
                });
                if !valid {
                    events.push_back(Event::OffloadEnd(*ch));
                    ended += 1;
                }
                valid
            });
            !channels.is_empty()
        });
        self.offloaded.count -= ended;
        self.stats.offloaded_channels -= ended as u64;
    }

    /// The allocation of `client` is gone: so are its offloaded channels.
    pub(super) fn end_offloads_of(&mut self, client: &FiveTuple) {
        if let Some(channels) = self.offloaded.by_client.remove(client) {
            self.offloaded.count -= channels.len();
            self.stats.offloaded_channels -= channels.len() as u64;
            self.events
                .extend(channels.into_iter().map(Event::OffloadEnd));
        }
    }

    /// The driver relayed `report` on `channel` of `client` since its last
    /// report: counted like relaying in the core (and apart, as relayed by
    /// the driver), charged to the allocation's and the server's bandwidth
    /// limits. Returns the bytes the channel may relay until the next
    /// report: [`UNLIMITED`] without limits, else its share of what the
    /// limits hold now (0 once they are spent: the driver then hands the
    /// channel's datagrams to the core, which drops what is over).
    pub fn handle_offload_report(
        &mut self,
        now: Instant,
        client: FiveTuple,
        channel: u16,
        report: OffloadReport,
    ) -> u64 {
        let s = &mut self.stats;
        s.client_to_peer_packets += report.to_peer_packets;
        s.client_to_peer_bytes += report.to_peer_bytes;
        s.peer_to_client_packets += report.to_client_packets;
        s.peer_to_client_bytes += report.to_client_bytes;
        s.offloaded_packets += report.to_peer_packets + report.to_client_packets;
        s.offloaded_bytes += report.to_peer_bytes + report.to_client_bytes;
        if !self.offloaded.contains(&client, channel) {
            return 0;
        }
        let bytes = (report.to_peer_bytes + report.to_client_bytes) as f32;
        let ms = self.ms_since_start(now);
        let mut budget = UNLIMITED;
        if self.config.allocation_bytes_per_second > 0 {
            let rate = bandwidth_rate(self.config.allocation_bytes_per_second);
            let share = self.offloaded.of(&client).max(1) as f32;
            let Some(a) = self.allocations.get_mut(&client) else {
                return 0;
            };
            a.bandwidth.charge(rate, ms, bytes);
            budget = budget.min((a.bandwidth.level(rate, ms) / share) as u64);
        }
        if self.config.total_bytes_per_second > 0 {
            let rate = bandwidth_rate(self.config.total_bytes_per_second);
            let share = self.offloaded.count.max(1) as f32;
            self.total_bandwidth.charge(rate, ms, bytes);
            budget = budget.min((self.total_bandwidth.level(rate, ms) / share) as u64);
        }
        budget
    }

    /// Whether `ch` is offloaded now. A driver handling a batch of events
    /// late checks it before taking an `Event::Offload`: the channel may
    /// have ended (and another begun) since.
    pub fn is_offloaded(&self, ch: &OffloadChannel) -> bool {
        self.offloaded
            .by_client
            .get(&ch.client)
            .is_some_and(|v| v.contains(ch))
    }

    /// The driver could not take `ch` (e.g. its table is full): the
    /// channel stays with the core, and no longer counts as offloaded (no
    /// `OffloadEnd` follows).
    pub fn handle_offload_refused(&mut self, ch: &OffloadChannel) {
        let Some(channels) = self.offloaded.by_client.get_mut(&ch.client) else {
            return;
        };
        let before = channels.len();
        channels.retain(|c| c != ch);
        let removed = before - channels.len();
        if channels.is_empty() {
            self.offloaded.by_client.remove(&ch.client);
        }
        self.offloaded.count -= removed;
        self.stats.offloaded_channels -= removed as u64;
    }

    /// Channels offloaded now.
    pub fn offloaded_channels(&self) -> usize {
        self.offloaded.count
    }
}
