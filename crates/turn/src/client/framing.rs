//! Cutting a TCP or TLS byte stream from a TURN server into STUN messages
//! and padded ChannelData messages (RFC 8656 §11.5, §12.5), with
//! [`crate::channel_data::frame_len`].

use crate::channel_data::{FramingError, frame_len};

/// Buffers stream bytes and hands out whole frames, each ready for
/// [`super::Client::handle_input`].
///
/// ```
/// use turn::client::FrameBuffer;
/// let mut f = FrameBuffer::default();
/// f.push(&[0x40, 0x00, 0x00, 0x01, 0xAA]);
/// assert_eq!(f.next_frame(), Ok(None)); // padding not yet here
/// f.push(&[0, 0, 0]);
/// assert_eq!(f.next_frame(), Ok(Some(&[0x40, 0, 0, 1, 0xAA, 0, 0, 0][..])));
/// ```
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Bytes at the front already handed out.
    consumed: usize,
}

impl FrameBuffer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. An error
    /// means the stream carries something else; close the connection.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FramingError> {
        self.compact();
        match frame_len(&self.buf)? {
            Some(n) => {
                self.consumed = n;
                Ok(self.buf.get(..n))
            }
            None => Ok(None),
        }
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.consumed)
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed.min(self.buf.len()));
            self.consumed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_stun_and_channel_data_across_reads() {
        let mut stun = vec![0x01, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[9; 12]);
        stun.extend_from_slice(&[0x80, 0x22, 0, 0]);
        let cd = [0x40, 0x01, 0x00, 0x02, 7, 8, 0, 0];
        let mut stream = stun.clone();
        stream.extend_from_slice(&cd);
        let mut f = FrameBuffer::default();
        let mut frames = Vec::new();
        for chunk in stream.chunks(3) {
            f.push(chunk);
            while let Ok(Some(frame)) = f.next_frame() {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(frames, vec![stun, cd.to_vec()]);
        assert_eq!(f.buffered(), 0);
        // A TLS ClientHello on a plain TCP port cannot be framed.
        f.push(&[0x16, 0x03, 0x01, 0x00, 0x10]);
        assert_eq!(f.next_frame(), Err(FramingError(0x16)));
    }
}
