//! HTTPS/WSS, and the shared port: browsers grant camera and microphone
//! only on HTTPS (or localhost), and restrictive networks often let only
//! TCP 443 out. Each connection's TLS handshake runs here; then its ALPN
//! offer or first bytes ([`crate::tls::demux`]) say whether it is HTTP,
//! served by axum, or TURN, handed whole to a TURN worker.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use super::ClientAddr;
use crate::tls::demux::{self, Prefixed, Protocol};
use crate::tls::{Alpn, Tls};
use crate::turn_server::TLS_HANDSHAKE_TIMEOUT;
use crate::turn_server::handoff::{Handoff, MovableTcp, TlsConnection};

/// Handshakes in progress at once; connections beyond wait in the kernel's
/// accept queue.
const MAX_HANDSHAKES: usize = 1024;

/// An HTTP connection after its handshake and protocol check.
pub type HttpsStream = Prefixed<TlsConnection>;

/// The HTTP connections of the TLS port, for axum.
pub struct HttpsListener {
    local: SocketAddr,
    accepted: mpsc::Receiver<(HttpsStream, SocketAddr)>,
}

impl axum::serve::Listener for HttpsListener {
    type Io = HttpsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped: no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Serves HTTPS (and, with `turn`, TURN over TLS) on `listener` until
/// `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<Tls>,
    turn: Option<Handoff>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let (tx, accepted) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, tls, turn, tx));
    axum::serve(
        HttpsListener { local, accepted },
        // The client's address is needed to count its WebSockets.
        router.into_make_service_with_connect_info::<ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .with_context(|| format!("serving HTTPS on {local}"))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<Tls>,
    turn: Option<Handoff>,
    http: mpsc::Sender<(HttpsStream, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            p = handshakes.clone().acquire_owned() => p,
            () = http.closed() => return,
        };
        let Ok(permit) = permit else { return };
        let (stream, client) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("HTTPS accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = http.closed() => return,
        };
        let Ok(server) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, turn, http) = (tls.clone(), turn.clone(), http.clone());
        tokio::spawn(async move {
            let accepted = tokio::time::timeout(
                TLS_HANDSHAKE_TIMEOUT,
                handshake(&tls, MovableTcp::Attached(stream), turn.is_some()),
            )
            .await;
            drop(permit);
            let (stream, protocol, prefix) = match accepted {
                Ok(Ok(accepted)) => accepted,
                Ok(Err(e)) => return tracing::debug!(%client, "TLS handshake failed: {e}"),
                Err(_) => return tracing::debug!(%client, "TLS handshake timed out"),
            };
            match (protocol, turn) {
                (Protocol::Turn, Some(turn)) => {
                    if let Err(e) = turn.send(stream, client, server, prefix) {
                        tracing::debug!(%client, "TURN/TLS connection dropped: {e}");
                    }
                }
                _ => {
                    let _ = http.send((Prefixed::new(prefix, stream), client)).await;
                }
            }
        });
    }
}

/// The handshake and the protocol check. Without TURN sharing every
/// connection is HTTP and nothing is read ahead.
async fn handshake(
    tls: &Tls,
    stream: MovableTcp,
    share_turn: bool,
) -> io::Result<(TlsConnection, Protocol, Vec<u8>)> {
    let (mut stream, alpn) = tls.accept(stream, true).await?;
    let (protocol, prefix) = match alpn {
        Alpn::Http => (Protocol::Http, Vec::new()),
        Alpn::Turn if share_turn => (Protocol::Turn, Vec::new()),
        Alpn::Turn => return Err(io::Error::other("TURN is not served on this port")),
        Alpn::None if share_turn => demux::sniff(&mut stream).await?,
        Alpn::None => (Protocol::Http, Vec::new()),
    };
    Ok((stream, protocol, prefix))
}
