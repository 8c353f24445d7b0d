// Must-show 3: screen share. Headless Chromium picks a capture source by
// itself (--auto-accept-this-tab-capture / --auto-select-desktop-capture-source
// with --use-fake-ui-for-media-stream); the remote side must decode frames of
// the shared screen, then of the camera again after switching back. With
// --use-fake-device-for-media-stream, Chromium's display capture is its fake
// desktop source (a 'monitor' surface), told apart from the fake camera by its
// corner markers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats } from '../lib/call.js';

async function inboundVideo(page) {
  const [s] = Object.values(await peerStats(page));
  return s;
}

/**
 * Green level of the remote video's top-left corner and of the left edge
 * below it (the remote tile's <video>, drawn to a canvas at 128x72).
 */
async function probe(page) {
  return page.evaluate(() => {
    const v = document.querySelector('.tile:not([data-peer="self"]) video');
    const c = document.createElement('canvas');
    c.width = 128; c.height = 72;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, 128, 72);
    const mean = (x, y, w, h) => {
      const d = g.getImageData(x, y, w, h).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += d[i + 1];
      return Math.round(sum / (d.length / 4));
    };
    return { corner: mean(1, 1, 5, 5), edge: mean(1, 30, 5, 5), w: v.videoWidth, h: v.videoHeight };
  });
}

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
  const alice = await launchChromium();
  const bob = await launchChromium();
  try {
    const room = roomId('screen');
    await joinRoom(alice.page, room, 'Alice');
    await joinRoom(bob.page, room, 'Bob');
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    await waitFramesDecoded(bob.page);

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
    // show the screen: Chromium's headless fake display source has bright
    // corner markers that its fake camera does not.
    await bob.page.waitForSelector('.tile.screen', { timeout: 15_000 });
    const before = (await inboundVideo(bob.page)).framesDecoded;
    const shared = await waitFor(async () => {
      const s = await inboundVideo(bob.page);
      const px = await probe(bob.page);
      return s.framesDecoded > before + 10 && px.corner - px.edge > 40 ? { ...s, px } : null;
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
      return s.framesDecoded > mid + 10 && Math.abs(px.corner - px.edge) < 25 ? { ...s, px } : null;
    }, 'camera frames after stopping the share', bob.page);
    console.log('remote decodes camera again:', JSON.stringify(back));
    assert.equal(await alice.page.evaluate(() => window.switchboard.local.screen), null);
  } finally {
    await alice.close();
    await bob.close();
  }
});
