//! Attribute types and values: RFC 8489 §14 (STUN), RFC 8656 §18 (TURN),
//! RFC 8445 §16.1 (ICE). Values borrow from the packet.

use std::net::SocketAddr;

use crate::address::{self, AddressFamily};
use crate::{AttributeError, TransactionId};

/// An attribute type number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

#[allow(missing_docs)]
impl AttributeType {
    pub const MAPPED_ADDRESS: Self = Self(0x0001);
    pub const USERNAME: Self = Self(0x0006);
    pub const MESSAGE_INTEGRITY: Self = Self(0x0008);
    pub const ERROR_CODE: Self = Self(0x0009);
    pub const UNKNOWN_ATTRIBUTES: Self = Self(0x000A);
    pub const CHANNEL_NUMBER: Self = Self(0x000C);
    pub const LIFETIME: Self = Self(0x000D);
    pub const XOR_PEER_ADDRESS: Self = Self(0x0012);
    pub const DATA: Self = Self(0x0013);
    pub const REALM: Self = Self(0x0014);
    pub const NONCE: Self = Self(0x0015);
    pub const XOR_RELAYED_ADDRESS: Self = Self(0x0016);
    pub const REQUESTED_ADDRESS_FAMILY: Self = Self(0x0017);
    pub const EVEN_PORT: Self = Self(0x0018);
    pub const REQUESTED_TRANSPORT: Self = Self(0x0019);
    pub const DONT_FRAGMENT: Self = Self(0x001A);
    pub const MESSAGE_INTEGRITY_SHA256: Self = Self(0x001C);
    pub const PASSWORD_ALGORITHM: Self = Self(0x001D);
    pub const USERHASH: Self = Self(0x001E);
    pub const XOR_MAPPED_ADDRESS: Self = Self(0x0020);
    pub const RESERVATION_TOKEN: Self = Self(0x0022);
    pub const PRIORITY: Self = Self(0x0024);
    pub const USE_CANDIDATE: Self = Self(0x0025);
    pub const PASSWORD_ALGORITHMS: Self = Self(0x8002);
    pub const ALTERNATE_DOMAIN: Self = Self(0x8003);
    pub const SOFTWARE: Self = Self(0x8022);
    pub const ALTERNATE_SERVER: Self = Self(0x8023);
    pub const FINGERPRINT: Self = Self(0x8028);
    pub const ICE_CONTROLLED: Self = Self(0x8029);
    pub const ICE_CONTROLLING: Self = Self(0x802A);
    pub const ADDITIONAL_ADDRESS_FAMILY: Self = Self(0x8000);
    pub const ADDRESS_ERROR_CODE: Self = Self(0x8001);
    pub const ICMP: Self = Self(0x8004);

    /// Comprehension-required attributes are 0x0000–0x7FFF (RFC 8489 §14).
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// True for the comprehension-required types this codec understands.
    pub fn is_known(self) -> bool {
        matches!(
            self,
            Self::MAPPED_ADDRESS
                | Self::USERNAME
                | Self::MESSAGE_INTEGRITY
                | Self::ERROR_CODE
                | Self::UNKNOWN_ATTRIBUTES
                | Self::CHANNEL_NUMBER
                | Self::LIFETIME
                | Self::XOR_PEER_ADDRESS
                | Self::DATA
                | Self::REALM
                | Self::NONCE
                | Self::XOR_RELAYED_ADDRESS
                | Self::REQUESTED_ADDRESS_FAMILY
                | Self::EVEN_PORT
                | Self::REQUESTED_TRANSPORT
                | Self::DONT_FRAGMENT
                | Self::MESSAGE_INTEGRITY_SHA256
                | Self::PASSWORD_ALGORITHM
                | Self::USERHASH
                | Self::XOR_MAPPED_ADDRESS
                | Self::RESERVATION_TOKEN
                | Self::PRIORITY
                | Self::USE_CANDIDATE
        ) || !self.is_comprehension_required()
    }
}

