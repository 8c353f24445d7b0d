// Firefox ↔ Chromium: firefox-esr (puppeteer-core, WebDriver BiDi) and
// Chromium (playwright-core) in one room: both connect, decode each other's
// video, exchange chat messages, and Firefox sends Chromium a file verified
// by SHA-256 — one codebase, two engines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile, rm } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../lib/browser.js';
import { launchFirefox, FIREFOX, waitUntil } from '../lib/firefox.js';
import { BASE, roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats, sendChat, waitChat } from '../lib/call.js';

/** Inbound video frames decoded per peer, from Firefox's getStats(). */
async function firefoxFrames(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const p of window.switchboard.state.peers.values()) {
      const r = await p.link.pc.getStats();
      let frames = 0;
      r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0; });
      out.push({ state: p.link.pc.connectionState, frames });
    }
    return out;
  });
}

test('Firefox and Chromium call each other', { skip: !existsSync(FIREFOX) && `no ${FIREFOX}` }, async () => {
  const ff = await launchFirefox();
  const cr = await launchChromium();
  try {
    const room = roomId('ff');
    // Firefox joins first, so Chromium (the newcomer) makes the offer.
    await ff.page.goto(`${BASE}/r/${room}`);
    await ff.page.type('#name', 'Fiona (Firefox)');
    await ff.page.click('#join');
    await ff.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
    await joinRoom(cr.page, room, 'Chris (Chromium)');

    await waitConnected(cr.page, 1, 60_000);
    await waitUntil(ff.page, () => {
      const ps = [...window.switchboard.state.peers.values()];
      return ps.length === 1 && ps[0].link.pc.connectionState === 'connected';
    }, undefined, { timeout: 60_000 });

    await waitFramesDecoded(cr.page, 0, 30_000);
    const deadline = Date.now() + 30_000;
    let frames;
    do {
      frames = await firefoxFrames(ff.page);
      if (frames.every((f) => f.frames > 0)) break;
      await new Promise((r) => setTimeout(r, 500));
    } while (Date.now() < deadline);
    assert.ok(frames.length === 1 && frames[0].frames > 0, `firefox decodes no video: ${JSON.stringify(frames)}`);

    await sendChat(cr.page, 'hello firefox');
    await waitUntil(ff.page, () => [...document.querySelectorAll('#chat-log li:not(.mine) .text')].some((e) => e.textContent === 'hello firefox'), undefined, { timeout: 15_000 });
    await ff.page.type('#chat-input', 'hello chromium');
    await ff.page.keyboard.press('Enter');
    await waitChat(cr.page, 'hello chromium');

    // A 2 MiB file from Firefox to Chromium.
    const data = randomBytes(2 * 1024 * 1024);
    const file = join(tmpdir(), `switchboard-ff-${process.pid}.bin`);
    await writeFile(file, data);
    try {
      await ff.page.click('.tab[data-tab="files"]');
      const input = await ff.page.$('#file-input');
      await input.uploadFile(file);
      const row = await cr.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { state: 'attached', timeout: 60_000 });
      assert.equal(await row.getAttribute('data-sha256'), createHash('sha256').update(data).digest('hex'));
      await ff.page.waitForSelector('.transfer[data-dir="out"][data-state="delivered"]', { timeout: 15_000 });
    } finally {
      await rm(file, { force: true });
    }
    console.log('chromium side:', JSON.stringify(await peerStats(cr.page)), 'firefox side:', JSON.stringify(frames));
  } finally {
    await cr.close();
    await ff.close();
  }
});
