//! One WebRTC connection to one other member of the room: a str0m `Rtc`
//! with the app's negotiated data channels, offer/answer in the app's
//! perfect-negotiation roles, trickled candidates, and recovery by ICE
//! restart (RFC 8445 §9) — str0m has no "failed" state, so the link keeps
//! its own connect timeout and disconnect grace.
//!
//! A native peer takes no media: audio and video sections of a browser's
//! offer are answered `inactive` (RFC 8829 §5.3.1), so browsers send none.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::net::Transmit;
use str0m::{Candidate, Event, IceConnectionState, Output, Rtc, RtcConfig};

use crate::Channel;

/// A connection not up this long after it started (or restarted) is
/// restarted, as the app does.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A `disconnected` connection that has not come back by itself this long
/// is restarted.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(4);
/// Restarts without reaching `connected` before the link gives up.
pub const MAX_RESTARTS: u32 = 4;

/// The SDP of an `offer`/`answer` message's `data`
/// (`RTCSessionDescription.toJSON()`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Description {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) sdp: String,
}

/// What a link asks of the session.
#[derive(Debug)]
pub(crate) enum LinkOutput {
    Transmit(Transmit),
    Signal(SignalOut),
    Event(LinkEvent),
}

/// A signaling message to this link's peer.
#[derive(Debug)]
pub(crate) enum SignalOut {
    Offer(String),
    Answer(String),
    Candidate(Candidate),
}

/// What happened on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// ICE and DTLS are up.
    Connected,
    /// Connectivity was lost; it may come back.
    Disconnected,
    /// An ICE restart began (1-based attempt).
    Restarting(u32),
    /// The link gave up after [`MAX_RESTARTS`].
    Failed,
    /// A data channel opened.
    ChannelOpen(Channel),
    /// A data channel closed.
    ChannelClosed(Channel),
    /// A message on a data channel.
    Data {
        /// Which channel.
        channel: Channel,
        /// Sent as binary (else text).
        binary: bool,
        /// The message.
        data: Vec<u8>,
    },
    /// A channel's buffered amount fell below its threshold.
    BufferedLow(Channel),
}

/// One peer connection.
pub(crate) struct Link {
    rtc: Rtc,
    polite: bool,
    pending: Option<SdpPendingOffer>,
    channels: Vec<(Channel, ChannelId)>,
    wanted: Vec<Channel>,
    unreliable_pipe: bool,
    mid: Option<String>,
    connected: bool,
    ever_connected: bool,
    deadline: Option<Instant>,
    restarts: u32,
    failed: bool,
    next: Instant,
}

impl Link {
    /// A link with our candidates so far. The newcomer (`offerer`) makes
    /// the first offer and is the polite side of a collision, as in the app.
    pub(crate) fn new(
        now: Instant,
        offerer: bool,
        wanted: &[Channel],
        unreliable_pipe: bool,
        candidates: &[Candidate],
        out: &mut Vec<LinkOutput>,
    ) -> Self {
        let rtc = RtcConfig::new()
            // Keep the data channels' SCTP the only thing running.
            .set_stats_interval(None)
            .build(now);
        let mut link = Link {
            rtc,
            polite: offerer,
            pending: None,
            channels: Vec::new(),
            wanted: wanted.to_vec(),
            unreliable_pipe,
            mid: None,
            connected: false,
            ever_connected: false,
            deadline: Some(now + CONNECT_TIMEOUT),
            restarts: 0,
            failed: false,
            next: now,
        };
        for c in candidates {
            link.rtc.add_local_candidate(c.clone());
        }
        if offerer {
            let mut api = link.rtc.sdp_api();
            let mut ids = Vec::new();
            for ch in &link.wanted {
                ids.push((
                    *ch,
                    api.add_channel_with_config(config(*ch, unreliable_pipe)),
                ));
            }
            if let Some((offer, pending)) = api.apply() {
                link.channels = ids;
                link.pending = Some(pending);
                link.offer_out(offer, out);
            }
        }
        link.drain(now, out);
        link
    }

    fn offer_out(&mut self, offer: SdpOffer, out: &mut Vec<LinkOutput>) {
        let sdp = offer.to_sdp_string();
        self.mid = first_mid(&sdp);
        let json = serde_json::to_string(&Description {
            kind: "offer".into(),
            sdp,
        })
        .unwrap_or_default();
        out.push(LinkOutput::Signal(SignalOut::Offer(json)));
    }

    /// The media section our candidates are signaled in.
    pub(crate) fn mid(&self) -> Option<&str> {
        self.mid.as_deref()
    }

