//! Client transactions: RFC 8489 §6.2.1 (over UDP a request is retransmitted
//! after RTO = 500 ms, doubling each time, Rc = 7 sends in all, then given up
//! after Rm = 16 × RTO more) and §6.2.2 (over TCP or TLS it is sent once and
//! given up after Ti = 39.5 s). The requests themselves are those of
//! RFC 8656 §7.1, §7.3, §9.1 and §12.1, and the Binding of RFC 8489 §7.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun::{Attribute, EncodeError, MessageBuilder, Method, TransactionId};

/// Initial retransmission timeout (RFC 8489 §6.2.1).
pub const RTO: Duration = Duration::from_millis(500);
/// Number of sends of a request over UDP (RFC 8489 §6.2.1).
pub const RC: u32 = 7;
/// Multiple of RTO waited after the last send (RFC 8489 §6.2.1).
pub const RM: u32 = 16;
/// How long a request over a reliable transport waits (RFC 8489 §6.2.2).
pub const TI: Duration = Duration::from_millis(39_500);

/// REQUESTED-TRANSPORT value for UDP (RFC 8656 §18.8).
const UDP: u8 = 17;

/// Options of an Allocate request (RFC 8656 §7.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocateOptions {
    /// LIFETIME to ask for, in seconds; the server clamps it.
    pub lifetime: Option<u32>,
    /// EVEN-PORT: `Some(true)` also asks the server to reserve the next port.
    pub even_port: Option<bool>,
    /// RESERVATION-TOKEN from an earlier allocation's EVEN-PORT reservation.
    pub reservation_token: Option<[u8; 8]>,
    /// REQUESTED-ADDRESS-FAMILY; `None` means IPv4.
    pub family: Option<stun::AddressFamily>,
    /// DONT-FRAGMENT.
    pub dont_fragment: bool,
}

/// What a transaction asks for; enough to rebuild it with new credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    /// Binding (RFC 8489 §7), unauthenticated.
    Binding,
    /// Allocate (RFC 8656 §7.1).
    Allocate(AllocateOptions),
    /// Refresh (RFC 8656 §7.3); `automatic` if the client sent it itself.
    Refresh {
        lifetime: Option<u32>,
        automatic: bool,
    },
    /// CreatePermission (RFC 8656 §9.1).
    CreatePermission { peers: Vec<IpAddr> },
    /// ChannelBind (RFC 8656 §12.1).
    ChannelBind { channel: u16, peer: SocketAddr },
}

impl Request {
    /// The STUN method.
    pub fn method(&self) -> Method {
        match self {
            Request::Binding => Method::BINDING,
            Request::Allocate(_) => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        }
    }

    /// True if the request carries long-term credentials.
    pub fn authenticated(&self) -> bool {
        !matches!(self, Request::Binding)
    }

    /// Appends the method's own attributes.
    pub fn add_attributes(&self, b: &mut MessageBuilder<'_>) -> Result<(), EncodeError> {
        match self {
            Request::Binding => {}
            Request::Allocate(o) => {
                b.add(&Attribute::RequestedTransport(UDP))?;
                if let Some(l) = o.lifetime {
                    b.add(&Attribute::Lifetime(l))?;
                }
                if let Some(r) = o.even_port {
                    b.add(&Attribute::EvenPort(r))?;
                }
                if let Some(t) = o.reservation_token {
                    b.add(&Attribute::ReservationToken(t))?;
                }
                if let Some(f) = o.family {
                    b.add(&Attribute::RequestedAddressFamily(f))?;
                }
                if o.dont_fragment {
                    b.add(&Attribute::DontFragment)?;
                }
            }
            Request::Refresh { lifetime, .. } => {
                if let Some(l) = lifetime {
                    b.add(&Attribute::Lifetime(*l))?;
                }
            }
            Request::CreatePermission { peers } => {
                for ip in peers {
                    // The port is ignored by the server (RFC 8656 §9.1).
                    b.add(&Attribute::XorPeerAddress(SocketAddr::new(*ip, 0)))?;
                }
            }
            Request::ChannelBind { channel, peer } => {
                b.add(&Attribute::ChannelNumber(*channel))?;
                b.add(&Attribute::XorPeerAddress(*peer))?;
            }
        }
        Ok(())
    }
}

/// What to do when a transaction's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Send the request again.
    Retransmit,
    /// Give up.
    TimedOut,
}

/// A request waiting for its response.
#[derive(Debug)]
pub(super) struct Transaction {
    /// Its transaction id.
    pub tid: TransactionId,
    /// What it asks for.
    pub request: Request,
    /// The encoded request, kept for retransmissions.
    pub bytes: Vec<u8>,
    /// True if it carried MESSAGE-INTEGRITY(-SHA256).
    pub signed: bool,
    /// How many 401/438 retries preceded it.
    pub retries: u8,
    /// When [`Transaction::on_deadline`] is next due.
    pub deadline: Instant,
    sends: u32,
    rto: Duration,
    reliable: bool,
}

impl Transaction {
    /// A transaction whose request was just sent at `now` for the first time.
    pub fn new(
        tid: TransactionId,
        request: Request,
        bytes: Vec<u8>,
        signed: bool,
        retries: u8,
        now: Instant,
        reliable: bool,
    ) -> Self {
        Transaction {
            tid,
            request,
            bytes,
            signed,
            retries,
            deadline: now + if reliable { TI } else { RTO },
            sends: 1,
            rto: RTO,
            reliable,
        }
    }

    /// Advances the schedule at the deadline: the next send is one RTO
    /// (doubled each time) after the previous one, and after the Rc-th send
    /// the transaction waits Rm × RTO before giving up.
    pub fn on_deadline(&mut self) -> Step {
        if self.reliable || self.sends >= RC {
            return Step::TimedOut;
        }
        self.sends += 1;
        self.rto = self.rto.saturating_mul(2);
        self.deadline += if self.sends >= RC {
            RTO.saturating_mul(RM)
        } else {
            self.rto
        };
        Step::Retransmit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_schedule_is_rfc_8489_example() {
        // RFC 8489 §6.2.1: sends at 0, 500, 1500, 3500, 7500, 15500 and
        // 31500 ms; failure at 39500 ms.
        let t0 = Instant::now();
        let mut t = Transaction::new(
            TransactionId([0; 12]),
            Request::Binding,
            vec![],
            false,
            0,
            t0,
            false,
        );
        let mut sends = vec![0u128];
        loop {
            let at = (t.deadline - t0).as_millis();
            match t.on_deadline() {
                Step::Retransmit => sends.push(at),
                Step::TimedOut => {
                    assert_eq!(at, 39_500);
                    break;
                }
            }
        }
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    }

    #[test]
    fn reliable_sends_once_and_waits_ti() {
        let t0 = Instant::now();
        let mut t = Transaction::new(
            TransactionId([0; 12]),
            Request::Binding,
            vec![],
            false,
            0,
            t0,
            true,
        );
        assert_eq!(t.deadline - t0, Duration::from_millis(39_500));
        assert_eq!(t.on_deadline(), Step::TimedOut);
    }
}
