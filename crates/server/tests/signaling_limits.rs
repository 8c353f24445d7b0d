//! The signaling limits under a flood, over real WebSockets against the real
//! router: WebSockets per client address (`--max-ws-per-ip`, 429 before the
//! upgrade), rooms open at once (`--max-rooms`, `too-many-rooms`) and the
//! per-connection message rate (`rate-limited`). Each test floods one limit
//! and checks that other users are still served meanwhile. The last test
//! checks that HTTPS serving knows the client's address too (WSS).
//!
//! Loopback only; every wait is bounded.

// config.rs and http/ are compiled into this test for their entry points only,
// and `serde_json::Value[key]` yields `Null` for a missing key (no panic).
#![allow(dead_code, clippy::indexing_slicing)]

use switchboard::{config, http};
mod ws_client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::{self, Message};
use ws_client::{Error, TestResult, WAIT, Ws, expect_error, join, recv, send};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address (Linux routes all of 127/8 to `lo`): another client.
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Starts the router on a free loopback port with extra flags; returns the port.
async fn start(extra: &[&str]) -> Result<u16, Error> {
    ws_client::start_router(extra).await
}

/// A WebSocket to `/ws` from source address `from`, or the HTTP status and
/// body the server refused the upgrade with.
async fn connect_from(port: u16, from: IpAddr) -> Result<Result<Ws, (u16, String)>, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream =
        tokio::time::timeout(WAIT, socket.connect(([127, 0, 0, 1], port).into())).await??;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let handshake = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream));
    match tokio::time::timeout(WAIT, handshake).await? {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tungstenite::Error::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            Ok(Err((resp.status().as_u16(), body.into_owned())))
        }
        Err(e) => Err(e.into()),
    }
}

/// A WebSocket from 127.0.0.1 that must be accepted.
async fn connect(port: u16) -> Result<Ws, Error> {
    connect_from(port, LOCALHOST)
        .await?
        .map_err(|(status, body)| format!("refused: {status} {body}").into())
}

/// Asserts that an upgrade from 127.0.0.1 is refused with 429 and the JSON body.
async fn expect_refused(port: u16) -> TestResult {
    match connect_from(port, LOCALHOST).await? {
        Ok(_) => Err("upgrade accepted beyond --max-ws-per-ip".into()),
        Err((status, body)) => {
            assert_eq!(status, 429, "{body}");
            let v: Value = serde_json::from_str(&body)?;
            assert_eq!(v["error"], "too-many-connections", "{body}");
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("at most 4"))
            );
            Ok(())
        }
    }
}

