// Must-show 3: screen share. Headless Chromium picks a capture source by
// itself (--auto-accept-this-tab-capture / --auto-select-desktop-capture-source
// with --use-fake-ui-for-media-stream); the remote side must decode frames of
// the shared screen, then of the camera again after switching back. With
// --use-fake-device-for-media-stream, Chromium's display capture is its fake
// desktop source (a 'monitor' surface, a moving green pattern); the camera
// plays a solid magenta .y4m file here, so the remote pixels tell which one
// arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { launchChromium, writeSolidY4m } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats } from '../lib/call.js';

async function inboundVideo(page) {
  const [s] = Object.values(await peerStats(page));
  return s;
}

/** Mean red, green and blue of the remote tile's video (drawn at 32x18). */
async function probe(page) {
  return page.evaluate(() => {
    const v = document.querySelector('.tile:not([data-peer="self"]) video');
    const c = document.createElement('canvas');
    c.width = 32; c.height = 18;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, 32, 18);
    const d = g.getImageData(0, 0, 32, 18).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
    const [r, gr, b] = sum.map((x) => Math.round(x / (d.length / 4)));
    return { r, g: gr, b, w: v.videoWidth, h: v.videoHeight };
  });
}

const isCamera = (px) => px.r > px.g + 80 && px.b > px.g + 80; // magenta
const isScreen = (px) => px.g > px.r + 60 && px.g > px.b + 60; // green pattern

async function waitFor(fn, what, page, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const r = await fn();
    if (r) return r;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify({ stats: await inboundVideo(page), px: await probe(page) })}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

test('screen share: remote decodes the shared screen, then the camera again', async () => {
  const camera = join(tmpdir(), `switchboard-magenta-${process.pid}.y4m`);
  await writeSolidY4m(camera, [105, 212, 234]);
  const alice = await launchChromium({ fakeCamera: camera });
  const bob = await launchChromium({ fakeCamera: camera });
  try {
    const room = roomId('screen');
    await joinRoom(alice.page, room, 'Alice');
    await joinRoom(bob.page, room, 'Bob');
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    await waitFramesDecoded(bob.page);
    await waitFor(async () => isCamera(await probe(bob.page)), 'camera first', bob.page);

    await alice.page.click('#btn-screen');
    const screen = await alice.page.waitForFunction(() => {
      const t = window.switchboard.local.screen;
      return t && t.readyState === 'live' ? { ...t.getSettings(), label: t.label } : null;
    }, null, { timeout: 15_000 }).then((h) => h.jsonValue());
    console.log('captured surface:', JSON.stringify(screen));
    assert.ok(screen.width > 0 && screen.height > 0);

    // Alice sends the captured surface itself, not the camera.
    const sending = await alice.page.evaluate(() => {
      const [p] = window.switchboard.state.peers.values();
      const t = p.link.senders.video.track;
      return { same: t === window.switchboard.local.screen, surface: t?.getSettings().displaySurface };
    });
    assert.deepEqual(sending, { same: true, surface: screen.displaySurface });

    // Bob's view of Alice is marked as a screen and decodes new frames that
    // show the screen (green), no longer the camera (magenta).
    await bob.page.waitForSelector('.tile.screen', { timeout: 15_000 });
    const before = (await inboundVideo(bob.page)).framesDecoded;
    const shared = await waitFor(async () => {
      const s = await inboundVideo(bob.page);
      const px = await probe(bob.page);
      return s.framesDecoded > before + 10 && isScreen(px) ? { ...s, px } : null;
    }, 'screen frames', bob.page);
    console.log('remote decodes screen:', JSON.stringify(shared));
    await alice.page.screenshot({ path: new URL('../artifacts/screen-share.png', import.meta.url).pathname });
    await bob.page.screenshot({ path: new URL('../artifacts/screen-share-remote.png', import.meta.url).pathname });

    // Switch back to the camera cleanly.
    await alice.page.click('#btn-screen');
    await bob.page.waitForSelector('.tile:not(.screen):not([data-peer="self"])', { timeout: 15_000 });
    const mid = (await inboundVideo(bob.page)).framesDecoded;
    const back = await waitFor(async () => {
      const s = await inboundVideo(bob.page);
      const px = await probe(bob.page);
      return s.framesDecoded > mid + 10 && isCamera(px) ? { ...s, px } : null;
    }, 'camera frames after stopping the share', bob.page);
    console.log('remote decodes camera again:', JSON.stringify(back));
    assert.equal(await alice.page.evaluate(() => window.switchboard.local.screen), null);
  } finally {
    await alice.close();
    await bob.close();
  }
});
