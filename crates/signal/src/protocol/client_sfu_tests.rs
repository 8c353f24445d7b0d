//! The SFU additions to the client messages: `join`'s `features`, `sfu`
//! and `view`, read strictly like the rest (every bad case with its code)
//! and written back in their wire form.

use super::*;
use crate::error::ErrorCode;

fn parse(text: &str) -> Result<ClientMessage, SignalError> {
    parse_client_message(text, 64 * 1024)
}

fn code(text: &str) -> Option<ErrorCode> {
    parse(text).err().map(|e| e.code())
}

/// Whether a `join` with `features` (JSON text) reads as SFU-capable.
fn join_sfu(features: &str) -> Result<bool, ErrorCode> {
    let text = format!(r#"{{"type":"join","v":1,"room":"r","name":"Ann","features":{features}}}"#);
    match parse(&text) {
        Ok(ClientMessage::Join { sfu, .. }) => Ok(sfu),
        Ok(other) => panic!("{text}: {other:?}"),
        Err(e) => Err(e.code()),
    }
}

#[test]
fn join_features_say_whether_the_client_takes_sfu_rooms() {
    let plain = parse(r#"{"type":"join","v":1,"room":"r","name":"Ann"}"#);
    assert!(matches!(plain, Ok(ClientMessage::Join { sfu: false, .. })));
    let sixteen = format!("[{}]", vec![r#""x""#; 15].join(",") + r#","sfu""#);
    let longest = format!(r#"["sfu","{}"]"#, "é".repeat(32));
    for (features, sfu) in [
        ("null", false),
        ("[]", false),
        (r#"["sfu"]"#, true),
        (r#"["simulcast","sfu","x"]"#, true),
        (r#"["sfu","sfu"]"#, true),
        (r#"["s\u0066u"]"#, true),
        // Unknown entries are ignored; the name is exact.
        (r#"["SFU"," sfu","sfu2",""]"#, false),
        (&sixteen, true),
        (&longest, true),
    ] {
        assert_eq!(join_sfu(features), Ok(sfu), "{features}");
    }
    let seventeen = format!("[{}]", vec![r#""sfu""#; 17].join(","));
    let too_long = format!(r#"["sfu","{}"]"#, "x".repeat(33));
    for (features, code) in [
        (seventeen.as_str(), ErrorCode::BadMessage),
        (too_long.as_str(), ErrorCode::BadMessage),
        (r#""sfu""#, ErrorCode::BadMessage),
        (r#"{"sfu":true}"#, ErrorCode::BadMessage),
        ("[1]", ErrorCode::BadMessage),
        (r#"["sfu",null]"#, ErrorCode::BadMessage),
        (r#"[["sfu"]]"#, ErrorCode::BadMessage),
        ("true", ErrorCode::BadMessage),
        (r#"["\ud800"]"#, ErrorCode::BadJson),
        (r#"["sfu",]"#, ErrorCode::BadJson),
    ] {
        assert_eq!(join_sfu(features), Err(code), "{features}");
    }
    // The other checks of `join` come first, as before.
    assert_eq!(
        code(r#"{"type":"join","v":2,"room":"r","name":"Ann","features":["sfu"]}"#),
        Some(ErrorCode::UnsupportedVersion)
    );
    assert_eq!(
        code(r#"{"type":"join","v":1,"room":"a/b","name":"Ann","features":["sfu"]}"#),
        Some(ErrorCode::BadRoom)
    );
    assert_eq!(
        code(r#"{"type":"join","v":1,"room":"r","name":"Ann","feature":["sfu"]}"#),
        Some(ErrorCode::BadMessage)
    );
}

#[test]
fn join_writes_features_only_when_sfu_capable() {
    let join = |sfu| ClientMessage::Join {
        room: "r".into(),
        name: "Ann".into(),
        password: None,
        token: None,
        session: None,
        sfu,
    };
    assert_eq!(
        serde_json::to_string(&join(true)).ok().as_deref(),
        Some(r#"{"type":"join","v":1,"room":"r","name":"Ann","features":["sfu"]}"#)
    );
    assert_eq!(
        serde_json::to_string(&join(false)).ok().as_deref(),
        Some(r#"{"type":"join","v":1,"room":"r","name":"Ann"}"#)
    );
}

#[test]
fn sfu_data_is_opaque_json_kept_byte_for_byte() {
    for data in [
        r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}"#,
        r#"{ "sdp" : "v=0" , "type":"answer", "n": 1.10, "big": 123456789012345678901234567890 }"#,
        "1e400",
        r#""\ud800""#,
        "null",
    ] {
        let frame = format!("{{\"data\":  {data} \n,\"type\":\"sfu\"}}");
        let m = parse(&frame);
        assert_eq!(
            m.as_ref().ok(),
            Some(&ClientMessage::Sfu {
                data: RawData::from_json(data).unwrap()
            }),
            "{frame}"
        );
        assert!(
            matches!(&m, Ok(ClientMessage::Sfu { data: d }) if d.get() == data),
            "{frame}"
        );
        let text = serde_json::to_string(&m.unwrap()).unwrap_or_default();
        assert_eq!(text, format!(r#"{{"type":"sfu","data":{data}}}"#));
    }
    for (frame, expected) in [
        (r#"{"type":"sfu"}"#, ErrorCode::BadMessage),
        (r#"{"type":"sfu","data":{"a":}}"#, ErrorCode::BadJson),
        (r#"{"type":"sfu","data":NaN}"#, ErrorCode::BadJson),
        (r#"{"type":"sfu","data":1 2}"#, ErrorCode::BadJson),
        (
            r#"{"type":"sfu","data":1,"to":"p1"}"#,
            ErrorCode::BadMessage,
        ),
        (r#"{"type":"sfu","data":1,"x":1e400}"#, ErrorCode::BadJson),
    ] {
        assert_eq!(code(frame), Some(expected), "{frame}");
    }
    match parse(r#"{"type":"sfu"}"#) {
        Err(SignalError::BadMessage(m)) => assert!(m.contains("`data`"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_client_message(r#"{"type":"sfu","data":"0123456789"}"#, 20)
            .err()
            .map(|e| e.code()),
        Some(ErrorCode::TooLarge)
    );
}

#[test]
fn view_names_a_peer_and_a_tile_width() {
    for (frame, peer, width) in [
        (r#"{"type":"view","peer":"p2","width":320}"#, "p2", 320),
        (r#"{"width":0,"peer":"p7","type":"view"}"#, "p7", 0),
        (r#"{"type":"view","peer":"p2","width":16384}"#, "p2", 16_384),
        (r#"{"type":"view","peer":"p\u0032","width":1}"#, "p2", 1),
    ] {
        let expected = ClientMessage::View {
            peer: PeerId(peer.into()),
            width,
        };
        assert_eq!(parse(frame).as_ref(), Ok(&expected), "{frame}");
        let text = serde_json::to_string(&expected).unwrap_or_default();
        assert_eq!(
            text,
            format!(r#"{{"type":"view","peer":"{peer}","width":{width}}}"#)
        );
        assert_eq!(parse(&text).as_ref(), Ok(&expected), "{text}");
    }
    for (frame, expected) in [
        (
            r#"{"type":"view","peer":"p2","width":16385}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":4294967296}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":-1}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":1.5}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":320.0}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":3e2}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":"320"}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":null}"#,
            ErrorCode::BadMessage,
        ),
        (r#"{"type":"view","peer":"p2"}"#, ErrorCode::BadMessage),
        (r#"{"type":"view","width":320}"#, ErrorCode::BadMessage),
        (
            r#"{"type":"view","peer":2,"width":320}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":null,"width":320}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":320,"height":180}"#,
            ErrorCode::BadMessage,
        ),
        (
            r#"{"type":"view","peer":"p2","width":1e400}"#,
            ErrorCode::BadJson,
        ),
        (
            r#"{"type":"view","peer":"\ud800","width":1}"#,
            ErrorCode::BadJson,
        ),
        (
            r#"{"type":"view","peer":"p2","width":01}"#,
            ErrorCode::BadJson,
        ),
    ] {
        assert_eq!(code(frame), Some(expected), "{frame}");
    }
    match parse(r#"{"type":"view","peer":"p2","width":16385}"#) {
        Err(SignalError::BadMessage(m)) => assert!(m.contains("16384"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn new_messages_round_trip_through_deserialize() {
    for text in [
        r#"{"type":"join","v":1,"room":"r","name":"Ann","features":["sfu"]}"#,
        r#"{"type":"sfu","data":{"type":"answer","sdp":"v=0"}}"#,
        r#"{"type":"view","peer":"p2","width":640}"#,
    ] {
        let m: Result<ClientMessage, _> = serde_json::from_str(text);
        let back = m.ok().and_then(|m| serde_json::to_string(&m).ok());
        assert_eq!(back.as_deref(), Some(text));
    }
    let bad: Result<ClientMessage, _> =
        serde_json::from_str(r#"{"type":"view","peer":"p2","width":99999}"#);
    assert!(bad.is_err());
}
