//! Cluster mode through the real path: Debian's `redis-server` on a free
//! loopback port, several `switchboard --redis` processes, WebSocket
//! clients on different nodes. (The browsers' side, with HAProxy in front,
//! is e2e/tests/cluster.test.js.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;
mod ws_client;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Switchboard, free_port};
use ws_client::{Error, TestResult, Ws, expect_error, recv, send};

/// A `redis-server` of this test's own (no persistence), killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        Redis::on(free_port())
    }

    fn on(port: u16) -> Redis {
        Redis::spawn(port, &["--port", &port.to_string()])
    }

    /// TLS only, with the certificate in `tls`; clients must show one the
    /// test CA signed (Redis's default).
    fn tls(tls: &TlsFiles) -> Redis {
        let port = free_port();
        let (ca, cert, key) = (tls.ca.to_str(), tls.cert.to_str(), tls.key.to_str());
        let (ca, cert, key) = (ca.unwrap(), cert.unwrap(), key.unwrap());
        Redis::spawn(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
            ],
        )
    }

    fn spawn(port: u16, listen: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate
/// that it signed, as PEM files in a directory of their own (removed on
/// drop).
struct TlsFiles {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl TlsFiles {
    fn new(name: &str) -> TlsFiles {
        let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Switchboard test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("redis.pem"),
            key: dir.join("redis.key"),
            client_cert: dir.join("node.pem"),
            client_key: dir.join("node.key"),
            dir,
        };
        std::fs::write(&files.ca, ca_cert.pem()).unwrap();
        for (name, cert, key) in [
            ("127.0.0.1", &files.cert, &files.key),
            ("node.example", &files.client_cert, &files.client_key),
        ] {
            let pair = rcgen::KeyPair::generate().unwrap();
            let signed = rcgen::CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&pair, &issuer)
                .unwrap();
            std::fs::write(cert, signed.pem()).unwrap();
            std::fs::write(key, pair.serialize_pem()).unwrap();
        }
        files
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node(redis: &Redis, id: &str, extra: &[&str]) -> Switchboard {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--node-id", id];
    args.extend_from_slice(extra);
    Switchboard::start(&args)
}

async fn connect(node: &Switchboard) -> Result<Ws, Error> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.http)).await?;
    Ok(ws)
}

/// Joins, retrying while the node is not connected to Redis yet
/// (`unavailable`) for up to `patience`.
async fn join_when_up(
    node: &Switchboard,
    room: &str,
    name: &str,
    extra: Value,
    patience: Duration,
) -> Result<(Ws, Value), Error> {
    let deadline = Instant::now() + patience;
    loop {
        let mut ws = connect(node).await?;
        let mut m = json!({"type":"join","v":1,"room":room,"name":name});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        send(&mut ws, m).await?;
        let answer = recv(&mut ws).await?;
        if answer["code"] == "unavailable" && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return Ok((ws, answer));
    }
}

/// The next message of `type_` (others skipped), within `within`.
async fn next_of(ws: &mut Ws, type_: &str, within: Duration) -> Result<Value, Error> {
    let deadline = Instant::now() + within;
    loop {
        let m = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), recv(ws))
            .await
            .map_err(|_| format!("no {type_} within {within:?}"))??;
        if m["type"] == type_ {
            return Ok(m);
        }
    }
}

const UP: Duration = Duration::from_secs(10);

