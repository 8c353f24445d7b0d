//! Issue 15: the real `switchboard` binary relays `data` byte for byte over
//! real WebSockets. Numbers the old re-encoding changed (big integers,
//! `1.10`, `1e400`, `-0.0`), key order, unicode escapes and whitespace
//! inside arrive exactly as sent, for every relayed type; the other rules
//! (unknown fields, malformed JSON) answer with the same codes as before.

// The helpers are shared with other tests; not all of them are used here,
// and `support` panics with a message when the server cannot start.
// `serde_json::Value[key]` yields `Null` for a missing key (no panic).
#![allow(dead_code, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod ws_client;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
// `RawValue` needs serde_json's `raw_value` feature, which the signaling
// crate (a dependency of this package) enables in every build of it.
use serde_json::value::RawValue;
use support::Switchboard;
use tokio_tungstenite::tungstenite::Message;
use ws_client::{Error, TestResult, WAIT, Ws, expect_error, join, recv};

/// A server of its own, without metrics (tests run side by side).
fn start() -> Switchboard {
    Switchboard::start(&["--metrics-listen", "off"])
}

async fn connect(server: &Switchboard) -> Result<Ws, Error> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http)).await?;
    Ok(ws)
}

/// Sends `text` as it is (the helpers' `send` would re-encode a `Value`).
async fn send_text(ws: &mut Ws, text: &str) -> TestResult {
    ws.send(Message::text(text)).await?;
    Ok(())
}

/// The next text frame as received (skipping pings), within [`WAIT`].
async fn recv_text(ws: &mut Ws) -> Result<String, Error> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("closed")??;
        match msg {
            Message::Text(t) => return Ok(t.as_str().to_owned()),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("unexpected frame {other:?}").into()),
        }
    }
}

/// A relayed message as received, `data` untouched.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relayed<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    from: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Two peers joined to one room: (a, b, a's id, b's id).
async fn two_peers(server: &Switchboard, room: &str) -> Result<(Ws, Ws, String, String), Error> {
    let mut a = connect(server).await?;
    let mut b = connect(server).await?;
    let ja = join(&mut a, room, "Ann").await?;
    let jb = join(&mut b, room, "Bob").await?;
    assert_eq!(recv(&mut a).await?["type"], "peer-joined");
    let id = |j: &serde_json::Value| j["you"].as_str().map(str::to_owned).ok_or("no id");
    Ok((a, b, id(&ja)?, id(&jb)?))
}

/// `data` values whose bytes the old parse-and-re-encode changed or refused.
const DATA: &[&str] = &[
    "123456789012345678901234567890",
    "1.10",
    "1e400",
    "-0.0",
    r#"{"z":1,"b":2,"a":3}"#,
    r#""\u00e9\ud83d\ude00""#,
    "{ \"sdp\" :\t\"v=0\\r\\n\" ,\n  \"type\" : \"offer\" }",
    "[[1,[2,[3,[]]]],[],[[\"x\"]]]",
    // All of it at once, as an app might send it.
    r#"{"type":"offer","seq":123456789012345678901234567890,"gain":1.10,"max":1e400,"zero":-0.0,"name":"caf\u00e9 \ud83d\ude00","sdp":"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\n","matrix":[[1,0],[0,1]] , "a":null}"#,
];

#[tokio::test]
async fn relayed_data_arrives_byte_for_byte() -> TestResult {
    let server = start();
    let (mut a, mut b, pa, pb) = two_peers(&server, "raw-bytes").await?;
    for kind in ["offer", "answer", "candidate", "message"] {
        for data in DATA {
            // Members in any order; whitespace around `data` is not part of it.
            let sent = format!(r#"{{"to":"{pb}", "data": {data} ,"type":"{kind}"}}"#);
            send_text(&mut a, &sent).await?;
            let got = recv_text(&mut b).await?;
            let relayed: Relayed<'_> = serde_json::from_str(&got)?;
            assert_eq!(relayed.data.get(), *data, "{kind}: {got}");
            assert_eq!((relayed.kind, relayed.from), (kind, pa.as_str()));
            assert_eq!(
                got,
                format!(r#"{{"type":"{kind}","from":"{pa}","data":{data}}}"#)
            );
        }
    }
    // And back, from the other peer.
    let data = DATA.last().copied().unwrap_or("null");
    send_text(
        &mut b,
        &format!(r#"{{"type":"message","to":"{pa}","data":{data}}}"#),
    )
    .await?;
    let got = recv_text(&mut a).await?;
    let relayed: Relayed<'_> = serde_json::from_str(&got)?;
    assert_eq!((relayed.from, relayed.data.get()), (pb.as_str(), data));
    // `ping`'s `id` comes back the same way.
    send_text(&mut a, r#"{"type":"ping","id":[1.10, 1e400]}"#).await?;
    assert_eq!(
        recv_text(&mut a).await?,
        r#"{"type":"pong","id":[1.10, 1e400]}"#
    );
    Ok(())
}

#[tokio::test]
async fn unknown_fields_and_malformed_data_are_still_refused() -> TestResult {
    let server = start();
    let (mut a, mut b, pa, pb) = two_peers(&server, "raw-refused").await?;
    // An unknown top-level field: `bad-message`, as before.
    for kind in ["offer", "answer", "candidate", "message"] {
        send_text(
            &mut a,
            &format!(r#"{{"type":"{kind}","to":"{pb}","data":{{"sdp":"x"}},"extra":1}}"#),
        )
        .await?;
        expect_error(&mut a, "bad-message").await?;
    }
    // `data` that is not well-formed JSON: `bad-json`.
    for data in [
        "{\"a\":}",
        "[1,]",
        "01",
        "NaN",
        "'x'",
        "\"\\x\"",
        "1 2",
        "{\"a\" 1}",
    ] {
        send_text(
            &mut a,
            &format!(r#"{{"type":"offer","to":"{pb}","data":{data}}}"#),
        )
        .await?;
        expect_error(&mut a, "bad-json").await?;
    }
    // The rest of the frame is read as before: a missing `to`, a wrong type.
    send_text(&mut a, r#"{"type":"offer","data":1.10}"#).await?;
    expect_error(&mut a, "bad-message").await?;
    send_text(&mut a, r#"{"type":"offer","to":5,"data":1.10}"#).await?;
    expect_error(&mut a, "bad-message").await?;
    // None of those reached b; the next relay does, byte for byte.
    send_text(
        &mut a,
        &format!(r#"{{"type":"message","to":"{pb}","data":[1.10]}}"#),
    )
    .await?;
    assert_eq!(
        recv_text(&mut b).await?,
        format!(r#"{{"type":"message","from":"{pa}","data":[1.10]}}"#)
    );
    Ok(())
}