    /// Our current ICE ufrag.
    pub(crate) fn ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// Whether ICE and DTLS are up.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether `input` belongs to this link.
    pub(crate) fn accepts(&self, input: &str0m::Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    /// A new local candidate, to use and to signal.
    pub(crate) fn add_local(&mut self, now: Instant, c: Candidate, out: &mut Vec<LinkOutput>) {
        if let Some(added) = self.rtc.add_local_candidate(c) {
            out.push(LinkOutput::Signal(SignalOut::Candidate(added.clone())));
        }
        self.drain(now, out);
    }

    /// A candidate trickled by the peer.
    pub(crate) fn add_remote(&mut self, now: Instant, c: Candidate, out: &mut Vec<LinkOutput>) {
        self.rtc.add_remote_candidate(c);
        self.drain(now, out);
    }

    /// An `offer` or `answer` from the peer. Errors are the peer's fault
    /// and leave the link as it was.
    pub(crate) fn handle_description(
        &mut self,
        now: Instant,
        d: Description,
        out: &mut Vec<LinkOutput>,
    ) -> Result<(), String> {
        let r = match d.kind.as_str() {
            "offer" => self.handle_offer(&d.sdp, out),
            "answer" => self.handle_answer(&d.sdp),
            other => Err(format!("unknown description type {other:?}")),
        };
        self.drain(now, out);
        r
    }

    fn handle_offer(&mut self, sdp: &str, out: &mut Vec<LinkOutput>) -> Result<(), String> {
        if self.pending.is_some() && !self.polite {
            // A collision, and we are the impolite side: the peer rolls back.
            return Ok(());
        }
        let offer = SdpOffer::from_sdp_string(&without_media(sdp)).map_err(|e| e.to_string())?;
        self.pending = None;
        let answer: SdpAnswer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        // The app's channels are negotiated out of band: open ours on the
        // same ids once the remote side has an SCTP association.
        let wanted = self.wanted.clone();
        for ch in wanted {
            if !self.channels.iter().any(|(c, _)| *c == ch) {
                let id = self
                    .rtc
                    .direct_api()
                    .create_data_channel(config(ch, self.unreliable_pipe));
                self.channels.push((ch, id));
            }
        }
        let sdp = answer.to_sdp_string();
        self.mid = first_mid(&sdp);
        let json = serde_json::to_string(&Description {
            kind: "answer".into(),
            sdp,
        })
        .unwrap_or_default();
        out.push(LinkOutput::Signal(SignalOut::Answer(json)));
        Ok(())
    }

    fn handle_answer(&mut self, sdp: &str) -> Result<(), String> {
        let Some(pending) = self.pending.take() else {
            return Err("an answer to no offer".into());
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())
    }

    /// A packet for this link.
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        input: str0m::Input<'_>,
        out: &mut Vec<LinkOutput>,
    ) {
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("packet refused: {e}");
        }
        self.drain(now, out);
    }

    /// Writes a message on `channel`; `Ok(false)` when the channel is not
    /// open or its buffer is full (wait for [`LinkEvent::BufferedLow`]).
    pub(crate) fn write(
        &mut self,
        now: Instant,
        channel: Channel,
        binary: bool,
        data: &[u8],
        out: &mut Vec<LinkOutput>,
    ) -> bool {
        let Some(id) = self.channel_id(channel) else {
            return false;
        };
        let ok = match self.rtc.channel(id) {
            Some(mut ch) => ch.write(binary, data).unwrap_or(false),
            None => false,
        };
        self.drain(now, out);
        ok
    }

    /// Bytes queued on `channel` and not yet sent.
    pub(crate) fn buffered(&mut self, channel: Channel) -> usize {
        let Some(id) = self.channel_id(channel) else {
            return 0;
        };
        self.rtc
            .channel(id)
            .map(|mut c| c.buffered_amount())
            .unwrap_or(0)
    }

    /// Sets the level below which [`LinkEvent::BufferedLow`] fires.
    pub(crate) fn set_low_threshold(&mut self, channel: Channel, bytes: usize) {
        if let Some(id) = self.channel_id(channel) {
            if let Some(mut c) = self.rtc.channel(id) {
                c.set_buffered_amount_low_threshold(bytes);
            }
        }
    }

    fn channel_id(&self, channel: Channel) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, id)| *id)
    }

    fn channel_of(&self, id: ChannelId) -> Option<Channel> {
        self.channels
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(c, _)| *c)
    }

    /// When [`Link::handle_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        match self.deadline {
            Some(d) => d.min(self.next),
            None => self.next,
        }
    }

    /// Timers: str0m's own, the connect timeout and the disconnect grace.
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<LinkOutput>) {
        if self.failed {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.deadline = None;
            self.restart(now, out);
        }
        if now >= self.next {
            if let Err(e) = self.rtc.handle_input(str0m::Input::Timeout(now)) {
                tracing::debug!("timeout: {e}");
            }
        }
        self.drain(now, out);
    }

    /// An ICE restart with a new offer (bounded; resets when connected).
    pub(crate) fn restart(&mut self, now: Instant, out: &mut Vec<LinkOutput>) {
        if self.failed || self.pending.is_some() && self.restarts > 0 {
            // An offer of ours is still unanswered: give it its time.
            self.deadline = Some(now + CONNECT_TIMEOUT);
            return;
        }
        if self.restarts >= MAX_RESTARTS {
            self.failed = true;
            self.deadline = None;
            out.push(LinkOutput::Event(LinkEvent::Failed));
            return;
        }
        self.restarts += 1;
        out.push(LinkOutput::Event(LinkEvent::Restarting(self.restarts)));
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        if let Some((offer, pending)) = api.apply() {
            self.pending = Some(pending);
            self.offer_out(offer, out);
        }
        self.deadline = Some(now + CONNECT_TIMEOUT);
        self.drain(now, out);
    }

    /// Drains str0m until it asks to be woken (its single-mutation rule).
    fn drain(&mut self, now: Instant, out: &mut Vec<LinkOutput>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t.max(now);
                    return;
                }
                Ok(Output::Transmit(t)) => out.push(LinkOutput::Transmit(t)),
                Ok(Output::Event(e)) => self.on_event(now, e, out),
                Err(e) => {
                    tracing::debug!("link ended: {e}");
                    self.failed = true;
                    self.next = now + Duration::from_secs(3600);
                    out.push(LinkOutput::Event(LinkEvent::Failed));
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event, out: &mut Vec<LinkOutput>) {
        let ev = match e {
            Event::Connected => {
                self.connected = true;
                self.ever_connected = true;
                self.deadline = None;
                self.restarts = 0;
                LinkEvent::Connected
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if !self.connected {
                    return;
                }
                self.connected = false;
                self.deadline = Some(now + DISCONNECT_GRACE);
                LinkEvent::Disconnected
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                if self.connected || !self.ever_connected {
                    return;
                }
                self.connected = true;
                self.deadline = None;
                self.restarts = 0;
                LinkEvent::Connected
            }
            Event::ChannelOpen(id, _) => match self.channel_of(id) {
                Some(c) => LinkEvent::ChannelOpen(c),
                None => return,
            },
            Event::ChannelClose(id) => match self.channel_of(id) {
                Some(c) => LinkEvent::ChannelClosed(c),
                None => return,
            },
            Event::ChannelData(d) => match self.channel_of(d.id) {
                Some(channel) => LinkEvent::Data {
                    channel,
                    binary: d.binary,
                    data: d.data,
                },
                None => return,
            },
            Event::ChannelBufferedAmountLow(id) => match self.channel_of(id) {
                Some(c) => LinkEvent::BufferedLow(c),
                None => return,
            },
            _ => return,
        };
        out.push(LinkOutput::Event(ev));
    }
}

