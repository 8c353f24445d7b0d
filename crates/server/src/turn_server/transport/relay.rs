//! Reads the relay sockets: waits for the worker's relay epoll, then reads
//! each ready socket once per round (one recvmmsg into the shared slots).
//! A round is one input batch for the worker. Edge-triggered: a socket
//! whose read filled every slot stays on the list for the next round; a
//! shorter read emptied it, and epoll reports it again when data arrives.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::unix::AsyncFd;

use super::SharedWorker;
use crate::turn_server::socket::client_socket::ClientSocket;
use crate::turn_server::socket::relay_poll::{PeerSlots, RelayPoll};

/// Reads the worker's relay sockets forever. `socket`: whose UDP state
/// (GRO capabilities) the relay sockets share.
pub(crate) async fn read(worker: SharedWorker, poll: AsyncFd<RelayPoll>, socket: Rc<ClientSocket>) {
    let mut ready: Vec<SocketAddr> = Vec::new();
    let mut slots = PeerSlots::new();
    loop {
        if ready.is_empty() {
            let Ok(mut guard) = poll.readable().await else {
                return;
            };
            let drained = guard
                .get_ref()
                .get_ref()
                .collect(worker.borrow().relays(), &mut ready);
            if drained {
                // Events after this poll raise tokio's readiness again.
                guard.clear_ready();
            }
        } else {
            // Sockets still have data: let the other loops run, then take
            // any new events and go on.
            tokio::task::yield_now().await;
            poll.get_ref().collect(worker.borrow().relays(), &mut ready);
        }
        let now = Instant::now();
        let mut w = worker.borrow_mut();
        ready.retain(|&local| {
            let Some(relay) = w.relays().get(local) else {
                return false;
            };
            let Ok((n, full)) = slots.read(socket.state(), relay) else {
                return false;
            };
            for (slot, peer, len) in slots.filled(n) {
                w.peer_datagram(now, local, peer, slot, len);
            }
            full
        });
        w.flush();
    }
}
