//! The TURN client core, sans-IO: the client side of RFC 8656 — Allocate
//! (§7.1), Refresh (§7.3), CreatePermission (§9.1), Send and Data
//! indications (§11.1, §11.4), ChannelBind and ChannelData (§12.1, §12.5),
//! framing on stream transports (§11.5) — with the Binding request and the
//! retransmissions of RFC 8489 §6.2 and the long-term credentials of
//! RFC 8489 §9.2.5 (401 and 438 retries, PASSWORD-ALGORITHMS, USERHASH).
//!
//! Nothing here owns a socket or reads a clock. A driver:
//! - sends every [`Client::poll_transmit`] to [`Client::server`];
//! - passes every datagram (or, on TCP/TLS, every frame cut by
//!   [`FrameBuffer`]) from the server to [`Client::handle_input`], which
//!   returns peer data directly, borrowing the packet;
//! - calls [`Client::handle_timeout`] when [`Client::poll_timeout`] is due:
//!   that retransmits over UDP and refreshes the allocation (60 s before it
//!   expires), permissions (every 240 s) and channels (every 540 s), which
//!   keeps a long call alive;
//! - reads what happened from [`Client::poll_event`].

mod auth;
mod framing;
mod input;
mod timers;
mod transaction;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun::{Attribute, Class, MessageBuilder, Method, TransactionId};

pub use self::framing::FrameBuffer;
pub use self::transaction::{AllocateOptions, RC, RM, RTO, TI};
use self::transaction::{Request, Transaction};
pub use crate::auth::PasswordAlgorithm;
use crate::channel_data::{ChannelData, MAX_CHANNEL, MIN_CHANNEL};
pub use crate::server::Transport;

/// Refresh a permission this long after it was installed (RFC 8656 §9:
/// permissions last 300 s).
pub const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// Refresh a channel binding this long after it was made (RFC 8656 §12:
/// bindings last 600 s).
pub const CHANNEL_REFRESH: Duration = Duration::from_secs(540);
/// Refresh an allocation this long before it expires.
pub const ALLOCATION_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How many 401/438 retries one operation may take.
const MAX_AUTH_RETRIES: u8 = 3;

/// Who the client is and how it reaches the server.
#[derive(Clone)]
pub struct ClientConfig {
    /// The TURN server.
    pub server: SocketAddr,
    /// Long-term credential username.
    pub username: String,
    /// Long-term credential password.
    pub password: String,
    /// UDP, or a stream (ChannelData is then padded to 4 bytes).
    pub transport: Transport,
    /// SOFTWARE attribute to send, if any.
    pub software: Option<String>,
    /// Password algorithm to prefer when the server offers several; `None`
    /// follows the server's order (RFC 8489 §9.2.5).
    pub password_algorithm: Option<PasswordAlgorithm>,
    /// Send USERHASH instead of USERNAME when the server's nonce announces
    /// username anonymity (RFC 8489 §9.2.5, §14.4).
    pub use_userhash: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("transport", &self.transport)
            .field("software", &self.software)
            .field("password_algorithm", &self.password_algorithm)
            .field("use_userhash", &self.use_userhash)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration with no SOFTWARE, the server's password algorithm
    /// order and a plain USERNAME.
    pub fn new(
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
        transport: Transport,
    ) -> Self {
        ClientConfig {
            server,
            username: username.into(),
            password: password.into(),
            transport,
            software: None,
            password_algorithm: None,
            use_userhash: false,
        }
    }
}

