//! Unit tests of the room hub.

use super::*;
use crate::error::ErrorCode;
use serde_json::json;

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
    hub.handle_connect(conn, vec![], now);
    hub.handle_text(
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
                name: "Bob".into()
            }
        }]
    );
    let _ = join(&mut hub, c, "other", "Cat", now);

    hub.handle_text(
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
                data: json!({"sdp":"x"})
            }
        }]
    );

    // c is in another room: b's id is unknown to it; a's own id is refused too.
    hub.handle_text(c, &json!({"type":"message","to":pb.0}).to_string(), now);
    hub.handle_text(a, &json!({"type":"message","to":pa.0}).to_string(), now);
    let outs = drain(&mut hub);
    assert_eq!(error_codes(&outs, c), vec![ErrorCode::UnknownPeer]);
    assert_eq!(error_codes(&outs, a), vec![ErrorCode::UnknownPeer]);
    assert!(sent_to(&outs, b).is_empty());

    hub.handle_disconnect(a);
    let outs = drain(&mut hub);
    assert_eq!(
        sent_to(&outs, b),
        vec![ServerMessage::PeerLeft { id: pa.clone() }]
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
    hub.handle_connect(ConnId(1), vec![], now);
    hub.handle_text(
        ConnId(1),
        r#"{"type":"join","v":1,"room":"r","name":"a","password":"s3cret"}"#,
        now,
    );
    hub.handle_connect(ConnId(2), vec![], now);
    hub.handle_text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b"}"#,
        now,
    );
    hub.handle_text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"wrong!"}"#,
        now,
    );
    hub.handle_text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"s3cret"}"#,
        now,
    );
    hub.handle_text(
        ConnId(2),
        r#"{"type":"join","v":1,"room":"r","name":"b","password":"s3cret"}"#,
        now,
    );
    hub.handle_connect(ConnId(3), vec![], now);
    hub.handle_text(
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
    hub.handle_text(ConnId(2), r#"{"type":"leave"}"#, now);
    hub.handle_text(
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
    hub.handle_connect(a, vec![], now);
    hub.handle_text(a, "not json", now);
    hub.handle_text(a, r#"{"type":"offer","to":"p1","data":1}"#, now);
    hub.handle_text(a, r#"{"type":"wat"}"#, now);
    hub.handle_text(a, &"x".repeat(70_000), now);
    hub.handle_binary(a, 10, now);
    hub.handle_text(a, r#"{"type":"ping","id":5}"#, now);
    let outs = drain(&mut hub);
    assert_eq!(
        error_codes(&outs, a),
        vec![
            ErrorCode::BadJson,
            ErrorCode::NotJoined,
            ErrorCode::UnknownType,
            ErrorCode::TooLarge,
            ErrorCode::BinaryUnsupported
        ]
    );
    assert_eq!(
        sent_to(&outs, a).last(),
        Some(&ServerMessage::Pong { id: Some(json!(5)) })
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
    hub.handle_connect(a, vec![], now);
    for _ in 0..100 {
        hub.handle_text(a, r#"{"type":"ping"}"#, now);
    }
    let outs = drain(&mut hub);
    let pongs = sent_to(&outs, a)
        .iter()
        .filter(|m| matches!(m, ServerMessage::Pong { .. }))
        .count();
    assert_eq!(pongs, 5);
    assert_eq!(error_codes(&outs, a), vec![ErrorCode::RateLimited]);
    // After a second the bucket has refilled.
    hub.handle_text(a, r#"{"type":"ping"}"#, now + Duration::from_secs(1));
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
    assert_eq!(sent_to(&outs, b), vec![ServerMessage::PeerLeft { id: pa }]);
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
    hub.handle_connect(d, vec![], now);
    for i in 0..50 {
        hub.handle_text(
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
                name: "Eve".into()
            }
        }]
    );
    hub.handle_text(
        e,
        &json!({"type":"offer","to":pa.0,"data":{"sdp":"o"}}).to_string(),
        now,
    );
    assert_eq!(
        sent_to(&drain(&mut hub), a),
        vec![ServerMessage::Offer {
            from: pe.clone(),
            data: json!({"sdp":"o"})
        }]
    );
    assert_eq!(hub.room_count(), 3);

    // A room closes when its last peer goes (by `leave` or by disconnecting),
    // which makes room for a new one.
    hub.handle_text(c, r#"{"type":"leave"}"#, now);
    assert_eq!(hub.room_count(), 2);
    hub.handle_text(
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
    hub.handle_text(
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
    hub.handle_text(
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
