//! `signaling` mode: many signaling WebSockets against Switchboard's `/ws`
//! or PeerJS's server (`/peerjs`), for `bench/run`'s signaling phase.
//!
//! 1. **Join**: `--count` connections, `--wave` at a time, each from one of
//!    `--sources` loopback addresses 127.1.x.y (so the server's per-address
//!    cap is not the limit), grouped `--room-size` by `--room-size`:
//!    Switchboard: WebSocket upgrade, `join` to the group's room, `joined`;
//!    PeerJS: upgrade with `?key=peerjs&id=…&token=…`, `OPEN`. A `READY
//!    joined=… refused=… failed=… secs=… rate=…` line on stdout tells
//!    `bench/run` to read the server's memory; then `--idle-secs` of quiet.
//! 2. **Relay**: `--rate` messages per second in total, for `--relay-secs`,
//!    spread evenly over the groups: each message goes from one member to
//!    another member of its group (Switchboard: `offer`/`answer`/`candidate`
//!    with `to`; PeerJS: `OFFER`/`ANSWER`/`CANDIDATE` with `dst`), carrying
//!    the send time and `--payload` bytes of padding; the receiver records
//!    the latency. Then a `CLOSING` line as every connection closes, and one
//!    `RESULT` line with p50/p99/max.
//!
//! Every connection answers the server's WebSocket pings (tungstenite does)
//! and sends its protocol's heartbeat every 15 s (`ping` / `HEARTBEAT`).
//! Client buffers are kept small so 10 000 connections fit in the
//! generator. Loopback only, bounded in count and time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{SignalingArgs, SignalingProtocol};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one connection may take to connect, upgrade and join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// The protocol heartbeat every connection sends.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long to wait for the last relayed messages after the relay phase.
const DRAIN: Duration = Duration::from_secs(2);

/// What a connection task is told to do.
enum Command {
    /// Send one relayed message of this kind (0 offer, 1 answer, 2 candidate) to peer `to`.
    Relay { to: Arc<str>, kind: u8 },
    /// Close and end.
    Stop,
}

/// How one connection's join ended.
enum Joined {
    Ok {
        id: String,
        commands: mpsc::UnboundedSender<Command>,
    },
    Refused,
    Failed(String),
}

struct Shared {
    clock: Instant,
    /// Relay latencies in µs, between members on the same server.
    latencies: Mutex<Vec<u32>>,
    /// Relay latencies in µs, between members on different servers.
    across: Mutex<Vec<u32>>,
    /// Relayed messages received.
    received: Mutex<u64>,
    /// Refusals and errors the servers sent after the join.
    errors: Mutex<u64>,
    padding: String,
    protocol: SignalingProtocol,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// The source address of connection `i`: 127.1.0.1, 127.1.0.2, … over
/// `sources` addresses (never .0 or .255 in the last octet).
fn source(i: usize, sources: usize) -> IpAddr {
    let k = i % sources.max(1);
    let hi = u8::try_from(k / 254 % 256).unwrap_or(0);
    let lo = u8::try_from(k % 254 + 1).unwrap_or(1);
    IpAddr::V4(Ipv4Addr::new(127, 1, hi, lo))
}

fn client_config() -> WebSocketConfig {
    // Small client buffers: the messages are small, and 10 000 connections
    // at the 128 KiB default would take the generator 2.5 GiB.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects from `from` and upgrades; `Ok(None)` when the server refused
/// the upgrade with 429.
async fn connect(server: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Option<Ws>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0)).context("bind")?;
    let stream = socket.connect(server).await.context("connect")?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}{path}");
    match tokio_tungstenite::client_async_with_config(
        url,
        MaybeTlsStream::Plain(stream),
        Some(client_config()),
    )
    .await
    {
        Ok((ws, _)) => Ok(Some(ws)),
        Err(tungstenite::Error::Http(resp)) if resp.status().as_u16() == 429 => Ok(None),
        Err(e) => Err(anyhow!("upgrade: {e}")),
    }
}

/// The next text message as JSON (answering pings on the way).
async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("read: {e}"),
            None => bail!("closed"),
        }
    }
}

