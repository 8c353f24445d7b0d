//! Telling TURN from HTTP on one TLS port by the first decrypted bytes.
//!
//! A TURN client's first message on a new connection is a STUN request
//! (RFC 8656 §5: a ChannelData message needs a channel, which needs an
//! allocation on this connection): its first two bits are zero and bytes
//! 4..8 are the magic cookie 0x2112A442 (RFC 8489 §5). An HTTP request
//! starts with a method token (`GET`, …) or, at most, empty lines.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// STUN/TURN framed on the stream (RFC 8656 §11.5).
    Turn,
    /// Anything else, handed to the HTTP server (which answers garbage with 400).
    Http,
}

/// Decides from the bytes read so far; `None` while more are needed.
pub fn classify(first: &[u8]) -> Option<Protocol> {
    stun::starts_with_stun_header(first).map(
        |stun| {
            if stun { Protocol::Turn } else { Protocol::Http }
        },
    )
}

/// Reads until the protocol is known; returns it with the bytes read, which
/// belong to the connection and must be replayed to whoever serves it.
/// The caller bounds the time this takes.
pub async fn sniff<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(Protocol, Vec<u8>)> {
    let mut buf = vec![0u8; 512];
    let mut filled = 0;
    loop {
        let Some(room) = buf.get_mut(filled..) else {
            return Err(io::ErrorKind::InvalidData.into());
        };
        let n = stream.read(room).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let read = buf.get(..filled).unwrap_or_default();
        if let Some(p) = classify(read) {
            buf.truncate(filled);
            return Ok((p, buf));
        }
    }
}

/// A stream that yields `prefix` before the rest of `inner`.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` (already read from it) put back in front.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.prefix.get(this.pos..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_by_cookie_http_by_anything_else() {
        let allocate = [0x00, 0x03, 0x00, 0x10, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3];
        assert_eq!(classify(&allocate), Some(Protocol::Turn));
        assert_eq!(classify(&allocate[..7]), None);
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"G"), Some(Protocol::Http));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http));
        // Empty lines before a request (RFC 9112 §2.2) are HTTP too.
        assert_eq!(classify(b"\r\nGET / HTTP/1.1"), Some(Protocol::Http));
        // RFC 3489 STUN (no cookie) is not served: HTTP answers it with 400.
        assert_eq!(
            classify(&[0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4]),
            Some(Protocol::Http)
        );
    }

    #[tokio::test]
    async fn sniff_returns_the_bytes_and_prefixed_replays_them() -> io::Result<()> {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"\x00\x01\x00").await?;
        let sniffing = tokio::spawn(async move {
            let r = sniff(&mut server).await;
            (r, server)
        });
        tokio::io::AsyncWriteExt::write_all(&mut client, b"\x00\x21\x12\xA4\x42rest").await?;
        let (result, server) = sniffing.await.map_err(io::Error::other)?;
        let (protocol, prefix) = result?;
        assert_eq!(protocol, Protocol::Turn);
        assert!(prefix.starts_with(b"\x00\x01\x00\x00\x21\x12\xA4\x42"));
        drop(client);
        let mut all = Vec::new();
        Prefixed::new(prefix, server).read_to_end(&mut all).await?;
        assert_eq!(all, b"\x00\x01\x00\x00\x21\x12\xA4\x42rest");
        Ok(())
    }

    #[tokio::test]
    async fn sniff_fails_on_early_close() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(&mut server).await.is_err());
    }
}
