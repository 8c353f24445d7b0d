//! Unit tests of the room hub.

use super::*;
use crate::error::ErrorCode;
use crate::protocol::{LeaveReason, RawData, RelayKind};
use serde_json::json;

/// A fixed wall-clock time for the token checks (Unix seconds).
const UNIX_NOW: u64 = 1_800_000_000;

trait Text {
    fn text(&mut self, conn: ConnId, text: &str, now: Instant);
}

impl Text for Hub {
    fn text(&mut self, conn: ConnId, text: &str, now: Instant) {
        self.handle_text(conn, text, now, UNIX_NOW);
    }
}

/// `text` as relayed data (it must be JSON).
fn raw(text: &str) -> RawData {
    RawData::from_json(text).unwrap()
}

fn drain(hub: &mut Hub) -> Vec<Output> {
    std::iter::from_fn(|| hub.poll_output()).collect()
}

fn sent_to(outs: &[Output], conn: ConnId) -> Vec<ServerMessage> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, message } if *to == conn => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn error_codes(outs: &[Output], conn: ConnId) -> Vec<ErrorCode> {
    sent_to(outs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

fn join(hub: &mut Hub, conn: ConnId, room: &str, name: &str, now: Instant) -> Vec<Output> {
    hub.handle_connect(conn, Default::default(), now);
    hub.text(
        conn,
        &json!({"type":"join","v":1,"room":room,"name":name}).to_string(),
        now,
    );
    drain(hub)
}

fn you(outs: &[Output], conn: ConnId) -> PeerId {
    sent_to(outs, conn)
        .into_iter()
        .find_map(|m| match m {
            ServerMessage::Joined { you, .. } => Some(you),
            _ => None,
        })
        .unwrap_or_else(|| PeerId("none".into()))
}

#[test]
fn join_relay_leave() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
    let outs = join(&mut hub, a, "room1", "Ann", now);
    let pa = you(&outs, a);
    let outs = join(&mut hub, b, "room1", "Bob", now);
    let pb = you(&outs, b);
    assert!(matches!(
        sent_to(&outs, b).first(),
        Some(ServerMessage::Joined { peers, .. }) if peers.len() == 1 && peers.first().is_some_and(|p| p.name == "Ann")
    ));
    assert_eq!(
        sent_to(&outs, a),
        vec![ServerMessage::PeerJoined {
            peer: PeerInfo {
                id: pb.clone(),
                name: "Bob".into(),
                admin: false,
                tag: None,
            }
        }]
    );
    let _ = join(&mut hub, c, "other", "Cat", now);

    hub.text(
        a,
        &json!({"type":"offer","to":pb.0,"data":{"sdp":"x"}}).to_string(),
        now,
    );
    let outs = drain(&mut hub);
    assert_eq!(
        outs,
        vec![Output::Send {
            to: b,
            message: ServerMessage::Offer {
                from: pa.clone(),
                data: raw(r#"{"sdp":"x"}"#)
            }
        }]
    );

    // c is in another room: b's id is unknown to it; a's own id is refused too.
    hub.text(c, &json!({"type":"message","to":pb.0}).to_string(), now);
    hub.text(a, &json!({"type":"message","to":pa.0}).to_string(), now);
    let outs = drain(&mut hub);
    assert_eq!(error_codes(&outs, c), vec![ErrorCode::UnknownPeer]);
    assert_eq!(error_codes(&outs, a), vec![ErrorCode::UnknownPeer]);
    assert!(sent_to(&outs, b).is_empty());

    hub.handle_disconnect(a);
    let outs = drain(&mut hub);
    assert_eq!(
        sent_to(&outs, b),
        vec![ServerMessage::PeerLeft {
            id: pa.clone(),
            reason: LeaveReason::Disconnected
        }]
    );
    hub.handle_disconnect(b);
    hub.handle_disconnect(c);
    assert_eq!(hub.room_count(), 0);
    assert_eq!(hub.connection_count(), 0);
}

#[test]
fn room_full_and_password() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig {
        room_size: 2,
        ..HubConfig::default()
    });
    hub.handle_connect(ConnId(1), Default::default(), now);
    hub.text(
        ConnId(1),
        r#"{"type":"join","v":1,"room":"r","name":"a","password":"s3cret"}"#,
        now,
    );
    hub.handle_connect(ConnId(2), Default::default(), now);
    hub.text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b"}"#,
        now,
    );
    hub.text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"wrong!"}"#,
        now,
    );
    hub.text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"s3cret"}"#,
        now,
    );
    hub.text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"s3cret"}"#,
        now,
    );
    hub.handle_connect(ConnId(3), Default::default(), now);
    hub.text(
        ConnId(3),
        r#"{"type":"join","v":1,"room":"r","name":"c","password":"s3cret"}"#,
        now,
    );
    let outs = drain(&mut hub);
    assert_eq!(
        error_codes(&outs, ConnId(2)),
        vec![
            ErrorCode::BadPassword,
            ErrorCode::BadPassword,
            ErrorCode::AlreadyJoined
        ]
    );
    assert_eq!(error_codes(&outs, ConnId(3)), vec![ErrorCode::RoomFull]);
    // Leaving frees the seat.
    hub.text(ConnId(2), r#"{"type":"leave"}"#, now);
    hub.text(
        ConnId(3),
        r#"{"type":"join","v":1,"room":"r","name":"c","password":"s3cret"}"#,
        now,
    );
    let outs = drain(&mut hub);
    assert_eq!(sent_to(&outs, ConnId(2)), vec![ServerMessage::Left]);
    assert!(matches!(
        sent_to(&outs, ConnId(3)).first(),
        Some(ServerMessage::Joined { .. })
    ));
}

