//! Simulcast layer choice for one subscriber of one video track.
//!
//! A publisher sends its camera in up to three simulcast layers (RFC 8853,
//! told apart by RTP stream id, RFC 8852), lowest first in its offer's
//! `a=simulcast:send` list. Each subscriber gets one of them: the highest
//! whose measured bitrate fits the subscriber's share of its bandwidth
//! estimate and that is not larger than the tile it shows the video in.
//! The forwarded layer changes only at a keyframe of the new layer, so the
//! decoder never gets a frame that refers to pictures it has not seen.

use std::time::{Duration, Instant};

/// Most layers a publisher may send (camera: low, medium, high).
pub const MAX_LAYERS: usize = 3;

/// Window over which a layer's bitrate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A layer not heard from for this long is taken as stopped (a browser
/// stops its top layers when its own uplink is short).
const LAYER_GONE: Duration = Duration::from_secs(2);

/// Headroom: a layer is switched to only when its rate is below this share
/// of the subscriber's budget, and left only when it exceeds the whole
/// budget (estimates wobble; without the gap a layer at the edge of the
/// estimate would switch back and forth, a keyframe each time).
const FIT_PERCENT: u64 = 85;

/// Tile widths (CSS px) from which the medium and the high layer are worth
/// sending. Below the first, the low layer (a quarter of the camera's
/// resolution) already fills the tile.
const MEDIUM_FROM_WIDTH: u32 = 240;
const HIGH_FROM_WIDTH: u32 = 480;

/// What a publisher's video track carries per layer, measured as frames
/// arrive.
#[derive(Debug, Clone, Default)]
pub struct LayerRates {
    layers: [Meter; MAX_LAYERS],
}

#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    window_start: Option<Instant>,
    window_bytes: u64,
    window_frames: u32,
    bps: u64,
    /// Frames per second over the last window, ×10 (0.1 fps steps).
    fps10: u32,
    last_seen: Option<Instant>,
}

impl LayerRates {
    /// Counts a frame of `bytes` on layer `index` at `now`.
    pub fn on_frame(&mut self, index: usize, bytes: usize, now: Instant) {
        let Some(m) = self.layers.get_mut(index) else {
            return;
        };
        m.last_seen = Some(now);
        let start = *m.window_start.get_or_insert(now);
        m.window_bytes = m.window_bytes.saturating_add(bytes as u64);
        m.window_frames = m.window_frames.saturating_add(1);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let ms = u64::try_from(elapsed.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            m.bps = m.window_bytes.saturating_mul(8_000) / ms;
            m.fps10 = u32::try_from(u64::from(m.window_frames) * 10_000 / ms).unwrap_or(u32::MAX);
            m.window_start = Some(now);
            m.window_bytes = 0;
            m.window_frames = 0;
        }
    }

    /// Whether layer `index` runs at no less than half the frame rate of
    /// the smoothest active layer. A browser short of uplink first starves its
    /// upper layers (a frame a second) before it stops them: such a layer
    /// is still heard from but would show a slide show.
    pub fn smooth(&self, index: usize, now: Instant) -> bool {
        let best = (0..MAX_LAYERS)
            .filter(|i| self.active(*i, now))
            .filter_map(|i| self.layers.get(i).map(|m| m.fps10))
            .max()
            .unwrap_or(0);
        self.layers
            .get(index)
            .is_some_and(|m| m.fps10.saturating_mul(2) >= best)
    }

    /// Whether layer `index` has sent a frame recently.
    pub fn active(&self, index: usize, now: Instant) -> bool {
        self.layers
            .get(index)
            .and_then(|m| m.last_seen)
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_GONE)
    }

    /// Rates as if each layer had just been measured at `bps` (0: not
    /// heard from), for tests.
    #[cfg(test)]
    pub(crate) fn measured(now: Instant, bps: [u64; MAX_LAYERS]) -> LayerRates {
        let mut r = LayerRates::default();
        for (i, b) in bps.iter().enumerate() {
            if *b == 0 {
                continue;
            }
            // Two frames a window apart: the window closes with b bits.
            r.on_frame(i, 0, now - RATE_WINDOW);
            r.on_frame(i, usize::try_from(b / 8).unwrap_or(usize::MAX), now);
        }
        r
    }

    /// The last measured bitrate of layer `index` (0 until a window ends).
    pub fn bps(&self, index: usize) -> u64 {
        self.layers.get(index).map_or(0, |m| m.bps)
    }
}