/// An attribute as framed in the message: type and value, padding removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub typ: AttributeType,
    /// The value, without padding.
    pub value: &'a [u8],
}

/// An ERROR-CODE value (RFC 8489 §14.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// 300–699.
    pub code: u16,
    /// Human-readable reason phrase.
    pub reason: &'a str,
}

/// PASSWORD-ALGORITHM: algorithm number and parameters (RFC 8489 §14.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    /// 0x0001 MD5, 0x0002 SHA-256 (RFC 8489 §18.5).
    pub algorithm: u16,
    /// Algorithm parameters (empty for both defined algorithms).
    pub params: &'a [u8],
}

impl PasswordAlgorithm<'_> {
    /// MD5 (RFC 8489 §18.5.1.1).
    pub const MD5: u16 = 0x0001;
    /// SHA-256 (RFC 8489 §18.5.1.2).
    pub const SHA256: u16 = 0x0002;
}

/// PASSWORD-ALGORITHMS: a list of algorithms, each padded (RFC 8489 §14.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

impl<'a> PasswordAlgorithms<'a> {
    /// The encoded list; see [`PasswordAlgorithms::iter`].
    pub fn from_encoded(bytes: &'a [u8]) -> Self {
        PasswordAlgorithms(bytes)
    }

    /// The listed algorithms. Stops at the first malformed entry.
    pub fn iter(&self) -> impl Iterator<Item = PasswordAlgorithm<'a>> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (head, tail) = rest.split_first_chunk::<4>()?;
            let algorithm = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let padded = len.next_multiple_of(4);
            let params = tail.get(..len)?;
            rest = tail.get(padded..).unwrap_or(&[]);
            Some(PasswordAlgorithm { algorithm, params })
        })
    }

    /// The encoded form.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// UNKNOWN-ATTRIBUTES: a list of 16-bit types (RFC 8489 §14.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(&'a [u8]);

impl<'a> UnknownAttributes<'a> {
    /// The listed attribute types.
    pub fn iter(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.0
            .chunks_exact(2)
            .filter_map(|c| c.first_chunk::<2>())
            .map(|c| AttributeType(u16::from_be_bytes(*c)))
    }
}

