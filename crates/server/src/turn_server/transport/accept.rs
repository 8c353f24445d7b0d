//! Stream connections in: the `--turn-listen` TCP listener, the
//! `--turns-listen` TLS listener (RFC 8656 §3.1; the handshake runs here),
//! and TURN-over-TLS connections the shared HTTPS port hands to this worker
//! (`handoff.rs`). Each takes a slot of the per-address connection limit
//! (`--max-tcp-per-ip`, counted as `crate::per_address` counts: IPv4-mapped
//! as IPv4, IPv6 per /64), gets IPv4 addresses when its client is IPv4, and
//! runs [`stream::serve`].

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use turn::{FiveTuple, Transport};

use super::{SharedWorker, stream};
use crate::per_address::{ConnectionsPerIp, IpSlot};
use crate::socket_bind::canonical;
use crate::tls::Tls;
use crate::turn_server::handoff::{HandedOff, MovableTcp};

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every stream connection of the process is held to.
#[derive(Clone)]
pub(crate) struct StreamRules {
    /// Connections per client address, across workers and listeners.
    pub(crate) per_ip: Arc<ConnectionsPerIp>,
    /// `--tcp-idle-timeout`.
    pub(crate) idle: Duration,
}

impl StreamRules {
    /// A slot for a connection from `client`, or `None` (counted, logged).
    fn slot(
        &self,
        worker: &SharedWorker,
        client: std::net::SocketAddr,
        what: &str,
    ) -> Option<IpSlot> {
        let slot = self.per_ip.try_acquire(client.ip());
        if slot.is_none() {
            worker.borrow_mut().refused_per_ip();
            tracing::debug!(%client, "{what} connection refused: too many from this address");
        }
        slot
    }
}

/// Waits for the next connection on `listener` that the per-address rule
/// admits: the stream, its 5-tuple (IPv4-mapped addresses unwrapped) and
/// its slot.
async fn next_admitted(
    worker: &SharedWorker,
    listener: &TcpListener,
    rules: &StreamRules,
    transport: Transport,
    what: &str,
) -> (TcpStream, FiveTuple, IpSlot) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        worker.borrow_mut().stream_accepted();
        let (Ok(client), Ok(server)) = (stream.peer_addr(), stream.local_addr()) else {
            continue;
        };
        let ft = FiveTuple {
            transport,
            client: canonical(client),
            server: canonical(server),
        };
        let Some(slot) = rules.slot(worker, ft.client, what) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        return (stream, ft, slot);
    }
}

/// Accepts TURN-over-TCP connections on this worker's `--turn-listen` socket.
pub(crate) async fn tcp(worker: SharedWorker, listener: TcpListener, rules: StreamRules) {
    loop {
        let (stream, ft, slot) =
            next_admitted(&worker, &listener, &rules, Transport::Tcp, "TURN/TCP").await;
        let (worker, idle) = (worker.clone(), rules.idle);
        tokio::task::spawn_local(async move {
            let (rd, wr) = stream.into_split();
            stream::serve(worker, rd, wr, ft, Vec::new(), idle).await;
            drop(slot);
        });
    }
}

/// Accepts TURN-over-TLS connections on this worker's `--turns-listen` socket.
pub(crate) async fn tls(
    worker: SharedWorker,
    listener: TcpListener,
    tls: Arc<Tls>,
    rules: StreamRules,
) {
    loop {
        let (stream, ft, slot) =
            next_admitted(&worker, &listener, &rules, Transport::Tls, "TURN/TLS").await;
        let (worker, tls, idle) = (worker.clone(), tls.clone(), rules.idle);
        tokio::task::spawn_local(async move {
            let handshake = tls.accept(MovableTcp::Attached(stream), false);
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
            worker
                .borrow_mut()
                .tls_handshake(matches!(result, Ok(Ok(_))));
            match result {
                Ok(Ok((stream, _alpn))) => {
                    let (rd, wr) = tokio::io::split(stream);
                    stream::serve(worker, rd, wr, ft, Vec::new(), idle).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(client = %ft.client, "TURN/TLS handshake failed: {e}")
                }
                Err(_) => tracing::debug!(client = %ft.client, "TURN/TLS handshake timed out"),
            }
            drop(slot);
        });
    }
}

/// Serves the TURN connections the HTTPS port hands to this worker.
pub(crate) async fn handed_over(
    worker: SharedWorker,
    mut handed: mpsc::Receiver<HandedOff>,
    rules: StreamRules,
) {
    while let Some(HandedOff {
        mut stream,
        client,
        server,
        prefix,
    }) = handed.recv().await
    {
        let ft = FiveTuple {
            transport: Transport::Tls,
            client: canonical(client),
            server: canonical(server),
        };
        if let Err(e) = stream.get_mut().0.attach() {
            tracing::warn!(client = %ft.client, "TURN/TLS connection lost moving to its worker: {e}");
            continue;
        }
        worker.borrow_mut().handed_over();
        let Some(slot) = rules.slot(&worker, ft.client, "TURN/TLS") else {
            continue;
        };
        let (worker, idle) = (worker.clone(), rules.idle);
        tokio::task::spawn_local(async move {
            let (rd, wr) = tokio::io::split(stream);
            stream::serve(worker, rd, wr, ft, prefix, idle).await;
            drop(slot);
        });
    }
}
