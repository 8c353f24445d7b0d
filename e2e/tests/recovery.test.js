// Recovery from a dead relay, with an external TURN server: signaling node A
// hands out `--ice-server turn:B` with credentials minted from the secret it
// shares with TURN node B (`--auth-secret`), as with an existing coturn. A
// relay-only call runs through B; B is killed, so ICE loses its path; B
// comes back on the same port, and the app's restartIce() brings the call
// back without anyone reloading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { launchChromium } from '../lib/browser.js';
import { startServer } from '../lib/server.js';
import { roomId, waitConnected, waitFramesDecoded, peerStats } from '../lib/call.js';

test('a relay-only call through an external TURN survives that TURN restarting', async () => {
  const secret = randomBytes(16).toString('hex');
  let turnNode = await startServer(['--auth-secret', secret]);
  const ports = [turnNode.httpPort, turnNode.turnPort];
  const signalNode = await startServer(['--auth-secret', secret,
    '--ice-server', `turn:127.0.0.1:${turnNode.turnPort}?transport=udp`]);
  const base = `http://127.0.0.1:${signalNode.httpPort}`;
  const browsers = [];
  try {
    const room = roomId('recovery');
    for (const name of ['Alice', 'Bob']) {
      const b = await launchChromium();
      browsers.push(b);
      await b.page.goto(`${base}/r/${room}?relay=1`);
      await b.page.fill('#name', name);
      await b.page.click('#join');
      await b.page.waitForSelector('#call:not([hidden])');
    }
    for (const b of browsers) await waitConnected(b.page, 1);
    for (const b of browsers) {
      for (const s of Object.values(await peerStats(b.page))) {
        assert.equal(`${s.localType}/${s.remoteType}`, 'relay/relay');
        assert.ok(s.localUrl?.includes(`:${turnNode.turnPort}`), JSON.stringify(s));
      }
    }

    // The relay dies: both sides lose the path.
    await turnNode.stop();
    for (const b of browsers) {
      await b.page.waitForFunction(() => [...window.switchboard.state.peers.values()]
        .every((p) => p.link.pc.connectionState !== 'connected'), null, { timeout: 45_000, polling: 250 });
    }
    // It comes back on the same port; the app restarts ICE by itself.
    turnNode = await startServer(['--auth-secret', secret], undefined, ports);
    for (const b of browsers) await waitConnected(b.page, 1, 90_000);
    // The tile records the last restart attempt's number (the link's budget
    // comes back once the call has held for 20 s).
    const restarts = await Promise.all(browsers.map((b) =>
      b.page.$eval('.tile:not([data-peer="self"])', (t) => Number(t.dataset.restarts ?? 0))));
    console.log('ICE restarts per side:', JSON.stringify(restarts));
    assert.ok(restarts.some((n) => n > 0), 'recovered without an ICE restart?');
    const before = Object.values(await peerStats(browsers[1].page))[0].framesDecoded;
    await waitFramesDecoded(browsers[1].page, before + 10);
  } finally {
    for (const b of browsers) await b.close();
    await signalNode.stop(2000);
    await turnNode.stop(2000);
  }
});
