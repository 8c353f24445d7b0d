//! Message framing and decoding (RFC 8489 §5, §6.3, §14.5–14.7).

use crate::attribute::{Attribute, AttributeType, RawAttribute};
use crate::integrity::{self, FINGERPRINT_XOR};
use crate::{
    Class, DecodeError, HEADER_LEN, IntegrityError, MAGIC_COOKIE, Method, TransactionId,
    split_message_type,
};

/// A decoded STUN message borrowing the packet it came in.
///
/// Framing, attribute bounds and FINGERPRINT are checked once by
/// [`Message::decode`]; attribute values are parsed on access.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    raw: &'a [u8],
    class: Class,
    method: Method,
    tid: TransactionId,
    /// Where the attributes that count end: the first MESSAGE-INTEGRITY,
    /// MESSAGE-INTEGRITY-SHA256 or FINGERPRINT (RFC 8489 §14.5: attributes
    /// after MESSAGE-INTEGRITY other than those are ignored).
    attrs_end: usize,
    integrity: Option<usize>,
    integrity_sha256: Option<usize>,
    fingerprint: bool,
}

/// Reads the type and value length of the attribute at `pos`.
fn attr_header(raw: &[u8], pos: usize) -> Option<(u16, usize)> {
    let h = raw.get(pos..)?.first_chunk::<4>()?;
    Some((
        u16::from_be_bytes([h[0], h[1]]),
        usize::from(u16::from_be_bytes([h[2], h[3]])),
    ))
}

impl<'a> Message<'a> {
    /// Decodes one whole message: `bytes` must be exactly the message (a UDP
    /// datagram, or a frame cut from a stream by its length field).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let header: &[u8; HEADER_LEN] = bytes
            .first_chunk::<HEADER_LEN>()
            .ok_or(DecodeError::TooShort)?;
        let typ = u16::from_be_bytes([header[0], header[1]]);
        if typ & 0xC000 != 0 {
            return Err(DecodeError::NotStun);
        }
        let length = u16::from_be_bytes([header[2], header[3]]);
        let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::WrongCookie);
        }
        if !length.is_multiple_of(4) {
            return Err(DecodeError::UnalignedLength(length));
        }
        let actual = bytes.len() - HEADER_LEN;
        if usize::from(length) != actual {
            return Err(DecodeError::LengthMismatch {
                declared: length.into(),
                actual,
            });
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(header.get(8..20).unwrap_or(&[0; 12]));
        let (class, method) = split_message_type(typ);

        let mut msg = Message {
            raw: bytes,
            class,
            method,
            tid: TransactionId(tid),
            attrs_end: bytes.len(),
            integrity: None,
            integrity_sha256: None,
            fingerprint: false,
        };
        let mut pos = HEADER_LEN;
        while pos < bytes.len() {
            let (t, len) = attr_header(bytes, pos).ok_or(DecodeError::TruncatedAttribute(0))?;
            let end = pos + 4 + len.next_multiple_of(4);
            if end > bytes.len() {
                return Err(DecodeError::TruncatedAttribute(t));
            }
            match AttributeType(t) {
                AttributeType::MESSAGE_INTEGRITY if msg.integrity.is_none() => {
                    if len != 20 {
                        return Err(DecodeError::BadLength(t));
                    }
                    if msg.integrity_sha256.is_none() {
                        msg.attrs_end = msg.attrs_end.min(pos);
                        msg.integrity = Some(pos);
                    }
                }
                AttributeType::MESSAGE_INTEGRITY_SHA256 if msg.integrity_sha256.is_none() => {
                    if !(16..=32).contains(&len) || len % 4 != 0 {
                        return Err(DecodeError::BadLength(t));
                    }
                    msg.attrs_end = msg.attrs_end.min(pos);
                    msg.integrity_sha256 = Some(pos);
                }
                AttributeType::FINGERPRINT => {
                    if end != bytes.len() {
                        return Err(DecodeError::AttributeAfterFingerprint);
                    }
                    let value = bytes.get(pos + 4..pos + 8).filter(|_| len == 4);
                    let value = value.ok_or(DecodeError::BadLength(t))?;
                    let expected =
                        integrity::crc32(bytes.get(..pos).unwrap_or(&[])) ^ FINGERPRINT_XOR;
                    if value != expected.to_be_bytes() {
                        return Err(DecodeError::BadFingerprint);
                    }
                    msg.attrs_end = msg.attrs_end.min(pos);
                    msg.fingerprint = true;
                }
                _ => {}
            }
            pos = end;
        }
        Ok(msg)
    }

    /// The message class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// True if the message carried a (valid) FINGERPRINT.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }

    /// True if the message carries MESSAGE-INTEGRITY.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// True if the message carries MESSAGE-INTEGRITY-SHA256.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// The attributes before any integrity or fingerprint attribute, framed
    /// but not parsed, in order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            raw: self.raw.get(..self.attrs_end).unwrap_or(&[]),
            pos: HEADER_LEN,
        }
    }

    /// The first attribute of type `typ` (RFC 8489 §14: only the first counts).
    pub fn raw_attribute(&self, typ: AttributeType) -> Option<RawAttribute<'a>> {
        self.attributes().find(|a| a.typ == typ)
    }

    /// The first attribute of type `typ`, parsed.
    pub fn attribute(
        &self,
        typ: AttributeType,
    ) -> Option<Result<Attribute<'a>, crate::AttributeError>> {
        self.raw_attribute(typ)
            .map(|raw| Attribute::decode(raw, &self.tid))
    }

    /// Comprehension-required attribute types this codec does not know
    /// (to answer with 420 and UNKNOWN-ATTRIBUTES, RFC 8489 §6.3.1).
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.attributes().map(|a| a.typ).filter(|t| !t.is_known())
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key` (RFC 8489 §14.5).
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let pos = self.integrity.ok_or(IntegrityError::Missing)?;
        let mac = self
            .raw
            .get(pos + 4..pos + 24)
            .ok_or(IntegrityError::Missing)?;
        integrity::verify_sha1(self.raw, pos, key, mac)
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 with `key` (RFC 8489 §14.6).
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let pos = self.integrity_sha256.ok_or(IntegrityError::Missing)?;
        let (_, len) = attr_header(self.raw, pos).ok_or(IntegrityError::Missing)?;
        let mac = self
            .raw
            .get(pos + 4..pos + 4 + len)
            .ok_or(IntegrityError::Missing)?;
        integrity::verify_sha256(self.raw, pos, key, mac)
    }
}

/// Iterator over the framed attributes of a [`Message`].
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (t, len) = attr_header(self.raw, self.pos)?;
        let value = self.raw.get(self.pos + 4..self.pos + 4 + len)?;
        self.pos += 4 + len.next_multiple_of(4);
        Some(RawAttribute {
            typ: AttributeType(t),
            value,
        })
    }
}
