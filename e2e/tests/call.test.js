// Must-show 1 and 5: two Chromium pages join one room through the real
// server; both connect, decode each other's video, exchange a chat message
// and a 5 MiB file verified by SHA-256 — with the default ICE policy and with
// ?relay=1, where getStats must show a relay/relay pair through Switchboard's
// own TURN (and once more with only TURN over TCP). Saves a screenshot of
// the call in progress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats, sendChat, waitChat, tcpTurnOnly } from '../lib/call.js';

const FILE_SIZE = 5 * 1024 * 1024;
const TURN = process.env.SWITCHBOARD_TURN ?? '';

/** Makes the page keep only TURN-over-TCP URLs in every RTCPeerConnection. */
async function tcpOnly(page) {
  await page.addInitScript(tcpTurnOnly);
}

async function call({ relay, screenshot, tcp = false, file = true }) {
  const alice = await launchChromium();
  const bob = await launchChromium();
  if (tcp) await Promise.all([tcpOnly(alice.page), tcpOnly(bob.page)]);
  try {
    const room = roomId(relay ? 'relay' : 'call');
    const query = relay ? '?relay=1' : '';
    await joinRoom(alice.page, room, 'Alice', query);
    await joinRoom(bob.page, room, 'Bob', query);
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);

    // Video flows both ways.
    const a = await waitFramesDecoded(alice.page);
    const b = await waitFramesDecoded(bob.page);
    for (const s of [...Object.values(a), ...Object.values(b)]) {
      assert.equal(s.state, 'connected');
      assert.ok(s.framesDecoded > 0);
      assert.ok(s.audioSamples > 0, `no audio received: ${JSON.stringify(s)}`);
      if (relay) {
        assert.equal(`${s.localType}/${s.remoteType}`, 'relay/relay', JSON.stringify(s));
        // The local relay candidate was allocated on Switchboard's TURN.
        if (s.localUrl) assert.ok(s.localUrl.includes(TURN), `${s.localUrl} vs ${TURN}`);
        if (tcp) assert.equal(s.relayProtocol, 'tcp', JSON.stringify(s));
      }
    }

    // Chat both ways.
    await sendChat(alice.page, 'Hello from Alice!');
    await waitChat(bob.page, 'Hello from Alice!');
    await sendChat(bob.page, 'Hi Alice, Bob here');
    await waitChat(alice.page, 'Hi Alice, Bob here');

    if (!file) return { alice: await peerStats(alice.page), bob: await peerStats(bob.page) };

    // A 5 MiB file from Alice to Bob, verified on arrival.
    const data = randomBytes(FILE_SIZE);
    const sha = createHash('sha256').update(data).digest('hex');
    await alice.page.click('.tab[data-tab="files"]');
    await alice.page.setInputFiles('#file-input', { name: 'report.bin', mimeType: 'application/octet-stream', buffer: data });
    await bob.page.click('.tab[data-tab="files"]');
    const row = await bob.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { timeout: 60_000 });
    assert.equal(await row.getAttribute('data-sha256'), sha);
    // The download link holds exactly the bytes sent (hashed independently by WebCrypto).
    const downloaded = await bob.page.evaluate(async () => {
      const a = document.querySelector('.transfer[data-dir="in"][data-state="verified"] a[download]');
      const buf = await (await fetch(a.href)).arrayBuffer();
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
      return { name: a.getAttribute('download'), size: buf.byteLength, sha: [...d].map((x) => x.toString(16).padStart(2, '0')).join('') };
    });
    assert.deepEqual(downloaded, { name: 'report.bin', size: FILE_SIZE, sha });
    await alice.page.waitForSelector('.transfer[data-dir="out"][data-state="delivered"]', { timeout: 15_000 });

    if (screenshot) {
      await mkdir(new URL('../artifacts/', import.meta.url), { recursive: true });
      await alice.page.click('#btn-stats');
      await alice.page.click('.tab[data-tab="chat"]');
      await alice.page.waitForTimeout(2500); // let the bitrate graph draw a few points
      await alice.page.screenshot({ path: new URL(`../artifacts/${screenshot}`, import.meta.url).pathname });
    }
    return { alice: await peerStats(alice.page), bob: await peerStats(bob.page) };
  } finally {
    await alice.close();
    await bob.close();
  }
}

test('two pages: video, chat and a 5 MiB file (default ICE policy)', async () => {
  const stats = await call({ relay: false, screenshot: 'call.png' });
  console.log('default policy pairs:', JSON.stringify(stats));
});

test('two pages with ?relay=1: relay/relay through Switchboard TURN', async () => {
  const stats = await call({ relay: true, screenshot: 'call-relay.png' });
  console.log('relay pairs:', JSON.stringify(stats));
});

test('two pages with ?relay=1 and only TURN over TCP: relay/relay over TCP', async () => {
  const stats = await call({ relay: true, tcp: true, file: false });
  console.log('relay over TCP pairs:', JSON.stringify(stats));
});