/// Retries an upgrade from 127.0.0.1 (a freed slot is given back when the
/// server notices the close) for at most 5 s.
async fn connect_once_freed(port: u16) -> Result<Ws, Error> {
    for _ in 0..100 {
        match connect_from(port, LOCALHOST).await? {
            Ok(ws) => return Ok(ws),
            Err((429, _)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err((status, body)) => return Err(format!("refused: {status} {body}").into()),
        }
    }
    Err("the slot was not given back within 5 s".into())
}

/// Two connections joined to `room`, `a` having seen `b` arrive; returns
/// both peer ids.
async fn pair(a: &mut Ws, b: &mut Ws, room: &str) -> Result<(Value, Value), Error> {
    let ja = join(a, room, "Ann").await?;
    let jb = join(b, room, "Bob").await?;
    assert_eq!(jb["peers"], json!([{"id": ja["you"], "name": "Ann"}]));
    assert_eq!(
        recv(a).await?,
        json!({"type":"peer-joined","peer":{"id": jb["you"], "name":"Bob"}})
    );
    Ok((ja["you"].clone(), jb["you"].clone()))
}

/// `kind` with `data` from `a` (peer `pa`) reaches `b` (peer `pb`), as is.
async fn relay(
    a: &mut Ws,
    pa: &Value,
    b: &mut Ws,
    pb: &Value,
    kind: &str,
    data: Value,
) -> TestResult {
    send(a, json!({"type":kind,"to":pb,"data":data})).await?;
    assert_eq!(recv(b).await?, json!({"type":kind,"from":pa,"data":data}));
    Ok(())
}

/// An offer/answer exchange with a few candidates each way.
async fn negotiate(a: &mut Ws, pa: &Value, b: &mut Ws, pb: &Value) -> TestResult {
    relay(a, pa, b, pb, "offer", json!({"type":"offer","sdp":"v=0 a"})).await?;
    relay(
        b,
        pb,
        a,
        pa,
        "answer",
        json!({"type":"answer","sdp":"v=0 b"}),
    )
    .await?;
    for i in 0..5 {
        let cand = json!({"candidate":format!("candidate:{i} 1 udp 1 127.0.0.1 {i} typ host"),"sdpMid":"0"});
        relay(a, pa, b, pb, "candidate", cand.clone()).await?;
        relay(b, pb, a, pa, "candidate", cand).await?;
    }
    Ok(())
}

#[tokio::test]
async fn ws_per_ip_limit_refuses_with_429_and_others_are_still_served() -> TestResult {
    let port = start(&["--max-ws-per-ip", "4"]).await?;
    let (mut a, mut b) = (connect(port).await?, connect(port).await?);
    let (pa, pb) = pair(&mut a, &mut b, "calm").await?;
    let mut c = connect(port).await?;
    let d = connect(port).await?;

    // Four open from 127.0.0.1: a flood of further upgrades is refused, while
    // the two peers already connected keep negotiating.
    for round in 0..5 {
        for _ in 0..4 {
            expect_refused(port).await?;
        }
        relay(&mut a, &pa, &mut b, &pb, "message", json!({"round": round})).await?;
    }
    negotiate(&mut a, &pa, &mut b, &pb).await?;

    // Another address is not affected: it connects and joins the same room.
    let mut other = connect_from(port, OTHER_CLIENT)
        .await?
        .map_err(|(s, body)| format!("other client refused: {s} {body}"))?;
    let jo = join(&mut other, "calm", "Olga").await?;
    assert_eq!(jo["peers"].as_array().map(Vec::len), Some(2));
    assert_eq!(recv(&mut a).await?["type"], "peer-joined");
    assert_eq!(recv(&mut b).await?["type"], "peer-joined");
    relay(
        &mut other,
        &jo["you"],
        &mut a,
        &pa,
        "offer",
        json!({"sdp":"o"}),
    )
    .await?;

    // A closed connection gives its slot back, and only one.
    c.close(None).await?;
    let _ = tokio::time::timeout(WAIT, async { while c.next().await.is_some() {} }).await;
    let mut e = connect_once_freed(port).await?;
    expect_refused(port).await?;
    // So does one dropped without a close handshake.
    drop(d);
    let _f = connect_once_freed(port).await?;
    expect_refused(port).await?;
    // The newcomers are served like anyone else.
    join(&mut e, "later", "Eve").await?;
    relay(&mut a, &pa, &mut b, &pb, "message", json!("still here")).await?;
    Ok(())
}

#[tokio::test]
async fn max_rooms_refuses_new_rooms_while_existing_rooms_keep_working() -> TestResult {
    let port = start(&["--max-rooms", "3"]).await?;
    let (mut a, mut e) = (connect(port).await?, connect(port).await?);
    let (mut b, mut c) = (connect(port).await?, connect(port).await?);
    let pa = join(&mut a, "r1", "Ann").await?["you"].clone();
    join(&mut b, "r2", "Bob").await?;
    join(&mut c, "r3", "Cat").await?;

    // A flood of joins to new rooms: each refused with its code.
    let mut d = connect(port).await?;
    for i in 0..30 {
        send(
            &mut d,
            json!({"type":"join","v":1,"room":format!("new-{i}"),"name":"Dan"}),
        )
        .await?;
        expect_error(&mut d, "too-many-rooms").await?;
    }

    // Joining an existing room still works, and its peers still negotiate.
    let je = join(&mut e, "r1", "Eve").await?;
    let pe = je["you"].clone();
    assert_eq!(je["peers"], json!([{"id": pa, "name": "Ann"}]));
    assert_eq!(
        recv(&mut a).await?,
        json!({"type":"peer-joined","peer":{"id": pe, "name":"Eve"}})
    );
    negotiate(&mut a, &pa, &mut e, &pe).await?;

    // The refused connection stays usable: once a room closes (its last peer
    // leaves) it may open one; then the limit holds again.
    send(&mut c, json!({"type":"leave"})).await?;
    assert_eq!(recv(&mut c).await?, json!({"type":"left"}));
    join(&mut d, "new-0", "Dan").await?;
    send(
        &mut c,
        json!({"type":"join","v":1,"room":"r3","name":"Cat"}),
    )
    .await?;
    expect_error(&mut c, "too-many-rooms").await?;
    // A room whose last peer disconnects closes too.
    drop(b);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        send(
            &mut c,
            json!({"type":"join","v":1,"room":"r3","name":"Cat"}),
        )
        .await?;
        let m = recv(&mut c).await?;
        if m["type"] == "joined" {
            break;
        }
        assert_eq!(m["code"], "too-many-rooms", "{m}");
        if tokio::time::Instant::now() > deadline {
            return Err("room r2 did not close within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay(&mut e, &pe, &mut a, &pa, "message", json!("bye")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_from_one_connection_does_not_hold_up_others() -> TestResult {
    let port = start(&[]).await?;
    let (mut a, mut b) = (connect(port).await?, connect(port).await?);
    let (pa, pb) = pair(&mut a, &mut b, "quiet").await?;
    let mut flooder = connect(port).await?;
    join(&mut flooder, "noisy", "Flo").await?;

    // The flooder sends pings as fast as it can — at least 1 000, and until
    // told to stop (at most 20 000) — then reads what came back up to the
    // first `rate-limited`.
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let flood = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut started = Some(started_tx);
            let mut sent = 0u32;
            // Well past the 200-message burst, and on until the others are done.
            while sent < 20_000 && !(sent >= 1_000 && stop.load(Ordering::Relaxed)) {
                for _ in 0..50 {
                    flooder
                        .feed(Message::text(json!({"type":"ping","id":sent}).to_string()))
                        .await?;
                    sent += 1;
                }
                flooder.flush().await?;
                if let Some(tx) = started.take() {
                    let _ = tx.send(());
                }
                tokio::task::yield_now().await;
            }
            let mut pongs = 0u32;
            loop {
                let m = recv(&mut flooder).await?;
                match m["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") if m["code"] == "rate-limited" => break,
                    _ => return Err::<_, Error>(format!("flooder got {m}").into()),
                }
            }
            Ok((sent, pongs))
        }
    });
    tokio::time::timeout(WAIT, started_rx).await??;

    // Meanwhile, two peers of another room negotiate normally.
    negotiate(&mut a, &pa, &mut b, &pb).await?;
    stop.store(true, Ordering::Relaxed);
    let (sent, pongs) = tokio::time::timeout(Duration::from_secs(30), flood).await???;
    // The burst is 200 messages, one of them spent on `join`.
    assert!((199..sent).contains(&pongs), "pongs {pongs} of {sent}");
    // Nothing from the flood leaked to the quiet room.
    relay(&mut a, &pa, &mut b, &pb, "message", json!("done")).await?;
    Ok(())
}