/// Connects and joins connection `i` of group `group`.
async fn join_one(
    args: Arc<SignalingArgs>,
    server: SocketAddr,
    shared: Arc<Shared>,
    i: usize,
    group: usize,
    node: usize,
) -> Joined {
    let from = source(i, args.sources);
    let attempt = async {
        let (path, id) = match args.protocol {
            SignalingProtocol::Switchboard => ("/ws".to_owned(), String::new()),
            SignalingProtocol::Peerjs => {
                let id = format!("c{i}");
                (format!("/peerjs?key=peerjs&id={id}&token=t{i}"), id)
            }
        };
        let Some(mut ws) = connect(server, from, &path).await? else {
            return Ok::<_, anyhow::Error>(None);
        };
        let id = match args.protocol {
            SignalingProtocol::Switchboard => {
                let join = json!({"type":"join","v":1,"room":format!("bench-{group}"),"name":format!("n{i}")});
                ws.send(Message::text(join.to_string())).await?;
                let m = next_json(&mut ws).await?;
                if m.get("type").and_then(Value::as_str) != Some("joined") {
                    bail!("join answered {m}");
                }
                m.get("you")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("joined without you"))?
                    .to_owned()
            }
            SignalingProtocol::Peerjs => {
                let m = next_json(&mut ws).await?;
                if m.get("type").and_then(Value::as_str) != Some("OPEN") {
                    bail!("connect answered {m}");
                }
                id
            }
        };
        Ok(Some((ws, id)))
    };
    match tokio::time::timeout(JOIN_TIMEOUT, attempt).await {
        Err(_) => Joined::Failed("join timed out".into()),
        Ok(Err(e)) => Joined::Failed(format!("{e:#}")),
        Ok(Ok(None)) => Joined::Refused,
        Ok(Ok(Some((ws, id)))) => {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(serve(ws, rx, shared, i, node));
            Joined::Ok { id, commands: tx }
        }
    }
}

