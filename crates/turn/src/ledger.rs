//! What every worker of a server shares about allocations: quotas per
//! user, per client IP and in total (RFC 8656 §7.2: 486 Allocation Quota
//! Reached, 508 Insufficient Capacity), and the ports held for a later
//! Allocate with RESERVATION-TOKEN (RFC 8656 §7.2), which may reach any
//! worker: the kernel spreads a client's sockets over workers by port.
//!
//! The data path never touches it: only Allocate and the end of an
//! allocation do, so one mutex serves any number of workers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Why an allocation may not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaError {
    /// The user or the client IP holds its maximum (486).
    Quota,
    /// The server holds its maximum (508).
    Capacity,
}

/// The limits a [`Ledger`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Allocations per user.
    pub per_user: usize,
    /// Allocations per client IP.
    pub per_ip: usize,
    /// Allocations in total.
    pub total: usize,
}

#[derive(Debug, Default)]
struct Counts {
    users: HashMap<Box<str>, usize>,
    ips: HashMap<IpAddr, usize>,
    total: usize,
}

/// Live allocation counts and held ports, shared (in an `Arc`) by all workers.
#[derive(Debug)]
pub struct Ledger {
    quotas: Quotas,
    counts: Mutex<Counts>,
    /// Reservation token → (held relay address, until when).
    held: Mutex<HashMap<[u8; 8], (SocketAddr, Instant)>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(quotas: Quotas) -> Self {
        Ledger {
            quotas,
            counts: Mutex::new(Counts::default()),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], (SocketAddr, Instant)>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `relay` for the Allocate that brings `token`, until `until`.
    pub fn hold(&self, token: [u8; 8], relay: SocketAddr, until: Instant) {
        self.held().insert(token, (relay, until));
    }

    /// The address held for `token`, given up by the ledger (a token works
    /// once); `None` if unknown or expired at `now`.
    pub fn take_held(&self, token: &[u8; 8], now: Instant) -> Option<SocketAddr> {
        self.held()
            .remove(token)
            .filter(|(_, until)| *until > now)
            .map(|(relay, _)| relay)
    }

    /// Whether `relay` is held for a token at `now`.
    pub fn is_held(&self, relay: SocketAddr, now: Instant) -> bool {
        self.held()
            .values()
            .any(|(r, until)| *r == relay && *until > now)
    }

    /// The token `relay` is held for at `now`, if any.
    pub fn token_holding(&self, relay: SocketAddr, now: Instant) -> Option<[u8; 8]> {
        self.held()
            .iter()
            .find(|(_, (r, until))| *r == relay && *until > now)
            .map(|(t, _)| *t)
    }

    /// Forgets what expired by `now`.
    pub fn expire_held(&self, now: Instant) {
        self.held().retain(|_, (_, until)| *until > now);
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new allocation of `user` from `ip`, if within the quotas.
    pub fn reserve(&self, user: &str, ip: IpAddr) -> Result<(), QuotaError> {
        let mut c = self.counts();
        if c.users.get(user).copied().unwrap_or(0) >= self.quotas.per_user
            || c.ips.get(&ip).copied().unwrap_or(0) >= self.quotas.per_ip
        {
            return Err(QuotaError::Quota);
        }
        if c.total >= self.quotas.total {
            return Err(QuotaError::Capacity);
        }
        *c.users.entry(user.into()).or_insert(0) += 1;
        *c.ips.entry(ip).or_insert(0) += 1;
        c.total += 1;
        Ok(())
    }

    /// Gives back what [`Ledger::reserve`] counted.
    pub fn release(&self, user: &str, ip: IpAddr) {
        let mut c = self.counts();
        if let Some(n) = c.users.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.users.remove(user);
            }
        }
        if let Some(n) = c.ips.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.ips.remove(&ip);
            }
        }
        c.total = c.total.saturating_sub(1);
    }

    /// Allocations counted now.
    pub fn total(&self) -> usize {
        self.counts().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_release() {
        let l = Ledger::new(Quotas {
            per_user: 2,
            per_ip: 3,
            total: 4,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.reserve("u", a), Ok(()));
        assert_eq!(l.reserve("u", a), Ok(()));
        assert_eq!(l.reserve("u", a), Err(QuotaError::Quota));
        assert_eq!(l.reserve("v", a), Ok(()));
        assert_eq!(l.reserve("w", a), Err(QuotaError::Quota));
        assert_eq!(l.reserve("w", b), Ok(()));
        assert_eq!(l.reserve("x", b), Err(QuotaError::Capacity));
        l.release("u", a);
        assert_eq!(l.total(), 3);
        assert_eq!(l.reserve("x", b), Ok(()));
    }

    #[test]
    fn held_ports_once_and_until_expiry() {
        let l = Ledger::new(Quotas {
            per_user: 1,
            per_ip: 1,
            total: 1,
        });
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(30);
        let relay: SocketAddr = "192.0.2.1:50001".parse().unwrap();
        l.hold([1; 8], relay, later);
        assert!(l.is_held(relay, now));
        assert_eq!(l.token_holding(relay, now), Some([1; 8]));
        assert_eq!(l.take_held(&[2; 8], now), None);
        assert_eq!(l.take_held(&[1; 8], now), Some(relay));
        assert_eq!(l.take_held(&[1; 8], now), None, "a token works once");
        assert!(!l.is_held(relay, now));
        l.hold([3; 8], relay, later);
        assert!(!l.is_held(relay, later));
        assert_eq!(l.take_held(&[3; 8], later), None, "expired");
        l.hold([4; 8], relay, later);
        l.expire_held(later);
        assert_eq!(l.token_holding(relay, now), None);
    }
}
