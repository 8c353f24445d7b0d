// Reading the room page's SFU mode the way the SFU tests check it, with
// page.evaluate only, so the same helpers drive Chromium (playwright) and
// Firefox (puppeteer).
import assert from 'node:assert/strict';

/** Frames each remote tile has shown so far: {peerId: frames}. */
export function tileFrames(page) {
  return page.evaluate(() => {
    const out = {};
    for (const [id, p] of window.switchboard.state.peers) {
      const v = p.view.video;
      // Firefox counts frames of a MediaStream as painted frames only.
      const frames = v.getVideoPlaybackQuality?.().totalVideoFrames || v.mozPaintedFrames || 0;
      out[id] = v.videoWidth > 0 ? frames : 0;
    }
    return out;
  });
}

/** Waits until every one of `count` remote tiles shows frames, and keeps showing new ones. */
export async function waitTilesPlaying(page, count, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  let before = null;
  for (;;) {
    const now = await tileFrames(page);
    const ids = Object.keys(now);
    const ok = ids.length === count && before && ids.every((id) => now[id] > 0 && now[id] > (before[id] ?? 0));
    if (ok) return now;
    if (Date.now() > deadline) assert.fail(`tiles not playing: ${JSON.stringify({ before, now })}`);
    before = now;
    await new Promise((r) => setTimeout(r, 1500));
  }
}

/** The SFU link's state and what arrives on it, per track: for failure messages. */
export function sfuReport(page) {
  return page.evaluate(async () => {
    const sfu = window.switchboard.sfu();
    if (!sfu) return { mode: document.body.dataset.mode ?? 'p2p' };
    const pc = sfu.link.pc;
    const inbound = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') inbound.push(`${s.kind} mid ${s.mid} ${s.trackIdentifier?.slice(0, 8)} pkts ${s.packetsReceived} frames ${s.framesDecoded ?? '-'} ${s.frameWidth ?? ''}`);
    });
    return {
      mode: document.body.dataset.mode,
      signaling: pc.signalingState,
      connection: pc.connectionState,
      transceivers: pc.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}`).join(' '),
      streams: [...sfu.streams.keys()],
      tiles: [...window.switchboard.state.peers].map(([id, p]) => `${id}=${p.view.video.srcObject?.id}`),
      inbound,
    };
  });
}

/** The page's room mode: `p2p` or `sfu`. */
export function mode(page) {
  return page.evaluate(() => document.body.dataset.mode ?? 'p2p');
}

/** Waits until the page is in `want` mode (and, for `sfu`, its SFU link is connected). */
export async function waitMode(page, want, timeout = 45_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const [m, link] = await page.evaluate(() => [document.body.dataset.mode ?? 'p2p', document.body.dataset.sfuState ?? null]);
    if (m === want && (want !== 'sfu' || link === 'connected')) return;
    if (Date.now() > deadline) assert.fail(`mode ${m} (SFU link ${link}), not ${want}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