/// The highest layer worth sending to a tile `width` px wide (`None`: the
/// app has not said; any layer).
pub fn cap_for_width(width: Option<u32>, layers: usize) -> usize {
    let top = layers.saturating_sub(1);
    match width {
        None => top,
        Some(w) if w >= HIGH_FROM_WIDTH => top,
        Some(w) if w >= MEDIUM_FROM_WIDTH => top.min(1),
        Some(_) => 0,
    }
}

/// The layer a subscriber should get, given the one it is sent now: the
/// highest active and smooth ([`LayerRates::smooth`]) one up to `cap` whose
/// rate fits `budget_bps`; else the
/// lowest active one (video keeps playing on the smallest layer however
/// short the link); `None` when no layer is active.
pub fn choose(
    rates: &LayerRates,
    layers: usize,
    cap: usize,
    budget_bps: u64,
    current: Option<usize>,
    now: Instant,
) -> Option<usize> {
    let active = |i: &usize| rates.active(*i, now);
    let lowest = (0..layers.min(MAX_LAYERS)).find(active)?;
    let fits = |i: &usize| {
        let share = if current == Some(*i) {
            100
        } else {
            FIT_PERCENT
        };
        rates.bps(*i).saturating_mul(100) <= budget_bps.saturating_mul(share)
    };
    let best = (0..=cap.min(layers.saturating_sub(1)))
        .rev()
        .filter(active)
        .filter(|i| rates.smooth(*i, now))
        .find(fits);
    Some(best.unwrap_or(lowest))
}

/// Which layer one subscriber is sent, and when it may change.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// The layer being forwarded (`None`: nothing yet, waiting for a
    /// keyframe).
    current: Option<usize>,
    /// The layer wanted.
    target: Option<usize>,
}

impl Selector {
    /// Sets the wanted layer. True when it differs from the one forwarded,
    /// so a keyframe of it is needed.
    pub fn set_target(&mut self, target: Option<usize>) -> bool {
        self.target = target;
        target.is_some() && target != self.current
    }

