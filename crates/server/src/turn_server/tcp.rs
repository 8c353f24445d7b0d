//! TCP: clients speak STUN and ChannelData over a stream, framed as
//! RFC 8656 §11.5 says (STUN by its length; ChannelData padded to 4 bytes).
//! The allocation of a connection ends with it.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use turn::channel_data::frame_len;
use turn::{FiveTuple, Transport};

use super::TurnService;

/// Frames queued for one slow client before further ones are dropped.
const WRITE_QUEUE: usize = 256;

pub(super) async fn serve(service: Arc<TurnService>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(service.clone(), stream));
            }
            Err(e) => {
                tracing::warn!("TCP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(service: Arc<TurnService>, stream: TcpStream) {
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
    service.lock().tcp.insert(ft, tx);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });

    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    'read: loop {
        if filled == buf.len() {
            // frame_len bounds a frame to 64 KiB + 20, so this stays bounded.
            buf.resize(buf.len() * 2, 0);
        }
        let Some(room) = buf.get_mut(filled..) else {
            break;
        };
        match rd.read(room).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
        let now = Instant::now();
        let mut start = 0;
        let mut shared = service.lock();
        loop {
            let Some(pending) = buf.get(start..filled) else {
                break 'read;
            };
            match frame_len(pending) {
                Ok(Some(len)) => {
                    if let Some(frame) = pending.get(..len) {
                        service.client_packet(&mut shared, now, ft, frame);
                    }
                    start += len;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        service.flush(&mut shared);
        drop(shared);
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    let mut shared = service.lock();
    shared.tcp.remove(&ft);
    shared.core.client_disconnected(&ft);
    service.flush(&mut shared);
    drop(shared);
    writer.abort();
}
