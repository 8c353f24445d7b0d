//! The peer's core for one room, sans-IO: signaling messages in and out
//! (`crates/signal`'s own types), one [`Link`] per other member, the
//! STUN/TURN legs that give it server-reflexive and relayed candidates
//! (RFC 8445 §5.1.1), and the routing of datagrams between them.
//!
//! The driver tells it its host sockets ([`Session::add_host`]), resolves
//! the ICE servers it names ([`Event::IceServers`] → [`Session::add_server`]),
//! and feeds datagrams, stream bytes and time; it sends every
//! [`Session::poll_transmit`] and every [`Session::poll_signal`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use signal::{ClientMessage, LeaveReason, PeerId, PeerInfo, RawData, RelayKind, ServerMessage};
use str0m::Candidate;
use str0m::net::{Protocol, Receive};

use crate::Channel;
use crate::candidate::CandidateInit;
use crate::ice_servers::{IceUrl, UrlKind, usable_urls};
use crate::link::{Description, Link, LinkEvent, LinkOutput, SignalOut};
use crate::relay::{Leg, LegEvent, Via};

/// Who the peer is and what it opens.
#[derive(Clone)]
pub struct SessionConfig {
    /// Room id.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Room password, if any.
    pub password: Option<String>,
    /// Invite token, if any.
    pub token: Option<String>,
    /// Offer only relayed candidates (like `iceTransportPolicy: 'relay'`).
    pub relay_only: bool,
    /// The data channels to open with every peer.
    pub channels: Vec<Channel>,
    /// The pipe channel unordered and without retransmissions.
    pub unreliable_pipe: bool,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("room", &self.room)
            .field("name", &self.name)
            .field("relay_only", &self.relay_only)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// A datagram or stream write for the driver.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send `data` from host socket `from` to `to`.
    Udp {
        /// Host socket (as given to [`Session::add_host`]).
        from: SocketAddr,
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Write `data` to the TCP stream to TURN server `server` (open it first
    /// if it is not open; report a close with [`Session::stream_closed`]).
    Stream {
        /// The TURN server.
        server: SocketAddr,
        /// Bytes to write.
        data: Vec<u8>,
    },
}

/// What happened, for the application and the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// In the room, with these others already there.
    Joined {
        /// Our peer id.
        you: PeerId,
        /// The others, in join order.
        peers: Vec<PeerInfo>,
    },
    /// ICE servers to resolve and hand to [`Session::add_server`].
    IceServers(Vec<IceUrl>),
    /// Another peer entered the room.
    PeerJoined(PeerInfo),
    /// A peer left the room.
    PeerLeft {
        /// Who.
        id: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Something happened on the link with `peer`.
    Link {
        /// The peer.
        peer: PeerId,
        /// What.
        event: LinkEvent,
    },
    /// A candidate of ours, offered to every peer.
    LocalCandidate {
        /// `host`, `srflx` or `relay`.
        kind: &'static str,
        /// Its address.
        addr: SocketAddr,
    },
    /// A STUN or TURN server could not be used.
    ServerFailed {
        /// The server.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server refused a message (`error`).
    Refused {
        /// `code` from docs/protocol.md.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server is draining: reconnect and join again.
    Reconnect,
}

struct Member {
    name: String,
    link: Link,
}

/// Counters for the driver to report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Datagrams received and handed to a link.
    pub datagrams_in: u64,
    /// Datagrams received that no link or server took.
    pub datagrams_unrouted: u64,
    /// Transmits produced.
    pub transmits: u64,
    /// Remote candidates skipped (mDNS, TCP, end-of-candidates, malformed).
    pub candidates_skipped: u64,
}

/// One room, as a native peer takes part in it.
pub struct Session {
    config: SessionConfig,
    rng: StdRng,
    you: Option<PeerId>,
    hosts: Vec<SocketAddr>,
    legs: Vec<Leg>,
    candidates: Vec<Candidate>,
    members: BTreeMap<PeerId, Member>,
    routes: HashMap<(SocketAddr, SocketAddr), PeerId>,
    signals: VecDeque<ClientMessage>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Vec<LinkOutput>,
    stats: SessionStats,
}

impl Session {
    /// A session that asks to join at once (see [`Session::poll_signal`]).
    pub fn new(config: SessionConfig, seed: [u8; 32]) -> Self {
        let mut s = Session {
            config,
            rng: StdRng::from_seed(seed),
            you: None,
            hosts: Vec::new(),
            legs: Vec::new(),
            candidates: Vec::new(),
            members: BTreeMap::new(),
            routes: HashMap::new(),
            signals: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            stats: SessionStats::default(),
        };
        s.join();
        s
    }

    /// Queues a `join` (again, after a reconnect).
    pub fn join(&mut self) {
        self.signals.push_back(ClientMessage::Join {
            room: self.config.room.clone(),
            name: self.config.name.clone(),
            password: self.config.password.clone(),
            token: self.config.token.clone(),
            session: None,
            // The native peer calls peer to peer only: a room it is in
            // stays in P2P mode.
            sfu: false,
        });
    }

    /// Our peer id, once joined.
    pub fn you(&self) -> Option<&PeerId> {
        self.you.as_ref()
    }

    /// The other members: id, name, and whether the link is up.
    pub fn members(&self) -> impl Iterator<Item = (&PeerId, &str, bool)> {
        self.members
            .iter()
            .map(|(id, m)| (id, m.name.as_str(), m.link.is_connected()))
    }

    /// The name `id` joined with, else its id.
    pub fn display_name(&self, id: &PeerId) -> String {
        self.members
            .get(id)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// A host socket bound to `addr` (a specific address, not a wildcard).
    pub fn add_host(&mut self, now: Instant, addr: SocketAddr) {
        if self.hosts.contains(&addr) {
            return;
        }
        self.hosts.push(addr);
        if !self.config.relay_only {
            if let Ok(c) = Candidate::host(addr, "udp") {
                self.add_candidate(now, c, "host", addr);
            }
        }
    }

    /// A resolved STUN or TURN server from [`Event::IceServers`].
    pub fn add_server(&mut self, now: Instant, url: &IceUrl, server: SocketAddr) {
        let family = |h: &&SocketAddr| h.is_ipv4() == server.is_ipv4();
        let vias: Vec<Via> = match url.kind {
            // Server-reflexive candidates from every host socket that can
            // reach the server.
            UrlKind::Stun if self.config.relay_only => Vec::new(),
            UrlKind::Stun => self
                .hosts
                .iter()
                .filter(family)
                .map(|h| Via::Udp(*h))
                .collect(),
            // One allocation per TURN URL, from the socket on the server's
            // side: loopback for a loopback server, else any other.
            UrlKind::TurnUdp => {
                let same_scope = self
                    .hosts
                    .iter()
                    .filter(family)
                    .find(|h| h.ip().is_loopback() == server.ip().is_loopback());
                same_scope
                    .or_else(|| self.hosts.iter().find(family))
                    .map(|h| Via::Udp(*h))
                    .into_iter()
                    .collect()
            }
            UrlKind::TurnTcp => vec![Via::Stream],
        };
        for via in vias {
            if self
                .legs
                .iter()
                .any(|l| l.server == server && l.via == via && l.kind == url.kind)
            {
                continue;
            }
            let seed = self.rng.random();
            let leg = Leg::start(
                url.kind,
                server,
                via,
                &url.username,
                &url.credential,
                now,
                seed,
            );
            self.legs.push(leg);
        }
        self.flush_legs(now);
    }

    /// A signaling message from the server.
    pub fn handle_signal(&mut self, now: Instant, msg: ServerMessage) {
        match msg {
            ServerMessage::Joined {
                you,
                peers,
                ice_servers,
                ..
            } => {
                self.you = Some(you.clone());
                self.events
                    .push_back(Event::IceServers(usable_urls(&ice_servers)));
                self.events.push_back(Event::Joined {
                    you,
                    peers: peers.clone(),
                });
                // The newcomer offers to everyone already here.
                for p in peers {
                    self.add_member(now, p, true);
                }
            }
            ServerMessage::PeerJoined { peer } => {
                self.events.push_back(Event::PeerJoined(peer.clone()));
                self.add_member(now, peer, false);
            }
            ServerMessage::PeerLeft { id, reason } => {
                self.members.remove(&id);
                self.routes.retain(|_, p| *p != id);
                self.events.push_back(Event::PeerLeft { id, reason });
            }
            ServerMessage::Offer { from, data } | ServerMessage::Answer { from, data } => {
                let Some(m) = self.members.get_mut(&from) else {
                    return;
                };
                let d: Description = match serde_json::from_str(data.get()) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(peer = %from, "bad description: {e}");
                        return;
                    }
                };
                let mut out = std::mem::take(&mut self.scratch);
                if let Err(e) = m.link.handle_description(now, d, &mut out) {
                    tracing::warn!(peer = %from, "description refused: {e}");
                }
                self.absorb(now, &from, out);
            }
            ServerMessage::Candidate { from, data } => {
                let Some(m) = self.members.get_mut(&from) else {
                    return;
                };
                let init: CandidateInit = match serde_json::from_str(data.get()) {
                    Ok(c) => c,
                    Err(_) => {
                        self.stats.candidates_skipped += 1;
                        return;
                    }
                };
                match init.parse() {
                    Ok(c) => {
                        let mut out = std::mem::take(&mut self.scratch);
                        m.link.add_remote(now, c, &mut out);
                        self.absorb(now, &from, out);
                    }
                    Err(why) => {
                        tracing::debug!(peer = %from, "candidate skipped: {why}");
                        self.stats.candidates_skipped += 1;
                    }
                }
            }
            // `mode` and `sfu` go only to clients that declared the `sfu`
            // feature, which this one does not.
            ServerMessage::Message { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::Left
            | ServerMessage::Mode { .. }
            | ServerMessage::Sfu { .. } => {}
            ServerMessage::Reconnect { .. } => self.events.push_back(Event::Reconnect),
            ServerMessage::Error { code, message, .. } => {
                let code = serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.events.push_back(Event::Refused { code, message });
            }
        }
    }

    fn add_member(&mut self, now: Instant, info: PeerInfo, offerer: bool) {
        if self.members.contains_key(&info.id) {
            return;
        }
        let mut out = std::mem::take(&mut self.scratch);
        let link = Link::new(
            now,
            offerer,
            &self.config.channels,
            self.config.unreliable_pipe,
            &self.candidates,
            &mut out,
        );
        // The app shows a tile per peer; say we send no media.
        let state = r#"{"kind":"state","muted":true,"video":false,"screen":false}"#;
        if let Ok(data) = RawData::from_json(state) {
            self.signals.push_back(ClientMessage::Relay {
                kind: RelayKind::Message,
                to: info.id.clone(),
                data,
            });
        }
        let id = info.id.clone();
        self.members.insert(
            id.clone(),
            Member {
                name: info.name,
                link,
            },
        );
        self.absorb(now, &id, out);
        // Candidates gathered before the link existed go with the offer
        // (the answerer's go once it has answered: str0m includes them).
        if offerer {
            let cands = self.candidates.clone();
            for c in cands {
                self.signal_candidate(&id, &c);
            }
        }
    }

    fn add_candidate(&mut self, now: Instant, c: Candidate, kind: &'static str, addr: SocketAddr) {
        if self
            .candidates
            .iter()
            .any(|k| k.addr() == c.addr() && k.kind() == c.kind())
        {
            return;
        }
        self.candidates.push(c.clone());
        self.events.push_back(Event::LocalCandidate { kind, addr });
        let ids: Vec<PeerId> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                let mut out = std::mem::take(&mut self.scratch);
                m.link.add_local(now, c.clone(), &mut out);
                self.absorb(now, &id, out);
            }
        }
    }

    fn signal_candidate(&mut self, id: &PeerId, c: &Candidate) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let ufrag = m.link.ufrag();
        let init = CandidateInit::local(c, m.link.mid(), Some(&ufrag));
        if let Ok(json) = serde_json::to_string(&init) {
            if let Ok(data) = RawData::from_json(&json) {
                self.signals.push_back(ClientMessage::Relay {
                    kind: RelayKind::Candidate,
                    to: id.clone(),
                    data,
                });
            }
        }
    }

