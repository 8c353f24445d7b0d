// Issue 13: publishers' bitrate cap. With `--sfu-max-publish-bps 400000`
// the SFU's SDP carries `b=TIAS:400000` on the video section; Ann's
// Chromium, whose scrolling-texture camera would fill its three layers
// (2.15 Mbit/s), keeps all of them together under the cap, and Ben still
// plays her video. The cap reaches the app as a `publish-cap` notice (browsers
// do not apply b=TIAS to simulcast layers), and it sets its encodings by it.
// An honest browser stays under it, so the SFU then has nothing to drop
// (switchboard_sfu_frames_over_cap stands still); the dropping itself is
// shown by the core's test with a publisher that ignores the cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rm } from 'node:fs/promises';
import { launchChromium, writeTextureY4m } from '../lib/browser.js';
import { roomId, joinRoom } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { waitTilesPlaying, waitMode } from '../lib/sfu.js';

const CAP = 400_000;

/** Video bytes Ann's page has sent the SFU, all layers. */
function videoBytes(page) {
  return page.evaluate(async () => {
    let bytes = 0;
    (await window.switchboard.sfu().link.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') bytes += s.bytesSent ?? 0;
    });
    return bytes;
  });
}

test('a publisher keeps its video under --sfu-max-publish-bps', { timeout: 120_000 }, async () => {
  const texture = join(tmpdir(), `switchboard-cap-texture-${process.pid}.y4m`);
  await writeTextureY4m(texture, 1280, 720);
  const server = await startServer(['--sfu', 'always', '--sfu-listen', '127.0.0.1:0', '--sfu-max-publish-bps', String(CAP)]);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const pages = [];
  try {
    const room = roomId('sfu-cap');
    const ann = await launchChromium({ fakeCamera: texture });
    pages.push(ann);
    await joinRoom(ann.page, room, 'Ann', '', base);
    const ben = await launchChromium();
    pages.push(ben);
    await joinRoom(ben.page, room, 'Ben', '', base);
    for (const b of pages) await waitMode(b.page, 'sfu', 45_000);
    await waitTilesPlaying(ben.page, 1, 45_000);
    const tias = await ann.page.evaluate(() => window.switchboard.sfu().link.pc.remoteDescription?.sdp.match(/b=TIAS:(\d+)/)?.[1]);
    assert.equal(Number(tias), CAP, 'the SFU answer carries the cap');

    const overCap = async () => {
      const metrics = await (await fetch(`${server.metricsUrl()}/metrics`)).text();
      return Number(metrics.match(/^switchboard_sfu_frames_over_cap(?:_total)? (\d+)/m)?.[1] ?? NaN);
    };
    // Past the encoders' ramp-up: 8 s measured.
    await new Promise((r) => setTimeout(r, 5000));
    const over0 = await overCap();
    const b0 = await videoBytes(ann.page);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 8000));
    const bps = ((await videoBytes(ann.page)) - b0) * 8 / ((Date.now() - t0) / 1000);
    const encodings = await ann.page.evaluate(() => JSON.stringify(window.switchboard.sfu().link.video.sender.getParameters().encodings));
    assert.ok(bps <= CAP * 1.15, `Ann sends ${Math.round(bps)} bit/s of video, cap ${CAP}; encodings ${encodings}`);
    assert.ok(bps > CAP / 4, `Ann sends only ${Math.round(bps)} bit/s: is her camera on?`);
    await waitTilesPlaying(ben.page, 1, 20_000);

    // Until the cap reached the page and its first negotiations were done,
    // Chromium may have sent a moment over it; from then on, nothing.
    const over1 = await overCap();
    assert.ok(Number.isFinite(over0), 'switchboard_sfu_frames_over_cap is exported');
    assert.equal(over1, over0, `frames over the cap while measured: ${over0} -> ${over1}`);
  } finally {
    for (const b of pages) await b.close();
    await server.stop();
    await rm(texture, { force: true });
  }
});