/// Something that happened, from [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A Binding request succeeded (RFC 8489 §7).
    Mapped {
        /// Our address as the server sees it (XOR-MAPPED-ADDRESS).
        mapped: SocketAddr,
    },
    /// The allocation was made (RFC 8656 §7.1).
    Allocated {
        /// The relayed transport address (XOR-RELAYED-ADDRESS).
        relayed: SocketAddr,
        /// Our address as the server sees it (XOR-MAPPED-ADDRESS).
        mapped: SocketAddr,
        /// The lifetime granted.
        lifetime: Duration,
        /// RESERVATION-TOKEN for the next port, if EVEN-PORT asked for it.
        reservation_token: Option<[u8; 8]>,
    },
    /// The allocation was refreshed, by [`Client::refresh`] or automatically.
    Refreshed {
        /// The lifetime granted.
        lifetime: Duration,
    },
    /// The allocation was deleted by a Refresh with lifetime 0.
    Released,
    /// The allocation expired before a refresh succeeded; all state is gone.
    Expired,
    /// Permissions were installed or refreshed (RFC 8656 §9.1).
    PermissionCreated {
        /// The peer IPs.
        peers: Vec<IpAddr>,
    },
    /// A channel was bound or refreshed (RFC 8656 §12.1).
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// The server refused a request.
    Failed {
        /// The request's method.
        method: Method,
        /// ERROR-CODE.
        code: u16,
        /// ERROR-CODE's reason phrase.
        reason: String,
    },
    /// No response came in time (RFC 8489 §6.2).
    TimedOut {
        /// The request's method.
        method: Method,
    },
}

/// Data from a peer, borrowing the packet it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerData<'a> {
    /// The peer that sent it (as the relay saw it).
    pub peer: SocketAddr,
    /// The application data.
    pub payload: &'a [u8],
    /// The channel it came on; `None` for a Data indication.
    pub channel: Option<u16>,
}

/// What went wrong, for an operation or for an input packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The operation needs an allocation.
    #[error("no allocation")]
    NoAllocation,
    /// Allocate while an allocation exists or is being made.
    #[error("an allocation exists or is being made")]
    AlreadyAllocated,
    /// CreatePermission with no peers.
    #[error("no peers given")]
    NoPeers,
    /// All 4096 channel numbers are in use.
    #[error("no free channel number")]
    NoFreeChannel,
    /// A payload too long for one message.
    #[error("payload too long")]
    PayloadTooLong,
    /// A message could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] stun::EncodeError),
    /// Input that is neither STUN nor ChannelData.
    #[error("not a STUN or ChannelData message")]
    NotTurn,
    /// Input that is not a well-formed STUN message.
    #[error("malformed STUN message: {0}")]
    Decode(#[from] stun::DecodeError),
    /// Input that is not a well-formed ChannelData message.
    #[error("malformed ChannelData: {0}")]
    ChannelData(#[from] crate::channel_data::ChannelDataError),
    /// ChannelData on a channel this client has not bound.
    #[error("ChannelData on unknown channel 0x{0:04x}")]
    UnknownChannel(u16),
    /// A Data indication from a peer the client has no permission for.
    #[error("Data indication from {0}, which has no permission")]
    NoPermission(IpAddr),
    /// A response to no request in flight (late, duplicate or forged).
    #[error("response to an unknown transaction")]
    UnknownTransaction,
    /// A response whose MESSAGE-INTEGRITY is missing or wrong; ignored.
    #[error("response integrity check failed")]
    Integrity,
    /// A message that lacks something it must carry; ignored.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A 401 or 438 the client cannot answer.
    #[error("unusable challenge: {0}")]
    BadChallenge(&'static str),
    /// A STUN message of a class or method a client does not take.
    #[error("unexpected STUN message")]
    Unexpected,
}

/// The allocation as the client knows it.
#[derive(Debug)]
struct AllocationState {
    relayed: SocketAddr,
    mapped: SocketAddr,
    expires: Instant,
    /// When to send the automatic Refresh; `None` while one is in flight or
    /// the allocation is being released.
    refresh_at: Option<Instant>,
    /// LIFETIME to ask for in refreshes.
    lifetime: Option<u32>,
}

/// A permission the client keeps installed.
#[derive(Debug)]
struct Permission {
    installed: bool,
    in_flight: bool,
    refresh_at: Instant,
}

/// A channel the client keeps bound.
#[derive(Debug)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    bound: bool,
    in_flight: bool,
    refresh_at: Instant,
}

/// The TURN client state machine for one server and one allocation.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    rng: StdRng,
    credentials: auth::Credentials,
    transactions: Vec<Transaction>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    allocating: bool,
    allocation: Option<AllocationState>,
    permissions: HashMap<IpAddr, Permission>,
    channels: Vec<Channel>,
    next_channel: u16,
    scratch: Vec<u8>,
}

