//! The byte layouts of the map keys and values, the same as the structs in
//! `bpf/relay.h` (no padding the compiler chooses: every struct there
//! has explicit pad fields). Addresses are 16 bytes, IPv4 as
//! `::ffff:a.b.c.d`; ports and channel numbers in network order; slots in
//! native order.

use std::net::{IpAddr, SocketAddr};

use crate::types::{CHANNEL_FIRST, CHANNEL_LAST, Channel, ChannelKey, OffloadError};

/// `AF_INET` / `AF_INET6` as the kernel numbers them.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// `struct chan_key`, `struct chan_route`, `struct peer_key`.
pub(crate) type Key40 = [u8; 40];
/// `struct peer_route`.
pub(crate) type PeerRoute = [u8; 44];
/// `struct counters`: to_peer packets, bytes; to_client packets, bytes; charged.
pub(crate) type CounterWords = [u64; 5];

/// `::ffff:a.b.c.d` (IPv4) or the IPv6 address, and the family; an
/// IPv4-mapped IPv6 address counts as IPv4, as the server canonicalizes.
fn addr(a: SocketAddr) -> ([u8; 16], u8) {
    match a.ip().to_canonical() {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), AF_INET),
        IpAddr::V6(v6) => (v6.octets(), AF_INET6),
    }
}

/// The family every address of `ch` shares.
pub(crate) fn family(ch: &Channel) -> Result<u8, OffloadError> {
    let f = addr(ch.key.client).1;
    let all = [ch.key.server, ch.relay, ch.peer];
    if all.iter().any(|&a| addr(a).1 != f) {
        return Err(OffloadError::MixedFamily);
    }
    if !(CHANNEL_FIRST..=CHANNEL_LAST).contains(&ch.key.channel) {
        return Err(OffloadError::BadChannel(ch.key.channel));
    }
    Ok(f)
}

/// Copies `bytes` into `out` from `at` on (what does not fit is dropped;
/// every caller fits).
fn put<const N: usize>(out: &mut [u8; N], at: usize, bytes: &[u8]) {
    for (o, b) in out.iter_mut().skip(at).zip(bytes) {
        *o = *b;
    }
}

/// Two addresses and their ports: the first 36 bytes of every layout.
fn pair<const N: usize>(a: SocketAddr, b: SocketAddr) -> [u8; N] {
    let mut out = [0; N];
    put(&mut out, 0, &addr(a).0);
    put(&mut out, 16, &addr(b).0);
    put(&mut out, 32, &a.port().to_be_bytes());
    put(&mut out, 34, &b.port().to_be_bytes());
    out
}

/// `struct chan_key` for `key`.
pub(crate) fn chan_key(key: &ChannelKey, family: u8) -> Key40 {
    let mut k = pair(key.client, key.server);
    put(&mut k, 36, &key.channel.to_be_bytes());
    put(&mut k, 38, &[family]);
    k
}

/// `struct chan_route`: relay and peer, and the counters slot.
pub(crate) fn chan_route(ch: &Channel, slot: u32) -> Key40 {
    let mut v = pair(ch.relay, ch.peer);
    put(&mut v, 36, &slot.to_ne_bytes());
    v
}

/// `struct peer_key`: the peer's datagram to the relay address.
pub(crate) fn peer_key(ch: &Channel, family: u8) -> Key40 {
    let mut k = pair(ch.peer, ch.relay);
    put(&mut k, 36, &[family]);
    k
}

/// `struct peer_route`: client, server, channel and the counters slot.
pub(crate) fn peer_route(ch: &Channel, slot: u32) -> PeerRoute {
    let mut v = pair(ch.key.client, ch.key.server);
    put(&mut v, 36, &ch.key.channel.to_be_bytes());
    put(&mut v, 40, &slot.to_ne_bytes());
    v
}

/// `ports` holds two 65536-bit sets of 1024 words: listen, then relay.
pub(crate) const PORT_WORDS: u32 = 1024;

