// The call controls as a person uses them: a room password (wrong one refused
// with a clear message, right one admitted), mute (the other side sees it and
// no audio is sent), camera off and on, and switching to another camera
// through the device dialog while the other side keeps decoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { BASE, roomId, waitConnected, waitFramesDecoded, peerStats } from '../lib/call.js';

async function joinWith(page, room, name, password) {
  await page.goto(`${BASE}/r/${room}`);
  await page.fill('#name', name);
  await page.fill('#password', password);
  await page.click('#join');
}

const remoteTile = '.tile:not([data-peer="self"])';

test('password, mute, camera off/on and camera switch', async () => {
  // Three fake cameras, so there is something to switch to. (Chromium's
  // second fake camera is a Y16 depth device that WebRTC cannot send; the
  // third is an ordinary MJPEG one.)
  const opts = { args: ['--use-fake-device-for-media-stream=device-count=3'] };
  const alice = await launchChromium(opts);
  const bob = await launchChromium(opts);
  try {
    const room = roomId('controls');
    await joinWith(alice.page, room, 'Alice', 'open sesame');
    await alice.page.waitForSelector('#call:not([hidden])');

    await joinWith(bob.page, room, 'Bob', 'wrong');
    await bob.page.waitForFunction(() => document.querySelector('#lobby-error').textContent.includes('Wrong password'));
    assert.equal(await bob.page.isHidden('#call'), true);
    await bob.page.fill('#password', 'open sesame');
    await bob.page.click('#join');
    await bob.page.waitForSelector('#call:not([hidden])');
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    await waitFramesDecoded(bob.page);

    // Mute: Bob sees the badge; Alice sends no audio track.
    await alice.page.click('#btn-mic');
    await bob.page.waitForSelector(`${remoteTile} .badge[title="Muted"]`);
    assert.equal(await alice.page.evaluate(() => [...window.switchboard.state.peers.values()][0].link.senders.audio.track), null);
    await alice.page.click('#btn-mic');
    await bob.page.waitForSelector(`${remoteTile} .badge[title="Muted"]`, { state: 'detached' });

    // Camera off: Bob shows Alice's avatar; on again: frames flow again.
    await alice.page.click('#btn-cam');
    await bob.page.waitForSelector(`${remoteTile}.no-video`);
    await alice.page.click('#btn-cam');
    await bob.page.waitForSelector(`${remoteTile}:not(.no-video)`);
    let before = Object.values(await peerStats(bob.page))[0].framesDecoded;
    await waitFramesDecoded(bob.page, before + 10).catch((e) => { throw new Error(`after camera on: ${e.message}`); });

    // Switch camera in the device dialog.
    await alice.page.click('#btn-devices');
    await alice.page.waitForSelector('#devices[open]');
    const cams = await alice.page.$$eval('#cam-select option', (os) => os.map((o) => ({ id: o.value, label: o.textContent, selected: o.selected })));
    assert.equal(cams.length, 3, JSON.stringify(cams));
    assert.ok(cams[0].selected, JSON.stringify(cams));
    const other = cams[2];
    await alice.page.selectOption('#cam-select', other.id);
    await alice.page.waitForFunction((id) => window.switchboard.local.camera?.getSettings().deviceId === id
      && [...window.switchboard.state.peers.values()][0].link.senders.video.track === window.switchboard.local.camera, other.id);
    await alice.page.click('#devices button[value="ok"]');
    before = Object.values(await peerStats(bob.page))[0].framesDecoded;
    await waitFramesDecoded(bob.page, before + 10).catch((e) => { throw new Error(`after camera switch: ${e.message}`); });
  } finally {
    await alice.close();
    await bob.close();
  }
});
