//! One allocation's state: relayed address, lifetime, permissions and
//! channel bindings (RFC 8656 §6, §9, §12). Plain data; the server decides.
//!
//! Memory: most allocations on a busy server are idle or have not installed
//! a permission yet, so the permission and channel tables live behind one
//! pointer that is allocated on the first permission (an idle allocation
//! does not pay for three empty tables).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::auth::Key;
use crate::policy::Reach;

/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// How long an expired channel number or peer stays unusable for another
/// binding (RFC 8656 §12: 5 minutes after expiry).
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// A channel binding.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// The peer bound to the channel.
    pub peer: SocketAddr,
    /// When the binding expires; after that it is in cooldown until
    /// `expires + CHANNEL_COOLDOWN`.
    pub expires: Instant,
}

/// An allocation on a relay address, owned by one client 5-tuple.
#[derive(Debug)]
pub struct Allocation {
    /// The local relay socket address (what the driver bound).
    pub relay: SocketAddr,
    /// The relay address advertised to the client (differs behind 1:1 NAT).
    pub advertised: SocketAddr,
    /// Expiry of the allocation.
    pub expires: Instant,
    /// The user that created it; later requests must use the same one (441).
    pub username: Box<str>,
    /// The long-term key derived once when the allocation was created.
    pub key: Key,
    /// Permissions and channels, allocated with the first permission.
    peers: Option<Box<PeerTables>>,
    /// Relay budget when a per-allocation bandwidth limit is set.
    pub bandwidth: crate::rate_limit::TokenBucket,
    /// The transaction id of the Allocate request that created this
    /// allocation, so that a retransmission gets the same success (RFC 8656 §7.2).
    pub allocate_tid: stun::TransactionId,
}

/// A permission for one peer IP (RFC 8656 §9).
#[derive(Debug, Clone, Copy)]
struct Permission {
    expires: Instant,
    /// Which ports of the IP it covers (see [`Reach`]).
    reach: Reach,
}

/// An allocation's permissions and channel bindings.
#[derive(Debug, Default)]
struct PeerTables {
    /// Per-peer-IP permissions.
    permissions: HashMap<IpAddr, Permission>,
    /// Channel number → binding.
    channels: HashMap<u16, Channel>,
    /// Peer address → channel number.
    channel_of_peer: HashMap<SocketAddr, u16>,
}

/// Why a ChannelBind is refused (all map to 400, RFC 8656 §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The channel is bound (or cooling down) to another peer.
    ChannelTaken,
    /// The peer is bound (or cooling down) to another channel.
    PeerTaken,
}

impl Allocation {
    /// A new allocation without permissions or channels.
    pub fn new(
        relay: SocketAddr,
        advertised: SocketAddr,
        expires: Instant,
        username: Box<str>,
        key: Key,
        bandwidth: crate::rate_limit::TokenBucket,
        allocate_tid: stun::TransactionId,
    ) -> Self {
        Allocation {
            relay,
            advertised,
            expires,
            username,
            key,
            peers: None,
            bandwidth,
            allocate_tid,
        }
    }

    fn peers_mut(&mut self) -> &mut PeerTables {
        self.peers.get_or_insert_with(Box::default)
    }

    /// True if a live permission for the peer's IP covers its port.
    pub fn permits(&self, peer: SocketAddr, now: Instant) -> bool {
        self.peers
            .as_ref()
            .and_then(|p| p.permissions.get(&peer.ip()))
            .is_some_and(|p| p.expires > now && p.reach.admits(peer.port()))
    }

    /// True if the permission table has an entry for `peer` (live or not yet swept).
    pub fn has_permission_entry(&self, peer: IpAddr) -> bool {
        self.peers
            .as_ref()
            .is_some_and(|p| p.permissions.contains_key(&peer))
    }

    /// Entries in the permission table (live or not yet swept).
    pub fn permission_count(&self) -> usize {
        self.peers.as_ref().map_or(0, |p| p.permissions.len())
    }

    /// True if `channel` is bound or cooling down.
    pub fn has_channel_entry(&self, channel: u16) -> bool {
        self.peers
            .as_ref()
            .is_some_and(|p| p.channels.contains_key(&channel))
    }

    /// Channels bound or cooling down.
    pub fn channel_count(&self) -> usize {
        self.peers.as_ref().map_or(0, |p| p.channels.len())
    }

    /// Installs or refreshes a permission (RFC 8656 §9.2) reaching `reach`
    /// of the IP's ports.
    pub fn add_permission(&mut self, peer: IpAddr, reach: Reach, now: Instant) {
        let expires = now + PERMISSION_LIFETIME;
        self.peers_mut()
            .permissions
            .insert(peer, Permission { expires, reach });
    }

    /// The live channel bound to `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let p = self.peers.as_deref()?;
        let n = *p.channel_of_peer.get(&peer)?;
        let ch = p.channels.get(&n)?;
        (ch.expires > now).then_some(n)
    }

    /// The peer of a live channel.
    pub fn peer_for_channel(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        let ch = self.peers.as_deref()?.channels.get(&channel)?;
        (ch.expires > now).then_some(ch.peer)
    }

    /// Binds or refreshes `channel` to `peer` (RFC 8656 §12.2), also
    /// installing a permission for the peer's IP reaching `reach`.
    pub fn bind_channel(
        &mut self,
        channel: u16,
        peer: SocketAddr,
        reach: Reach,
        now: Instant,
    ) -> Result<(), BindError> {
        self.peers_mut().bind_channel(channel, peer, now)?;
        self.add_permission(peer.ip(), reach, now);
        Ok(())
    }

    /// Drops expired permissions and channels past their cooldown; the
    /// tables go when they are empty.
    pub fn sweep(&mut self, now: Instant) {
        if let Some(p) = &mut self.peers {
            p.sweep(now);
            if p.permissions.is_empty() && p.channels.is_empty() {
                self.peers = None;
            }
        }
    }

    /// The earliest instant at which [`Allocation::sweep`] has work to do,
    /// or the allocation itself expires.
    pub fn next_deadline(&self) -> Instant {
        let Some(p) = self.peers.as_deref() else {
            return self.expires;
        };
        let perm = p.permissions.values().map(|p| p.expires);
        let chan = p.channels.values().map(|c| c.expires + CHANNEL_COOLDOWN);
        perm.chain(chan).fold(self.expires, Instant::min)
    }
}

