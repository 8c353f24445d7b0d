//! Access control, web origins, drain and counters of the signaling side,
//! over real sockets against the real router: invite tokens on `join` and
//! `/api/ice`, per-browser TURN usernames, `Origin` checks on `/ws` and
//! `/api/ice`, `/readyz` and `reconnect` while draining.

// `serde_json::Value[key]` yields `Null` for a missing key (no panic).
#![allow(dead_code, clippy::indexing_slicing)]

use switchboard::{config, http};
mod ws_client;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use ws_client::{Error, TestResult, Ws, expect_error, join, recv, send};

const TURN_SECRET: &str = "turn-secret";
const JOIN_SECRET: &str = "join-secret-for-tests";

struct Server {
    port: u16,
    drain: watch::Sender<bool>,
    stats: Arc<http::SignalingStats>,
}

async fn start(extra: &[&str]) -> Result<Server, Error> {
    let mut args = vec!["switchboard", "--turn-listen", "127.0.0.1:3478"];
    args.extend_from_slice(extra);
    let config = config::Config::load_from(args)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (drain, draining) = watch::channel(false);
    let stats = Arc::new(http::SignalingStats::default());
    let ctx = http::HttpContext {
        config: Arc::new(config),
        turn_secret: Arc::from(TURN_SECRET),
        tls: None,
        turn_handoff: None,
        turns_port: None,
        draining,
        signaling_stats: stats.clone(),
        sfu_socket: None,
    };
    tokio::spawn(http::serve_listener(listener, ctx, std::future::pending()));
    Ok(Server { port, drain, stats })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn token(room: &str, ttl: i64, name: Option<&str>, admin: bool) -> String {
    signal::token::mint(
        JOIN_SECRET.as_bytes(),
        &signal::token::Claims {
            room: room.into(),
            exp: unix_now().saturating_add_signed(ttl),
            name: name.map(str::to_owned),
            admin,
        },
    )
}

/// A WebSocket to `/ws` with an optional `Origin` header (and `Host` as
/// tungstenite sets it: `127.0.0.1:PORT`).
async fn upgrade(port: u16, origin: Option<&str>) -> Result<Result<Ws, u16>, Error> {
    let mut req = format!("ws://127.0.0.1:{port}/ws").into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o)?);
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if status == 403 {
                let v: Value = serde_json::from_str(&body)?;
                assert_eq!(v["error"], "forbidden-origin", "{body}");
            }
            Ok(Err(status))
        }
        Err(e) => Err(e.into()),
    }
}

async fn connect(port: u16) -> Result<Ws, Error> {
    upgrade(port, None)
        .await?
        .map_err(|s| format!("upgrade refused: {s}").into())
}

/// One HTTP/1.1 request; returns (status, lowercased head, body).
async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String), Error> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.get(9..12).ok_or("short")?.parse()?;
    Ok((status, head.to_ascii_lowercase(), body.to_owned()))
}

fn turn_username(joined: &Value) -> String {
    joined["iceServers"][1]["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn token_mode_gates_joins_and_api_ice() -> TestResult {
    let srv = start(&["--join-secret", JOIN_SECRET]).await?;
    let mut ws = connect(srv.port).await?;
    let cases = [
        (None, "missing"),
        (Some("not-a-token".to_owned()), "invalid"),
        (Some(token("room-a", -1, None, false)), "expired"),
        (Some(token("room-b", 600, None, false)), "wrong-room"),
    ];
    for (t, reason) in cases {
        let mut m = json!({"type":"join","v":1,"room":"room-a","name":"Eve"});
        if let (Some(t), Some(o)) = (t, m.as_object_mut()) {
            o.insert("token".into(), t.into());
        }
        send(&mut ws, m).await?;
        let e = recv(&mut ws).await?;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], "unauthorized", "{e}");
        assert_eq!(e["reason"], reason, "{e}");
        assert!(e.get("iceServers").is_none());
    }
    // A valid token joins; its name claim wins; each browser has its own
    // TURN username EXPIRY:ID.
    let t = token("room-a", 600, Some("Ann"), false);
    send(
        &mut ws,
        json!({"type":"join","v":1,"room":"room-a","name":"x","token":t}),
    )
    .await?;
    let ja = recv(&mut ws).await?;
    assert_eq!(ja["type"], "joined", "{ja}");
    let mut b = connect(srv.port).await?;
    let tb = token("room-a", 600, None, true);
    send(
        &mut b,
        json!({"type":"join","v":1,"room":"room-a","name":"Bob","token":tb}),
    )
    .await?;
    let jb = recv(&mut b).await?;
    assert_eq!(jb["peers"], json!([{"id": ja["you"], "name": "Ann"}]));
    let pj = recv(&mut ws).await?;
    assert_eq!(pj["peer"]["admin"], true, "{pj}");
    let (ua, ub) = (turn_username(&ja), turn_username(&jb));
    assert_ne!(ua, ub);
    for u in [&ua, &ub] {
        let (expiry, id) = u.split_once(':').ok_or("EXPIRY:ID")?;
        assert!(expiry.parse::<u64>()? > unix_now());
        assert_eq!(id.len(), 16, "{u}");
    }
    assert_eq!(
        ja["iceServers"][1]["credential"].as_str(),
        Some(turn::credentials::password_for(TURN_SECRET.as_bytes(), &ua).as_str())
    );

    // /api/ice wants a bearer token, for any room.
    let (status, _, body) = request(srv.port, "GET", "/api/ice", &[]).await?;
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        (v["error"].as_str(), v["reason"].as_str()),
        (Some("unauthorized"), Some("missing"))
    );
    let expired = format!("Bearer {}", token("other", -5, None, false));
    let (status, _, body) =
        request(srv.port, "GET", "/api/ice", &[("Authorization", &expired)]).await?;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    let good = format!("Bearer {}", token("other", 60, None, false));
    let (status, _, body) =
        request(srv.port, "GET", "/api/ice", &[("Authorization", &good)]).await?;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert!(
        v["iceServers"][1]["username"]
            .as_str()
            .is_some_and(|u| u.contains(':'))
    );

    let s = srv.stats.snapshot();
    assert_eq!(s.unauthorized_api, 2);
    assert_eq!(s.ws_accepted, 2);
    assert_eq!((s.hub.connections, s.hub.peers, s.hub.joins), (2, 2, 2));
    assert!(s.hub.errors().any(|(c, n)| c == "unauthorized" && n == 4));
    Ok(())
}

