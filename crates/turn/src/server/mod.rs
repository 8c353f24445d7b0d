//! The TURN server core (RFC 8656, RFC 6156 for IPv6), sans-IO.
//!
//! The driver feeds it datagrams and stream frames from clients
//! ([`Server::handle_client`]) and from peers ([`Server::handle_peer`]), asks
//! [`Server::poll_transmit`] for responses and [`Server::poll_event`] for relay
//! sockets to close, and calls [`Server::handle_timeout`] when
//! [`Server::poll_timeout`] is due. Relayed data comes back directly from the
//! `handle_*` calls, borrowing the input buffer: no allocation, no copy.
//!
//! [`Server::stats`] copies out its counters ([`ServerStats`]: requests by
//! method and response, relayed data, drops by reason, allocations held).
//! [`Server::set_draining`] refuses new allocations for a graceful restart
//! with 300 Try Alternate and ALTERNATE-SERVER (RFC 8489 §10, §14.15) or
//! 508 (RFC 8656 §7.2), while existing ones keep working.

mod handlers;
mod offload;
mod request;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun::{Attribute, Class, Message, MessageBuilder, Method};

use crate::allocation::Allocation;
use crate::auth::Users;
use crate::channel_data::ChannelData;
use crate::ledger::{Ledger, Quotas};
use crate::nonce::NonceKey;
use crate::policy::PeerPolicy;
use crate::rate_limit::{Rate, RateTable, TokenBucket};
use crate::stats::{DropReason, ServerStats};
pub use offload::{OffloadChannel, OffloadReport, UNLIMITED as OFFLOAD_UNLIMITED};

/// Transport between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (RFC 8656 §11 framing).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// True for stream transports, where ChannelData is padded to 4 bytes.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// The client side of an allocation: transport, client and server addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server address the client sent to (a concrete IP, not 0.0.0.0).
    pub server: SocketAddr,
}

/// Binds relay sockets on behalf of the core.
pub trait RelaySockets {
    /// Binds a UDP socket to `local`; an error makes the core try another port.
    fn bind(&mut self, local: SocketAddr) -> std::io::Result<()>;

    /// A port on `ip` whose socket the driver kept bound after the core was
    /// done with it ([`Event::RelayClosed`]), offered before a new bind: the
    /// driver asks `acceptable` of each kept port on `ip`, oldest first,
    /// closes those refused, and hands over the first accepted one (now in
    /// use, as if just bound). The core accepts only a port of its range
    /// that no allocation holds and no reservation claims. `None` (the
    /// default): nothing kept, bind anew.
    fn reuse(&mut self, ip: IpAddr, acceptable: &mut dyn FnMut(u16) -> bool) -> Option<u16> {
        let _ = (ip, acceptable);
        None
    }
}