    /// Takes what a link produced.
    fn absorb(&mut self, now: Instant, id: &PeerId, mut out: Vec<LinkOutput>) {
        for o in out.drain(..) {
            match o {
                LinkOutput::Transmit(t) => self.transmit(now, t.source, t.destination, &t.contents),
                LinkOutput::Signal(SignalOut::Offer(json)) => {
                    self.relay(RelayKind::Offer, id, &json)
                }
                LinkOutput::Signal(SignalOut::Answer(json)) => {
                    self.relay(RelayKind::Answer, id, &json)
                }
                LinkOutput::Signal(SignalOut::Candidate(c)) => self.signal_candidate(id, &c),
                LinkOutput::Event(event) => self.events.push_back(Event::Link {
                    peer: id.clone(),
                    event,
                }),
            }
        }
        self.scratch = out;
        self.flush_legs(now);
    }

    fn relay(&mut self, kind: RelayKind, to: &PeerId, json: &str) {
        match RawData::from_json(json) {
            Ok(data) => self.signals.push_back(ClientMessage::Relay {
                kind,
                to: to.clone(),
                data,
            }),
            Err(e) => tracing::warn!("unsendable {kind:?}: {e}"),
        }
    }

    /// Sends a str0m transmit: through the allocation whose relayed address
    /// is its source, else from the host socket.
    fn transmit(&mut self, now: Instant, source: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.stats.transmits += 1;
        if let Some(leg) = self.legs.iter_mut().find(|l| l.relayed() == Some(source)) {
            let server = leg.server;
            let via = leg.via;
            if let Some(bytes) = leg.send(now, to, data) {
                let data = bytes.to_vec();
                self.transmits.push_back(match via {
                    Via::Udp(from) => Transmit::Udp {
                        from,
                        to: server,
                        data,
                    },
                    Via::Stream => Transmit::Stream { server, data },
                });
            }
            return;
        }
        // A loopback socket reaches only loopback (the kernel refuses the
        // rest); str0m pairs every local candidate with every remote one.
        if source.ip().is_loopback() && !to.ip().is_loopback() {
            return;
        }
        if self.hosts.contains(&source) {
            self.transmits.push_back(Transmit::Udp {
                from: source,
                to,
                data: data.to_vec(),
            });
        }
    }

