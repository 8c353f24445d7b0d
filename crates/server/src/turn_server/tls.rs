//! TURN over TLS (RFC 8656 §3.1): the `--turns-listen` port, where every
//! connection speaks TURN, and connections handed over from the shared
//! HTTPS port (see `handoff.rs`). After the handshake both run the stream
//! connection loop of `tcp.rs` on the decrypted bytes, with
//! [`Transport::Tls`] in their 5-tuple.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use turn::{FiveTuple, Transport};

use super::handoff::{HandedOff, MovableTcp};
use super::tcp::{ConnectionSlot, connection};
use super::worker::Worker;
use crate::tls::Tls;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TURN-over-TLS connections on this worker's `--turns-listen` socket.
pub(super) async fn serve(worker: Rc<Worker>, listener: TcpListener, tls: Arc<Tls>) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("TURN/TLS accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = ConnectionSlot::take(&worker, client.ip()) else {
            tracing::debug!(%client, "TURN/TLS connection refused: too many from this IP");
            continue;
        };
        let Ok(server) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (worker, tls) = (worker.clone(), tls.clone());
        tokio::task::spawn_local(async move {
            let handshake = tls.accept(MovableTcp::Attached(stream), false);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok((stream, _alpn))) => {
                    let ft = FiveTuple {
                        transport: Transport::Tls,
                        client,
                        server,
                    };
                    let (rd, wr) = tokio::io::split(stream);
                    connection(worker, rd, wr, ft, Vec::new()).await;
                }
                Ok(Err(e)) => tracing::debug!(%client, "TURN/TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%client, "TURN/TLS handshake timed out"),
            }
            drop(slot);
        });
    }
}

/// Serves the TURN connections the HTTPS port hands to this worker.
pub(super) async fn receive(worker: Rc<Worker>, mut handed: mpsc::Receiver<HandedOff>) {
    while let Some(HandedOff {
        mut stream,
        client,
        server,
        prefix,
    }) = handed.recv().await
    {
        if let Err(e) = stream.get_mut().0.attach() {
            tracing::warn!(%client, "TURN/TLS connection lost moving to its worker: {e}");
            continue;
        }
        let Some(slot) = ConnectionSlot::take(&worker, client.ip()) else {
            tracing::debug!(%client, "TURN/TLS connection refused: too many from this IP");
            continue;
        };
        let worker = worker.clone();
        tokio::task::spawn_local(async move {
            let ft = FiveTuple {
                transport: Transport::Tls,
                client,
                server,
            };
            let (rd, wr) = tokio::io::split(stream);
            connection(worker, rd, wr, ft, prefix).await;
            drop(slot);
        });
    }
}