#[tokio::test]
async fn without_a_join_secret_tokens_are_not_needed() -> TestResult {
    let srv = start(&[]).await?;
    let mut ws = connect(srv.port).await?;
    send(
        &mut ws,
        json!({"type":"join","v":1,"room":"r","name":"Ann","token":"ignored"}),
    )
    .await?;
    assert_eq!(recv(&mut ws).await?["type"], "joined");
    let (status, _, _) = request(srv.port, "GET", "/api/ice", &[]).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn foreign_origins_are_refused_before_the_upgrade() -> TestResult {
    let srv = start(&[
        "--allowed-origin",
        "https://embed.example.org",
        "--public-host",
        "call.example.com",
    ])
    .await?;
    let port = srv.port;
    let served = format!("http://127.0.0.1:{port}");
    assert!(matches!(
        upgrade(port, Some("http://evil.example")).await?,
        Err(403)
    ));
    assert!(matches!(upgrade(port, Some("null")).await?, Err(403)));
    assert!(matches!(
        upgrade(port, Some(&format!("http://127.0.0.1:{}", port ^ 1))).await?,
        Err(403)
    ));
    for ok in [
        None,
        Some(served.as_str()),
        Some("https://embed.example.org"),
        Some("https://call.example.com"),
    ] {
        let mut ws = upgrade(port, ok)
            .await?
            .map_err(|s| format!("{ok:?}: {s}"))?;
        join(&mut ws, "r", "Ann").await?;
    }
    let s = srv.stats.snapshot();
    assert_eq!((s.ws_refused_origin, s.ws_accepted), (3, 4));

    // /api/ice: same rule; allowed cross-origin readers get CORS headers.
    let (status, head, body) = request(
        port,
        "GET",
        "/api/ice",
        &[("Origin", "http://evil.example")],
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert!(body.contains("forbidden-origin"));
    let (status, head, _) = request(
        port,
        "GET",
        "/api/ice",
        &[("Origin", "https://embed.example.org")],
    )
    .await?;
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: https://embed.example.org"),
        "{head}"
    );
    assert!(head.contains("vary: origin"), "{head}");
    let (status, head, _) = request(port, "GET", "/api/ice", &[]).await?;
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (status, head, _) = request(
        port,
        "OPTIONS",
        "/api/ice",
        &[
            ("Origin", "https://embed.example.org"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await?;
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let (status, _, _) = request(
        port,
        "OPTIONS",
        "/api/ice",
        &[("Origin", "http://evil.example")],
    )
    .await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn drain_answers_readyz_503_tells_peers_and_keeps_relaying() -> TestResult {
    let srv = start(&[]).await?;
    let (status, _, body) = request(srv.port, "GET", "/readyz", &[]).await?;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let mut a = connect(srv.port).await?;
    let mut b = connect(srv.port).await?;
    let mut idle = connect(srv.port).await?;
    let ja = join(&mut a, "r", "Ann").await?;
    let jb = join(&mut b, "r", "Bob").await?;
    assert_eq!(recv(&mut a).await?["type"], "peer-joined");

    srv.drain.send(true)?;
    for ws in [&mut a, &mut b, &mut idle] {
        assert_eq!(
            recv(ws).await?,
            json!({"type":"reconnect","reason":"draining"})
        );
    }
    let (status, _, body) = request(srv.port, "GET", "/readyz", &[]).await?;
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    send(
        &mut idle,
        json!({"type":"join","v":1,"room":"r","name":"Late"}),
    )
    .await?;
    expect_error(&mut idle, "draining").await?;
    let mut late = connect(srv.port).await?;
    send(
        &mut late,
        json!({"type":"join","v":1,"room":"new","name":"Late"}),
    )
    .await?;
    expect_error(&mut late, "draining").await?;

    // The joined peers still relay both ways.
    send(
        &mut a,
        json!({"type":"offer","to":jb["you"],"data":{"sdp":"x"}}),
    )
    .await?;
    assert_eq!(
        recv(&mut b).await?,
        json!({"type":"offer","from":ja["you"],"data":{"sdp":"x"}})
    );
    send(
        &mut b,
        json!({"type":"answer","to":ja["you"],"data":{"sdp":"y"}}),
    )
    .await?;
    assert_eq!(
        recv(&mut a).await?,
        json!({"type":"answer","from":jb["you"],"data":{"sdp":"y"}})
    );
    let s = srv.stats.snapshot();
    assert_eq!(s.hub.relayed, 2);
    assert!(s.hub.errors().any(|(c, n)| c == "draining" && n == 2));
    Ok(())
}
