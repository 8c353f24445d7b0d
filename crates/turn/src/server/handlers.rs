//! Request handlers: Binding (RFC 8489 §7.3), Allocate (RFC 8656 §7.2),
//! Refresh (§7.3), CreatePermission (§9.2), ChannelBind (§12.2), with the
//! address-family rules of RFC 8656 §7.2 and RFC 6156. While draining, a
//! new Allocate is answered 300 Try Alternate with ALTERNATE-SERVER
//! (RFC 8489 §10, §14.15) or 508 Insufficient Capacity.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;
use stun::{AddressFamily, Attribute, AttributeType, Class, Message, Method, UnknownAttributes};

use super::request::Auth;
use super::{FiveTuple, RESERVATION_LIFETIME, RelaySockets, Server};
use crate::allocation::Allocation;
use crate::channel_data::{MAX_CHANNEL_ACCEPTED, MIN_CHANNEL};
use crate::ledger::UserKind;
use crate::policy::Reach;
use crate::rate_limit::TokenBucket;
use crate::stats::DropReason;

/// UDP, the only REQUESTED-TRANSPORT this relay offers.
const UDP: u8 = 17;
/// How many relay ports an Allocate tries before giving up with 508.
const BIND_ATTEMPTS: usize = 64;

/// What an Allocate success response reports.
struct Granted {
    relay: SocketAddr,
    lifetime: Duration,
    token: Option<[u8; 8]>,
    additional: bool,
}

