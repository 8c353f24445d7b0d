// Issue 13: the active-speaker highlight in an SFU room. Three Chromium
// pages whose fake microphones play a steady tone; two mute, so one
// speaks: every page highlights the speaker's tile (the speaker's own page
// its self tile). Then the speaker mutes and another unmutes, and the
// highlight moves on every page. The SFU decides from the RFC 6464 audio
// levels in the RTP headers; nothing here reads audio. Cleo's page is
// phone-sized (390 px wide), for the screenshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rm, writeFile } from 'node:fs/promises';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { waitMode, sfuReport } from '../lib/sfu.js';

/** Writes a two-second 16-bit mono WAV of a 440 Hz tone at half scale (about -9 dBov). */
async function writeToneWav(path) {
  const rate = 48_000;
  const samples = rate * 2;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(16_000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(data.length, 40);
  await writeFile(path, Buffer.concat([h, data]));
}

/** The `data-peer` of the highlighted tile(s) on `page`. */
function highlighted(page) {
  return page.evaluate(() => [...document.querySelectorAll('#grid .tile.speaking')].map((t) => t.dataset.peer));
}

/** Waits until each page highlights `speaker` (its id; `self` on its own page) and nothing else. */
async function waitHighlight(pages, ids, speaker, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (const [i, b] of pages.entries()) {
    const want = ids[i] === speaker ? 'self' : speaker;
    for (;;) {
      const now = await highlighted(b.page);
      if (now.length === 1 && now[0] === want) break;
      if (Date.now() > deadline) assert.fail(`${what}: page ${i} highlights ${JSON.stringify(now)}, not ${want}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test('the SFU names who speaks and every page highlights that tile', { timeout: 150_000 }, async () => {
  const tone = join(tmpdir(), `switchboard-tone-${process.pid}.wav`);
  await writeToneWav(tone);
  const server = await startServer(['--sfu', 'auto', '--sfu-listen', '127.0.0.1:0']);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const pages = [];
  try {
    const room = roomId('sfu-speaker');
    const args = [`--use-file-for-fake-audio-capture=${tone}`];
    for (const [name, viewport] of [['Ann', { width: 960, height: 640 }], ['Ben', { width: 960, height: 640 }], ['Cleo', { width: 390, height: 844 }]]) {
      const b = await launchChromium({ viewport, args });
      pages.push(b);
      await joinRoom(b.page, room, name, '', base);
    }
    const [ann, ben, cleo] = pages;
    await ben.page.click('#btn-mic');
    await cleo.page.click('#btn-mic');
    try {
      for (const b of pages) await waitMode(b.page, 'sfu', 60_000);
    } catch (e) {
      for (const b of pages) console.log(JSON.stringify(await sfuReport(b.page), null, 1));
      throw e;
    }
    const ids = [];
    for (const b of pages) ids.push(await b.page.evaluate(() => window.switchboard.state.selfId));

    // Only Ann's microphone is on.
    await waitHighlight(pages, ids, ids[0], 'Ann speaks');
    await cleo.page.screenshot({ path: new URL('../artifacts/sfu-speaker-phone.png', import.meta.url).pathname });

    // Ann mutes, Ben unmutes: the highlight moves to Ben.
    await ann.page.click('#btn-mic');
    await ben.page.click('#btn-mic');
    await waitHighlight(pages, ids, ids[1], 'Ben speaks');
    await ann.page.screenshot({ path: new URL('../artifacts/sfu-speaker.png', import.meta.url).pathname });
  } finally {
    for (const b of pages) await b.close();
    await server.stop();
    await rm(tone, { force: true });
  }
});
