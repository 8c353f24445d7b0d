//! Plain counters of the TURN core, in the style of quinn-proto's
//! `ConnectionStats`: integers the core bumps as it goes, copied out by
//! [`crate::Server::stats`] for the driver to export (about once a second
//! per worker). No atomics, no labels, no allocation: a relayed packet
//! costs two increments, a request one.
//!
//! What is counted follows the protocol: requests by method (RFC 8489 §3,
//! RFC 8656 §5) and by the response they got — success, or the error code
//! of RFC 8489 §14.8 / RFC 8656 §19 — or "dropped" when none was sent;
//! relayed data per direction (RFC 8656 §11–12); packets dropped by reason.
//! Nothing here names a user or an address.

use std::net::SocketAddr;

use stun::Method;

use crate::Transport;

/// Why the core refused or dropped something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The peer policy refused a peer: 403 to CreatePermission or
    /// ChannelBind, or a Send indication to a refused peer.
    PeerPolicy,
    /// A user or client-IP allocation quota (486).
    Quota,
    /// A server limit: total allocations, permissions or channels per
    /// allocation, or no relay port left (508).
    Capacity,
    /// Relayed data over the per-allocation or total bandwidth cap.
    Bandwidth,
    /// An unauthenticated answer over the per-source rate, or a request
    /// dropped because its source or user ran out of failed-login budget.
    RateLimit,
    /// Wrong credentials: an unknown user, an expired ephemeral credential
    /// or a MESSAGE-INTEGRITY that does not verify.
    AuthFailure,
    /// Undecodable STUN or ChannelData, or a first byte that is neither.
    Malformed,
    /// Relayed data for a peer without a permission (or an unbound channel).
    NoPermission,
    /// Relayed data on a 5-tuple or relay address without a live allocation.
    NoAllocation,
    /// A new Allocate refused because the server is draining (300 or 508).
    Draining,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 10] = [
        DropReason::PeerPolicy,
        DropReason::Quota,
        DropReason::Capacity,
        DropReason::Bandwidth,
        DropReason::RateLimit,
        DropReason::AuthFailure,
        DropReason::Malformed,
        DropReason::NoPermission,
        DropReason::NoAllocation,
        DropReason::Draining,
    ];

    /// The reason as a snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::PeerPolicy => "peer_policy",
            DropReason::Quota => "quota",
            DropReason::Capacity => "capacity",
            DropReason::Bandwidth => "bandwidth",
            DropReason::RateLimit => "rate_limit",
            DropReason::AuthFailure => "auth_failure",
            DropReason::Malformed => "malformed",
            DropReason::NoPermission => "no_permission",
            DropReason::NoAllocation => "no_allocation",
            DropReason::Draining => "draining",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Request methods counted apart; anything else is "other".
const METHODS: [&str; 6] = [
    "binding",
    "allocate",
    "refresh",
    "create_permission",
    "channel_bind",
    "other",
];

/// Response outcomes: success, the error codes the core sends, an error
/// code it does not know (kept apart so nothing is lost), and no answer.
const OUTCOMES: [&str; 16] = [
    "success", "300", "400", "401", "403", "420", "437", "438", "440", "441", "442", "443", "486",
    "508", "other", "dropped",
];
const OUTCOME_OTHER: usize = 14;
const OUTCOME_DROPPED: usize = 15;

/// Where a request's outcome is counted: its method's row.
pub(crate) fn method_index(m: Method) -> usize {
    match m {
        Method::BINDING => 0,
        Method::ALLOCATE => 1,
        Method::REFRESH => 2,
        Method::CREATE_PERMISSION => 3,
        Method::CHANNEL_BIND => 4,
        _ => 5,
    }
}

