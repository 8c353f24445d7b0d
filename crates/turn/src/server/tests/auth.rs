//! Long-term credentials (RFC 8489 §9.2): the 401 challenge, MD5 and SHA-256
//! keys, USERHASH, ephemeral users, wrong passwords and stale nonces (438).

use std::time::Duration;

use stun::{Attribute, AttributeType, Class, Message, Method};

use super::harness::*;
use crate::auth::PasswordAlgorithm;
use crate::client::{ClientConfig, ClientEvent};
use crate::credentials;
use crate::{Event, Transport};

#[test]
fn allocate_is_challenged_then_succeeds() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let ft = net.ft(c);
    let events = net.run(c, |cl, now| {
        cl.allocate(now).unwrap();
    });
    let [
        ClientEvent::Allocated {
            relayed,
            mapped,
            lifetime,
            reservation_token: None,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(relayed.ip(), addr(SERVER).ip());
    assert!((50000..=50099).contains(&relayed.port()));
    assert_eq!(net.relays.bound, vec![*relayed]);
    assert_eq!(*mapped, ft.client);
    assert_eq!(*lifetime, secs(600));
    assert_eq!(net.server.allocation_count(), 1);

    // On the wire: a 401 with REALM, a cookie nonce and the algorithms,
    // then a success with the three attributes, signed with SHA-256.
    assert_eq!(net.responses.len(), 2);
    let challenge = Message::decode(&net.responses[0].1).unwrap();
    assert_eq!(error_code(&net.responses[0].1), Some(401));
    assert_eq!(
        challenge.attribute(AttributeType::REALM),
        Some(Ok(Attribute::Realm(REALM)))
    );
    let Some(Ok(Attribute::Nonce(nonce))) = challenge.attribute(AttributeType::NONCE) else {
        panic!("no nonce")
    };
    assert!(nonce.starts_with("obMatJos2"));
    assert!(
        challenge
            .attribute(AttributeType::PASSWORD_ALGORITHMS)
            .is_some()
    );
    let ok = Message::decode(&net.responses[1].1).unwrap();
    assert_eq!(ok.class(), Class::Success);
    assert_eq!(
        ok.attribute(AttributeType::XOR_RELAYED_ADDRESS),
        Some(Ok(Attribute::XorRelayedAddress(*relayed)))
    );
    assert_eq!(
        ok.attribute(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(600)))
    );
    assert_eq!(
        ok.attribute(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(ft.client)))
    );
    assert!(ok.has_integrity_sha256());
    // The server offers SHA-256 first; the client follows.
    assert_eq!(
        net.client(c).password_algorithm(),
        Some(PasswordAlgorithm::Sha256)
    );
    let allocs = net.requests(c, Method::ALLOCATE);
    assert_eq!(allocs.len(), 2);
    let signed = Message::decode(&allocs[1]).unwrap();
    assert!(signed.has_integrity_sha256());
    assert_eq!(
        signed.attribute(AttributeType::USERNAME),
        Some(Ok(Attribute::Username("alice")))
    );
}

#[test]
fn md5_when_preferred() {
    let mut net = Net::new(config());
    let ft = Net::tuple(0, Transport::Udp, SERVER);
    let mut cfg = ClientConfig::new(ft.server, "alice", "secret", Transport::Udp);
    cfg.password_algorithm = Some(PasswordAlgorithm::Md5);
    let c = net.add(cfg, ft);
    net.allocate(c);
    assert_eq!(
        net.client(c).password_algorithm(),
        Some(PasswordAlgorithm::Md5)
    );
    let allocs = net.requests(c, Method::ALLOCATE);
    let signed = Message::decode(&allocs[1]).unwrap();
    assert!(signed.has_integrity() && !signed.has_integrity_sha256());
    let Some(Ok(Attribute::PasswordAlgorithm(p))) =
        signed.attribute(AttributeType::PASSWORD_ALGORITHM)
    else {
        panic!("no PASSWORD-ALGORITHM")
    };
    assert_eq!(p.algorithm, stun::PasswordAlgorithm::MD5);
    // Later requests reuse the credentials: no second challenge.
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &["8.8.8.8".parse().unwrap()])
            .unwrap();
    });
    assert!(matches!(
        ev.as_slice(),
        [ClientEvent::PermissionCreated { .. }]
    ));
    assert_eq!(net.requests(c, Method::CREATE_PERMISSION).len(), 1);
}

