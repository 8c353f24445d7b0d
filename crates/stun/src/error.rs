//! Errors of the codec. Each says what was wrong with the bytes.

use thiserror::Error;

/// A datagram or frame that is not a well-formed STUN message (RFC 8489 §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer than 20 bytes.
    #[error("shorter than a STUN header")]
    TooShort,
    /// The two most significant bits are not zero.
    #[error("first two bits are not zero")]
    NotStun,
    /// The magic cookie is not 0x2112A442 (RFC 3489 messages are not supported).
    #[error("wrong magic cookie")]
    WrongCookie,
    /// The length field is not a multiple of 4.
    #[error("length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The length field does not match the number of bytes after the header.
    #[error("length field says {declared} bytes but {actual} follow the header")]
    LengthMismatch {
        /// Length in the header.
        declared: usize,
        /// Bytes present after the header.
        actual: usize,
    },
    /// An attribute's header or value (with its padding) runs past the end.
    #[error("attribute 0x{0:04x} is truncated")]
    TruncatedAttribute(u16),
    /// An attribute follows FINGERPRINT, which must be last.
    #[error("attribute after FINGERPRINT")]
    AttributeAfterFingerprint,
    /// FINGERPRINT does not match the message.
    #[error("FINGERPRINT mismatch")]
    BadFingerprint,
    /// FINGERPRINT or MESSAGE-INTEGRITY has the wrong length.
    #[error("attribute 0x{0:04x} has an invalid length")]
    BadLength(u16),
}

/// An attribute value that does not parse (RFC 8489 §14).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttributeError {
    /// The value has a length this attribute cannot have.
    #[error("attribute 0x{typ:04x}: invalid length {len}")]
    InvalidLength {
        /// Attribute type.
        typ: u16,
        /// Value length.
        len: usize,
    },
    /// An address attribute names an unknown family.
    #[error("attribute 0x{0:04x}: unknown address family")]
    UnknownFamily(u16),
    /// A text attribute is not UTF-8 or too long.
    #[error("attribute 0x{0:04x}: invalid text")]
    InvalidText(u16),
    /// An ERROR-CODE class or number is out of range.
    #[error("invalid error code")]
    InvalidErrorCode,
}

/// A message that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed the 16-bit length field.
    #[error("message too long")]
    TooLong,
    /// An attribute value is longer than 65535 bytes.
    #[error("attribute value too long")]
    ValueTooLong,
}

/// MESSAGE-INTEGRITY(-SHA256) is absent or does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IntegrityError {
    /// The message carries no integrity attribute of the kind checked.
    #[error("no integrity attribute")]
    Missing,
    /// The HMAC does not match.
    #[error("integrity check failed")]
    Mismatch,
}
