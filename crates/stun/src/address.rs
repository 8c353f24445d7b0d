//! MAPPED-ADDRESS and the XOR-*-ADDRESS family (RFC 8489 §14.1, §14.2),
//! and the address family byte of RFC 8656 §18.8 and §18.12.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{AttributeError, MAGIC_COOKIE, TransactionId};

/// An IP address family as STUN encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 0x01.
    V4,
    /// 0x02.
    V6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(AddressFamily::V4),
            0x02 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }
}

/// Reads an address value; with `xor`, undoes the XOR with cookie and transaction id.
pub(crate) fn decode(
    typ: u16,
    value: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr, AttributeError> {
    let bad_len = || AttributeError::InvalidLength {
        typ,
        len: value.len(),
    };
    let (head, addr) = value.split_first_chunk::<4>().ok_or_else(bad_len)?;
    let [_, family, p0, p1] = *head;
    let mut port = u16::from_be_bytes([p0, p1]);
    let cookie = MAGIC_COOKIE.to_be_bytes();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match AddressFamily::from_byte(family) {
        Some(AddressFamily::V4) => {
            let mut b: [u8; 4] = addr.try_into().map_err(|_| bad_len())?;
            if xor.is_some() {
                for (x, k) in b.iter_mut().zip(cookie) {
                    *x ^= k;
                }
            }
            Ok(SocketAddr::new(Ipv4Addr::from(b).into(), port))
        }
        Some(AddressFamily::V6) => {
            let mut b: [u8; 16] = addr.try_into().map_err(|_| bad_len())?;
            if let Some(tid) = xor {
                for (x, k) in b.iter_mut().zip(cookie.iter().chain(tid.0.iter())) {
                    *x ^= k;
                }
            }
            Ok(SocketAddr::new(Ipv6Addr::from(b).into(), port))
        }
        None => Err(AttributeError::UnknownFamily(typ)),
    }
}

/// Appends an address value; with `xor`, XORs with cookie and transaction id.
pub(crate) fn encode(out: &mut Vec<u8>, addr: SocketAddr, xor: Option<&TransactionId>) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = addr.port();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    out.push(0);
    out.push(AddressFamily::of(addr.ip()).byte());
    out.extend_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut b = ip.octets();
            if xor.is_some() {
                for (x, k) in b.iter_mut().zip(cookie) {
                    *x ^= k;
                }
            }
            out.extend_from_slice(&b);
        }
        IpAddr::V6(ip) => {
            let mut b = ip.octets();
            if let Some(tid) = xor {
                for (x, k) in b.iter_mut().zip(cookie.iter().chain(tid.0.iter())) {
                    *x ^= k;
                }
            }
            out.extend_from_slice(&b);
        }
    }
}

/// Length of an encoded address value.
pub(crate) fn encoded_len(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_families_plain_and_xor() {
        let tid = TransactionId([7; 12]);
        for addr in [
            "192.0.2.1:32853".parse::<SocketAddr>(),
            "[2001:db8::1]:3478".parse::<SocketAddr>(),
        ] {
            let Ok(addr) = addr else { unreachable!() };
            for xor in [None, Some(&tid)] {
                let mut v = Vec::new();
                encode(&mut v, addr, xor);
                assert_eq!(v.len(), encoded_len(addr));
                assert_eq!(decode(0x20, &v, xor), Ok(addr));
            }
        }
    }

    #[test]
    fn rejects_bad_lengths_and_families() {
        assert!(decode(0x20, &[0, 1, 0], None).is_err());
        assert!(decode(0x20, &[0, 1, 0, 0, 1, 2, 3], None).is_err());
        assert!(decode(0x20, &[0, 3, 0, 0, 1, 2, 3, 4], None).is_err());
        assert!(decode(0x20, &[0, 2, 0, 0, 1, 2, 3, 4], None).is_err());
    }
}
