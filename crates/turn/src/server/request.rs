//! Request authentication (RFC 8489 §9.2.4) and response building
//! (RFC 8489 §6.3, error codes of RFC 8489 §14.8 and RFC 8656 §19). Every
//! queued answer records its outcome for [`crate::ServerStats`]; an
//! answer the rate limit swallows is a `dropped` request.

use stun::{Attribute, AttributeType, Class, Message, MessageBuilder, PasswordAlgorithms};

use super::{FiveTuple, Server, Transmit};
use crate::auth::{Key, PasswordAlgorithm};
use crate::nonce::NonceError;
use crate::rate_limit::Verdict;
use crate::stats::DropReason;

/// PASSWORD-ALGORITHMS this server offers, in order of preference:
/// SHA-256, then MD5, each with no parameters (RFC 8489 §14.11).
pub(super) const OFFERED_ALGORITHMS: [u8; 8] = [0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];

/// An authenticated request's credential.
#[derive(Debug)]
pub(super) struct Auth {
    pub username: Box<str>,
    pub key: Key,
    /// Answer with MESSAGE-INTEGRITY-SHA256 (the request used it).
    pub sha256_mi: bool,
}

/// Reason phrase for an error code.
pub(super) fn reason(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        508 => "Insufficient Capacity",
        _ => "Server Error",
    }
}

fn text<'a>(msg: &Message<'a>, typ: AttributeType) -> Option<&'a str> {
    match msg.attribute(typ)? {
        Ok(Attribute::Username(s) | Attribute::Realm(s) | Attribute::Nonce(s)) => Some(s),
        _ => None,
    }
}