#[tokio::test]
async fn peers_on_two_nodes_share_a_room_relay_and_leave() -> TestResult {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a", &[]), node(&redis, "b", &[]));
    let (mut ann, joined) = join_when_up(&a, "r1", "Ann", json!({}), UP).await?;
    assert_eq!(joined["type"], "joined", "{joined}");
    let ann_id = joined["you"].as_str().unwrap_or_default().to_owned();
    assert!(ann_id.starts_with("a-p"), "{ann_id}");
    let (mut ben, joined) = join_when_up(&b, "r1", "Ben", json!({}), UP).await?;
    assert_eq!(joined["peers"][0]["name"], "Ann", "{joined}");
    let ben_id = joined["you"].as_str().unwrap_or_default().to_owned();
    let seen = next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;
    assert_eq!(seen["peer"]["id"], ben_id.as_str());

    // An offer from node b reaches node a, its payload's text unchanged.
    let offer = format!(r#"{{"type":"offer","to":"{ann_id}","data":{{"sdp":"v=0","n":1.10}}}}"#);
    futures_util::SinkExt::send(
        &mut ben,
        tokio_tungstenite::tungstenite::Message::text(offer),
    )
    .await?;
    let got = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let msg = futures_util::StreamExt::next(&mut ann).await;
            if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = msg
                && t.as_str().contains("\"offer\"")
            {
                return t.as_str().to_owned();
            }
        }
    })
    .await?;
    assert!(got.contains(r#""data":{"sdp":"v=0","n":1.10}"#), "{got}");
    assert!(got.contains(&ben_id), "{got}");
    send(
        &mut ann,
        json!({"type":"message","to":ben_id,"data":{"chat":"hi"}}),
    )
    .await?;
    let m = next_of(&mut ben, "message", Duration::from_secs(2)).await?;
    assert_eq!(m["data"]["chat"], "hi");

    // Ann leaves: Ben hears it from the other node.
    send(&mut ann, json!({"type":"leave"})).await?;
    let left = next_of(&mut ben, "peer-left", Duration::from_secs(2)).await?;
    assert_eq!(
        (left["id"].as_str(), left["reason"].as_str()),
        (Some(ann_id.as_str()), Some("left"))
    );
    Ok(())
}

#[tokio::test]
async fn a_stopping_nodes_last_leaves_reach_the_other_nodes() -> TestResult {
    let redis = Redis::start();
    let mut a = node(&redis, "a", &["--drain-timeout", "1"]);
    let b = node(&redis, "b", &[]);
    let (mut ann, _) = join_when_up(&a, "d", "Ann", json!({}), UP).await?;
    let (mut ben, j) = join_when_up(&b, "d", "Ben", json!({}), UP).await?;
    assert_eq!(j["peers"][0]["name"], "Ann", "{j}");
    next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;
    // Ann stays: after the 1 s window node a closes her connection and
    // exits. Her leave must reach Redis and node b before it does: b is
    // too young to sweep (and a's liveness key would take 3 s to expire).
    let t0 = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()?;
    assert!(status.success());
    let left = next_of(&mut ben, "peer-left", Duration::from_secs(4)).await?;
    assert_eq!(left["reason"], "disconnected", "{left}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    while a.exited().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "node a still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.exited().map(|s| s.success()), Some(true));
    // And it took itself out of Redis.
    let (_cleo, j) = join_when_up(&b, "d", "Cleo", json!({}), UP).await?;
    assert_eq!(j["peers"].as_array().map(Vec::len), Some(1), "{j}");
    Ok(())
}

#[tokio::test]
async fn many_peers_leaving_at_once_are_all_seen_leaving_on_the_other_node() -> TestResult {
    let redis = Redis::start();
    let size = ["--room-size", "16"];
    let (a, b) = (node(&redis, "a", &size), node(&redis, "b", &size));
    let (mut ben, _) = join_when_up(&b, "many", "Ben", json!({}), UP).await?;
    let mut gone = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..12 {
        let (ws, j) = join_when_up(&a, "many", &format!("P{i}"), json!({}), UP).await?;
        assert_eq!(j["type"], "joined", "{j}");
        ids.insert(j["you"].as_str().unwrap_or_default().to_owned());
        gone.push(ws);
    }
    for _ in 0..12 {
        next_of(&mut ben, "peer-joined", Duration::from_secs(2)).await?;
    }
    // All twelve close together: node a's leaves reach Redis in one go.
    drop(gone);
    let mut left = std::collections::BTreeSet::new();
    while left.len() < ids.len() {
        let m = next_of(&mut ben, "peer-left", Duration::from_secs(3)).await?;
        left.insert(m["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(left, ids);
    let (_cleo, j) = join_when_up(&a, "many", "Cleo", json!({}), UP).await?;
    assert_eq!(j["peers"].as_array().map(Vec::len), Some(1), "{j}");
    Ok(())
}

#[tokio::test]
async fn room_size_password_and_room_count_hold_across_nodes() -> TestResult {
    let redis = Redis::start();
    let limits = ["--room-size", "2", "--max-rooms", "2"];
    let nodes = [
        node(&redis, "x", &limits),
        node(&redis, "y", &limits),
        node(&redis, "z", &limits),
    ];
    let pw = json!({"password": "s3cret"});
    let (_ann, j) = join_when_up(&nodes[0], "sized", "Ann", pw.clone(), UP).await?;
    assert_eq!(j["type"], "joined", "{j}");
    // The password set on x is asked for on y.
    let (mut ben, j) =
        join_when_up(&nodes[1], "sized", "Ben", json!({"password":"guess"}), UP).await?;
    assert_eq!(j["code"], "bad-password", "{j}");
    join_again(&mut ben, "sized", "Ben", pw.clone()).await?;
    // The room holds two: a third on z is refused.
    let (_cleo, j) = join_when_up(&nodes[2], "sized", "Cleo", pw.clone(), UP).await?;
    assert_eq!(j["code"], "room-full", "{j}");
    // Two rooms in the cluster at most.
    let (_dev, j) = join_when_up(&nodes[2], "second", "Dev", json!({}), UP).await?;
    assert_eq!(j["type"], "joined", "{j}");
    let (_eli, j) = join_when_up(&nodes[1], "third", "Eli", json!({}), UP).await?;
    assert_eq!(j["code"], "too-many-rooms", "{j}");
    Ok(())
}

async fn join_again(ws: &mut Ws, room: &str, name: &str, extra: Value) -> TestResult {
    let mut m = json!({"type":"join","v":1,"room":room,"name":name});
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    send(ws, m).await?;
    let j = recv(ws).await?;
    assert_eq!(j["type"], "joined", "{j}");
    Ok(())
}

#[tokio::test]
async fn a_killed_nodes_peers_leave_within_five_seconds() -> TestResult {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let mut b = node(&redis, "b", &[]);
    let (mut ann, _) = join_when_up(&a, "r", "Ann", json!({}), UP).await?;
    let (_ben, j) = join_when_up(&b, "r", "Ben", json!({}), UP).await?;
    let ben_id = j["you"].as_str().unwrap_or_default().to_owned();
    next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;
    // Both must have swept once (their first 5 s) for a sweep to count.
    tokio::time::sleep(Duration::from_secs(5)).await;
    b.kill_hard();
    let t0 = Instant::now();
    let left = next_of(&mut ann, "peer-left", Duration::from_secs(6)).await?;
    let took = t0.elapsed();
    assert_eq!(left["id"], ben_id.as_str());
    assert_eq!(left["reason"], "disconnected");
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    // The room's seat is free again in Redis: a newcomer sees only Ann.
    let (_cleo, j) = join_when_up(&a, "r", "Cleo", json!({}), UP).await?;
    assert_eq!(j["peers"].as_array().map(Vec::len), Some(1), "{j}");
    Ok(())
}

#[tokio::test]
async fn rooms_go_on_while_redis_restarts_and_joins_work_again_after() -> TestResult {
    let mut redis = Redis::start();
    let port = redis.port;
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    let (mut ann, _) = join_when_up(&a, "r", "Ann", json!({}), UP).await?;
    let (mut ann2, j) = join_when_up(&a, "r", "Ann2", json!({}), UP).await?;
    let ann2_id = j["you"].as_str().unwrap_or_default().to_owned();
    let (mut ben, j) = join_when_up(&b, "r", "Ben", json!({}), UP).await?;
    let ben_id = j["you"].as_str().unwrap_or_default().to_owned();
    next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;
    next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;

    redis.kill();
    // Redis is gone: peers of one node still reach each other, and a new
    // join is refused with `unavailable`, not left hanging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&mut ann, json!({"type":"message","to":ann2_id,"data":1})).await?;
    assert_eq!(
        next_of(&mut ann2, "message", Duration::from_secs(2)).await?["data"],
        1
    );
    let mut late = connect(&a).await?;
    send(
        &mut late,
        json!({"type":"join","v":1,"room":"r","name":"Late"}),
    )
    .await?;
    expect_error(&mut late, "unavailable").await?;
    let ready = reqwest_status(&a).await?;
    assert_eq!(ready, 503, "/readyz while Redis is gone");

    // Back (empty): the nodes put their members back; across nodes the
    // room works again, and a new join sees everyone, within seconds.
    let _redis = Redis::on(port);
    let t0 = Instant::now();
    let (_cleo, j) = join_when_up(&b, "r", "Cleo", json!({}), Duration::from_secs(10)).await?;
    assert_eq!(j["type"], "joined", "{j}");
    let names: Vec<&str> = j["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{j}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    send(&mut ann, json!({"type":"message","to":ben_id,"data":2})).await?;
    assert_eq!(
        next_of(&mut ben, "message", Duration::from_secs(3)).await?["data"],
        2
    );
    // Nobody was announced gone meanwhile.
    let mut seen = Vec::new();
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(300), recv(&mut ann)).await {
        seen.push(m);
    }
    assert!(!seen.iter().any(|m| m["type"] == "peer-left"), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn nodes_reach_a_tls_redis_with_its_ca_and_a_client_certificate() -> TestResult {
    let tls = TlsFiles::new("redis-tls");
    let redis = Redis::tls(&tls);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let path = |p: &PathBuf| p.to_str().unwrap_or_default().to_owned();
    let (ca, cert, key) = (path(&tls.ca), path(&tls.client_cert), path(&tls.client_key));
    let mutual = [
        "--redis-ca",
        &ca,
        "--redis-cert",
        &cert,
        "--redis-key",
        &key,
    ];
    let start = |id, tls: &[&str]| {
        let mut args = vec!["--redis", url.as_str(), "--node-id", id];
        args.extend_from_slice(tls);
        Switchboard::start(&args)
    };
    let (a, b) = (start("a", &mutual), start("b", &mutual));
    // Redis asks for a client certificate: a node that trusts the CA but
    // shows none never gets in, and nor does one that trusts only the
    // system's CAs.
    let no_cert = start("c", &["--redis-ca", &ca]);
    let no_ca = start("d", &["--redis-cert", &cert, "--redis-key", &key]);

    let (mut ann, j) = join_when_up(&a, "tls", "Ann", json!({}), UP).await?;
    assert_eq!(j["type"], "joined", "{j}");
    let (_ben, j) = join_when_up(&b, "tls", "Ben", json!({}), UP).await?;
    assert_eq!(j["peers"][0]["name"], "Ann", "{j}");
    next_of(&mut ann, "peer-joined", Duration::from_secs(2)).await?;
    assert_eq!(reqwest_status(&a).await?, 200);

    // They have had as long as a and b (and a second more) to connect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for stranger in [&no_cert, &no_ca] {
        let (_cleo, j) = join_when_up(stranger, "tls", "Cleo", json!({}), Duration::ZERO).await?;
        assert_eq!(j["code"], "unavailable", "{j}");
        assert_eq!(reqwest_status(stranger).await?, 503);
    }
    Ok(())
}

/// `/readyz`'s status code.
async fn reqwest_status(node: &Switchboard) -> Result<u16, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(node.http).await?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(code)
}