/// Blocking WSS upgrade to `127.0.0.1:port` trusting only `cert`: the
/// WebSocket, or the HTTP status it was refused with.
fn wss_upgrade(
    port: u16,
    cert: &rustls::pki_types::CertificateDer<'static>,
) -> Result<Result<WssSocket, u16>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), WAIT)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let tls = rustls::StreamOwned::new(conn, tcp);
    match tungstenite::client(format!("wss://localhost:{port}/ws"), tls) {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Ok(Err(resp.status().as_u16()))
        }
        Err(e) => Err(e.to_string().into()),
    }
}

type WssSocket =
    tungstenite::WebSocket<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>;

#[tokio::test]
async fn wss_knows_the_client_address_and_applies_the_limit() -> TestResult {
    let dir = std::env::temp_dir().join(format!("switchboard-wss-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem())?;
    std::fs::write(&key_path, certified.signing_key.serialize_pem())?;
    let cert = certified.cert.der().clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = config::Config::load_from([
        "switchboard",
        "--turn-listen",
        "127.0.0.1:3478",
        "--http-listen",
        &listen,
        "--tls-cert",
        &cert_path.display().to_string(),
        "--tls-key",
        &key_path.display().to_string(),
        "--max-ws-per-ip",
        "1",
    ])?;
    let tls = switchboard::tls::load(&config)?.map(Arc::new);
    let ctx = http::HttpContext {
        config: Arc::new(config),
        turn_secret: Arc::from("test-secret"),
        tls,
        turn_handoff: None,
        turns_port: None,
        draining: tokio::sync::watch::channel(false).1,
        signaling_stats: Default::default(),
        sfu_socket: None,
    };
    tokio::spawn(http::serve(ctx, std::future::pending()));

    let outcome = tokio::task::spawn_blocking(move || -> TestResult {
        // The listener comes up asynchronously: retry the first upgrade for 5 s.
        let mut first = None;
        for _ in 0..100 {
            match wss_upgrade(port, &cert) {
                Ok(Ok(ws)) => {
                    first = Some(ws);
                    break;
                }
                Ok(Err(status)) => return Err(format!("first WSS refused: {status}").into()),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let mut first = first.ok_or("no WSS listener within 5 s")?;
        first.send(Message::text(
            json!({"type":"join","v":1,"room":"tls","name":"Tia"}).to_string(),
        ))?;
        let joined: Value = serde_json::from_str(first.read()?.to_text()?)?;
        assert_eq!(joined["type"], "joined", "{joined}");
        // The limit of 1 holds over TLS too, and closing gives the slot back.
        assert_eq!(wss_upgrade(port, &cert)?.err(), Some(429));
        first.close(None)?;
        let _ = first.read();
        drop(first);
        for _ in 0..100 {
            match wss_upgrade(port, &cert)? {
                Ok(_) => return Ok(()),
                Err(429) => std::thread::sleep(Duration::from_millis(50)),
                Err(status) => return Err(format!("refused: {status}").into()),
            }
        }
        Err("the slot was not given back within 5 s".into())
    });
    let result = tokio::time::timeout(Duration::from_secs(30), outcome).await?;
    let _ = std::fs::remove_dir_all(&dir);
    result?
}

/// A client that stops reading while messages keep coming is dropped once
/// its outbox is full: the others see it leave, and its connection really
/// ends (its --max-ws-per-ip slot comes back), although its socket never
/// took the data waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_its_slot_given_back() -> TestResult {
    let port = start(&["--max-ws-per-ip", "1"]).await?;
    let mut stuck = connect(port).await?;
    let joined = join(&mut stuck, "stuck-reader", "Stuck").await?;
    let to = joined["you"].clone();
    // Five senders from other addresses, each within its message rate
    // burst (200): 950 messages of 60 KiB, more than the socket buffers
    // (a few MiB on loopback) and the 512-message outbox hold.
    let mut senders = Vec::new();
    for i in 0..5u8 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));
        let mut ws = connect_from(port, from)
            .await?
            .map_err(|(s, b)| format!("refused: {s} {b}"))?;
        join(&mut ws, "stuck-reader", &format!("Sender{i}")).await?;
        senders.push(ws);
    }
    let big = "x".repeat(60 * 1024);
    for ws in &mut senders {
        for _ in 0..190 {
            ws.feed(Message::text(
                json!({"type":"message","to":to,"data":big}).to_string(),
            ))
            .await?;
        }
        ws.flush().await?;
    }
    // The first sender sees the stuck one leave.
    let left = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let m = recv(&mut senders[0]).await?;
            if m["type"] == "peer-left" && m["id"] == to {
                return Ok::<_, Error>(());
            }
        }
    })
    .await;
    assert!(
        matches!(left, Ok(Ok(()))),
        "the stuck reader was not dropped: {left:?}"
    );
    // And its connection is gone from the server: the one slot of its
    // address is free again.
    let _again = connect_once_freed(port).await?;
    drop(stuck);
    Ok(())
}
