//! What every worker of a server shares about allocations: quotas per
//! user, per client IP and in total (RFC 8656 §7.2: 486 Allocation Quota
//! Reached, 508 Insufficient Capacity), and the ports held for a later
//! Allocate with RESERVATION-TOKEN (RFC 8656 §7.2), which may reach any
//! worker: the kernel spreads a client's sockets over workers by port.
//!
//! The per-user quota is for ephemeral (REST API, `EXPIRY:ID`) usernames,
//! minted per peer; a static `--user` is usually shared by every client of
//! a deployment, so it has its own limit, none by default. Per-IP and total
//! quotas apply to everybody. A refusal is logged with the limit's flag at
//! most once per [`REFUSAL_LOG_INTERVAL`] per limit, so a quota never caps
//! a deployment silently and a flood of refusals never floods the log.
//!
//! The data path never touches it: only Allocate and the end of an
//! allocation do, so one mutex serves any number of workers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which limit refused an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// An ephemeral username holds `per_user` allocations (486).
    #[error("allocation quota per ephemeral user reached")]
    User,
    /// A static user holds `per_static_user` allocations (486).
    #[error("allocation quota per static user reached")]
    StaticUser,
    /// The client IP holds `per_ip` allocations (486).
    #[error("allocation quota per client IP reached")]
    Ip,
    /// The server holds `total` allocations (508).
    #[error("allocation capacity of the server reached")]
    Total,
}

impl QuotaError {
    /// Every limit, in a fixed order.
    pub const ALL: [QuotaError; 4] = [
        QuotaError::User,
        QuotaError::StaticUser,
        QuotaError::Ip,
        QuotaError::Total,
    ];

    /// The error code to answer with: 486, or 508 for the total.
    pub fn code(self) -> u16 {
        match self {
            QuotaError::Total => 508,
            _ => 486,
        }
    }

    /// The command-line flag that sets this limit.
    pub fn flag(self) -> &'static str {
        match self {
            QuotaError::User => "--user-quota",
            QuotaError::StaticUser => "--static-user-quota",
            QuotaError::Ip => "--ip-quota",
            QuotaError::Total => "--total-quota",
        }
    }

    /// The limit's value in `quotas`.
    pub fn limit(self, quotas: &Quotas) -> usize {
        match self {
            QuotaError::User => quotas.per_user,
            QuotaError::StaticUser => quotas.per_static_user,
            QuotaError::Ip => quotas.per_ip,
            QuotaError::Total => quotas.total,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The kind of username an allocation is counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// A configured `--user`.
    Static,
    /// A credential minted from the shared secret (`EXPIRY:ID`).
    Ephemeral,
}

/// The limits a [`Ledger`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Allocations per ephemeral username (`--user-quota`).
    pub per_user: usize,
    /// Allocations per static user (`--static-user-quota`); 0 = no limit.
    pub per_static_user: usize,
    /// Allocations per client IP, whoever the user (`--ip-quota`).
    pub per_ip: usize,
    /// Allocations in total (`--total-quota`).
    pub total: usize,
}

/// The shortest time between two logged refusals of one limit.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// When each limit last logged a refusal, and how many it kept quiet since.
#[derive(Debug, Default)]
struct RefusalLog {
    last: [Option<Instant>; 4],
    quiet: [u64; 4],
}

