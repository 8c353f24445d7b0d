//! A benchmark participant's signaling with Switchboard (`docs/protocol.md`,
//! *SFU rooms*): `join` with the `sfu` feature, wait for `mode: sfu`, then
//! `sfu` messages carry the SDP both ways. Subscribers tell the SFU every
//! tile is wide (`view`, 1280 px) so it sends them the high layer, as Janus
//! does by default; publishers say 0 for the others (they are not watched).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::media::{Role, Sdp, SdpLink};

/// The app's heartbeat interval.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Joins `room` on the server at `http`, sends `offer` once the room is in
/// SFU mode and relays SDP between the SFU and the media task until
/// `deadline`.
pub async fn signal(
    http: SocketAddr,
    room: String,
    name: String,
    role: Role,
    offer: String,
    SdpLink {
        to_media: sdp_to_media,
        from_media: mut sdp_from_media,
    }: SdpLink,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .context("connecting to /ws")?;
    let (mut sink, mut stream) = ws.split();
    let join = json!({"type":"join","v":1,"room":room,"name":name,"features":["sfu"]});
    sink.send(Message::text(join.to_string())).await?;
    let mut offer = Some(offer);
    let wide = match role {
        Role::Subscriber => 1280,
        Role::Publisher(_) => 0,
    };
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            m = stream.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => bail!("read: {e}"),
                    None => bail!("closed"),
                };
                let m: Value = serde_json::from_str(text.as_str())?;
                match m.get("type").and_then(Value::as_str) {
                    Some("mode") if m.get("mode").and_then(Value::as_str) == Some("sfu") => {
                        if let Some(o) = offer.take() {
                            let data = json!({"type":"offer","sdp":o});
                            sink.send(Message::text(json!({"type":"sfu","data":data}).to_string())).await?;
                        }
                    }
                    Some("sfu") => {
                        let data = m.get("data").ok_or_else(|| anyhow!("sfu without data"))?;
                        let sdp = data.get("sdp").and_then(Value::as_str).unwrap_or_default().to_owned();
                        let sdp = match data.get("type").and_then(Value::as_str) {
                            Some("offer") => Some(Sdp::Offer(sdp)),
                            Some("answer") => Some(Sdp::Answer(sdp)),
                            // The SFU's notices: nothing for a synthetic peer to do.
                            Some("speaker" | "publish-cap") => None,
                            other => bail!("sfu data of type {other:?}"),
                        };
                        if let Some(sdp) = sdp {
                            let _ = sdp_to_media.send(sdp);
                        }
                    }
                    Some("joined") => {
                        for p in m.get("peers").and_then(Value::as_array).into_iter().flatten() {
                            view(&mut sink, p, wide).await?;
                        }
                    }
                    Some("peer-joined") => {
                        if let Some(p) = m.get("peer") {
                            view(&mut sink, p, wide).await?;
                        }
                    }
                    Some("error") => eprintln!("{name}: server error {m}"),
                    _ => {}
                }
            }
            sdp = sdp_from_media.recv() => {
                let Some(sdp) = sdp else { return Ok(()) };
                let data = match sdp {
                    Sdp::Offer(s) => json!({"type":"offer","sdp":s}),
                    Sdp::Answer(s) => json!({"type":"answer","sdp":s}),
                };
                sink.send(Message::text(json!({"type":"sfu","data":data}).to_string())).await?;
            }
            _ = heartbeat.tick() => {
                sink.send(Message::text(json!({"type":"ping"}).to_string())).await?;
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(());
            }
        }
    }
}

/// Tells the SFU how wide this participant shows `peer` (a `PeerInfo`).
async fn view<S>(sink: &mut S, peer: &Value, width: u32) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    if let Some(id) = peer.get("id").and_then(Value::as_str) {
        let m = json!({"type":"view","peer":id,"width":width});
        sink.send(Message::text(m.to_string())).await?;
    }
    Ok(())
}
