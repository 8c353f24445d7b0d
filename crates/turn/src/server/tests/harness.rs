//! A server core and any number of client cores wired together in memory.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun::{Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId};

use crate::auth::Users;
use crate::client::{Client, ClientConfig, ClientEvent};
use crate::{
    Event, FiveTuple, PEER_HEADROOM, PEER_TAILROOM, RelaySockets, Server, ServerConfig, Transport,
};

pub const SERVER: &str = "192.0.2.1:3478";
pub const SERVER6: &str = "[2001:db8::1]:3478";
pub const REALM: &str = "switchboard.test";
pub const SECRET: &[u8] = b"s3";
/// The server's Unix clock at `t0`.
pub const UNIX0: u64 = 1_700_000_000;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Records binds; refuses the ports in `refuse`; offers the sockets in
/// `kept` for reuse (those refused move to `closed`).
#[derive(Debug, Default)]
pub struct FakeRelays {
    pub bound: Vec<SocketAddr>,
    pub refuse: HashSet<u16>,
    pub kept: Vec<SocketAddr>,
    pub closed: Vec<SocketAddr>,
}

impl RelaySockets for FakeRelays {
    fn bind(&mut self, local: SocketAddr) -> std::io::Result<()> {
        if self.refuse.contains(&local.port()) {
            return Err(std::io::ErrorKind::AddrInUse.into());
        }
        self.bound.push(local);
        Ok(())
    }

    fn reuse(&mut self, ip: IpAddr, acceptable: &mut dyn FnMut(u16) -> bool) -> Option<u16> {
        while let Some(i) = self.kept.iter().position(|a| a.ip() == ip) {
            let a = self.kept.remove(i);
            if acceptable(a.port()) {
                return Some(a.port());
            }
            self.closed.push(a);
        }
        None
    }
}

pub fn users() -> Users {
    Users::new(
        REALM,
        [("alice", "secret"), ("bob", "hunter2")],
        Some(SECRET.to_vec()),
    )
}

pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new(users());
    c.relay_ports = 50000..=50099;
    c
}

/// Data that left through a relay socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToPeer {
    pub relay: SocketAddr,
    pub peer: SocketAddr,
    pub payload: Vec<u8>,
}

/// Peer data a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub client: usize,
    pub peer: SocketAddr,
    pub channel: Option<u16>,
    pub payload: Vec<u8>,
}

pub struct Net {
    pub server: Server,
    pub relays: FakeRelays,
    pub now: Instant,
    pub clients: Vec<(FiveTuple, Client)>,
    /// Everything clients sent, by client index.
    pub sent: Vec<(usize, Vec<u8>)>,
    /// Every message the server sent.
    pub responses: Vec<(FiveTuple, Vec<u8>)>,
    pub to_peer: Vec<ToPeer>,
    pub received: Vec<Received>,
    pub events: Vec<Event>,
    /// Drop this many of the server's success responses.
    pub drop_successes: usize,
    /// Drop everything the server sends.
    pub blackhole: bool,
    next_tid: u64,
}

impl Net {
    pub fn new(config: ServerConfig) -> Self {
        let t0 = Instant::now();
        Net {
            server: Server::new(config, t0, UNIX0, [7; 32]),
            relays: FakeRelays::default(),
            now: t0,
            clients: Vec::new(),
            sent: Vec::new(),
            responses: Vec::new(),
            to_peer: Vec::new(),
            received: Vec::new(),
            events: Vec::new(),
            drop_successes: 0,
            blackhole: false,
            next_tid: 1,
        }
    }

    /// The 5-tuple of the `n`th client address over `transport` to `server`.
    pub fn tuple(n: usize, transport: Transport, server: &str) -> FiveTuple {
        let server = addr(server);
        let client = match server {
            SocketAddr::V4(_) => format!("192.0.2.100:{}", 40000 + n),
            SocketAddr::V6(_) => format!("[2001:db8::100]:{}", 40000 + n),
        };
        FiveTuple {
            transport,
            client: addr(&client),
            server,
        }
    }

    pub fn add(&mut self, config: ClientConfig, ft: FiveTuple) -> usize {
        let seed = [(self.clients.len() as u8).wrapping_add(1); 32];
        self.clients.push((ft, Client::new(config, self.now, seed)));
        self.clients.len() - 1
    }