/// The outcome column of a response: `None` for success, else its code.
pub(crate) fn outcome_index(code: Option<u16>) -> usize {
    match code {
        None => 0,
        Some(300) => 1,
        Some(400) => 2,
        Some(401) => 3,
        Some(403) => 4,
        Some(420) => 5,
        Some(437) => 6,
        Some(438) => 7,
        Some(440) => 8,
        Some(441) => 9,
        Some(442) => 10,
        Some(443) => 11,
        Some(486) => 12,
        Some(508) => 13,
        Some(_) => OUTCOME_OTHER,
    }
}

/// The outcome column of a request that got no answer.
pub(crate) const DROPPED: usize = OUTCOME_DROPPED;

const TRANSPORTS: [&str; 3] = ["udp", "tcp", "tls"];
const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    }
}

/// A snapshot of one core's counters. Counters only grow; `allocations`
/// is a gauge. Sum the snapshots of several workers with [`ServerStats::add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Allocations held now, by client transport (udp, tcp, tls) and relay
    /// family (ipv4, ipv6) — a gauge; read with [`ServerStats::allocations`].
    allocations: [[u64; 2]; 3],
    /// Requests by method and outcome; read with [`ServerStats::responses`].
    responses: [[u64; OUTCOMES.len()]; METHODS.len()],
    /// Drops by [`DropReason`]; read with [`ServerStats::drops`].
    drops: [u64; DropReason::ALL.len()],
    /// Datagrams relayed from clients to peers (each `PeerSend` returned).
    pub client_to_peer_packets: u64,
    /// Application bytes relayed from clients to peers (payloads, without
    /// ChannelData or Send-indication framing).
    pub client_to_peer_bytes: u64,
    /// Datagrams relayed from peers to clients (each `ClientSend` returned).
    pub peer_to_client_packets: u64,
    /// Application bytes relayed from peers to clients (the peer's
    /// datagram, without ChannelData or Data-indication framing).
    pub peer_to_client_bytes: u64,
    /// STUN Binding requests answered with a success response.
    pub bindings_answered: u64,
    /// Channels the driver relays itself now (a gauge; see
    /// `turn::OffloadChannel`).
    pub offloaded_channels: u64,
    /// Datagrams the driver relayed itself (both directions; also counted
    /// in the four relay counters above).
    pub offloaded_packets: u64,
    /// Payload bytes of those datagrams.
    pub offloaded_bytes: u64,
}

impl ServerStats {
    /// Allocations held now, as (transport, relay family, count) for every
    /// combination, zeros included: `("udp" | "tcp" | "tls", "ipv4" | "ipv6", n)`.
    pub fn allocations(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        TRANSPORTS
            .iter()
            .zip(self.allocations.iter())
            .flat_map(|(t, row)| FAMILIES.iter().zip(row.iter()).map(|(f, n)| (*t, *f, *n)))
    }

    /// Allocations held now over all transports and families.
    pub fn allocations_total(&self) -> u64 {
        self.allocations.iter().flatten().sum()
    }

    /// Requests by outcome, as (method, outcome, count) for the non-zero
    /// entries. Methods: `binding`, `allocate`, `refresh`,
    /// `create_permission`, `channel_bind`, `other`. Outcomes: `success`,
    /// an error code (`300`, `400`, `401`, `403`, `420`, `437`, `438`,
    /// `440`, `441`, `442`, `443`, `486`, `508`, `other`), or `dropped`
    /// (no answer was sent).
    pub fn responses(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        METHODS
            .iter()
            .zip(self.responses.iter())
            .flat_map(|(m, row)| {
                OUTCOMES
                    .iter()
                    .zip(row.iter())
                    .filter(|(_, n)| **n > 0)
                    .map(|(o, n)| (*m, *o, *n))
            })
    }