#[test]
fn bad_input_before_join() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let a = ConnId(7);
    hub.handle_connect(a, Default::default(), now);
    hub.text(a, "not json", now);
    hub.text(a, r#"{"type":"offer","to":"p1","data":1}"#, now);
    hub.text(a, r#"{"type":"wat"}"#, now);
    hub.text(a, &"x".repeat(70_000), now);
    hub.handle_binary(a, 10, now);
    hub.handle_oversized_text(a, 300_000, now);
    hub.text(a, r#"{"type":"ping","id":5}"#, now);
    let outs = drain(&mut hub);
    assert_eq!(
        error_codes(&outs, a),
        vec![
            ErrorCode::BadJson,
            ErrorCode::NotJoined,
            ErrorCode::UnknownType,
            ErrorCode::TooLarge,
            ErrorCode::BinaryUnsupported,
            ErrorCode::TooLarge
        ]
    );
    assert_eq!(
        sent_to(&outs, a).last(),
        Some(&ServerMessage::Pong { id: Some(raw("5")) })
    );
}

#[test]
fn flooding_is_limited_and_reported_once() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig {
        rate: RateLimit {
            burst: 5,
            per_second: 5,
        },
        ..HubConfig::default()
    });
    let a = ConnId(1);
    hub.handle_connect(a, Default::default(), now);
    for _ in 0..100 {
        hub.text(a, r#"{"type":"ping"}"#, now);
    }
    let outs = drain(&mut hub);
    let pongs = sent_to(&outs, a)
        .iter()
        .filter(|m| matches!(m, ServerMessage::Pong { .. }))
        .count();
    assert_eq!(pongs, 5);
    assert_eq!(error_codes(&outs, a), vec![ErrorCode::RateLimited]);
    // After a second the bucket has refilled.
    hub.text(a, r#"{"type":"ping"}"#, now + Duration::from_secs(1));
    assert!(matches!(
        drain(&mut hub).as_slice(),
        [Output::Send {
            message: ServerMessage::Pong { .. },
            ..
        }]
    ));
}

#[test]
fn heartbeat_pings_then_closes_and_announces() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b) = (ConnId(1), ConnId(2));
    let outs = join(&mut hub, a, "r", "a", t0);
    let pa = you(&outs, a);
    let _ = join(&mut hub, b, "r", "b", t0);
    assert_eq!(hub.poll_timeout(), Some(t0 + Duration::from_secs(20)));

    let t1 = t0 + Duration::from_secs(20);
    hub.handle_timeout(t1);
    let outs = drain(&mut hub);
    assert!(outs.contains(&Output::Ping { conn: a }));
    assert!(outs.contains(&Output::Ping { conn: b }));
    // b answers, a does not.
    hub.handle_pong(b, t1);
    hub.handle_timeout(t1 + Duration::from_secs(1));
    assert!(drain(&mut hub).is_empty());

    let t2 = t0 + Duration::from_secs(45);
    hub.handle_timeout(t2);
    let outs = drain(&mut hub);
    assert!(outs.contains(&Output::Close {
        conn: a,
        reason: "heartbeat timeout"
    }));
    assert_eq!(
        sent_to(&outs, b),
        vec![ServerMessage::PeerLeft {
            id: pa,
            reason: LeaveReason::Disconnected
        }]
    );
    assert_eq!(hub.connection_count(), 1);
}

