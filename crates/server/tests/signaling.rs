//! Signaling over a real WebSocket against the real router: joins, relays,
//! limits, and every kind of bad input gets its `error` code while the
//! connection and the room survive.

// config.rs and http/ are compiled into this test for their entry points only,
// and `serde_json::Value[key]` yields `Null` for a missing key (no panic).
#![allow(dead_code, clippy::indexing_slicing)]

use switchboard::{config, http};
mod ws_client;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use ws_client::{Error, TestResult, Ws, expect_error, join, recv, send};

const SECRET: &str = "test-secret";

/// Starts the router on a free loopback port with extra flags; returns the port.
async fn start(extra: &[&str]) -> Result<u16, Error> {
    ws_client::start_router(extra).await
}

/// Like [`start`] with a heartbeat of 200 ms ping / 700 ms timeout.
async fn start_fast_heartbeat() -> Result<u16, Error> {
    let config = config::Config::load_from(["switchboard"])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let ctx = http::HttpContext {
        config: Arc::new(config),
        turn_secret: Arc::from(SECRET),
        tls: None,
        turn_handoff: None,
        turns_port: None,
        draining: tokio::sync::watch::channel(false).1,
        signaling_stats: Default::default(),
        sfu_socket: None,
    };
    let hub = signal::HubConfig {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(700),
        ..http::hub_config(&ctx)
    };
    tokio::spawn(http::serve_listener_with(
        listener,
        ctx,
        hub,
        std::future::pending(),
    ));
    Ok(port)
}

async fn connect(port: u16) -> Result<Ws, Error> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await?;
    Ok(ws)
}

/// `ping` still answers: the connection survived.
async fn still_alive(ws: &mut Ws) -> TestResult {
    send(ws, json!({"type":"ping","id":42})).await?;
    let m = recv(ws).await?;
    assert_eq!(m, json!({"type":"pong","id":42}));
    Ok(())
}

#[tokio::test]
async fn join_relay_and_ice_servers() -> TestResult {
    let port = start(&[]).await?;
    let mut a = connect(port).await?;
    let mut b = connect(port).await?;
    let ja = join(&mut a, "room-1", "Ann").await?;
    assert_eq!(ja["v"], 1);
    assert_eq!(ja["peers"], json!([]));
    let ice = ja["iceServers"].as_array().ok_or("iceServers")?;
    assert_eq!(ice[0]["urls"], json!(["stun:127.0.0.1:3478"]));
    assert_eq!(
        ice[1]["urls"],
        json!([
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp"
        ])
    );
    let user = ice[1]["username"].as_str().ok_or("username")?;
    assert_eq!(
        ice[1]["credential"].as_str(),
        Some(turn::credentials::password_for(SECRET.as_bytes(), user).as_str())
    );

    let jb = join(&mut b, "room-1", "Bob").await?;
    let (pa, pb) = (ja["you"].clone(), jb["you"].clone());
    assert_eq!(jb["peers"], json!([{"id": pa, "name": "Ann"}]));
    assert_eq!(
        recv(&mut a).await?,
        json!({"type":"peer-joined","peer":{"id": pb, "name":"Bob"}})
    );

    for kind in ["offer", "answer", "candidate", "message"] {
        send(&mut a, json!({"type":kind,"to":pb,"data":{"k":kind}})).await?;
        assert_eq!(
            recv(&mut b).await?,
            json!({"type":kind,"from":pa,"data":{"k":kind}})
        );
    }

    // A dropped peer is announced.
    drop(b);
    assert_eq!(
        recv(&mut a).await?,
        json!({"type":"peer-left","id":pb,"reason":"disconnected"})
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_error_codes_and_connection_survives() -> TestResult {
    let port = start(&[]).await?;
    let mut a = connect(port).await?;
    let mut b = connect(port).await?;

    // Before joining.
    send(&mut a, json!({"type":"offer","to":"p1","data":{}})).await?;
    expect_error(&mut a, "not-joined").await?;
    send(&mut a, json!({"type":"join","v":99,"room":"r","name":"x"})).await?;
    expect_error(&mut a, "unsupported-version").await?;
    send(
        &mut a,
        json!({"type":"join","v":1,"room":"no/slash","name":"x"}),
    )
    .await?;
    expect_error(&mut a, "bad-room").await?;
    send(&mut a, json!({"type":"join","v":1,"room":"r","name":""})).await?;
    expect_error(&mut a, "bad-name").await?;

    let ja = join(&mut a, "bad-input", "Ann").await?;
    let jb = join(&mut b, "bad-input", "Bob").await?;
    let _ = recv(&mut a).await?; // peer-joined
    let (pa, pb) = (ja["you"].clone(), jb["you"].clone());

    a.send(Message::text("{not json")).await?;
    expect_error(&mut a, "bad-json").await?;
    send(&mut a, json!({"type":"teleport"})).await?;
    expect_error(&mut a, "unknown-type").await?;
    send(&mut a, json!({"type":"offer","data":{}})).await?;
    expect_error(&mut a, "bad-message").await?;
    send(&mut a, json!(["type", "offer"])).await?;
    expect_error(&mut a, "bad-message").await?;
    let big = "x".repeat(100 * 1024);
    send(&mut a, json!({"type":"message","to":pb,"data":big})).await?;
    expect_error(&mut a, "too-large").await?;
    send(&mut a, json!({"type":"offer","to":"p999999","data":{}})).await?;
    expect_error(&mut a, "unknown-peer").await?;
    send(&mut a, json!({"type":"offer","to":pa,"data":{}})).await?;
    expect_error(&mut a, "unknown-peer").await?;
    a.send(Message::binary(vec![1u8, 2, 3])).await?;
    expect_error(&mut a, "binary-unsupported").await?;
    send(
        &mut a,
        json!({"type":"join","v":1,"room":"other","name":"Ann"}),
    )
    .await?;
    expect_error(&mut a, "already-joined").await?;
    still_alive(&mut a).await?;

    // The room survived: relaying still works both ways.
    send(&mut a, json!({"type":"message","to":pb,"data":"hi"})).await?;
    assert_eq!(
        recv(&mut b).await?,
        json!({"type":"message","from":pa,"data":"hi"})
    );
    send(&mut b, json!({"type":"message","to":pa,"data":"hello"})).await?;
    assert_eq!(
        recv(&mut a).await?,
        json!({"type":"message","from":pb,"data":"hello"})
    );
    Ok(())
}

#[tokio::test]
async fn flooding_is_rate_limited_and_connection_survives() -> TestResult {
    let port = start(&[]).await?;
    let mut a = connect(port).await?;
    // Far past the burst of 200; bounded.
    for i in 0..400 {
        a.feed(Message::text(json!({"type":"ping","id":i}).to_string()))
            .await?;
    }
    a.flush().await?;
    let (mut pongs, mut limited) = (0, 0);
    loop {
        let m = recv(&mut a).await?;
        match m["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(m["code"], "rate-limited");
                limited += 1;
                break;
            }
            _ => return Err(format!("unexpected {m}").into()),
        }
    }
    assert!((200..400).contains(&pongs), "pongs {pongs}");
    assert_eq!(limited, 1);
    // Drain whatever pongs were still queued, then wait for a refill.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(100), a.next()).await {}
    still_alive(&mut a).await?;
    Ok(())
}

#[tokio::test]
async fn room_size_and_password_are_enforced() -> TestResult {
    let port = start(&["--room-size", "2"]).await?;
    let mut a = connect(port).await?;
    send(
        &mut a,
        json!({"type":"join","v":1,"room":"locked","name":"A","password":"pw-123"}),
    )
    .await?;
    assert_eq!(recv(&mut a).await?["type"], "joined");

    let mut b = connect(port).await?;
    send(
        &mut b,
        json!({"type":"join","v":1,"room":"locked","name":"B"}),
    )
    .await?;
    expect_error(&mut b, "bad-password").await?;
    send(
        &mut b,
        json!({"type":"join","v":1,"room":"locked","name":"B","password":"nope"}),
    )
    .await?;
    expect_error(&mut b, "bad-password").await?;
    send(
        &mut b,
        json!({"type":"join","v":1,"room":"locked","name":"B","password":"pw-123"}),
    )
    .await?;
    assert_eq!(recv(&mut b).await?["type"], "joined");

    let mut c = connect(port).await?;
    send(
        &mut c,
        json!({"type":"join","v":1,"room":"locked","name":"C","password":"pw-123"}),
    )
    .await?;
    expect_error(&mut c, "room-full").await?;
    still_alive(&mut c).await?;
    // Another room is fine.
    join(&mut c, "open", "C").await?;
    Ok(())
}

/// One HTTP/1.1 GET; returns (status, content-type, body).
async fn get(port: u16, path: &str) -> Result<(u16, String, String), Error> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.get(9..12).ok_or("short")?.parse()?;
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Ok((status, ctype, body.to_owned()))
}

