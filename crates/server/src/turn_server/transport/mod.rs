//! The read loops, above the worker: each waits for its sockets, reads, and
//! hands the worker what it read. None calls the core.
//!
//! - [`udp`]: the client UDP socket (recvmmsg batches).
//! - [`relay`]: the relay sockets (epoll, one recvmmsg per ready socket).
//! - [`accept`]: TCP and TLS listeners, connections handed over from the
//!   HTTPS port, the per-address connection limit.
//! - [`stream`]: one stream connection (TCP or decrypted TLS): frames in,
//!   its write queue out.

pub(crate) mod accept;
pub(crate) mod relay;
pub(crate) mod stream;
pub(crate) mod udp;

use std::cell::RefCell;
use std::rc::Rc;

use super::worker::Worker;

/// The worker, as the read loops of its thread share it.
pub(crate) type SharedWorker = Rc<RefCell<Worker>>;
