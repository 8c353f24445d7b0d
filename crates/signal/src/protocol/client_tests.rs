//! Relayed `data` keeps its bytes, and the parser that keeps them answers
//! every other input as the parser before it did (which read the whole
//! frame into a `serde_json::Value`): checked against a copy of that parser
//! over hand-written frames and many mutated ones.

use super::*;
use crate::error::ErrorCode;
use crate::protocol::ServerMessage;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

/// The parser as it was before `data` was kept as text (issue 15), with its
/// own result type: `data` and `id` were `Value`s.
mod before {
    use super::super::{
        MAX_PASSWORD_LEN, PROTOCOL_VERSION, RelayKind, check_name, check_room, check_session,
        truncate,
    };
    use crate::error::SignalError;
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Message {
        Join {
            room: String,
            name: String,
            password: Option<String>,
            token: Option<String>,
            session: Option<String>,
        },
        Relay {
            kind: RelayKind,
            to: String,
            data: Value,
        },
        Ping {
            id: Option<Value>,
        },
        Leave,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct JoinFields {
        #[serde(rename = "type")]
        _type: String,
        v: u32,
        room: String,
        name: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        session: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RelayFields {
        #[serde(rename = "type")]
        _type: String,
        to: String,
        #[serde(default)]
        data: Value,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PingFields {
        #[serde(rename = "type")]
        _type: String,
        #[serde(default)]
        id: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LeaveFields {
        #[serde(rename = "type")]
        _type: String,
    }

    fn fields<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, SignalError> {
        serde_json::from_value(value)
            .map_err(|e| SignalError::BadMessage(truncate(&e.to_string(), 200)))
    }

    pub fn parse(text: &str, max_bytes: usize) -> Result<Message, SignalError> {
        if text.len() > max_bytes {
            return Err(SignalError::TooLarge {
                size: text.len(),
                limit: max_bytes,
            });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| SignalError::BadJson(e.to_string()))?;
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return Err(SignalError::BadMessage(
                "expected an object with a string `type`".into(),
            ));
        };
        let relay = |kind: RelayKind, value: Value| -> Result<Message, SignalError> {
            let f: RelayFields = fields(value)?;
            Ok(Message::Relay {
                kind,
                to: f.to,
                data: f.data,
            })
        };
        match kind {
            "join" => {
                let f: JoinFields = fields(value)?;
                if f.v != PROTOCOL_VERSION {
                    return Err(SignalError::UnsupportedVersion(f.v));
                }
                Ok(Message::Join {
                    room: check_room(&f.room)?,
                    name: check_name(&f.name)?,
                    password: match f.password {
                        Some(p) if p.len() > MAX_PASSWORD_LEN => {
                            return Err(SignalError::BadMessage("password too long".into()));
                        }
                        Some(p) if p.is_empty() => None,
                        p => p,
                    },
                    token: f.token.filter(|t| !t.is_empty()),
                    session: match f.session {
                        Some(s) if s.is_empty() => None,
                        Some(s) => Some(check_session(&s)?),
                        None => None,
                    },
                })
            }
            "offer" => relay(RelayKind::Offer, value),
            "answer" => relay(RelayKind::Answer, value),
            "candidate" => relay(RelayKind::Candidate, value),
            "message" => relay(RelayKind::Message, value),
            "ping" => {
                let f: PingFields = fields(value)?;
                Ok(Message::Ping { id: f.id })
            }
            "leave" => {
                let _: LeaveFields = fields(value)?;
                Ok(Message::Leave)
            }
            other => Err(SignalError::UnknownType(truncate(other, 64))),
        }
    }
}

/// `raw` as a `Value` (`None`: the old parser could not read it).
fn opaque_as_value(raw: &RawData) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// The members of a JSON object in order, duplicates included (read here
/// independently of the parser under test).
fn object_members(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, Box<RawValue>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de.deserialize_map(Entries).ok()?;
    de.end().ok()?;
    Some(entries)
}

/// Where the two parsers may differ: the old one refused the frame as
/// `bad-json` because of an opaque payload (an out-of-range number, a lone
/// surrogate escape, nesting past 127 levels) that is now taken as is. Then
/// the frame with its opaque payloads replaced by `0` gets from the old
/// parser what the frame gets now.
fn differs_only_by_opaque_payload(
    text: &str,
    max: usize,
    new: &Result<ClientMessage, SignalError>,
) {
    let members = object_members(text).unwrap_or_else(|| panic!("{text:?}: {new:?}"));
    let kind = members
        .iter()
        .rev()
        .find(|(k, _)| k == "type")
        .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok());
    let opaque = match kind.as_deref() {
        Some(k) if RelayKind::from_type(k).is_some() => "data",
        Some("ping") => "id",
        _ => panic!("{text:?}: no opaque payload, yet {new:?}"),
    };
    let mut refused = false;
    let plain: Vec<String> = members
        .iter()
        .map(|(k, v)| {
            let mut value = v.get();
            if k == opaque {
                // Inside the frame's object: one level deeper.
                refused |= serde_json::from_str::<Value>(&format!("[{value}]")).is_err();
                value = "0";
            }
            format!("{}:{value}", serde_json::to_string(k).unwrap_or_default())
        })
        .collect();
    assert!(
        refused,
        "{text:?}: every opaque payload was readable, yet {new:?}"
    );
    let plain = format!("{{{}}}", plain.join(","));
    match (new, before::parse(&plain, max)) {
        (Ok(n), Ok(o)) => {
            let same = match (n, &o) {
                (
                    ClientMessage::Relay { kind, to, .. },
                    before::Message::Relay { kind: k, to: t, .. },
                ) => kind == k && &to.0 == t,
                (ClientMessage::Ping { .. }, before::Message::Ping { .. }) => true,
                _ => false,
            };
            assert!(same, "{text:?}: {n:?}; {plain:?}: {o:?}");
        }
        (Err(n), Err(o)) => assert_eq!(n.code(), o.code(), "{text:?}: {n}; {plain:?}: {o}"),
        (n, o) => panic!("{text:?}: {n:?}; {plain:?}: {o:?}"),
    }
}

/// The new parser's answer to `text` is the old one's, except where the old
/// one refused only an opaque payload (see
/// [`differs_only_by_opaque_payload`]). Returns whether it was such a frame.
fn same_as_before(text: &str, max: usize, compare_messages: bool) -> bool {
    let new = parse_client_message(text, max);
    let old = before::parse(text, max);
    match (&new, &old) {
        (Ok(n), Ok(o)) => {
            let same = match (n, o) {
                (
                    ClientMessage::Join {
                        room,
                        name,
                        password,
                        token,
                        session,
                        sfu,
                    },
                    before::Message::Join {
                        room: r,
                        name: nm,
                        password: p,
                        token: t,
                        session: s,
                    },
                ) => (room, name, password, token, session) == (r, nm, p, t, s) && !sfu,
                (
                    ClientMessage::Relay { kind, to, data },
                    before::Message::Relay {
                        kind: k,
                        to: t,
                        data: d,
                    },
                ) => kind == k && &to.0 == t && opaque_as_value(data).as_ref() == Some(d),
                (ClientMessage::Ping { id }, before::Message::Ping { id: i }) => {
                    id.as_ref().map(opaque_as_value) == i.clone().map(Some)
                }
                (ClientMessage::Leave, before::Message::Leave) => true,
                _ => false,
            };
            assert!(same, "{text:?}: {n:?} vs {o:?}");
            false
        }
        (Err(n), Err(o)) if n.code() == o.code() => {
            if compare_messages && n.code() != ErrorCode::BadJson {
                // `join` also takes `features` now (SFU rooms), and an
                // unknown field's message lists it.
                let n = match n {
                    SignalError::BadMessage(m) => {
                        SignalError::BadMessage(m.replace(", `features`", ""))
                    }
                    n => n.clone(),
                };
                assert_eq!(&n, o, "{text:?}");
            }
            false
        }
        (_, Err(o)) if o.code() == ErrorCode::BadJson => {
            differs_only_by_opaque_payload(text, max, &new);
            true
        }
        (n, o) => panic!("{text:?}: now {n:?}, before {o:?}"),
    }
}

#[test]
fn relayed_data_keeps_its_bytes() {
    let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
    let cases = [
        "123456789012345678901234567890",
        "-123456789012345678901234567890.000000000000000000001",
        "1.10",
        "1e400",
        "-1E-400",
        "-0.0",
        "-0",
        "0.1e+01",
        r#"{"z":1,"a":2,"m":{"y":[],"b":{}}}"#,
        r#"{"a":1,"a":2}"#,
        r#""\u00e9\ud83d\ude00""#,
        r#""\ud800 lone, \/ slash, \" quote, \\ backslash, \b\f\n\r\t""#,
        "\"caf\u{e9} \u{1f600}\"",
        "{ \"sdp\" : \"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\" ,\n\t\"type\":\"offer\" }",
        "[ [1, [2, [3, []]]], [ ], {\"k\": [true, false, null]} ]",
        &deep,
        "null",
        "true",
        "\"\"",
        "{}",
    ];
    for data in cases {
        for kind in RelayKind::ALL {
            // Whitespace around `data` is not part of it; inside, it is.
            let frame = format!(
                "{{\"type\":\"{}\",\"data\":  {data} \n,\"to\":\"p2\"}}",
                kind.as_str()
            );
            let m = parse_client_message(&frame, 64 * 1024);
            let Ok(ClientMessage::Relay {
                kind: k,
                to,
                data: d,
            }) = m
            else {
                panic!("{frame}: {m:?}");
            };
            assert_eq!((k, to.0.as_str(), d.get()), (kind, "p2", data));
            let out = ServerMessage::relayed(kind, PeerId("p1".into()), d).to_json();
            assert_eq!(
                out,
                format!(
                    r#"{{"type":"{}","from":"p1","data":{data}}}"#,
                    kind.as_str()
                )
            );
        }
    }
    // No `data` relays `null`, as before.
    let m = parse_client_message(r#"{"type":"message","to":"p2"}"#, 1024);
    assert!(
        matches!(&m, Ok(ClientMessage::Relay { data, .. }) if data.get() == "null"),
        "{m:?}"
    );
}

#[test]
fn ping_id_is_echoed_byte_for_byte() {
    for (id, echoed) in [
        ("1.10", Some("1.10")),
        ("1e400", Some("1e400")),
        (r#"{"b":1,"a":[ 2 ]}"#, Some(r#"{"b":1,"a":[ 2 ]}"#)),
        ("null", None),
    ] {
        let m = parse_client_message(&format!(r#"{{"type":"ping","id": {id} }}"#), 1024);
        let Ok(ClientMessage::Ping { id }) = m else {
            panic!("{m:?}");
        };
        assert_eq!(id.as_ref().map(RawData::get), echoed);
        let pong = ServerMessage::Pong { id }.to_json();
        match echoed {
            Some(e) => assert_eq!(pong, format!(r#"{{"type":"pong","id":{e}}}"#)),
            None => assert_eq!(pong, r#"{"type":"pong"}"#),
        }
    }
}

#[test]
fn data_must_be_well_formed_json() {
    for data in [
        "{\"a\":}",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "NaN",
        "Infinity",
        "undefined",
        "'single'",
        r#""\x""#,
        r#""\u12""#,
        "\"tab\tinside\"",
        "\"unterminated",
        "[[[",
        "{\"a\" 1}",
        "{1:2}",
        "tru",
        "",
    ] {
        let frame = format!(r#"{{"type":"offer","to":"p2","data":{data}}}"#);
        let code = parse_client_message(&frame, 1024).err().map(|e| e.code());
        assert_eq!(code, Some(ErrorCode::BadJson), "{frame}");
        assert!(RawData::from_json(data).is_err(), "{data}");
    }
    // Two values are not one.
    assert_eq!(
        parse_client_message(r#"{"type":"offer","to":"p2","data":1 2}"#, 1024)
            .err()
            .map(|e| e.code()),
        Some(ErrorCode::BadJson)
    );
}

#[test]
fn raw_data_compares_and_prints_its_text() {
    let a = RawData::from_json(" {\"x\": 1.10} ").ok();
    assert_eq!(a.as_ref().map(RawData::get), Some("{\"x\": 1.10}"));
    assert_eq!(a, RawData::from_json("{\"x\": 1.10}").ok());
    assert_ne!(a, RawData::from_json("{\"x\":1.10}").ok());
    assert_eq!(
        a.as_ref().map(|d| format!("{d:?} {d}")),
        Some("RawData({\"x\": 1.10}) {\"x\": 1.10}".into())
    );
    assert_eq!(RawData::default(), RawData::null());
    assert_eq!(
        "[1e400]".parse::<RawData>().ok().map(|d| d.to_string()),
        Some("[1e400]".into())
    );
    let json = serde_json::to_string(&RawData::from_json("[ 1.10 ]").ok());
    assert_eq!(json.ok().as_deref(), Some("[ 1.10 ]"));
}

#[test]
fn client_messages_round_trip_through_their_wire_form() {
    let raw = |t: &str| RawData::from_json(t).unwrap_or_default();
    let messages = [
        ClientMessage::Join {
            room: "abc".into(),
            name: "Ann".into(),
            password: Some("pw".into()),
            token: None,
            session: Some("s-1".into()),
            sfu: false,
        },
        ClientMessage::Join {
            room: "abc".into(),
            name: "Ann".into(),
            password: None,
            token: Some("t".into()),
            session: None,
            sfu: true,
        },
        ClientMessage::Sfu {
            data: raw(r#"{"type":"offer","sdp":"v=0\r\n","n":1.10}"#),
        },
        ClientMessage::View {
            peer: PeerId("p3".into()),
            width: 320,
        },
        ClientMessage::View {
            peer: PeerId("p3".into()),
            width: 0,
        },
        ClientMessage::Relay {
            kind: RelayKind::Candidate,
            to: PeerId("p7".into()),
            data: raw(
                r#"{"z":123456789012345678901234567890, "a":[1.10,-0.0,1e400],"s":"\u00e9"}"#,
            ),
        },
        ClientMessage::Ping {
            id: Some(raw("1.10")),
        },
        ClientMessage::Ping { id: None },
        ClientMessage::Leave,
    ];
    for m in messages {
        let text = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(parse_client_message(&text, 1024).as_ref(), Ok(&m), "{text}");
        let back: Result<ClientMessage, _> = serde_json::from_str(&text);
        assert_eq!(back.ok().as_ref(), Some(&m), "{text}");
    }
    assert_eq!(
        serde_json::to_string(&ClientMessage::Relay {
            kind: RelayKind::Offer,
            to: PeerId("p2".into()),
            data: raw(r#"{"sdp": "v=0", "type": "offer"}"#),
        })
        .ok()
        .as_deref(),
        Some(r#"{"type":"offer","to":"p2","data":{"sdp": "v=0", "type": "offer"}}"#)
    );
    // Deserializing applies the protocol's rules.
    let bad: Result<ClientMessage, _> = serde_json::from_str(r#"{"type":"leave","x":1}"#);
    assert!(bad.is_err());
}

/// Hand-written frames: every rule, every code, and the corners of JSON
/// (duplicates, escapes in keys, numbers, nesting) in every position.
fn corpus() -> Vec<String> {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let mut frames: Vec<String> = [
        "",
        " ",
        "{",
        "}",
        "not json",
        "{not json",
        "[1]",
        "[1,",
        "[1e400]",
        "\"offer\"",
        "5",
        "null",
        "{}",
        "{} {}",
        "{}x",
        r#"{"type":5}"#,
        r#"{"type":null}"#,
        r#"{"type":["offer"]}"#,
        r#"{"type":"nope"}"#,
        r#"{"type":"nope","data":1e400}"#,
        r#"{"type":"nope","x":1}"#,
        r#"{"type":"off\u0065r","to":"p2","data":1}"#,
        r#"{"typ\u0065":"offer","to":"p2","data":1}"#,
        r#"{"type":"\ud800"}"#,
        r#"{"type":"offer","type":"nope"}"#,
        r#"{"type":"nope","type":"leave"}"#,
        r#"{"type":1e400,"type":"leave"}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"leave","x":1}"#,
        r#"{"type":"leave","data":1}"#,
        r#"{"type":"leave","data":1e400}"#,
        r#"{"type":"leave","id":1e400}"#,
        r#"{"type":"leave","x":"\ud800"}"#,
        r#"{"type":"leave","\ud800":1}"#,
        r#"{"type":"leave","x":[1,]}"#,
        r#"{"type":"leave",}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"ping","id":5}"#,
        r#"{"type":"ping","id":null}"#,
        r#"{"type":"ping","id":1e400}"#,
        r#"{"type":"ping","id":"\udc00"}"#,
        r#"{"type":"ping","id":{"b":1,"a":2}}"#,
        r#"{"type":"ping","id":1,"id":1e400}"#,
        r#"{"type":"ping","data":1}"#,
        r#"{"type":"ping","data":1e400}"#,
        r#"{"type":"offer"}"#,
        r#"{"type":"offer","data":{}}"#,
        r#"{"type":"offer","to":"p2"}"#,
        r#"{"type":"offer","to":"p2","data":null}"#,
        r#"{"type":"offer","to":"p2","data":{"sdp":"x"}}"#,
        r#"{"type":"offer","to":"p2","data":{"sdp":"x"},"extra":1}"#,
        r#"{"type":"offer","to":"p2","data":{"sdp":"x"},"extra":1e400}"#,
        r#"{"type":"offer","to":"p2","data":1e400}"#,
        r#"{"type":"offer","to":"p2","data":-1e400}"#,
        r#"{"type":"offer","to":"p2","data":[1,1e400]}"#,
        r#"{"type":"offer","to":"p2","data":"\ud800"}"#,
        r#"{"type":"offer","to":"p2","data":{"\udfff":1}}"#,
        r#"{"type":"offer","to":"p2","data":1,"data":2}"#,
        r#"{"type":"offer","to":"p2","data":1e400,"data":2}"#,
        r#"{"type":"offer","to":"p2","to":"p3","data":2}"#,
        r#"{"type":"offer","to":5,"to":"p3","data":2}"#,
        r#"{"type":"offer","to":"p2","id":1e400}"#,
        r#"{"type":"offer","to":1e400,"data":1}"#,
        r#"{"type":"offer","to":[1e400],"data":1}"#,
        r#"{"type":"offer","to":[1],"data":1}"#,
        r#"{"type":"offer","to":"\ud800","data":1}"#,
        r#"{"type":"offer","to":"p\u0032","data":1}"#,
        r#"{"type":"offer","to":null,"data":1}"#,
        r#"{"type":"offer","to":5,"data":1}"#,
        r#"{"type":"offer","to":"p2","data":1}x"#,
        r#"{"type":"offer","to":"p2","data":{"a":}}"#,
        r#"{"type":"answer","to":"p2","data":1}"#,
        r#"{"type":"candidate","to":"p2","data":null}"#,
        r#"{"type":"message","to":"p2","data":"hi"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":1,"room":"r","name":" Ann ","password":""}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","password":null,"token":null,"session":null}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","password":"pw","token":"t","session":"s-1"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","session":""}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","session":"bad session"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","token":""}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","password":5}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","x":1}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","data":1e400}"#,
        r#"{"type":"join","v":2,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":2,"room":"r","name":"Ann","x":1}"#,
        r#"{"type":"join","v":1.0,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":-1,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":-0,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":4294967297,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":123456789012345678901234567890,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":1e400,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":"1","room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":1e400,"v":1,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":2,"v":1,"room":"r","name":"Ann"}"#,
        r#"{"type":"join","room":"r","name":"Ann"}"#,
        r#"{"type":"join","v":1,"name":"Ann"}"#,
        r#"{"type":"join","v":1,"room":"r"}"#,
        r#"{"type":"join","v":1,"room":"a/b","name":"Ann"}"#,
        r#"{"type":"join","v":1,"room":"","name":"Ann"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"\u0007"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"   "}"#,
        r#"{"type":"join","v":1,"room":"r","name":"\ud83d\ude00"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"\ud83d"}"#,
        r#"{"type":"join","v":1,"room":"r","name":"Ann","password":"\ud83d"}"#,
        "{\"type\":\"join\",\"v\":1,\"room\":\"r\",\"name\":\"tab\tname\"}",
        "\u{feff}{\"type\":\"leave\"}",
        " \t\r\n{\"type\" : \"leave\" } \n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for depth in [126, 127, 128, 129, 400] {
        let d = deep(depth);
        frames.push(format!(r#"{{"type":"offer","to":"p2","data":{d}}}"#));
        frames.push(format!(r#"{{"type":"ping","id":{d}}}"#));
        frames.push(format!(r#"{{"type":"leave","x":{d}}}"#));
        frames.push(format!(r#"{{"type":"offer","to":{d},"data":1}}"#));
        frames.push(d);
    }
    frames.push(format!(
        r#"{{"type":"join","v":1,"room":"r","name":"Ann","password":"{}"}}"#,
        "p".repeat(257)
    ));
    frames.push(format!(r#"{{"type":"leave","{}":1}}"#, "f".repeat(5000)));
    frames.push(format!(r#"{{"type":"{}"}}"#, "t".repeat(5000)));
    frames
}

#[test]
fn hand_written_frames_get_the_same_answers_as_before() {
    let mut now_relayed = 0;
    for frame in corpus() {
        if same_as_before(&frame, 64 * 1024, true) {
            now_relayed += 1;
        }
        // Over the size limit, all the same.
        let code = parse_client_message(&frame, frame.len().saturating_sub(1))
            .err()
            .map(|e| e.code());
        if !frame.is_empty() {
            assert_eq!(code, Some(ErrorCode::TooLarge), "{frame}");
        }
    }
    // `data`: 1e400, -1e400, [1,1e400], two lone surrogates, 1e400 shadowed
    // by a later `data`; `id`: 1e400, a lone surrogate, a shadowed 1e400;
    // both nested 127, 128, 129 and 400 levels (the frame's limit was 127
    // levels with its own object).
    assert_eq!(
        now_relayed,
        6 + 3 + 4 * 2,
        "opaque payloads the old parser refused"
    );
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_frames_get_the_same_answers_as_before() {
    let seeds = corpus();
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
        "\\u00e9",
        "1",
        "0",
        "-",
        ".",
        "e",
        "E",
        "+",
        "1e400",
        "null",
        "true",
        "\"type\"",
        "\"to\"",
        "\"data\"",
        "\"id\"",
        "\"v\"",
        "\"offer\"",
        "\"ping\"",
        "\"join\"",
        "\"leave\"",
        "\"p2\"",
        "\n",
        "\u{7}",
        "x",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut relayed_now = 0;
    let mut answers = std::collections::HashMap::new();
    for round in 0..20_000 {
        let Some(seed) = seeds.get(rng.below(seeds.len())) else {
            continue;
        };
        let mut chars: Vec<char> = seed.chars().collect();
        for _ in 0..=rng.below(3) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let piece = pieces.get(rng.below(pieces.len())).copied().unwrap_or("");
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                _ => {
                    // Repeat a span: duplicate members, deeper nesting.
                    let end = (at + 1 + rng.below(12)).min(chars.len());
                    let span: Vec<char> =
                        chars.get(at..end).map(<[char]>::to_vec).unwrap_or_default();
                    for (i, c) in span.into_iter().enumerate() {
                        chars.insert(end + i, c);
                    }
                }
            }
        }
        let frame: String = chars.into_iter().collect();
        let max = if round % 10 == 0 { 64 } else { 64 * 1024 };
        if same_as_before(&frame, max, false) {
            relayed_now += 1;
        }
        if let Err(e) = parse_client_message(&frame, max) {
            *answers.entry(e.code().as_str()).or_insert(0) += 1;
        }
    }
    // The mutations reach every parse-level answer, and some frames the old
    // parser refused only for their opaque payload.
    for code in [
        "bad-json",
        "bad-message",
        "unknown-type",
        "too-large",
        "bad-room",
        "bad-name",
    ] {
        assert!(
            answers.get(code).is_some_and(|n| *n > 0),
            "{code}: {answers:?}"
        );
    }
    assert!(relayed_now > 0);
}
