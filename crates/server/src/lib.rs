//! Switchboard's server: the parts the `switchboard` binary (`main.rs`)
//! puts together, as a library so integration tests drive the same code.
//!
//! - [`config`]: flags, environment and TOML file.
//! - [`turn_server`]: the STUN/TURN socket driver around the sans-IO
//!   `turn` core (UDP, TCP, TLS; one worker per core).
//! - [`http`]: web app, signaling WebSocket and ICE server API over HTTP(S),
//!   and the shared TLS port.
//! - [`invite`]: the `switchboard invite` subcommand's links.
//! - [`metrics`]: Prometheus export of the cores' and drivers' counters, `/healthz`, `/readyz`.
//! - [`per_address`]: connections per client address (WebSocket and TURN TCP/TLS).
//! - [`tls`]: certificates, their reload, and telling TURN from HTTP.
//! - [`sfu_server`]: the SFU's UDP driver around the sans-IO `sfu` core.
//! - `udp_gso`: GSO trains, for the TURN workers and the SFU.
//! - `socket_bind`: binding UDP/TCP listeners (dual stack, SO_REUSEPORT) and
//!   the IPv4-mapped → IPv4 rule at every socket boundary.

pub mod cluster;
pub mod config;
pub mod http;
pub mod invite;
pub mod metrics;
pub mod peer_cli;
pub mod per_address;
pub mod sfu_server;
pub(crate) mod socket_bind;
pub mod tls;
pub mod turn_server;
pub(crate) mod udp_gso;