    /// Queues the legs' own transmits and takes their events.
    fn flush_legs(&mut self, now: Instant) {
        let mut learned = Vec::new();
        for leg in &mut self.legs {
            while let Some(data) = leg.poll_transmit() {
                self.transmits.push_back(match leg.via {
                    Via::Udp(from) => Transmit::Udp {
                        from,
                        to: leg.server,
                        data,
                    },
                    Via::Stream => Transmit::Stream {
                        server: leg.server,
                        data,
                    },
                });
            }
            while let Some(e) = leg.poll_event() {
                learned.push((leg.server, leg.via, e));
            }
        }
        for (server, via, e) in learned {
            match e {
                LegEvent::Mapped { mapped } => {
                    if let Via::Udp(base) = via {
                        if mapped != base && !self.config.relay_only {
                            if let Ok(c) = Candidate::server_reflexive(mapped, base, "udp") {
                                self.add_candidate(now, c, "srflx", mapped);
                            }
                        }
                    }
                }
                LegEvent::Relayed { relayed, mapped } => {
                    let local = match via {
                        Via::Udp(base) => base,
                        Via::Stream => mapped,
                    };
                    if let Ok(c) = Candidate::relayed(relayed, local, "udp") {
                        self.add_candidate(now, c, "relay", relayed);
                    }
                }
                LegEvent::Failed { reason } => {
                    self.events
                        .push_back(Event::ServerFailed { server, reason });
                }
                LegEvent::Lost => self.events.push_back(Event::ServerFailed {
                    server,
                    reason: "allocation lost".into(),
                }),
            }
        }
    }

