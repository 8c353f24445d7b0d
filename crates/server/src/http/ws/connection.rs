//! One signaling connection: bytes from the socket through the
//! [`websocket::Decoder`] into the hub, and the outbox encoded onto the
//! socket (RFC 6455 §5 framing, §5.5.2-3 ping/pong, §7 closing).
//!
//! What a connection keeps between messages is a few hundred bytes: reads
//! go through a buffer on the stack and are decoded at once, a text is
//! assembled in a buffer of its own size that leaves with it, a text over
//! the hub's limit is skipped without being stored, and the write buffer is
//! freed each time it has been written out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use signal::ConnId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use websocket::{Decoder, Event, Frame, Limits};

use super::{MAX_MESSAGE_BYTES, Outgoing, Signaling, State, unix_now};

/// Bytes read per read call (on the stack, not kept).
const READ_CHUNK: usize = 2048;

/// Reads in one poll before giving the other connections a turn.
const READS_PER_POLL: usize = 32;

/// Outbox messages are encoded until this many bytes wait to be written.
const WRITE_BATCH: usize = 16 * 1024;

/// Reading stops while this much waits to be written (pongs a client that
/// does not read makes us queue, say): what it sends then waits in TCP.
const MAX_UNWRITTEN: usize = 64 * 1024;

/// Status code of a close the hub asked for (the reason says why).
const HUB_CLOSE_CODE: u16 = 4000;

/// One connection: reads frames into the hub and writes its outbox, in one
/// future (no second task, no channel, no timer). See
/// [`Signaling::run_connection`].
pub struct Connection<S, G> {
    signaling: Arc<Signaling>,
    id: ConnId,
    socket: S,
    decoder: Decoder,
    /// Encoded frames not yet written; unallocated when nothing waits.
    out: Vec<u8>,
    /// How much of `out` the socket took.
    written: usize,
    /// Bytes were handed to the socket and not flushed yet.
    unflushed: bool,
    /// A close frame is in `out`: read no more, end once it is flushed.
    closed: bool,
    _guard: G,
}

impl<S, G> Drop for Connection<S, G> {
    fn drop(&mut self) {
        let mut s = self.signaling.lock();
        s.outboxes.remove(&self.id);
        s.hub.handle_disconnect(self.id);
        s.dispatch();
    }
}

/// Whether the connection goes on.
enum Step {
    Continue,
    End,
}

impl<S: AsyncRead + AsyncWrite + Unpin, G> Connection<S, G> {
    pub(super) fn new(signaling: Arc<Signaling>, id: ConnId, socket: S, guard: G) -> Self {
        let limits = Limits {
            max_text: signaling.lock().hub.max_message_bytes(),
            max_message: MAX_MESSAGE_BYTES,
        };
        Connection {
            signaling,
            id,
            socket,
            decoder: Decoder::new(limits),
            out: Vec::new(),
            written: 0,
            unflushed: false,
            closed: false,
            _guard: guard,
        }
    }

