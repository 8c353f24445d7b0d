//! Switchboard's selective forwarding unit for group calls, sans-IO.
//!
//! Each participant has one str0m `Rtc` in ICE-lite mode (RFC 8445 §2.5:
//! the SFU has a public address and only answers checks) on the SFU's UDP
//! address: one bundle (RFC 9143) for what it publishes and what it is
//! sent, DTLS-SRTP (RFC 5764) for keys. What a participant publishes is
//! forwarded, frame by frame, to every other participant of its room; of a
//! simulcast camera (RFC 8853) each subscriber gets the one layer that fits
//! its share of its bandwidth estimate ([`budget`]) and its tile
//! ([`layer`]). NACK/RTX, RTCP reports
//! and congestion control stay per leg, inside each `Rtc`.
//!
//! Datagrams reach their participant through a map from remote address.
//! An address not seen yet can only start with an ICE check (RFC 8445
//! §7.2.2), whose USERNAME names the participant's ufrag: that is the
//! second map. Nothing is scanned per packet.
//!
//! Inputs: [`Sfu::join`], [`Sfu::handle_offer`], [`Sfu::handle_answer`],
//! [`Sfu::set_view`], [`Sfu::leave`], [`Sfu::handle_datagram`],
//! [`Sfu::handle_timeout`]. Outputs: [`Sfu::poll_transmit`],
//! [`Sfu::poll_event`], [`Sfu::poll_timeout`]. The driver owns the socket
//! and the clock.

mod budget;
mod forward;
pub mod layer;
mod participant;
mod publish_cap;
mod speaker;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event as RtcEvent, IceConnectionState, Input, Output};

use participant::{OutState, Participant, TrackIn, TrackOut};

/// A participant, as the signaling side names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// What the SFU is set up with.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Most participants in one room (`--sfu-room-size`).
    pub room_size: usize,
    /// Estimate each subscriber's bandwidth (str0m's BWE on TWCC) and pick
    /// layers by it as well as by tile width. str0m then paces what is
    /// forwarded, one packet per timeout, so the driver must run due
    /// timeouts back to back (one per 1 ms timer tick stalled forwarded
    /// video behind audio). On in the server; off, only tile widths pick
    /// the layer.
    pub bandwidth_estimation: bool,
    /// Most bits per second a participant may publish per video track, all
    /// its simulcast layers together (`--sfu-max-publish-bps`; 0: no cap):
    /// asked in the SDP answer, enforced by not forwarding what exceeds it
    /// ([`publish_cap`]).
    pub max_publish_bps: u64,
}

/// The default cap per published video track: a camera's three layers
/// (about 2.2 Mbit/s in this app) or a screen at full resolution.
pub const DEFAULT_MAX_PUBLISH_BPS: u64 = 4_000_000;

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            room_size: 50,
            bandwidth_estimation: true,
            max_publish_bps: DEFAULT_MAX_PUBLISH_BPS,
        }
    }
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    #[error("the room is full")]
    RoomFull,
    #[error("no such participant")]
    UnknownParticipant,
    #[error("the participant has already joined")]
    AlreadyJoined,
    #[error("bad SDP: {0}")]
    Sdp(String),
    #[error("WebRTC: {0}")]
    Rtc(String),
}

/// What the SFU tells the signaling side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send this SDP answer to the participant.
    Answer { to: ParticipantId, sdp: String },
    /// Send this SDP offer to the participant (tracks added or stopped).
    Offer { to: ParticipantId, sdp: String },
    /// ICE and DTLS are up: media flows.
    Connected(ParticipantId),
    /// The participant's transport ended (ICE timed out, DTLS closed); it
    /// has been removed.
    Gone(ParticipantId),
    /// `speaker` is now the one speaking in `to`'s room (by RFC 6464 audio
    /// levels, [`speaker`]); every member of the room gets one.
    Speaker {
        to: ParticipantId,
        speaker: ParticipantId,
    },
    /// Tell the participant, as it joins, the most it may publish per
    /// video track ([`SfuConfig::max_publish_bps`]): browsers do not apply
    /// `b=TIAS` to simulcast layers, so the app sets its encodings by it.
    PublishCap { to: ParticipantId, bps: u64 },
}

