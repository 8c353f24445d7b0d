//! Server frames (RFC 6455 §5.2; the server never masks, §5.1).

/// A frame the server sends.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A whole text message in one frame.
    Text(&'a str),
    /// A ping; payloads over 125 bytes are cut.
    Ping(&'a [u8]),
    /// A pong echoing a ping's payload; cut at 125 bytes.
    Pong(&'a [u8]),
    /// A close with a status code and a reason; the reason is cut (at a
    /// character boundary) to fit the 125-byte control payload.
    Close(u16, &'a str),
}

/// Appends `frame` to `out`.
pub fn encode(frame: Frame<'_>, out: &mut Vec<u8>) {
    match frame {
        Frame::Text(text) => {
            header(0x1, text.len(), out);
            out.extend_from_slice(text.as_bytes());
        }
        Frame::Ping(payload) => control(0x9, payload, out),
        Frame::Pong(payload) => control(0xA, payload, out),
        Frame::Close(code, reason) => {
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            let reason = reason.get(..end).unwrap_or_default();
            header(0x8, 2 + reason.len(), out);
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }
}

fn control(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = payload.get(..payload.len().min(125)).unwrap_or_default();
    header(opcode, payload.len(), out);
    out.extend_from_slice(payload);
}

/// FIN set, no mask, the shortest length encoding.
fn header(opcode: u8, len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(frame: Frame<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(frame, &mut out);
        out
    }

    #[test]
    fn rfc_6455_examples() {
        // §5.7: a single-frame unmasked text message, and an unmasked ping/pong.
        assert_eq!(bytes(Frame::Text("Hello")), b"\x81\x05Hello");
        assert_eq!(bytes(Frame::Ping(b"Hello")), b"\x89\x05Hello");
        assert_eq!(bytes(Frame::Pong(b"Hello")), b"\x8a\x05Hello");
    }

    #[test]
    fn length_encodings() {
        let t = "x".repeat(125);
        assert_eq!(&bytes(Frame::Text(&t))[..2], &[0x81, 125]);
        let t = "x".repeat(126);
        assert_eq!(&bytes(Frame::Text(&t))[..4], &[0x81, 126, 0, 126]);
        let t = "x".repeat(70_000);
        let b = bytes(Frame::Text(&t));
        assert_eq!(&b[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(b[2..10].try_into().unwrap()), 70_000);
        assert_eq!(b.len(), 10 + 70_000);
    }

    #[test]
    fn close_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let b = bytes(Frame::Close(4000, &reason));
        assert_eq!(b[0], 0x88);
        let len = usize::from(b[1]);
        assert!(len <= 125);
        assert_eq!(&b[2..4], &4000u16.to_be_bytes());
        assert!(std::str::from_utf8(&b[4..]).is_ok());
        assert_eq!(b.len(), 2 + len);
    }
}
