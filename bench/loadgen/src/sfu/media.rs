//! One benchmark participant's media: a str0m `Rtc` on its own loopback UDP
//! socket, driven by a tokio task. A publisher sends synthetic VP8 simulcast
//! (rids `l`, `m`, `h`) at a fixed frame rate; a subscriber counts the
//! frames and RTP packets it receives. Signaling is someone else's job: SDP
//! comes in and goes out on channels, so the same task serves Switchboard's
//! SFU and Janus.
//!
//! The frames are not real VP8, but they look like it where an SFU looks
//! (RFC 6386 §9.1): the frame tag's bit 0 is clear on a keyframe, which then
//! carries the start code `9d 01 2a` and a 640×360 size. After that come the
//! publisher's index and the frame number, so a subscriber can tell which
//! frames of which publisher it got.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Simulcast layers, lowest first, as the app sends them.
pub const RIDS: [&str; 3] = ["l", "m", "h"];
/// Bytes per frame per layer: at 30 fps about 60, 190 and 600 kbit/s, the
/// high layer two RTP packets per frame.
pub const FRAME_BYTES: [usize; 3] = [250, 800, 2500];
/// A keyframe on every layer this often (besides those asked for).
const KEYFRAME_EVERY: u64 = 90;
/// Where the publisher index and frame number sit in a frame.
const TAG_AT: usize = 10;

/// An SDP on its way between the media task and the signaling.
#[derive(Debug)]
pub enum Sdp {
    Offer(String),
    Answer(String),
}

/// The signaling's end of a media task's two SDP channels.
#[derive(Debug)]
pub struct SdpLink {
    pub to_media: mpsc::UnboundedSender<Sdp>,
    pub from_media: mpsc::UnboundedReceiver<Sdp>,
}

/// The measurement window, fixed before the run starts.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub until: Instant,
}

impl Window {
    fn holds(&self, t: Instant) -> bool {
        t >= self.from && t < self.until
    }
}

/// Counters all tasks add to (read at the end).
#[derive(Debug, Default)]
pub struct Totals {
    /// RTP packets subscribers received inside the window.
    pub rtp_packets: AtomicU64,
    /// Frames publishers sent inside the window (per layer).
    pub frames_sent: AtomicU64,
    /// Keyframes publishers were asked for.
    pub keyframe_requests: AtomicU64,
}

/// What one subscriber got from one publisher inside the window.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCount {
    pub frames: u64,
}

/// A participant's part in the benchmark.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Publisher number `n` (its frames carry it).
    Publisher(u16),
    Subscriber,
}

/// The task's socket and `Rtc`, made before the signaling starts (the
/// offer names the socket's address).
pub struct Media {
    socket: UdpSocket,
    local: SocketAddr,
    rtc: Rtc,
    role: Role,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    keyframe_wanted: Vec<Option<Rid>>,
    fps: u32,
    /// Subscriber: frames per publisher index.
    streams: HashMap<u16, StreamCount>,
}

impl Media {
    /// A participant on a fresh socket on `ip`, an address of this host
    /// (binding fails for any other).
    pub async fn new(role: Role, fps: u32, ip: IpAddr) -> anyhow::Result<Media> {
        let socket = UdpSocket::bind((ip, 0))
            .await
            .with_context(|| format!("binding {ip} (an address of this host?)"))?;
        let local = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_vp8(true)
            .build(Instant::now());
        let host = Candidate::host(local, "udp").map_err(|e| anyhow!("candidate: {e}"))?;
        rtc.add_local_candidate(host);
        Ok(Media {
            socket,
            local,
            rtc,
            role,
            pending: None,
            video: None,
            keyframe_wanted: Vec::new(),
            fps,
            streams: HashMap::new(),
        })
    }

