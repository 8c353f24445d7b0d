//! A benchmark participant's signaling with Janus's VideoRoom plugin, over
//! Janus's WebSocket API (subprotocol `janus-protocol`): a session, a
//! handle on `janus.plugin.videoroom`, then plugin messages. A publisher
//! sends `joinandconfigure` with its offer and gets the answer in an event;
//! a subscriber waits until every publisher is publishing, `join`s as a
//! subscriber to all of their feeds in one PeerConnection (multistream),
//! gets Janus's offer and answers with `start`. Janus sends each subscriber
//! the highest simulcast layer unless told otherwise, as our subscribers
//! ask of Switchboard. The bench room is made with `create` and removed
//! with `destroy`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::media::{Sdp, SdpLink};

/// Janus drops a session after 60 s without a message.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// How long a subscriber waits for all publishers to publish.
const PUBLISHERS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Janus may take to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One WebSocket, one session, one VideoRoom handle.
struct Handle {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: u64,
    handle: u64,
    next_transaction: u64,
    /// Events that arrived while waiting for a transaction's answer.
    events: VecDeque<Value>,
}

impl Handle {
    async fn open(server: SocketAddr) -> anyhow::Result<Handle> {
        let mut request = format!("ws://{server}/").into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-protocol".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("connecting to Janus's WebSocket API")?;
        let mut h = Handle {
            ws,
            session: 0,
            handle: 0,
            next_transaction: 0,
            events: VecDeque::new(),
        };
        let created = h.call(json!({"janus":"create"})).await?;
        h.session = id_of(&created)?;
        let attached = h
            .call(json!({"janus":"attach","plugin":"janus.plugin.videoroom"}))
            .await?;
        h.handle = id_of(&attached)?;
        Ok(h)
    }

    async fn send(&mut self, mut m: Value) -> anyhow::Result<String> {
        self.next_transaction += 1;
        let transaction = format!("t{}", self.next_transaction);
        if let Some(o) = m.as_object_mut() {
            o.insert("transaction".into(), json!(transaction));
            if self.session != 0 {
                o.insert("session_id".into(), json!(self.session));
            }
            if self.handle != 0 && o.get("janus").and_then(Value::as_str) != Some("attach") {
                o.insert("handle_id".into(), json!(self.handle));
            }
        }
        self.ws.send(Message::text(m.to_string())).await?;
        Ok(transaction)
    }

    /// Sends a request and waits for its answer (skipping `ack`s, keeping
    /// events for later).
    async fn call(&mut self, m: Value) -> anyhow::Result<Value> {
        let transaction = self.send(m).await?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            loop {
                let m = self.next().await?;
                let ours = m.get("transaction").and_then(Value::as_str) == Some(&transaction);
                match m.get("janus").and_then(Value::as_str) {
                    Some("ack") if ours => continue,
                    Some("error") if ours => bail!("Janus: {}", m.get("error").unwrap_or(&m)),
                    Some("success") if ours => return Ok(m),
                    Some("event") if ours && m.get("jsep").is_none() => return Ok(m),
                    _ => self.events.push_back(m),
                }
            }
        })
        .await
        .context("Janus did not answer")?
    }

    /// A plugin request answered synchronously (`create`, `listparticipants`).
    async fn plugin(&mut self, body: Value) -> anyhow::Result<Value> {
        let m = self.call(json!({"janus":"message","body":body})).await?;
        let data = m
            .pointer("/plugindata/data")
            .cloned()
            .ok_or_else(|| anyhow!("no plugindata in {m}"))?;
        if let Some(e) = data.get("error") {
            bail!("VideoRoom: {e}");
        }
        Ok(data)
    }

    async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(c))) => bail!("Janus closed: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("read: {e}"),
                None => bail!("Janus closed"),
            }
        }
    }

    /// The next event: one kept earlier, or the next from the socket.
    async fn event(&mut self) -> anyhow::Result<Value> {
        match self.events.pop_front() {
            Some(e) => Ok(e),
            None => self.next().await,
        }
    }

    /// Relays SDP between Janus's events and the media task until
    /// `deadline`, with keepalives.
    async fn serve(
        mut self,
        SdpLink {
            to_media: sdp_to_media,
            from_media: mut sdp_from_media,
        }: SdpLink,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        loop {
            tokio::select! {
                e = self.event() => {
                    let e = e?;
                    if let Some(jsep) = e.get("jsep") {
                        let sdp = jsep.get("sdp").and_then(Value::as_str).unwrap_or_default().to_owned();
                        let sdp = match jsep.get("type").and_then(Value::as_str) {
                            Some("offer") => Sdp::Offer(sdp),
                            _ => Sdp::Answer(sdp),
                        };
                        let _ = sdp_to_media.send(sdp);
                    }
                    if e.get("janus").and_then(Value::as_str) == Some("hangup") {
                        bail!("Janus hung up: {e}");
                    }
                }
                sdp = sdp_from_media.recv() => {
                    let Some(sdp) = sdp else { return Ok(()) };
                    // Our answer to a subscriber's offer: `start`.
                    if let Sdp::Answer(s) = sdp {
                        let m = json!({"janus":"message","body":{"request":"start"},
                            "jsep":{"type":"answer","sdp":s}});
                        self.send(m).await?;
                    }
                }
                _ = keepalive.tick() => {
                    self.send(json!({"janus":"keepalive"})).await?;
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.send(json!({"janus":"destroy"})).await;
                    let _ = self.ws.close(None).await;
                    return Ok(());
                }
            }
        }
    }
}

