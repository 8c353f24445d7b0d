//! One participant of an SFU room: its str0m `Rtc` (ICE-lite on the SFU's
//! address, one bundle for everything it publishes and receives), the
//! tracks it publishes, the tracks it is sent, and the SDP exchange that
//! adds them (RFC 8829 JSEP: the participant offers what it publishes, the
//! SFU offers what it forwards; on a collision the participant's offer
//! wins and the SFU offers again after).

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::{Candidate, Rtc, RtcConfig};

use crate::budget::Spend;
use crate::layer::{LayerRates, Selector};
use crate::{ParticipantId, SfuError};

/// Initial bandwidth estimate for a new subscriber (str0m's BWE corrects it
/// within seconds): enough for a medium layer at first.
const INITIAL_ESTIMATE_BPS: u64 = 600_000;

/// What the SFU would like to send per forwarded video track (a camera's
/// top layer, with room) and per participant besides (audio, RTCP):
/// str0m's estimator probes up towards their sum, so the estimate climbs
/// back after a dip, and never believes in more than that.
const DESIRED_PER_VIDEO_BPS: u64 = 1_800_000;
const DESIRED_BASE_BPS: u64 = 300_000;

/// A track a participant publishes.
#[derive(Debug)]
pub(crate) struct TrackIn {
    pub(crate) mid: Mid,
    pub(crate) kind: MediaKind,
    /// Simulcast layers, lowest first (empty: one plain stream).
    pub(crate) rids: Vec<Rid>,
    /// The stream id subscribers see it in ([`Participant::stream_label`]).
    pub(crate) stream_label: String,
    pub(crate) rates: LayerRates,
    /// When a keyframe was last asked of the publisher (at most one a
    /// second per track: PLI storms cost the publisher's uplink).
    pub(crate) last_keyframe_request: Option<Instant>,
}

impl TrackIn {
    /// The layer index of `rid` (0 for a plain stream).
    pub(crate) fn layer_of(&self, rid: Option<Rid>) -> Option<usize> {
        match rid {
            None => Some(0),
            Some(r) => self.rids.iter().position(|x| *x == r),
        }
    }

    pub(crate) fn layers(&self) -> usize {
        self.rids.len().max(1)
    }
}

/// Where a forwarded track is in its negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// To be added at the next offer.
    ToOpen,
    /// In an offer awaiting its answer, under this mid.
    Negotiating(Mid),
    /// Negotiated: frames go out under this mid.
    Open(Mid),
    /// Its publisher left: to be stopped at the next offer.
    ToStop(Mid),
    /// Stopped in an offer awaiting its answer; dropped then.
    Stopping(Mid),
}

/// A track forwarded to this participant.
#[derive(Debug)]
pub(crate) struct TrackOut {
    pub(crate) from: ParticipantId,
    /// The stream id the subscriber sees ([`Participant::stream_label`]).
    pub(crate) stream_label: String,
    pub(crate) source_mid: Mid,
    pub(crate) kind: MediaKind,
    pub(crate) state: OutState,
    pub(crate) selector: Selector,
}

impl TrackOut {
    pub(crate) fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Open(m) => Some(m),
            _ => None,
        }
    }
}

/// One participant.
pub(crate) struct Participant {
    pub(crate) rtc: Rtc,
    pub(crate) room: String,
    /// What the others see as this participant's stream id.
    pub(crate) label: String,
    /// The SFU side's ICE ufrag, which STUN checks name first in USERNAME.
    pub(crate) ufrag: String,
    pub(crate) tracks_in: Vec<TrackIn>,
    /// The stream ids (msid, RFC 8830) its tracks came in, in order of
    /// arrival: the first is its camera and microphone, any other (a
    /// screen) is forwarded as a stream of its own.
    streams_in: Vec<String>,
    pub(crate) tracks_out: Vec<TrackOut>,
    /// The SFU's offer awaiting the participant's answer.
    pending: Option<SdpPendingOffer>,
    /// Whether the participant's first offer has been answered (the SFU
    /// offers nothing before: the transport does not exist yet).
    pub(crate) started: bool,
    /// The egress bandwidth estimate (str0m's BWE), bits/s.
    pub(crate) estimate_bps: u64,
    /// What the videos it is sent use, summed now and then.
    pub(crate) spend: Spend,
    /// Tile widths the app reported, per publisher it shows.
    pub(crate) views: Vec<(ParticipantId, u32)>,
    /// When str0m wants to be called next.
    pub(crate) next_timeout: Option<Instant>,
    /// The number of forwarded video tracks the desired bitrate was last
    /// set for.
    desired_for: Option<usize>,
}

