//! Input from the server: responses (RFC 8489 §6.3.3 and §9.2.5; the
//! success and error handling of RFC 8656 §7.1, §7.3, §9.1 and §12.1),
//! Data indications (RFC 8656 §11.4) and ChannelData (§12.5).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun::{Attribute, AttributeType, Class, Message, Method};

use super::transaction::Request;
use super::{
    ALLOCATION_REFRESH_MARGIN, AllocationState, CHANNEL_REFRESH, Client, ClientError, ClientEvent,
    MAX_AUTH_RETRIES, PERMISSION_REFRESH, PeerData, Permission,
};
use crate::channel_data::ChannelData;

/// What a success response reports.
#[derive(Debug, Default)]
struct Granted {
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    lifetime: Option<u32>,
    token: Option<[u8; 8]>,
}

impl Granted {
    fn read(msg: &Message<'_>) -> Self {
        let mut g = Granted::default();
        let tid = msg.transaction_id();
        for raw in msg.attributes() {
            match Attribute::decode(raw, &tid) {
                Ok(Attribute::XorRelayedAddress(a)) => g.relayed = g.relayed.or(Some(a)),
                Ok(Attribute::XorMappedAddress(a)) => g.mapped = Some(a),
                Ok(Attribute::MappedAddress(a)) => g.mapped = g.mapped.or(Some(a)),
                Ok(Attribute::Lifetime(l)) => g.lifetime = g.lifetime.or(Some(l)),
                Ok(Attribute::ReservationToken(t)) => g.token = g.token.or(Some(t)),
                _ => {}
            }
        }
        g
    }

    /// Checks that what `request`'s success must carry is there.
    fn check(&self, request: &Request) -> Result<(), ClientError> {
        let missing = match request {
            Request::Binding if self.mapped.is_none() => "Binding success without mapped address",
            Request::Allocate(_) if self.relayed.is_none() => {
                "Allocate success without XOR-RELAYED-ADDRESS"
            }
            Request::Allocate(_) if self.mapped.is_none() => {
                "Allocate success without XOR-MAPPED-ADDRESS"
            }
            Request::Allocate(_) | Request::Refresh { .. } if self.lifetime.is_none() => {
                "success without LIFETIME"
            }
            _ => return Ok(()),
        };
        Err(ClientError::Malformed(missing))
    }
}

/// When to refresh an allocation granted `lifetime` at `now`: a minute
/// before it expires, or halfway for very short lifetimes.
fn refresh_time(now: Instant, lifetime: Duration) -> Instant {
    if lifetime > ALLOCATION_REFRESH_MARGIN * 2 {
        now + lifetime - ALLOCATION_REFRESH_MARGIN
    } else {
        now + lifetime / 2
    }
}

fn data_indication<'a>(msg: &Message<'a>) -> Result<PeerData<'a>, ClientError> {
    let peer = match msg.attribute(AttributeType::XOR_PEER_ADDRESS) {
        Some(Ok(Attribute::XorPeerAddress(p))) => p,
        _ => return Err(ClientError::Malformed("Data indication without peer")),
    };
    let payload = match msg.attribute(AttributeType::DATA) {
        Some(Ok(Attribute::Data(d))) => d,
        _ => return Err(ClientError::Malformed("Data indication without DATA")),
    };
    Ok(PeerData {
        peer,
        payload,
        channel: None,
    })
}

