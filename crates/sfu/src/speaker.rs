//! The active speaker of each room, from the audio levels publishers put in
//! their RTP headers (RFC 6464: the level of each packet's audio in -dBov,
//! 0 loudest, 127 silence), so no audio is decoded.
//!
//! Every [`INTERVAL`] each participant's loudness over the interval is
//! averaged and smoothed; the room's speaker changes to the loudest one
//! when that one is over [`SPEAKING`] and louder than the current speaker
//! by [`MARGIN`] (a cough or two people talking at once does not make the
//! highlight jump back and forth). A speaker who falls silent stays the
//! speaker until someone else speaks, as in Jitsi's dominant speaker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ParticipantId;

/// How often the speakers are looked at.
pub(crate) const INTERVAL: Duration = Duration::from_millis(300);

/// Loudness (127 less the level's dBov) over which someone is speaking:
/// a level of about -55 dBov. Speech at a normal distance is -20 to -40.
const SPEAKING: u32 = 72;

/// How much louder than the current speaker another must be to take over.
const MARGIN: u32 = 8;

/// Weight of the newest interval in the smoothed loudness, in 1/8ths.
const NEW_WEIGHT: u32 = 3;

#[derive(Debug, Default)]
struct Level {
    sum: u32,
    count: u32,
    /// Smoothed loudness, 0..=127.
    score: u32,
}

#[derive(Debug, Default)]
struct Room {
    levels: HashMap<ParticipantId, Level>,
    speaker: Option<ParticipantId>,
}

/// Audio levels per room and who speaks.
#[derive(Debug, Default)]
pub(crate) struct Speakers {
    rooms: HashMap<String, Room>,
    due: Option<Instant>,
}

impl Speakers {
    /// An audio packet of `id` in `room` carried level `dbov` (RFC 6464:
    /// 0 down to -127).
    pub(crate) fn on_level(&mut self, now: Instant, room: &str, id: ParticipantId, dbov: i8) {
        let loudness = 127u32.saturating_sub(u32::from(dbov.unsigned_abs().min(127)));
        let r = match self.rooms.get_mut(room) {
            Some(r) => r,
            None => self.rooms.entry(room.to_owned()).or_default(),
        };
        let l = r.levels.entry(id).or_default();
        l.sum = l.sum.saturating_add(loudness);
        l.count = l.count.saturating_add(1);
        self.due.get_or_insert(now + INTERVAL);
    }

    /// `id` left `room`.
    pub(crate) fn leave(&mut self, room: &str, id: ParticipantId) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.levels.remove(&id);
        if r.speaker == Some(id) {
            r.speaker = None;
        }
        if r.levels.is_empty() {
            self.rooms.remove(room);
        }
    }

    /// When [`Speakers::handle_timeout`] wants to run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// Looks at the levels if it is time: calls `changed(room, speaker)` for
    /// every room whose speaker changed.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        mut changed: impl FnMut(&str, ParticipantId),
    ) {
        if self.due.is_none_or(|d| d > now) {
            return;
        }
        self.due = (!self.rooms.is_empty()).then_some(now + INTERVAL);
        for (name, r) in &mut self.rooms {
            for l in r.levels.values_mut() {
                // Nothing heard (muted, or packets lost): silence.
                let mean = l.sum.checked_div(l.count).unwrap_or(0);
                l.score = (l.score * (8 - NEW_WEIGHT) + mean * NEW_WEIGHT) / 8;
                l.sum = 0;
                l.count = 0;
            }
            let Some((loudest, score)) = r
                .levels
                .iter()
                .map(|(id, l)| (*id, l.score))
                .max_by_key(|(id, s)| (*s, std::cmp::Reverse(*id)))
            else {
                continue;
            };
            if score < SPEAKING || r.speaker == Some(loudest) {
                continue;
            }
            let current = r
                .speaker
                .and_then(|s| r.levels.get(&s))
                .map_or(0, |l| l.score);
            if score >= current.saturating_add(MARGIN) {
                r.speaker = Some(loudest);
                changed(name, loudest);
            }
        }
    }

    /// The room's speaker now.
    #[cfg(test)]
    fn speaker(&self, room: &str) -> Option<ParticipantId> {
        self.rooms.get(room)?.speaker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: ParticipantId = ParticipantId(1);
    const BEN: ParticipantId = ParticipantId(2);

    /// Runs `secs` seconds of 20 ms packets at the given levels.
    fn talk(
        s: &mut Speakers,
        now: &mut Instant,
        secs: u32,
        ann: i8,
        ben: i8,
    ) -> Vec<ParticipantId> {
        let mut changes = Vec::new();
        for _ in 0..secs * 50 {
            *now += Duration::from_millis(20);
            s.on_level(*now, "r", ANN, ann);
            s.on_level(*now, "r", BEN, ben);
            s.handle_timeout(*now, |room, id| {
                assert_eq!(room, "r");
                changes.push(id);
            });
        }
        changes
    }

    #[test]
    fn the_loudest_becomes_the_speaker_and_stays_through_silence() {
        let mut s = Speakers::default();
        let mut now = Instant::now();
        // Both silent: nobody.
        assert!(talk(&mut s, &mut now, 2, -127, -127).is_empty());
        assert_eq!(s.speaker("r"), None);
        // Ann talks.
        assert_eq!(talk(&mut s, &mut now, 2, -30, -127), vec![ANN]);
        // Ann stops: still the speaker.
        assert!(talk(&mut s, &mut now, 2, -127, -127).is_empty());
        assert_eq!(s.speaker("r"), Some(ANN));
        // Ben talks: his turn.
        assert_eq!(talk(&mut s, &mut now, 2, -127, -35), vec![BEN]);
        // Ann a little louder than Ben at once: no flapping.
        assert!(talk(&mut s, &mut now, 2, -33, -35).is_empty());
        // Ben leaves: Ann, still talking, takes over.
        s.leave("r", BEN);
        let mut changes = Vec::new();
        for _ in 0..50 {
            now += Duration::from_millis(20);
            s.on_level(now, "r", ANN, -30);
            s.handle_timeout(now, |_, id| changes.push(id));
        }
        assert_eq!(changes, vec![ANN]);
        // The last one leaves: the room is forgotten.
        s.leave("r", ANN);
        assert!(s.rooms.is_empty());
    }

    #[test]
    fn levels_out_of_range_are_clamped() {
        let mut s = Speakers::default();
        let now = Instant::now();
        // i8::MIN is not a valid RFC 6464 level; it counts as silence.
        s.on_level(now, "r", ANN, i8::MIN);
        s.on_level(now, "r", ANN, 5);
        assert_eq!(s.rooms["r"].levels[&ANN].sum, 122);
    }
}
