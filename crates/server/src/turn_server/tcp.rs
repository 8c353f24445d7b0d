//! TCP: clients speak STUN and ChannelData over a stream, framed as
//! RFC 8656 §11.5 says (STUN by its length; ChannelData padded to 4 bytes).
//! The allocation of a connection ends with it. The same connection loop
//! serves TURN over TLS (see `tls.rs`) on the decrypted stream.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use turn::channel_data::frame_len;
use turn::{FiveTuple, Transport};

use super::worker::Worker;

/// Frames queued for one slow client before further ones are dropped.
const WRITE_QUEUE: usize = 256;

pub(super) async fn serve(worker: Rc<Worker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(slot) = ConnectionSlot::take(&worker, peer.ip()) else {
                    tracing::debug!(%peer, "TCP connection refused: too many from this IP");
                    continue;
                };
                let worker = worker.clone();
                tokio::task::spawn_local(async move {
                    let (Ok(client), Ok(server)) = (stream.peer_addr(), stream.local_addr()) else {
                        return;
                    };
                    let _ = stream.set_nodelay(true);
                    let ft = FiveTuple {
                        transport: Transport::Tcp,
                        client,
                        server,
                    };
                    let (rd, wr) = stream.into_split();
                    connection(worker, rd, wr, ft, Vec::new()).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!("TCP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One of the per-IP connection slots, given back on drop.
pub(super) struct ConnectionSlot {
    counts: super::TcpCounts,
    ip: IpAddr,
}

impl ConnectionSlot {
    pub(super) fn take(worker: &Worker, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut counts = worker.tcp_counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= worker.limits.max_tcp_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: worker.tcp_counts.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves one stream connection until it closes or idles out. `initial`:
/// bytes already read from it (by the TLS port's protocol check).
pub(super) async fn connection<R, W>(
    worker: Rc<Worker>,
    mut rd: R,
    mut wr: W,
    ft: FiveTuple,
    initial: Vec<u8>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let client = ft.client;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    worker.shared().tcp.insert(ft, tx);
    let writer = tokio::task::spawn_local(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
            // Write what else is queued, then flush once (a TLS record
            // per batch, not per frame).
            while let Ok(frame) = rx.try_recv() {
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
            if wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });

    let mut filled = initial.len();
    let mut buf = initial;
    buf.resize(filled.max(4096), 0);
    let mut last_frame = Instant::now();
    let idle = worker.limits.tcp_idle_timeout;
    loop {
        match frames(&worker, ft, &mut buf, &mut filled) {
            Frames::Some => last_frame = Instant::now(),
            Frames::None => {}
            Frames::Malformed => break,
        }
        if filled == buf.len() {
            // frame_len bounds a frame to 64 KiB + 20, so this stays bounded.
            buf.resize(buf.len() * 2, 0);
        }
        let Some(room) = buf.get_mut(filled..) else {
            break;
        };
        let deadline = last_frame + idle;
        match tokio::time::timeout_at(deadline.into(), rd.read(room)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => filled += n,
            Err(_) => {
                // Idle: fine while an allocation lives (its refreshes will come).
                if worker.shared().core.has_allocation(&ft, Instant::now()) {
                    last_frame = Instant::now();
                    continue;
                }
                tracing::debug!(%client, "closing idle TURN stream connection");
                break;
            }
        }
    }
    let mut shared = worker.shared();
    shared.tcp.remove(&ft);
    shared.core.client_disconnected(&ft);
    worker.flush(&mut shared);
    drop(shared);
    writer.abort();
}

/// What [`frames`] found.
enum Frames {
    /// At least one complete message, handled.
    Some,
    /// No complete message yet.
    None,
    /// Bytes that are neither STUN nor ChannelData: the stream is lost.
    Malformed,
}

/// Handles the complete messages in `buf[..filled]` and moves the rest to
/// the front.
fn frames(worker: &Rc<Worker>, ft: FiveTuple, buf: &mut [u8], filled: &mut usize) -> Frames {
    if *filled == 0 {
        return Frames::None;
    }
    let now = Instant::now();
    let mut start = 0;
    let mut found = Frames::None;
    let mut shared = worker.shared();
    loop {
        let Some(pending) = buf.get(start..*filled) else {
            found = Frames::Malformed;
            break;
        };
        match frame_len(pending) {
            Ok(Some(len)) => {
                if let Some(frame) = pending.get(..len) {
                    worker.client_packet(&mut shared, now, ft, frame);
                }
                start += len;
                found = Frames::Some;
            }
            Ok(None) => break,
            Err(_) => {
                found = Frames::Malformed;
                break;
            }
        }
    }
    worker.flush(&mut shared);
    drop(shared);
    if start > 0 {
        buf.copy_within(start..*filled, 0);
        *filled -= start;
    }
    found
}