impl Server {
    /// Queues a response with `attrs`, signed when `auth` is given, with
    /// FINGERPRINT when the request had one.
    pub(super) fn reply(
        &mut self,
        to: FiveTuple,
        req: &Message<'_>,
        class: Class,
        auth: Option<&Auth>,
        attrs: &[Attribute<'_>],
    ) {
        if auth.is_none() {
            // Unauthenticated answers are what reflection attacks use.
            match self.unauthenticated.take(&to.client.ip(), self.now) {
                Verdict::Allowed => {}
                Verdict::FirstRefusal => {
                    self.stats.drop(DropReason::RateLimit);
                    tracing::warn!(source = %to.client.ip(), "unauthenticated request rate exceeded; dropping requests from this source");
                    return;
                }
                Verdict::Refused => {
                    self.stats.drop(DropReason::RateLimit);
                    return;
                }
            }
        }
        let mut payload = Vec::with_capacity(128);
        let mut b = MessageBuilder::new(&mut payload, class, req.method(), req.transaction_id());
        for a in attrs {
            if b.add(a).is_err() {
                return;
            }
        }
        let signed = match auth {
            Some(a) if a.sha256_mi => b.add_message_integrity_sha256(a.key.as_bytes()).map(|_| ()),
            Some(a) => b.add_message_integrity(a.key.as_bytes()).map(|_| ()),
            None => Ok(()),
        };
        if signed.is_err() || (req.has_fingerprint() && b.add_fingerprint().is_err()) {
            return;
        }
        self.transmits.push_back(Transmit { to, payload });
        let code = attrs.iter().find_map(|a| match a {
            Attribute::ErrorCode(e) => Some(e.code),
            _ => None,
        });
        self.answered = Some(crate::stats::outcome_index(code));
        if code.is_none() && req.method() == stun::Method::BINDING {
            self.stats.bindings_answered += 1;
        }
    }

    /// Queues an error response.
    pub(super) fn error(
        &mut self,
        to: FiveTuple,
        req: &Message<'_>,
        code: u16,
        auth: Option<&Auth>,
    ) {
        tracing::debug!(client = %to.client, method = req.method().number(), code, "error response");
        // Unauthenticated answers carry no reason phrase, to stay small
        // (amplification); the code says what went wrong.
        let reason = if auth.is_some() { reason(code) } else { "" };
        let err = Attribute::ErrorCode(stun::ErrorCode { code, reason });
        self.reply(to, req, Class::Error, auth, &[err]);
    }

    /// Queues a 401 or 438 carrying a fresh nonce, the realm and the
    /// offered password algorithms.
    pub(super) fn challenge(
        &mut self,
        now: std::time::Instant,
        to: FiveTuple,
        req: &Message<'_>,
        code: u16,
    ) {
        let expiry = self
            .secs_since_start(now)
            .saturating_add(u32::try_from(self.config.nonce_lifetime.as_secs()).unwrap_or(600));
        let mut nonce = String::with_capacity(40);
        self.nonces.mint(expiry, to.client.ip(), &mut nonce);
        let realm = self.config.users.realm().to_owned();
        // No reason phrase: the challenge is the largest answer an
        // unauthenticated client gets, and the code says it all.
        let attrs = [
            Attribute::ErrorCode(stun::ErrorCode { code, reason: "" }),
            Attribute::Realm(&realm),
            Attribute::Nonce(&nonce),
            Attribute::PasswordAlgorithms(PasswordAlgorithms::from_encoded(&OFFERED_ALGORITHMS)),
        ];
        self.reply(to, req, Class::Error, None, &attrs);
    }

    /// Authenticates a request with the long-term mechanism. On failure the
    /// error response is queued and `None` returned.
    pub(super) fn authenticate(
        &mut self,
        now: std::time::Instant,
        from: FiveTuple,
        req: &Message<'_>,
    ) -> Option<Auth> {
        if !req.has_integrity() && !req.has_integrity_sha256() {
            self.challenge(now, from, req, 401);
            return None;
        }
        let realm = text(req, AttributeType::REALM);
        let nonce = text(req, AttributeType::NONCE);
        let username = text(req, AttributeType::USERNAME);
        let userhash = match req.attribute(AttributeType::USERHASH) {
            Some(Ok(Attribute::Userhash(h))) => Some(h),
            _ => None,
        };
        let (Some(realm), Some(nonce)) = (realm, nonce) else {
            self.error(from, req, 400, None);
            return None;
        };
        if username.is_none() && userhash.is_none() {
            self.error(from, req, 400, None);
            return None;
        }
        match self
            .nonces
            .verify(nonce, from.client.ip(), self.secs_since_start(now))
        {
            Ok(()) => {}
            Err(NonceError::Stale | NonceError::Invalid) => {
                self.challenge(now, from, req, 438);
                return None;
            }
        }
        if realm != self.config.users.realm() {
            self.challenge(now, from, req, 401);
            return None;
        }
        let Some(alg) = password_algorithm(req) else {
            self.error(from, req, 400, None);
            return None;
        };
        let username: Box<str> = match (username, userhash) {
            (Some(u), _) => u.into(),
            (None, Some(h)) => match self.config.users.by_userhash(h) {
                Some(u) => u.into(),
                None => {
                    self.challenge(now, from, req, 401);
                    return None;
                }
            },
            (None, None) => return None,
        };
        // Password guessing: past the failure budget of this source or this
        // user, requests are dropped unchecked — except for the user's own
        // live allocation on this 5-tuple, which keeps working.
        let ip = from.client.ip();
        let own = self
            .allocations
            .get(&from)
            .is_some_and(|a| a.username == username);
        if !own
            && (!self.failures_by_ip.has_budget(&ip, now)
                || !self.failures_by_user.has_budget(&username, now))
        {
            self.stats.drop(DropReason::RateLimit);
            return None;
        }
        // Reuse the key derived when the allocation was made.
        let cached = self
            .allocations
            .get(&from)
            .filter(|a| a.username == username && a.key.algorithm() == alg)
            .filter(|_| !self.config.users.expired(&username, self.unix_now(now)))
            .map(|a| a.key);
        let key = match cached {
            Some(k) => k,
            None => match self.config.users.key(&username, alg, self.unix_now(now)) {
                Some(k) => k,
                None => {
                    self.auth_failed(now, from, &username);
                    self.challenge(now, from, req, 401);
                    return None;
                }
            },
        };
        let verified = if req.has_integrity_sha256() {
            req.verify_integrity_sha256(key.as_bytes())
        } else {
            req.verify_integrity(key.as_bytes())
        };
        if verified.is_err() {
            self.auth_failed(now, from, &username);
            self.challenge(now, from, req, 401);
            return None;
        }
        Some(Auth {
            username,
            key,
            sha256_mi: req.has_integrity_sha256(),
        })
    }
}

impl Server {
    /// Counts a failed authentication against its source and its username,
    /// logging once per burst when either runs out.
    fn auth_failed(&mut self, now: std::time::Instant, from: FiveTuple, username: &str) {
        self.stats.drop(DropReason::AuthFailure);
        let by_ip = self.failures_by_ip.take(&from.client.ip(), now);
        let by_user = self.failures_by_user.take(&username, now);
        if by_ip == Verdict::FirstRefusal {
            tracing::warn!(source = %from.client.ip(), "repeated authentication failures from this source; further attempts dropped for a while");
        }
        if by_user == Verdict::FirstRefusal {
            tracing::warn!(
                username,
                "repeated authentication failures for this user; further attempts dropped for a while"
            );
        }
    }
}

/// The password algorithm of a request (RFC 8489 §9.2.4): MD5 when neither
/// attribute is present; otherwise both must be, PASSWORD-ALGORITHMS must be
/// what we offered and PASSWORD-ALGORITHM one of them. `None` means 400.
fn password_algorithm(req: &Message<'_>) -> Option<PasswordAlgorithm> {
    let chosen = req.attribute(AttributeType::PASSWORD_ALGORITHM);
    let offered = req.attribute(AttributeType::PASSWORD_ALGORITHMS);
    match (chosen, offered) {
        (None, None) => Some(PasswordAlgorithm::Md5),
        (Some(Ok(Attribute::PasswordAlgorithm(p))), Some(Ok(Attribute::PasswordAlgorithms(l))))
            if l.as_bytes() == OFFERED_ALGORITHMS && p.params.is_empty() =>
        {
            match p.algorithm {
                stun::PasswordAlgorithm::MD5 => Some(PasswordAlgorithm::Md5),
                stun::PasswordAlgorithm::SHA256 => Some(PasswordAlgorithm::Sha256),
                _ => None,
            }
        }
        _ => None,
    }
}