/// Configuration of the core.
#[derive(Debug)]
pub struct ServerConfig {
    /// Who may allocate.
    pub users: Users,
    /// Relay port range.
    pub relay_ports: RangeInclusive<u16>,
    /// Relay IPs to use for a family the client's server address is not of
    /// (e.g. an IPv6 relay for a client that came over IPv4).
    pub relay_ips: Vec<IpAddr>,
    /// Advertised IPv4 relay address for 1:1 NAT.
    pub external_ip: Option<IpAddr>,
    /// Which peers may be relayed to.
    pub policy: PeerPolicy,
    /// Allocation quotas per user, per client IP and in total, shared by
    /// every worker of the server (486 / 508 beyond them).
    pub ledger: Arc<Ledger>,
    /// The key of stateless nonces; workers of one server share it so a
    /// nonce from one is good at all. `None`: derived from the seed.
    pub nonce_secret: Option<[u8; 32]>,
    /// Lifetime when the client asks for none or less (RFC 8656: 600 s).
    pub default_lifetime: Duration,
    /// Longest lifetime granted (RFC 8656 recommends 3600 s).
    pub max_lifetime: Duration,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Responses to unauthenticated requests (Binding, challenges, early
    /// errors) per source IP; beyond it requests are dropped unanswered.
    /// Default 3 000/s with a burst of 300.
    pub unauthenticated_rate: Rate,
    /// Failed authentications per source IP and per username; beyond it
    /// requests are dropped without checking the password.
    pub auth_failure_rate: Rate,
    /// Permissions per allocation (508 beyond it).
    pub max_permissions: usize,
    /// Channels per allocation (508 beyond it).
    pub max_channels: usize,
    /// Relayed bytes per second per allocation, each direction counted; 0 = no limit.
    pub allocation_bytes_per_second: u64,
    /// Relayed bytes per second for the whole server; 0 = no limit.
    pub total_bytes_per_second: u64,
    /// The driver can relay channels itself (see [`OffloadChannel`]):
    /// the core then emits [`Event::Offload`] and [`Event::OffloadEnd`].
    pub offload: bool,
}

impl ServerConfig {
    /// Defaults for everything but the users.
    pub fn new(users: Users) -> Self {
        ServerConfig {
            users,
            relay_ports: 49152..=65535,
            relay_ips: Vec::new(),
            external_ip: None,
            policy: PeerPolicy::default(),
            ledger: Arc::new(Ledger::new(Quotas {
                per_user: 16,
                per_static_user: 0,
                per_ip: 64,
                total: 10_000,
            })),
            nonce_secret: None,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            offload: false,
            nonce_lifetime: Duration::from_secs(600),
            // Generous per source, for the many users behind one NAT (2 000
            // Binding/s and 500 new allocations/s are served), with a burst of
            // a tenth of a second so a flood still gets back less than it
            // sends (amplification).
            unauthenticated_rate: Rate {
                per_second: 3000.0,
                burst: 300.0,
            },
            auth_failure_rate: Rate {
                per_second: 0.5,
                burst: 10.0,
            },
            max_permissions: 64,
            max_channels: 64,
            allocation_bytes_per_second: 0,
            total_bytes_per_second: 0,
        }
    }
}

/// A STUN message to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub to: FiveTuple,
    /// The message.
    pub payload: Vec<u8>,
}

/// Data to send from a relay socket to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSend<'a> {
    /// The local relay socket address.
    pub relay: SocketAddr,
    /// The peer.
    pub peer: SocketAddr,
    /// The payload, borrowed from the client's packet.
    pub payload: &'a [u8],
}

/// Data to send to a client: ChannelData or a Data indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSend<'a> {
    /// The client.
    pub to: FiveTuple,
    /// The framed message.
    pub payload: &'a [u8],
}

/// Something the driver must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An allocation ended: the core is done with this relay socket. The
    /// driver closes it, or keeps it bound to offer it again
    /// ([`RelaySockets::reuse`]).
    RelayClosed(SocketAddr),
    /// Close this relay socket now, so that its port is free: it was bound
    /// only to check the port for a reservation (EVEN-PORT with R), which
    /// another worker may bind when its token is used.
    RelayUnbound(SocketAddr),
    /// Relay this channel without the core from now on (only with
    /// [`ServerConfig::offload`]); report what was relayed with
    /// [`Server::handle_offload_report`].
    Offload(OffloadChannel),
    /// Stop relaying this channel outside the core: hand its datagrams to
    /// the core again (which refuses them if the channel or permission is
    /// gone). Report what was relayed up to now once more.
    OffloadEnd(OffloadChannel),
}

/// Bytes of headroom [`Server::handle_peer`] needs before the payload.
pub const PEER_HEADROOM: usize = 4;
/// Bytes of tailroom it needs after the payload (stream padding).
pub const PEER_TAILROOM: usize = 3;

/// Buckets per rate table: 4096 × 12 bytes, whatever the number of sources.
const RATE_SLOTS: usize = 4096;

