//! Reads the client UDP socket: one recvmmsg (up to quinn-udp's batch, GRO
//! trains split by their stride) is one input batch for the worker.

use std::io::{self, IoSliceMut};
use std::rc::Rc;
use std::time::Instant;

use quinn_udp::RecvMeta;

use super::SharedWorker;
use crate::turn_server::socket::MAX_DATAGRAM;
use crate::turn_server::socket::client_socket::ClientSocket;

/// Reads `socket` forever.
pub(crate) async fn read(worker: SharedWorker, socket: Rc<ClientSocket>) {
    let batch = quinn_udp::BATCH_SIZE.max(1);
    // Each slot holds one datagram or one GRO train of up to 64 KiB.
    let mut storage = vec![0u8; batch * MAX_DATAGRAM];
    // Built once: datagrams are read back through the same slices, so the
    // receive loop allocates nothing.
    let mut bufs: Vec<IoSliceMut<'_>> = storage
        .chunks_mut(MAX_DATAGRAM)
        .map(IoSliceMut::new)
        .collect();
    let mut meta = vec![RecvMeta::default(); batch];
    loop {
        let Ok(mut guard) = socket.readable().await else {
            continue;
        };
        let n = match socket.recv(&mut bufs, &mut meta) {
            Ok(n) => {
                if n < batch {
                    // recvmmsg stopped short: the queue is empty. Saying so
                    // now clears tokio's readiness (a datagram arriving
                    // meanwhile raises it again), so the next turn waits in
                    // epoll instead of calling recvmmsg once more for EAGAIN.
                    guard.clear_ready();
                }
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                guard.clear_ready();
                continue;
            }
            Err(_) => continue,
        };
        drop(guard);
        let now = Instant::now();
        let mut w = worker.borrow_mut();
        for (m, buf) in meta.iter().zip(bufs.iter()).take(n) {
            let from = socket.five_tuple(m);
            let data = buf.get(..m.len).unwrap_or(&[]);
            for datagram in data.chunks(m.stride.max(1)) {
                w.client_message(now, from, datagram);
            }
        }
        w.flush();
    }
}
