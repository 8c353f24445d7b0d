// Issue 13, must-show 3 (part): a browser that can reach only TCP 443 — a
// relay-only page (?relay=1) whose one ICE server is turns: on the HTTPS
// port — takes part in an SFU room: its media goes over TURN/TLS to
// Switchboard's relay, and from the relay to the SFU on the same host.
//
// The server runs with the default peer policy (loopback peers refused):
// the relay reaches the SFU on 127.0.0.1 only through the policy's one
// exception, the server's own SFU port. That same policy refuses the
// relay-only page's mesh links to the other page's 127.0.0.1 host
// candidates, so here the SFU is its only path: what it plays and
// publishes crossed relay → SFU. (On a real network the others' addresses
// are public and the mesh links connect too.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { served, turnsOnly } from '../lib/tls.js';
import { waitTilesPlaying, waitMode, sfuReport } from '../lib/sfu.js';

/** The SFU link's selected candidate pair, as the page's getStats tells it. */
function sfuPair(page) {
  return page.evaluate(async () => {
    const r = await window.switchboard.sfu().link.pc.getStats();
    let out = null;
    r.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      const pair = r.get(s.selectedCandidatePairId);
      const [local, remote] = [r.get(pair.localCandidateId), r.get(pair.remoteCandidateId)];
      out = {
        local: local.candidateType, relayProtocol: local.relayProtocol ?? null, url: local.url ?? null,
        remote: `${remote.candidateType} ${remote.address}:${remote.port}`, bytesReceived: pair.bytesReceived,
      };
    });
    return out;
  });
}

test('a relay-only page with only turns: on the HTTPS port in an SFU room', { timeout: 180_000 }, async () => {
  const server = await startServer(['--tls-self-signed', '--turns-listen', 'off', '--sfu', 'always', '--sfu-listen', '127.0.0.1:0'],
    /web app: https:\/\/\S+/, null, { loopbackPeers: false });
  const pages = [];
  try {
    const port = server.httpPort;
    const base = `https://127.0.0.1:${port}`;
    const { spki } = await served(port);
    const room = roomId('sfu-relay');
    const viewport = { width: 960, height: 640 };
    for (const [name, relay] of [['Ann (443 only)', true], ['Ben', false]]) {
      const b = await launchChromium({ viewport, args: [`--ignore-certificate-errors-spki-list=${spki}`] });
      pages.push(b);
      if (relay) await turnsOnly(b.page, port);
      await joinRoom(b.page, room, name, relay ? '?relay=1' : '', base);
    }
    const [ann, ben] = pages.map((b) => b.page);
    try {
      for (const page of [ann, ben]) await waitMode(page, 'sfu', 60_000);
      // Each plays the other's video, which only the SFU carries.
      for (const page of [ann, ben]) await waitTilesPlaying(page, 1, 60_000);
    } catch (e) {
      for (const page of [ann, ben]) console.log(JSON.stringify(await sfuReport(page), null, 1));
      throw e;
    }
    const pair = await sfuPair(ann);
    console.log('relay-only SFU pair:', JSON.stringify(pair));
    assert.equal(pair?.local, 'relay', JSON.stringify(pair));
    assert.equal(pair.relayProtocol, 'tls', JSON.stringify(pair));
    assert.ok(pair.url?.startsWith(`turns:127.0.0.1:${port}?`), JSON.stringify(pair));
    assert.match(pair.remote, /^host 127\.0\.0\.1:\d+$/, 'the SFU itself, reached from the relay');
    assert.doesNotMatch(pair.remote, new RegExp(`:${port}$`));
    await ann.screenshot({ path: new URL('../artifacts/sfu-relay.png', import.meta.url).pathname });
  } finally {
    for (const b of pages) await b.close();
    await server.stop(2000);
  }
});
