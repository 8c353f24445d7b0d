//! The signaling WebSocket's memory (issue 16), over real WebSockets:
//! large frames still work with the small per-connection buffers (a 60 KiB
//! `message` is relayed, a 256 KiB one is answered `too-large` and the
//! connection kept, one over 1 MiB closes it), and 1 000 idle connections
//! hold no large buffers (the server runs in a child process, this test
//! binary run again, so that only its memory is read).
//!
//! Loopback only; every wait is bounded.

// config.rs and http/ are compiled into this test for their entry points only,
// and `serde_json::Value[key]` yields `Null` for a missing key (no panic).
#![allow(dead_code, clippy::indexing_slicing)]

mod ws_client;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_client::{Error, TestResult, WAIT, Ws, expect_error, join, recv, send};

/// Set in the child process: serve, print the port, wait for stdin to close.
const CHILD_ENV: &str = "SWITCHBOARD_TEST_MEMORY_CHILD";

/// Idle connections opened by the memory check.
const IDLE_CONNECTIONS: usize = 1000;

/// What one idle connection may add to the server's RSS. Before issue 16 it
/// was ~136 KiB (two 128 KiB buffers sized for the 1 MiB frame limit); now
/// about 4 KiB. The bound leaves room for allocator noise on a loaded machine.
const MAX_BYTES_PER_IDLE_CONNECTION: u64 = 24 * 1024;

/// Starts the router on a free loopback port; returns the port.
async fn start() -> Result<u16, Error> {
    ws_client::start_router(&[]).await
}

/// A client with small buffers (the default 128 KiB ones would make 1 000
/// clients weigh 256 MiB), from source address `from`.
async fn connect_from(port: u16, from: IpAddr) -> Result<Ws, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream =
        tokio::time::timeout(WAIT, socket.connect(([127, 0, 0, 1], port).into())).await??;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20));
    let handshake = tokio_tungstenite::client_async_with_config(
        format!("ws://127.0.0.1:{port}/ws"),
        MaybeTlsStream::Plain(stream),
        Some(config),
    );
    let (ws, _) = tokio::time::timeout(WAIT, handshake).await??;
    Ok(ws)
}

async fn connect(port: u16) -> Result<Ws, Error> {
    connect_from(port, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
}

#[tokio::test]
async fn large_frames_still_work_with_small_buffers() -> TestResult {
    let port = start().await?;
    let (mut a, mut b) = (connect(port).await?, connect(port).await?);
    let ja = join(&mut a, "big-frames", "Ann").await?;
    let jb = join(&mut b, "big-frames", "Bob").await?;
    assert_eq!(recv(&mut a).await?["type"], "peer-joined");

    // 60 KiB relayed whole (under the 64 KiB parse limit with its envelope).
    let big = "x".repeat(60 * 1024);
    send(
        &mut a,
        json!({"type":"message","to":jb["you"],"data":{"kind":"blob","text":big}}),
    )
    .await?;
    let m = recv(&mut b).await?;
    assert_eq!(m["type"], "message");
    assert_eq!(m["from"], ja["you"]);
    assert_eq!(m["data"]["text"].as_str().map(str::len), Some(60 * 1024));
    assert!(m["data"]["text"] == big.as_str());

    // 256 KiB: refused by the hub, the connection stays.
    let huge = "y".repeat(256 * 1024);
    send(
        &mut a,
        json!({"type":"message","to":jb["you"],"data":{"text":huge}}),
    )
    .await?;
    expect_error(&mut a, "too-large").await?;
    // Both directions still work, small and large, after the large frames.
    send(&mut a, json!({"type":"ping","id":1})).await?;
    assert_eq!(recv(&mut a).await?, json!({"type":"pong","id":1}));
    send(
        &mut b,
        json!({"type":"message","to":ja["you"],"data":{"text":big}}),
    )
    .await?;
    let m = recv(&mut a).await?;
    assert_eq!(m["data"]["text"].as_str().map(str::len), Some(60 * 1024));
    send(
        &mut a,
        json!({"type":"message","to":jb["you"],"data":"small"}),
    )
    .await?;
    assert_eq!(recv(&mut b).await?["data"], "small");

    // Over 1 MiB: the WebSocket layer closes the connection; the peer is told.
    a.send(Message::text("z".repeat(1024 * 1024 + 1))).await?;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match a.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a frame over 1 MiB did not close the connection"
    );
    let m = recv(&mut b).await?;
    assert_eq!(m["type"], "peer-left", "{m}");
    Ok(())
}

