//! Allocation quotas shared by every worker of a server: per user, per
//! client IP and in total (RFC 8656 §7.2: 486 Allocation Quota Reached,
//! 508 Insufficient Capacity).
//!
//! The data path never touches it: only Allocate and the end of an
//! allocation do, so one mutex serves any number of workers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

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

/// Live allocation counts, shared (in an `Arc`) by all workers.
#[derive(Debug)]
pub struct Ledger {
    quotas: Quotas,
    counts: Mutex<Counts>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(quotas: Quotas) -> Self {
        Ledger {
            quotas,
            counts: Mutex::new(Counts::default()),
        }
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
}
