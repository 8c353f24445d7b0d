//! Per-connection message rate limit: a token bucket refilled continuously.

use std::time::{Duration, Instant};

/// Rate limit settings: `burst` messages at once, `per_second` sustained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: how many messages may arrive back to back.
    pub burst: u32,
    /// Refill rate in messages per second.
    pub per_second: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        // Trickle ICE to 7 peers sends a few dozen candidates in a burst.
        RateLimit {
            burst: 200,
            per_second: 50,
        }
    }
}

/// A token bucket for one connection.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    /// When the last `rate-limited` error was reported, to report at most once a second.
    last_report: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
            last_report: None,
        }
    }

    /// Takes one token; `false` if the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_second))
            .min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a refusal at `now` should be reported (at most once per second),
    /// so that a flood does not turn into a flood of errors back.
    pub fn should_report(&mut self, now: Instant) -> bool {
        match self.last_report {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                self.last_report = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                burst: 3,
                per_second: 2,
            },
            t0,
        );
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.should_report(t0));
        assert!(!b.should_report(t0 + Duration::from_millis(500)));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        assert!(b.should_report(t0 + Duration::from_secs(2)));
    }
}
