//! Server-side WebSocket framing, sans-IO (RFC 6455 §4.2.2 handshake key,
//! §5 framing, §7.4 close codes).
//!
//! Why not a WebSocket library: signaling holds 10 000 mostly idle
//! connections, and the general-purpose libraries keep a read buffer sized
//! for the largest frame they ever received (tungstenite keeps it until the
//! connection closes). Here nothing is buffered between messages: bytes are
//! fed in as they are read ([`Decoder::decode`]), a text message is
//! assembled in a buffer of its own size that leaves with it, and a message
//! over the parse limit is counted and skipped, never stored. Writing is a
//! function that appends a frame to the caller's buffer ([`encode`]).
//!
//! Not supported, on purpose: extensions (permessage-deflate is never
//! negotiated, so RSV bits are a protocol error), subprotocols, and the
//! client role (client frames must be masked; the server's are not).

mod decode;
mod encode;

pub use decode::{Control, Decoder, Event, FrameError, Limits};
pub use encode::{Frame, encode};

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value answering a `Sec-WebSocket-Key`
/// (RFC 6455 §4.2.2 step 5.4): base64 of SHA-1 over the key and the GUID.
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.trim().as_bytes());
    sha.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Close codes a peer may send (RFC 6455 §7.4.1 and §7.4.2): the defined
/// ones that may appear on the wire, and the registered and private ranges.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 3000, 4000, 4999] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }
}