    /// A datagram that arrived on host socket `local` from `from`.
    pub fn handle_udp(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        let leg = self
            .legs
            .iter_mut()
            .find(|l| l.via == Via::Udp(local) && l.server == from);
        let routed = match leg {
            Some(leg) => {
                let relayed = leg.relayed();
                match (leg.handle_datagram(now, data), relayed) {
                    (Some(p), Some(relayed)) => self.deliver(now, relayed, p.peer, p.payload),
                    _ => None,
                }
            }
            None => self.deliver(now, local, from, data),
        };
        self.after_deliver(now, routed);
    }

    /// Bytes read from the TCP stream to TURN server `server`.
    pub fn handle_stream(&mut self, now: Instant, server: SocketAddr, data: &[u8]) {
        let Some(i) = self
            .legs
            .iter()
            .position(|l| l.via == Via::Stream && l.server == server)
        else {
            return;
        };
        if let Some(leg) = self.legs.get_mut(i) {
            leg.push_stream(data);
        }
        loop {
            let Some(leg) = self.legs.get_mut(i) else {
                return;
            };
            let relayed = leg.relayed();
            let routed = match leg.next_stream_frame(now) {
                Ok(None) => break,
                Ok(Some(Some(p))) => match relayed {
                    Some(relayed) => Self::route(
                        &mut self.members,
                        &mut self.routes,
                        &mut self.stats,
                        &mut self.scratch,
                        now,
                        relayed,
                        p.peer,
                        p.payload,
                    ),
                    None => None,
                },
                Ok(Some(None)) => None,
                Err(e) => {
                    tracing::warn!(%server, "TURN stream unreadable: {e}");
                    self.stream_closed(now, server);
                    return;
                }
            };
            self.after_deliver(now, routed);
        }
        self.flush_legs(now);
    }