/// The token-bucket rate for a bytes-per-second limit (burst: 1/4 s of traffic,
/// at least one largest datagram).
pub(crate) fn bandwidth_rate(bytes_per_second: u64) -> Rate {
    let per_second = bytes_per_second as f32;
    Rate {
        per_second,
        burst: (per_second / 4.0).max(65_535.0),
    }
}

/// How long a reserved port is held.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The TURN server state machine.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    nonces: NonceKey,
    start: Instant,
    start_unix: u64,
    /// Boxed: the map's spare capacity then costs a pointer per slot, not
    /// a whole allocation.
    allocations: HashMap<FiveTuple, Box<Allocation>>,
    by_relay: HashMap<SocketAddr, FiveTuple>,
    unauthenticated: RateTable,
    failures_by_ip: RateTable,
    failures_by_user: RateTable,
    total_bandwidth: TokenBucket,
    offloaded: offload::Offloaded,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_sweep: Option<Instant>,
    /// The time of the packet being handled.
    now: Instant,
    scratch: Vec<u8>,
    rng: StdRng,
    stats: ServerStats,
    /// Set by the request handlers when they queue the answer: the outcome
    /// column (success or error code) of [`ServerStats`]'s responses.
    answered: Option<usize>,
    /// `Some` while draining: new allocations are refused, redirected to
    /// the alternate server when there is one.
    draining: Option<Option<SocketAddr>>,
}

impl Server {
    /// A server whose clocks read `now` and `unix_now` (seconds since the
    /// Unix epoch, for ephemeral credentials); `seed` feeds its nonce key,
    /// relay port choice and reservation tokens.
    pub fn new(config: ServerConfig, now: Instant, unix_now: u64, seed: [u8; 32]) -> Self {
        let mut rng = StdRng::from_seed(seed);
        let nonce_key: [u8; 32] = rng.random();
        let nonces = NonceKey::new(config.nonce_secret.unwrap_or(nonce_key));
        let unauthenticated = RateTable::new(config.unauthenticated_rate, RATE_SLOTS, now);
        let failures_by_ip = RateTable::new(config.auth_failure_rate, RATE_SLOTS, now);
        let failures_by_user = RateTable::new(config.auth_failure_rate, RATE_SLOTS, now);
        let total_bandwidth = TokenBucket::full(bandwidth_rate(config.total_bytes_per_second), 0);
        Server {
            config,
            nonces,
            start: now,
            start_unix: unix_now,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            unauthenticated,
            failures_by_ip,
            failures_by_user,
            total_bandwidth,
            offloaded: Default::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: None,
            now,
            scratch: Vec::with_capacity(2048),
            rng,
            stats: ServerStats::default(),
            answered: None,
            draining: None,
        }
    }

    /// A copy of the counters (plain integers; cheap, no allocation).
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Starts draining: from now on a new Allocate (not a retransmission of
    /// one that succeeded) is refused after authentication, with 300 Try
    /// Alternate and ALTERNATE-SERVER `alternate` if given and of the family
    /// of the server address the request reached, else with 508. Refresh,
    /// permissions, channels, relayed data and Binding go on as before.
    /// Calling it again replaces the alternate.
    pub fn set_draining(&mut self, alternate: Option<SocketAddr>) {
        self.draining = Some(alternate);
    }

    /// True once [`Server::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.is_some()
    }

    /// Number of live allocations.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// True if `ft` holds a live allocation (a TCP connection with one is
    /// not idle, whatever its traffic).
    pub fn has_allocation(&self, ft: &FiveTuple, now: Instant) -> bool {
        self.allocations.get(ft).is_some_and(|a| a.expires > now)
    }

