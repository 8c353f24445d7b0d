//! Sans-IO TURN cores (RFC 8656, RFC 6156): the server's allocations,
//! permissions, channels, authentication and peer policy, and a client.
//!
//! Nothing here owns a socket or reads a clock: packets come in as bytes with
//! their addresses, time comes in as [`std::time::Instant`], and what to send
//! comes out. Counters ([`ServerStats`]) are plain integers the core keeps
//! and copies out on request.

pub mod allocation;
pub mod auth;
pub mod channel_data;
pub mod client;
pub mod credentials;
pub mod ledger;
pub mod nonce;
pub mod policy;
pub mod rate_limit;
pub mod server;
pub mod stats;

pub use server::{
    ClientSend, Event, FiveTuple, OffloadChannel, OffloadReport, PEER_HEADROOM, PEER_TAILROOM,
    PeerSend, RelaySockets, Server, ServerConfig, Transmit, Transport,
};
pub use stats::{DropReason, ServerStats};
