//! The most a participant may publish per video track
//! (`--sfu-max-publish-bps`), asked and enforced.
//!
//! Asked: the SFU's SDP answers and offers (a browser keeps to the latest
//! remote description's) carry the cap on every video m-section as
//! `b=TIAS` (RFC 3890 §6.2, bits per second; one `b=` line only, as str0m's
//! parser, in our native peer, takes one); Chromium and Firefox then fit
//! their encoders (all simulcast layers of the track together) under it.
//!
//! Enforced: a publisher that sends more anyway does not get it forwarded.
//! Layers are kept lowest first while their measured rates add up to no
//! more than the cap with [`GRACE_PERCENT`] headroom (a rate window can
//! catch a keyframe burst); the layers above are not forwarded, and a
//! plain stream over it is not forwarded at all.

use std::time::Instant;

use crate::layer::{LayerRates, MAX_LAYERS};

/// Headroom over the cap before layers are dropped, in percent of it.
pub const GRACE_PERCENT: u64 = 150;

/// The highest layer index of a track with `layers` layers that may be
/// forwarded under `cap_bps` (0: no cap), by `rates`; `None`: not even the
/// lowest.
pub fn ceiling(rates: &LayerRates, layers: usize, cap_bps: u64, now: Instant) -> Option<usize> {
    let top = layers.clamp(1, MAX_LAYERS) - 1;
    if cap_bps == 0 {
        return Some(top);
    }
    let allowed = cap_bps.saturating_mul(GRACE_PERCENT) / 100;
    let mut sum = 0u64;
    let mut highest = None;
    for i in 0..=top {
        if rates.active(i, now) {
            sum = sum.saturating_add(rates.bps(i));
        }
        if sum > allowed {
            break;
        }
        highest = Some(i);
    }
    highest
}

/// `sdp` (an answer or offer) with the cap on each video m-section: the `b=` lines
/// go after its `c=` line (RFC 8866 §5 order: `m`, `i`, `c`, `b`, then
/// attributes). `cap_bps` 0 leaves it unchanged.
pub fn with_cap(sdp: &str, cap_bps: u64) -> String {
    if cap_bps == 0 {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut in_video = false;
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        if text.starts_with("m=") {
            in_video = text.starts_with("m=video ");
        }
        // An existing bandwidth line of a video section is replaced.
        if in_video && text.starts_with("b=") {
            continue;
        }
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\r\n");
        }
        if in_video && text.starts_with("c=") {
            out.push_str(&format!("b=TIAS:{cap_bps}\r\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(now: Instant, bps: [u64; 3]) -> LayerRates {
        LayerRates::measured(now, bps)
    }

    #[test]
    fn layers_over_the_cap_are_not_forwarded() {
        let now = Instant::now();
        let r = rates(now, [150_000, 500_000, 1_500_000]);
        assert_eq!(ceiling(&r, 3, 0, now), Some(2));
        // 2.15 Mbit/s within 1.5 × 2 Mbit/s.
        assert_eq!(ceiling(&r, 3, 2_000_000, now), Some(2));
        // 1 Mbit/s cap: 1.5 Mbit/s allowed, low + medium is 650 kbit/s.
        assert_eq!(ceiling(&r, 3, 1_000_000, now), Some(1));
        assert_eq!(ceiling(&r, 3, 200_000, now), Some(0));
        assert_eq!(ceiling(&r, 3, 50_000, now), None);
        // A plain stream at 8 Mbit/s under a 4 Mbit/s cap: nothing.
        let plain = rates(now, [8_000_000, 0, 0]);
        assert_eq!(ceiling(&plain, 1, 4_000_000, now), None);
        assert_eq!(ceiling(&plain, 1, 6_000_000, now), Some(0));
        // Not measured yet: allowed.
        assert_eq!(ceiling(&LayerRates::default(), 3, 1, now), Some(2));
    }

    #[test]
    fn the_answer_carries_the_cap_on_video_sections_only() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:99999\r\na=mid:1\r\n";
        let capped = with_cap(sdp, 2_500_000);
        assert_eq!(
            capped,
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=TIAS:2500000\r\na=mid:1\r\n"
        );
        assert_eq!(with_cap(sdp, 0), sdp);
    }
}