impl RefusalLog {
    /// Notes a refusal by `limit` at `now`; `Some(n)` means log it now,
    /// `n` refusals having gone unlogged since the last line.
    fn note(&mut self, limit: QuotaError, now: Instant) -> Option<u64> {
        let i = limit.index();
        let last = self.last.get_mut(i)?;
        let quiet = self.quiet.get_mut(i)?;
        let due = last.is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_LOG_INTERVAL);
        if due {
            *last = Some(now);
            Some(std::mem::take(quiet))
        } else {
            *quiet += 1;
            None
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    users: HashMap<Box<str>, usize>,
    ips: HashMap<IpAddr, usize>,
    total: usize,
    log: RefusalLog,
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

    /// Counts a new allocation of `user` (of `kind`) from `ip` at `now`, if
    /// within the quotas; a refusal is logged (at most once per
    /// [`REFUSAL_LOG_INTERVAL`] per limit) with the limit's flag and value.
    pub fn reserve(
        &self,
        user: &str,
        kind: UserKind,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), QuotaError> {
        let mut c = self.counts();
        let of_user = c.users.get(user).copied().unwrap_or(0);
        let of_ip = c.ips.get(&ip).copied().unwrap_or(0);
        let refused = match kind {
            UserKind::Ephemeral if of_user >= self.quotas.per_user => Some(QuotaError::User),
            UserKind::Static
                if self.quotas.per_static_user > 0 && of_user >= self.quotas.per_static_user =>
            {
                Some(QuotaError::StaticUser)
            }
            _ if of_ip >= self.quotas.per_ip => Some(QuotaError::Ip),
            _ if c.total >= self.quotas.total => Some(QuotaError::Total),
            _ => None,
        };
        if let Some(limit) = refused {
            let log = c.log.note(limit, now);
            let total = c.total;
            drop(c);
            if let Some(quiet) = log {
                tracing::warn!(
                    flag = limit.flag(),
                    limit = limit.limit(&self.quotas),
                    code = limit.code(),
                    allocations_from_source_ip = of_ip,
                    allocations_total = total,
                    refused_unlogged_since_last = quiet,
                    "allocation refused: {} {} reached; raise it if this is legitimate traffic",
                    limit.flag(),
                    limit.limit(&self.quotas),
                );
            }
            return Err(limit);
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
pub(crate) mod tests {
    use super::*;

    fn quotas(per_user: usize, per_static_user: usize, per_ip: usize, total: usize) -> Quotas {
        Quotas {
            per_user,
            per_static_user,
            per_ip,
            total,
        }
    }

    #[test]
    fn quotas_and_release() {
        let l = Ledger::new(quotas(2, 0, 3, 4));
        let now = Instant::now();
        let e = UserKind::Ephemeral;
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.reserve("u", e, a, now), Ok(()));
        assert_eq!(l.reserve("u", e, a, now), Ok(()));
        assert_eq!(l.reserve("u", e, a, now), Err(QuotaError::User));
        assert_eq!(l.reserve("v", e, a, now), Ok(()));
        assert_eq!(l.reserve("w", e, a, now), Err(QuotaError::Ip));
        assert_eq!(l.reserve("w", e, b, now), Ok(()));
        assert_eq!(l.reserve("x", e, b, now), Err(QuotaError::Total));
        l.release("u", a);
        assert_eq!(l.total(), 3);
        assert_eq!(l.reserve("x", e, b, now), Ok(()));
        assert_eq!(QuotaError::Total.code(), 508);
        assert_eq!(QuotaError::Ip.code(), 486);
    }

    #[test]
    fn a_static_user_has_no_per_user_limit_by_default_but_ip_and_total_apply() {
        let l = Ledger::new(quotas(2, 0, 40, 50));
        let now = Instant::now();
        // One shared static user from 20 client IPs: far past per_user.
        for i in 0..20u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            assert_eq!(l.reserve("shared", UserKind::Static, ip, now), Ok(()));
            assert_eq!(l.reserve("shared", UserKind::Static, ip, now), Ok(()));
        }
        assert_eq!(l.total(), 40);
        // Per IP still applies to it.
        let one = IpAddr::from([203, 0, 113, 1]);
        let l2 = Ledger::new(quotas(2, 0, 3, 50));
        for _ in 0..3 {
            assert_eq!(l2.reserve("shared", UserKind::Static, one, now), Ok(()));
        }
        assert_eq!(
            l2.reserve("shared", UserKind::Static, one, now),
            Err(QuotaError::Ip)
        );
        // And the total.
        for i in 0..10u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            let _ = l.reserve("shared", UserKind::Static, ip, now);
        }
        assert_eq!(l.total(), 50);
        assert_eq!(
            l.reserve("shared", UserKind::Static, one, now),
            Err(QuotaError::Total)
        );
    }

    #[test]
    fn a_static_user_quota_when_set() {
        let l = Ledger::new(quotas(100, 2, 100, 100));
        let now = Instant::now();
        let ip = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(l.reserve("s", UserKind::Static, ip, now), Ok(()));
        assert_eq!(l.reserve("s", UserKind::Static, ip, now), Ok(()));
        assert_eq!(
            l.reserve("s", UserKind::Static, ip, now),
            Err(QuotaError::StaticUser)
        );
        assert_eq!(QuotaError::StaticUser.flag(), "--static-user-quota");
        l.release("s", ip);
        assert_eq!(l.reserve("s", UserKind::Static, ip, now), Ok(()));
    }

    #[test]
    fn refusals_are_logged_once_per_interval_per_limit_in_virtual_time() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        assert_eq!(
            log.note(QuotaError::User, t0),
            Some(0),
            "the first is logged"
        );
        for ms in 1..100 {
            let t = t0 + Duration::from_millis(ms * 99);
            assert_eq!(log.note(QuotaError::User, t), None, "quiet within 10 s");
        }
        // Another limit has its own interval.
        assert_eq!(
            log.note(QuotaError::Ip, t0 + Duration::from_secs(1)),
            Some(0)
        );
        let t10 = t0 + REFUSAL_LOG_INTERVAL;
        assert_eq!(
            log.note(QuotaError::User, t10),
            Some(99),
            "then once, with the count"
        );
        assert_eq!(log.note(QuotaError::User, t10), None);
        assert_eq!(
            log.note(QuotaError::User, t10 + Duration::from_secs(60)),
            Some(1)
        );
        for q in QuotaError::ALL {
            assert!(q.flag().starts_with("--"));
        }
    }

    /// Runs `f` with the warnings it logs captured, and returns them.
    pub(crate) fn captured_logs(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn refusal_logs_name_the_flag_and_value_once_per_burst_and_never_the_user() {
        let l = Ledger::new(quotas(1, 0, 10, 10));
        let t0 = Instant::now();
        let ip = IpAddr::from([198, 51, 100, 7]);
        let user = "1700000000:peer-secret-ish";
        let logs = captured_logs(|| {
            assert_eq!(l.reserve(user, UserKind::Ephemeral, ip, t0), Ok(()));
            for i in 0..50u64 {
                let t = t0 + Duration::from_millis(100 * i);
                assert_eq!(
                    l.reserve(user, UserKind::Ephemeral, ip, t),
                    Err(QuotaError::User)
                );
            }
        });
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(lines[0].contains("--user-quota 1 reached"), "{logs}");
        assert!(lines[0].contains("code=486"), "{logs}");
        assert!(
            !logs.contains(user) && !logs.contains("198.51.100.7"),
            "{logs}"
        );
        // Past the interval: one more line, with the count kept quiet.
        let logs = captured_logs(|| {
            let t = t0 + REFUSAL_LOG_INTERVAL + Duration::from_secs(1);
            let _ = l.reserve(user, UserKind::Ephemeral, ip, t);
            let _ = l.reserve(user, UserKind::Ephemeral, ip, t);
        });
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains("refused_unlogged_since_last=49"), "{logs}");
    }

    #[test]
    fn held_ports_once_and_until_expiry() {
        let l = Ledger::new(quotas(1, 0, 1, 1));
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