#[tokio::test]
async fn serves_the_embedded_app() -> TestResult {
    let port = start(&[]).await?;
    let (s, t, body) = get(port, "/").await?;
    assert_eq!((s, t.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("Switchboard"));
    assert_eq!(get(port, "/r/abc_DEF-123").await?.0, 200);
    assert_eq!(get(port, "/r/bad.id").await?.0, 404);
    assert_eq!(get(port, "/diag").await?.0, 200);
    let (s, t, _) = get(port, "/assets/js/room.js").await?;
    assert_eq!((s, t.as_str()), (200, "text/javascript; charset=utf-8"));
    assert_eq!(get(port, "/assets/../Cargo.toml").await?.0, 404);
    let (s, _, body) = get(port, "/api/ice").await?;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["iceServers"][0]["urls"][0], "stun:127.0.0.1:3478");
    Ok(())
}

#[tokio::test]
async fn heartbeat_closes_a_dead_connection_and_announces_it() -> TestResult {
    let port = start_fast_heartbeat().await?;
    let mut alive = connect(port).await?;
    let mut dead = connect(port).await?;
    let ja = join(&mut alive, "hb", "Alive").await?;
    let jd = join(&mut dead, "hb", "Dead").await?;
    assert_eq!(recv(&mut alive).await?["type"], "peer-joined");
    assert_eq!(jd["peers"][0]["id"], ja["you"]);
    // `dead` goes silent: it neither sends nor answers the server's pings.
    // `alive` keeps talking (app-level pings every 100 ms), as the web app does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let left = loop {
        send(&mut alive, json!({"type":"ping"})).await?;
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(100), alive.next()).await
        {
            let m: Value = serde_json::from_str(t.as_str())?;
            if m["type"] == "peer-left" {
                break m;
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no peer-left within 5 s".into());
        }
    };
    assert_eq!(
        left,
        json!({"type":"peer-left","id": jd["you"],"reason":"disconnected"})
    );
    // The dead socket was closed by the server (code 4000).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = dead.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await?;
    assert_eq!(closed, Some(4000));
    Ok(())
}
