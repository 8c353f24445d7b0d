//! Sans-IO STUN codec: RFC 8489 (STUN) messages with the attributes of
//! RFC 8489 §14, RFC 8656 §18 (TURN) and RFC 8445 §16.1 (ICE).
//!
//! [`Message::decode`] checks a message's framing once and then borrows from
//! the packet: attributes are read in place, nothing is copied.
//! [`MessageBuilder`] writes a message into a caller's buffer, so a server can
//! reuse one buffer for every response. Both never panic on any input.

mod address;
mod attribute;
mod builder;
mod error;
mod integrity;
mod message;

pub use address::AddressFamily;
pub use attribute::{
    Attribute, AttributeType, ErrorCode, PasswordAlgorithm, PasswordAlgorithms, RawAttribute,
    UnknownAttributes,
};
pub use builder::MessageBuilder;
pub use error::{AttributeError, DecodeError, EncodeError, IntegrityError};
pub use integrity::{long_term_key_md5, long_term_key_sha256, userhash};
pub use message::{Attributes, Message};

/// The fixed value in bytes 4..8 of every RFC 5389/8489 message (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Size of the STUN message header.
pub const HEADER_LEN: usize = 20;

/// The 96-bit transaction id that pairs a response with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A fresh random transaction id from the given random bytes source.
    pub fn from_random(bytes: [u8; 12]) -> Self {
        TransactionId(bytes)
    }
}

/// The class of a message (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Expects a response.
    Request,
    /// Expects nothing back.
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

/// A STUN method: 12 bits (RFC 8489 §18.2, RFC 8656 §17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656 §7.2).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656 §7.3).
    pub const REFRESH: Method = Method(0x004);
    /// Send indication (RFC 8656 §11.3).
    pub const SEND: Method = Method(0x006);
    /// Data indication (RFC 8656 §11.4).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656 §9).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656 §12).
    pub const CHANNEL_BIND: Method = Method(0x009);

    /// A method from its 12-bit number; `None` if it does not fit in 12 bits.
    pub const fn new(number: u16) -> Option<Method> {
        if number <= 0x0FFF {
            Some(Method(number))
        } else {
            None
        }
    }

    /// The method's number.
    pub const fn number(self) -> u16 {
        self.0
    }
}

/// Encodes class and method into the 14-bit message type (RFC 8489 §5, Figure 3).
pub(crate) const fn message_type(class: Class, method: Method) -> u16 {
    let m = method.0;
    let c: u16 = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::Success => 0b10,
        Class::Error => 0b11,
    };
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

/// Splits a 14-bit message type into class and method.
pub(crate) const fn split_message_type(t: u16) -> (Class, Method) {
    let m = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = match ((t >> 4) & 1) | ((t >> 7) & 2) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (class, Method(m))
}

/// True if the first byte of a datagram or stream frame can start a STUN
/// message (RFC 7983 §7: 0–3), as opposed to ChannelData (64–79), DTLS or RTP.
pub fn is_stun(first_byte: u8) -> bool {
    first_byte < 4
}

/// Whether a byte stream starts with a STUN message header (RFC 8489 §5:
/// the two top bits zero, the magic cookie at bytes 4..8), decided from as
/// few bytes as possible; `None` while more are needed. Lets a port shared
/// with another protocol (TURN over TLS beside HTTPS) route a connection by
/// its first bytes. Says nothing of the rest of the message.
pub fn starts_with_stun_header(prefix: &[u8]) -> Option<bool> {
    let first = *prefix.first()?;
    if first & 0xC0 != 0 {
        return Some(false);
    }
    let cookie = prefix.get(4..8)?;
    Some(cookie == MAGIC_COOKIE.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_prefix_check() {
        let binding = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        assert_eq!(starts_with_stun_header(&binding), Some(true));
        assert_eq!(starts_with_stun_header(&binding[..7]), None);
        assert_eq!(starts_with_stun_header(&[]), None);
        assert_eq!(starts_with_stun_header(b"GET / HTTP/1.1"), Some(false));
        assert_eq!(starts_with_stun_header(b"\r\nGET / HTTP/1.1"), Some(false));
        assert_eq!(starts_with_stun_header(&[0x40, 0, 0, 4]), Some(false));
    }

    #[test]
    fn message_type_round_trips() {
        for class in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            for m in [0u16, 1, 3, 9, 0x0ABC, 0x0FFF] {
                let method = Method(m);
                assert_eq!(
                    split_message_type(message_type(class, method)),
                    (class, method)
                );
            }
        }
        // RFC 8489 §5: Binding request 0x0001, success 0x0101, error 0x0111.
        assert_eq!(message_type(Class::Request, Method::BINDING), 0x0001);
        assert_eq!(message_type(Class::Success, Method::BINDING), 0x0101);
        assert_eq!(message_type(Class::Error, Method::BINDING), 0x0111);
        assert_eq!(message_type(Class::Indication, Method::SEND), 0x0016);
        assert_eq!(message_type(Class::Indication, Method::DATA), 0x0017);
    }
}