impl Client {
    /// Handles one datagram, or one stream frame, from the server. Peer data
    /// (a Data indication or ChannelData) is returned, borrowing `packet`;
    /// responses update the state and queue events. An error says why the
    /// packet was ignored; the client's state is then unchanged.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        packet: &'a [u8],
    ) -> Result<Option<PeerData<'a>>, ClientError> {
        match packet.first() {
            Some(0x40..=0x7F) => {
                let cd = ChannelData::decode(packet)?;
                let peer = self
                    .channels
                    .iter()
                    .find(|c| c.number == cd.channel)
                    .map(|c| c.peer)
                    .ok_or(ClientError::UnknownChannel(cd.channel))?;
                Ok(Some(PeerData {
                    peer,
                    payload: cd.payload,
                    channel: Some(cd.channel),
                }))
            }
            Some(0x00..=0x03) => {
                let msg = Message::decode(packet)?;
                match msg.class() {
                    Class::Indication if msg.method() == Method::DATA => {
                        let data = data_indication(&msg)?;
                        // RFC 8656 §11.4: only from peers we believe we
                        // have (or are asking for) a permission for.
                        if !self.permissions.contains_key(&data.peer.ip()) {
                            return Err(ClientError::NoPermission(data.peer.ip()));
                        }
                        Ok(Some(data))
                    }
                    Class::Success | Class::Error => {
                        self.handle_response(now, &msg)?;
                        Ok(None)
                    }
                    _ => Err(ClientError::Unexpected),
                }
            }
            _ => Err(ClientError::NotTurn),
        }
    }

    fn handle_response(&mut self, now: Instant, msg: &Message<'_>) -> Result<(), ClientError> {
        let idx = self
            .transactions
            .iter()
            .position(|t| t.tid == msg.transaction_id() && t.request.method() == msg.method())
            .ok_or(ClientError::UnknownTransaction)?;
        let signed = self.transactions.get(idx).is_some_and(|t| t.signed);
        if msg.class() == Class::Success {
            // A success to a signed request must be signed (RFC 8489 §9.2.5).
            if signed {
                self.credentials.verify(msg)?;
            }
            let granted = Granted::read(msg);
            if let Some(t) = self.transactions.get(idx) {
                granted.check(&t.request)?;
            }
            let t = self.transactions.swap_remove(idx);
            self.on_success(now, t.request, &granted);
            return Ok(());
        }
        let (code, reason) = match msg.attribute(AttributeType::ERROR_CODE) {
            Some(Ok(Attribute::ErrorCode(e))) => (e.code, e.reason.to_owned()),
            _ => return Err(ClientError::Malformed("error response without ERROR-CODE")),
        };
        // Errors before authentication (401, 438, 400) come unsigned; a
        // signed one must verify.
        if signed && (msg.has_integrity() || msg.has_integrity_sha256()) {
            self.credentials.verify(msg)?;
        }
        let t = self.transactions.swap_remove(idx);
        let challenge = (code == 401 && !t.signed) || code == 438;
        if challenge && t.request.authenticated() && t.retries < MAX_AUTH_RETRIES {
            let retried = self
                .credentials
                .take_challenge(msg, &self.config)
                .and_then(|()| self.start(now, t.request.clone(), t.retries + 1));
            if retried.is_ok() {
                return Ok(());
            }
        }
        self.on_error(t.request, code, reason);
        Ok(())
    }

    fn on_success(&mut self, now: Instant, request: Request, granted: &Granted) {
        let lifetime = Duration::from_secs(granted.lifetime.unwrap_or(0).into());
        match request {
            Request::Binding => {
                if let Some(mapped) = granted.mapped {
                    self.events.push_back(ClientEvent::Mapped { mapped });
                }
            }
            Request::Allocate(options) => {
                self.allocating = false;
                let (Some(relayed), Some(mapped)) = (granted.relayed, granted.mapped) else {
                    return;
                };
                self.allocation = Some(AllocationState {
                    relayed,
                    mapped,
                    expires: now + lifetime,
                    refresh_at: Some(refresh_time(now, lifetime)),
                    lifetime: options.lifetime,
                });
                self.events.push_back(ClientEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                    reservation_token: granted.token,
                });
            }
            Request::Refresh { .. } => {
                if lifetime.is_zero() {
                    self.clear_allocation();
                    self.events.push_back(ClientEvent::Released);
                } else if let Some(a) = self.allocation.as_mut() {
                    a.expires = now + lifetime;
                    a.refresh_at = Some(refresh_time(now, lifetime));
                    self.events.push_back(ClientEvent::Refreshed { lifetime });
                }
            }
            Request::CreatePermission { peers } => {
                for ip in &peers {
                    if let Some(p) = self.permissions.get_mut(ip) {
                        p.installed = true;
                        p.in_flight = false;
                        p.refresh_at = now + PERMISSION_REFRESH;
                    }
                }
                self.events
                    .push_back(ClientEvent::PermissionCreated { peers });
            }
            Request::ChannelBind { channel, peer } => {
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    c.bound = true;
                    c.in_flight = false;
                    c.refresh_at = now + CHANNEL_REFRESH;
                }
                // The binding installed a permission too (RFC 8656 §12.2),
                // which lasts only 300 s: keep refreshing it.
                let p = self.permissions.entry(peer.ip()).or_insert(Permission {
                    installed: true,
                    in_flight: false,
                    refresh_at: now,
                });
                p.installed = true;
                if !p.in_flight {
                    p.refresh_at = now + PERMISSION_REFRESH;
                }
                self.events
                    .push_back(ClientEvent::ChannelBound { peer, channel });
            }
        }
    }

    fn on_error(&mut self, request: Request, code: u16, reason: String) {
        let method = request.method();
        match request {
            // RFC 8656 §7.3: a delete answered 437 was a retransmission of
            // one that succeeded.
            Request::Refresh {
                lifetime: Some(0), ..
            } if code == 437 => {
                self.clear_allocation();
                self.events.push_back(ClientEvent::Released);
                return;
            }
            // The server has no allocation for us any more (it expired, or
            // the server restarted): forget it and what hangs off it.
            Request::Refresh { .. }
            | Request::CreatePermission { .. }
            | Request::ChannelBind { .. }
                if code == 437 =>
            {
                self.clear_allocation()
            }
            other => self.drop_request_state(&other),
        }
        self.events.push_back(ClientEvent::Failed {
            method,
            code,
            reason,
        });
    }
}