    /// The next response to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    fn schedule(&mut self, at: Instant) {
        self.next_sweep = Some(self.next_sweep.map_or(at, |t| t.min(at)));
    }

    /// Expires allocations, permissions, channels and reservations.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<FiveTuple> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(ft, _)| *ft)
            .collect();
        for ft in expired {
            self.remove_allocation(&ft);
        }
        let mut next: Option<Instant> = None;
        for a in self.allocations.values_mut() {
            a.sweep(now);
            let d = a.next_deadline();
            next = Some(next.map_or(d, |t| t.min(d)));
        }
        // Held ports have no socket; only the shared table forgets them.
        self.config.ledger.expire_held(now);
        self.next_sweep = next;
        self.check_offloads(now);
    }

    /// A stream connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn client_disconnected(&mut self, ft: &FiveTuple) {
        self.remove_allocation(ft);
    }

    fn remove_allocation(&mut self, ft: &FiveTuple) {
        if let Some(a) = self.allocations.remove(ft) {
            self.stats.allocation_removed(ft.transport, a.relay);
            self.by_relay.remove(&a.relay);
            self.config.ledger.release(&a.username, ft.client.ip());
            self.end_offloads_of(ft);
            self.events.push_back(Event::RelayClosed(a.relay));
        }
    }

    fn secs_since_start(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.start).as_secs()).unwrap_or(u32::MAX)
    }

    fn ms_since_start(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u32::MAX)
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.start_unix + now.saturating_duration_since(self.start).as_secs()
    }

    /// Handles a datagram (or one stream frame) from a client. Returns data
    /// to relay to a peer, borrowed from `packet`; responses are queued.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &'a [u8],
        relays: &mut dyn RelaySockets,
    ) -> Option<PeerSend<'a>> {
        self.now = now;
        let Some(first) = packet.first() else {
            self.stats.drop(DropReason::Malformed);
            return None;
        };
        let sent = match first {
            0x40..=0x7F => self.channel_data_from_client(now, from, packet),
            0x00..=0x03 => {
                let Ok(msg) = Message::decode(packet) else {
                    self.stats.drop(DropReason::Malformed);
                    return None;
                };
                match msg.class() {
                    Class::Request => {
                        self.answered = None;
                        self.handle_request(now, from, &msg, relays);
                        let outcome = self.answered.take().unwrap_or(crate::stats::DROPPED);
                        self.stats
                            .response(crate::stats::method_index(msg.method()), outcome);
                        None
                    }
                    Class::Indication if msg.method() == Method::SEND => {
                        self.send_indication(now, from, &msg)
                    }
                    _ => None,
                }
            }
            _ => {
                self.stats.drop(DropReason::Malformed);
                None
            }
        };
        if let Some(p) = &sent {
            self.stats.client_to_peer_packets += 1;
            self.stats.client_to_peer_bytes += p.payload.len() as u64;
        }
        sent
    }

    /// Spends relay budget for `bytes` on allocation `ft` and the server;
    /// false means drop the datagram.
    fn spend(&mut self, ft: &FiveTuple, now: Instant, bytes: usize) -> bool {
        let ms = self.ms_since_start(now);
        let n = bytes as f32;
        if self.config.allocation_bytes_per_second > 0 {
            let rate = bandwidth_rate(self.config.allocation_bytes_per_second);
            let allowed = self
                .allocations
                .get_mut(ft)
                .is_some_and(|a| a.bandwidth.take(rate, ms, n));
            if !allowed {
                self.stats.drop(DropReason::Bandwidth);
                return false;
            }
        }
        if self.config.total_bytes_per_second > 0 {
            let rate = bandwidth_rate(self.config.total_bytes_per_second);
            if !self.total_bandwidth.take(rate, ms, n) {
                self.stats.drop(DropReason::Bandwidth);
                return false;
            }
        }
        true
    }

    /// A live allocation on `ft`, or `None` counted as a NoAllocation drop.
    fn live_allocation(&mut self, ft: &FiveTuple, now: Instant) -> Option<&Allocation> {
        match self.allocations.get(ft) {
            Some(a) if a.expires > now => Some(a),
            _ => {
                self.stats.drop(DropReason::NoAllocation);
                None
            }
        }
    }

    fn channel_data_from_client<'a>(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &'a [u8],
    ) -> Option<PeerSend<'a>> {
        let Ok(cd) = ChannelData::decode(packet) else {
            self.stats.drop(DropReason::Malformed);
            return None;
        };
        let a = self.live_allocation(&from, now)?;
        let Some(peer) = a.peer_for_channel(cd.channel, now) else {
            self.stats.drop(DropReason::NoPermission);
            return None;
        };
        let relay = a.relay;
        self.spend(&from, now, cd.payload.len())
            .then_some(PeerSend {
                relay,
                peer,
                payload: cd.payload,
            })
    }

    /// Send indication (RFC 8656 §11.3): relay DATA to XOR-PEER-ADDRESS if a
    /// permission exists; anything else is silently dropped.
    fn send_indication<'a>(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'a>,
    ) -> Option<PeerSend<'a>> {
        let a = self.live_allocation(&from, now)?;
        let Some(Ok(Attribute::XorPeerAddress(peer))) =
            msg.attribute(stun::AttributeType::XOR_PEER_ADDRESS)
        else {
            self.stats.drop(DropReason::Malformed);
            return None;
        };
        let Some(Ok(Attribute::Data(payload))) = msg.attribute(stun::AttributeType::DATA) else {
            self.stats.drop(DropReason::Malformed);
            return None;
        };
        if !a.permits(peer, now) {
            // A refused peer never has a permission; say which it was.
            let reason = if self.config.policy.permits_addr(peer) {
                DropReason::NoPermission
            } else {
                DropReason::PeerPolicy
            };
            self.stats.drop(reason);
            return None;
        }
        let relay = a.relay;
        self.spend(&from, now, payload.len()).then_some(PeerSend {
            relay,
            peer,
            payload,
        })
    }

    /// Handles a datagram that arrived on relay socket `relay` from `peer`.
    ///
    /// The payload is `buf[PEER_HEADROOM..PEER_HEADROOM + len]`; `buf` must
    /// have [`PEER_TAILROOM`] spare bytes after it. A ChannelData header is
    /// written into the headroom, so the result usually borrows `buf`; a
    /// Data indication is built in an internal buffer.
    pub fn handle_peer<'a>(
        &'a mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &'a mut [u8],
        len: usize,
    ) -> Option<ClientSend<'a>> {
        let Some(ft) = self.by_relay.get(&relay).copied() else {
            self.stats.drop(DropReason::NoAllocation);
            return None;
        };
        let a = self.live_allocation(&ft, now)?;
        if !a.permits(peer, now) {
            self.stats.drop(DropReason::NoPermission);
            return None;
        }
        if !self.spend(&ft, now, len) {
            return None;
        }
        let a = self.allocations.get(&ft)?;
        let len16 = u16::try_from(len).ok()?;
        if let Some(channel) = a.channel_for_peer(peer, now) {
            let padded = if ft.transport.is_stream() {
                len.next_multiple_of(4)
            } else {
                len
            };
            let frame = buf.get_mut(..PEER_HEADROOM + padded)?;
            frame
                .get_mut(..PEER_HEADROOM)?
                .copy_from_slice(&ChannelData::header(channel, len16));
            frame.get_mut(PEER_HEADROOM + len..)?.fill(0);
            self.stats.peer_to_client_packets += 1;
            self.stats.peer_to_client_bytes += len as u64;
            return Some(ClientSend {
                to: ft,
                payload: frame,
            });
        }
        let data = buf.get(PEER_HEADROOM..PEER_HEADROOM + len)?;
        self.scratch.clear();
        let tid = stun::TransactionId(self.rng.random());
        let mut b = MessageBuilder::new(&mut self.scratch, Class::Indication, Method::DATA, tid);
        b.add(&Attribute::XorPeerAddress(peer)).ok()?;
        b.add(&Attribute::Data(data)).ok()?;
        self.stats.peer_to_client_packets += 1;
        self.stats.peer_to_client_bytes += len as u64;
        Some(ClientSend {
            to: ft,
            payload: b.finish(),
        })
    }
}