    /// The TCP stream to `server` closed.
    pub fn stream_closed(&mut self, now: Instant, server: SocketAddr) {
        for leg in &mut self.legs {
            if leg.via == Via::Stream && leg.server == server && leg.stream_closed() {
                self.events.push_back(Event::ServerFailed {
                    server,
                    reason: "TURN stream closed".into(),
                });
            }
        }
        self.flush_legs(now);
    }

    fn deliver(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<PeerId> {
        Self::route(
            &mut self.members,
            &mut self.routes,
            &mut self.stats,
            &mut self.scratch,
            now,
            local,
            remote,
            data,
        )
    }

    /// Hands a datagram to the link it belongs to (by address pair once
    /// known, else by asking each link), leaving the link's output in
    /// `scratch`; returns that link's peer.
    #[allow(clippy::too_many_arguments)]
    fn route(
        members: &mut BTreeMap<PeerId, Member>,
        routes: &mut HashMap<(SocketAddr, SocketAddr), PeerId>,
        stats: &mut SessionStats,
        scratch: &mut Vec<LinkOutput>,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<PeerId> {
        let Ok(r) = Receive::new(Protocol::Udp, remote, local, data) else {
            stats.datagrams_unrouted += 1;
            return None;
        };
        let input = str0m::Input::Receive(now, r);
        let id = match routes.get(&(local, remote)) {
            Some(id) if members.contains_key(id) => Some(id.clone()),
            _ => members
                .iter()
                .find(|(_, m)| m.link.accepts(&input))
                .map(|(id, _)| id.clone()),
        };
        let Some(id) = id else {
            stats.datagrams_unrouted += 1;
            return None;
        };
        let m = members.get_mut(&id)?;
        stats.datagrams_in += 1;
        routes.insert((local, remote), id.clone());
        m.link.handle_input(now, input, scratch);
        Some(id)
    }

    fn after_deliver(&mut self, now: Instant, routed: Option<PeerId>) {
        match routed {
            Some(id) => {
                let out = std::mem::take(&mut self.scratch);
                self.absorb(now, &id, out);
            }
            None => self.flush_legs(now),
        }
    }

    /// When [`Session::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.members.values().map(|m| m.link.poll_timeout());
        let legs = self.legs.iter().filter_map(|l| l.poll_timeout());
        links.chain(legs).min()
    }

    /// Timers of links and legs.
    pub fn handle_timeout(&mut self, now: Instant) {
        for leg in &mut self.legs {
            if leg.poll_timeout().is_some_and(|t| t <= now) {
                leg.handle_timeout(now);
            }
        }
        self.flush_legs(now);
        let due: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.link.poll_timeout() <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(m) = self.members.get_mut(&id) {
                let mut out = std::mem::take(&mut self.scratch);
                m.link.handle_timeout(now, &mut out);
                self.absorb(now, &id, out);
            }
        }
    }

