//! Forwarding inside the SFU: a publisher's frame goes to each subscriber
//! whose layer it is ([`crate::layer`], within its share of the estimate,
//! [`crate::budget`]); its audio levels feed the room's active speaker
//! ([`crate::speaker`]); a subscriber's lost picture (PLI, RFC 4585
//! §6.3.1; FIR, RFC 5104 §4.3.1) becomes a keyframe request to the publisher.

use std::time::Instant;

use str0m::media::{MediaData, MediaKind, Mid};

use crate::{ParticipantId, Sfu, budget, layer, publish_cap};

impl Sfu {
    /// A frame from `from`: written to every subscriber whose layer it is.
    pub(crate) fn forward(
        &mut self,
        now: Instant,
        from: ParticipantId,
        data: &MediaData,
        todo: &mut Vec<ParticipantId>,
    ) {
        let Sfu {
            participants,
            rooms,
            stats,
            speakers,
            config,
            ..
        } = self;
        let Some(publisher) = participants.get_mut(&from) else {
            return;
        };
        let Some(track) = publisher.tracks_in.iter_mut().find(|t| t.mid == data.mid) else {
            return;
        };
        let Some(layer) = track.layer_of(data.rid) else {
            return;
        };
        track.rates.on_frame(layer, data.data.len(), now);
        if track.kind == MediaKind::Audio
            && let Some(level) = data.ext_vals.audio_level
        {
            speakers.on_level(now, &publisher.room, from, level);
        }
        let layers = track.layers();
        // Over the publisher's cap: the layers above what fits are not
        // forwarded (nor a plain stream that does not fit at all).
        let ceiling = if track.kind == MediaKind::Video {
            publish_cap::ceiling(&track.rates, layers, config.max_publish_bps, now)
        } else {
            Some(0)
        };
        let Some(ceiling) = ceiling.filter(|c| track.kind != MediaKind::Video || layer <= *c)
        else {
            stats.frames_over_cap += 1;
            return;
        };
        let rates = track.rates.clone();
        let rids = track.rids.clone();
        let keyframe = data.is_keyframe();
        let room = publisher.room.clone();
        let mut keyframe_for: Option<usize> = None;
        for sub_id in rooms.get(&room).into_iter().flatten() {
            if *sub_id == from {
                continue;
            }
            if participants.get(sub_id).is_some_and(|s| s.spend.stale(now)) {
                let bps = budget::video_spend(participants, *sub_id);
                if let Some(s) = participants.get_mut(sub_id) {
                    s.spend.set(now, bps);
                }
            }
            let Some(sub) = participants.get_mut(sub_id) else {
                continue;
            };
            let (estimate, audio, spend) = (sub.estimate_bps, sub.audio_out(), sub.spend);
            let cap = layer::cap_for_width(sub.view_of(from), layers).min(ceiling);
            let Some(out) = sub
                .tracks_out
                .iter_mut()
                .find(|t| t.from == from && t.source_mid == data.mid)
            else {
                continue;
            };
            let Some(mid) = out.mid() else {
                continue;
            };
            if data.rid.is_some() {
                let share = spend.budget(estimate, audio, out.selector.rate_bps(&rates));
                let target = layer::choose(&rates, layers, cap, share, out.selector.current(), now);
                if out.selector.set_target(target) && keyframe_for.is_none() {
                    keyframe_for = target;
                }
            } else if out.selector.current().is_none() {
                out.selector.set_target(Some(0));
                if !keyframe && data.params.spec().codec.is_video() {
                    keyframe_for = Some(0);
                }
            }
            let video = out.kind == MediaKind::Video;
            let forward = !video || out.selector.forward(layer, keyframe);
            if !forward {
                continue;
            }
            let Some(writer) = sub.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                stats.frames_out += 1;
                if !todo.contains(sub_id) {
                    todo.push(*sub_id);
                }
            }
        }
        if let Some(index) = keyframe_for {
            let rid = rids.get(index).copied();
            if let Some(publisher) = participants.get_mut(&from)
                && publisher.request_keyframe(now, data.mid, rid)
            {
                stats.keyframe_requests += 1;
                if !todo.contains(&from) {
                    todo.push(from);
                }
            }
        }
    }

    /// Subscriber `id` lost pictures on its track `mid` (PLI/FIR): the
    /// publisher is asked for a keyframe of the layer it is sent.
    pub(crate) fn keyframe_wanted(
        &mut self,
        now: Instant,
        id: ParticipantId,
        mid: Mid,
        todo: &mut Vec<ParticipantId>,
    ) {
        let Some(sub) = self.participants.get(&id) else {
            return;
        };
        let Some(out) = sub.tracks_out.iter().find(|t| t.mid() == Some(mid)) else {
            return;
        };
        let (from, source_mid, current) = (out.from, out.source_mid, out.selector.current());
        let Some(publisher) = self.participants.get_mut(&from) else {
            return;
        };
        let rid = publisher
            .tracks_in
            .iter()
            .find(|t| t.mid == source_mid)
            .and_then(|t| t.rids.get(current.unwrap_or(0)).copied());
        if publisher.request_keyframe(now, source_mid, rid) {
            self.stats.keyframe_requests += 1;
            todo.push(from);
        }
    }
}