/// The app's channel settings (docs/protocol.md, "Data channels").
fn config(ch: Channel, unreliable_pipe: bool) -> ChannelConfig {
    let (ordered, reliability) = match ch {
        Channel::Pipe if unreliable_pipe => (false, Reliability::MaxRetransmits { retransmits: 0 }),
        _ => (true, Reliability::Reliable),
    };
    ChannelConfig {
        label: ch.label().into(),
        ordered,
        reliability,
        negotiated: Some(ch.id()),
        protocol: String::new(),
    }
}

/// The first `a=mid:` of an SDP.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

/// The offer with its audio and video sections made `inactive`, so that
/// the answer is `inactive` too and the browser sends no media.
fn without_media(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut in_media = false;
    for line in sdp.split_inclusive('\n') {
        let bare = line.trim_end();
        if let Some(m) = bare.strip_prefix("m=") {
            in_media = m.starts_with("audio") || m.starts_with("video");
        }
        if in_media && matches!(bare, "a=sendrecv" | "a=sendonly" | "a=recvonly") {
            out.push_str("a=inactive\r\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_sections_become_inactive_data_stays() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sendrecv\r\n";
        let out = without_media(sdp);
        assert_eq!(out.matches("a=inactive").count(), 2);
        assert!(out.ends_with("a=mid:2\r\na=sendrecv\r\n"), "{out}");
        assert_eq!(first_mid(&out).as_deref(), Some("0"));
    }
}
