//! Switchboard's signaling room hub, sans-IO.
//!
//! Browsers join a room (named by the id in the page URL) over a WebSocket and
//! exchange offers, answers, ICE candidates and application messages with the
//! other peers of that room. This crate holds the rules — protocol parsing,
//! rooms, limits, heartbeats — and no IO: the driver (`crates/server/src/http`)
//! feeds it events with the current time and sends what [`Hub::poll_output`]
//! returns. The same hub can later sit behind a bus shared by many nodes.
//!
//! The wire protocol is documented in `docs/protocol.md`.

mod error;
mod hub;
mod limit;
mod protocol;
pub mod token;

pub use error::{ErrorCode, SignalError};
pub use hub::{
    Admission, ClusterOutput, ConnId, Hub, HubConfig, HubStats, JoinTicket, Output, RESYNC_GRACE,
    RoomLimits, SfuCommand, SfuPolicy, password_hash,
};
pub use limit::{RateLimit, TokenBucket};
pub use protocol::{
    ClientMessage, IceServer, IceServers, LeaveReason, MAX_NAME_CHARS, MAX_NODE_ID_LEN,
    MAX_ROOM_LEN, MAX_VIEW_WIDTH, Member, NodeId, NodeMessage, NodeMessageError, PROTOCOL_VERSION,
    PeerId, PeerInfo, RawData, RelayKind, RoomMode, ServerMessage, SfuRequest, SharedIceServer,
    TurnCredential, check_name, check_room, parse_client_message, parse_node_message,
    parse_server_message,
};