impl Client {
    /// A client that has sent nothing yet; `seed` feeds transaction ids.
    pub fn new(config: ClientConfig, now: Instant, seed: [u8; 32]) -> Self {
        // No timer runs before the first operation; `now` is taken for
        // symmetry with the server core and for future use.
        let _ = now;
        Client {
            config,
            rng: StdRng::from_seed(seed),
            credentials: auth::Credentials::default(),
            transactions: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            allocating: false,
            allocation: None,
            permissions: HashMap::new(),
            channels: Vec::new(),
            next_channel: MIN_CHANNEL,
            scratch: Vec::with_capacity(2048),
        }
    }

    /// The server address every transmit goes to.
    pub fn server(&self) -> SocketAddr {
        self.config.server
    }

    /// The transport to the server.
    pub fn transport(&self) -> Transport {
        self.config.transport
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.allocation.as_ref().map(|a| a.relayed)
    }

    /// Our address as the server saw it in the Allocate response.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.allocation.as_ref().map(|a| a.mapped)
    }

    /// The password algorithm in use, once the server has challenged us.
    pub fn password_algorithm(&self) -> Option<PasswordAlgorithm> {
        self.credentials.algorithm()
    }

    /// The confirmed channel bound to `peer`.
    pub fn channel_of(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.bound)
            .map(|c| c.number)
    }

    /// True if a permission for `peer` has been confirmed by the server.
    pub fn has_permission(&self, peer: IpAddr) -> bool {
        self.permissions.get(&peer).is_some_and(|p| p.installed)
    }

    /// The next message to send to [`Client::server`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Sends a Binding request (RFC 8489 §7); answered by
    /// [`ClientEvent::Mapped`].
    pub fn binding(&mut self, now: Instant) -> Result<TransactionId, ClientError> {
        self.start(now, Request::Binding, 0)
    }

    /// Sends an Allocate request for a UDP relay with default options.
    pub fn allocate(&mut self, now: Instant) -> Result<TransactionId, ClientError> {
        self.allocate_with(now, AllocateOptions::default())
    }

    /// Sends an Allocate request (RFC 8656 §7.1); the first one is answered
    /// by a 401 that the client answers itself.
    pub fn allocate_with(
        &mut self,
        now: Instant,
        options: AllocateOptions,
    ) -> Result<TransactionId, ClientError> {
        if self.allocating || self.allocation.is_some() {
            return Err(ClientError::AlreadyAllocated);
        }
        let tid = self.start(now, Request::Allocate(options), 0)?;
        self.allocating = true;
        Ok(tid)
    }

    /// Sends a Refresh request (RFC 8656 §7.3) asking for `lifetime`, which
    /// later automatic refreshes ask for too. `Duration::ZERO` deletes the
    /// allocation ([`ClientEvent::Released`]).
    pub fn refresh(
        &mut self,
        now: Instant,
        lifetime: Duration,
    ) -> Result<TransactionId, ClientError> {
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        let a = self.allocation.as_mut().ok_or(ClientError::NoAllocation)?;
        if secs == 0 {
            a.refresh_at = None;
        } else {
            a.lifetime = Some(secs);
        }
        let request = Request::Refresh {
            lifetime: Some(secs),
            automatic: false,
        };
        self.start(now, request, 0)
    }

    /// Sends a CreatePermission request for `peers` (RFC 8656 §9.1); the
    /// permissions are then refreshed every [`PERMISSION_REFRESH`]. If the
    /// server refuses the request (it is all or nothing), the client stops
    /// refreshing every peer it listed.
    pub fn create_permission(
        &mut self,
        now: Instant,
        peers: &[IpAddr],
    ) -> Result<TransactionId, ClientError> {
        if self.allocation.is_none() {
            return Err(ClientError::NoAllocation);
        }
        if peers.is_empty() {
            return Err(ClientError::NoPeers);
        }
        let mut list = Vec::with_capacity(peers.len());
        for ip in peers {
            let p = self.permissions.entry(*ip).or_insert(Permission {
                installed: false,
                in_flight: false,
                refresh_at: now,
            });
            p.in_flight = true;
            if !list.contains(ip) {
                list.push(*ip);
            }
        }
        self.start(now, Request::CreatePermission { peers: list }, 0)
    }

    /// Stops refreshing the permission for `peer`; the server lets it lapse.
    pub fn remove_permission(&mut self, peer: IpAddr) {
        self.permissions.remove(&peer);
    }

    /// Binds a channel to `peer` (RFC 8656 §12.1), or refreshes the one
    /// already bound, and returns its number. Until the server confirms it
    /// ([`ClientEvent::ChannelBound`]), [`Client::send_to`] uses Send
    /// indications. Bound channels are refreshed every [`CHANNEL_REFRESH`],
    /// and the peer's permission every [`PERMISSION_REFRESH`].
    pub fn channel_bind(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, ClientError> {
        if self.allocation.is_none() {
            return Err(ClientError::NoAllocation);
        }
        let channel = match self.channels.iter_mut().find(|c| c.peer == peer) {
            Some(c) => {
                c.in_flight = true;
                c.number
            }
            None => {
                let number = self.free_channel().ok_or(ClientError::NoFreeChannel)?;
                self.channels.push(Channel {
                    number,
                    peer,
                    bound: false,
                    in_flight: true,
                    refresh_at: now,
                });
                number
            }
        };
        self.start(now, Request::ChannelBind { channel, peer }, 0)?;
        Ok(channel)
    }

    /// A channel number no channel uses, going round the range so that a
    /// number is not reused soon after it was given up.
    fn free_channel(&mut self) -> Option<u16> {
        let span = MAX_CHANNEL - MIN_CHANNEL + 1;
        for _ in 0..span {
            let n = self.next_channel;
            self.next_channel = if n >= MAX_CHANNEL { MIN_CHANNEL } else { n + 1 };
            if !self.channels.iter().any(|c| c.number == n) {
                return Some(n);
            }
        }
        None
    }

    /// Frames `payload` for `peer`: ChannelData if a channel to the peer is
    /// confirmed (padded to 4 bytes on stream transports), else a Send
    /// indication (RFC 8656 §11.1, §12.5). The bytes, for
    /// [`Client::server`], borrow an internal buffer.
    ///
    /// The server drops data to peers without a permission; this does not
    /// check, as the client's view of permissions can lag the server's.
    pub fn send_to(&mut self, peer: SocketAddr, payload: &[u8]) -> Result<&[u8], ClientError> {
        if self.allocation.is_none() {
            return Err(ClientError::NoAllocation);
        }
        self.scratch.clear();
        if let Some(channel) = self.channel_of(peer) {
            let len = u16::try_from(payload.len()).map_err(|_| ClientError::PayloadTooLong)?;
            self.scratch
                .extend_from_slice(&ChannelData::header(channel, len));
            self.scratch.extend_from_slice(payload);
            if self.config.transport.is_stream() {
                let padded = self.scratch.len().next_multiple_of(4);
                self.scratch.resize(padded, 0);
            }
            return Ok(&self.scratch);
        }
        let tid = TransactionId(self.rng.random());
        let mut b = MessageBuilder::new(&mut self.scratch, Class::Indication, Method::SEND, tid);
        b.add(&Attribute::XorPeerAddress(peer))?;
        b.add(&Attribute::Data(payload))
            .map_err(|_| ClientError::PayloadTooLong)?;
        Ok(b.finish())
    }

    /// Builds, queues and tracks a request.
    fn start(
        &mut self,
        now: Instant,
        request: Request,
        retries: u8,
    ) -> Result<TransactionId, ClientError> {
        let tid = TransactionId(self.rng.random());
        let mut bytes = Vec::with_capacity(256);
        let mut b = MessageBuilder::new(&mut bytes, Class::Request, request.method(), tid);
        request.add_attributes(&mut b)?;
        if let Some(s) = &self.config.software {
            b.add(&Attribute::Software(s))?;
        }
        let signed = request.authenticated() && self.credentials.sign(&mut b, &self.config)?;
        b.add_fingerprint()?;
        self.transmits.push_back(bytes.clone());
        let reliable = self.config.transport.is_stream();
        self.transactions.push(Transaction::new(
            tid, request, bytes, signed, retries, now, reliable,
        ));
        Ok(tid)
    }
}
