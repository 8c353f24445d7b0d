//! TURN connections accepted elsewhere (the shared HTTPS port) and handed
//! to a worker.
//!
//! The HTTP server runs on the main runtime; a worker's core lives on the
//! worker's own thread. A TLS connection found to speak TURN moves whole:
//! its socket leaves the main runtime's reactor ([`MovableTcp::detach`]),
//! crosses to the worker with the TLS session and the bytes already read,
//! and joins the worker's reactor ([`MovableTcp::attach`]). From then on
//! its packets never cross threads, like those of the worker's own
//! listeners.

use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// Connections waiting for one worker before further ones are refused.
const QUEUE: usize = 256;

/// A TCP stream that can leave one runtime and join another.
#[derive(Debug)]
pub enum MovableTcp {
    /// Registered with the current runtime's reactor.
    Attached(tokio::net::TcpStream),
    /// In transit, registered with none.
    Detached(std::net::TcpStream),
    /// Lost in a failed move.
    Closed,
}

impl MovableTcp {
    /// Leaves the current runtime (in non-blocking mode, ready to join another).
    pub fn detach(&mut self) -> io::Result<()> {
        match std::mem::replace(self, MovableTcp::Closed) {
            MovableTcp::Attached(s) => *self = MovableTcp::Detached(s.into_std()?),
            other => *self = other,
        }
        Ok(())
    }

    /// Joins the runtime this is called from.
    pub fn attach(&mut self) -> io::Result<()> {
        match std::mem::replace(self, MovableTcp::Closed) {
            MovableTcp::Detached(s) => {
                *self = MovableTcp::Attached(tokio::net::TcpStream::from_std(s)?)
            }
            other => *self = other,
        }
        Ok(())
    }

    fn attached(&mut self) -> io::Result<Pin<&mut tokio::net::TcpStream>> {
        match self {
            MovableTcp::Attached(s) => Ok(Pin::new(s)),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for MovableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().attached() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for MovableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().attached() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().attached() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().attached() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A TLS connection on a [`MovableTcp`].
pub type TlsConnection = TlsStream<MovableTcp>;

/// A TURN connection on its way to a worker.
pub struct HandedOff {
    /// The established TLS session on a detached socket.
    pub stream: TlsConnection,
    /// The client's address.
    pub client: SocketAddr,
    /// The address the client connected to.
    pub server: SocketAddr,
    /// Decrypted bytes already read from the stream.
    pub prefix: Vec<u8>,
}

/// The way into the workers, for connections accepted outside them.
#[derive(Clone)]
pub struct Handoff {
    workers: Arc<[mpsc::Sender<HandedOff>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Handoff {
    pub(super) fn new(workers: Vec<mpsc::Sender<HandedOff>>) -> Self {
        Handoff {
            workers: workers.into(),
            hasher: Default::default(),
        }
    }

    /// Moves a TURN connection to the worker its client's address hashes
    /// to. Fails (and the connection closes) if that worker is swamped.
    pub fn send(
        &self,
        mut stream: TlsConnection,
        client: SocketAddr,
        server: SocketAddr,
        prefix: Vec<u8>,
    ) -> io::Result<()> {
        stream.get_mut().0.detach()?;
        let n = self.workers.len().max(1) as u64;
        let i = usize::try_from(self.hasher.hash_one(client) % n).unwrap_or(0);
        let worker = self.workers.get(i).ok_or(io::ErrorKind::NotConnected)?;
        worker
            .try_send(HandedOff {
                stream,
                client,
                server,
                prefix,
            })
            .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, "TURN worker queue full"))
    }
}

/// A worker's end of the handoff queue.
pub(super) fn channel() -> (mpsc::Sender<HandedOff>, mpsc::Receiver<HandedOff>) {
    mpsc::channel(QUEUE)
}
