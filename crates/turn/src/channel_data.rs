//! ChannelData messages (RFC 8656 §12.4) and the framing of STUN and
//! ChannelData on stream transports (RFC 8656 §11 / RFC 6062-style TCP).

/// First channel number (RFC 8656 §12).
pub const MIN_CHANNEL: u16 = 0x4000;
/// Last channel number a client should pick (RFC 8656 §12).
pub const MAX_CHANNEL: u16 = 0x4FFF;
/// Last channel number the server accepts: RFC 5766 allowed up to 0x7FFF and
/// clients still use it (coturn's `turnutils_uclient` picks from the whole
/// range). RFC 8656 reserved 0x5000–0x7FFF to avoid colliding with DTLS-SRTP
/// demultiplexing, which cannot happen on a TURN port.
pub const MAX_CHANNEL_ACCEPTED: u16 = 0x7FFF;

/// A ChannelData message borrowing its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// 0x4000–0x4FFF.
    pub channel: u16,
    /// The application data.
    pub payload: &'a [u8],
}

/// Why bytes are not a ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    /// Fewer than 4 bytes.
    #[error("ChannelData shorter than its header")]
    TooShort,
    /// Channel number outside 0x4000–0x4FFF.
    #[error("channel number 0x{0:04x} out of range")]
    BadChannel(u16),
    /// The length field exceeds the bytes present.
    #[error("ChannelData length exceeds packet")]
    Truncated,
}

impl<'a> ChannelData<'a> {
    /// Decodes a ChannelData message. Over UDP, bytes past the length are
    /// padding and ignored (RFC 8656 §12.5).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ChannelDataError> {
        let (head, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(ChannelDataError::TooShort)?;
        let channel = u16::from_be_bytes([head[0], head[1]]);
        if !(MIN_CHANNEL..=MAX_CHANNEL_ACCEPTED).contains(&channel) {
            return Err(ChannelDataError::BadChannel(channel));
        }
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let payload = rest.get(..len).ok_or(ChannelDataError::Truncated)?;
        Ok(ChannelData { channel, payload })
    }

    /// The 4-byte header for `channel` and a payload of `len` bytes.
    pub fn header(channel: u16, len: u16) -> [u8; 4] {
        let [a, b] = channel.to_be_bytes();
        let [c, d] = len.to_be_bytes();
        [a, b, c, d]
    }
}

/// Length of the next complete frame at the start of a stream buffer
/// (RFC 8656 §11.5: STUN by its length field; ChannelData by its length,
/// padded to 4 bytes on streams), `Ok(None)` if more bytes are needed.
///
/// Bytes that start neither kind of frame are an error: the stream can no
/// longer be framed and the connection should be closed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let total = match head[0] {
        0x00..=0x03 => 20 + len,
        0x40..=0x7F => 4 + len.next_multiple_of(4),
        b => return Err(FramingError(b)),
    };
    Ok((buf.len() >= total).then_some(total))
}

/// A stream carried a byte that starts no STUN or ChannelData frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unframeable stream byte 0x{0:02x}")]
pub struct FramingError(pub u8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_pad() {
        let d = ChannelData::decode(&[0x40, 0x01, 0, 3, 1, 2, 3, 0]).unwrap();
        assert_eq!(d.channel, 0x4001);
        assert_eq!(d.payload, &[1, 2, 3]);
        assert_eq!(
            ChannelData::decode(&[0x80, 0, 0, 0]),
            Err(ChannelDataError::BadChannel(0x8000))
        );
        assert!(ChannelData::decode(&[0x7f, 0xff, 0, 0]).is_ok());
        assert_eq!(
            ChannelData::decode(&[0x40, 0, 0, 5, 1]),
            Err(ChannelDataError::Truncated)
        );
        assert_eq!(
            ChannelData::decode(&[0x40]),
            Err(ChannelDataError::TooShort)
        );
    }

    #[test]
    fn stream_frames() {
        assert_eq!(frame_len(&[0x40, 0, 0]), Ok(None));
        assert_eq!(frame_len(&[0x40, 0, 0, 3, 1, 2, 3]), Ok(None));
        assert_eq!(frame_len(&[0x40, 0, 0, 3, 1, 2, 3, 0, 9]), Ok(Some(8)));
        let mut stun = vec![0, 1, 0, 4];
        stun.resize(24, 0);
        assert_eq!(frame_len(&stun), Ok(Some(24)));
        assert_eq!(frame_len(&stun[..23]), Ok(None));
        assert_eq!(frame_len(b"\x16\x03\x01\x00\x10"), Err(FramingError(0x16)));
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), Err(FramingError(0x80)));
    }
}