/// A decoded attribute. Values borrow from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    XorMappedAddress(SocketAddr),
    /// USERNAME (RFC 8489 §14.3), at most 512 bytes of UTF-8.
    Username(&'a str),
    /// USERHASH: SHA-256(username ":" realm) (RFC 8489 §14.4).
    Userhash(&'a [u8; 32]),
    /// MESSAGE-INTEGRITY: HMAC-SHA1 (RFC 8489 §14.5).
    MessageIntegrity(&'a [u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256, possibly truncated to 16–32 bytes (RFC 8489 §14.6).
    MessageIntegritySha256(&'a [u8]),
    /// FINGERPRINT: CRC-32 XOR 0x5354554e (RFC 8489 §14.7).
    Fingerprint(u32),
    /// ERROR-CODE (RFC 8489 §14.8).
    ErrorCode(ErrorCode<'a>),
    /// REALM (RFC 8489 §14.9).
    Realm(&'a str),
    /// NONCE (RFC 8489 §14.10).
    Nonce(&'a str),
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    UnknownAttributes(UnknownAttributes<'a>),
    /// SOFTWARE (RFC 8489 §14.14).
    Software(&'a str),
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    AlternateServer(SocketAddr),
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    AlternateDomain(&'a str),
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    ChannelNumber(u16),
    /// LIFETIME in seconds (RFC 8656 §18.2).
    Lifetime(u32),
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    XorPeerAddress(SocketAddr),
    /// DATA (RFC 8656 §18.4).
    Data(&'a [u8]),
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    XorRelayedAddress(SocketAddr),
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    RequestedAddressFamily(AddressFamily),
    /// EVEN-PORT with its R (reserve next port) bit (RFC 8656 §18.7).
    EvenPort(bool),
    /// REQUESTED-TRANSPORT protocol number, 17 for UDP (RFC 8656 §18.8).
    RequestedTransport(u8),
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    DontFragment,
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    ReservationToken([u8; 8]),
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    AdditionalAddressFamily(AddressFamily),
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    AddressErrorCode(AddressFamily, ErrorCode<'a>),
    /// ICMP (RFC 8656 §18.13).
    Icmp {
        /// ICMP type.
        typ: u8,
        /// ICMP code.
        code: u8,
        /// Type-specific data (e.g. MTU).
        data: u32,
    },
    /// PRIORITY (RFC 8445 §16.1).
    Priority(u32),
    /// USE-CANDIDATE (RFC 8445 §16.1).
    UseCandidate,
    /// ICE-CONTROLLED tie-breaker (RFC 8445 §16.1).
    IceControlled(u64),
    /// ICE-CONTROLLING tie-breaker (RFC 8445 §16.1).
    IceControlling(u64),
    /// Any other attribute, kept as bytes.
    Other(RawAttribute<'a>),
}

/// Longest USERNAME value (RFC 8489 §14.3).
const MAX_USERNAME: usize = 512;
/// Longest REALM, NONCE, SOFTWARE, reason phrase value (128 characters; RFC 8489 §14.8–14.10).
const MAX_TEXT: usize = 763;

fn text(typ: u16, value: &[u8], max: usize) -> Result<&str, AttributeError> {
    if value.len() > max {
        return Err(AttributeError::InvalidText(typ));
    }
    std::str::from_utf8(value).map_err(|_| AttributeError::InvalidText(typ))
}

fn fixed<const N: usize>(typ: u16, value: &[u8]) -> Result<[u8; N], AttributeError> {
    value.try_into().map_err(|_| AttributeError::InvalidLength {
        typ,
        len: value.len(),
    })
}

fn error_code(typ: u16, value: &[u8]) -> Result<ErrorCode<'_>, AttributeError> {
    let (head, reason) = value
        .split_first_chunk::<4>()
        .ok_or(AttributeError::InvalidLength {
            typ,
            len: value.len(),
        })?;
    let class = u16::from(head[2] & 0x07);
    let number = u16::from(head[3]);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(AttributeError::InvalidErrorCode);
    }
    Ok(ErrorCode {
        code: class * 100 + number,
        reason: text(typ, reason, MAX_TEXT)?,
    })
}

fn family(typ: u16, value: &[u8]) -> Result<AddressFamily, AttributeError> {
    let [f, _, _, _] = fixed::<4>(typ, value)?;
    AddressFamily::from_byte(f).ok_or(AttributeError::UnknownFamily(typ))
}

impl<'a> Attribute<'a> {
    /// Parses a framed attribute. `tid` is needed for XOR addresses.
    pub fn decode(raw: RawAttribute<'a>, tid: &TransactionId) -> Result<Self, AttributeError> {
        let RawAttribute { typ, value } = raw;
        let t = typ.0;
        let len_err = AttributeError::InvalidLength {
            typ: t,
            len: value.len(),
        };
        Ok(match typ {
            AttributeType::MAPPED_ADDRESS => Self::MappedAddress(address::decode(t, value, None)?),
            AttributeType::XOR_MAPPED_ADDRESS => {
                Self::XorMappedAddress(address::decode(t, value, Some(tid))?)
            }
            AttributeType::XOR_PEER_ADDRESS => {
                Self::XorPeerAddress(address::decode(t, value, Some(tid))?)
            }
            AttributeType::XOR_RELAYED_ADDRESS => {
                Self::XorRelayedAddress(address::decode(t, value, Some(tid))?)
            }
            AttributeType::ALTERNATE_SERVER => {
                Self::AlternateServer(address::decode(t, value, None)?)
            }
            AttributeType::USERNAME => Self::Username(text(t, value, MAX_USERNAME)?),
            AttributeType::USERHASH => Self::Userhash(value.try_into().map_err(|_| len_err)?),
            AttributeType::MESSAGE_INTEGRITY => {
                Self::MessageIntegrity(value.try_into().map_err(|_| len_err)?)
            }
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                if !(16..=32).contains(&value.len()) || value.len() % 4 != 0 {
                    return Err(len_err);
                }
                Self::MessageIntegritySha256(value)
            }
            AttributeType::FINGERPRINT => Self::Fingerprint(u32::from_be_bytes(fixed(t, value)?)),
            AttributeType::ERROR_CODE => Self::ErrorCode(error_code(t, value)?),
            AttributeType::REALM => Self::Realm(text(t, value, MAX_TEXT)?),
            AttributeType::NONCE => Self::Nonce(text(t, value, MAX_TEXT)?),
            AttributeType::SOFTWARE => Self::Software(text(t, value, MAX_TEXT)?),
            AttributeType::ALTERNATE_DOMAIN => Self::AlternateDomain(text(t, value, 255)?),
            AttributeType::PASSWORD_ALGORITHMS => {
                Self::PasswordAlgorithms(PasswordAlgorithms(value))
            }
            AttributeType::PASSWORD_ALGORITHM => {
                let (head, rest) = value.split_first_chunk::<4>().ok_or(len_err.clone())?;
                let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                Self::PasswordAlgorithm(PasswordAlgorithm {
                    algorithm: u16::from_be_bytes([head[0], head[1]]),
                    params: rest.get(..len).ok_or(len_err)?,
                })
            }
            AttributeType::UNKNOWN_ATTRIBUTES => {
                if value.len() % 2 != 0 {
                    return Err(len_err);
                }
                Self::UnknownAttributes(UnknownAttributes(value))
            }
            AttributeType::CHANNEL_NUMBER => {
                let [a, b, _, _] = fixed::<4>(t, value)?;
                Self::ChannelNumber(u16::from_be_bytes([a, b]))
            }
            AttributeType::LIFETIME => Self::Lifetime(u32::from_be_bytes(fixed(t, value)?)),
            AttributeType::PRIORITY => Self::Priority(u32::from_be_bytes(fixed(t, value)?)),
            AttributeType::DATA => Self::Data(value),
            AttributeType::REQUESTED_ADDRESS_FAMILY => {
                Self::RequestedAddressFamily(family(t, value)?)
            }
            AttributeType::ADDITIONAL_ADDRESS_FAMILY => {
                Self::AdditionalAddressFamily(family(t, value)?)
            }
            AttributeType::EVEN_PORT => {
                let [b] = fixed::<1>(t, value)?;
                Self::EvenPort(b & 0x80 != 0)
            }
            AttributeType::REQUESTED_TRANSPORT => {
                let [proto, _, _, _] = fixed::<4>(t, value)?;
                Self::RequestedTransport(proto)
            }
            AttributeType::DONT_FRAGMENT | AttributeType::USE_CANDIDATE => {
                if !value.is_empty() {
                    return Err(len_err);
                }
                if typ == AttributeType::DONT_FRAGMENT {
                    Self::DontFragment
                } else {
                    Self::UseCandidate
                }
            }
            AttributeType::RESERVATION_TOKEN => Self::ReservationToken(fixed(t, value)?),
            AttributeType::ADDRESS_ERROR_CODE => {
                let (head, _) = value.split_first_chunk::<4>().ok_or(len_err)?;
                let fam =
                    AddressFamily::from_byte(head[0]).ok_or(AttributeError::UnknownFamily(t))?;
                Self::AddressErrorCode(fam, error_code(t, value)?)
            }
            AttributeType::ICMP => {
                let [_, _, typ, code, d0, d1, d2, d3] = fixed::<8>(t, value)?;
                Self::Icmp {
                    typ,
                    code,
                    data: u32::from_be_bytes([d0, d1, d2, d3]),
                }
            }
            AttributeType::ICE_CONTROLLED => {
                Self::IceControlled(u64::from_be_bytes(fixed(t, value)?))
            }
            AttributeType::ICE_CONTROLLING => {
                Self::IceControlling(u64::from_be_bytes(fixed(t, value)?))
            }
            _ => Self::Other(raw),
        })
    }

    /// The attribute's type.
    pub fn typ(&self) -> AttributeType {
        match self {
            Self::MappedAddress(_) => AttributeType::MAPPED_ADDRESS,
            Self::XorMappedAddress(_) => AttributeType::XOR_MAPPED_ADDRESS,
            Self::Username(_) => AttributeType::USERNAME,
            Self::Userhash(_) => AttributeType::USERHASH,
            Self::MessageIntegrity(_) => AttributeType::MESSAGE_INTEGRITY,
            Self::MessageIntegritySha256(_) => AttributeType::MESSAGE_INTEGRITY_SHA256,
            Self::Fingerprint(_) => AttributeType::FINGERPRINT,
            Self::ErrorCode(_) => AttributeType::ERROR_CODE,
            Self::Realm(_) => AttributeType::REALM,
            Self::Nonce(_) => AttributeType::NONCE,
            Self::PasswordAlgorithms(_) => AttributeType::PASSWORD_ALGORITHMS,
            Self::PasswordAlgorithm(_) => AttributeType::PASSWORD_ALGORITHM,
            Self::UnknownAttributes(_) => AttributeType::UNKNOWN_ATTRIBUTES,
            Self::Software(_) => AttributeType::SOFTWARE,
            Self::AlternateServer(_) => AttributeType::ALTERNATE_SERVER,
            Self::AlternateDomain(_) => AttributeType::ALTERNATE_DOMAIN,
            Self::ChannelNumber(_) => AttributeType::CHANNEL_NUMBER,
            Self::Lifetime(_) => AttributeType::LIFETIME,
            Self::XorPeerAddress(_) => AttributeType::XOR_PEER_ADDRESS,
            Self::Data(_) => AttributeType::DATA,
            Self::XorRelayedAddress(_) => AttributeType::XOR_RELAYED_ADDRESS,
            Self::RequestedAddressFamily(_) => AttributeType::REQUESTED_ADDRESS_FAMILY,
            Self::EvenPort(_) => AttributeType::EVEN_PORT,
            Self::RequestedTransport(_) => AttributeType::REQUESTED_TRANSPORT,
            Self::DontFragment => AttributeType::DONT_FRAGMENT,
            Self::ReservationToken(_) => AttributeType::RESERVATION_TOKEN,
            Self::AdditionalAddressFamily(_) => AttributeType::ADDITIONAL_ADDRESS_FAMILY,
            Self::AddressErrorCode(..) => AttributeType::ADDRESS_ERROR_CODE,
            Self::Icmp { .. } => AttributeType::ICMP,
            Self::Priority(_) => AttributeType::PRIORITY,
            Self::UseCandidate => AttributeType::USE_CANDIDATE,
            Self::IceControlled(_) => AttributeType::ICE_CONTROLLED,
            Self::IceControlling(_) => AttributeType::ICE_CONTROLLING,
            Self::Other(raw) => raw.typ,
        }
    }

    /// Length of the encoded value, without padding.
    pub(crate) fn value_len(&self) -> usize {
        match self {
            Self::MappedAddress(a)
            | Self::XorMappedAddress(a)
            | Self::AlternateServer(a)
            | Self::XorPeerAddress(a)
            | Self::XorRelayedAddress(a) => address::encoded_len(*a),
            Self::Username(s)
            | Self::Realm(s)
            | Self::Nonce(s)
            | Self::Software(s)
            | Self::AlternateDomain(s) => s.len(),
            Self::Userhash(_) => 32,
            Self::MessageIntegrity(_) => 20,
            Self::MessageIntegritySha256(v) | Self::Data(v) => v.len(),
            Self::Fingerprint(_)
            | Self::Lifetime(_)
            | Self::ChannelNumber(_)
            | Self::RequestedAddressFamily(_)
            | Self::AdditionalAddressFamily(_)
            | Self::RequestedTransport(_)
            | Self::Priority(_) => 4,
            Self::ErrorCode(e) | Self::AddressErrorCode(_, e) => 4 + e.reason.len(),
            Self::PasswordAlgorithms(p) => p.0.len(),
            Self::PasswordAlgorithm(p) => 4 + p.params.len().next_multiple_of(4),
            Self::UnknownAttributes(u) => u.0.len(),
            Self::EvenPort(_) => 1,
            Self::DontFragment | Self::UseCandidate => 0,
            Self::ReservationToken(_)
            | Self::Icmp { .. }
            | Self::IceControlled(_)
            | Self::IceControlling(_) => 8,
            Self::Other(raw) => raw.value.len(),
        }
    }

    /// Appends the value (no header, no padding) to `out`.
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>, tid: &TransactionId) {
        match self {
            Self::MappedAddress(a) | Self::AlternateServer(a) => address::encode(out, *a, None),
            Self::XorMappedAddress(a) | Self::XorPeerAddress(a) | Self::XorRelayedAddress(a) => {
                address::encode(out, *a, Some(tid))
            }
            Self::Username(s)
            | Self::Realm(s)
            | Self::Nonce(s)
            | Self::Software(s)
            | Self::AlternateDomain(s) => out.extend_from_slice(s.as_bytes()),
            Self::Userhash(h) => out.extend_from_slice(&h[..]),
            Self::MessageIntegrity(h) => out.extend_from_slice(&h[..]),
            Self::MessageIntegritySha256(v) | Self::Data(v) => out.extend_from_slice(v),
            Self::Fingerprint(v) | Self::Lifetime(v) | Self::Priority(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Self::ChannelNumber(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Self::RequestedAddressFamily(f) | Self::AdditionalAddressFamily(f) => {
                out.extend_from_slice(&[f.byte(), 0, 0, 0])
            }
            Self::RequestedTransport(p) => out.extend_from_slice(&[*p, 0, 0, 0]),
            Self::ErrorCode(e) => encode_error(out, 0, e),
            Self::AddressErrorCode(f, e) => encode_error(out, f.byte(), e),
            Self::PasswordAlgorithms(p) => out.extend_from_slice(p.0),
            Self::PasswordAlgorithm(p) => {
                out.extend_from_slice(&p.algorithm.to_be_bytes());
                let len = u16::try_from(p.params.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(p.params);
                out.resize(
                    out.len() + (p.params.len().next_multiple_of(4) - p.params.len()),
                    0,
                );
            }
            Self::UnknownAttributes(u) => out.extend_from_slice(u.0),
            Self::EvenPort(r) => out.push(if *r { 0x80 } else { 0 }),
            Self::DontFragment | Self::UseCandidate => {}
            Self::ReservationToken(t) => out.extend_from_slice(t),
            Self::Icmp { typ, code, data } => {
                out.extend_from_slice(&[0, 0, *typ, *code]);
                out.extend_from_slice(&data.to_be_bytes());
            }
            Self::IceControlled(v) | Self::IceControlling(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Self::Other(raw) => out.extend_from_slice(raw.value),
        }
    }
}

fn encode_error(out: &mut Vec<u8>, first: u8, e: &ErrorCode<'_>) {
    let class = u8::try_from(e.code / 100).unwrap_or(0) & 0x07;
    let number = u8::try_from(e.code % 100).unwrap_or(0);
    out.extend_from_slice(&[first, 0, class, number]);
    out.extend_from_slice(e.reason.as_bytes());
}

impl<'a> UnknownAttributes<'a> {
    /// An UNKNOWN-ATTRIBUTES value over an encoded list of 16-bit types.
    pub fn from_encoded(bytes: &'a [u8]) -> Self {
        UnknownAttributes(bytes)
    }
}
