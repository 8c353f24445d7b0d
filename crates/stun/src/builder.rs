//! Encoding messages into a caller's buffer (RFC 8489 §5, §14, §14.5–14.7).

use hmac::Mac;

use crate::attribute::Attribute;
use crate::integrity::{self, FINGERPRINT_XOR};
use crate::{Class, EncodeError, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, message_type};

/// Writes one message at the end of a buffer, keeping the header's length
/// field current after each attribute.
///
/// ```
/// use stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};
/// let mut buf = Vec::new();
/// let tid = TransactionId([1; 12]);
/// let mut b = MessageBuilder::new(&mut buf, Class::Success, Method::BINDING, tid);
/// b.add(&Attribute::XorMappedAddress("192.0.2.1:5000".parse().unwrap())).unwrap();
/// b.add_fingerprint().unwrap();
/// let msg = Message::decode(b.finish()).unwrap();
/// assert!(msg.has_fingerprint());
/// ```
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    tid: TransactionId,
    padding: u8,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message with a 20-byte header at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>, class: Class, method: Method, tid: TransactionId) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&message_type(class, method).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&tid.0);
        MessageBuilder {
            buf,
            start,
            tid,
            padding: 0,
        }
    }

    /// Pads attribute values with `byte` instead of zeros. Receivers ignore
    /// padding (RFC 8489 §14); this exists to reproduce RFC 5769's vectors,
    /// which pad with spaces.
    pub fn padding_byte(&mut self, byte: u8) -> &mut Self {
        self.padding = byte;
        self
    }

    /// The transaction id of the message being built.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    fn set_len(&mut self, body: usize) -> Result<(), EncodeError> {
        let len = u16::try_from(body).map_err(|_| EncodeError::TooLong)?;
        if let Some(field) = self.buf.get_mut(self.start + 2..self.start + 4) {
            field.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn body_len(&self) -> usize {
        self.buf.len() - self.start - HEADER_LEN
    }

    /// Appends an attribute with zero padding.
    pub fn add(&mut self, attr: &Attribute<'_>) -> Result<&mut Self, EncodeError> {
        let len = attr.value_len();
        let len16 = u16::try_from(len).map_err(|_| EncodeError::ValueTooLong)?;
        let padded = len.next_multiple_of(4);
        let new_body = self.body_len() + 4 + padded;
        if new_body > usize::from(u16::MAX) {
            return Err(EncodeError::TooLong);
        }
        self.buf.extend_from_slice(&attr.typ().0.to_be_bytes());
        self.buf.extend_from_slice(&len16.to_be_bytes());
        attr.encode_value(self.buf, &self.tid);
        self.buf
            .resize(self.buf.len() + (padded - len), self.padding);
        self.set_len(new_body)?;
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY computed with `key` (RFC 8489 §14.5).
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<&mut Self, EncodeError> {
        let upto = self.buf.len() - self.start;
        self.set_len(self.body_len() + 24)?;
        let tag =
            integrity::hmac_sha1(self.buf.get(self.start..).unwrap_or(&[]), upto, key).finalize();
        self.buf.extend_from_slice(&[0x00, 0x08, 0x00, 20]);
        self.buf.extend_from_slice(&tag.into_bytes());
        Ok(self)
    }

    /// Appends a full 32-byte MESSAGE-INTEGRITY-SHA256 computed with `key`
    /// (RFC 8489 §14.6).
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<&mut Self, EncodeError> {
        let upto = self.buf.len() - self.start;
        self.set_len(self.body_len() + 36)?;
        let tag = integrity::hmac_sha256(self.buf.get(self.start..).unwrap_or(&[]), upto, key, 32)
            .finalize();
        self.buf.extend_from_slice(&[0x00, 0x1C, 0x00, 32]);
        self.buf.extend_from_slice(&tag.into_bytes());
        Ok(self)
    }

    /// Appends FINGERPRINT; it must be the last attribute (RFC 8489 §14.7).
    pub fn add_fingerprint(&mut self) -> Result<&mut Self, EncodeError> {
        self.set_len(self.body_len() + 8)?;
        let crc = integrity::crc32(self.buf.get(self.start..).unwrap_or(&[])) ^ FINGERPRINT_XOR;
        self.buf.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        Ok(self)
    }

    /// The finished message.
    pub fn finish(self) -> &'b [u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
}
