//! The worker's sockets, below the worker: they know nothing of it or of
//! the core, only how to bind, read and send.
//!
//! (Binding and the IPv4-mapped → IPv4 rule are `crate::socket_bind`,
//! shared with the SFU's socket.)
//! - [`client_socket`]: the UDP socket clients reach.
//! - [`relays`]: the relay sockets and binding them for the core.
//! - [`relay_poll`]: the epoll instance and receive slots they share.
//! - [`gso`]: where GSO trains ([`crate::udp_gso`]) leave from.

pub(crate) mod client_socket;
pub(crate) mod gso;
pub(crate) mod relay_poll;
pub(crate) mod relays;

/// Largest UDP payload.
pub(crate) const MAX_DATAGRAM: usize = 65_535;