/// The server of the memory check, in a child process: this test binary run
/// with [`CHILD_ENV`] set. Does nothing in a normal run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the memory check's child process; runs only when it spawns it"]
async fn memory_child_server() -> TestResult {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let port = start().await?;
    println!("PORT {port}");
    // Serve until the parent closes our stdin (or at most 5 minutes).
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = done_tx.send(());
    });
    let _ = tokio::time::timeout(Duration::from_secs(300), done_rx).await;
    Ok(())
}

/// The next message that is not a `peer-joined` (the rooms filled after
/// their first members joined).
async fn recv_skipping_joins(ws: &mut Ws) -> Result<serde_json::Value, Error> {
    loop {
        let m = recv(ws).await?;
        if m["type"] != "peer-joined" {
            return Ok(m);
        }
    }
}

/// The child server; killed (by its PID) when dropped.
struct ChildServer(Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_bytes(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS")?;
    Ok(kib * 1024)
}

#[tokio::test]
async fn idle_connections_hold_no_large_buffers() -> TestResult {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc: skipping the memory check");
        return Ok(());
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "memory_child_server",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let child = ChildServer(child);
    let pid = child.0.id();
    // The port, read on a thread (bounded by the wait below).
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let port = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The harness may print `test memory_child_server ... ` before it.
            .find_map(|l| {
                let (_, p) = l.split_once("PORT ")?;
                p.trim().parse::<u16>().ok()
            });
        let _ = port_tx.send(port);
    });
    let port = tokio::time::timeout(Duration::from_secs(60), port_rx)
        .await??
        .ok_or("the child server printed no port")?;

    // Warm up: a few connections join and leave, so that the runtime's and
    // the allocator's one-time costs are in the baseline.
    for i in 0..8u8 {
        let mut ws = connect_from(port, IpAddr::V4(Ipv4Addr::new(127, 3, 0, i + 1))).await?;
        join(&mut ws, "warmup", &format!("w{i}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(pid)?;

    // 1 000 connections joined in rooms of 4, from 40 source addresses (25
    // each, within the default --max-ws-per-ip 32), then left idle.
    let start = Instant::now();
    let mut clients = Vec::with_capacity(IDLE_CONNECTIONS);
    let mut peer_ids = Vec::with_capacity(IDLE_CONNECTIONS);
    for i in 0..IDLE_CONNECTIONS {
        let from = IpAddr::V4(Ipv4Addr::new(127, 3, 1, u8::try_from(i % 40 + 1)?));
        let mut ws = connect_from(port, from).await?;
        let joined = join(&mut ws, &format!("idle{}", i / 4), &format!("n{i}")).await?;
        peer_ids.push(joined["you"].clone());
        clients.push(ws);
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "joining took too long"
        );
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = rss_bytes(pid)?;
    let per_conn = after.saturating_sub(before) / IDLE_CONNECTIONS as u64;
    eprintln!(
        "server RSS {} KiB -> {} KiB with {IDLE_CONNECTIONS} idle connections: {per_conn} B each",
        before / 1024,
        after / 1024
    );
    assert!(
        per_conn <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{per_conn} bytes per idle connection (at most {MAX_BYTES_PER_IDLE_CONNECTION})"
    );

    // One connection in each room sends a 60 KiB message to a roommate
    // (read whole, relayed, written) and a 200 KiB one (skipped unread,
    // answered too-large). Afterwards the connections are idle again and
    // must not keep buffers the size of those frames: before this was
    // fixed, each kept its largest read frame until it closed.
    let big = "x".repeat(60 * 1024);
    let huge = "y".repeat(200 * 1024);
    let rooms = IDLE_CONNECTIONS / 4;
    for room in 0..rooms {
        let (first, rest) = clients.split_at_mut(room * 4 + 1);
        let (sender, receiver) = (
            first.last_mut().ok_or("no sender")?,
            rest.first_mut().ok_or("no receiver")?,
        );
        let to = &peer_ids[room * 4 + 1];
        send(
            sender,
            json!({"type":"message","to":to,"data":{"text":big}}),
        )
        .await?;
        let m = recv_skipping_joins(receiver).await?;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["data"]["text"].as_str().map(str::len), Some(60 * 1024));
        send(
            sender,
            json!({"type":"message","to":to,"data":{"text":huge}}),
        )
        .await?;
        let m = recv_skipping_joins(sender).await?;
        assert_eq!(m["code"], "too-large", "{m}");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_large = rss_bytes(pid)?;
    let per_conn = after_large.saturating_sub(before) / IDLE_CONNECTIONS as u64;
    eprintln!(
        "server RSS {} KiB after {rooms} 60 KiB and {rooms} 200 KiB messages: {per_conn} B per connection",
        after_large / 1024
    );
    assert!(
        per_conn <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{per_conn} bytes per connection after large messages (at most {MAX_BYTES_PER_IDLE_CONNECTION})"
    );
    drop(clients);
    drop(child);
    Ok(())
}