impl Participant {
    /// A participant whose media goes to and from `local` (the SFU's UDP
    /// address, the one host candidate).
    pub(crate) fn new(
        now: Instant,
        room: &str,
        label: &str,
        local: &[std::net::SocketAddr],
        bandwidth_estimation: bool,
    ) -> Result<Self, SfuError> {
        let mut config = RtcConfig::new().set_ice_lite(true);
        if bandwidth_estimation {
            config = config.enable_bwe(Some(str0m::bwe::Bitrate::bps(INITIAL_ESTIMATE_BPS)));
        }
        let mut rtc = config.build(now);
        for addr in local {
            let c = Candidate::host(*addr, "udp").map_err(|e| SfuError::Rtc(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag.clone();
        Ok(Participant {
            rtc,
            room: room.to_owned(),
            label: label.to_owned(),
            ufrag,
            tracks_in: Vec::new(),
            streams_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            started: false,
            // Without an estimator, only tile widths limit the layer.
            estimate_bps: if bandwidth_estimation {
                INITIAL_ESTIMATE_BPS
            } else {
                u64::MAX
            },
            spend: Spend::default(),
            views: Vec::new(),
            next_timeout: Some(now),
            // Without an estimator there is nothing to tell.
            desired_for: (!bandwidth_estimation).then_some(usize::MAX),
        })
    }

    /// The participant's offer: answered at once. An SFU offer still
    /// waiting is dropped (the participant's wins) and made again later.
    pub(crate) fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        if self.pending.take().is_some() {
            for t in &mut self.tracks_out {
                t.state = match t.state {
                    OutState::Negotiating(_) => OutState::ToOpen,
                    OutState::Stopping(m) => OutState::ToStop(m),
                    s => s,
                };
            }
        }
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        self.started = true;
        Ok(answer.to_sdp_string())
    }

    /// The participant's answer to the SFU's offer.
    pub(crate) fn accept_answer(&mut self, sdp: &str) -> Result<(), SfuError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let Some(pending) = self.pending.take() else {
            return Err(SfuError::Sdp("an answer without an offer".into()));
        };
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(m) = t.state {
                t.state = OutState::Open(m);
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, OutState::Stopping(_)));
        Ok(())
    }

    /// An offer adding the tracks still to open, if there are any and no
    /// other offer is out.
    pub(crate) fn offer_if_needed(&mut self) -> Option<String> {
        if !self.started || self.pending.is_some() {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for t in &mut self.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    // The publisher's label as stream id: the app groups a
                    // person's camera and microphone into one tile by it
                    // (and shows a second stream, a screen, in another).
                    let stream = Some(t.stream_label.clone());
                    let mid = change.add_media(t.kind, Direction::SendOnly, stream, None, None);
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    t.state = OutState::Stopping(mid);
                }
                _ => {}
            }
        }
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    /// Asks this publisher for a keyframe of `mid`'s layer `rid`, unless one
    /// was asked within the last second.
    pub(crate) fn request_keyframe(&mut self, now: Instant, mid: Mid, rid: Option<Rid>) -> bool {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return false;
        };
        if track
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < std::time::Duration::from_secs(1))
        {
            return false;
        }
        let Some(mut writer) = self.rtc.writer(mid) else {
            return false;
        };
        if writer
            .request_keyframe(rid, KeyframeRequestKind::Pli)
            .is_err()
        {
            return false;
        }
        track.last_keyframe_request = Some(now);
        true
    }

    /// The tile width the app shows `publisher` at.
    pub(crate) fn view_of(&self, publisher: ParticipantId) -> Option<u32> {
        self.views
            .iter()
            .find(|(p, _)| *p == publisher)
            .map(|(_, w)| *w)
    }

    /// Video tracks this participant is sent (they share its estimate).
    /// Tells str0m's estimator what to probe for, when the number of
    /// forwarded video tracks changed.
    pub(crate) fn update_desired_bitrate(&mut self) {
        let videos = self.video_out();
        if self.desired_for == Some(videos) || self.desired_for == Some(usize::MAX) {
            return;
        }
        self.desired_for = Some(videos);
        let bps = DESIRED_BASE_BPS + DESIRED_PER_VIDEO_BPS * videos as u64;
        self.rtc
            .bwe()
            .set_desired_bitrate(str0m::bwe::Bitrate::bps(bps));
    }

    pub(crate) fn video_out(&self) -> usize {
        self.open_out(MediaKind::Video)
    }

    /// Audio tracks this participant is sent (the estimate keeps room for
    /// them).
    pub(crate) fn audio_out(&self) -> usize {
        self.open_out(MediaKind::Audio)
    }

    fn open_out(&self, kind: MediaKind) -> usize {
        self.tracks_out
            .iter()
            .filter(|t| t.kind == kind && t.mid().is_some())
            .count()
    }

    /// The stream id subscribers see for a track this participant publishes
    /// in its stream `stream`: its label for its first stream, `label+N`
    /// for the N-th after (`+` is a token character of msid, RFC 8830 §2,
    /// that peer ids never hold; str0m drops `~`).
    pub(crate) fn stream_label(&mut self, stream: &str) -> String {
        let index = match self.streams_in.iter().position(|s| s == stream) {
            Some(i) => i,
            None => {
                self.streams_in.push(stream.to_owned());
                self.streams_in.len() - 1
            }
        };
        if index == 0 {
            self.label.clone()
        } else {
            format!("{}+{index}", self.label)
        }
    }

    /// `publisher` stopped its track `mid`: this participant's copy is
    /// stopped at the next offer.
    pub(crate) fn track_stopped(&mut self, publisher: ParticipantId, mid: Mid) {
        let gone = |t: &TrackOut| t.from == publisher && t.source_mid == mid;
        self.tracks_out
            .retain(|t| !gone(t) || t.state != OutState::ToOpen);
        for t in self.tracks_out.iter_mut().filter(|t| gone(t)) {
            t.state = match t.state {
                OutState::Negotiating(m) | OutState::Open(m) => OutState::ToStop(m),
                s => s,
            };
        }
    }

    /// A publisher left: what it sent this participant is stopped.
    pub(crate) fn publisher_left(&mut self, publisher: ParticipantId) {
        self.tracks_out
            .retain(|t| t.from != publisher || t.state != OutState::ToOpen);
        for t in &mut self.tracks_out {
            if t.from == publisher {
                t.state = match t.state {
                    OutState::Negotiating(m) | OutState::Open(m) => OutState::ToStop(m),
                    s => s,
                };
            }
        }
        self.views.retain(|(p, _)| *p != publisher);
    }
}