impl PeerTables {
    fn bind_channel(
        &mut self,
        channel: u16,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), BindError> {
        if let Some(ch) = self.channels.get(&channel) {
            let in_use = ch.expires + CHANNEL_COOLDOWN > now;
            if ch.peer != peer && in_use {
                return Err(BindError::ChannelTaken);
            }
        }
        if let Some(&n) = self.channel_of_peer.get(&peer) {
            let in_use = self
                .channels
                .get(&n)
                .is_some_and(|ch| ch.expires + CHANNEL_COOLDOWN > now);
            if n != channel && in_use {
                return Err(BindError::PeerTaken);
            }
        }
        if let Some(old) = self.channels.insert(
            channel,
            Channel {
                peer,
                expires: now + CHANNEL_LIFETIME,
            },
        ) && old.peer != peer
        {
            self.channel_of_peer.remove(&old.peer);
        }
        if let Some(old) = self.channel_of_peer.insert(peer, channel)
            && old != channel
        {
            self.channels.remove(&old);
        }
        Ok(())
    }

    fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|_, p| p.expires > now);
        let mut gone = Vec::new();
        self.channels.retain(|_, ch| {
            let keep = ch.expires + CHANNEL_COOLDOWN > now;
            if !keep {
                gone.push(ch.peer);
            }
            keep
        });
        for peer in gone {
            self.channel_of_peer.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(now: Instant) -> Allocation {
        Allocation::new(
            "127.0.0.1:50000".parse().unwrap(),
            "127.0.0.1:50000".parse().unwrap(),
            now + Duration::from_secs(600),
            "u".into(),
            Key::md5([0; 16]),
            crate::rate_limit::TokenBucket::full(
                crate::rate_limit::Rate {
                    per_second: 0.0,
                    burst: 0.0,
                },
                0,
            ),
            stun::TransactionId([0; 12]),
        )
    }

    #[test]
    fn permission_expires_after_300s() {
        let t0 = Instant::now();
        let mut a = alloc(t0);
        let peer: SocketAddr = "198.51.100.1:9".parse().unwrap();
        assert!(!a.permits(peer, t0));
        a.add_permission(peer.ip(), Reach::AnyPort, t0);
        assert!(a.permits(peer, t0 + Duration::from_secs(299)));
        assert!(!a.permits(peer, t0 + Duration::from_secs(300)));
        a.sweep(t0 + Duration::from_secs(301));
        assert_eq!(a.permission_count(), 0);
        assert!(a.peers.is_none(), "empty tables are freed");
    }

    const ANY: Reach = Reach::AnyPort;

    #[test]
    fn one_port_permission_covers_that_port_only() {
        let t0 = Instant::now();
        let mut a = alloc(t0);
        let sfu: SocketAddr = "10.0.0.5:3480".parse().unwrap();
        a.add_permission(sfu.ip(), Reach::OnlyPort(3480), t0);
        assert!(a.permits(sfu, t0));
        assert!(!a.permits("10.0.0.5:22".parse().unwrap(), t0));
        assert!(!a.permits(sfu, t0 + PERMISSION_LIFETIME));
    }

    #[test]
    fn channel_rebinding_rules() {
        let t0 = Instant::now();
        let mut a = alloc(t0);
        let p1: SocketAddr = "198.51.100.1:1000".parse().unwrap();
        let p2: SocketAddr = "198.51.100.2:2000".parse().unwrap();
        assert_eq!(a.bind_channel(0x4000, p1, ANY, t0), Ok(()));
        // Refresh with the same pair is fine.
        assert_eq!(
            a.bind_channel(0x4000, p1, ANY, t0 + Duration::from_secs(1)),
            Ok(())
        );
        assert_eq!(
            a.bind_channel(0x4000, p2, ANY, t0),
            Err(BindError::ChannelTaken)
        );
        assert_eq!(
            a.bind_channel(0x4001, p1, ANY, t0),
            Err(BindError::PeerTaken)
        );
        assert!(a.permits(p1, t0));
        assert!(a.permits(SocketAddr::new(p1.ip(), 7), t0), "every port");
        // Expired at 601 s, but cooling down for 5 more minutes.
        let t = t0 + Duration::from_secs(602);
        assert_eq!(a.peer_for_channel(0x4000, t), None);
        assert_eq!(
            a.bind_channel(0x4000, p2, ANY, t),
            Err(BindError::ChannelTaken)
        );
        let t = t0 + Duration::from_secs(1 + 600 + 300);
        assert_eq!(a.bind_channel(0x4000, p2, ANY, t), Ok(()));
        assert_eq!(a.channel_for_peer(p2, t), Some(0x4000));
        assert_eq!(a.channel_for_peer(p1, t), None);
        assert_eq!(a.bind_channel(0x4001, p1, ANY, t), Ok(()));
    }
}