    /// Whether a frame of layer `index` is forwarded to this subscriber;
    /// switches to the target layer at its keyframe.
    pub fn forward(&mut self, index: usize, keyframe: bool) -> bool {
        if keyframe && self.target == Some(index) {
            self.current = Some(index);
        }
        // The target stopped (publisher's uplink) and nothing else is
        // forwarded yet: any keyframe starts the picture.
        if self.current.is_none() && keyframe && self.target.is_none() {
            self.current = Some(index);
        }
        self.current == Some(index)
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// What this subscriber's video uses, by `rates` of its publisher's
    /// layers: the layer forwarded, or the target of a pending switch if
    /// that is higher (its bandwidth is spoken for).
    pub fn rate_bps(&self, rates: &LayerRates) -> u64 {
        [self.current, self.target]
            .into_iter()
            .flatten()
            .map(|l| rates.bps(l))
            .max()
            .unwrap_or(0)
    }

    /// Whether a switch is waiting for a keyframe.
    pub fn switching(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(now: Instant, bps: [u64; 3]) -> LayerRates {
        LayerRates::measured(now, bps)
    }

    #[test]
    fn measures_a_layer_over_its_window() {
        let now = Instant::now();
        let r = rates(now, [150_000, 500_000, 1_500_000]);
        assert_eq!(r.bps(0), 150_000);
        assert_eq!(r.bps(2), 1_500_000);
        assert!(r.active(1, now));
        assert!(!r.active(1, now + LAYER_GONE));
        assert_eq!(r.bps(7), 0);
    }

    #[test]
    fn picks_the_highest_layer_that_fits_the_budget_and_the_tile() {
        let now = Instant::now();
        let r = rates(now, [150_000, 500_000, 1_500_000]);
        assert_eq!(choose(&r, 3, 2, 10_000_000, None, now), Some(2));
        assert_eq!(choose(&r, 3, 2, 1_000_000, None, now), Some(1));
        // ~300 kbit/s link: only the lowest fits.
        assert_eq!(choose(&r, 3, 2, 300_000, None, now), Some(0));
        // Shorter than even the lowest: still the lowest, video keeps on.
        assert_eq!(choose(&r, 3, 2, 50_000, None, now), Some(0));
        // A small tile caps it whatever the budget.
        assert_eq!(
            choose(&r, 3, cap_for_width(Some(200), 3), 10_000_000, None, now),
            Some(0)
        );
        assert_eq!(
            choose(&r, 3, cap_for_width(Some(320), 3), 10_000_000, None, now),
            Some(1)
        );
        assert_eq!(
            choose(&r, 3, cap_for_width(Some(1280), 3), 10_000_000, None, now),
            Some(2)
        );
        assert_eq!(
            choose(&r, 3, cap_for_width(None, 3), 10_000_000, None, now),
            Some(2)
        );
        // The top layer stopped (publisher's uplink): the next one.
        let later = now + LAYER_GONE;
        let mut r2 = r.clone();
        r2.on_frame(0, 10, later);
        r2.on_frame(1, 10, later);
        assert_eq!(choose(&r2, 3, 2, 10_000_000, None, later), Some(1));
        // Hysteresis: the high layer at 1.6 Mbit/s is kept once sent
        // (1.5 ≤ 1.6), but not switched to (1.5 > 85 % of 1.6).
        assert_eq!(choose(&r, 3, 2, 1_600_000, Some(2), now), Some(2));
        assert_eq!(choose(&r, 3, 2, 1_600_000, Some(1), now), Some(1));
        assert_eq!(choose(&r, 3, 2, 1_400_000, Some(2), now), Some(1));
        // Nothing sent yet: nothing to choose.
        assert_eq!(choose(&LayerRates::default(), 3, 2, 1, None, now), None);
    }

    #[test]
    fn a_starved_layer_is_not_chosen() {
        // Low and medium at 20 fps; high heard from, but at 2 fps (a
        // browser short of uplink): the medium layer, not a slide show.
        let now = Instant::now();
        let mut r = LayerRates::default();
        for i in 0..=20u32 {
            let t = now - RATE_WINDOW + RATE_WINDOW * i / 20;
            r.on_frame(0, 1000, t);
            r.on_frame(1, 3000, t);
            if i % 10 == 0 {
                r.on_frame(2, 2000, t);
            }
        }
        assert!(r.smooth(0, now) && r.smooth(1, now));
        assert!(!r.smooth(2, now));
        assert_eq!(choose(&r, 3, 2, 100_000_000, None, now), Some(1));
        assert_eq!(choose(&r, 3, 2, 100_000_000, Some(2), now), Some(1));
    }

    #[test]
    fn switches_only_at_a_keyframe_of_the_target() {
        let mut s = Selector::default();
        assert!(s.set_target(Some(2)));
        // Nothing forwarded before the first keyframe of the target.
        assert!(!s.forward(2, false));
        assert!(!s.forward(0, true));
        assert!(s.forward(2, true));
        assert!(s.forward(2, false));
        assert!(!s.switching());
        // Down to the lowest: the high layer goes on until low's keyframe.
        assert!(s.set_target(Some(0)));
        assert!(s.switching());
        assert!(!s.forward(0, false));
        assert!(s.forward(2, false));
        assert!(s.forward(0, true));
        assert!(!s.forward(2, true));
        assert_eq!(s.current(), Some(0));
        // Same target again: no keyframe needed.
        assert!(!s.set_target(Some(0)));
    }
}