    /// Reads what has arrived and hands it to the hub.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Step {
        let mut chunk = [0u8; READ_CHUNK];
        for _ in 0..READS_PER_POLL {
            if self.closed || self.out.len().saturating_sub(self.written) >= MAX_UNWRITTEN {
                // The write side wakes us when the socket takes more.
                return Step::Continue;
            }
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.socket).poll_read(cx, &mut buf) {
                Poll::Pending => return Step::Continue,
                Poll::Ready(Err(_)) => return Step::End,
                Poll::Ready(Ok(())) => {}
            }
            let mut input = buf.filled();
            if input.is_empty() {
                return Step::End;
            }
            while !input.is_empty() && !self.closed {
                match self.decoder.decode(&mut input) {
                    Ok(None) => {}
                    Ok(Some(event)) => self.handle_event(event),
                    Err(e) => {
                        tracing::debug!(conn = self.id.0, error = %e, "closing signaling connection");
                        self.close(e.close_code(), &e.to_string());
                    }
                }
            }
        }
        // More may be waiting: come back after the others had a turn.
        cx.waker().wake_by_ref();
        Step::Continue
    }

    fn handle_event(&mut self, event: Event) {
        let (id, now) = (self.id, Instant::now());
        match event {
            Event::Text(text) => {
                let unix = unix_now();
                self.signaling
                    .with_hub(|hub| hub.handle_text(id, &text, now, unix));
            }
            Event::Oversized { len } => self
                .signaling
                .with_hub(|hub| hub.handle_oversized_text(id, len, now)),
            Event::Binary { len } => self
                .signaling
                .with_hub(|hub| hub.handle_binary(id, len, now)),
            Event::Ping(payload) => {
                websocket::encode(Frame::Pong(payload.as_bytes()), &mut self.out);
                self.signaling.with_hub(|hub| hub.handle_pong(id, now));
            }
            Event::Pong => self.signaling.with_hub(|hub| hub.handle_pong(id, now)),
            // The closing handshake (§5.5.1): answer with a close, then end.
            Event::Close(code) => self.close(code.unwrap_or(1000), ""),
        }
    }

    /// Queues a close frame and stops reading; the ticker drops the
    /// connection if the peer does not take it within the grace period.
    fn close(&mut self, code: u16, reason: &str) {
        websocket::encode(Frame::Close(code, reason), &mut self.out);
        self.closed = true;
        let mut s = self.signaling.lock();
        if let Some(out) = s.outboxes.get_mut(&self.id)
            && matches!(out.state, State::Open)
        {
            out.state = State::Closing(Instant::now());
        }
    }

    /// Encodes waiting outbox messages into `out`; `End` when the
    /// connection is to be dropped.
    fn fill(&mut self, cx: &mut Context<'_>) -> Step {
        let mut s = self.signaling.lock();
        let Some(outbox) = s.outboxes.get_mut(&self.id) else {
            return Step::End;
        };
        if matches!(outbox.state, State::Gone) {
            return Step::End;
        }
        while self.out.len() < WRITE_BATCH && !self.closed {
            match outbox.pop() {
                None => {
                    if !outbox
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        outbox.waker = Some(cx.waker().clone());
                    }
                    break;
                }
                Some(Outgoing::Text(text)) => websocket::encode(Frame::Text(&text), &mut self.out),
                Some(Outgoing::Ping) => websocket::encode(Frame::Ping(&[]), &mut self.out),
                Some(Outgoing::Close(reason)) => {
                    websocket::encode(Frame::Close(HUB_CLOSE_CODE, reason), &mut self.out);
                    self.closed = true;
                }
            }
        }
        Step::Continue
    }

    /// Whether the hub still wants this connection (the ticker kills one
    /// whose close grace is over, a full outbox kills a stuck one);
    /// registers the task to be woken when that changes or a message waits.
    fn poll_alive(&mut self, cx: &mut Context<'_>) -> Step {
        let mut s = self.signaling.lock();
        let Some(outbox) = s.outboxes.get_mut(&self.id) else {
            return Step::End;
        };
        if matches!(outbox.state, State::Gone) {
            return Step::End;
        }
        if !outbox
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            outbox.waker = Some(cx.waker().clone());
        }
        Step::Continue
    }

    /// Writes `out`, refilling it from the outbox, while the socket takes it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            if self.written >= self.out.len() {
                // All written: give the buffer back, then look for more.
                self.out = Vec::new();
                self.written = 0;
                if !self.closed && matches!(self.fill(cx), Step::End) {
                    return Step::End;
                }
                if self.out.is_empty() {
                    break;
                }
            }
            let pending = self.out.get(self.written..).unwrap_or_default();
            match Pin::new(&mut self.socket).poll_write(cx, pending) {
                Poll::Pending => break,
                Poll::Ready(Err(_) | Ok(0)) => return Step::End,
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.unflushed = true;
                }
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.socket).poll_flush(cx) {
                Poll::Pending => return Step::Continue,
                Poll::Ready(Err(_)) => return Step::End,
                Poll::Ready(Ok(())) => self.unflushed = false,
            }
        }
        if self.closed && self.out.is_empty() {
            return Step::End;
        }
        Step::Continue
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, G: Unpin> Future for Connection<S, G> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Step::End = this.poll_alive(cx) {
            return Poll::Ready(());
        }
        if let Step::End = this.poll_read(cx) {
            return Poll::Ready(());
        }
        match this.poll_write(cx) {
            Step::End => Poll::Ready(()),
            Step::Continue => Poll::Pending,
        }
    }
}