/// One joined connection: sends what it is told, records relay latencies,
/// sends its heartbeat.
async fn serve(
    ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    i: usize,
    node: usize,
) {
    let (mut sink, mut stream) = ws.split();
    // Heartbeats spread over the interval.
    let offset = HEARTBEAT.mul_f64((i % 1000) as f64 / 1000.0);
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + offset + HEARTBEAT, HEARTBEAT);
    let heartbeat_msg = match shared.protocol {
        SignalingProtocol::Switchboard => r#"{"type":"ping"}"#,
        SignalingProtocol::Peerjs => r#"{"type":"HEARTBEAT"}"#,
    };
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Relay { to, kind }) => {
                    let t = shared.now_us();
                    let data = json!({"t": t, "n": node, "pad": shared.padding});
                    let msg = match shared.protocol {
                        SignalingProtocol::Switchboard => {
                            let ty = ["offer", "answer", "candidate"].get(usize::from(kind)).copied().unwrap_or("candidate");
                            json!({"type": ty, "to": &*to, "data": data})
                        }
                        SignalingProtocol::Peerjs => {
                            let ty = ["OFFER", "ANSWER", "CANDIDATE"].get(usize::from(kind)).copied().unwrap_or("CANDIDATE");
                            json!({"type": ty, "dst": &*to, "payload": data})
                        }
                    };
                    if sink.send(Message::text(msg.to_string())).await.is_err() {
                        break;
                    }
                }
                Some(Command::Stop) | None => {
                    let _ = sink.close().await;
                    break;
                }
            },
            _ = heartbeat.tick() => {
                if sink.send(Message::text(heartbeat_msg)).await.is_err() {
                    break;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => received(&shared, t.as_str(), node),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A text message arrived: a relayed one carries its send time.
fn received(shared: &Shared, text: &str, node: usize) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let body = match shared.protocol {
        SignalingProtocol::Switchboard => v.get("data"),
        SignalingProtocol::Peerjs => v.get("payload"),
    };
    if let Some(t) = body.and_then(|d| d.get("t")).and_then(Value::as_u64) {
        let us = shared.now_us().saturating_sub(t);
        let from = body.and_then(|d| d.get("n")).and_then(Value::as_u64);
        let list = if from.is_none_or(|n| n == node as u64) {
            &shared.latencies
        } else {
            &shared.across
        };
        if let Ok(mut l) = list.lock() {
            l.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        if let Ok(mut n) = shared.received.lock() {
            *n += 1;
        }
    } else if matches!(
        v.get("type").and_then(Value::as_str),
        Some("error" | "ERROR")
    ) && let Ok(mut n) = shared.errors.lock()
    {
        *n += 1;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(rank.min(sorted.len() - 1))
        .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
}

/// Runs the join and relay phases; returns the result line.
pub async fn run(
    server: SocketAddr,
    args: SignalingArgs,
    limit: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    let deadline = start + limit;
    let args = Arc::new(args);
    let shared = Arc::new(Shared {
        clock: Instant::now(),
        latencies: Mutex::new(Vec::new()),
        across: Mutex::new(Vec::new()),
        received: Mutex::new(0),
        errors: Mutex::new(0),
        padding: "x".repeat(args.payload),
        protocol: args.protocol,
    });
    let room_size = args.room_size.max(2);
    let servers: Vec<SocketAddr> = std::iter::once(server)
        .chain(args.also.iter().copied())
        .collect();

    // 1. Join, in waves.
    let mut members: Vec<Option<(Arc<str>, mpsc::UnboundedSender<Command>)>> =
        (0..args.count).map(|_| None).collect();
    let (mut refused, mut failed) = (0u64, 0u64);
    let mut first_error = None;
    let join_start = Instant::now();
    let mut next = 0;
    while next < args.count {
        if Instant::now() >= deadline {
            bail!(
                "time limit reached while joining ({next} of {})",
                args.count
            );
        }
        let end = (next + args.wave.max(1)).min(args.count);
        let mut wave = JoinSet::new();
        for i in next..end {
            let node = i % servers.len();
            let to = servers.get(node).copied().unwrap_or(server);
            let fut = join_one(args.clone(), to, shared.clone(), i, i / room_size, node);
            wave.spawn(async move { (i, fut.await) });
        }
        while let Some(done) = wave.join_next().await {
            let Ok((i, joined)) = done else {
                failed += 1;
                continue;
            };
            match joined {
                Joined::Ok { id, commands } => {
                    if let Some(slot) = members.get_mut(i) {
                        *slot = Some((Arc::from(id), commands));
                    }
                }
                Joined::Refused => refused += 1,
                Joined::Failed(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        next = end;
    }
    let join_secs = join_start.elapsed().as_secs_f64();
    let joined = members.iter().filter(|m| m.is_some()).count();
    if let Some(e) = &first_error {
        eprintln!("signaling: first join failure: {e}");
    }
    let join_rate = joined as f64 / join_secs.max(1e-6);
    println!(
        "READY joined={joined} refused={refused} failed={failed} secs={join_secs:.2} rate={join_rate:.1}"
    );
    eprintln!(
        "signaling: {joined} joined, {refused} refused, {failed} failed in {join_secs:.2} s ({join_rate:.0}/s); idle {} s",
        args.idle_secs
    );
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;

    // 2. Relay at a steady rate: message k goes from member (k / groups) % size
    // of group k % groups to the next member of that group.
    let groups = args.count.div_ceil(room_size);
    let total = (args.rate as f64 * args.relay_secs as f64) as u64;
    let mut sent = 0u64;
    let relay_start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut k: u64 = 0;
    while sent < total && Instant::now() < deadline {
        // Send what is due now (the timer's granularity is 1 ms).
        let due =
            ((relay_start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64).min(total);
        while k < due {
            let g = usize::try_from(k % groups as u64).unwrap_or(0);
            let round = usize::try_from(k / groups as u64).unwrap_or(0);
            let base = g * room_size;
            let size = room_size.min(args.count - base);
            let r = round % size;
            let from = base + r;
            let to = base + (r + 1 + round / size % (size - 1).max(1)) % size;
            k += 1;
            if from == to {
                continue;
            }
            let (Some(Some((_, tx))), Some(Some((to_id, _)))) =
                (members.get(from), members.get(to))
            else {
                continue;
            };
            let kind = u8::try_from(k % 3).unwrap_or(0);
            if tx
                .send(Command::Relay {
                    to: to_id.clone(),
                    kind,
                })
                .is_ok()
            {
                sent += 1;
            }
        }
        if k >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let relay_secs = relay_start.elapsed().as_secs_f64();
    tokio::time::sleep(DRAIN).await;
    for (_, tx) in members.iter().flatten() {
        let _ = tx.send(Command::Stop);
    }
    // Every connection closes now: bench/cluster times the servers' leaves
    // from here.
    println!("CLOSING");
    let mut lat = shared
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    let received = shared.received.lock().map(|n| *n).unwrap_or(0);
    let errors = shared.errors.lock().map(|n| *n).unwrap_or(0);
    let mut across = shared.across.lock().map(|l| l.clone()).unwrap_or_default();
    across.sort_unstable();
    let (across_p50, across_p99) = (percentile(&across, 0.5), percentile(&across, 0.99));
    let mut all = [lat.as_slice(), across.as_slice()].concat();
    all.sort_unstable();
    let (p50, p99, max) = (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
    let (within_p50, within_p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let slow = |l: &[u32]| l.iter().filter(|us| **us > 10_000).count();
    eprintln!(
        "signaling: over 10 ms: {} of {} within, {} of {} across; max within {:.3} ms, across {:.3} ms",
        slow(&lat),
        lat.len(),
        slow(&across),
        across.len(),
        percentile(&lat, 1.0),
        percentile(&across, 1.0)
    );
    eprintln!(
        "signaling: sent {sent} in {relay_secs:.2} s, received {received}, errors {errors}; latency p50 {p50:.3} ms p99 {p99:.3} ms max {max:.3} ms"
    );
    // Let the closes go out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(format!(
        "joined={joined} refused={refused} failed={failed} join_secs={join_secs:.2} join_rate={join_rate:.1} sent={sent} received={received} errors={errors} relay_secs={relay_secs:.2} p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3} within_p50_ms={within_p50:.3} within_p99_ms={within_p99:.3} across_p50_ms={across_p50:.3} across_p99_ms={across_p99:.3} within_n={} across_n={}",
        lat.len(),
        across.len()
    ))
}