    /// Writes a message to `peer` on `channel`: `false` when the channel is
    /// not open or full.
    pub fn write(
        &mut self,
        now: Instant,
        peer: &PeerId,
        channel: Channel,
        binary: bool,
        data: &[u8],
    ) -> bool {
        let Some(m) = self.members.get_mut(peer) else {
            return false;
        };
        let mut out = std::mem::take(&mut self.scratch);
        let ok = m.link.write(now, channel, binary, data, &mut out);
        self.absorb(now, peer, out);
        ok
    }

    /// Bytes buffered on `peer`'s `channel`.
    pub fn buffered(&mut self, peer: &PeerId, channel: Channel) -> usize {
        self.members
            .get_mut(peer)
            .map(|m| m.link.buffered(channel))
            .unwrap_or(0)
    }

    /// Sets the buffered-amount-low threshold of `peer`'s `channel`.
    pub fn set_low_threshold(&mut self, peer: &PeerId, channel: Channel, bytes: usize) {
        if let Some(m) = self.members.get_mut(peer) {
            m.link.set_low_threshold(channel, bytes);
        }
    }

    /// Restarts ICE with `peer` now.
    pub fn restart(&mut self, now: Instant, peer: &PeerId) {
        if let Some(m) = self.members.get_mut(peer) {
            let mut out = std::mem::take(&mut self.scratch);
            m.link.restart(now, &mut out);
            self.absorb(now, peer, out);
        }
    }

    /// Bytes written to data channels and not yet sent, over all links.
    pub fn buffered_total(&mut self) -> usize {
        let mut total = 0;
        for m in self.members.values_mut() {
            for ch in [Channel::Chat, Channel::File, Channel::Pipe] {
                total += m.link.buffered(ch);
            }
        }
        total
    }

    /// Queues `leave`.
    pub fn leave(&mut self) {
        self.signals.push_back(ClientMessage::Leave);
    }

    /// The next signaling message to send.
    pub fn poll_signal(&mut self) -> Option<ClientMessage> {
        self.signals.pop_front()
    }

    /// The next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A keepalive ping with a fresh id, for the driver's heartbeat.
    pub fn ping(&mut self) {
        let id = RawData::from_json(&self.rng.random::<u32>().to_string()).ok();
        self.signals.push_back(ClientMessage::Ping { id });
    }
}

/// How long a driver may sleep when nothing is due.
pub const IDLE: Duration = Duration::from_secs(1);

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