    /// The first offer: a simulcast camera (publisher) or, for a
    /// subscriber that must offer first (Switchboard), a data channel.
    pub fn offer(&mut self) -> anyhow::Result<String> {
        let mut change = self.rtc.sdp_api();
        match self.role {
            Role::Publisher(_) => {
                let mut sim = Simulcast::new();
                for r in RIDS {
                    sim.add_send_layer(SimulcastLayer::new(r));
                }
                let mid =
                    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
                self.video = Some(mid);
            }
            Role::Subscriber => {
                change.add_channel("chat".into());
            }
        }
        let (offer, pending) = change.apply().ok_or_else(|| anyhow!("nothing to offer"))?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Runs until `deadline`: datagrams, timeouts, frames and SDP. Returns
    /// a subscriber's frames per publisher.
    pub async fn run(
        mut self,
        mut sdp_in: mpsc::UnboundedReceiver<Sdp>,
        sdp_out: mpsc::UnboundedSender<Sdp>,
        totals: Arc<Totals>,
        window: Window,
        deadline: Instant,
    ) -> anyhow::Result<HashMap<u16, StreamCount>> {
        let start = Instant::now();
        let frame_interval = Duration::from_secs(1) / self.fps.max(1);
        let mut frame: u64 = 0;
        let mut next_frame = start;
        let mut buf = vec![0u8; 2048];
        let mut sdp_open = true;
        loop {
            let timeout = self.drain_output(&totals, window)?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(self.streams);
            }
            let wake = match self.role {
                Role::Publisher(_) if self.video.is_some() => timeout.min(next_frame),
                _ => timeout,
            }
            .min(deadline)
            .max(now);
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    let now = Instant::now();
                    let data = buf.get(..n).unwrap_or_default();
                    if matches!(self.role, Role::Subscriber) && window.holds(now) && is_rtp(data) {
                        totals.rtp_packets.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, data) {
                        // A packet str0m refuses is the server's problem, not ours.
                        let _ = self.rtc.handle_input(Input::Receive(now, r));
                    }
                }
                sdp = sdp_in.recv(), if sdp_open => match sdp {
                    Some(sdp) => {
                        if let Some(answer) = self.sdp(sdp)? {
                            let _ = sdp_out.send(Sdp::Answer(answer));
                        }
                    }
                    None => sdp_open = false,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if matches!(self.role, Role::Publisher(_)) && now >= next_frame && self.video.is_some() {
                        frame += 1;
                        self.send_frame(frame, now, &totals, window);
                        next_frame += frame_interval;
                        if next_frame < now {
                            next_frame = now + frame_interval;
                        }
                    }
                    self.rtc.handle_input(Input::Timeout(now)).context("rtc timeout")?;
                }
            }
        }
    }

    /// Polls the `Rtc` dry: datagrams out, events counted; its next timeout.
    fn drain_output(&mut self, totals: &Totals, window: Window) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output().context("rtc")? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // Only to this host, whatever candidates the SDP named;
                    // try_send: a full socket buffer drops, as a NIC would.
                    let ip = t.destination.ip();
                    if ip.is_loopback() || ip == self.local.ip() {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                }
                Output::Event(Event::MediaData(d)) => {
                    if window.holds(Instant::now())
                        && let Some(publisher) = frame_publisher(&d.data)
                    {
                        self.streams.entry(publisher).or_default().frames += 1;
                    }
                }
                Output::Event(Event::KeyframeRequest(r)) => {
                    totals.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    self.keyframe_wanted.push(r.rid);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// The other side's SDP; our answer when it was an offer.
    fn sdp(&mut self, sdp: Sdp) -> anyhow::Result<Option<String>> {
        match sdp {
            Sdp::Answer(s) => {
                let answer = SdpAnswer::from_sdp_string(&s).context("their answer")?;
                let pending = self.pending.take().context("an answer without an offer")?;
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .context("accepting their answer")?;
                Ok(None)
            }
            Sdp::Offer(s) => {
                let offer = SdpOffer::from_sdp_string(&s).context("their offer")?;
                let answer = self
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .context("accepting their offer")?;
                Ok(Some(answer.to_sdp_string()))
            }
        }
    }

    /// One frame on every layer (keyframes when due or asked for).
    fn send_frame(&mut self, frame: u64, now: Instant, totals: &Totals, window: Window) {
        let (Role::Publisher(index), Some(mid)) = (self.role, self.video) else {
            return;
        };
        let wanted = std::mem::take(&mut self.keyframe_wanted);
        for (layer, r) in RIDS.iter().enumerate() {
            let rid: Rid = (*r).into();
            let key = frame % KEYFRAME_EVERY == 1
                || wanted.contains(&Some(rid))
                || wanted.contains(&None);
            let bytes = FRAME_BYTES.get(layer).copied().unwrap_or(1000);
            let data = vp8_frame(key, index, frame, bytes);
            let Some(w) = self.rtc.writer(mid) else {
                return;
            };
            let Some(pt) = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .map(|p| p.pt())
            else {
                return;
            };
            let time = MediaTime::from_90khz(frame * 90_000 / u64::from(self.fps.max(1)));
            if w.rid(rid).write(pt, now, time, data).is_ok() && window.holds(now) {
                totals.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A synthetic VP8 frame (see the module comment).
fn vp8_frame(key: bool, publisher: u16, frame: u64, bytes: usize) -> Vec<u8> {
    // Frame tag: version 0, show_frame, first partition size (RFC 6386 §9.1).
    let size = (bytes as u32).min(0x7_ffff) << 5;
    let [t0, t1, t2, _] = (size | 0x10 | u32::from(!key)).to_le_bytes();
    let mut data = Vec::with_capacity(bytes.max(TAG_AT + 10));
    data.extend_from_slice(&[t0, t1, t2]);
    if key {
        data.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        data.extend_from_slice(&640u16.to_le_bytes());
        data.extend_from_slice(&360u16.to_le_bytes());
    }
    data.resize(TAG_AT, 0);
    data.extend_from_slice(&publisher.to_be_bytes());
    data.extend_from_slice(&frame.to_be_bytes());
    data.resize(bytes.max(TAG_AT + 10), 0);
    data
}

/// The publisher index a received frame carries.
fn frame_publisher(data: &[u8]) -> Option<u16> {
    let b = data.get(TAG_AT..TAG_AT + 2)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// RTP, not RTCP, STUN or DTLS (RFC 7983 §7; RTCP types 192–223, RFC 5761 §4).
fn is_rtp(data: &[u8]) -> bool {
    match (data.first(), data.get(1)) {
        (Some(b0), Some(b1)) => (128..=191).contains(b0) && !(192..=223).contains(b1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn synthetic_frames_look_like_vp8_where_an_sfu_looks() {
        let key = vp8_frame(true, 7, 42, 250);
        assert_eq!(key[0] & 1, 0, "keyframe bit clear");
        assert_eq!(&key[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(frame_publisher(&key), Some(7));
        let delta = vp8_frame(false, 7, 43, 250);
        assert_eq!(delta[0] & 1, 1);
        assert_eq!(delta.len(), 250);
        assert!(is_rtp(&[0x80, 96]));
        assert!(!is_rtp(&[0x80, 200]), "RTCP SR");
        assert!(!is_rtp(&[0x00, 0x01]), "STUN");
        assert!(!is_rtp(&[22, 254]), "DTLS");
    }
}