fn id_of(m: &Value) -> anyhow::Result<u64> {
    m.pointer("/data/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no id in {m}"))
}

/// The bench's VideoRoom room.
#[derive(Clone)]
pub struct Room {
    server: SocketAddr,
    id: u64,
    publishers: usize,
}

impl Room {
    /// Makes a room for `publishers` VP8 publishers: no bitrate cap, no
    /// periodic keyframe requests (only when a subscriber needs one, like
    /// Switchboard's SFU).
    pub async fn create(server: SocketAddr, publishers: usize) -> anyhow::Result<Room> {
        let id = 100_000 + u64::from(std::process::id());
        let mut h = Handle::open(server).await?;
        h.plugin(json!({"request":"create","room":id,"publishers":publishers,
            "videocodec":"vp8","bitrate":0,"permanent":false}))
            .await
            .context("creating the VideoRoom room")?;
        Ok(Room {
            server,
            id,
            publishers,
        })
    }

    /// Removes the room (best effort: Janus drops it with the last handle
    /// anyway only if asked to, so ask).
    pub async fn destroy(self) {
        if let Ok(mut h) = Handle::open(self.server).await {
            let _ = h.plugin(json!({"request":"destroy","room":self.id})).await;
        }
    }

    /// A publisher: joins with its offer, relays until `deadline`.
    pub async fn publish(
        self,
        name: String,
        offer: String,
        link: SdpLink,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut h = Handle::open(self.server).await?;
        let m = json!({"janus":"message",
            "body":{"request":"joinandconfigure","ptype":"publisher","room":self.id,
                "display":name,"audio":false,"video":true},
            "jsep":{"type":"offer","sdp":offer,"rid_order":"lmh"}});
        h.send(m).await?;
        h.serve(link, deadline).await
    }

    /// A subscriber to every publisher's feed.
    pub async fn subscribe(
        self,
        _name: String,
        link: SdpLink,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut h = Handle::open(self.server).await?;
        let until = Instant::now() + PUBLISHERS_TIMEOUT;
        let feeds = loop {
            let data = h
                .plugin(json!({"request":"listparticipants","room":self.id}))
                .await?;
            let feeds: Vec<u64> = data
                .get("participants")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| p.get("publisher").and_then(Value::as_bool) == Some(true))
                .filter_map(|p| p.get("id").and_then(Value::as_u64))
                .collect();
            if feeds.len() >= self.publishers {
                break feeds;
            }
            if Instant::now() > until {
                bail!(
                    "{} of {} publishers published",
                    feeds.len(),
                    self.publishers
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let m = json!({"janus":"message",
            "body":{"request":"join","ptype":"subscriber","room":self.id,"streams":streams}});
        h.send(m).await?;
        h.serve(link, deadline).await
    }
}