/// A datagram to send from one of the SFU's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Plain counters for the driver to export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub participants: u64,
    pub rooms: u64,
    /// Frames received from publishers.
    pub frames_in: u64,
    /// Frames written to subscribers.
    pub frames_out: u64,
    /// Keyframes asked of publishers (PLI).
    pub keyframe_requests: u64,
    /// Frames not forwarded because their publisher sent more than
    /// [`SfuConfig::max_publish_bps`].
    pub frames_over_cap: u64,
    /// Datagrams no participant claimed.
    pub unrouted: u64,
    /// Datagrams a participant's `Rtc` rejected (dropped, nothing else).
    pub rejected: u64,
}

/// What one participant's outputs mean for the others.
#[allow(clippy::large_enum_variant)] // Short-lived, one per output: boxing a frame would allocate per frame.
enum Propagated {
    TrackAdded(Mid, MediaKind, Vec<str0m::media::Rid>),
    TrackRemoved(Mid),
    Media(MediaData),
    KeyframeWanted(Mid),
}

/// The SFU: rooms of participants.
pub struct Sfu {
    config: SfuConfig,
    participants: HashMap<ParticipantId, Participant>,
    rooms: HashMap<String, Vec<ParticipantId>>,
    routes: HashMap<SocketAddr, ParticipantId>,
    by_ufrag: HashMap<String, ParticipantId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    speakers: speaker::Speakers,
    stats: SfuStats,
}

impl Sfu {
    pub fn new(config: SfuConfig) -> Self {
        Sfu {
            config,
            participants: HashMap::new(),
            rooms: HashMap::new(),
            routes: HashMap::new(),
            by_ufrag: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            speakers: speaker::Speakers::default(),
            stats: SfuStats::default(),
        }
    }

    // ---- Inputs ----

    /// `id` joins `room`: it is sent what the room's others publish once
    /// its first offer is answered. `label` names it to the others (the
    /// MediaStream id of the tracks it publishes, as they receive them);
    /// `candidates` are the SFU addresses it is told to send media to (its
    /// ICE host candidates).
    pub fn join(
        &mut self,
        now: Instant,
        id: ParticipantId,
        room: &str,
        label: &str,
        candidates: &[SocketAddr],
    ) -> Result<(), SfuError> {
        if self.participants.contains_key(&id) {
            return Err(SfuError::AlreadyJoined);
        }
        let members = self.rooms.get(room).map_or(0, Vec::len);
        if members >= self.config.room_size {
            return Err(SfuError::RoomFull);
        }
        let mut p = Participant::new(
            now,
            room,
            label,
            candidates,
            self.config.bandwidth_estimation,
        )?;
        for other in self.rooms.get(room).into_iter().flatten() {
            let Some(o) = self.participants.get(other) else {
                continue;
            };
            for t in &o.tracks_in {
                p.tracks_out
                    .push(out_track(*other, &t.stream_label, t.mid, t.kind));
            }
        }
        self.by_ufrag.insert(p.ufrag.clone(), id);
        self.participants.insert(id, p);
        self.rooms.entry(room.to_owned()).or_default().push(id);
        if self.config.max_publish_bps > 0 {
            self.events.push_back(Event::PublishCap {
                to: id,
                bps: self.config.max_publish_bps,
            });
        }
        Ok(())
    }

    /// `id` left (signaling): its transport ends, and what it published is
    /// stopped at the others.
    pub fn leave(&mut self, id: ParticipantId) {
        self.remove(id);
    }

