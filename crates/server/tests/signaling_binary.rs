//! The real `switchboard` binary: serves the web app and signaling on
//! `--http-listen`, hands out ICE servers for its own `--turn-listen`, relays
//! between two WebSocket clients, and on SIGTERM tells them to reconnect,
//! drains for `--drain-timeout` and exits 0 even with WebSockets open.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A free loopback TCP port (its UDP twin is almost always free too).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Result<(Server, u16, u16), Box<dyn std::error::Error>> {
    let http = free_port()?;
    let turn = free_port()?;
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--turn-listen",
            &format!("127.0.0.1:{turn}"),
            "--log",
            "warn",
            "--metrics-listen",
            "off",
            "--drain-timeout",
            "2",
            "--sfu-listen",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok((Server(child), http, turn))
}

async fn connect(
    port: u16,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Box<dyn std::error::Error>,
> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await {
            Ok((ws, _)) => return Ok(ws),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn recv<S>(ws: &mut S) -> Result<Value, Box<dyn std::error::Error>>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await?
            .ok_or("closed")??;
        if let Message::Text(t) = msg {
            return Ok(serde_json::from_str(t.as_str())?);
        }
    }
}

#[tokio::test]
async fn binary_serves_signaling_and_stops_on_sigterm() -> TestResult {
    let (mut server, http, turn) = start()?;
    let mut a = connect(http).await?;
    let mut b = connect(http).await?;
    a.send(Message::text(
        json!({"type":"join","v":1,"room":"bin","name":"A"}).to_string(),
    ))
    .await?;
    let ja = recv(&mut a).await?;
    assert_eq!(ja.get("type"), Some(&json!("joined")));
    assert_eq!(
        ja.pointer("/iceServers/0/urls/0"),
        Some(&json!(format!("stun:127.0.0.1:{turn}")))
    );
    b.send(Message::text(
        json!({"type":"join","v":1,"room":"bin","name":"B"}).to_string(),
    ))
    .await?;
    let jb = recv(&mut b).await?;
    let pb = jb.get("you").cloned().ok_or("you")?;
    assert_eq!(recv(&mut a).await?.get("type"), Some(&json!("peer-joined")));
    a.send(Message::text(
        json!({"type":"message","to":pb,"data":"hi"}).to_string(),
    ))
    .await?;
    assert_eq!(recv(&mut b).await?.get("data"), Some(&json!("hi")));

    // SIGTERM with both peers still in their room: they are told to
    // reconnect, the drain runs out (2 s) and the server closes them and exits.
    let pid = server.0.id().to_string();
    let started = Instant::now();
    let status = Command::new("kill").args(["-TERM", &pid]).status()?;
    assert!(status.success());
    let exit = loop {
        if let Some(s) = server.0.try_wait()? {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err("switchboard did not exit within 10 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the drain window was kept"
    );
    let notice = recv(&mut b).await?;
    assert_eq!(notice.get("type"), Some(&json!("reconnect")), "{notice}");
    // The clients see the close.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = a.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok());
    Ok(())
}