    /// A UDP client of `user` with its own 5-tuple.
    pub fn add_user(&mut self, user: &str, password: &str) -> usize {
        let ft = Self::tuple(self.clients.len(), Transport::Udp, SERVER);
        self.add(
            ClientConfig::new(ft.server, user, password, Transport::Udp),
            ft,
        )
    }

    pub fn ft(&self, i: usize) -> FiveTuple {
        self.clients[i].0
    }

    pub fn client(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i].1
    }

    pub fn take_events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.clients[i].1.poll_event()).collect()
    }

    pub fn take_server_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Moves packets until nobody has anything to send.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let mut progress = false;
            for i in 0..self.clients.len() {
                while let Some(bytes) = self.clients[i].1.poll_transmit() {
                    progress = true;
                    let ft = self.clients[i].0;
                    self.sent.push((i, bytes.clone()));
                    if let Some(p) =
                        self.server
                            .handle_client(self.now, ft, &bytes, &mut self.relays)
                    {
                        self.to_peer.push(ToPeer {
                            relay: p.relay,
                            peer: p.peer,
                            payload: p.payload.to_vec(),
                        });
                    }
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                progress = true;
                self.responses.push((t.to, t.payload.clone()));
                let success =
                    Message::decode(&t.payload).is_ok_and(|m| m.class() == Class::Success);
                if self.blackhole || (success && self.drop_successes > 0) {
                    if success && self.drop_successes > 0 {
                        self.drop_successes -= 1;
                    }
                    continue;
                }
                self.deliver(t.to, &t.payload);
            }
            self.events
                .extend(std::iter::from_fn(|| self.server.poll_event()));
            if !progress {
                return;
            }
        }
        panic!("packets kept flowing");
    }

    /// Hands bytes from the server to every client on 5-tuple `to`.
    pub fn deliver(&mut self, to: FiveTuple, bytes: &[u8]) {
        for (i, (ft, c)) in self.clients.iter_mut().enumerate() {
            if *ft != to {
                continue;
            }
            if let Ok(Some(d)) = c.handle_input(self.now, bytes) {
                self.received.push(Received {
                    client: i,
                    peer: d.peer,
                    channel: d.channel,
                    payload: d.payload.to_vec(),
                });
            }
        }
    }

    /// Advances virtual time by `d`, firing every timer on the way in
    /// order; with `tick_clients` false only the server's.
    pub fn advance(&mut self, d: Duration, tick_clients: bool) {
        let target = self.now + d;
        for _ in 0..100_000 {
            let mut next = self.server.poll_timeout();
            if tick_clients {
                for (_, c) in &self.clients {
                    next = match (next, c.poll_timeout()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            let Some(t) = next.filter(|t| *t <= target) else {
                break;
            };
            self.now = self.now.max(t);
            self.fire(tick_clients);
        }
        self.now = target;
        self.fire(tick_clients);
    }

    fn fire(&mut self, tick_clients: bool) {
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        if tick_clients {
            for (_, c) in &mut self.clients {
                if c.poll_timeout().is_some_and(|t| t <= self.now) {
                    c.handle_timeout(self.now);
                }
            }
        }
        self.pump();
    }

    /// Allocates for client `i` and returns the relayed address.
    pub fn allocate(&mut self, i: usize) -> SocketAddr {
        let now = self.now;
        self.client(i).allocate(now).unwrap();
        self.pump();
        match self.take_events(i).as_slice() {
            [ClientEvent::Allocated { relayed, .. }] => *relayed,
            other => panic!("expected Allocated, got {other:?}"),
        }
    }

    /// Runs an operation of client `i` and returns its events.
    pub fn run(&mut self, i: usize, op: impl FnOnce(&mut Client, Instant)) -> Vec<ClientEvent> {
        let now = self.now;
        op(self.client(i), now);
        self.pump();
        self.take_events(i)
    }

    /// Client `i` sends `payload` to `peer`; returns what left the relay.
    pub fn send(&mut self, i: usize, peer: SocketAddr, payload: &[u8]) -> Option<ToPeer> {
        let ft = self.ft(i);
        let bytes = self.clients[i].1.send_to(peer, payload).unwrap().to_vec();
        self.relay_from_client(ft, &bytes)
    }

    /// Feeds raw client bytes to the server; returns what left the relay.
    pub fn relay_from_client(&mut self, ft: FiveTuple, bytes: &[u8]) -> Option<ToPeer> {
        self.server
            .handle_client(self.now, ft, bytes, &mut self.relays)
            .map(|p| ToPeer {
                relay: p.relay,
                peer: p.peer,
                payload: p.payload.to_vec(),
            })
    }

    /// A peer sends `payload` to relay address `relay`; returns the framed
    /// bytes the server sends to the client (and delivers them to it).
    pub fn peer_sends(
        &mut self,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let mut buf = vec![0xEE; PEER_HEADROOM + payload.len() + PEER_TAILROOM];
        buf[PEER_HEADROOM..PEER_HEADROOM + payload.len()].copy_from_slice(payload);
        let out = self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, payload.len())
            .map(|c| (c.to, c.payload.to_vec()));
        let (to, bytes) = out?;
        self.deliver(to, &bytes);
        Some(bytes)
    }

    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        let mut t = [0xA5; 12];
        t[4..].copy_from_slice(&self.next_tid.to_be_bytes());
        TransactionId(t)
    }

    /// Sends a hand-made request on `ft` and returns the server's answer.
    pub fn raw(&mut self, ft: FiveTuple, bytes: &[u8]) -> Vec<u8> {
        let tid = Message::decode(bytes).unwrap().transaction_id();
        assert!(self.relay_from_client(ft, bytes).is_none());
        let mut answer = None;
        while let Some(t) = self.server.poll_transmit() {
            self.responses.push((t.to, t.payload.clone()));
            let m = Message::decode(&t.payload).unwrap();
            if t.to == ft && m.transaction_id() == tid {
                answer = Some(t.payload);
            } else {
                self.deliver(t.to, &t.payload);
            }
        }
        self.events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
        answer.expect("no answer")
    }

    /// A request with `attrs`, unsigned.
    pub fn build(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        let mut buf = Vec::new();
        let tid = self.tid();
        let mut b = MessageBuilder::new(&mut buf, Class::Request, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        buf
    }

    /// A request with `attrs`, signed with MD5 long-term credentials after
    /// a 401 dance; returns the answer to the signed request.
    pub fn signed(
        &mut self,
        ft: FiveTuple,
        method: Method,
        attrs: &[Attribute<'_>],
        user: &str,
        password: &str,
    ) -> Vec<u8> {
        // An unsigned Allocate is always challenged; other methods on a
        // 5-tuple without an allocation get a bare 437 instead.
        let first = self.build(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
        let challenge = self.raw(ft, &first);
        let m = Message::decode(&challenge).unwrap();
        assert_eq!(error_code(&challenge), Some(401));
        let Some(Ok(Attribute::Realm(realm))) = m.attribute(AttributeType::REALM) else {
            panic!("no realm")
        };
        let Some(Ok(Attribute::Nonce(nonce))) = m.attribute(AttributeType::NONCE) else {
            panic!("no nonce")
        };
        let key = stun::long_term_key_md5(user, realm, password);
        let mut buf = Vec::new();
        let tid = self.tid();
        let mut b = MessageBuilder::new(&mut buf, Class::Request, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        b.add(&Attribute::Username(user)).unwrap();
        b.add(&Attribute::Realm(realm)).unwrap();
        b.add(&Attribute::Nonce(nonce)).unwrap();
        b.add_message_integrity(&key).unwrap();
        let signed = buf.clone();
        self.raw(ft, &signed)
    }

    /// Client `i`'s requests of `method`, as sent.
    pub fn requests(&self, i: usize, method: Method) -> Vec<Vec<u8>> {
        self.sent
            .iter()
            .filter(|(c, b)| {
                *c == i
                    && Message::decode(b)
                        .is_ok_and(|m| m.class() == Class::Request && m.method() == method)
            })
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Error codes the server sent to `ft`, in order.
    pub fn error_codes(&self, ft: FiveTuple) -> Vec<u16> {
        self.responses
            .iter()
            .filter(|(to, _)| *to == ft)
            .filter_map(|(_, b)| error_code(b))
            .collect()
    }
}

/// The ERROR-CODE of an error response.
pub fn error_code(bytes: &[u8]) -> Option<u16> {
    let m = Message::decode(bytes).ok()?;
    if m.class() != Class::Error {
        return None;
    }
    match m.attribute(AttributeType::ERROR_CODE)? {
        Ok(Attribute::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

/// The `Failed` code of a single-event list.
pub fn failed(events: &[ClientEvent]) -> (Method, u16) {
    match events {
        [ClientEvent::Failed { method, code, .. }] => (*method, *code),
        other => panic!("expected one Failed, got {other:?}"),
    }
}
