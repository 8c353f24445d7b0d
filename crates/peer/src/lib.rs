//! A native WebRTC peer for Switchboard rooms, sans-IO.
//!
//! It joins a room like the browser app does and talks to the app (or to
//! another native peer) over the app's data channels — chat (id 0), files
//! (id 1), and, between native peers, a pipe (id 2) — as written down in
//! `docs/protocol.md`. WebRTC itself is str0m's (ICE RFC 8445, DTLS, SCTP
//! data channels RFC 8831/8832); relayed candidates come from `turn`'s
//! client core (RFC 8656), which str0m lacks.
//!
//! [`Session`] is the core: signaling messages, datagrams, stream bytes and
//! time in; signaling messages, transmits and events out.

pub mod candidate;
pub mod files;
pub mod ice_servers;
mod link;
mod relay;
mod session;

#[cfg(feature = "driver")]
pub mod driver;

pub use link::{CONNECT_TIMEOUT, DISCONNECT_GRACE, LinkEvent, MAX_RESTARTS};
pub use relay::Via;
pub use session::{Event, IDLE, Session, SessionConfig, SessionStats, Transmit};

/// The app's data channels, negotiated out of band on fixed ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Chat: JSON `{"text": …}` messages, id 0.
    Chat,
    /// File transfer (the wire of `web/js/files.js`), id 1.
    File,
    /// A byte pipe between native peers, id 2 (the app does not open it).
    Pipe,
}

impl Channel {
    /// The SCTP stream id.
    pub fn id(self) -> u16 {
        match self {
            Channel::Chat => 0,
            Channel::File => 1,
            Channel::Pipe => 2,
        }
    }

    /// The channel label.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Chat => "chat",
            Channel::File => "file",
            Channel::Pipe => "pipe",
        }
    }
}

pub mod chat;