    /// The participant's SDP offer; the answer comes out as
    /// [`Event::Answer`].
    pub fn handle_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::UnknownParticipant)?;
        let before = p.ufrag.clone();
        let answer = p.accept_offer(sdp)?;
        // An ICE restart offer gives the participant new local credentials:
        // its checks come with the new ufrag from now on.
        let after = p.rtc.direct_api().local_ice_credentials().ufrag.clone();
        if after != before {
            p.ufrag.clone_from(&after);
            self.by_ufrag.remove(&before);
            self.by_ufrag.insert(after, id);
        }
        self.events.push_back(Event::Answer {
            to: id,
            sdp: publish_cap::with_cap(&answer, self.config.max_publish_bps),
        });
        self.drive(now, id);
        self.offer(id);
        Ok(())
    }

    /// The participant's answer to an [`Event::Offer`].
    pub fn handle_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::UnknownParticipant)?;
        p.accept_answer(sdp)?;
        self.drive(now, id);
        // Tracks that arrived while the offer was out.
        self.offer(id);
        Ok(())
    }

    /// The app shows `publisher`'s video to `id` in a tile `width` CSS px
    /// wide: no layer larger than that is sent.
    pub fn set_view(&mut self, id: ParticipantId, publisher: ParticipantId, width: u32) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.views.retain(|(x, _)| *x != publisher);
            p.views.push((publisher, width));
        }
    }

    /// A datagram from `source` to the SFU's `destination`. Returns whether
    /// a participant took it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        let Some(id) = self.route(source, bytes) else {
            self.stats.unrouted += 1;
            return false;
        };
        let Some(p) = self.participants.get_mut(&id) else {
            self.stats.unrouted += 1;
            return false;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, bytes) else {
            self.stats.rejected += 1;
            return false;
        };
        let input = Input::Receive(now, receive);
        if !p.rtc.accepts(&input) {
            self.stats.unrouted += 1;
            return false;
        }
        if p.rtc.handle_input(input).is_err() {
            // Bad RTP/RTCP/DTLS from this participant: that packet is
            // lost, nobody else's.
            self.stats.rejected += 1;
        }
        self.routes.insert(source, id);
        self.drive(now, id);
        true
    }

    /// Time passed: every participant due is driven.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.next_timeout.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.participants.get_mut(&id) {
                p.update_desired_bitrate();
                // An error here is str0m ending the Rtc: drive() removes it.
                let _ = p.rtc.handle_input(Input::Timeout(now));
            }
            self.drive(now, id);
        }
        let Sfu {
            speakers,
            rooms,
            events,
            ..
        } = self;
        speakers.handle_timeout(now, |room, speaker| {
            for to in rooms.get(room).into_iter().flatten() {
                events.push_back(Event::Speaker { to: *to, speaker });
            }
        });
    }

    // ---- Outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Sfu::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.participants
            .values()
            .filter_map(|p| p.next_timeout)
            .chain(self.speakers.poll_timeout())
            .min()
    }

    pub fn stats(&self) -> SfuStats {
        SfuStats {
            participants: self.participants.len() as u64,
            rooms: self.rooms.len() as u64,
            ..self.stats
        }
    }

    /// The SFU side's ICE ufrag for `id` (it is in the SDP answer; a
    /// participant's ICE checks name it first in USERNAME).
    pub fn ice_ufrag(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.ufrag.as_str())
    }

    /// The room `id` is in.
    pub fn room_of(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.room.as_str())
    }

    // ---- Inside ----

    /// Which participant a datagram from `source` is for. An ICE check
    /// names its session in USERNAME, and that wins over the address: a
    /// port a participant's browser gave up (an ICE restart gathers anew)
    /// may come back as another participant's. The rest (DTLS, RTP, RTCP)
    /// follows the address a check of its participant came from.
    fn route(&self, source: SocketAddr, bytes: &[u8]) -> Option<ParticipantId> {
        let named = check_username(bytes)
            .and_then(|u| u.split_once(':'))
            .and_then(|(ours, _theirs)| self.by_ufrag.get(ours));
        named.or_else(|| self.routes.get(&source)).copied()
    }

    /// Polls `id`'s `Rtc` until it waits, then acts on what came out:
    /// datagrams queued, new tracks offered to the room, frames forwarded,
    /// keyframes asked. Subscribers written to are driven in turn.
    fn drive(&mut self, now: Instant, id: ParticipantId) {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            let mut propagated = Vec::new();
            let alive = self.poll_outputs(id, &mut propagated);
            if !alive {
                self.remove(id);
                self.events.push_back(Event::Gone(id));
                continue;
            }
            for item in propagated {
                match item {
                    Propagated::TrackAdded(mid, kind, rids) => {
                        self.track_added(id, mid, kind, rids)
                    }
                    Propagated::TrackRemoved(mid) => self.track_removed(id, mid),
                    Propagated::Media(data) => self.forward(now, id, &data, &mut todo),
                    Propagated::KeyframeWanted(mid) => {
                        self.keyframe_wanted(now, id, mid, &mut todo)
                    }
                }
            }
        }
    }

    /// Drains `id`'s outputs; false when its `Rtc` has ended.
    fn poll_outputs(&mut self, id: ParticipantId, propagated: &mut Vec<Propagated>) -> bool {
        let Some(p) = self.participants.get_mut(&id) else {
            return true;
        };
        loop {
            if !p.rtc.is_alive() {
                return false;
            }
            match p.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    p.next_timeout = Some(t);
                    return true;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => match e {
                    RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        p.rtc.disconnect();
                    }
                    RtcEvent::Connected => self.events.push_back(Event::Connected(id)),
                    RtcEvent::MediaAdded(m) if m.direction.is_receiving() => {
                        let rids = m
                            .simulcast
                            .map(|s| s.recv.iter().map(|l| l.rid).collect())
                            .unwrap_or_default();
                        propagated.push(Propagated::TrackAdded(m.mid, m.kind, rids));
                    }
                    // A publisher's transceiver turned off (a screen share
                    // ended) or on again.
                    RtcEvent::MediaChanged(m) => {
                        if m.direction.is_receiving() {
                            if let Some(media) = p.rtc.media(m.mid) {
                                let rids = match media.rids_rx() {
                                    str0m::media::Rids::Specific(r) => r.clone(),
                                    _ => Vec::new(),
                                };
                                propagated.push(Propagated::TrackAdded(m.mid, media.kind(), rids));
                            }
                        } else {
                            propagated.push(Propagated::TrackRemoved(m.mid));
                        }
                    }
                    RtcEvent::MediaData(data) => {
                        self.stats.frames_in += 1;
                        propagated.push(Propagated::Media(data));
                    }
                    RtcEvent::KeyframeRequest(req) => {
                        propagated.push(Propagated::KeyframeWanted(req.mid));
                    }
                    RtcEvent::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc {
                        estimate, ..
                    }) => {
                        p.estimate_bps = estimate.as_u64();
                    }
                    _ => {}
                },
                Err(_) => return false,
            }
        }
    }

    /// `from` publishes a new track: everyone else in its room is offered it.
    fn track_added(
        &mut self,
        from: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        rids: Vec<str0m::media::Rid>,
    ) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        if p.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        let stream = p
            .rtc
            .media(mid)
            .map(|m| m.stream_id().to_owned())
            .unwrap_or_default();
        let label = p.stream_label(&stream);
        p.tracks_in.push(TrackIn {
            mid,
            kind,
            rids,
            stream_label: label.clone(),
            rates: layer::LayerRates::default(),
            last_keyframe_request: None,
        });
        let room = p.room.clone();
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        for other in members.into_iter().filter(|o| *o != from) {
            if let Some(o) = self.participants.get_mut(&other) {
                o.tracks_out.push(out_track(from, &label, mid, kind));
            }
            self.offer(other);
        }
    }

    /// `from` stopped publishing its track `mid` (its transceiver went
    /// inactive): the others' copies are stopped.
    fn track_removed(&mut self, from: ParticipantId, mid: Mid) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let before = p.tracks_in.len();
        p.tracks_in.retain(|t| t.mid != mid);
        if p.tracks_in.len() == before {
            return;
        }
        let members = self.rooms.get(&p.room).cloned().unwrap_or_default();
        for other in members.into_iter().filter(|o| *o != from) {
            if let Some(o) = self.participants.get_mut(&other) {
                o.track_stopped(from, mid);
            }
            self.offer(other);
        }
    }

    /// Sends `id` an offer if it has tracks to add or stop.
    fn offer(&mut self, id: ParticipantId) {
        if let Some(p) = self.participants.get_mut(&id)
            && let Some(sdp) = p.offer_if_needed()
        {
            // The cap again: a browser keeps to the latest remote
            // description's, and this one replaces the answer's.
            let sdp = publish_cap::with_cap(&sdp, self.config.max_publish_bps);
            self.events.push_back(Event::Offer { to: id, sdp });
        }
    }

    fn remove(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        self.by_ufrag.remove(&p.ufrag);
        self.routes.retain(|_, v| *v != id);
        self.speakers.leave(&p.room, id);
        let mut others = Vec::new();
        if let Some(members) = self.rooms.get_mut(&p.room) {
            members.retain(|m| *m != id);
            others.clone_from(members);
            if members.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        for other in others {
            if let Some(o) = self.participants.get_mut(&other) {
                o.publisher_left(id);
            }
            self.offer(other);
        }
    }
}

/// The USERNAME of a STUN message (`<ours>:<theirs>` in an ICE check).
fn check_username(bytes: &[u8]) -> Option<&str> {
    if !stun::is_stun(*bytes.first()?) {
        return None;
    }
    let msg = stun::Message::decode(bytes).ok()?;
    let username = msg.raw_attribute(stun::AttributeType::USERNAME)?;
    std::str::from_utf8(username.value).ok()
}

/// What `from`'s track `source_mid` becomes at a subscriber: a track in the
/// stream `stream_label` ([`Participant::stream_label`]).
fn out_track(
    from: ParticipantId,
    stream_label: &str,
    source_mid: Mid,
    kind: MediaKind,
) -> TrackOut {
    TrackOut {
        from,
        stream_label: stream_label.to_owned(),
        source_mid,
        kind,
        state: OutState::ToOpen,
        selector: layer::Selector::default(),
    }
}
