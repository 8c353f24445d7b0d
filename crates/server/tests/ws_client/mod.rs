//! A signaling client for the WebSocket tests: send JSON, receive JSON
//! (skipping pings) within a bounded wait, expect errors and joins; and the
//! signaling server they talk to, in this process.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket, over TCP or TLS.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// Any test failure; `Send` so flood tasks can return it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A test's outcome.
pub type TestResult = Result<(), Error>;

/// The longest a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(5);

/// Sends one JSON message.
pub async fn send(ws: &mut Ws, v: Value) -> TestResult {
    ws.send(Message::text(v.to_string())).await?;
    Ok(())
}

/// The next JSON text message (skipping pings), within [`WAIT`].
pub async fn recv(ws: &mut Ws) -> Result<Value, Error> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("closed")??;
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("unexpected frame {other:?}").into()),
        }
    }
}

/// The next message is an `error` with `code` and a message.
pub async fn expect_error(ws: &mut Ws, code: &str) -> TestResult {
    let m = recv(ws).await?;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], code, "{m}");
    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()));
    Ok(())
}

/// Joins `room`; returns the `joined` message.
pub async fn join(ws: &mut Ws, room: &str, name: &str) -> Result<Value, Error> {
    send(ws, json!({"type":"join","v":1,"room":room,"name":name})).await?;
    let m = recv(ws).await?;
    assert_eq!(m["type"], "joined", "{m}");
    assert_eq!(m["room"], room, "{m}");
    Ok(m)
}

/// Starts the HTTP/signaling router in this process on a free loopback
/// port, configured by `extra` flags (TURN secret `test-secret`, no TLS);
/// returns the port.
pub async fn start_router(extra: &[&str]) -> Result<u16, Error> {
    let mut args = vec!["switchboard", "--turn-listen", "127.0.0.1:3478"];
    args.extend_from_slice(extra);
    let config = switchboard::config::Config::load_from(args)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let ctx = switchboard::http::HttpContext {
        config: std::sync::Arc::new(config),
        turn_secret: std::sync::Arc::from("test-secret"),
        tls: None,
        turn_handoff: None,
        turns_port: None,
        draining: tokio::sync::watch::channel(false).1,
        signaling_stats: Default::default(),
        sfu_socket: None,
    };
    tokio::spawn(switchboard::http::serve_listener(
        listener,
        ctx,
        std::future::pending(),
    ));
    Ok(port)
}
