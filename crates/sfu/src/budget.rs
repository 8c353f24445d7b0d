//! How a subscriber's bandwidth estimate is shared among the videos it is
//! sent.
//!
//! An equal split would starve a camera with detail next to one that sends
//! almost nothing (a still picture, a muted screen). Instead each video may
//! use what the estimate leaves after audio and after the layers the
//! subscriber's other videos are sent: the first to climb takes what it
//! needs, the rest take what remains, and when the estimate falls every
//! video sees less and steps down (LiveKit's allocator works in the same
//! spirit). What the other videos use is summed at most every
//! [`SPEND_REFRESH`] per subscriber, not per frame.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::MediaKind;

use crate::ParticipantId;
use crate::participant::Participant;

/// Kept back from the estimate per forwarded audio track (Opus with
/// headers).
pub(crate) const AUDIO_RESERVE_BPS: u64 = 40_000;

/// How often a subscriber's video spend is summed again.
pub(crate) const SPEND_REFRESH: Duration = Duration::from_millis(250);

/// The last sum of what a subscriber's forwarded videos use.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spend {
    at: Option<Instant>,
    video_bps: u64,
}

impl Spend {
    pub(crate) fn stale(&self, now: Instant) -> bool {
        self.at
            .is_none_or(|t| now.saturating_duration_since(t) >= SPEND_REFRESH)
    }

    pub(crate) fn set(&mut self, now: Instant, video_bps: u64) {
        *self = Spend {
            at: Some(now),
            video_bps,
        };
    }

    /// What one video of the subscriber may use: the estimate less audio
    /// and less the other videos' layers (`own_bps`: this video's share of
    /// the last sum).
    pub(crate) fn budget(&self, estimate_bps: u64, audio_tracks: usize, own_bps: u64) -> u64 {
        let others = self.video_bps.saturating_sub(own_bps);
        estimate_bps
            .saturating_sub(AUDIO_RESERVE_BPS.saturating_mul(audio_tracks as u64))
            .saturating_sub(others)
    }
}

/// Sums the rates of the layers `sub` is sent (or about to be: the target
/// of a pending switch, if higher) over all its forwarded videos.
pub(crate) fn video_spend(
    participants: &HashMap<ParticipantId, Participant>,
    sub: ParticipantId,
) -> u64 {
    let Some(s) = participants.get(&sub) else {
        return 0;
    };
    s.tracks_out
        .iter()
        .filter(|t| t.kind == MediaKind::Video && t.mid().is_some())
        .filter_map(|t| {
            let track = participants
                .get(&t.from)?
                .tracks_in
                .iter()
                .find(|i| i.mid == t.source_mid)?;
            Some(t.selector.rate_bps(&track.rates))
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_gets_what_audio_and_the_others_leave() {
        let now = Instant::now();
        let mut s = Spend::default();
        assert!(s.stale(now));
        // Two videos: this one at 150 kbit/s, the other at 1.5 Mbit/s.
        s.set(now, 1_650_000);
        assert!(!s.stale(now + SPEND_REFRESH / 2));
        assert!(s.stale(now + SPEND_REFRESH));
        assert_eq!(
            s.budget(3_000_000, 2, 150_000),
            3_000_000 - 80_000 - 1_500_000
        );
        // The estimate fell below what the others use: nothing left (the
        // layer choice then falls back to the lowest layer).
        assert_eq!(s.budget(1_000_000, 2, 150_000), 0);
        // Alone: the whole estimate less audio.
        s.set(now, 500_000);
        assert_eq!(s.budget(2_000_000, 1, 500_000), 1_960_000);
    }
}