    /// The count of one (method, outcome) pair, by the labels of
    /// [`ServerStats::responses`]; 0 for labels it does not know.
    pub fn response_count(&self, method: &str, outcome: &str) -> u64 {
        let m = METHODS.iter().position(|x| *x == method);
        let o = OUTCOMES.iter().position(|x| *x == outcome);
        match (m, o) {
            (Some(m), Some(o)) => self
                .responses
                .get(m)
                .and_then(|row| row.get(o))
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// Every drop reason with its count, zeros included.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.drops(*r)))
    }

    /// Adds `other`'s counts (and gauge) to these: the server's totals from
    /// its workers' snapshots.
    pub fn add(&mut self, other: &ServerStats) {
        for (a, b) in self
            .allocations
            .iter_mut()
            .flatten()
            .zip(other.allocations.iter().flatten())
        {
            *a += b;
        }
        for (a, b) in self
            .responses
            .iter_mut()
            .flatten()
            .zip(other.responses.iter().flatten())
        {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        self.client_to_peer_packets += other.client_to_peer_packets;
        self.client_to_peer_bytes += other.client_to_peer_bytes;
        self.peer_to_client_packets += other.peer_to_client_packets;
        self.peer_to_client_bytes += other.peer_to_client_bytes;
        self.bindings_answered += other.bindings_answered;
        self.offloaded_channels += other.offloaded_channels;
        self.offloaded_packets += other.offloaded_packets;
        self.offloaded_bytes += other.offloaded_bytes;
    }

    // Increments, for the core.

    pub(crate) fn drop(&mut self, reason: DropReason) {
        if let Some(n) = self.drops.get_mut(reason.index()) {
            *n += 1;
        }
    }

    pub(crate) fn response(&mut self, method: usize, outcome: usize) {
        if let Some(n) = self
            .responses
            .get_mut(method)
            .and_then(|r| r.get_mut(outcome))
        {
            *n += 1;
        }
    }

    fn allocation_slot(&mut self, transport: Transport, relay: SocketAddr) -> Option<&mut u64> {
        let family = usize::from(relay.is_ipv6());
        self.allocations
            .get_mut(transport_index(transport))
            .and_then(|row| row.get_mut(family))
    }

    pub(crate) fn allocation_added(&mut self, transport: Transport, relay: SocketAddr) {
        if let Some(n) = self.allocation_slot(transport, relay) {
            *n += 1;
        }
    }

    pub(crate) fn allocation_removed(&mut self, transport: Transport, relay: SocketAddr) {
        if let Some(n) = self.allocation_slot(transport, relay) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_reasons_are_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::ALL.len());
        assert_eq!(OUTCOMES[OUTCOME_OTHER], "other");
        assert_eq!(OUTCOMES[OUTCOME_DROPPED], "dropped");
        for code in [
            300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 486, 508,
        ] {
            assert_eq!(OUTCOMES[outcome_index(Some(code))], code.to_string());
        }
    }

    #[test]
    fn responses_iterate_non_zero_entries_and_snapshots_add_up() {
        let mut s = ServerStats::default();
        assert_eq!(s.responses().count(), 0);
        s.response(method_index(Method::ALLOCATE), outcome_index(Some(401)));
        s.response(method_index(Method::ALLOCATE), outcome_index(Some(401)));
        s.response(method_index(Method::BINDING), outcome_index(None));
        s.response(method_index(Method::REFRESH), DROPPED);
        let got: Vec<_> = s.responses().collect();
        assert_eq!(
            got,
            [
                ("binding", "success", 1),
                ("allocate", "401", 2),
                ("refresh", "dropped", 1)
            ]
        );
        let relay: SocketAddr = "[2001:db8::1]:50000".parse().unwrap();
        s.allocation_added(Transport::Tls, relay);
        s.drop(DropReason::Quota);
        let mut sum = s.clone();
        sum.add(&s);
        assert_eq!(sum.response_count("allocate", "401"), 4);
        assert_eq!(sum.drops(DropReason::Quota), 2);
        assert_eq!(sum.allocations_total(), 2);
        assert!(sum.allocations().any(|e| e == ("tls", "ipv6", 2)));
        assert_eq!(sum.allocations().count(), 6);
        s.allocation_removed(Transport::Tls, relay);
        s.allocation_removed(Transport::Tls, relay);
        assert_eq!(s.allocations_total(), 0);
    }
}