/// The word index and bit of `port` in the set starting at `base`.
pub(crate) fn port_bit(base: u32, port: u16) -> (u32, u64) {
    (base + u32::from(port >> 6), 1 << (port & 63))
}

/// The canonical form of an entry (IPv4-mapped addresses as IPv4), so the
/// userspace tables agree with the kernel's keys.
pub(crate) fn canonical(ch: &Channel) -> Channel {
    let c = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    Channel {
        key: ChannelKey {
            client: c(ch.key.client),
            server: c(ch.key.server),
            channel: ch.key.channel,
        },
        relay: c(ch.relay),
        peer: c(ch.peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(client: &str, server: &str, relay: &str, peer: &str) -> Channel {
        Channel {
            key: ChannelKey {
                client: client.parse().unwrap(),
                server: server.parse().unwrap(),
                channel: 0x4001,
            },
            relay: relay.parse().unwrap(),
            peer: peer.parse().unwrap(),
        }
    }

    #[test]
    fn layouts() {
        let c = ch(
            "10.0.0.2:5000",
            "10.0.0.1:3478",
            "10.1.0.1:50000",
            "10.1.0.2:6000",
        );
        let f = family(&c).unwrap();
        assert_eq!(f, AF_INET);
        let k = chan_key(&c.key, f);
        assert_eq!(&k[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&k[12..16], &[10, 0, 0, 2]);
        assert_eq!(&k[28..32], &[10, 0, 0, 1]);
        assert_eq!(&k[32..40], &[0x13, 0x88, 0x0d, 0x96, 0x40, 0x01, 2, 0]);
        let r = chan_route(&c, 7);
        assert_eq!(&r[32..36], &[0xc3, 0x50, 0x17, 0x70]);
        assert_eq!(&r[36..40], &7u32.to_ne_bytes());
        let pk = peer_key(&c, f);
        assert_eq!(&pk[12..16], &[10, 1, 0, 2]);
        assert_eq!(&pk[28..32], &[10, 1, 0, 1]);
        assert_eq!(&pk[32..40], &[0x17, 0x70, 0xc3, 0x50, 2, 0, 0, 0]);
        let pr = peer_route(&c, 7);
        assert_eq!(&pr[32..40], &[0x13, 0x88, 0x0d, 0x96, 0x40, 0x01, 0, 0]);
        assert_eq!(&pr[40..], &7u32.to_ne_bytes());
    }

    #[test]
    fn families_and_channels() {
        let v6 = ch(
            "[fd00::2]:1",
            "[fd00::1]:3478",
            "[fd01::1]:2",
            "[fd01::2]:3",
        );
        assert_eq!(family(&v6).unwrap(), AF_INET6);
        assert_eq!(chan_key(&v6.key, AF_INET6)[38], AF_INET6);
        let mixed = ch("10.0.0.2:1", "10.0.0.1:3478", "[fd01::1]:2", "[fd01::2]:3");
        assert!(matches!(family(&mixed), Err(OffloadError::MixedFamily)));
        // An IPv4-mapped address is IPv4.
        let mapped = ch(
            "[::ffff:10.0.0.2]:1",
            "10.0.0.1:3478",
            "10.1.0.1:2",
            "10.1.0.2:3",
        );
        assert_eq!(family(&mapped).unwrap(), AF_INET);
        assert_eq!(canonical(&mapped).key.client, "10.0.0.2:1".parse().unwrap());
        let mut bad = v6;
        bad.key.channel = 0x8000;
        assert!(matches!(
            family(&bad),
            Err(OffloadError::BadChannel(0x8000))
        ));
        bad.key.channel = 0x3fff;
        assert!(matches!(
            family(&bad),
            Err(OffloadError::BadChannel(0x3fff))
        ));
    }

    #[test]
    fn port_bits() {
        assert_eq!(port_bit(0, 3478), (54, 1 << 22));
        assert_eq!(port_bit(PORT_WORDS, 65535), (2047, 1 << 63));
    }
}
