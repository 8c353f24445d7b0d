//! One STUN or TURN server as the peer uses it: a `turn` client core with
//! the transport that reaches the server (a UDP host socket, or a TCP
//! stream cut into frames, RFC 8656 §11.5).
//!
//! str0m has no TURN client. A relayed candidate is the allocation's
//! XOR-RELAYED-ADDRESS; str0m's transmits from that address go out through
//! the allocation (a channel per remote address, bound on first use, Send
//! indications until it is), and peer data from the allocation goes back
//! to str0m with that address as its destination.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use turn::client::{Client, ClientConfig, ClientEvent, FrameBuffer, PeerData, Transport};

use crate::ice_servers::UrlKind;

/// How a leg reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Datagrams from this host socket.
    Udp(SocketAddr),
    /// A TCP stream the driver opens to the server on the first transmit.
    Stream,
}

/// One server and what we have on it.
#[derive(Debug)]
pub(crate) struct Leg {
    pub(crate) kind: UrlKind,
    pub(crate) server: SocketAddr,
    pub(crate) via: Via,
    client: Client,
    frames: FrameBuffer,
    relayed: Option<SocketAddr>,
    bound: HashSet<SocketAddr>,
    done: bool,
}

/// What a leg learned, for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LegEvent {
    /// Our address as the server sees it, from `base`.
    Mapped { mapped: SocketAddr },
    /// A relayed address to offer as a candidate.
    Relayed {
        relayed: SocketAddr,
        mapped: SocketAddr,
    },
    /// The server refused or never answered; the leg is of no more use.
    Failed { reason: String },
    /// The allocation is gone.
    Lost,
}

impl Leg {
    /// A leg that starts at once: a Binding for STUN, an Allocate for TURN.
    pub(crate) fn start(
        kind: UrlKind,
        server: SocketAddr,
        via: Via,
        username: &str,
        password: &str,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        let transport = match via {
            Via::Udp(_) => Transport::Udp,
            Via::Stream => Transport::Tcp,
        };
        let mut config = ClientConfig::new(server, username, password, transport);
        config.software = Some(concat!("switchboard-peer ", env!("CARGO_PKG_VERSION")).into());
        let mut client = Client::new(config, now, seed);
        // Neither can fail on a fresh client: no allocation exists yet.
        let _ = match kind {
            UrlKind::Stun => client.binding(now).map(|_| ()),
            UrlKind::TurnUdp | UrlKind::TurnTcp => client.allocate(now).map(|_| ()),
        };
        Leg {
            kind,
            server,
            via,
            client,
            frames: FrameBuffer::default(),
            relayed: None,
            bound: HashSet::new(),
            done: false,
        }
    }

    /// The relayed address, once allocated.
    pub(crate) fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// Bytes to send to [`Leg::server`].
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.client.poll_transmit()
    }

    /// When [`Leg::handle_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        self.client.poll_timeout()
    }

    /// Retransmissions and refreshes.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if !self.done {
            self.client.handle_timeout(now);
        }
    }

    /// A datagram from the server; peer data is returned, borrowing it.
    pub(crate) fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        packet: &'a [u8],
    ) -> Option<PeerData<'a>> {
        match self.client.handle_input(now, packet) {
            Ok(data) => data,
            Err(e) => {
                tracing::debug!(server = %self.server, "ignored from TURN server: {e}");
                None
            }
        }
    }

    /// Bytes read from the stream to the server.
    pub(crate) fn push_stream(&mut self, bytes: &[u8]) {
        self.frames.push(bytes);
    }

    /// The next frame of the stream, handled: `Err` closes the stream,
    /// `Ok(None)` means more bytes are needed, `Ok(Some(x))` is the
    /// frame's peer data (`x` is `None` for a response).
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_stream_frame(
        &mut self,
        now: Instant,
    ) -> Result<Option<Option<PeerData<'_>>>, String> {
        let frame = match self.frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        match self.client.handle_input(now, frame) {
            Ok(data) => Ok(Some(data)),
            Err(e) => {
                tracing::debug!(server = %self.server, "ignored from TURN server: {e}");
                Ok(Some(None))
            }
        }
    }

    /// What happened, in order.
    pub(crate) fn poll_event(&mut self) -> Option<LegEvent> {
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::Mapped { mapped } => {
                    self.done = true;
                    return Some(LegEvent::Mapped { mapped });
                }
                ClientEvent::Allocated {
                    relayed, mapped, ..
                } => {
                    self.relayed = Some(relayed);
                    return Some(LegEvent::Relayed { relayed, mapped });
                }
                ClientEvent::Failed {
                    method,
                    code,
                    reason,
                } => {
                    if self.relayed.is_none() {
                        self.done = true;
                        return Some(LegEvent::Failed {
                            reason: format!("{method:?} refused: {code} {reason}"),
                        });
                    }
                    tracing::debug!(server = %self.server, "TURN {method:?} refused: {code} {reason}");
                }
                ClientEvent::TimedOut { method } => {
                    if self.relayed.is_none() {
                        self.done = true;
                        return Some(LegEvent::Failed {
                            reason: format!("no answer to {method:?}"),
                        });
                    }
                    tracing::debug!(server = %self.server, "TURN {method:?} timed out");
                }
                ClientEvent::Expired | ClientEvent::Released => {
                    self.relayed = None;
                    self.done = true;
                    return Some(LegEvent::Lost);
                }
                ClientEvent::Refreshed { .. }
                | ClientEvent::PermissionCreated { .. }
                | ClientEvent::ChannelBound { .. } => {}
            }
        }
        None
    }

    /// The stream to the server closed: nothing more goes through it.
    pub(crate) fn stream_closed(&mut self) -> bool {
        let had = self.relayed.take().is_some();
        self.done = true;
        had
    }

    /// Frames `payload` for `peer` through the allocation, binding a
    /// channel (and so a permission) to `peer` on first use.
    pub(crate) fn send(&mut self, now: Instant, peer: SocketAddr, payload: &[u8]) -> Option<&[u8]> {
        self.relayed?;
        if self.bound.insert(peer) {
            if let Err(e) = self.client.channel_bind(now, peer) {
                tracing::debug!(%peer, "no channel: {e}");
            }
        }
        self.client.send_to(peer, payload).ok()
    }
}
