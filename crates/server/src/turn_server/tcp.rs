//! TCP: clients speak STUN and ChannelData over a stream, framed as
//! RFC 8656 §11.5 says (STUN by its length; ChannelData padded to 4 bytes).
//! The allocation of a connection ends with it.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
                    connection(worker, stream).await;
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
struct ConnectionSlot {
    counts: super::TcpCounts,
    ip: IpAddr,
}

impl ConnectionSlot {
    fn take(worker: &Worker, ip: IpAddr) -> Option<ConnectionSlot> {
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

async fn connection(worker: Rc<Worker>, stream: TcpStream) {
    let (Ok(client), Ok(server)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let ft = FiveTuple {
        transport: Transport::Tcp,
        client,
        server,
    };
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    worker.shared().tcp.insert(ft, tx);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });

    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let idle = worker.limits.tcp_idle_timeout;
    let mut last_frame = Instant::now();
    'read: loop {
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
                tracing::debug!(%client, "closing idle TURN TCP connection");
                break;
            }
        }
        let now = Instant::now();
        let mut start = 0;
        let mut shared = worker.shared();
        loop {
            let Some(pending) = buf.get(start..filled) else {
                break 'read;
            };
            match frame_len(pending) {
                Ok(Some(len)) => {
                    if let Some(frame) = pending.get(..len) {
                        worker.client_packet(&mut shared, now, ft, frame);
                    }
                    start += len;
                    last_frame = now;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        worker.flush(&mut shared);
        drop(shared);
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    let mut shared = worker.shared();
    shared.tcp.remove(&ft);
    shared.core.client_disconnected(&ft);
    worker.flush(&mut shared);
    drop(shared);
    writer.abort();
}
