//! Bounded rate limiting: token buckets in a fixed table indexed by a keyed
//! hash, so that limiting any number of sources costs constant memory and
//! no allocation. Two sources that share a slot share a budget — a
//! deliberate trade for keeping unauthenticated clients stateless.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f32,
    /// Milliseconds since the owner's epoch at the last refill.
    last_ms: u32,
}

/// Rate and burst of a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f32,
    /// Most tokens held.
    pub burst: f32,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(rate: Rate, now_ms: u32) -> Self {
        TokenBucket {
            tokens: rate.burst,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: Rate, now_ms: u32) {
        let elapsed = now_ms.wrapping_sub(self.last_ms) as f32 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last_ms = now_ms;
    }

    /// Takes `n` tokens if there are that many.
    pub fn take(&mut self, rate: Rate, now_ms: u32, n: f32) -> bool {
        self.refill(rate, now_ms);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens whether or not there are that many (for what was
    /// already sent elsewhere): the bucket may go into debt, down to minus
    /// one burst, and refills from there.
    pub fn charge(&mut self, rate: Rate, now_ms: u32, n: f32) {
        self.refill(rate, now_ms);
        self.tokens = (self.tokens - n).max(-rate.burst);
    }

    /// Tokens now held (after refilling; negative while in debt).
    pub fn level(&mut self, rate: Rate, now_ms: u32) -> f32 {
        self.refill(rate, now_ms);
        self.tokens
    }
}

/// Outcome of [`RateTable::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit; this is the first refusal of the burst (log it).
    FirstRefusal,
    /// Over the limit again (do not log).
    Refused,
}

/// A fixed table of token buckets, one per hashed key.
pub struct RateTable {
    rate: Rate,
    slots: Box<[Slot]>,
    hasher: RandomState,
    epoch: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    bucket: TokenBucket,
    /// Set when a refusal was reported; cleared when the bucket refills.
    reported: bool,
}

impl std::fmt::Debug for RateTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateTable")
            .field("rate", &self.rate)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl RateTable {
    /// A table of `slots` buckets (rounded up to a power of two).
    pub fn new(rate: Rate, slots: usize, now: Instant) -> Self {
        let n = slots.max(1).next_power_of_two();
        RateTable {
            rate,
            slots: vec![
                Slot {
                    bucket: TokenBucket::full(rate, 0),
                    reported: false,
                };
                n
            ]
            .into_boxed_slice(),
            hasher: RandomState::new(),
            epoch: now,
        }
    }

    fn now_ms(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX)
    }

    fn slot<K: Hash>(&mut self, key: &K) -> Option<&mut Slot> {
        let h = self.hasher.hash_one(key);
        let i = usize::try_from(h).unwrap_or(0) & (self.slots.len() - 1);
        self.slots.get_mut(i)
    }

    /// Takes one token for `key`.
    pub fn take<K: Hash>(&mut self, key: &K, now: Instant) -> Verdict {
        let (rate, ms) = (self.rate, self.now_ms(now));
        let Some(slot) = self.slot(key) else {
            return Verdict::Allowed;
        };
        if slot.bucket.take(rate, ms, 1.0) {
            if slot.bucket.tokens >= rate.burst / 2.0 {
                slot.reported = false;
            }
            return Verdict::Allowed;
        }
        if slot.reported {
            Verdict::Refused
        } else {
            slot.reported = true;
            Verdict::FirstRefusal
        }
    }

    /// True if `key` has a token left (without taking it).
    pub fn has_budget<K: Hash>(&mut self, key: &K, now: Instant) -> bool {
        let (rate, ms) = (self.rate, self.now_ms(now));
        self.slot(key)
            .is_none_or(|s| s.bucket.level(rate, ms) >= 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate() {
        let rate = Rate {
            per_second: 2.0,
            burst: 4.0,
        };
        let mut b = TokenBucket::full(rate, 0);
        for _ in 0..4 {
            assert!(b.take(rate, 0, 1.0));
        }
        assert!(!b.take(rate, 0, 1.0));
        assert!(!b.take(rate, 499, 1.0));
        assert!(b.take(rate, 500, 1.0));
        assert!(b.take(rate, 10_000, 4.0));
    }

    #[test]
    fn table_limits_per_key_and_reports_once_per_burst() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 1.0,
            burst: 3.0,
        };
        let mut t = RateTable::new(rate, 1024, t0);
        for _ in 0..3 {
            assert_eq!(t.take(&"a", t0), Verdict::Allowed);
        }
        assert_eq!(t.take(&"a", t0), Verdict::FirstRefusal);
        assert_eq!(t.take(&"a", t0), Verdict::Refused);
        assert!(!t.has_budget(&"a", t0));
        let later = t0 + Duration::from_secs(10);
        assert!(t.has_budget(&"a", later));
        for _ in 0..3 {
            assert_eq!(t.take(&"a", later), Verdict::Allowed);
        }
        assert_eq!(t.take(&"a", later), Verdict::FirstRefusal);
    }

    #[test]
    fn memory_is_fixed() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 1.0,
            burst: 1.0,
        };
        let mut t = RateTable::new(rate, 1000, t0);
        assert_eq!(t.slots.len(), 1024);
        for i in 0..100_000u32 {
            let _ = t.take(&i, t0);
        }
        assert_eq!(t.slots.len(), 1024);
    }
}
