//! One stream connection: TURN over TCP, or over TLS after the handshake
//! (the same loop on the decrypted bytes). Messages are framed as
//! RFC 8656 §11.5 says (STUN by its length; ChannelData padded to 4 bytes);
//! each read's complete frames are one input batch for the worker. A writer
//! task drains the connection's bounded queue. The allocation of a
//! connection ends with it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use turn::FiveTuple;
use turn::channel_data::frame_len;

use super::SharedWorker;

/// Frames queued for one slow client before further ones are dropped.
const WRITE_QUEUE: usize = 256;

/// Serves one stream connection until it closes or idles out (no complete
/// message for `idle` while it holds no allocation). `initial`: bytes
/// already read from it (by the HTTPS port's protocol check).
pub(crate) async fn serve<R, W>(
    worker: SharedWorker,
    mut rd: R,
    mut wr: W,
    ft: FiveTuple,
    initial: Vec<u8>,
    idle: Duration,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    worker.borrow_mut().stream_opened(ft, tx);
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
                let now = Instant::now();
                if worker.borrow().has_allocation(&ft, now) {
                    last_frame = now;
                    continue;
                }
                tracing::debug!(client = %ft.client, "closing idle TURN stream connection");
                break;
            }
        }
    }
    worker.borrow_mut().stream_closed(ft);
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

/// Hands the complete messages in `buf[..filled]` to the worker and moves
/// the rest to the front.
fn frames(worker: &SharedWorker, ft: FiveTuple, buf: &mut [u8], filled: &mut usize) -> Frames {
    if *filled == 0 {
        return Frames::None;
    }
    let now = Instant::now();
    let mut start = 0;
    let mut found = Frames::None;
    let mut w = worker.borrow_mut();
    loop {
        let Some(pending) = buf.get(start..*filled) else {
            found = Frames::Malformed;
            break;
        };
        match frame_len(pending) {
            Ok(Some(len)) => {
                if let Some(frame) = pending.get(..len) {
                    w.client_message(now, ft, frame);
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
    w.flush();
    drop(w);
    if start > 0 {
        buf.copy_within(start..*filled, 0);
        *filled -= start;
    }
    found
}
