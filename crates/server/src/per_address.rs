//! Connections per client address, one rule for every listener that counts
//! them: signaling WebSockets (`--max-ws-per-ip`) and TURN over TCP/TLS
//! (`--max-tcp-per-ip`). A slot is taken before a connection is served and
//! given back when it ends (the slot's `Drop`), so one client cannot hold
//! every connection.
//!
//! The address is the TCP peer's: behind a reverse proxy every client counts
//! as the proxy. IPv4-mapped IPv6 addresses (a dual-stack listener) count as
//! their IPv4 address, and IPv6 addresses count per /64 — the prefix one
//! subscriber usually holds, so walking the addresses of one's own prefix
//! does not get around the limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Open connections per client address, up to a limit.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<ConnectionsPerIp>,
    key: IpAddr,
}

impl ConnectionsPerIp {
    /// A table allowing `limit` connections per address (at least 1).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ConnectionsPerIp {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for a connection from `ip`, or `None` if that address already
    /// has `limit` connections open.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = client_key(ip);
        let mut open = self.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            owner: Arc::clone(self),
            key,
        })
    }

    /// Connections open from `ip` (counted as [`ConnectionsPerIp::try_acquire`] does).
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().get(&client_key(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are updated in one step each; a poisoned lock holds no half-done update.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What `ip` is counted as: IPv4 as is (also when IPv4-mapped), IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = v6.to_bits() & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from_bits(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn limit_per_address_and_drop_gives_back() {
        let table = ConnectionsPerIp::new(2);
        let a1 = table.try_acquire(ip("192.0.2.1"));
        let a2 = table.try_acquire(ip("192.0.2.1"));
        assert!(a1.is_some() && a2.is_some());
        assert!(table.try_acquire(ip("192.0.2.1")).is_none());
        // Another address is not affected.
        let b = table.try_acquire(ip("192.0.2.2"));
        assert!(b.is_some());
        assert_eq!(table.open_from(ip("192.0.2.1")), 2);
        drop(a1);
        assert_eq!(table.open_from(ip("192.0.2.1")), 1);
        let a3 = table.try_acquire(ip("192.0.2.1"));
        assert!(a3.is_some());
        assert!(table.try_acquire(ip("192.0.2.1")).is_none());
        drop((a2, a3, b));
        assert!(table.lock().is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let table = ConnectionsPerIp::new(1);
        let first = table.try_acquire(ip("2001:db8:1:2::1"));
        assert!(first.is_some());
        assert!(table.try_acquire(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(table.try_acquire(ip("2001:db8:1:3::1")).is_some());
        let v4 = table.try_acquire(ip("198.51.100.7"));
        assert!(v4.is_some());
        assert!(table.try_acquire(ip("::ffff:198.51.100.7")).is_none());
        // Other mapped IPv4 addresses do not share one /64 bucket.
        assert!(table.try_acquire(ip("::ffff:198.51.100.8")).is_some());
    }

    #[test]
    fn a_limit_of_zero_still_admits_one() {
        let table = ConnectionsPerIp::new(0);
        assert_eq!(table.limit(), 1);
        let one = table.try_acquire(ip("192.0.2.1"));
        assert!(one.is_some());
        assert!(table.try_acquire(ip("192.0.2.1")).is_none());
    }
}