#[test]
fn max_rooms_refuses_new_rooms_but_not_existing_ones() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig {
        max_rooms: 3,
        ..HubConfig::default()
    });
    let (a, b, c, d, e) = (ConnId(1), ConnId(2), ConnId(3), ConnId(4), ConnId(5));
    let pa = you(&join(&mut hub, a, "r1", "Ann", now), a);
    let _ = join(&mut hub, b, "r2", "Bob", now);
    let _ = join(&mut hub, c, "r3", "Cat", now);
    assert_eq!(hub.room_count(), 3);

    // A flood of joins to new rooms: every one refused, nothing opened.
    hub.handle_connect(d, Default::default(), now);
    for i in 0..50 {
        hub.text(
            d,
            &json!({"type":"join","v":1,"room":format!("new{i}"),"name":"Dan"}).to_string(),
            now,
        );
    }
    let outs = drain(&mut hub);
    assert_eq!(error_codes(&outs, d), vec![ErrorCode::TooManyRooms; 50]);
    assert_eq!(sent_to(&outs, d).len(), 50);
    assert!(
        outs.iter()
            .all(|o| matches!(o, Output::Send { to, .. } if *to == d))
    );
    assert_eq!(hub.room_count(), 3);

    // Joining an existing room still works, and so does relaying in it.
    let outs = join(&mut hub, e, "r1", "Eve", now);
    let pe = you(&outs, e);
    assert_eq!(
        sent_to(&outs, a),
        vec![ServerMessage::PeerJoined {
            peer: PeerInfo {
                id: pe.clone(),
                name: "Eve".into(),
                admin: false,
                tag: None,
            }
        }]
    );
    hub.text(
        e,
        &json!({"type":"offer","to":pa.0,"data":{"sdp":"o"}}).to_string(),
        now,
    );
    assert_eq!(
        sent_to(&drain(&mut hub), a),
        vec![ServerMessage::Offer {
            from: pe.clone(),
            data: raw(r#"{"sdp":"o"}"#)
        }]
    );
    assert_eq!(hub.room_count(), 3);

    // A room closes when its last peer goes (by `leave` or by disconnecting),
    // which makes room for a new one.
    hub.text(c, r#"{"type":"leave"}"#, now);
    assert_eq!(hub.room_count(), 2);
    hub.text(
        d,
        &json!({"type":"join","v":1,"room":"new0","name":"Dan"}).to_string(),
        now,
    );
    let outs = drain(&mut hub);
    assert!(matches!(
        sent_to(&outs, d).as_slice(),
        [ServerMessage::Joined { room, peers, .. }] if room == "new0" && peers.is_empty()
    ));
    assert_eq!(hub.room_count(), 3);
    hub.text(
        c,
        &json!({"type":"join","v":1,"room":"r3","name":"Cat"}).to_string(),
        now,
    );
    assert_eq!(
        error_codes(&drain(&mut hub), c),
        vec![ErrorCode::TooManyRooms]
    );
    hub.handle_disconnect(b);
    assert_eq!(hub.room_count(), 2);
    // r1 still has two peers: one leaving does not close it.
    hub.handle_disconnect(a);
    assert_eq!(hub.room_count(), 2);
    hub.text(
        c,
        &json!({"type":"join","v":1,"room":"r3","name":"Cat"}).to_string(),
        now,
    );
    assert!(matches!(
        sent_to(&drain(&mut hub), c).as_slice(),
        [ServerMessage::Joined { .. }]
    ));
}

#[test]
fn too_many_rooms_has_its_wire_code() {
    let err = SignalError::TooManyRooms(3);
    assert_eq!(
        serde_json::to_value(ServerMessage::error(&err)).ok(),
        Some(json!({"type":"error","code":"too-many-rooms","message":err.to_string()}))
    );
}

fn join_msg(room: &str, name: &str, extra: serde_json::Value) -> String {
    let mut m = json!({"type":"join","v":1,"room":room,"name":name});
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    m.to_string()
}

fn first_error(
    outs: &[Output],
    conn: ConnId,
) -> Option<(ErrorCode, Option<std::borrow::Cow<'static, str>>)> {
    sent_to(outs, conn).into_iter().find_map(|m| match m {
        ServerMessage::Error { code, reason, .. } => Some((code, reason)),
        _ => None,
    })
}

#[test]
fn token_mode_checks_tokens_and_applies_claims() {
    let now = Instant::now();
    let secret = b"join-secret";
    let mut hub = Hub::new(HubConfig {
        join_secret: Some(Secret::new(secret.to_vec())),
        ..HubConfig::default()
    });
    let mint = |room: &str, exp: u64, name: Option<&str>, admin: bool| {
        token::mint(
            secret,
            &token::Claims {
                room: room.into(),
                exp,
                name: name.map(str::to_owned),
                admin,
            },
        )
    };
    let cases = [
        (json!({}), "missing"),
        (json!({"token": "nope"}), "invalid"),
        (
            json!({"token": token::mint(b"other", &token::Claims { room: "r".into(), exp: UNIX_NOW + 60, name: None, admin: false })}),
            "invalid",
        ),
        (
            json!({"token": mint("r", UNIX_NOW, None, false)}),
            "expired",
        ),
        (
            json!({"token": mint("other", UNIX_NOW + 60, None, false)}),
            "wrong-room",
        ),
    ];
    for (i, (extra, reason)) in cases.into_iter().enumerate() {
        let c = ConnId(100 + i as u64);
        hub.handle_connect(c, Default::default(), now);
        hub.text(c, &join_msg("r", "Eve", extra), now);
        let outs = drain(&mut hub);
        assert_eq!(
            first_error(&outs, c),
            Some((ErrorCode::Unauthorized, Some(reason.into()))),
            "{reason}"
        );
        assert!(
            !sent_to(&outs, c)
                .iter()
                .any(|m| matches!(m, ServerMessage::Joined { .. }))
        );
    }
    assert_eq!(hub.room_count(), 0);
    assert_eq!(hub.stats().errors_with(ErrorCode::Unauthorized), 5);

    // A valid token: the name claim wins; the first peer sets a password.
    let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
    hub.handle_connect(a, Default::default(), now);
    let t = mint("r", UNIX_NOW + 60, Some("Ann (host)"), false);
    hub.text(
        a,
        &join_msg("r", "whatever", json!({"token": t, "password": "pw"})),
        now,
    );
    let outs = drain(&mut hub);
    assert!(matches!(
        sent_to(&outs, a).first(),
        Some(ServerMessage::Joined { .. })
    ));
    // A plain token still needs the password; an admin token does not.
    hub.handle_connect(b, Default::default(), now);
    hub.text(
        b,
        &join_msg(
            "r",
            "Bob",
            json!({"token": mint("r", UNIX_NOW + 60, None, false)}),
        ),
        now,
    );
    let outs = drain(&mut hub);
    assert_eq!(first_error(&outs, b), Some((ErrorCode::BadPassword, None)));
    hub.handle_connect(c, Default::default(), now);
    hub.text(
        c,
        &join_msg(
            "r",
            "Cat",
            json!({"token": mint("r", UNIX_NOW + 60, None, true)}),
        ),
        now,
    );
    let outs = drain(&mut hub);
    match sent_to(&outs, c).first() {
        Some(ServerMessage::Joined { peers, .. }) => {
            assert_eq!(peers.first().map(|p| p.name.as_str()), Some("Ann (host)"));
        }
        other => panic!("{other:?}"),
    }
    match sent_to(&outs, a).first() {
        Some(ServerMessage::PeerJoined { peer }) => {
            assert!(peer.admin);
            assert_eq!(peer.name, "Cat");
        }
        other => panic!("{other:?}"),
    }
    let json = sent_to(&outs, a).first().map(ServerMessage::to_json);
    assert!(json.is_some_and(|j| j.contains(r#""admin":true"#)));
}

#[test]
fn without_a_secret_tokens_are_ignored() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    hub.handle_connect(ConnId(1), Default::default(), now);
    hub.text(
        ConnId(1),
        &join_msg("r", "Ann", json!({"token": "garbage"})),
        now,
    );
    let outs = drain(&mut hub);
    assert!(matches!(
        sent_to(&outs, ConnId(1)).first(),
        Some(ServerMessage::Joined { .. })
    ));
}

#[test]
fn drain_tells_everyone_refuses_joins_and_keeps_relaying() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b, idle, late) = (ConnId(1), ConnId(2), ConnId(3), ConnId(4));
    let _ = join(&mut hub, a, "r", "Ann", now);
    let outs = join(&mut hub, b, "r", "Bob", now);
    let pb = you(&outs, b);
    hub.handle_connect(idle, Default::default(), now);
    assert!(!hub.is_draining());
    hub.handle_drain(now);
    hub.handle_drain(now);
    assert!(hub.is_draining());
    let outs = drain(&mut hub);
    for c in [a, b, idle] {
        assert_eq!(
            sent_to(&outs, c),
            vec![ServerMessage::Reconnect {
                reason: "draining".into()
            }],
            "{c:?}"
        );
    }
    assert_eq!(
        ServerMessage::Reconnect {
            reason: "draining".into()
        }
        .to_json(),
        r#"{"type":"reconnect","reason":"draining"}"#
    );
    let outs = join(&mut hub, late, "r", "Late", now);
    assert_eq!(error_codes(&outs, late), vec![ErrorCode::Draining]);
    hub.text(
        a,
        &json!({"type":"candidate","to":pb.0,"data":1}).to_string(),
        now,
    );
    let outs = drain(&mut hub);
    assert!(matches!(
        sent_to(&outs, b).first(),
        Some(ServerMessage::Candidate { .. })
    ));
}

#[test]
fn stats_count_connections_peers_joins_relays_and_errors() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let _ = join(&mut hub, ConnId(1), "r", "Ann", now);
    let outs = join(&mut hub, ConnId(2), "r", "Bob", now);
    let pb = you(&outs, ConnId(2));
    let _ = join(&mut hub, ConnId(3), "q", "Cat", now);
    hub.text(
        ConnId(1),
        &json!({"type":"message","to":pb.0}).to_string(),
        now,
    );
    hub.text(ConnId(1), "nope", now);
    hub.text(ConnId(3), r#"{"type":"leave"}"#, now);
    let _ = drain(&mut hub);
    let s = hub.stats();
    assert_eq!(
        (s.connections, s.rooms, s.peers, s.joins, s.relayed),
        (3, 1, 2, 3, 1)
    );
    assert_eq!(s.errors_with(ErrorCode::BadJson), 1);
    assert_eq!(s.errors().count(), ErrorCode::ALL.len());
    assert_eq!(s.errors().map(|(_, n)| n).sum::<u64>(), 1);
    assert!(s.errors().any(|(c, n)| c == "bad-json" && n == 1));
    hub.handle_disconnect(ConnId(1));
    assert_eq!(hub.stats().peers, 1);
}

#[test]
fn session_tags_are_stable_one_way_and_leave_reasons_differ() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
    let _ = join(&mut hub, a, "r", "Ann", now);
    hub.handle_connect(b, Default::default(), now);
    hub.text(
        b,
        &join_msg("r", "Bob", json!({"session": "s3cret-session"})),
        now,
    );
    let outs = drain(&mut hub);
    let tag = match sent_to(&outs, a).first() {
        Some(ServerMessage::PeerJoined { peer }) => peer.tag.clone(),
        other => panic!("{other:?}"),
    };
    let tag = tag.unwrap_or_default();
    assert_eq!(tag.len(), 22);
    assert!(!tag.contains("s3cret"));
    assert_eq!(tag, session_tag("s3cret-session"));
    assert_ne!(tag, session_tag("s3cret-sessioN"));
    hub.handle_connect(c, Default::default(), now);
    hub.text(
        c,
        &join_msg("r", "Cat", json!({"session": "bad session!"})),
        now,
    );
    let outs = drain(&mut hub);
    assert_eq!(error_codes(&outs, c), vec![ErrorCode::BadMessage]);

    hub.text(b, r#"{"type":"leave"}"#, now);
    let outs = drain(&mut hub);
    assert!(matches!(
        sent_to(&outs, a).first(),
        Some(ServerMessage::PeerLeft {
            reason: LeaveReason::Left,
            ..
        })
    ));
}

#[test]
fn relays_data_byte_for_byte_and_refuses_what_is_not_json() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b) = (ConnId(1), ConnId(2));
    let pa = you(&join(&mut hub, a, "r", "Ann", now), a);
    let pb = you(&join(&mut hub, b, "r", "Bob", now), b);
    let _ = drain(&mut hub);
    let data =
        r#"{"z":123456789012345678901234567890,"a":[1.10, 1e400,-0.0],"s":"\u00e9\ud83d\ude00"}"#;
    for kind in RelayKind::ALL {
        let k = kind.as_str();
        hub.text(
            a,
            &format!(r#"{{"type":"{k}","to":"{pb}","data": {data} }}"#),
            now,
        );
        let outs = drain(&mut hub);
        assert_eq!(
            outs,
            vec![Output::Send {
                to: b,
                message: ServerMessage::relayed(kind, pa.clone(), raw(data)),
            }]
        );
        let json = sent_to(&outs, b).first().map(ServerMessage::to_json);
        assert_eq!(
            json,
            Some(format!(r#"{{"type":"{k}","from":"{pa}","data":{data}}}"#))
        );
    }
    // Malformed `data`, an unknown field, a missing `to`: refused as before,
    // nothing relayed.
    hub.text(
        a,
        &format!(r#"{{"type":"offer","to":"{pb}","data":{{"a":}}}}"#),
        now,
    );
    hub.text(
        a,
        &format!(r#"{{"type":"offer","to":"{pb}","data":NaN}}"#),
        now,
    );
    hub.text(
        a,
        &format!(r#"{{"type":"offer","to":"{pb}","data":1,"x":1}}"#),
        now,
    );
    hub.text(a, r#"{"type":"offer","data":1}"#, now);
    let outs = drain(&mut hub);
    assert_eq!(
        error_codes(&outs, a),
        vec![
            ErrorCode::BadJson,
            ErrorCode::BadJson,
            ErrorCode::BadMessage,
            ErrorCode::BadMessage
        ]
    );
    assert!(sent_to(&outs, b).is_empty());
    assert_eq!(hub.stats().relayed, 4);
    // `ping`'s id comes back the same way.
    hub.text(a, r#"{"type":"ping","id":1.10}"#, now);
    let outs = drain(&mut hub);
    assert_eq!(
        sent_to(&outs, a).first().map(ServerMessage::to_json),
        Some(r#"{"type":"pong","id":1.10}"#.to_owned())
    );
}