#[test]
fn sha256_with_userhash_for_a_static_user() {
    let mut net = Net::new(config());
    let ft = Net::tuple(0, Transport::Udp, SERVER);
    let mut cfg = ClientConfig::new(ft.server, "alice", "secret", Transport::Udp);
    cfg.use_userhash = true;
    let c = net.add(cfg, ft);
    net.allocate(c);
    let allocs = net.requests(c, Method::ALLOCATE);
    let signed = Message::decode(&allocs[1]).unwrap();
    assert!(signed.attribute(AttributeType::USERNAME).is_none());
    let hash = stun::userhash("alice", REALM);
    assert_eq!(
        signed.attribute(AttributeType::USERHASH),
        Some(Ok(Attribute::Userhash(&hash)))
    );
    let Some(Ok(Attribute::PasswordAlgorithm(p))) =
        signed.attribute(AttributeType::PASSWORD_ALGORITHM)
    else {
        panic!("no PASSWORD-ALGORITHM")
    };
    assert_eq!(p.algorithm, stun::PasswordAlgorithm::SHA256);
    assert!(signed.has_integrity_sha256());
    let ev = net.run(c, |cl, now| {
        cl.channel_bind(now, addr("8.8.8.8:53")).unwrap();
    });
    assert!(matches!(ev.as_slice(), [ClientEvent::ChannelBound { .. }]));
}

#[test]
fn ephemeral_credentials_accepted_and_expired_ones_refused() {
    let mut net = Net::new(config());
    let good = credentials::mint(SECRET, UNIX0 + 3600, Some("carol"));
    let c = net.add_user(&good.username, &good.password);
    net.allocate(c);

    let old = credentials::mint(SECRET, UNIX0 - 1, Some("carol"));
    let d = net.add_user(&old.username, &old.password);
    let ev = net.run(d, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 401));

    let forged = credentials::mint(b"other secret", UNIX0 + 3600, Some("carol"));
    let e = net.add_user(&forged.username, &forged.password);
    let ev = net.run(e, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 401));
    assert_eq!(net.server.allocation_count(), 1);
}

#[test]
fn wrong_password_fails_with_401_after_one_retry() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "not the password");
    let ev = net.run(c, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 401));
    assert_eq!(net.requests(c, Method::ALLOCATE).len(), 2);
    assert_eq!(net.error_codes(net.ft(c)), [401, 401]);
    assert!(net.relays.bound.is_empty());
    // A later attempt is possible (and fails the same way).
    let ev = net.run(c, |cl, now| {
        cl.allocate(now).unwrap();
    });
    assert_eq!(failed(&ev), (Method::ALLOCATE, 401));
}

#[test]
fn stale_nonce_gets_438_and_the_retry_works() {
    let mut cfg = config();
    cfg.nonce_lifetime = secs(60);
    let mut net = Net::new(cfg);
    let c = net.add_user("alice", "secret");
    let ft = net.ft(c);
    net.allocate(c);
    net.advance(secs(59), false);
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &["8.8.8.8".parse().unwrap()])
            .unwrap();
    });
    assert!(matches!(
        ev.as_slice(),
        [ClientEvent::PermissionCreated { .. }]
    ));
    assert_eq!(net.error_codes(ft), [401]);

    net.advance(secs(2), false);
    let ev = net.run(c, |cl, now| {
        cl.create_permission(now, &["1.1.1.1".parse().unwrap()])
            .unwrap();
    });
    let [ClientEvent::PermissionCreated { peers }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(peers, &["1.1.1.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(net.error_codes(ft), [401, 438]);
    assert_eq!(net.requests(c, Method::CREATE_PERMISSION).len(), 3);
    // The new nonce serves the following requests.
    let ev = net.run(c, |cl, now| {
        cl.refresh(now, Duration::from_secs(600)).unwrap();
    });
    assert_eq!(
        ev,
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
    assert_eq!(net.error_codes(ft), [401, 438]);
}

#[test]
fn binding_reports_the_mapped_address_without_credentials() {
    let mut net = Net::new(config());
    let c = net.add_user("nobody", "nothing");
    let ft = net.ft(c);
    let ev = net.run(c, |cl, now| {
        cl.binding(now).unwrap();
    });
    assert_eq!(ev, [ClientEvent::Mapped { mapped: ft.client }]);
    assert!(net.error_codes(ft).is_empty());
    assert_eq!(net.take_server_events(), Vec::<Event>::new());
}