impl Server {
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        from: FiveTuple,
        req: &Message<'_>,
        relays: &mut dyn RelaySockets,
    ) {
        let method = req.method();
        if method == Method::BINDING {
            if self.reject_unknown(from, req, None) {
                return;
            }
            let attrs = [Attribute::XorMappedAddress(from.client)];
            self.reply(from, req, Class::Success, None, &attrs);
            return;
        }
        let known = [
            Method::ALLOCATE,
            Method::REFRESH,
            Method::CREATE_PERMISSION,
            Method::CHANNEL_BIND,
        ];
        if !known.contains(&method) {
            self.error(from, req, 400, None);
            return;
        }
        let has_allocation = self.allocations.get(&from).is_some_and(|a| a.expires > now);
        if method != Method::ALLOCATE
            && !has_allocation
            && !req.has_integrity()
            && !req.has_integrity_sha256()
        {
            // Nothing to refresh or extend on this 5-tuple: say so in 28
            // bytes rather than challenge with 92 (amplification). It tells
            // the sender only about its own 5-tuple.
            self.error(from, req, 437, None);
            return;
        }
        let Some(auth) = self.authenticate(now, from, req) else {
            return;
        };
        if self.reject_unknown(from, req, Some(&auth)) {
            return;
        }
        if method == Method::ALLOCATE {
            self.allocate(now, from, req, &auth, relays);
            return;
        }
        let Some(a) = self.allocations.get(&from).filter(|a| a.expires > now) else {
            self.error(from, req, 437, Some(&auth));
            return;
        };
        if a.username != auth.username {
            self.error(from, req, 441, Some(&auth));
            return;
        }
        match method {
            Method::REFRESH => self.refresh(now, from, req, &auth),
            Method::CREATE_PERMISSION => self.create_permission(now, from, req, &auth),
            _ => self.channel_bind(now, from, req, &auth),
        }
    }

    /// Answers 420 listing unknown comprehension-required attributes.
    fn reject_unknown(&mut self, from: FiveTuple, req: &Message<'_>, auth: Option<&Auth>) -> bool {
        let mut unknown = Vec::new();
        for t in req.unknown_comprehension_required() {
            unknown.extend_from_slice(&t.0.to_be_bytes());
        }
        if unknown.is_empty() {
            return false;
        }
        let attrs = [
            Attribute::ErrorCode(stun::ErrorCode {
                code: 420,
                reason: if auth.is_some() {
                    super::request::reason(420)
                } else {
                    ""
                },
            }),
            Attribute::UnknownAttributes(UnknownAttributes::from_encoded(&unknown)),
        ];
        self.reply(from, req, Class::Error, auth, &attrs);
        true
    }

    fn lifetime(&self, req: &Message<'_>) -> Duration {
        let asked = match req.attribute(AttributeType::LIFETIME) {
            Some(Ok(Attribute::Lifetime(s))) => Duration::from_secs(s.into()),
            _ => self.config.default_lifetime,
        };
        asked
            .max(self.config.default_lifetime)
            .min(self.config.max_lifetime)
    }

    fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        req: &Message<'_>,
        auth: &Auth,
        relays: &mut dyn RelaySockets,
    ) {
        // An allocation past its expiry that handle_timeout has not swept
        // yet is gone: remove it now, or a new allocation on this 5-tuple
        // would leave its relay open (mapped to the new allocation) and
        // counted in the user's quota.
        if self
            .allocations
            .get(&from)
            .is_some_and(|a| a.expires <= now)
        {
            self.remove_allocation(&from);
        }
        if let Some(a) = self.allocations.get(&from) {
            if a.allocate_tid == req.transaction_id() {
                // A retransmission: answer as before, with the reservation
                // token while the next port is still held for it (only this
                // allocation's Allocate can have reserved relay + 1).
                let left = a.expires.saturating_duration_since(now);
                let next = SocketAddr::new(a.relay.ip(), a.relay.port().wrapping_add(1));
                let token = self.config.ledger.token_holding(next, now);
                let additional = matches!(
                    req.attribute(AttributeType::ADDITIONAL_ADDRESS_FAMILY),
                    Some(Ok(Attribute::AdditionalAddressFamily(AddressFamily::V6)))
                );
                let granted = Granted {
                    relay: a.advertised,
                    lifetime: left,
                    token,
                    additional,
                };
                self.allocate_success(from, req, auth, granted);
            } else {
                self.error(from, req, 437, Some(auth));
            }
            return;
        }
        if let Some(alternate) = self.draining {
            return self.refuse_while_draining(from, req, auth, alternate);
        }
        match req.attribute(AttributeType::REQUESTED_TRANSPORT) {
            Some(Ok(Attribute::RequestedTransport(UDP))) => {}
            Some(Ok(Attribute::RequestedTransport(_))) => {
                return self.error(from, req, 442, Some(auth));
            }
            _ => return self.error(from, req, 400, Some(auth)),
        }
        let attr = |t| req.attribute(t);
        let token = match attr(AttributeType::RESERVATION_TOKEN) {
            Some(Ok(Attribute::ReservationToken(t))) => Some(t),
            Some(_) => return self.error(from, req, 400, Some(auth)),
            None => None,
        };
        let even_port = match attr(AttributeType::EVEN_PORT) {
            Some(Ok(Attribute::EvenPort(r))) => Some(r),
            Some(_) => return self.error(from, req, 400, Some(auth)),
            None => None,
        };
        let family = match attr(AttributeType::REQUESTED_ADDRESS_FAMILY) {
            Some(Ok(Attribute::RequestedAddressFamily(f))) => Some(f),
            Some(_) => return self.error(from, req, 440, Some(auth)),
            None => None,
        };
        let additional = match attr(AttributeType::ADDITIONAL_ADDRESS_FAMILY) {
            Some(Ok(Attribute::AdditionalAddressFamily(AddressFamily::V6))) => true,
            Some(_) => return self.error(from, req, 400, Some(auth)),
            None => false,
        };
        if (token.is_some() && (even_port.is_some() || family.is_some() || additional))
            || (family.is_some() && additional)
        {
            return self.error(from, req, 400, Some(auth));
        }
        let kind = if self.config.users.is_static(&auth.username) {
            UserKind::Static
        } else {
            UserKind::Ephemeral
        };
        let reserved = self
            .config
            .ledger
            .reserve(&auth.username, kind, from.client.ip(), now);
        if let Err(limit) = reserved {
            let code = limit.code();
            self.stats.drop(if code == 508 {
                DropReason::Capacity
            } else {
                DropReason::Quota
            });
            return self.error(from, req, code, Some(auth));
        }
        // From here on, every refusal gives the reservation back.
        let release = |s: &mut Self| s.config.ledger.release(&auth.username, from.client.ip());

        let (relay, reserved_token) = if let Some(t) = token {
            // The token may come from any worker's reservation (the ledger
            // is shared); the held port is bound here, by this worker.
            match self.config.ledger.take_held(&t, now) {
                Some(r) if self.bind_held(r, relays) => (r, None),
                _ => {
                    release(self);
                    self.stats.drop(DropReason::Capacity);
                    return self.error(from, req, 508, Some(auth));
                }
            }
        } else {
            let family = family.unwrap_or(AddressFamily::V4);
            let Some(ip) = self.relay_ip(from, family) else {
                release(self);
                return self.error(from, req, 440, Some(auth));
            };
            match self.bind_relay(ip, even_port, relays) {
                Some((relay, reserved)) => {
                    let token = reserved.map(|r| {
                        let t: [u8; 8] = self.rng.random();
                        self.config.ledger.hold(t, r, now + RESERVATION_LIFETIME);
                        t
                    });
                    (relay, token)
                }
                None => {
                    release(self);
                    self.stats.drop(DropReason::Capacity);
                    return self.error(from, req, 508, Some(auth));
                }
            }
        };
        let advertised = match (self.config.external_ip, relay.ip()) {
            (Some(ext @ IpAddr::V4(_)), IpAddr::V4(_))
            | (Some(ext @ IpAddr::V6(_)), IpAddr::V6(_)) => SocketAddr::new(ext, relay.port()),
            _ => relay,
        };
        let lifetime = self.lifetime(req);
        let expires = now + lifetime;
        self.allocations.insert(
            from,
            Box::new(Allocation::new(
                relay,
                advertised,
                expires,
                auth.username.clone(),
                auth.key,
                TokenBucket::full(
                    super::bandwidth_rate(self.config.allocation_bytes_per_second),
                    self.ms_since_start(now),
                ),
                req.transaction_id(),
            )),
        );
        self.by_relay.insert(relay, from);
        self.stats.allocation_added(from.transport, relay);
        self.schedule(expires);
        let granted = Granted {
            relay: advertised,
            lifetime,
            token: reserved_token,
            additional,
        };
        self.allocate_success(from, req, auth, granted);
    }

    /// A new Allocate while draining: 300 with ALTERNATE-SERVER when the
    /// alternate is of the family of the address the request reached (the
    /// client can reach it the same way), else 508.
    fn refuse_while_draining(
        &mut self,
        from: FiveTuple,
        req: &Message<'_>,
        auth: &Auth,
        alternate: Option<SocketAddr>,
    ) {
        self.stats.drop(DropReason::Draining);
        match alternate {
            Some(alt) if alt.is_ipv4() == from.server.is_ipv4() => {
                let attrs = [
                    Attribute::ErrorCode(stun::ErrorCode {
                        code: 300,
                        reason: super::request::reason(300),
                    }),
                    Attribute::AlternateServer(alt),
                ];
                self.reply(from, req, Class::Error, Some(auth), &attrs);
            }
            _ => self.error(from, req, 508, Some(auth)),
        }
    }

    /// The Allocate success response, with the reservation token if one was
    /// made. An additional IPv6 relay (dual allocation, RFC 8656 §7.2) is not
    /// offered: `additional` is answered with ADDRESS-ERROR-CODE 440.
    fn allocate_success(
        &mut self,
        from: FiveTuple,
        req: &Message<'_>,
        auth: &Auth,
        granted: Granted,
    ) {
        let Granted {
            relay: advertised,
            lifetime,
            token,
            additional,
        } = granted;
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        let mut attrs = vec![
            Attribute::XorRelayedAddress(advertised),
            Attribute::Lifetime(secs),
            Attribute::XorMappedAddress(from.client),
        ];
        if let Some(token) = token {
            attrs.push(Attribute::ReservationToken(token));
        }
        if additional {
            attrs.push(Attribute::AddressErrorCode(
                AddressFamily::V6,
                stun::ErrorCode {
                    code: 440,
                    reason: super::request::reason(440),
                },
            ));
        }
        self.reply(from, req, Class::Success, Some(auth), &attrs);
    }

    /// The IP to bind a relay of `family` on: the address the client reached
    /// us at if it is of that family, else a configured relay IP.
    fn relay_ip(&self, from: FiveTuple, family: AddressFamily) -> Option<IpAddr> {
        let server_ip = from.server.ip();
        if AddressFamily::of(server_ip) == family && !server_ip.is_unspecified() {
            return Some(server_ip);
        }
        self.config
            .relay_ips
            .iter()
            .copied()
            .find(|ip| AddressFamily::of(*ip) == family)
    }

    /// A relay socket on a free port of the range: one the driver kept from
    /// an ended allocation if it has one (see [`RelaySockets::reuse`]),
    /// else bound on a random port; with EVEN-PORT a newly bound even one, and with its R bit also checks the next port is free
    /// (binds it and lets it go again) and returns it to be held. A held
    /// port is not kept bound: the Allocate that claims it may reach
    /// another worker, which binds it then.
    fn bind_relay(
        &mut self,
        ip: IpAddr,
        even_port: Option<bool>,
        relays: &mut dyn RelaySockets,
    ) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let (low, high) = (
            *self.config.relay_ports.start(),
            *self.config.relay_ports.end(),
        );
        if even_port.is_none() {
            let (by_relay, ledger, now) = (&self.by_relay, &self.config.ledger, self.now);
            let mut acceptable = |port: u16| {
                let addr = SocketAddr::new(ip, port);
                (low..=high).contains(&port)
                    && !by_relay.contains_key(&addr)
                    && !ledger.is_held(addr, now)
            };
            if let Some(port) = relays.reuse(ip, &mut acceptable) {
                return Some((SocketAddr::new(ip, port), None));
            }
        }
        let span = u32::from(high - low) + 1;
        let start = self.rng.random_range(0..span);
        let mut attempts = 0;
        for i in 0..span {
            let port = u16::try_from(u32::from(low) + (start + i) % span).ok()?;
            let addr = SocketAddr::new(ip, port);
            if self.by_relay.contains_key(&addr) || self.is_reserved(addr) {
                continue;
            }
            if even_port.is_some() && port % 2 != 0 {
                continue;
            }
            let next = SocketAddr::new(ip, port.checked_add(1)?);
            let reserve = even_port == Some(true);
            if reserve
                && (port == high || self.by_relay.contains_key(&next) || self.is_reserved(next))
            {
                continue;
            }
            attempts += 1;
            if attempts > BIND_ATTEMPTS {
                return None;
            }
            if relays.bind(addr).is_err() {
                continue;
            }
            if reserve {
                if relays.bind(next).is_err() {
                    self.events.push_back(super::Event::RelayClosed(addr));
                    continue;
                }
                self.events.push_back(super::Event::RelayUnbound(next));
                return Some((addr, Some(next)));
            }
            return Some((addr, None));
        }
        None
    }

    fn is_reserved(&self, addr: SocketAddr) -> bool {
        self.config.ledger.is_held(addr, self.now)
    }

    /// Binds a port held for a reservation token. The reserving Allocate
    /// bound it only to check it was free and let it go (see
    /// [`Self::bind_relay`]); if that close is still queued, the socket is
    /// simply kept.
    fn bind_held(&mut self, relay: SocketAddr, relays: &mut dyn RelaySockets) -> bool {
        let closing = super::Event::RelayUnbound(relay);
        if let Some(i) = self.events.iter().position(|e| *e == closing) {
            self.events.remove(i);
            return true;
        }
        relays.bind(relay).is_ok()
    }

    fn refresh(&mut self, now: Instant, from: FiveTuple, req: &Message<'_>, auth: &Auth) {
        let Some(a) = self.allocations.get(&from) else {
            return self.error(from, req, 437, Some(auth));
        };
        if let Some(Ok(Attribute::RequestedAddressFamily(f))) =
            req.attribute(AttributeType::REQUESTED_ADDRESS_FAMILY)
            && f != AddressFamily::of(a.relay.ip())
        {
            return self.error(from, req, 443, Some(auth));
        }
        let zero = matches!(
            req.attribute(AttributeType::LIFETIME),
            Some(Ok(Attribute::Lifetime(0)))
        );
        let lifetime = if zero {
            self.remove_allocation(&from);
            Duration::ZERO
        } else {
            let l = self.lifetime(req);
            if let Some(a) = self.allocations.get_mut(&from) {
                a.expires = now + l;
            }
            self.schedule(now + l);
            l
        };
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        self.reply(
            from,
            req,
            Class::Success,
            Some(auth),
            &[Attribute::Lifetime(secs)],
        );
    }

    /// Checks a peer address for CreatePermission and ChannelBind: 443 if its
    /// family differs from the relay's, 403 if policy forbids it. A
    /// ChannelBind (`exact`) names a port, which must be within reach too;
    /// CreatePermission's port is ignored (RFC 8656 §9).
    fn check_peer(
        &mut self,
        relay: SocketAddr,
        peer: SocketAddr,
        exact: bool,
    ) -> Result<Reach, u16> {
        if AddressFamily::of(peer.ip()) != AddressFamily::of(relay.ip()) {
            return Err(443);
        }
        match self.config.policy.reach(peer.ip()) {
            Some(reach) if !exact || reach.admits(peer.port()) => Ok(reach),
            _ => {
                self.stats.drop(DropReason::PeerPolicy);
                Err(403)
            }
        }
    }

    fn create_permission(&mut self, now: Instant, from: FiveTuple, req: &Message<'_>, auth: &Auth) {
        let Some(relay) = self.allocations.get(&from).map(|a| a.relay) else {
            return self.error(from, req, 437, Some(auth));
        };
        let mut peers = Vec::new();
        for raw in req.attributes() {
            if raw.typ != AttributeType::XOR_PEER_ADDRESS {
                continue;
            }
            match Attribute::decode(raw, &req.transaction_id()) {
                Ok(Attribute::XorPeerAddress(p)) => peers.push(p),
                _ => return self.error(from, req, 400, Some(auth)),
            }
        }
        if peers.is_empty() {
            return self.error(from, req, 400, Some(auth));
        }
        let mut reaches = Vec::with_capacity(peers.len());
        for p in &peers {
            match self.check_peer(relay, *p, false) {
                Ok(reach) => reaches.push((p.ip(), reach)),
                Err(code) => return self.error(from, req, code, Some(auth)),
            }
        }
        let full = self.allocations.get(&from).is_some_and(|a| {
            let new = peers
                .iter()
                .filter(|p| !a.has_permission_entry(p.ip()))
                .count();
            a.permission_count() + new > self.config.max_permissions
        });
        if full {
            self.stats.drop(DropReason::Capacity);
            return self.error(from, req, 508, Some(auth));
        }
        if let Some(a) = self.allocations.get_mut(&from) {
            for (ip, reach) in reaches {
                a.add_permission(ip, reach, now);
            }
        }
        self.schedule(now + crate::allocation::PERMISSION_LIFETIME);
        self.reply(from, req, Class::Success, Some(auth), &[]);
    }

    fn channel_bind(&mut self, now: Instant, from: FiveTuple, req: &Message<'_>, auth: &Auth) {
        let Some(relay) = self.allocations.get(&from).map(|a| a.relay) else {
            return self.error(from, req, 437, Some(auth));
        };
        let channel = match req.attribute(AttributeType::CHANNEL_NUMBER) {
            Some(Ok(Attribute::ChannelNumber(n)))
                if (MIN_CHANNEL..=MAX_CHANNEL_ACCEPTED).contains(&n) =>
            {
                n
            }
            _ => return self.error(from, req, 400, Some(auth)),
        };
        let peer = match req.attribute(AttributeType::XOR_PEER_ADDRESS) {
            Some(Ok(Attribute::XorPeerAddress(p))) => p,
            _ => return self.error(from, req, 400, Some(auth)),
        };
        let reach = match self.check_peer(relay, peer, true) {
            Ok(reach) => reach,
            Err(code) => return self.error(from, req, code, Some(auth)),
        };
        let full = self.allocations.get(&from).is_some_and(|a| {
            !a.has_channel_entry(channel) && a.channel_count() >= self.config.max_channels
        });
        if full {
            self.stats.drop(DropReason::Capacity);
            return self.error(from, req, 508, Some(auth));
        }
        let bound = match self.allocations.get_mut(&from) {
            Some(a) => a.bind_channel(channel, peer, reach, now),
            None => return self.error(from, req, 437, Some(auth)),
        };
        if bound.is_err() {
            return self.error(from, req, 400, Some(auth));
        }
        self.schedule(now + crate::allocation::PERMISSION_LIFETIME);
        self.reply(from, req, Class::Success, Some(auth), &[]);
        self.offer_offload(from, channel, peer);
    }
}
