//! Server messages read back: every variant from its own wire text (which
//! stays as it was), relayed payloads byte for byte, unknown members
//! ignored, malformed frames refused without panics.

use super::*;
use crate::token::TokenError;
use crate::{ConnId, Hub, HubConfig, IceServers, Output};
use std::time::Instant;

fn raw(text: &str) -> RawData {
    RawData::from_json(text).unwrap()
}

fn peer(id: &str, name: &str) -> PeerInfo {
    PeerInfo::new(PeerId(id.into()), name)
}

/// Every variant, with the text the hub sends for it.
fn every_variant() -> Vec<(ServerMessage, &'static str)> {
    let ice = vec![
        IceServer {
            urls: vec!["stun:h:3478".into()],
            username: None,
            credential: None,
        },
        IceServer {
            urls: vec![
                "turn:h:3478?transport=udp".into(),
                "turn:h:3478?transport=tcp".into(),
            ],
            username: Some("1:a".into()),
            credential: Some("pw".into()),
        },
    ];
    let admin = PeerInfo {
        admin: true,
        tag: Some("t1".into()),
        ..peer("p1", "Ann")
    };
    let tagged = PeerInfo {
        tag: Some("t2".into()),
        ..peer("p2", "Ben")
    };
    let mut list = vec![
        (
            ServerMessage::Joined {
                v: 1,
                room: "r".into(),
                you: PeerId("p2".into()),
                peers: vec![admin, peer("p3", "Bo")],
                ice_servers: ice,
            },
            r#"{"type":"joined","v":1,"room":"r","you":"p2","peers":[{"id":"p1","name":"Ann","admin":true,"tag":"t1"},{"id":"p3","name":"Bo"}],"iceServers":[{"urls":["stun:h:3478"]},{"urls":["turn:h:3478?transport=udp","turn:h:3478?transport=tcp"],"username":"1:a","credential":"pw"}]}"#,
        ),
        (
            ServerMessage::Joined {
                v: 1,
                room: "r".into(),
                you: PeerId("p1".into()),
                peers: vec![],
                ice_servers: vec![],
            },
            r#"{"type":"joined","v":1,"room":"r","you":"p1","peers":[],"iceServers":[]}"#,
        ),
        (
            ServerMessage::PeerJoined { peer: tagged },
            r#"{"type":"peer-joined","peer":{"id":"p2","name":"Ben","tag":"t2"}}"#,
        ),
        (
            ServerMessage::PeerLeft {
                id: PeerId("p2".into()),
                reason: LeaveReason::Left,
            },
            r#"{"type":"peer-left","id":"p2","reason":"left"}"#,
        ),
        (
            ServerMessage::PeerLeft {
                id: PeerId("p2".into()),
                reason: LeaveReason::Disconnected,
            },
            r#"{"type":"peer-left","id":"p2","reason":"disconnected"}"#,
        ),
        (
            ServerMessage::Reconnect {
                reason: "draining".into(),
            },
            r#"{"type":"reconnect","reason":"draining"}"#,
        ),
        (
            ServerMessage::Pong {
                id: Some(raw("1.10")),
            },
            r#"{"type":"pong","id":1.10}"#,
        ),
        (
            ServerMessage::Pong {
                id: Some(RawData::null()),
            },
            r#"{"type":"pong","id":null}"#,
        ),
        (ServerMessage::Pong { id: None }, r#"{"type":"pong"}"#),
        (ServerMessage::Left, r#"{"type":"left"}"#),
        (
            ServerMessage::Mode {
                mode: RoomMode::Sfu,
            },
            r#"{"type":"mode","mode":"sfu"}"#,
        ),
        (
            ServerMessage::Mode {
                mode: RoomMode::P2p,
            },
            r#"{"type":"mode","mode":"p2p"}"#,
        ),
        (
            ServerMessage::Sfu {
                data: raw(r#"{"type":"offer","sdp":"v=0\r\na=msid:p1 t1\r\n"}"#),
            },
            r#"{"type":"sfu","data":{"type":"offer","sdp":"v=0\r\na=msid:p1 t1\r\n"}}"#,
        ),
        (
            ServerMessage::error(&SignalError::NotSfu),
            r#"{"type":"error","code":"not-sfu","message":"this room is not in SFU mode"}"#,
        ),
        (
            ServerMessage::error(&SignalError::RoomFull(8)),
            r#"{"type":"error","code":"room-full","message":"the room is full (8 peers)"}"#,
        ),
        (
            ServerMessage::error(&SignalError::Unauthorized(TokenError::Expired)),
            r#"{"type":"error","code":"unauthorized","message":"the invite token has expired","reason":"expired"}"#,
        ),
    ];
    for (kind, text) in [
        (
            RelayKind::Offer,
            r#"{"type":"offer","from":"p1","data":{"type":"offer","sdp":"v=0"}}"#,
        ),
        (
            RelayKind::Answer,
            r#"{"type":"answer","from":"p1","data":{"type":"answer","sdp":"v=0"}}"#,
        ),
        (
            RelayKind::Candidate,
            r#"{"type":"candidate","from":"p1","data":null}"#,
        ),
        (
            RelayKind::Message,
            r#"{"type":"message","from":"p1","data":{"kind":"state","muted":true}}"#,
        ),
    ] {
        let data = match kind {
            RelayKind::Offer => raw(r#"{"type":"offer","sdp":"v=0"}"#),
            RelayKind::Answer => raw(r#"{"type":"answer","sdp":"v=0"}"#),
            RelayKind::Candidate => RawData::null(),
            RelayKind::Message => raw(r#"{"kind":"state","muted":true}"#),
        };
        list.push((
            ServerMessage::relayed(kind, PeerId("p1".into()), data),
            text,
        ));
    }
    list
}

#[test]
fn every_variant_round_trips_and_its_text_is_unchanged() {
    let list = every_variant();
    // Every variant is there (relays counted once each).
    let mut seen = std::collections::BTreeSet::new();
    for (m, text) in list {
        assert_eq!(m.to_json(), text);
        let parsed = parse_server_message(text);
        assert_eq!(parsed.as_ref(), Ok(&m), "{text}");
        assert_eq!(parsed.map(|p| p.to_json()).as_deref(), Ok(text));
        let back: Result<ServerMessage, _> = serde_json::from_str(text);
        assert_eq!(back.ok().as_ref(), Some(&m), "{text}");
        let kind = serde_json::from_str::<serde_json::Value>(text).unwrap()["type"].to_string();
        seen.insert(kind);
    }
    assert_eq!(seen.len(), 13, "{seen:?}");
}

#[test]
fn relayed_data_and_pong_id_keep_their_bytes() {
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases = [
        "123456789012345678901234567890",
        "-123456789012345678901234567890.000000000000000000001",
        "1.10",
        "1e400",
        "-1E-400",
        "-0.0",
        "-0",
        r#"{"z":1,"a":2,"m":{"y":[],"b":{}}}"#,
        r#"{"a":1,"a":2}"#,
        r#""\u00e9\ud83d\ude00""#,
        r#""\ud800 lone, \/ slash, \" quote, \\ backslash, \b\f\n\r\t""#,
        "\"caf\u{e9} \u{1f600}\"",
        "{ \"sdp\" : \"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\" ,\n\t\"type\":\"offer\" }",
        "[ [1, [2, [3, []]]], [ ], {\"k\": [true, false, null]} ]",
        &deep,
        "null",
        "\"\"",
    ];
    for data in cases {
        for kind in RelayKind::ALL {
            // Whitespace around `data` is not part of it; inside, it is.
            let frame = format!(
                " {{\"data\":\t {data} \n,\"from\" : \"p1\",\"type\":\"{}\"}} ",
                kind.as_str()
            );
            let m = parse_server_message(&frame);
            let expected = ServerMessage::relayed(kind, PeerId("p1".into()), raw(data));
            assert_eq!(m.as_ref(), Ok(&expected), "{frame}");
            assert_eq!(
                m.map(|m| m.to_json()),
                Ok(format!(
                    r#"{{"type":"{}","from":"p1","data":{data}}}"#,
                    kind.as_str()
                ))
            );
        }
        let frame = format!("{{\"data\": {data} ,\"type\":\"sfu\"}}");
        let m = parse_server_message(&frame);
        assert_eq!(
            m.as_ref(),
            Ok(&ServerMessage::Sfu { data: raw(data) }),
            "{frame}"
        );
        assert_eq!(
            m.map(|m| m.to_json()),
            Ok(format!(r#"{{"type":"sfu","data":{data}}}"#))
        );
        let frame = format!("{{\"type\":\"pong\",\"id\": {data} }}");
        match parse_server_message(&frame) {
            Ok(ServerMessage::Pong { id: Some(id) }) => assert_eq!(id.get(), data),
            other => panic!("{frame}: {other:?}"),
        }
    }
}

#[test]
fn hub_output_parses_back_to_itself() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let (a, b) = (ConnId(1), ConnId(2));
    let ice = every_variant().into_iter().find_map(|(m, _)| match m {
        ServerMessage::Joined { ice_servers, .. } if !ice_servers.is_empty() => Some(ice_servers),
        _ => None,
    });
    let ice = IceServers::from(ice.unwrap());
    hub.handle_connect(a, ice.clone(), now);
    hub.handle_connect(b, ice, now);
    let texts = [
        (
            a,
            r#"{"type":"join","v":1,"room":"r","name":"Ann","session":"s-a"}"#,
        ),
        (b, r#"{"type":"join","v":1,"room":"r","name":"Ben"}"#),
        (
            b,
            r#"{"type":"offer","to":"p1","data": {"sdp":"v=0\r\n","n":1.10} }"#,
        ),
        (a, r#"{"type":"candidate","to":"p2","data":null}"#),
        (a, r#"{"type":"ping","id":[-0.0]}"#),
        (a, r#"{"type":"ping"}"#),
        (a, r#"{"type":"offer","to":"p9","data":1}"#),
        (a, r#"{"type":"nope"}"#),
        (b, r#"{"type":"leave"}"#),
    ];
    for (conn, text) in texts {
        hub.handle_text(conn, text, now, 0);
    }
    hub.handle_drain(now);
    hub.handle_disconnect(a);
    let mut sent = 0;
    while let Some(out) = hub.poll_output() {
        if let Output::Send { message, .. } = out {
            let text = message.to_json();
            assert_eq!(parse_server_message(&text).as_ref(), Ok(&message), "{text}");
            sent += 1;
        }
    }
    assert!(sent >= 12, "{sent}");
}

#[test]
fn members_it_does_not_know_are_ignored() {
    let cases = [
        (
            r#"{"x":{"deep":[1,{"y":1e400}]},"type":"left","z":null}"#,
            ServerMessage::Left,
        ),
        (
            r#"{"iceServers":[{"urls":["stun:h"],"credentialType":"password","username":null}],"peers":[{"name":"Ann","id":"p1","admin":false,"tag":null,"muted":true}],"you":"p2","room":"r","v":1,"type":"joined","since":5}"#,
            ServerMessage::Joined {
                v: 1,
                room: "r".into(),
                you: PeerId("p2".into()),
                peers: vec![peer("p1", "Ann")],
                ice_servers: vec![IceServer {
                    urls: vec!["stun:h".into()],
                    username: None,
                    credential: None,
                }],
            },
        ),
        (
            r#"{"type":"error","code":"draining","message":"m","reason":null,"retryAfter":5}"#,
            ServerMessage::Error {
                code: ErrorCode::Draining,
                message: "m".into(),
                reason: None,
            },
        ),
        (
            r#"{"type":"peer-left","id":"p2","reason":"left","at":"now"}"#,
            ServerMessage::PeerLeft {
                id: PeerId("p2".into()),
                reason: LeaveReason::Left,
            },
        ),
        (
            r#"{"type":"offer","from":"p1","data":1,"to":"p2"}"#,
            ServerMessage::relayed(RelayKind::Offer, PeerId("p1".into()), raw("1")),
        ),
        // Escapes in names and values; of a member given twice the last counts.
        (
            r#"{"typ\u0065":"nope","type":"l\u0065ft"}"#,
            ServerMessage::Left,
        ),
        (
            r#"{"type":"reconnect","reason":"a","reason":"draining"}"#,
            ServerMessage::Reconnect {
                reason: "draining".into(),
            },
        ),
        (
            r#"{"type":"mode","mode":"sfu","layers":3}"#,
            ServerMessage::Mode {
                mode: RoomMode::Sfu,
            },
        ),
        (
            r#"{"type":"sfu","from":"sfu","data":null}"#,
            ServerMessage::Sfu {
                data: RawData::null(),
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_server_message(text).as_ref(), Ok(&expected), "{text}");
    }
}

#[test]
fn malformed_frames_are_errors() {
    use ErrorCode::{BadJson, BadMessage, UnknownType};
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let joined = |peers: &str, ice: &str| {
        format!(
            r#"{{"type":"joined","v":1,"room":"r","you":"p1","peers":{peers},"iceServers":{ice}}}"#
        )
    };
    let cases: Vec<(String, ErrorCode, &str)> = [
        ("", BadJson, ""),
        (" ", BadJson, ""),
        ("{", BadJson, ""),
        ("not json", BadJson, ""),
        (r#"{"type":"left"} {}"#, BadJson, ""),
        (r#"{"type":"left",}"#, BadJson, ""),
        ("\u{feff}{\"type\":\"left\"}", BadJson, ""),
        (r#"{"type":"offer","from":"p1","data":{"a":}}"#, BadJson, ""),
        (r#"{"type":"offer","from":"p1","data":1 2}"#, BadJson, ""),
        (r#"{"type":"pong","id":01}"#, BadJson, ""),
        ("[1]", BadMessage, "type"),
        ("null", BadMessage, "type"),
        ("\"left\"", BadMessage, "type"),
        ("{}", BadMessage, "type"),
        (r#"{"type":5}"#, BadMessage, "type"),
        (r#"{"type":null}"#, BadMessage, "type"),
        (r#"{"type":["left"]}"#, BadMessage, "type"),
        (r#"{"type":"nope"}"#, UnknownType, "nope"),
        // Client → server types are not server messages.
        (
            r#"{"type":"join","v":1,"room":"r","name":"A"}"#,
            UnknownType,
            "join",
        ),
        (r#"{"type":"ping"}"#, UnknownType, "ping"),
        (r#"{"type":"leave"}"#, UnknownType, "leave"),
        (
            r#"{"type":"view","peer":"p1","width":1}"#,
            UnknownType,
            "view",
        ),
        (r#"{"type":"mode"}"#, BadMessage, "missing field `mode`"),
        (r#"{"type":"mode","mode":"mcu"}"#, BadMessage, "`mode`"),
        (r#"{"type":"mode","mode":"SFU"}"#, BadMessage, "`mode`"),
        (r#"{"type":"mode","mode":null}"#, BadMessage, "`mode`"),
        (r#"{"type":"sfu"}"#, BadMessage, "missing field `data`"),
        (r#"{"type":"sfu","data":{"a":}}"#, BadJson, ""),
        (
            r#"{"type":"offer","to":"p1","data":1}"#,
            BadMessage,
            "missing field `from`",
        ),
        (
            r#"{"type":"answer","from":"p1"}"#,
            BadMessage,
            "missing field `data`",
        ),
        (
            r#"{"type":"candidate","from":5,"data":1}"#,
            BadMessage,
            "`from`",
        ),
        (
            r#"{"type":"message","from":"\ud800","data":1}"#,
            BadMessage,
            "`from`",
        ),
        (r#"{"type":"joined"}"#, BadMessage, "missing field `v`"),
        (
            r#"{"type":"joined","v":-1,"room":"r","you":"p1","peers":[],"iceServers":[]}"#,
            BadMessage,
            "`v`",
        ),
        (
            r#"{"type":"joined","v":"1","room":"r","you":"p1","peers":[],"iceServers":[]}"#,
            BadMessage,
            "`v`",
        ),
        (
            r#"{"type":"joined","v":1,"room":"r","you":"p1","peers":[]}"#,
            BadMessage,
            "missing field `iceServers`",
        ),
        (
            r#"{"type":"peer-joined"}"#,
            BadMessage,
            "missing field `peer`",
        ),
        (
            r#"{"type":"peer-joined","peer":null}"#,
            BadMessage,
            "`peer`",
        ),
        (
            r#"{"type":"peer-joined","peer":{"id":"p1"}}"#,
            BadMessage,
            "missing field `name`",
        ),
        (
            r#"{"type":"peer-left","id":"p1"}"#,
            BadMessage,
            "missing field `reason`",
        ),
        (
            r#"{"type":"peer-left","id":"p1","reason":"kicked"}"#,
            BadMessage,
            "kicked",
        ),
        (
            r#"{"type":"reconnect"}"#,
            BadMessage,
            "missing field `reason`",
        ),
        (r#"{"type":"reconnect","reason":5}"#, BadMessage, "`reason`"),
        (
            r#"{"type":"error","message":"m"}"#,
            BadMessage,
            "missing field `code`",
        ),
        (
            r#"{"type":"error","code":"draining"}"#,
            BadMessage,
            "missing field `message`",
        ),
        (
            r#"{"type":"error","code":"kicked","message":"m"}"#,
            BadMessage,
            "`code`: unknown error code \"kicked\"",
        ),
        (
            r#"{"type":"error","code":5,"message":"m"}"#,
            BadMessage,
            "`code`",
        ),
        (
            r#"{"type":"error","code":"draining","message":"m","reason":5}"#,
            BadMessage,
            "`reason`",
        ),
    ]
    .into_iter()
    .map(|(t, c, m)| (t.to_owned(), c, m))
    .chain([
        (joined("{}", "[]"), BadMessage, "`peers`"),
        (
            joined(r#"[{"id":"p1"}]"#, "[]"),
            BadMessage,
            "`peers`: missing field `name`",
        ),
        (
            joined(r#"[{"id":"p1","name":"A","admin":"yes"}]"#, "[]"),
            BadMessage,
            "`peers`",
        ),
        (
            joined(r#"[{"id":"p1","name":"A","tag":1}]"#, "[]"),
            BadMessage,
            "`peers`",
        ),
        (
            joined("[]", r#"[{"username":"u"}]"#),
            BadMessage,
            "`iceServers`: missing field `urls`",
        ),
        (
            joined("[]", r#"[{"urls":"stun:h"}]"#),
            BadMessage,
            "`iceServers`",
        ),
        (
            joined("[]", r#"[{"urls":[5]}]"#),
            BadMessage,
            "`iceServers`",
        ),
        // Nesting past serde_json's limit where a value is read: an error,
        // not a stack overflow.
        (joined(&deep(10_000), "[]"), BadMessage, "`peers`"),
        (deep(10_000), BadJson, ""),
        (
            format!(r#"{{"type":"{}"}}"#, "t".repeat(5000)),
            UnknownType,
            "",
        ),
    ])
    .collect();
    for (frame, code, message) in cases {
        let short: String = frame.chars().take(120).collect();
        match parse_server_message(&frame) {
            Err(e) => {
                assert_eq!(e.code(), code, "{short}: {e}");
                assert!(e.to_string().contains(message), "{short}: {e}");
                assert!(e.to_string().chars().count() <= 300, "{short}: {e}");
            }
            Ok(m) => panic!("{short}: {m:?}"),
        }
        let back: Result<ServerMessage, _> = serde_json::from_str(&frame);
        assert!(back.is_err(), "{short}");
    }
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_frames_parse_to_a_fixed_point_or_an_error() {
    let seeds: Vec<&str> = every_variant().into_iter().map(|(_, t)| t).collect();
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        " ",
        "\\",
        "\\u",
        "\\ud800",
        "1",
        "-",
        ".",
        "e",
        "1e400",
        "null",
        "true",
        "\"type\"",
        "\"from\"",
        "\"data\"",
        "\"id\"",
        "\"code\"",
        "\"reason\"",
        "\"left\"",
        "\"pong\"",
        "\"error\"",
        "\"mode\"",
        "\"sfu\"",
        "\"p2p\"",
        "\"x\"",
        "\u{7}",
    ];
    let mut rng = Rng(0x5eed_5e7e_0000_0001);
    let mut answers = std::collections::HashMap::new();
    for _ in 0..20_000 {
        let seed = seeds[rng.below(seeds.len())];
        let mut chars: Vec<char> = seed.chars().collect();
        for _ in 0..=rng.below(3) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let piece = pieces[rng.below(pieces.len())];
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                _ => {
                    let end = (at + 1 + rng.below(12)).min(chars.len());
                    let span: Vec<char> = chars[at.min(end)..end].to_vec();
                    for (i, c) in span.into_iter().enumerate() {
                        chars.insert(end + i, c);
                    }
                }
            }
        }
        let frame: String = chars.into_iter().collect();
        match parse_server_message(&frame) {
            // What was read is written out so that it reads the same.
            Ok(m) => {
                let text = m.to_json();
                assert_eq!(parse_server_message(&text).as_ref(), Ok(&m), "{frame}");
                *answers.entry("ok").or_insert(0) += 1;
            }
            Err(e) => {
                let code = e.code();
                assert!(
                    matches!(
                        code,
                        ErrorCode::BadJson | ErrorCode::BadMessage | ErrorCode::UnknownType
                    ),
                    "{frame}: {e}"
                );
                *answers.entry(code.as_str()).or_insert(0) += 1;
            }
        }
    }
    for answer in ["ok", "bad-json", "bad-message", "unknown-type"] {
        assert!(
            answers.get(answer).is_some_and(|n| *n > 0),
            "{answer}: {answers:?}"
        );
    }
}
